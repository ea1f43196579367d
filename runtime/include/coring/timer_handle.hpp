#pragma once
// timer_handle: a plain function scheduled on a loop for later
// (asyncio's loop.call_later / loop.call_at and their TimerHandle).
//
//   coring::timer_handle h = loop.call_later(500ms, [] { std::puts("late"); });
//   h.cancel();                                  // it will not run
//
// The function runs on the loop's thread when its deadline passes, in the
// step that fires timers; it is not a task (nothing to await, nothing to
// cancel inside it). One allocation holds it; the loop's timer heap keeps
// its deadline, like a sleep's.

#include <coring/detail/timer_node.hpp>

#include <chrono>
#include <exception>
#include <optional>
#include <utility>

namespace coring {

class event_loop;

namespace detail {

/// A function waiting in a loop's timer heap. Shared by the heap and the
/// handles (loop thread only: plain counts).
struct scheduled_call : timer_node {
  int refs = 1;                                         // the heap's (while queued) and each handle's
  bool cancelled = false;                               // cancel() came before it ran
  event_loop* loop = nullptr;                           // whose heap holds it; null once the loop dropped it
  void (*invoke)(scheduled_call*) = nullptr;            // calls the function
  void (*drop)(scheduled_call*) noexcept = nullptr;     // destroys the function (the node stays)
  void (*destroy)(scheduled_call*) noexcept = nullptr;  // frees the node

  /// The fire function of every scheduled_call (how the loop tells them apart).
  static void on_fire(timer_node* t) noexcept;
  void release() noexcept {
    if (--refs == 0) destroy(this);
  }
  /// The heap lets go: the function is not needed any more (it ran, was
  /// cancelled, or its loop is gone), whatever handles still hold the node.
  void release_from_heap() noexcept {
    drop(this);
    release();
  }
};

template <class Fn>
struct scheduled_call_of final : scheduled_call {
  std::optional<Fn> fn;  // reset when the heap lets go
  explicit scheduled_call_of(Fn&& f) : fn(std::move(f)) {
    fire = &scheduled_call::on_fire;
    invoke = [](scheduled_call* self) { (*static_cast<scheduled_call_of*>(self)->fn)(); };
    drop = [](scheduled_call* self) noexcept { static_cast<scheduled_call_of*>(self)->fn.reset(); };
    destroy = [](scheduled_call* self) noexcept { delete static_cast<scheduled_call_of*>(self); };
  }
};

/// Queues `c` in `loop`'s timer heap (the heap takes a reference).
void schedule_call(event_loop& loop, scheduled_call& c);

}  // namespace detail

/// A function scheduled by event_loop::call_later / call_at. Dropping the
/// handle does not cancel it (as in asyncio). Move-only.
/// **Thread safety:** use it on the loop's thread only.
class timer_handle {
 public:
  /// A handle to nothing.
  timer_handle() noexcept = default;
  explicit timer_handle(detail::scheduled_call* c) noexcept : c_(c) { ++c_->refs; }
  timer_handle(timer_handle&& o) noexcept : c_(std::exchange(o.c_, nullptr)) {}
  timer_handle& operator=(timer_handle&& o) noexcept {
    if (this != &o) {
      reset();
      c_ = std::exchange(o.c_, nullptr);
    }
    return *this;
  }
  timer_handle(const timer_handle&) = delete;
  timer_handle& operator=(const timer_handle&) = delete;
  ~timer_handle() { reset(); }

  /// Makes sure the function will not run, and destroys it now (what it
  /// captured is released). No effect if it has run or is running, if it
  /// was cancelled, or if its loop is gone.
  void cancel() noexcept;
  /// True once cancel() stopped it.
  [[nodiscard]] bool cancelled() const noexcept { return c_ && c_->cancelled; }
  /// True once its deadline passed and the function was called.
  [[nodiscard]] bool fired() const noexcept { return c_ && c_->fired; }
  /// When it is (or was) due.
  [[nodiscard]] std::chrono::steady_clock::time_point when() const noexcept {
    return std::chrono::steady_clock::time_point(std::chrono::nanoseconds(c_ ? c_->deadline_ns : 0));
  }
  /// True if the handle refers to a scheduled function.
  [[nodiscard]] bool valid() const noexcept { return c_ != nullptr; }

 private:
  void reset() noexcept {
    if (c_) std::exchange(c_, nullptr)->release();
  }

  detail::scheduled_call* c_ = nullptr;  // one reference
};

}  // namespace coring
