#pragma once
// Type names for messages: T as the compiler spells it, known at compile
// time, and that spelling rewritten the way people write it.
//
//   coring::detail::pretty_type_name(coring::detail::type_name_v<std::map<std::string, int>>)
//     == "std::map<std::string, int>"

#include <cstddef>
#include <string>
#include <string_view>

namespace coring::detail {

/// The name of T as the compiler spells it ("std::vector<int>"), for error messages.
template <class T>
constexpr std::string_view raw_type_name() noexcept {
  std::string_view f = __PRETTY_FUNCTION__;
  std::size_t begin = f.find("T = ") + 4;
  std::size_t end = f.find(';', begin);                   // g++: "[with T = X; std::string_view = ...]"
  if (end == std::string_view::npos) end = f.rfind(']');  // clang++: "[T = X]"
  return f.substr(begin, end - begin);
}

template <class T>
inline constexpr std::string_view type_name_v = raw_type_name<T>();

/// Rewrites the compilers' spellings of library types the way people write
/// them: "std::map<std::__cxx11::basic_string<char>, int, std::less<...>, std::allocator<...> >"
/// becomes "std::map<std::string, int>".
std::string pretty_type_name(std::string_view raw);

}  // namespace coring::detail
