#include <coring/net/socket_stream.hpp>

#include "buffer_pool.hpp"

#include <coring/error.hpp>

#include <liburing.h>
#include <sys/socket.h>
#include <unistd.h>

#include <new>

namespace coring::net {

namespace {
// A read buffer of our own, or null. (Plain new[] in a try rather than
// new(std::nothrow): lent_buffer frees it with delete[], and a program that
// replaces only the throwing operator new must see matching pairs.)
std::byte* own_buffer(std::size_t n) noexcept {
  try {
    return new std::byte[n];
  } catch (...) {
    return nullptr;
  }
}
}  // namespace

namespace detail {
void retain(buffer_pool* pool) noexcept { pool->retain(); }
void release(buffer_pool* pool) noexcept { pool->release(); }
}  // namespace detail

// ---------------------------------------------------------------- read_some

receive_operation::receive_operation(const socket_stream& s, std::span<std::byte> buffer, const io_options& o) noexcept
    : socket_operation(&prep, o.timeout), stream_(&s), buffer_(buffer) {}

void receive_operation::prep(io_uring_sqe* sqe, detail::socket_operation& op) noexcept {
  auto& self = static_cast<receive_operation&>(op);
  io_uring_prep_recv(sqe, self.stream_->native_handle(), self.buffer_.data(), self.buffer_.size(), 0);
}

std::size_t receive_operation::await_resume() {
  int r = result();
  if (r < 0) fail(r, "read from", stream_->peer());
  return static_cast<std::size_t>(r);
}

// ---------------------------------------------------------------- write_some / write_all

send_operation::send_operation(const socket_stream& s, std::span<const std::byte> data, const io_options& o,
                               bool all) noexcept
    : socket_operation(&prep, o.timeout, &step), stream_(&s), data_(data), all_(all) {}

void send_operation::prep(io_uring_sqe* sqe, detail::socket_operation& op) noexcept {
  auto& self = static_cast<send_operation&>(op);
  // MSG_WAITALL on a stream socket: io_uring retries partial sends itself
  // until all is sent (Linux 5.19+), so write_all is usually one CQE.
  io_uring_prep_send(sqe, self.stream_->native_handle(), self.data_.data() + self.done_, self.data_.size() - self.done_,
                     MSG_NOSIGNAL | (self.all_ ? MSG_WAITALL : 0));
}

bool send_operation::step(detail::socket_operation& op, int res, unsigned) noexcept {
  auto& self = static_cast<send_operation&>(op);
  if (!self.all_ || res <= 0) return true;
  self.done_ += static_cast<std::size_t>(res);
  if (self.done_ >= self.data_.size() || self.cancel_pending()) return true;
  return !self.resubmit();
}

std::size_t send_operation::await_resume() {
  int r = result();
  if (r < 0) fail(r, "write to", stream_->peer());
  if (!all_) return static_cast<std::size_t>(r);
  // Cancelled after part of the data went out: the cancellation is the result.
  if (done_ < data_.size() && take_cancel()) throw cancelled{};
  return done_;
}

// ---------------------------------------------------------------- writev_all

send_vector_operation::send_vector_operation(const socket_stream& s, std::span<const std::span<const std::byte>> parts,
                                             const io_options& o) noexcept
    : socket_operation(&prep, o.timeout, &step), stream_(&s), parts_(parts) {
  fill();
}

void send_vector_operation::fill() noexcept {
  std::size_t n = 0;
  std::size_t off = offset_;
  for (std::size_t i = index_; i < parts_.size() && n < batch; ++i, off = 0) {
    if (parts_[i].size() == off) continue;
    iov_[n].iov_base = const_cast<std::byte*>(parts_[i].data() + off);
    iov_[n].iov_len = parts_[i].size() - off;
    ++n;
  }
  msg_ = {};
  msg_.msg_iov = iov_;
  msg_.msg_iovlen = n;
}

void send_vector_operation::prep(io_uring_sqe* sqe, detail::socket_operation& op) noexcept {
  auto& self = static_cast<send_vector_operation&>(op);
  io_uring_prep_sendmsg(sqe, self.stream_->native_handle(), &self.msg_, MSG_NOSIGNAL | MSG_WAITALL);
}

bool send_vector_operation::step(detail::socket_operation& op, int res, unsigned) noexcept {
  auto& self = static_cast<send_vector_operation&>(op);
  if (res <= 0) return true;
  self.total_ += static_cast<std::size_t>(res);
  auto left = static_cast<std::size_t>(res);
  while (self.index_ < self.parts_.size()) {
    std::size_t rest = self.parts_[self.index_].size() - self.offset_;
    if (left < rest) {
      self.offset_ += left;
      break;
    }
    left -= rest;
    ++self.index_;
    self.offset_ = 0;
  }
  // Skip empty parts so that "done" is simply index_ == size().
  while (self.index_ < self.parts_.size() && self.parts_[self.index_].size() == self.offset_) {
    ++self.index_;
    self.offset_ = 0;
  }
  if (self.index_ == self.parts_.size() || self.cancel_pending()) return true;
  self.fill();
  return !self.resubmit();
}

std::size_t send_vector_operation::await_resume() {
  int r = result();
  if (r < 0) fail(r, "write to", stream_->peer());
  if (index_ < parts_.size() && take_cancel()) throw cancelled{};
  return total_;
}

// ---------------------------------------------------------------- shutdown_write

shutdown_operation::shutdown_operation(const socket_stream& s, const io_options& o) noexcept
    : socket_operation(&prep, o.timeout), stream_(&s) {}

void shutdown_operation::prep(io_uring_sqe* sqe, detail::socket_operation& op) noexcept {
  auto& self = static_cast<shutdown_operation&>(op);
  io_uring_prep_shutdown(sqe, self.stream_->native_handle(), SHUT_WR);
}

void shutdown_operation::await_resume() {
  int r = result();
  if (r < 0) fail(r, "shut down writing to", stream_->peer());
}

// ---------------------------------------------------------------- read_lent

lent_read_operation::lent_read_operation(const socket_stream& s, const io_options& o) noexcept
    : socket_operation(&prep, o.timeout, &step), stream_(&s) {
  if (!s.pool()) {
    own_ = own_buffer(own_size);
    no_memory_ = own_ == nullptr;
  }
}

lent_read_operation::~lent_read_operation() { delete[] own_; }

void lent_read_operation::prep(io_uring_sqe* sqe, detail::socket_operation& op) noexcept {
  auto& self = static_cast<lent_read_operation&>(op);
  const int fd = self.stream_->native_handle();
  if (self.no_memory_) {
    io_uring_prep_nop(sqe);
  } else if (self.own_) {
    io_uring_prep_recv(sqe, fd, self.own_, own_size, 0);
  } else {
    detail::buffer_pool* pool = self.stream_->pool();
    io_uring_prep_recv(sqe, fd, nullptr, pool->buffer_size(), 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = pool->group();
  }
}

bool lent_read_operation::step(detail::socket_operation& op, int res, unsigned flags) noexcept {
  auto& self = static_cast<lent_read_operation&>(op);
  if (flags & IORING_CQE_F_BUFFER) self.stream_->pool()->taken();
  if (res != -ENOBUFS || self.own_ || self.cancel_pending()) return true;
  // The pool's ring is empty: put more buffers in it, or, every buffer
  // lent out at the pool's limit, read into one of our own.
  if (!self.stream_->pool()->refill()) {
    self.own_ = own_buffer(own_size);
    if (!self.own_) return true;
  }
  return !self.resubmit();
}

lent_buffer lent_read_operation::await_resume() {
  if (no_memory_) throw std::bad_alloc();
  int r = result();
  const unsigned flags = cqe_flags();
  if (r >= 0 && (flags & IORING_CQE_F_BUFFER)) {
    detail::buffer_pool* pool = stream_->pool();
    auto id = static_cast<std::uint16_t>(flags >> IORING_CQE_BUFFER_SHIFT);
    if (r == 0) {
      pool->recycle(id);
      return {};
    }
    pool->retain();
    return lent_buffer(pool, id, pool->data(id), static_cast<std::size_t>(r));
  }
  if (r < 0) fail(r, "read from", stream_->peer());
  if (r == 0 || !own_) return {};
  return lent_buffer(std::exchange(own_, nullptr), static_cast<std::size_t>(r));
}

// ---------------------------------------------------------------- socket_stream

address socket_stream::local_address() const {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len) != 0)
    throw io_error(errno, "getsockname of the stream to " + peer_.to_string());
  return address::from_native(reinterpret_cast<sockaddr*>(&ss), len);
}

int socket_stream::release() noexcept {
  if (pool_) detail::release(std::exchange(pool_, nullptr));
  return std::exchange(fd_, -1);
}

void socket_stream::reset() noexcept {
  if (fd_ >= 0) ::close(std::exchange(fd_, -1));
  if (pool_) detail::release(std::exchange(pool_, nullptr));
}

}  // namespace coring::net
