#pragma once
// wait_for / wait_until: give a task a deadline (asyncio.wait_for).
//
//   try {
//     auto body = co_await coring::wait_for(fetch(url), 2s);
//   } catch (const coring::timeout_error& e) { ... }
//
// At the deadline the task is cancelled — cancellation reaches what it is
// blocked in (a sleep, an operation in the ring) and ends it at once — and
// once it has ended, timeout_error is thrown.

#include <coring/detail/child_set.hpp>
#include <coring/detail/duration.hpp>
#include <coring/detail/loop_access.hpp>
#include <coring/detail/timer_node.hpp>
#include <coring/error.hpp>
#include <coring/sleep.hpp>
#include <coring/task.hpp>

#include <chrono>
#include <cstdint>
#include <exception>
#include <string>

namespace coring {

namespace detail {

/// Cancels a child_set's tasks when a deadline passes.
class deadline_guard : timer_node {
 public:
  deadline_guard(child_set& set, clock::time_point deadline) : set_(set), loop_(event_loop::current()) {
    deadline_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline.time_since_epoch()).count();
    fire = &on_fire;
    loop_access::add_timer(*loop_, *this);
  }
  deadline_guard(const deadline_guard&) = delete;
  deadline_guard& operator=(const deadline_guard&) = delete;
  ~deadline_guard() {
    if (heap_index != not_queued) loop_access::remove_timer(*loop_, *this);
  }
  [[nodiscard]] bool fired() const noexcept { return fired_; }

 private:
  static void on_fire(timer_node* t) noexcept {
    auto* self = static_cast<deadline_guard*>(t);
    self->fired_ = true;
    self->set_.cancel_all();
  }
  child_set& set_;      // whose tasks to cancel
  event_loop* loop_;    // whose heap holds us
  bool fired_ = false;  // the deadline passed
};

/// "coring::wait_for: the task did not finish within N ms" (N < 0: wait_until's wording).
std::string describe_timeout(std::int64_t timeout_ns);

template <class T>
task<T> wait_with_deadline(task<T> t, clock::time_point deadline, std::int64_t timeout_ns) {
  child_record record[1];
  child_set set(child_set::policy::settle_all, record);
  std::exception_ptr not_started = set.start(std::move(t));
  deadline_guard guard(set, deadline);
  co_await set.wait_all();
  if (not_started) std::rethrow_exception(not_started);
  if (guard.fired() && set.ended_cancelled(0)) {
    (void)set.settle<T>(0);  // the cancellation was ours: it becomes the timeout
    throw timeout_error(describe_timeout(timeout_ns));
  }
  // Ended in time, or with a value despite the deadline: the value wins.
  if constexpr (std::is_void_v<T>) {
    set.take<T>(0);
  } else {
    co_return set.take<T>(0);
  }
}

}  // namespace detail

/// Runs `t` with a deadline; gives its value if it ends in time.
/// **Errors:** timeout_error once the deadline passed and the task, cancelled,
/// has ended; otherwise whatever `t` throws.
/// **Cancellation:** cancelling the awaiter cancels `t` (and waits for it);
/// it then ends with coring::cancelled, never with timeout_error.
template <class T>
[[nodiscard]] task<T> wait_until(task<T> t, clock::time_point deadline) {
  return detail::wait_with_deadline(std::move(t), deadline, -1);
}

/// Runs `t` for at most `timeout` (asyncio.wait_for). max() and infinite
/// durations never expire; zero, negative and NaN ones expire at once.
/// **Errors/Cancellation:** as wait_until.
template <class T, class Rep, class Period>
[[nodiscard]] task<T> wait_for(task<T> t, std::chrono::duration<Rep, Period> timeout) {
  return detail::wait_with_deadline(std::move(t), detail::deadline_after(timeout), detail::timeout_ns(timeout));
}

}  // namespace coring
