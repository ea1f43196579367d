#pragma once
// net::buffered_reader: lines, delimited records and exact counts over any
// net::byte_stream (TCP, Unix, and later TLS and pipes), with limits that the
// caller must give: a peer can never make it grow past them.
//
//   net::buffered_reader in(conn);
//   while (auto line = co_await in.read_line(8192)) {        // nullopt at end of stream
//     ...                                                      // *line has no "\n" / "\r\n"
//   }
//   std::string_view head = co_await in.read_until("\r\n\r\n", 16384);  // limit_error past 16 KiB
//   std::string_view body = co_await in.read_exactly(length);
//
// Views returned point into the reader's buffer and stay valid until the
// next call on the reader. End of stream is a value: an empty view (or
// nullopt) when nothing was left, or the bytes that were left when the
// delimiter never came.
//
// Memory: over a stream that lends buffers (one a listener accepted), the
// reader reads into the lent buffer and keeps no buffer of its own between
// messages, so an idle connection pins no receive buffer; it copies only the
// tail of a message that spans two reads. Over other streams it keeps one
// buffer, grown on demand up to the largest limit asked for.

#include <coring/net/byte_stream.hpp>
#include <coring/net/error.hpp>
#include <coring/net/lent_buffer.hpp>
#include <coring/task.hpp>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

namespace coring::net {

/// Settings of a buffered_reader.
struct reader_options {
  /// The first size of the reader's own buffer (it grows to what a call's limit needs).
  std::size_t buffer_size = 16384;
  /// Applied to every read of the stream (a timeout per read).
  io_options io{};
};

template <byte_stream Stream>
class buffered_reader {
 public:
  /// Reads from `stream`, which must outlive the reader.
  explicit buffered_reader(Stream& stream, reader_options o = {}) noexcept : stream_(&stream), options_(o) {}
  buffered_reader(const buffered_reader&) = delete;
  buffered_reader& operator=(const buffered_reader&) = delete;

  /// The bytes up to and including the first `delimiter`, at most `max` of
  /// them (delimiter included). At end of stream: what was left (without the
  /// delimiter; empty if nothing was).
  /// **Errors:** net::limit_error "read_until: no delimiter within the first
  /// <max> bytes" (the bytes stay buffered); the stream's errors.
  /// **Cancellation:** the stream's read is cancelled; buffered bytes stay for the next call.
  /// **Requires:** delimiter is not empty.
  [[nodiscard]] task<std::string_view> read_until(std::string_view delimiter, std::size_t max);
  /// One line of at most `max` bytes (with its "\n"), returned without its
  /// "\n" or "\r\n"; nullopt at end of stream. A last line without "\n" is
  /// returned as it is. **Errors/Cancellation:** as read_until.
  [[nodiscard]] task<std::optional<std::string_view>> read_line(std::size_t max);
  /// Exactly `n` bytes, fewer only at end of stream. **Errors/Cancellation:** as read_until.
  [[nodiscard]] task<std::string_view> read_exactly(std::size_t n);
  /// What is buffered, or what one read of the stream gives; empty at end of stream.
  [[nodiscard]] task<std::string_view> read_some();
  /// Copies buffered bytes into `out`, or reads into it directly when none are
  /// buffered; 0 at end of stream. (A buffered_reader is readable like a stream.)
  [[nodiscard]] task<std::size_t> read_some(std::span<std::byte> out);

  /// Bytes buffered and not yet returned.
  [[nodiscard]] std::size_t buffered() const noexcept { return end_ - begin_; }
  /// The bytes buffered and not yet returned, without consuming them.
  [[nodiscard]] std::string_view peek() const noexcept {
    return {reinterpret_cast<const char*>(data_) + begin_, end_ - begin_};
  }
  /// Bytes of memory the reader holds now (its own buffer and a lent one).
  [[nodiscard]] std::size_t memory_held() const noexcept { return capacity_ + lent_.size(); }
  /// The stream it reads from.
  [[nodiscard]] Stream& stream() noexcept { return *stream_; }

 private:
  /// Appends at least one byte to the buffer (room for up to `want` bytes
  /// in all); false at end of stream.
  task<bool> fill(std::size_t want);
  std::string_view take(std::size_t n) noexcept {
    std::string_view v(reinterpret_cast<const char*>(data_) + begin_, n);
    begin_ += n;
    return v;
  }
  void ensure_own(std::size_t want);

  Stream* stream_;                     // where bytes come from
  reader_options options_;             // as constructed
  std::unique_ptr<std::byte[]> own_;   // our buffer, or null
  std::size_t capacity_ = 0;           // its size
  lent_buffer lent_;                   // a buffer the stream lent, holding the current bytes, or empty
  std::byte* data_ = nullptr;          // own_ or lent_'s bytes: whichever holds the buffered bytes
  std::size_t begin_ = 0;              // first unread byte in data_
  std::size_t end_ = 0;                // one past the last buffered byte
};

// ---------------------------------------------------------------- implementation

template <byte_stream Stream>
void buffered_reader<Stream>::ensure_own(std::size_t want) {
  const std::size_t have = end_ - begin_;
  if (own_ && data_ == own_.get()) {
    if (end_ < capacity_) return;
    if (begin_ > 0) {  // full at the back: slide the bytes to the front
      std::memmove(own_.get(), own_.get() + begin_, have);
      begin_ = 0;
      end_ = have;
      return;
    }
  }
  // A buffer of our own with room for more: double, but past buffer_size
  // never beyond what the caller may need (its limit).
  std::size_t cap = capacity_ ? capacity_ * 2 : options_.buffer_size;
  if (cap > options_.buffer_size) cap = std::min(cap, std::max(want, options_.buffer_size));
  cap = std::max(cap, have + 1);
  auto fresh = std::make_unique<std::byte[]>(cap);
  if (have) std::memcpy(fresh.get(), data_ + begin_, have);
  own_ = std::move(fresh);
  capacity_ = cap;
  data_ = own_.get();
  begin_ = 0;
  end_ = have;
  lent_.reset();  // its bytes, if it held them, are copied
}

template <byte_stream Stream>
task<bool> buffered_reader<Stream>::fill(std::size_t want) {
  if constexpr (requires(Stream& s) {
                  { s.lends_buffers() } -> std::convertible_to<bool>;
                  s.read_lent(options_.io);
                }) {
    if (begin_ == end_ && stream_->lends_buffers()) {
      // Nothing buffered: drop our buffers and let the kernel pick one when
      // data arrives, so that a reader waiting here holds no memory.
      lent_.reset();
      own_.reset();
      capacity_ = 0;
      data_ = nullptr;
      begin_ = end_ = 0;
      lent_ = co_await stream_->read_lent(options_.io);
      data_ = lent_.data();
      end_ = lent_.size();
      co_return end_ != 0;
    }
  }
  ensure_own(want);
  std::size_t n = co_await stream_->read_some(std::span<std::byte>(own_.get() + end_, capacity_ - end_), options_.io);
  end_ += n;
  co_return n != 0;
}

template <byte_stream Stream>
task<std::string_view> buffered_reader<Stream>::read_until(std::string_view delimiter, std::size_t max) {
  CORING_ASSERT(!delimiter.empty(), "read_until needs a delimiter");
  std::size_t scanned = 0;  // bytes already searched (minus an overlap for a split delimiter)
  for (;;) {
    std::string_view have = peek();
    std::size_t at = have.find(delimiter, scanned);
    if (at != std::string_view::npos && at + delimiter.size() <= max) co_return take(at + delimiter.size());
    if (at != std::string_view::npos || have.size() >= max) {
      throw limit_error("read_until: no delimiter within the first " + std::to_string(max) + " bytes");
    }
    scanned = have.size() >= delimiter.size() ? have.size() - delimiter.size() + 1 : 0;
    const bool more = co_await fill(max);
    if (!more) break;
  }
  co_return take(buffered());  // end of stream: what was left
}

template <byte_stream Stream>
task<std::optional<std::string_view>> buffered_reader<Stream>::read_line(std::size_t max) {
  std::string_view line = co_await read_until("\n", max);
  if (line.empty()) co_return std::nullopt;
  if (line.ends_with('\n')) line.remove_suffix(1);
  if (line.ends_with('\r')) line.remove_suffix(1);
  co_return line;
}

template <byte_stream Stream>
task<std::string_view> buffered_reader<Stream>::read_exactly(std::size_t n) {
  // (g++ 12 miscompiles `if (!co_await ...) co_return` in a loop here: SIGILL.)
  while (buffered() < n) {
    const bool more = co_await fill(n);
    if (!more) break;
  }
  co_return take(std::min(n, buffered()));
}

template <byte_stream Stream>
task<std::string_view> buffered_reader<Stream>::read_some() {
  if (buffered() == 0) co_await fill(options_.buffer_size);
  co_return take(buffered());
}

template <byte_stream Stream>
task<std::size_t> buffered_reader<Stream>::read_some(std::span<std::byte> out) {
  if (buffered() == 0 && !lent_.empty()) lent_.reset();
  if (buffered() == 0) co_return co_await stream_->read_some(out, options_.io);
  const std::size_t n = std::min(out.size(), buffered());
  std::memcpy(out.data(), data_ + begin_, n);
  begin_ += n;
  co_return n;
}

}  // namespace coring::net
