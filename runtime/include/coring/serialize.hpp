#pragma once
// The serialisation codec: turns values into bytes and back, to carry a
// process pool's job arguments and results between processes of the same
// program. It is compact and bounds-checked, and not self-describing: both
// sides must agree on the types (they run the same binary).
//
//   std::string bytes = coring::encode_all(42, std::string("hi"), std::vector<double>{1.5});
//   auto [n, s, v] = coring::decode_all<int, std::string, std::vector<double>>(bytes);
//
//   struct point {                    // a user type joins through a hook,
//     int x = 0, y = 0;               // used for both directions
//     std::string label;
//     template <class Archive> void serialize(Archive& ar) { ar(x, y, label); }
//   };
//
// Format (x86-64 only, checked by a static_assert: native byte order, which
// is little-endian, and x86-64's sizes and layouts):
//   trivially copyable value    its object bytes (one memcpy)
//   bool, std::optional flag    one byte, 0 or 1
//   string, vector, map, set    u64 element count, then the elements
//   std::variant                u8 index (u32 from 256 alternatives on), then the alternative
//   pair, tuple, array, hook    the members in order, nothing around them

#include <coring/error.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>

namespace coring {

/// Thrown when bytes cannot be decoded as the requested type: the input ends
/// early, a length exceeds the bytes left, a bool, optional flag or variant
/// index is out of range, a map or set repeats a key, or decode_all() finds
/// bytes left over. The message names what was being read:
/// "decode: std::string length 1000 exceeds the 12 bytes left".
class decode_error : public error {
 public:
  using error::error;
};

/// An append-only byte buffer that encode() writes to; it owns its bytes.
/// Thread safety: none; use one writer per thread.
class byte_writer {
 public:
  /// An empty writer; it allocates nothing until the bytes outgrow a std::string's inline buffer.
  byte_writer() = default;

  /// Appends `n` bytes copied from `bytes`.
  /// Requires: `bytes` points to `n` readable bytes (it may be null when `n` is 0).
  void write_bytes(const void* bytes, std::size_t n);

  /// Makes room for `n` bytes in total, so that writes up to that size do not reallocate.
  void reserve(std::size_t n);

  /// The first byte written; the pointer is valid until the next write, reserve, clear or take.
  [[nodiscard]] const char* data() const noexcept;

  /// How many bytes have been written.
  [[nodiscard]] std::size_t size() const noexcept;

  /// The bytes written, as a view with data()'s lifetime.
  [[nodiscard]] std::string_view view() const noexcept;

  /// Forgets the bytes written and keeps the buffer for reuse.
  void clear() noexcept;

  /// Moves the bytes out as a std::string and leaves the writer empty.
  [[nodiscard]] std::string take() noexcept;

 private:
  void grow_(std::size_t needed);

  std::string buf_;       // storage; its size() is the room in use, bytes past size_ are scratch
  std::size_t size_ = 0;  // bytes written
};

/// A cursor over bytes it does not own, that decode() reads from. Every read
/// is bounds-checked.
/// Requires: the bytes outlive the reader.
/// Thread safety: none; use one reader per thread.
class byte_reader {
 public:
  /// Reads `bytes` from the start.
  explicit byte_reader(std::string_view bytes) noexcept;

  /// Reads the `n` bytes at `bytes` from the start.
  /// Requires: `bytes` points to `n` readable bytes (it may be null when `n` is 0).
  byte_reader(const void* bytes, std::size_t n) noexcept;

  /// Copies the next `n` bytes to `out` and moves past them.
  /// Errors: decode_error naming `what` when fewer than `n` bytes are left;
  /// the reader has then not moved.
  void read_bytes(void* out, std::size_t n, std::string_view what = "bytes");

  /// Moves past the next `n` bytes and returns a view of them, which points
  /// into the reader's input.
  /// Errors: decode_error naming `what` when fewer than `n` bytes are left;
  /// the reader has then not moved.
  [[nodiscard]] std::string_view read_view(std::size_t n, std::string_view what = "bytes");

  /// How many bytes are left to read.
  [[nodiscard]] std::size_t remaining() const noexcept;

  /// Whether every byte has been read.
  [[nodiscard]] bool done() const noexcept;

 private:
  const char* pos_;  // next byte to read
  const char* end_;  // one past the last byte
};

namespace detail {
template <class T>
struct codec;
}  // namespace detail

/// True for the types encode() and decode() accept, checked recursively
/// through containers: trivially copyable types other than pointers and
/// member pointers (copied bit for bit, so a pointer hidden inside a struct
/// is the caller's bug; std::string_view, std::span and
/// std::reference_wrapper are rejected for that reason), bool, enums,
/// std::monostate, std::string, and std::vector, std::optional, std::pair,
/// std::tuple, std::array, std::variant, std::map, std::unordered_map,
/// std::set and std::unordered_set of serializable types. A class type with
/// a serialize hook (a public member `template <class Archive> void
/// serialize(Archive&)`, or a free `serialize(Archive&, T&)` found by ADL)
/// is serializable when it is default-constructible and movable; the members
/// it hands to the archive are checked when the hook is instantiated.
/// A C array of a serializable type is serializable (as a hook member or an
/// argument of encode()), but decode() cannot return one: use std::array.
template <class T>
concept serializable = detail::codec<std::remove_cv_t<T>>::supported;

/// What a serialize hook receives when its object is encoded: `ar(a, b, c)`
/// appends the members in order.
class writer_archive {
 public:
  /// True in the reader_archive only; lets a hook tell the directions apart.
  static constexpr bool is_reading = false;

  /// An archive appending to `out`.
  explicit writer_archive(byte_writer& out) noexcept : out_(&out) {}

  /// Encodes each value in order. A non-serializable type is a compile error.
  template <class... Ts>
  void operator()(const Ts&... values);

  /// The writer this archive appends to.
  [[nodiscard]] byte_writer& writer() const noexcept { return *out_; }

 private:
  byte_writer* out_;  // where the bytes go
};

/// What a serialize hook receives when its object is decoded: `ar(a, b, c)`
/// overwrites the members in order.
class reader_archive {
 public:
  /// True in the reader_archive only; lets a hook tell the directions apart.
  static constexpr bool is_reading = true;

  /// An archive reading from `in`.
  explicit reader_archive(byte_reader& in) noexcept : in_(&in) {}

  /// Decodes into each value in order. A non-serializable type is a compile error.
  /// Errors: decode_error, as decode().
  template <class... Ts>
  void operator()(Ts&... values);

  /// The reader this archive reads from.
  [[nodiscard]] byte_reader& reader() const noexcept { return *in_; }

 private:
  byte_reader* in_;  // where the bytes come from
};

/// Appends the encoding of `value` to `out`. A type that is not serializable
/// is a compile error whose first line says so.
/// Errors: coring::error for a std::variant that is valueless by exception;
/// std::bad_alloc.
template <class T>
void encode(byte_writer& out, const T& value);

/// Decodes one T from `in` and moves past its bytes.
/// Errors: decode_error when the bytes are too few or malformed (see
/// decode_error); `in` is then left somewhere inside the value. A container
/// length larger than the bytes left (times the smallest encoding of one
/// element) fails before anything is allocated. Elements that encode to no
/// bytes at all (std::tuple<>, std::monostate, a hook that writes nothing)
/// count as one byte in that check, so a container of more of them than
/// there are bytes after it cannot be decoded.
template <class T>
[[nodiscard]] T decode(byte_reader& in);

/// Encodes `values` one after another into a new string.
/// Errors: as encode().
template <class... Ts>
[[nodiscard]] std::string encode_all(const Ts&... values);

/// Decodes one value of each of Ts, in order, from exactly `bytes`.
/// Errors: decode_error as decode(), and when bytes are left over after the
/// last value.
template <class... Ts>
[[nodiscard]] std::tuple<Ts...> decode_all(std::string_view bytes);

}  // namespace coring

#include <coring/detail/serialize_impl.hpp>  // the codecs and the template bodies
