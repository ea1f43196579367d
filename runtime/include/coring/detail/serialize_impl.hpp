#pragma once
// The machinery of the codec (<coring/serialize.hpp>): serialize hooks
// found, one codec<T> per supported type, and the bodies of the public
// functions. Included at the bottom of serialize.hpp, not on its own.

#include <coring/detail/type_name.hpp>
#include <coring/serialize.hpp>

#include <algorithm>
#include <array>
#include <bit>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

namespace coring {

namespace detail {

// The encoding is the x86-64 object representation: a trivially copyable
// value travels as its bytes, lengths as native 64-bit integers. Processes of
// one binary agree on it anywhere, but the format, as documented and as a
// process built elsewhere must read it, is x86-64's: little-endian, with the
// x86-64 System V sizes, alignments and layouts.
#if defined(__x86_64__)
inline constexpr bool x86_64 = true;
#else
inline constexpr bool x86_64 = false;
#endif
static_assert(x86_64, "coring/serialize.hpp is x86-64 only: its encoding is the x86-64 object representation");

}  // namespace detail

// static_assert wants a string literal; the macro is undefined at the bottom.
#define CORING_NOT_SERIALIZABLE_MESSAGE                                                                  \
  "coring: type is not serializable: use trivially copyable types (no pointers), std::string, "          \
  "std::vector, std::optional, std::pair, std::tuple, std::array, std::map, std::set, std::variant, or " \
  "give the type a serialize(Archive&) hook and a default constructor"


namespace detail {

// --- Error messages (cold, out of line in serialize.cpp: only the failure path pays for them) ---

[[noreturn, gnu::cold]] void throw_short(std::string_view what, std::string_view suffix, std::size_t needed,
                                         std::size_t left);
[[noreturn, gnu::cold]] void throw_length(std::string_view what, std::uint64_t n, std::size_t left,
                                          std::size_t min_each);
[[noreturn, gnu::cold]] void throw_bad_value(std::string_view what, std::string_view field, std::uint64_t value,
                                             std::string_view why);
[[noreturn, gnu::cold]] void throw_repeated_key(std::string_view what);
[[noreturn, gnu::cold]] void throw_left_over(std::size_t left);
[[noreturn, gnu::cold]] void throw_valueless(std::string_view what);

// --- Hooks ---

template <class T>
concept has_member_hook = requires(T& v, writer_archive& w, reader_archive& r) {
  v.serialize(w);
  v.serialize(r);
};

namespace hook_lookup {
// Hides any serialize() of enclosing namespaces, so that only ADL finds the user's.
void serialize() = delete;

template <class T>
concept has_free_hook = requires(T& v, writer_archive& w, reader_archive& r) {
  serialize(w, v);
  serialize(r, v);
};

template <class Archive, class T>
void call(Archive& ar, T& v) {
  serialize(ar, v);
}
}  // namespace hook_lookup

template <class T>
concept has_member_or_free_hook = has_member_hook<T> || hook_lookup::has_free_hook<T>;

template <class T>
concept has_hook = std::is_class_v<T> && has_member_or_free_hook<T>;

// --- Codecs ---
//
// codec<T> says whether T is supported and how it is encoded:
//   supported  serializable<T>
//   trivial    the encoding is the object's sizeof(T) bytes, so arrays of T are one memcpy
//   min_size   the fewest bytes an encoded T takes (bounds hostile container lengths)
//   write(byte_writer&, const T&) and T read(byte_reader&)
// Only supported codecs define write and read; encode() and the archives
// check `supported` before they touch them.

template <class T>
using codec_of = codec<std::remove_cv_t<T>>;

struct unsupported_codec {
  static constexpr bool supported = false;
  static constexpr bool trivial = false;
  static constexpr std::size_t min_size = 0;
};

/// Serializable as a value of its own: everything but C arrays, which cannot be returned or stored in
/// containers.
template <class T>
concept value_codec = codec_of<T>::supported && !std::is_array_v<T>;

template <class T>
concept plain_bytes =
    std::is_trivially_copyable_v<T> && !std::is_pointer_v<T> && !std::is_member_pointer_v<T> &&
    !std::is_array_v<T> && !std::is_same_v<T, bool> && !has_hook<T>;

/// Reads a trivially copyable T bit for bit.
template <class T>
T read_trivial(byte_reader& r) {
  const char* p = r.read_view(sizeof(T), type_name_v<T>).data();
  if constexpr (std::is_default_constructible_v<T>) {
    T v;
    std::memcpy(&v, p, sizeof(T));
    return v;
  } else {
    std::array<char, sizeof(T)> raw;
    std::memcpy(raw.data(), p, sizeof(T));
    return std::bit_cast<T>(raw);
  }
}

inline void write_length(byte_writer& w, std::size_t n) {
  auto length = static_cast<std::uint64_t>(n);
  w.write_bytes(&length, sizeof length);
}

/// Reads the length of a C and checks that its elements, of at least
/// `min_each` bytes each, fit in the bytes left, before anyone allocates.
template <class C>
std::size_t read_length(byte_reader& r, std::size_t min_each) {
  std::uint64_t n;
  if (r.remaining() < sizeof n) [[unlikely]]
    throw_short(type_name_v<C>, " length", sizeof n, r.remaining());
  std::memcpy(&n, r.read_view(sizeof n).data(), sizeof n);
  std::size_t each = min_each != 0 ? min_each : 1;
  if (n > r.remaining() / each) [[unlikely]]
    throw_length(type_name_v<C>, n, r.remaining(), min_each);
  return static_cast<std::size_t>(n);
}

/// How many elements of T to reserve for a container of `n` when `left` bytes
/// follow: never more memory than there are bytes, so that a hostile length of
/// small encodings (an optional takes one byte, sizeof may be 40) cannot make
/// us reserve many times the input's size; the container grows past it
/// as real elements arrive.
template <class T>
std::size_t reserve_bound(std::size_t n, std::size_t left) noexcept {
  return std::min(n, left / sizeof(T) + 1);
}

/// Reads a byte that must be 0 or 1.
inline bool read_flag(byte_reader& r, std::string_view what, std::string_view field) {
  if (r.remaining() < 1) [[unlikely]]
    throw_short(what, field, 1, 0);
  auto byte = static_cast<unsigned char>(r.read_view(1).front());
  if (byte > 1) [[unlikely]]
    throw_bad_value(what, field, byte, "is neither 0 nor 1");
  return byte == 1;
}

/// Decodes into an existing object: what the reader archive does with a hook's members.
template <class T>
void read_into(byte_reader& r, T& v) {
  using C = codec_of<T>;
  if constexpr (C::trivial) {
    r.read_bytes(&v, sizeof v, type_name_v<T>);
  } else if constexpr (std::is_array_v<T>) {
    for (auto& e : v) read_into(r, e);
  } else {
    v = C::read(r);
  }
}

// Not serializable (the default).
template <class T>
struct codec : unsupported_codec {};

// Trivially copyable: the object's bytes.
template <class T>
requires plain_bytes<T>
struct codec<T> {
  static constexpr bool supported = true;
  static constexpr bool trivial = true;
  static constexpr std::size_t min_size = sizeof(T);

  static void write(byte_writer& w, const T& v) { w.write_bytes(&v, sizeof(T)); }
  static T read(byte_reader& r) { return read_trivial<T>(r); }
};

// Trivially copyable, but carrying an address that means nothing in another process.
template <class C, class Traits>
struct codec<std::basic_string_view<C, Traits>> : unsupported_codec {};
template <class T, std::size_t Extent>
struct codec<std::span<T, Extent>> : unsupported_codec {};
template <class T>
struct codec<std::reference_wrapper<T>> : unsupported_codec {};

// A user type with a serialize hook.
template <class T>
requires has_hook<T>
struct codec<T> {
  static constexpr bool supported = std::default_initializable<T> && std::move_constructible<T>;
  static constexpr bool trivial = false;
  static constexpr std::size_t min_size = 0;  // unknown without running the hook

  static void write(byte_writer& w, const T& v) {
    writer_archive ar(w);
    // One hook serves both directions, so it takes a non-const object; the
    // writer archive only reads the members it is handed.
    T& object = const_cast<T&>(v);
    if constexpr (has_member_hook<T>) {
      object.serialize(ar);
    } else {
      hook_lookup::call(ar, object);
    }
  }

  static T read(byte_reader& r) {
    T v{};
    reader_archive ar(r);
    if constexpr (has_member_hook<T>) {
      v.serialize(ar);
    } else {
      hook_lookup::call(ar, v);
    }
    return v;
  }
};

template <>
struct codec<bool> {
  static constexpr bool supported = true;
  static constexpr bool trivial =
      false;  // decoding checks the byte: any other value than 0 or 1 is not a bool
  static constexpr std::size_t min_size = 1;

  static void write(byte_writer& w, bool v) {
    unsigned char byte = v ? 1 : 0;
    w.write_bytes(&byte, 1);
  }
  static bool read(byte_reader& r) { return read_flag(r, "bool", ""); }
};

template <>
struct codec<std::monostate> {
  static constexpr bool supported = true;
  static constexpr bool trivial = false;
  static constexpr std::size_t min_size = 0;

  static void write(byte_writer&, std::monostate) noexcept {}
  static std::monostate read(byte_reader&) noexcept { return {}; }
};

template <>
struct codec<std::string> {
  static constexpr bool supported = true;
  static constexpr bool trivial = false;
  static constexpr std::size_t min_size = sizeof(std::uint64_t);

  static std::size_t size_hint(const std::string& s) noexcept { return sizeof(std::uint64_t) + s.size(); }
  static void write(byte_writer& w, const std::string& s) {
    write_length(w, s.size());
    w.write_bytes(s.data(), s.size());
  }
  static std::string read(byte_reader& r) {
    std::size_t n = read_length<std::string>(r, 1);
    return std::string(r.read_view(n));
  }
};

template <class T, class A>
struct codec<std::vector<T, A>> {
  using vector_type = std::vector<T, A>;
  using element = codec_of<T>;
  static constexpr bool supported = value_codec<T> && std::default_initializable<A>;
  static constexpr bool trivial = false;
  static constexpr std::size_t min_size = sizeof(std::uint64_t);

  static std::size_t size_hint(const vector_type& v) noexcept {
    return sizeof(std::uint64_t) + v.size() * (element::trivial ? sizeof(T) : element::min_size);
  }

  static void write(byte_writer& w, const vector_type& v) {
    write_length(w, v.size());
    if constexpr (element::trivial) {
      w.write_bytes(v.data(), v.size() * sizeof(T));
    } else {
      for (const T& e : v) element::write(w, e);
    }
  }

  static vector_type read(byte_reader& r) {
    std::size_t n = read_length<vector_type>(r, element::min_size);
    vector_type v;
    if constexpr (element::trivial && std::is_default_constructible_v<T>) {
      v.resize(n);
      r.read_bytes(v.data(), n * sizeof(T), type_name_v<vector_type>);
    } else {
      v.reserve(reserve_bound<T>(n, r.remaining()));
      for (std::size_t i = 0; i < n; ++i) v.push_back(element::read(r));
    }
    return v;
  }
};

// std::vector<bool> packs its bits; it travels as one checked byte per element.
template <class A>
struct codec<std::vector<bool, A>> {
  using vector_type = std::vector<bool, A>;
  static constexpr bool supported = std::default_initializable<A>;
  static constexpr bool trivial = false;
  static constexpr std::size_t min_size = sizeof(std::uint64_t);

  static void write(byte_writer& w, const vector_type& v) {
    write_length(w, v.size());
    for (bool b : v) codec<bool>::write(w, b);
  }

  static vector_type read(byte_reader& r) {
    std::size_t n = read_length<vector_type>(r, 1);
    vector_type v;
    v.reserve(n);
    for (std::size_t i = 0; i < n; ++i) v.push_back(read_flag(r, type_name_v<vector_type>, " element"));
    return v;
  }
};

template <class T>
struct codec<std::optional<T>> {
  using optional_type = std::optional<T>;
  static constexpr bool supported = value_codec<T>;
  static constexpr bool trivial = false;
  static constexpr std::size_t min_size = 1;

  static void write(byte_writer& w, const optional_type& v) {
    codec<bool>::write(w, v.has_value());
    if (v) codec_of<T>::write(w, *v);
  }

  static optional_type read(byte_reader& r) {
    if (!read_flag(r, type_name_v<optional_type>, " flag")) return std::nullopt;
    return optional_type(std::in_place, codec_of<T>::read(r));
  }
};

template <class A, class B>
struct codec<std::pair<A, B>> {
  using pair_type = std::pair<A, B>;
  static constexpr bool supported = value_codec<A> && value_codec<B>;
  static constexpr bool trivial = false;
  static constexpr std::size_t min_size = codec_of<A>::min_size + codec_of<B>::min_size;

  static void write(byte_writer& w, const pair_type& v) {
    codec_of<A>::write(w, v.first);
    codec_of<B>::write(w, v.second);
  }

  // Braced initialisation runs the reads left to right.
  static pair_type read(byte_reader& r) { return pair_type{codec_of<A>::read(r), codec_of<B>::read(r)}; }
};

template <class... Ts>
struct codec<std::tuple<Ts...>> {
  using tuple_type = std::tuple<Ts...>;
  static constexpr bool supported = (value_codec<Ts> && ...);
  static constexpr bool trivial = false;
  static constexpr std::size_t min_size = (std::size_t{0} + ... + codec_of<Ts>::min_size);

  static void write(byte_writer& w, const tuple_type& v) {
    std::apply(
        [&w](const Ts&... elements) {
          (void)w;  // unused when the tuple is empty
          (codec_of<Ts>::write(w, elements), ...);
        },
        v);
  }

  // Braced initialisation runs the reads left to right.
  static tuple_type read([[maybe_unused]] byte_reader& r) { return tuple_type{codec_of<Ts>::read(r)...}; }
};

template <class T, std::size_t N>
struct codec<std::array<T, N>> {
  using array_type = std::array<T, N>;
  using element = codec_of<T>;
  static constexpr bool supported = value_codec<T>;
  static constexpr bool trivial = element::trivial && std::is_trivially_copyable_v<array_type>;
  static constexpr std::size_t min_size = trivial ? sizeof(array_type) : N * element::min_size;

  static void write(byte_writer& w, const array_type& v) {
    if constexpr (trivial) {
      w.write_bytes(&v, sizeof v);
    } else {
      for (const T& e : v) element::write(w, e);
    }
  }

  static array_type read(byte_reader& r) {
    if constexpr (trivial) {
      return read_trivial<array_type>(r);
    } else if constexpr (std::is_default_constructible_v<T>) {
      array_type v;
      for (T& e : v) e = element::read(r);
      return v;
    } else {
      return read_each(r, std::make_index_sequence<N>{});
    }
  }

  template <std::size_t... Is>
  static array_type read_each(byte_reader& r, std::index_sequence<Is...>) {
    return array_type{((void)Is, element::read(r))...};
  }
};

// C arrays are written here and read in place by read_into().
template <class T, std::size_t N>
struct codec<T[N]> {
  using element = codec_of<T>;
  static constexpr bool supported = value_codec<T>;
  static constexpr bool trivial = element::trivial;
  static constexpr std::size_t min_size = trivial ? sizeof(T[N]) : N * element::min_size;

  static void write(byte_writer& w, const T (&v)[N]) {
    if constexpr (trivial) {
      w.write_bytes(v, sizeof v);
    } else {
      for (const T& e : v) element::write(w, e);
    }
  }
};

template <class... Ts>
struct codec<std::variant<Ts...>> {
  using variant_type = std::variant<Ts...>;
  using index_type = std::conditional_t<(sizeof...(Ts) < 256), std::uint8_t, std::uint32_t>;
  static constexpr bool supported = (value_codec<Ts> && ...);
  static constexpr bool trivial = false;
  static constexpr std::size_t min_size = sizeof(index_type) + std::min({codec_of<Ts>::min_size...});

  static void write(byte_writer& w, const variant_type& v) {
    if (v.valueless_by_exception()) [[unlikely]]
      throw_valueless(type_name_v<variant_type>);
    auto index = static_cast<index_type>(v.index());
    w.write_bytes(&index, sizeof index);
    std::visit([&w](const auto& alt) { codec_of<std::remove_cvref_t<decltype(alt)>>::write(w, alt); }, v);
  }

  static variant_type read(byte_reader& r) {
    index_type index;
    if (r.remaining() < sizeof index) [[unlikely]] {
      throw_short(type_name_v<variant_type>, " index", sizeof index, r.remaining());
    }
    std::memcpy(&index, r.read_view(sizeof index).data(), sizeof index);
    if (index >= sizeof...(Ts)) [[unlikely]] {
      throw_bad_value(type_name_v<variant_type>, " index", index,
                      "is out of range (" + std::to_string(sizeof...(Ts)) + " alternatives)");
    }
    return read_alternative(r, index, std::index_sequence_for<Ts...>{});
  }

  template <std::size_t... Is>
  static variant_type read_alternative(byte_reader& r, std::size_t index, std::index_sequence<Is...>) {
    using read_fn = variant_type (*)(byte_reader&);
    static constexpr read_fn table[] = {&read_one<Is>...};
    return table[index](r);
  }

  template <std::size_t I>
  static variant_type read_one(byte_reader& r) {
    return variant_type(std::in_place_index<I>,
                        codec_of<std::variant_alternative_t<I, variant_type>>::read(r));
  }
};

/// std::map and std::unordered_map: count, then key and value pairs.
template <class M>
struct map_codec {
  using key = codec_of<typename M::key_type>;
  using mapped = codec_of<typename M::mapped_type>;
  static constexpr bool supported = value_codec<typename M::key_type> &&
                                    value_codec<typename M::mapped_type> && std::default_initializable<M>;
  static constexpr bool trivial = false;
  static constexpr std::size_t min_size = sizeof(std::uint64_t);

  static std::size_t size_hint(const M& m) noexcept {
    return sizeof(std::uint64_t) + m.size() * (key::min_size + mapped::min_size);
  }

  static void write(byte_writer& w, const M& m) {
    write_length(w, m.size());
    for (const auto& [k, v] : m) {
      key::write(w, k);
      mapped::write(w, v);
    }
  }

  static M read(byte_reader& r) {
    std::size_t n = read_length<M>(r, key::min_size + mapped::min_size);
    M m;
    if constexpr (requires { m.reserve(n); })
      m.reserve(reserve_bound<typename M::value_type>(n, r.remaining()));
    for (std::size_t i = 0; i < n; ++i) {
      auto k = key::read(r);
      auto v = mapped::read(r);
      // A std::map encodes its keys in order, so the end is the right hint.
      m.emplace_hint(m.end(), std::move(k), std::move(v));
      if (m.size() != i + 1) [[unlikely]]
        throw_repeated_key(type_name_v<M>);
    }
    return m;
  }
};

/// std::set and std::unordered_set: count, then keys.
template <class S>
struct set_codec {
  using key = codec_of<typename S::key_type>;
  static constexpr bool supported = value_codec<typename S::key_type> && std::default_initializable<S>;
  static constexpr bool trivial = false;
  static constexpr std::size_t min_size = sizeof(std::uint64_t);

  static std::size_t size_hint(const S& s) noexcept {
    return sizeof(std::uint64_t) + s.size() * key::min_size;
  }

  static void write(byte_writer& w, const S& s) {
    write_length(w, s.size());
    for (const auto& k : s) key::write(w, k);
  }

  static S read(byte_reader& r) {
    std::size_t n = read_length<S>(r, key::min_size);
    S s;
    if constexpr (requires { s.reserve(n); })
      s.reserve(reserve_bound<typename S::value_type>(n, r.remaining()));
    for (std::size_t i = 0; i < n; ++i) {
      s.emplace_hint(s.end(), key::read(r));
      if (s.size() != i + 1) [[unlikely]]
        throw_repeated_key(type_name_v<S>);
    }
    return s;
  }
};

template <class K, class V, class Compare, class A>
struct codec<std::map<K, V, Compare, A>> : map_codec<std::map<K, V, Compare, A>> {};
template <class K, class V, class Hash, class Equal, class A>
struct codec<std::unordered_map<K, V, Hash, Equal, A>> : map_codec<std::unordered_map<K, V, Hash, Equal, A>> {
};
template <class K, class Compare, class A>
struct codec<std::set<K, Compare, A>> : set_codec<std::set<K, Compare, A>> {};
template <class K, class Hash, class Equal, class A>
struct codec<std::unordered_set<K, Hash, Equal, A>> : set_codec<std::unordered_set<K, Hash, Equal, A>> {};

/// Roughly how many bytes `v` encodes to, so that encode_all() allocates once.
template <class T>
std::size_t size_hint(const T& v) noexcept {
  using C = codec_of<T>;
  if constexpr (C::trivial) {
    return sizeof(T);
  } else if constexpr (requires { C::size_hint(v); }) {
    return C::size_hint(v);
  } else {
    return C::min_size + 64;  // a guess for hooks and small aggregates
  }
}
}  // namespace detail

// --- byte_writer ---

inline void byte_writer::write_bytes(const void* bytes, std::size_t n) {
  if (n > buf_.size() - size_) [[unlikely]]
    grow_(size_ + n);
  if (n != 0) std::memcpy(buf_.data() + size_, bytes, n);  // memcpy may not be handed a null pointer
  size_ += n;
}

inline void byte_writer::reserve(std::size_t n) {
  if (n > buf_.size()) buf_.resize(std::max(n, buf_.capacity()));
}

inline void byte_writer::grow_(std::size_t needed) {
  // Doubling keeps appends amortised O(1). The first growth uses the string's
  // inline buffer; past it, 64 bytes is the smallest heap buffer worth having.
  std::size_t next = std::max(needed, 2 * buf_.size());
  next = next <= buf_.capacity() ? buf_.capacity() : std::max<std::size_t>(next, 64);
  buf_.resize(next);
}

inline const char* byte_writer::data() const noexcept { return buf_.data(); }

inline std::size_t byte_writer::size() const noexcept { return size_; }

inline std::string_view byte_writer::view() const noexcept { return {buf_.data(), size_}; }

inline void byte_writer::clear() noexcept { size_ = 0; }

inline std::string byte_writer::take() noexcept {
  buf_.resize(size_);  // shrinking keeps the allocation: no copy, cannot throw
  size_ = 0;
  std::string out = std::move(buf_);
  buf_.clear();
  return out;
}

// --- byte_reader ---

inline byte_reader::byte_reader(std::string_view bytes) noexcept
    : pos_(bytes.data()), end_(bytes.data() + bytes.size()) {}

inline byte_reader::byte_reader(const void* bytes, std::size_t n) noexcept
    : pos_(static_cast<const char*>(bytes)), end_(pos_ + n) {}

inline void byte_reader::read_bytes(void* out, std::size_t n, std::string_view what) {
  std::string_view bytes = read_view(n, what);
  if (n != 0) std::memcpy(out, bytes.data(), n);  // memcpy may not be handed a null pointer
}

inline std::string_view byte_reader::read_view(std::size_t n, std::string_view what) {
  if (n > remaining()) [[unlikely]]
    detail::throw_short(what, "", n, remaining());
  std::string_view bytes(pos_, n);
  pos_ += n;
  return bytes;
}

inline std::size_t byte_reader::remaining() const noexcept { return static_cast<std::size_t>(end_ - pos_); }

inline bool byte_reader::done() const noexcept { return pos_ == end_; }

// --- archives ---

template <class... Ts>
void writer_archive::operator()(const Ts&... values) {
  static_assert((serializable<Ts> && ...), CORING_NOT_SERIALIZABLE_MESSAGE);
  if constexpr ((serializable<Ts> && ...)) (detail::codec_of<Ts>::write(*out_, values), ...);
}

template <class... Ts>
void reader_archive::operator()(Ts&... values) {
  static_assert((serializable<Ts> && ...), CORING_NOT_SERIALIZABLE_MESSAGE);
  if constexpr ((serializable<Ts> && ...)) (detail::read_into(*in_, values), ...);
}

// --- encode / decode ---
// Each entry point asserts serializable<T> first and only then instantiates
// the codec, so that the assertion is the only error a user sees.

template <class T>
void encode(byte_writer& out, const T& value) {
  static_assert(serializable<T>, CORING_NOT_SERIALIZABLE_MESSAGE);
  if constexpr (serializable<T>) detail::codec_of<T>::write(out, value);
}

template <class T>
T decode(byte_reader& in) {
  static_assert(serializable<T>, CORING_NOT_SERIALIZABLE_MESSAGE);
  if constexpr (serializable<T>) {
    return detail::codec_of<T>::read(in);
  } else {
    __builtin_unreachable();  // the static_assert has already failed
  }
}

template <class... Ts>
std::string encode_all(const Ts&... values) {
  static_assert((serializable<Ts> && ...), CORING_NOT_SERIALIZABLE_MESSAGE);
  byte_writer out;
  if constexpr ((serializable<Ts> && ...)) {
    out.reserve((std::size_t{0} + ... + detail::size_hint(values)));
    (detail::codec_of<Ts>::write(out, values), ...);
  }
  return out.take();
}

template <class... Ts>
std::tuple<Ts...> decode_all(std::string_view bytes) {
  static_assert((serializable<Ts> && ...), CORING_NOT_SERIALIZABLE_MESSAGE);
  static_assert(!(std::is_array_v<Ts> || ...), "coring: decode_all cannot return a C array: use std::array");
  if constexpr ((serializable<Ts> && ...) && !(std::is_array_v<Ts> || ...)) {
    byte_reader in(bytes);
    // Braced initialisation runs the reads left to right.
    std::tuple<Ts...> values{detail::codec_of<Ts>::read(in)...};
    if (!in.done()) [[unlikely]]
      detail::throw_left_over(in.remaining());
    return values;
  } else {
    __builtin_unreachable();  // a static_assert has already failed
  }
}

#undef CORING_NOT_SERIALIZABLE_MESSAGE

}  // namespace coring
