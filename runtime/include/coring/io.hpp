#pragma once
// I/O on file descriptors through the ring: pipes, files, eventfds, sockets.
//
//   std::array<std::byte, 4096> buf;
//   std::size_t n = co_await coring::read_some(fd, buf);   // 0 = end of stream
//   co_await coring::write_some(fd, std::as_bytes(std::span(text)));
//   co_await coring::wait_readable(fd);
//
// Each awaiter is one SQE whose user_data is the awaiter itself, living in the
// awaiting coroutine's frame: no allocation per operation. A timeout is a
// kernel timeout linked to that SQE (no timer of ours, no helper task):
//
//   std::size_t n = co_await coring::read_some(fd, buf, {.timeout = 2s});  // or timeout_error

#include <coring/detail/ring_operation.hpp>
#include <coring/error.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace coring {

/// Settings of one read_some / write_some / wait_readable / wait_writable.
struct io_options {
  /// The kernel cancels the operation when this has passed since its
  /// submission (IORING_OP_LINK_TIMEOUT) and it ends with coring::timeout_error.
  /// max() (the default) means no limit.
  std::chrono::nanoseconds timeout = std::chrono::nanoseconds::max();
  /// File offset; the default reads/writes at the current position (pipes, sockets).
  std::uint64_t offset = ~std::uint64_t{0};
};

/// Awaiter of read_some(): gives the number of bytes read (0 at end of stream).
class read_operation : public detail::ring_operation {
 public:
  read_operation(int fd, std::span<std::byte> buffer, std::uint64_t offset,
                 std::chrono::nanoseconds timeout = std::chrono::nanoseconds::max()) noexcept;
  /// **Errors:** io_error naming the fd; timeout_error if a with_timeout() deadline passed.
  std::size_t await_resume();

 private:
  static void prep(::io_uring_sqe* sqe, const detail::ring_operation& op) noexcept;
  static void describe(const detail::ring_operation& op, std::string& out);
  static inline const bool described_ = register_description(&prep, &describe);
  int fd_;                       // where from
  std::span<std::byte> buffer_;  // where to; owned by the caller, kept alive by the awaiting frame
  std::uint64_t offset_;         // file offset, or ~0 for "current position" (pipes, sockets)
};

/// Awaiter of write_some(): gives the number of bytes written.
class write_operation : public detail::ring_operation {
 public:
  write_operation(int fd, std::span<const std::byte> data, std::uint64_t offset,
                  std::chrono::nanoseconds timeout = std::chrono::nanoseconds::max()) noexcept;
  /// **Errors:** io_error naming the fd (EPIPE is an error, never a signal).
  std::size_t await_resume();

 private:
  static void prep(::io_uring_sqe* sqe, const detail::ring_operation& op) noexcept;
  static void describe(const detail::ring_operation& op, std::string& out);
  static inline const bool described_ = register_description(&prep, &describe);
  int fd_;                           // where to
  std::span<const std::byte> data_;  // what; owned by the caller
  std::uint64_t offset_;             // file offset, or ~0 for "current position"
};

/// Awaiter of wait_readable() / wait_writable(): gives the poll revents.
class poll_operation : public detail::ring_operation {
 public:
  poll_operation(int fd, unsigned events, std::chrono::nanoseconds timeout = std::chrono::nanoseconds::max()) noexcept;
  /// **Errors:** io_error naming the fd.
  unsigned await_resume();

 private:
  static void prep(::io_uring_sqe* sqe, const detail::ring_operation& op) noexcept;
  static void describe(const detail::ring_operation& op, std::string& out);
  static inline const bool described_ = register_description(&prep, &describe);
  int fd_;           // what to watch
  unsigned events_;  // POLLIN / POLLOUT mask
};

/// Reads at most buffer.size() bytes from `fd` (at `offset` for files).
/// **Cancellation:** the read is cancelled in the ring (nothing is consumed
/// if it had not completed) and the task gets coring::cancelled.
/// **Errors:** io_error("read from fd N: ...").
/// **Requires:** `buffer` outlives the operation (it does when it is in the awaiting frame).
[[nodiscard]] inline read_operation read_some(int fd, std::span<std::byte> buffer,
                                              std::uint64_t offset = ~std::uint64_t{0}) noexcept {
  return {fd, buffer, offset};
}

/// read_some with a timeout and/or an offset (`{.timeout = 2s}`).
/// **Errors:** as read_some; timeout_error("read from fd N: timed out after T ms").
[[nodiscard]] inline read_operation read_some(int fd, std::span<std::byte> buffer, const io_options& opts) noexcept {
  return {fd, buffer, opts.offset, opts.timeout};
}

/// Writes at most data.size() bytes to `fd`. **Cancellation/Errors:** as read_some.
[[nodiscard]] inline write_operation write_some(int fd, std::span<const std::byte> data,
                                                std::uint64_t offset = ~std::uint64_t{0}) noexcept {
  return {fd, data, offset};
}

/// write_some with a timeout and/or an offset. **Errors:** as read_some with options.
[[nodiscard]] inline write_operation write_some(int fd, std::span<const std::byte> data,
                                                const io_options& opts) noexcept {
  return {fd, data, opts.offset, opts.timeout};
}

/// Waits until `fd` is readable (or has hung up). **Cancellation:** the poll
/// is removed. **Errors:** io_error; timeout_error with `{.timeout}` (the offset is ignored).
[[nodiscard]] poll_operation wait_readable(int fd, const io_options& opts = {}) noexcept;
/// Waits until `fd` is writable. **Cancellation/Errors:** as wait_readable.
[[nodiscard]] poll_operation wait_writable(int fd, const io_options& opts = {}) noexcept;

}  // namespace coring
