#pragma once
// event: a flag that tasks can wait for (asyncio.Event).
//
//   coring::event ready;
//   // in one task:            // in others:
//   load_config();             co_await ready.wait();   // returns once set()
//   ready.set();               use_config();
//
// set() wakes every waiting task (in the order they started waiting) and
// later waits return at once, until clear(). For one loop's tasks only: it
// takes no lock.

#include <coring/detail/assert.hpp>
#include <coring/detail/wait_list.hpp>

#include <coroutine>
#include <cstddef>

namespace coring {

/// A settable flag that tasks of one loop can wait for.
/// **Thread safety:** none: use it from the tasks of one loop only (to signal
/// from another thread, post() to the loop and set() there).
class event {
 public:
  class wait_operation;

  /// An event that is clear, or set if `initially_set`.
  explicit event(bool initially_set = false) noexcept : set_(initially_set) {}
  /// **Requires:** no task waits on the event (destroying it under them is a bug).
  ~event() { CORING_ASSERT(waiters_.empty(), "a coring::event was destroyed while tasks wait on it"); }
  event(const event&) = delete;
  event& operator=(const event&) = delete;

  /// Sets the flag and wakes every waiting task, in FIFO order (they run on
  /// the loop's next step, not inside this call). No effect if already set.
  void set() noexcept;
  /// Clears the flag: later waits suspend until the next set(). Tasks that
  /// set() already woke still return normally.
  void clear() noexcept { set_ = false; }
  /// True between set() and clear().
  [[nodiscard]] bool is_set() const noexcept { return set_; }
  /// How many tasks are suspended in wait().
  [[nodiscard]] std::size_t waiting() const noexcept { return waiters_.size(); }

  /// Waits until the event is set; returns at once (without suspending) if it is.
  /// **Cancellation:** a waiting task ends at once with coring::cancelled and
  /// leaves the waiter list; a cancellation pending when wait() is awaited is
  /// delivered there, even if the event is set. A task that set() woke
  /// returns normally and sees its cancellation at its next suspension point.
  /// **Requires:** awaited from a coroutine of the loop that uses the event.
  [[nodiscard]] wait_operation wait() noexcept;

 private:
  detail::wait_list waiters_;  // tasks suspended in wait(), FIFO
  bool set_;                   // the flag
};

/// Awaiter of event::wait().
class event::wait_operation : detail::sync_waiter {
 public:
  explicit wait_operation(event& e) noexcept : event_(e) {}

  bool await_ready() const noexcept { return false; }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) {
    if (begin_wait(h)) return false;
    if (event_.set_) {
      grant_inline();
      return false;
    }
    park(event_.waiters_, h);
    return true;
  }
  void await_resume() const {
    if (result() != outcome::granted) throw_cancelled();
  }

 private:
  event& event_;  // the event waited for
};

inline void event::set() noexcept {
  if (set_) return;
  set_ = true;
  waiters_.wake_all(detail::sync_waiter::outcome::granted);
}

inline event::wait_operation event::wait() noexcept { return wait_operation(*this); }

}  // namespace coring
