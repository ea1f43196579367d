#pragma once
// socket_operation: the base of net's one-SQE awaiters. Internal.
//
// Like the runtime's ring_operation (the awaiter lives in the awaiting frame,
// its address is the SQE's user_data, a deadline is an IORING_OP_LINK_TIMEOUT
// linked to the SQE, a cancellation is an ASYNC_CANCEL sent from the task's
// cancel hook and delivered exactly once), plus one thing it lacks: an
// operation may look at its CQE and submit itself again instead of resuming
// the task (write_all after a partial send, a provided-buffer read that found
// the pool empty). Each submission carries a fresh linked timeout, so a
// deadline bounds each wait for progress.

#include <coring/detail/assert.hpp>
#include <coring/detail/duration.hpp>
#include <coring/detail/loop_access.hpp>
#include <coring/detail/task_node.hpp>
#include <coring/event_loop.hpp>

#include <cerrno>
#include <chrono>
#include <coroutine>
#include <cstdint>
#include <string_view>

struct io_uring_sqe;

namespace coring::net {
class address;
}

namespace coring::net::detail {

class socket_operation : public coring::detail::completion, public coring::detail::cancel_hook {
 public:
  /// Fills the SQE from the operation's fields (user_data is already set).
  using prep_fn = void (*)(::io_uring_sqe* sqe, socket_operation& op) noexcept;
  /// Sees each CQE; returns true if the operation is over (the task resumes),
  /// false if it has submitted itself again with resubmit().
  using step_fn = bool (*)(socket_operation& op, int res, unsigned flags) noexcept;

  socket_operation(prep_fn prep, std::chrono::nanoseconds timeout, step_fn step = nullptr) noexcept;
  socket_operation(const socket_operation&) = delete;
  socket_operation& operator=(const socket_operation&) = delete;

  bool await_ready() const noexcept { return false; }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) {
    node_ = coring::detail::node_of(h);
    if (node_ && node_->cancel_requested) {
      res_ = -ECANCELED;
      return false;
    }
    loop_ = event_loop::current();
    CORING_ASSERT(loop_, "a socket operation needs an event loop on this thread");
    submit();
    handle_ = h;
    if (node_) node_->leaf = this;
    return true;
  }

 protected:
  /// The last CQE's res; throws coring::cancelled instead (delivering the
  /// cancellation once) if the task was cancelled and the operation failed.
  int result();
  /// The last CQE's flags.
  [[nodiscard]] unsigned cqe_flags() const noexcept { return flags_; }
  /// Takes a pending cancellation (delivering it once); true if there was one.
  bool take_cancel() noexcept { return coring::detail::consume_cancel(node_); }
  /// The task asked to be cancelled (a step_fn must not resubmit then).
  [[nodiscard]] bool cancel_pending() const noexcept { return node_ && node_->cancel_requested; }
  /// Submits the operation again (from a step_fn). False if no SQE could be
  /// had: the operation then ends with res -EBUSY.
  bool resubmit() noexcept;
  /// Throws for a failed `res` of "<verb> <peer>" ("read from 127.0.0.1:80"):
  /// coring::timeout_error if the deadline cancelled it, else coring::io_error.
  [[noreturn]] void fail(int res, std::string_view verb, const address& peer) const;
  [[noreturn]] void fail(int res, std::string_view what) const;
  /// The loop the operation runs on (set when it is awaited).
  [[nodiscard]] event_loop* loop() const noexcept { return loop_; }

 private:
  void submit();
  static void on_complete(coring::detail::completion* c, int res, unsigned flags) noexcept;
  static void on_cancel(coring::detail::cancel_hook* c) noexcept;

  prep_fn prep_;                      // fills the SQE
  step_fn step_;                      // decides whether a CQE ends the operation (null: every CQE does)
  std::coroutine_handle<> handle_;    // the suspended coroutine
  event_loop* loop_ = nullptr;        // whose ring carries the SQE
  coring::detail::task_node* node_ = nullptr;  // cancellation state of the awaiter
  int res_ = 0;                       // the last CQE's res
  unsigned flags_ = 0;                // the last CQE's flags
  struct {                            // the deadline as the kernel reads it (a __kernel_timespec); tv_sec < 0: none
    std::int64_t tv_sec = -1;
    std::int64_t tv_nsec = 0;
  } timeout_;
};

}  // namespace coring::net::detail
