#include <coring/net/detail/socket_operation.hpp>

#include <coring/error.hpp>
#include <coring/net/address.hpp>

#include <liburing.h>

#include <string>

namespace coring::net::detail {

socket_operation::socket_operation(prep_fn prep, std::chrono::nanoseconds timeout, step_fn step) noexcept
    : completion{&on_complete}, cancel_hook{&on_cancel}, prep_(prep), step_(step) {
  const std::int64_t ns = coring::detail::timeout_ns(timeout);
  if (ns >= 0) {
    timeout_.tv_sec = ns / 1'000'000'000;
    timeout_.tv_nsec = ns % 1'000'000'000;
  }
}

void socket_operation::submit() {
  event_loop& loop = *loop_;
  const bool timed = timeout_.tv_sec >= 0;
  // The operation and its linked timeout must reach the kernel in the same
  // submission, or the link is cut.
  if (timed) coring::detail::loop_access::reserve_sqes(loop, 2);
  io_uring_sqe* sqe = coring::detail::loop_access::sqe_for(loop, *this);
  prep_(sqe, *this);
  if (timed) {
    sqe->flags |= IOSQE_IO_LINK;
    io_uring_sqe* link = coring::detail::loop_access::untracked_sqe(loop);
    io_uring_prep_link_timeout(link, reinterpret_cast<__kernel_timespec*>(&timeout_), 0);
  }
}

bool socket_operation::resubmit() noexcept {
  try {
    submit();
    return true;
  } catch (...) {
    res_ = -EBUSY;
    return false;
  }
}

void socket_operation::on_complete(coring::detail::completion* c, int res, unsigned flags) noexcept {
  auto* self = static_cast<socket_operation*>(c);
  self->res_ = res;
  self->flags_ = flags;
  if (self->step_ && !self->step_(*self, res, flags)) return;  // submitted again
  if (self->node_ && self->node_->leaf == self) self->node_->leaf = nullptr;
  coring::detail::loop_access::schedule(*self->loop_, self->handle_);
}

void socket_operation::on_cancel(coring::detail::cancel_hook* c) noexcept {
  auto* self = static_cast<socket_operation*>(c);
  coring::detail::loop_access::submit_cancel(*self->loop_, *self);
}

int socket_operation::result() {
  if (res_ < 0 && coring::detail::consume_cancel(node_)) throw cancelled{};
  return res_;
}

void socket_operation::fail(int res, std::string_view verb, const address& peer) const {
  std::string what(verb);
  what += ' ';
  what += peer.to_string();
  fail(res, what);
}

void socket_operation::fail(int res, std::string_view what) const {
  // result() has already turned a cancellation of ours into coring::cancelled,
  // so an ECANCELED left over on a timed operation is its deadline's work.
  if (res == -ECANCELED && timeout_.tv_sec >= 0) {
    const std::int64_t ms = timeout_.tv_sec * 1000 + timeout_.tv_nsec / 1'000'000;
    throw timeout_error(std::string(what) + ": timed out after " + std::to_string(ms) + " ms");
  }
  throw io_error(-res, std::string(what));
}

}  // namespace coring::net::detail
