#pragma once
// loop_access: what coring's awaiters, combinators and executors may do to an
// event_loop, and nothing else. Internal: users see only event_loop's public
// API. net/ builds its socket awaiters on the same interface.
//
//   void await_suspend(std::coroutine_handle<> h) {
//     loop_ = event_loop::current();
//     io_uring_sqe* sqe = loop_access::sqe_for(*loop_, *this);   // user_data = this
//     io_uring_prep_read(sqe, ...);                               // fill the rest
//   }
//   // the CQE calls this->complete(this, res, flags) on the loop's thread

#include <coring/detail/task_node.hpp>
#include <coring/detail/timer_node.hpp>
#include <coring/event_loop.hpp>

#include <coroutine>
#include <cstdint>
#include <memory>

struct io_uring;
struct io_uring_sqe;

namespace coring::detail {

class inbox;

/// Where a CQE goes: the object whose address is the SQE's user_data. It
/// lives until its final CQE (one without IORING_CQE_F_MORE) has come back.
struct completion {
  void (*complete)(completion* self, int res, unsigned cqe_flags) noexcept = nullptr;
};

struct loop_access {
  /// Queues `h` to be resumed in the loop's next batch.
  static void schedule(event_loop& l, std::coroutine_handle<> h) { l.ready_.push(h); }

  /// Registers / unregisters a deadline in the loop's timer heap.
  static void add_timer(event_loop& l, timer_node& t);
  static void remove_timer(event_loop& l, timer_node& t) noexcept;

  /// An SQE whose user_data is `c`, submitted in the next run step; the
  /// caller fills the rest (io_uring_prep_* leave user_data alone). `c`
  /// counts as in flight until its final CQE.
  /// **Errors:** io_error if the submission queue stays full after a flush.
  static ::io_uring_sqe* sqe_for(event_loop& l, completion& c);
  /// An SQE whose CQE the loop ignores (user_data 0): a linked timeout, a
  /// cancel. Not counted in flight.
  static ::io_uring_sqe* untracked_sqe(event_loop& l);
  /// Makes sure the next `n` SQEs come from the queue without a flush in
  /// between (a linked chain must reach the kernel in one submission).
  static void reserve_sqes(event_loop& l, unsigned n);
  /// Asks the kernel to cancel `c`'s operation; `c` still gets its CQE
  /// (-ECANCELED, or its result if it won the race). Never lost: if no SQE
  /// can be had now, the cancel is kept and sent by the next step.
  static void submit_cancel(event_loop& l, completion& c) noexcept;
  /// The loop's ring, for registrations (buffer rings, files). Loop thread only.
  static ::io_uring& ring(event_loop& l) noexcept;

  /// Tracks a spawned task so that shutdown can cancel it. If the loop is
  /// shutting down, the task is cancelled at once.
  static void adopt(event_loop& l, task_node& n);
  static void forget(event_loop& l, task_node& n) noexcept;
  /// Hands an exception nobody retrieved to the loop's exception handler.
  static void report(event_loop& l, std::exception_ptr error, const char* task_name) noexcept;
  /// The inbox other threads post into; outlives the loop (closed at its end).
  static const std::shared_ptr<inbox>& inbox_of(event_loop& l) noexcept { return l.inbox_; }
};

}  // namespace coring::detail
