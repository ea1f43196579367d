#include <coring/detail/ring_operation.hpp>

#include <coring/error.hpp>

#include <liburing.h>

namespace coring::detail {

void ring_operation::start() {
  event_loop& loop = *loop_;
  const bool timed = timeout_.tv_sec >= 0;
  // The operation and its linked timeout must reach the kernel in the same
  // submission, or the link is cut.
  if (timed) loop_access::reserve_sqes(loop, 2);
  io_uring_sqe* sqe = loop_access::sqe_for(loop, *this);
  prep_(sqe, *this);
  if (timed) {
    sqe->flags |= IOSQE_IO_LINK;
    io_uring_sqe* link = loop_access::untracked_sqe(loop);
    io_uring_prep_link_timeout(link, reinterpret_cast<__kernel_timespec*>(&timeout_), 0);
  }
}

void ring_operation::set_timeout_ns(std::int64_t ns) noexcept {
  if (ns < 0) {
    timeout_.tv_sec = -1;
    timeout_.tv_nsec = 0;
  } else {
    timeout_.tv_sec = ns / 1'000'000'000;
    timeout_.tv_nsec = ns % 1'000'000'000;
  }
}

void ring_operation::fail(int res, const std::string& what) const {
  // result() has already turned a cancellation of ours into coring::cancelled,
  // so an ECANCELED left over on a timed operation is its deadline's work.
  if (res == -ECANCELED && timeout_.tv_sec >= 0) {
    const std::int64_t ms = timeout_.tv_sec * 1000 + timeout_.tv_nsec / 1'000'000;
    throw timeout_error(what + ": timed out after " + std::to_string(ms) + " ms");
  }
  throw io_error(-res, what);
}

void ring_operation::throw_cancelled() { throw cancelled{}; }

}  // namespace coring::detail
