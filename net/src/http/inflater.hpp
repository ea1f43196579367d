#pragma once
// inflater: a gzip or deflate body decoded by zlib, piece by piece, into a
// buffer of its own. Private to coring::net.
//
//   inflater z(inflater::format::gzip);
//   z.input(piece);                                    // a view the caller keeps alive
//   while (z.has_input()) { auto out = z.output(); ... }  // out: a view into z's buffer (may be empty)
//   z.finished();                                      // the stream's end was seen
//
// zlib calls nothing of ours, so no exception can cross its frames; its
// errors come back as codes and are reported by output() as a message.

#include <coring/http/client.hpp>

#include <zlib.h>

#include <cstddef>
#include <memory>
#include <span>
#include <string>

namespace coring::http::detail {

class inflater {
 public:
  static constexpr std::size_t buffer_size = 64 * 1024;  // output per call
  enum class format : unsigned char { gzip, deflate };

  explicit inflater(format f);
  ~inflater();
  inflater(const inflater&) = delete;
  inflater& operator=(const inflater&) = delete;

  /// The next compressed bytes (valid until has_input() is false).
  void input(std::span<const std::byte> in) noexcept;
  /// True while input is left to decode, or decoded bytes did not fit the last output().
  [[nodiscard]] bool has_input() const noexcept { return z_.avail_in != 0 || full_; }
  /// Decodes as much as fits the buffer; empty when zlib needs more input.
  /// On bad data it returns empty and error() says why.
  [[nodiscard]] std::span<const std::byte> output() noexcept;
  /// Why decoding failed (empty while it has not).
  [[nodiscard]] const std::string& error() const noexcept { return error_; }
  /// True once the compressed stream's end was seen (and nothing is pending).
  [[nodiscard]] bool finished() const noexcept { return ended_ && !has_input(); }

 private:
  z_stream z_{};
  std::unique_ptr<std::byte[]> out_;  // the decoded bytes of the last output()
  std::string error_;                 // why decoding failed
  format format_;
  bool started_ = false;              // inflateInit2 was called (on the first byte, for deflate's sniffing)
  bool ended_ = false;                // Z_STREAM_END was seen
  bool full_ = false;                 // the last output() filled the buffer: zlib may hold more
};

}  // namespace coring::http::detail
