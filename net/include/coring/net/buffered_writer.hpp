#pragma once
// net::buffered_writer: gathers small writes into one buffer and sends it
// when full or on flush(), over any net::byte_stream.
//
//   net::buffered_writer out(conn);
//   co_await out.write("HTTP/1.1 200 OK\r\n");
//   co_await out.write(headers);
//   co_await out.write(body);        // a large write goes straight out (after what is buffered)
//   co_await out.flush();            // nothing is sent until here unless the buffer filled
//
// The buffer is allocated at the first write and released by flush(), so an
// idle connection's writer holds no memory.

#include <coring/net/byte_stream.hpp>
#include <coring/task.hpp>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <memory>
#include <span>
#include <string_view>

namespace coring::net {

/// Settings of a buffered_writer.
struct writer_options {
  /// Bytes gathered before they are sent; writes at least this large bypass the buffer.
  std::size_t buffer_size = 16384;
  /// Applied to every write of the stream.
  io_options io{};
};

template <byte_stream Stream>
class buffered_writer {
 public:
  /// Writes to `stream`, which must outlive the writer.
  explicit buffered_writer(Stream& stream, writer_options o = {}) noexcept : stream_(&stream), options_(o) {}
  buffered_writer(const buffered_writer&) = delete;
  buffered_writer& operator=(const buffered_writer&) = delete;

  /// Appends `data`; sends the buffer first if `data` does not fit, and sends
  /// `data` directly if it is at least buffer_size.
  /// **Cancellation:** the stream's write is cancelled; what was buffered and
  /// not sent stays buffered (some of it may have been sent).
  /// **Errors:** the stream's (io_error "write to <peer>: Broken pipe", timeout_error).
  [[nodiscard]] task<> write(std::span<const std::byte> data);
  [[nodiscard]] task<> write(std::string_view text) { return write(std::as_bytes(std::span(text.data(), text.size()))); }
  /// Sends everything buffered and releases the buffer. **Cancellation/Errors:** as write.
  [[nodiscard]] task<> flush();

  /// Bytes waiting for a flush.
  [[nodiscard]] std::size_t buffered() const noexcept { return size_; }
  /// The stream it writes to.
  [[nodiscard]] Stream& stream() noexcept { return *stream_; }

 private:
  task<> send(std::span<const std::byte> data);

  Stream* stream_;                     // where bytes go
  writer_options options_;             // as constructed
  std::unique_ptr<std::byte[]> buf_;   // the gathered bytes (null while nothing is buffered)
  std::size_t size_ = 0;               // how many
};

// ---------------------------------------------------------------- implementation

template <byte_stream Stream>
task<> buffered_writer<Stream>::send(std::span<const std::byte> data) {
  if constexpr (requires(Stream& s) { s.write_all(data, options_.io); }) {
    co_await stream_->write_all(data, options_.io);  // one operation for all of it
  } else {
    while (!data.empty()) data = data.subspan(co_await stream_->write_some(data, options_.io));
  }
}

template <byte_stream Stream>
task<> buffered_writer<Stream>::write(std::span<const std::byte> data) {
  if (size_ + data.size() > options_.buffer_size && size_ != 0) co_await flush();
  if (data.size() >= options_.buffer_size) {
    co_await send(data);
    co_return;
  }
  if (!buf_) buf_ = std::make_unique<std::byte[]>(options_.buffer_size);
  std::memcpy(buf_.get() + size_, data.data(), data.size());
  size_ += data.size();
}

template <byte_stream Stream>
task<> buffered_writer<Stream>::flush() {
  if (size_ != 0) {
    co_await send(std::span<const std::byte>(buf_.get(), size_));
    size_ = 0;
  }
  buf_.reset();
}

}  // namespace coring::net
