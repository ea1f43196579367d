#include <coring/detail/ring_operation.hpp>

#include <coring/error.hpp>

#include <liburing.h>

#include <mutex>
#include <utility>
#include <vector>

namespace coring::detail {

void ring_operation::start() {
  event_loop& loop = *loop_;
  // A deadline scope's deadline, if it comes before our own. The timespec
  // lives in the scope, which outlives this operation (it waits for its body,
  // which is suspended here); the kernel reads it at submission.
  const kernel_timespec* scope_deadline = nullptr;
  if (open_deadline_scopes != 0 && node_) {
    const std::int64_t own_ns = timeout_.tv_sec < 0 ? no_deadline : timeout_.tv_sec * 1'000'000'000 + timeout_.tv_nsec;
    scope_deadline = scope_deadline_for(node_, own_ns);
  }
  scope_timed_ = scope_deadline != nullptr;
  const bool timed = scope_timed_ || timeout_.tv_sec >= 0;
  // The operation and its linked timeout must reach the kernel in the same
  // submission, or the link is cut.
  if (timed) loop_access::reserve_sqes(loop, 2);
  io_uring_sqe* sqe = loop_access::sqe_for(loop, *this);
  prep_(sqe, *this);
  if (timed) {
    sqe->flags |= IOSQE_IO_LINK;
    io_uring_sqe* link = loop_access::untracked_sqe(loop);
    if (scope_deadline) {
      // CLOCK_MONOTONIC (the default clock) is the steady clock's.
      io_uring_prep_link_timeout(link, reinterpret_cast<__kernel_timespec*>(const_cast<kernel_timespec*>(scope_deadline)),
                                 IORING_TIMEOUT_ABS);
    } else {
      io_uring_prep_link_timeout(link, reinterpret_cast<__kernel_timespec*>(&timeout_), 0);
    }
  }
}

// The scope's linked timeout ended us and our task was not cancelled: either
// the deadline passed (expire the scope: that cancels our task, and result()
// delivers it), or the scope was moved later after we were submitted (go on,
// with a fresh linked timeout).
bool ring_operation::resubmit_after_scope_timeout() noexcept {
  if (!node_ || node_->cancel_requested) return false;
  if (scope_deadline_passed(node_)) return false;
  try {
    start();
  } catch (...) {
    res_ = -EBUSY;  // no SQE to go on with: fail as a full queue does
    scope_timed_ = false;
    return false;
  }
  node_->leaf = this;
  return true;
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
  if (res == -ECANCELED && scope_timed_) {
    // A scope's deadline whose cancellation did not reach our task (it
    // always should: the scope cancels its body, which is our task).
    throw timeout_error(what + ": the deadline of its coring::timeout scope passed");
  }
  if (res == -ECANCELED && timeout_.tv_sec >= 0) {
    const std::int64_t ms = timeout_.tv_sec * 1000 + timeout_.tv_nsec / 1'000'000;
    throw timeout_error(what + ": timed out after " + std::to_string(ms) + " ms");
  }
  throw io_error(-res, what);
}

void ring_operation::throw_cancelled() { throw cancelled{}; }

namespace {
struct description_registry {
  std::mutex m;  // registration at start-up, lookups from loop threads
  std::vector<std::pair<ring_operation::prep_fn, ring_operation::describer>> kinds;
};
description_registry& descriptions() {
  static description_registry r;
  return r;
}
}  // namespace

bool ring_operation::register_description(prep_fn prep, describer d) noexcept {
  description_registry& r = descriptions();
  std::lock_guard lock(r.m);
  try {
    r.kinds.emplace_back(prep, d);
  } catch (...) {
    // Out of memory at start-up: that kind prints as "an operation in the ring".
  }
  return true;
}

void ring_operation::describe(const cancel_hook& c, leaf_report& out) {
  const auto& self = static_cast<const ring_operation&>(c);
  describer found = nullptr;
  {
    description_registry& r = descriptions();
    std::lock_guard lock(r.m);
    for (auto& [prep, d] : r.kinds) {
      if (prep == self.prep_) found = d;
    }
  }
  if (found) {
    found(self, out.what);
  } else {
    out.what = "an operation in the ring";
  }
  if (self.scope_timed_) {
    out.what += " (deadline of its timeout scope)";
  } else if (self.timeout_.tv_sec >= 0) {
    out.what += " (timeout " + std::to_string(self.timeout_.tv_sec * 1000 + self.timeout_.tv_nsec / 1'000'000) + " ms)";
  }
  out.frame = self.handle_;
}

}  // namespace coring::detail
