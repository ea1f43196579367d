#pragma once
// task_group: children spawned dynamically inside a scope that always waits
// for them (asyncio's `async with TaskGroup()`, a trio nursery).
//
//   co_await coring::task_group::run([&](coring::task_group& g) -> coring::task<> {
//     for (auto& url : urls) g.spawn(fetch(url));
//     co_return;                      // run() still waits for every child
//   });
//
// The group exists only inside run(): run() returns (or throws) after the
// body and every child it spawned have ended, on every path — a body that
// throws, a failing child, a cancelled caller. No child can outlive the
// scope that lent it references.
//
// The first failure (of the body or of a child) cancels the body and every
// other child (and any spawned later); run() then rethrows it. Later
// failures go to the loop's exception handler.

#include <coring/detail/assert.hpp>
#include <coring/detail/child_set.hpp>
#include <coring/task.hpp>

#include <cstddef>
#include <exception>
#include <type_traits>
#include <utility>

namespace coring {

class task_group {
 public:
  task_group(const task_group&) = delete;
  task_group& operator=(const task_group&) = delete;

  /// Runs `body(group)` (a coroutine taking `task_group&`) and waits for it
  /// and every child it spawns; gives the body's value.
  /// **Errors:** the first failure of the body or of a child, rethrown once
  /// everything has ended.
  /// **Cancellation:** cancelling the awaiter cancels the body and every
  /// child, waits for them, and throws coring::cancelled (an error a child
  /// had already failed with is then reported to the loop's handler).
  /// **Requires:** an event loop on this thread.
  template <class Body>
  [[nodiscard]] static auto run(Body body) -> std::invoke_result_t<Body&, task_group&>;

  /// Starts `t` as a child; its value is discarded (its frame is freed as
  /// soon as it ends). If the group has already failed, it is cancelled at once.
  /// **Errors:** std::bad_alloc (then `t` never ran).
  /// **Requires:** called while run() has not returned (the body or a child
  /// may spawn), on the group's loop thread.
  template <class T>
  void spawn(task<T> t) {
    CORING_ASSERT(!closed_, "task_group::spawn after its run() ended");
    set_.add(std::move(t), /*keep=*/false);
  }
  /// Cancels every running child (not the body, which decides when it ends).
  void cancel() noexcept {
    for (std::size_t i = 1; i < set_.size(); ++i) {
      if (set_.is_running(i)) set_.cancel_child(i);
    }
  }
  /// Children still running (the body not counted).
  [[nodiscard]] std::size_t running() noexcept { return set_.running() - (set_.is_running(0) ? 1 : 0); }

 private:
  task_group() noexcept : set_(detail::child_set::policy::fail_fast) {}

  detail::child_set set_;  // record 0 is the body, the rest are children
  bool closed_ = false;    // run() has ended: spawning now is a bug
};

template <class Body>
auto task_group::run(Body body) -> std::invoke_result_t<Body&, task_group&> {
  using body_task = std::invoke_result_t<Body&, task_group&>;
  using R = typename body_task::value_type;
  task_group g;
  std::exception_ptr not_started;
  try {
    g.set_.add(body(g));
  } catch (...) {
    not_started = std::current_exception();
  }
  std::exception_ptr interrupted;
  try {
    co_await g.set_.wait_all();
  } catch (...) {
    interrupted = std::current_exception();  // our caller was cancelled
  }
  g.closed_ = true;
  if (not_started) std::rethrow_exception(not_started);
  const std::exception_ptr& first = g.set_.first_error();
  const bool body_failed_first = first && first == g.set_.error_of(0);
  if (interrupted) {
    // The body's own error is reported when its frame goes; a child's first
    // error lives only here.
    if (first && !body_failed_first) {
      if (event_loop* loop = event_loop::current()) detail::loop_access::report(*loop, first, "task_group child");
    }
    std::rethrow_exception(interrupted);
  }
  if (first) {
    if (body_failed_first) (void)g.set_.settle<R>(0);  // retrieved: it is rethrown now
    std::rethrow_exception(first);
  }
  if constexpr (std::is_void_v<R>) {
    g.set_.take<R>(0);
  } else {
    co_return g.set_.take<R>(0);
  }
}

}  // namespace coring
