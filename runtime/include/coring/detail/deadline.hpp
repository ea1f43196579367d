#pragma once
// deadline_scope: a deadline over a task and everything it awaits. Internal;
// the machinery of coring::timeout and wait_for.
//
// The scope's body runs as a child task (its own node). The scope keeps
//  - a timer in the loop's heap: at the deadline it cancels the body
//    (request_cancel), which reaches whatever the body is suspended in: a
//    sleep, a sync wait, a future, a join, a child set and its children;
//  - an entry in a per-thread table keyed by the body's node, so that a ring
//    operation the body itself awaits finds the deadline and links a kernel
//    timeout to its SQE (IORING_OP_LINK_TIMEOUT with IORING_TIMEOUT_ABS): the
//    kernel cancels the operation at the deadline, with no helper task and no
//    ASYNC_CANCEL round trip. Operations of tasks the body spawns (a gather's
//    children) are reached by the timer's cancellation instead.
// A scope opened in another scope's body has it as parent; an operation gets
// the earliest deadline along the chain, and the scope that set it is the one
// that expires. The table is keyed by pointer and lives in thread-local
// storage (no task_node field, no frame growth): a task outside every scope
// pays one thread-local load per ring operation.
//
// A scope expires once: its timer, or an operation that finds its linked
// timeout passed, calls expire(), which cancels the body; whichever comes
// second finds it done. An expired scope imposes nothing any more: the
// body's clean-up after the cancellation runs normally (as asyncio's
// timeout, the cancellation is delivered once, not held).

#include <coring/detail/duration.hpp>
#include <coring/detail/task_node.hpp>
#include <coring/detail/timer_node.hpp>

#include <cstdint>
#include <string>

namespace coring {
class event_loop;
}

namespace coring::detail {

/// The layout of the kernel's __kernel_timespec (what a linked timeout reads).
struct kernel_timespec {
  std::int64_t tv_sec = 0;
  std::int64_t tv_nsec = 0;
};

class deadline_scope : timer_node {
 public:
  /// A scope on the current loop whose deadline is `deadline_ns` (steady
  /// clock, ns since its epoch; no_deadline for none), nested in `parent`
  /// (the scope whose body opens this one, or null). Not enforced until open().
  deadline_scope(std::int64_t deadline_ns, deadline_scope* parent) noexcept;
  deadline_scope(const deadline_scope&) = delete;
  deadline_scope& operator=(const deadline_scope&) = delete;
  ~deadline_scope() { close(); }

  /// Starts enforcing the deadline on `body`, the node of the body task
  /// (which must not have run yet). Makes no allocation unless more than 64
  /// scopes are open on this thread (the table then grows).
  void open(task_node& body) noexcept;
  /// Stops enforcing it: the timer and the table entry go. Idempotent.
  void close() noexcept;
  /// Moves the deadline (no_deadline: none). False, and no effect, once the
  /// scope has expired.
  bool reschedule(std::int64_t deadline_ns) noexcept;
  /// The deadline (no_deadline for none).
  [[nodiscard]] std::int64_t deadline_ns() const noexcept { return deadline_ns_; }
  /// True once the deadline passed and the body was cancelled on its account.
  [[nodiscard]] bool expired() const noexcept { return expired_; }
  /// The scope whose body opened this one, or null.
  [[nodiscard]] deadline_scope* parent() const noexcept { return parent_; }
  /// True if reschedule() changed the deadline since the scope was made.
  [[nodiscard]] bool rescheduled() const noexcept { return rescheduled_; }
  /// The deadline passed: cancels the body, once.
  void expire() noexcept;

  /// Of this scope and its parents not yet expired, the one whose deadline
  /// is earliest; null if none has a deadline.
  [[nodiscard]] deadline_scope* earliest() noexcept;
  /// The deadline as a linked timeout reads it (absolute, CLOCK_MONOTONIC:
  /// the steady clock's). Lives as long as the scope; reschedule() rewrites it.
  [[nodiscard]] const kernel_timespec& timespec() const noexcept { return ts_; }

 private:
  friend class scope_table;
  static void on_fire(timer_node* t) noexcept;

  deadline_scope* next_in_bucket_ = nullptr;  // chain of the table bucket we are in
  deadline_scope* parent_;                    // the scope whose body opened us, or null
  task_node* body_ = nullptr;                 // the body's node while open, else null
  event_loop* loop_;                          // whose timer heap holds us
  std::int64_t deadline_ns_;                  // own deadline, or no_deadline
  kernel_timespec ts_;                        // the same, for the kernel
  bool expired_ = false;                      // expire() ran
  bool rescheduled_ = false;                  // reschedule() moved the deadline
};

/// Scopes open on this thread; zero means nothing needs looking up.
inline thread_local std::uint32_t open_deadline_scopes = 0;

/// The scope whose body runs under `n`, or null. Loop thread.
deadline_scope* scope_of(const task_node* n) noexcept;

/// For an operation awaited under `n` whose own timeout is `own_ns` from now
/// (no_deadline for none): the timespec of the earliest deadline of the
/// scopes `n` runs in, if it comes first; null if the operation's own
/// timeout (or none) applies.
const kernel_timespec* scope_deadline_for(const task_node* n, std::int64_t own_ns) noexcept;

/// An operation of `n` that carried a scope's linked timeout ended with
/// -ECANCELED while `n` had no cancellation pending. If a deadline of `n`'s
/// scopes has passed, expires that scope (which cancels `n`: the operation
/// then delivers coring::cancelled) and returns true; false if none has
/// (the scope was moved later: submit the operation again).
bool scope_deadline_passed(const task_node* n) noexcept;

/// "<what> did not finish within N ms" (timeout_ns < 0, or a rescheduled
/// deadline: "... before its deadline").
std::string describe_deadline(const char* what, std::int64_t timeout_ns, bool rescheduled);

}  // namespace coring::detail
