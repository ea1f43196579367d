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

#include <coring/detail/child_result.hpp>
#include <coring/detail/child_set.hpp>
#include <coring/detail/timer_node.hpp>
#include <coring/error.hpp>
#include <coring/sleep.hpp>
#include <coring/task.hpp>

#include <chrono>
#include <cstdint>
#include <string>

namespace coring {

namespace detail {

/// Cancels a child_set's tasks when a deadline passes.
class deadline_guard : timer_node {
 public:
  deadline_guard(child_set& set, clock::time_point deadline) : set_(set), loop_(event_loop::current()) {
    deadline_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline.time_since_epoch()).count();
    fire = &on_fire;
    loop_->add_timer(*this);
  }
  deadline_guard(const deadline_guard&) = delete;
  deadline_guard& operator=(const deadline_guard&) = delete;
  ~deadline_guard() {
    if (heap_index != not_queued) loop_->remove_timer(*this);
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

std::string describe_timeout(std::int64_t timeout_ns);

template <class T>
task<T> wait_with_deadline(task<T> t, clock::time_point deadline, std::int64_t timeout_ns) {
  child_set set(child_set::policy::settle_all);
  auto child = set.add(std::move(t));
  deadline_guard guard(set, deadline);
  co_await set.wait_all();
  auto& node = child.promise().own_node_;
  if (guard.fired() && node.ended_cancelled) {
    node.retrieved = true;
    throw timeout_error(describe_timeout(timeout_ns));
  }
  // Ended in time, or with a value despite the deadline: the value wins.
  if constexpr (std::is_void_v<T>) {
    take_child(child);
  } else {
    co_return take_child(child);
  }
}

}  // namespace detail

/// Runs `t` with a deadline; gives its value if it ends in time.
/// **Errors:** timeout_error once the deadline passed and the task, cancelled,
/// has ended; otherwise whatever `t` throws.
/// **Cancellation:** cancelling the awaiter cancels `t` (and waits for it).
template <class T>
[[nodiscard]] task<T> wait_until(task<T> t, clock::time_point deadline) {
  return detail::wait_with_deadline(std::move(t), deadline, -1);
}

/// Runs `t` for at most `timeout` (asyncio.wait_for). **Errors/Cancellation:** as wait_until.
template <class T, class Rep, class Period>
[[nodiscard]] task<T> wait_for(task<T> t, std::chrono::duration<Rep, Period> timeout) {
  return detail::wait_with_deadline(std::move(t), detail::deadline_after(timeout),
                                    std::chrono::duration_cast<std::chrono::nanoseconds>(timeout).count());
}

}  // namespace coring
