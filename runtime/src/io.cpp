#include <coring/io.hpp>

#include <liburing.h>
#include <poll.h>

#include <string>

namespace coring {

read_operation::read_operation(int fd, std::span<std::byte> buffer, std::uint64_t offset,
                               std::chrono::nanoseconds timeout) noexcept
    : ring_operation(&prep, timeout), fd_(fd), buffer_(buffer), offset_(offset) {}

void read_operation::prep(io_uring_sqe* sqe, const detail::ring_operation& op) noexcept {
  auto& self = static_cast<const read_operation&>(op);
  io_uring_prep_read(sqe, self.fd_, self.buffer_.data(), static_cast<unsigned>(self.buffer_.size()), self.offset_);
}

std::size_t read_operation::await_resume() {
  int r = result();
  if (r < 0) fail(r, "read from fd " + std::to_string(fd_));
  return static_cast<std::size_t>(r);
}

write_operation::write_operation(int fd, std::span<const std::byte> data, std::uint64_t offset,
                                 std::chrono::nanoseconds timeout) noexcept
    : ring_operation(&prep, timeout), fd_(fd), data_(data), offset_(offset) {}

void write_operation::prep(io_uring_sqe* sqe, const detail::ring_operation& op) noexcept {
  auto& self = static_cast<const write_operation&>(op);
  io_uring_prep_write(sqe, self.fd_, self.data_.data(), static_cast<unsigned>(self.data_.size()), self.offset_);
}

std::size_t write_operation::await_resume() {
  int r = result();
  if (r < 0) fail(r, "write to fd " + std::to_string(fd_));
  return static_cast<std::size_t>(r);
}

poll_operation::poll_operation(int fd, unsigned events, std::chrono::nanoseconds timeout) noexcept
    : ring_operation(&prep, timeout), fd_(fd), events_(events) {}

void poll_operation::prep(io_uring_sqe* sqe, const detail::ring_operation& op) noexcept {
  auto& self = static_cast<const poll_operation&>(op);
  io_uring_prep_poll_add(sqe, self.fd_, self.events_);
}

unsigned poll_operation::await_resume() {
  int r = result();
  if (r < 0) fail(r, "poll of fd " + std::to_string(fd_));
  return static_cast<unsigned>(r);
}

void read_operation::describe(const detail::ring_operation& op, std::string& out) {
  out = "read on fd " + std::to_string(static_cast<const read_operation&>(op).fd_);
}

void write_operation::describe(const detail::ring_operation& op, std::string& out) {
  out = "write on fd " + std::to_string(static_cast<const write_operation&>(op).fd_);
}

void poll_operation::describe(const detail::ring_operation& op, std::string& out) {
  const auto& self = static_cast<const poll_operation&>(op);
  out = "wait until fd " + std::to_string(self.fd_) + ((self.events_ & POLLOUT) ? " is writable" : " is readable");
}

poll_operation wait_readable(int fd, const io_options& opts) noexcept { return {fd, POLLIN, opts.timeout}; }
poll_operation wait_writable(int fd, const io_options& opts) noexcept { return {fd, POLLOUT, opts.timeout}; }

}  // namespace coring
