#pragma once
// ring_operation: the base of every awaiter that is one io_uring SQE. Internal.
//
// The awaiter lives in the awaiting coroutine's frame; its address is the
// SQE's user_data and the CQE makes it ready: no allocation per operation.
// A derived awaiter supplies a prep function (defined where liburing.h is
// included, so public headers need not include it) that fills the SQE from
// the awaiter's fields, and an await_resume that turns result() into a value.
//
// A deadline (set_timeout) is an IORING_OP_LINK_TIMEOUT linked to the SQE:
// the kernel cancels the operation when it passes, with no timer of ours and
// no helper task. Its CQE carries user_data 0 and is ignored; the kernel
// copies the timespec when it takes the SQE.
//
// Inside a deadline scope (coring::timeout, wait_for; detail/deadline.hpp) an
// operation whose task is the scope's body gets the scope's deadline as an
// absolute linked timeout when it comes before its own: the kernel ends it at
// the deadline and it delivers the scope's cancellation (coring::cancelled,
// once), which the scope turns into timeout_error.

#include <coring/detail/deadline.hpp>
#include <coring/detail/duration.hpp>
#include <coring/detail/introspection.hpp>
#include <coring/detail/loop_access.hpp>
#include <coring/detail/task_node.hpp>
#include <coring/event_loop.hpp>

#include <cerrno>
#include <chrono>
#include <coroutine>
#include <cstdint>
#include <string>

struct io_uring_sqe;

namespace coring::detail {

class ring_operation : public completion, public cancel_hook {
 public:
  using prep_fn = void (*)(::io_uring_sqe* sqe, const ring_operation& op) noexcept;

  explicit ring_operation(prep_fn prep) noexcept : completion{&on_complete}, cancel_hook{&on_cancel}, prep_(prep) {}
  /// With a deadline (see set_timeout).
  template <class Rep, class Period>
  ring_operation(prep_fn prep, std::chrono::duration<Rep, Period> timeout) noexcept : ring_operation(prep) {
    set_timeout(timeout);
  }
  ring_operation(const ring_operation&) = delete;
  ring_operation& operator=(const ring_operation&) = delete;

  /// Limits the operation to `d` from its submission: when it passes, the
  /// kernel cancels the operation and it ends with coring::timeout_error.
  /// A duration beyond ~30 years (max(), infinity) means no limit; zero,
  /// negative and NaN expire at once. Call before awaiting.
  template <class Rep, class Period>
  void set_timeout(std::chrono::duration<Rep, Period> d) noexcept {
    set_timeout_ns(timeout_ns(d));
  }

  /// What dump_tasks() says of an operation ("read on fd 7").
  using describer = void (*)(const ring_operation& op, std::string& out);
  /// Registers `d` for the operations made with `prep` (one per derived
  /// awaiter, from a static member). Returns true. Thread-safe.
  static bool register_description(prep_fn prep, describer d) noexcept;

  bool await_ready() const noexcept { return false; }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) {
    node_ = node_of(h);
    if (node_ && node_->cancel_requested) {
      res_ = -ECANCELED;
      return false;
    }
    loop_ = event_loop::current();
    CORING_ASSERT(loop_, "a ring operation needs an event loop on this thread");
    start();
    handle_ = h;
    if (node_) node_->leaf = this;
    return true;
  }

 protected:
  /// The CQE's res. Throws coring::cancelled instead (delivering the
  /// cancellation once) if the task was cancelled and the operation did not succeed.
  int result() {
    if (res_ < 0 && consume_cancel(node_)) throw_cancelled();
    return res_;
  }
  /// The CQE's flags.
  [[nodiscard]] unsigned cqe_flags() const noexcept { return cqe_flags_; }
  /// Throws for a failed result `res` (< 0) of the operation described by
  /// `what` ("read from fd 7"): timeout_error if its deadline cancelled it,
  /// else io_error with the errno.
  [[noreturn]] void fail(int res, const std::string& what) const;

 private:
  void start();
  void set_timeout_ns(std::int64_t ns) noexcept;
  bool resubmit_after_scope_timeout() noexcept;
  [[noreturn]] static void throw_cancelled();
  static void on_complete(completion* c, int res, unsigned flags) noexcept {
    auto* self = static_cast<ring_operation*>(c);
    self->res_ = res;
    self->cqe_flags_ = flags;
    if (self->node_ && self->node_->leaf == self) self->node_->leaf = nullptr;
    if (res == -ECANCELED && self->scope_timed_ && self->resubmit_after_scope_timeout()) return;
    loop_access::schedule(*self->loop_, self->handle_);
  }
  static void on_cancel(cancel_hook* c) noexcept {
    auto* self = static_cast<ring_operation*>(c);
    loop_access::submit_cancel(*self->loop_, *self);
  }
  // For dump_tasks(): the description registered for prep_. No byte is added to the awaiter.
  static void describe(const cancel_hook& c, leaf_report& out);
  static inline const bool described_ = register_leaf(&on_cancel, &describe);

  prep_fn prep_;                      // fills the SQE
  std::coroutine_handle<> handle_;    // the suspended coroutine
  event_loop* loop_ = nullptr;        // whose ring carries the SQE
  task_node* node_ = nullptr;         // cancellation state of the awaiter
  int res_ = 0;                       // the CQE's res
  unsigned cqe_flags_ = 0;            // the CQE's flags
  struct {                            // the deadline as the kernel reads it (a __kernel_timespec); tv_sec < 0: none
    std::int64_t tv_sec = -1;
    std::int64_t tv_nsec = 0;
  } timeout_;
  bool scope_timed_ = false;          // the linked timeout is a deadline scope's (absolute), not timeout_
};

}  // namespace coring::detail
