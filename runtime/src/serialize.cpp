// The cold half of the codec (<coring/serialize.hpp>): type names and the
// decode errors that use them, built only when something fails.

#include <coring/serialize.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

namespace coring::detail {

std::string pretty_type_name(std::string_view raw) {
  std::string s(raw);
  auto replace_all = [&s](std::string_view from, std::string_view to) {
    for (std::size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) {
      s.replace(at, from.size(), to);
    }
  };
  // Drops a defaulted template argument ", std::allocator<...>", brackets balanced.
  auto erase_argument = [&s](std::string_view start) {
    for (std::size_t at = s.find(start); at != std::string::npos; at = s.find(start, at)) {
      std::size_t end = at + start.size();
      for (int depth = 1; end < s.size() && depth > 0; ++end)
        depth += s[end] == '<' ? 1 : s[end] == '>' ? -1 : 0;
      s.erase(at, end - at);
    }
  };
  replace_all("std::__cxx11::", "std::");
  for (std::string_view start :
       {", std::char_traits<", ", std::allocator<", ", std::less<", ", std::hash<", ", std::equal_to<"}) {
    erase_argument(start);
  }
  replace_all(" >", ">");
  replace_all("std::basic_string<char>", "std::string");
  return s;
}

namespace {

[[noreturn]] void throw_decode(std::string message) {
  throw decode_error("decode: " + message);
}

}  // namespace

void throw_short(std::string_view what, std::string_view suffix, std::size_t needed, std::size_t left) {
  throw_decode(pretty_type_name(what) + std::string(suffix) + " needs " + std::to_string(needed) +
               " bytes but only " + std::to_string(left) + " are left");
}

void throw_length(std::string_view what, std::uint64_t n, std::size_t left, std::size_t min_each) {
  std::string message = pretty_type_name(what) + " length " + std::to_string(n) + " exceeds the " +
                        std::to_string(left) + " bytes left";
  if (min_each > 1) message += " (each element takes at least " + std::to_string(min_each) + " bytes)";
  throw_decode(std::move(message));
}

void throw_bad_value(std::string_view what, std::string_view field, std::uint64_t value, std::string_view why) {
  throw_decode(pretty_type_name(what) + std::string(field) + " " + std::to_string(value) + " " +
               std::string(why));
}

void throw_repeated_key(std::string_view what) {
  throw_decode(pretty_type_name(what) + " repeats a key");
}

void throw_left_over(std::size_t left) {
  throw_decode(std::to_string(left) + " bytes left over after the last value");
}

void throw_valueless(std::string_view what) {
  throw error("encode: " + pretty_type_name(what) + " is valueless by exception");
}

}  // namespace coring::detail
