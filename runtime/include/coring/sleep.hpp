#pragma once
// sleep_for / sleep_until / yield: suspend the current task for a while.
//
//   co_await coring::sleep_for(100ms);
//   co_await coring::sleep_until(deadline);
//   co_await coring::yield();        // let every other ready task run once
//
// Deadlines live in the loop's timer heap in user space, not one ring timeout
// each: a million concurrent sleeps cost a heap entry and their frames.

#include <coring/detail/task_node.hpp>
#include <coring/detail/timer_node.hpp>
#include <coring/detail/duration.hpp>
#include <coring/detail/introspection.hpp>
#include <coring/detail/loop_access.hpp>
#include <coring/event_loop.hpp>

#include <algorithm>
#include <chrono>
#include <coroutine>
#include <cstdint>

namespace coring {

/// The clock of every deadline in coring.
using clock = std::chrono::steady_clock;


/// Awaiter of sleep_for / sleep_until. Kept small: a million sleeping tasks
/// hold a million of these.
class sleep_operation : detail::timer_node, detail::cancel_hook {
 public:
  explicit sleep_operation(clock::time_point deadline) noexcept
      : detail::timer_node{std::max<std::int64_t>(
                               0, std::chrono::duration_cast<std::chrono::nanoseconds>(deadline.time_since_epoch())
                                      .count()),
                           &on_fire},
        detail::cancel_hook{&on_cancel} {}

  bool await_ready() const noexcept { return false; }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) {
    node_ = detail::node_of(h);
    if (node_ && node_->cancel_requested) return false;
    handle_ = h;
    event_loop* loop = event_loop::current();
    CORING_ASSERT(loop, "coring::sleep needs an event loop on this thread");
    detail::loop_access::add_timer(*loop, *this);
    if (node_) node_->leaf = this;
    return true;
  }
  void await_resume() {
    if (node_ && node_->cancel_requested && !fired) detail::throw_if_cancel_requested(node_);
  }

 private:
  // Both run on the loop thread of the sleeper, so event_loop::current() is its loop.
  static void on_fire(detail::timer_node* t) noexcept {
    auto* self = static_cast<sleep_operation*>(t);
    if (self->node_ && self->node_->leaf == self) self->node_->leaf = nullptr;
    detail::loop_access::schedule(*event_loop::current(), self->handle_);
  }
  static void on_cancel(detail::cancel_hook* c) noexcept {
    auto* self = static_cast<sleep_operation*>(c);
    event_loop* loop = event_loop::current();
    detail::loop_access::remove_timer(*loop, *self);
    detail::loop_access::schedule(*loop, self->handle_);
  }
  // For dump_tasks(): "sleep until +85 ms". A static member: no byte is added to the awaiter.
  static void describe(const detail::cancel_hook& c, detail::leaf_report& out) {
    const auto& self = static_cast<const sleep_operation&>(c);
    out.what = "sleep until " + detail::describe_deadline_from_now(self.deadline_ns);
    out.frame = self.handle_;
  }
  static inline const bool described_ = detail::register_leaf(&on_cancel, &describe);

  std::coroutine_handle<> handle_;     // the sleeping coroutine
  detail::task_node* node_ = nullptr;  // cancellation state of the sleeper
};

/// Suspends the current task until `deadline` (at once if it has passed,
/// though still through the loop).
/// **Cancellation:** ends at once with coring::cancelled; the timer is removed.
[[nodiscard]] inline sleep_operation sleep_until(clock::time_point deadline) noexcept {
  return sleep_operation(deadline);
}

/// Suspends the current task for `d` (asyncio.sleep).
/// **Cancellation:** as sleep_until.
template <class Rep, class Period>
[[nodiscard]] sleep_operation sleep_for(std::chrono::duration<Rep, Period> d) noexcept {
  return sleep_operation(detail::deadline_after(d));
}

/// Awaiter of yield().
class yield_operation {
 public:
  bool await_ready() const noexcept { return false; }
  template <class P>
  void await_suspend(std::coroutine_handle<P> h) {
    node_ = detail::node_of(h);
    event_loop* loop = event_loop::current();
    CORING_ASSERT(loop, "coring::yield needs an event loop on this thread");
    detail::loop_access::schedule(*loop, h);
  }
  void await_resume() {
    if (node_ && node_->cancel_requested) detail::throw_if_cancel_requested(node_);
  }

 private:
  detail::task_node* node_ = nullptr;  // cancellation state of the yielder
};

/// Lets every other ready task run before this one goes on (asyncio.sleep(0)).
/// **Cancellation:** a pending cancellation is delivered here.
[[nodiscard]] inline yield_operation yield() noexcept { return {}; }

}  // namespace coring
