#include "process_pool_ring.hpp"

#include <coring/error.hpp>

#include <poll.h>

#include <cerrno>

#include "process_pool_wire.hpp"

namespace coring::detail {

ring_waiter::ring_waiter() {
  int r = io_uring_queue_init(64, &ring_, 0);
  if (r < 0) throw io_error(-r, "process_pool: creating the manager's io_uring");
}

ring_waiter::~ring_waiter() { io_uring_queue_exit(&ring_); }

void ring_waiter::watch(int fd, bool out) {
  if (fd < 0) return;
  slot& s = slots_[key(fd, out)];
  if (s.armed) return;
  io_uring_sqe* sqe = sqe_or_flush();
  io_uring_prep_poll_add(sqe, fd, out ? POLLOUT : POLLIN);
  io_uring_sqe_set_data64(sqe, key(fd, out));
  s.armed = true;
}

void ring_waiter::wait() {
  int r = io_uring_submit_and_wait(&ring_, 1);
  if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) return;
  reap();
}

bool ring_waiter::take_ready(int fd, bool out) {
  auto it = slots_.find(key(fd, out));
  if (it == slots_.end() || !it->second.ready) return false;
  it->second.ready = false;
  return true;
}

void ring_waiter::remove(int fd, bool out) noexcept {
  auto it = slots_.find(key(fd, out));
  if (it == slots_.end()) return;
  if (it->second.armed) {
    if (io_uring_sqe* sqe = sqe_or_flush()) {
      io_uring_prep_poll_remove(sqe, key(fd, out));
      io_uring_sqe_set_data64(sqe, 0);
      while (slots_[key(fd, out)].armed) {
        if (io_uring_submit_and_wait(&ring_, 1) < 0) break;
        reap();
      }
    }
  }
  slots_.erase(key(fd, out));
}

void ring_waiter::close(int& fd) noexcept {
  if (fd < 0) return;
  remove(fd, false);
  remove(fd, true);
  close_fd(fd);
}

io_uring_sqe* ring_waiter::sqe_or_flush() noexcept {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  if (!sqe) {
    io_uring_submit(&ring_);
    sqe = io_uring_get_sqe(&ring_);
  }
  return sqe;
}

void ring_waiter::reap() noexcept {
  unsigned head, seen = 0;
  io_uring_cqe* cqe;
  io_uring_for_each_cqe(&ring_, head, cqe) {
    ++seen;
    std::uint64_t ud = cqe->user_data;
    if (ud == 0) continue;  // a POLL_REMOVE's own completion
    auto it = slots_.find(ud);
    if (it == slots_.end()) continue;
    it->second.armed = false;
    if (cqe->res != -ECANCELED) it->second.ready = true;
  }
  io_uring_cq_advance(&ring_, seen);
}

}  // namespace coring::detail
