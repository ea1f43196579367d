#pragma once
// run_coroutine_threadsafe: hand a coroutine to a loop running on another
// thread and get its result as a future (asyncio.run_coroutine_threadsafe).
//
//   std::thread t([&] { loop_owner(); });           // runs `loop` (run_forever)
//   coring::future<int> f = coring::run_coroutine_threadsafe(loop, fetch_count());
//   int n = f.get();                                // plain code blocks; a coroutine co_awaits
//
// The task is spawned on `loop` from its own thread (through post()), so it
// runs there like any other task of that loop.

#include <coring/current_task.hpp>
#include <coring/detail/inbox.hpp>
#include <coring/detail/loop_access.hpp>
#include <coring/error.hpp>
#include <coring/event_loop.hpp>
#include <coring/future.hpp>
#include <coring/spawn.hpp>
#include <coring/task.hpp>

#include <exception>
#include <memory>
#include <type_traits>
#include <utility>

namespace coring {

namespace detail {

/// The future's state, plus what it takes to cancel the task on its loop
/// from any thread: future::cancel() on a running task posts a request_cancel
/// of its node to the loop (asyncio's future.cancel() does the same).
template <class T>
class threadsafe_state final : public future_state<T> {
 public:
  explicit threadsafe_state(std::shared_ptr<inbox> box) noexcept : box_(std::move(box)) {
    this->on_cancel_running(&cancel_on_loop, nullptr);
  }

  /// The task's node while its body runs, else null. Loop thread only.
  task_node* node = nullptr;

 private:
  // Runs on the cancelling thread. The state is kept alive by the item
  // until the loop has looked at it (or the loop is gone).
  struct cancel_item final : inbox_item {
    threadsafe_state* state;
    explicit cancel_item(threadsafe_state* s) noexcept : state(s) {
      state->add_ref();
      run = &run_it;
    }
    static void run_it(inbox_item* self, bool loop_alive) noexcept {
      auto* item = static_cast<cancel_item*>(self);
      if (loop_alive && item->state->node) request_cancel(*item->state->node);
      item->state->release();
      delete item;
    }
  };
  static void cancel_on_loop(future_state_base* s, void*) noexcept {
    auto* self = static_cast<threadsafe_state*>(s);
    cancel_item* item;
    try {
      item = new cancel_item(self);
    } catch (...) {
      return;  // out of memory: the task runs on, as a running thread-pool job would
    }
    std::shared_ptr<inbox> box = self->box_;
    if (!box->push(item)) item->run(item, false);
  }

  std::shared_ptr<inbox> box_;  // the loop's inbox; outlives the loop
};

/// Holds one reference to the future's state for the task that completes
/// it. It lives in that task's frame (as a parameter), so whatever becomes
/// of the task — cancelled before its body ran (a loop shutting down), or
/// ended — the future ends too: a future nobody finished is cancelled.
template <class T>
class future_completer {
 public:
  explicit future_completer(threadsafe_state<T>* s) noexcept : s_(s) {}
  future_completer(future_completer&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  future_completer(const future_completer&) = delete;
  future_completer& operator=(const future_completer&) = delete;
  ~future_completer() {
    if (!s_) return;
    s_->node = nullptr;
    s_->cancel();  // pending: it never ran, so it ends cancelled; otherwise a no-op
    s_->release();
  }
  [[nodiscard]] threadsafe_state<T>& state() const noexcept { return *s_; }

 private:
  threadsafe_state<T>* s_;  // one reference
};

/// Runs `t` on the loop and publishes its end into the completer's state.
template <class T>
task<> complete_future_from(task<T> t, future_completer<T> done) {
  threadsafe_state<T>& s = done.state();
  if (!s.start()) co_return;  // the future was cancelled before the task started
  task_ref self = co_await current_task();
  s.node = self.node();  // from now on future::cancel() cancels us (and `t`, which runs in our node)
  try {
    if constexpr (std::is_void_v<T>) {
      co_await std::move(t);
      s.set_value();
    } else {
      s.set_value(co_await std::move(t));
    }
  } catch (...) {
    s.error_ = std::current_exception();
  }
  s.node = nullptr;
  s.finish();
}

/// The posted hand-over, shared by the copies a callable may make. If the
/// loop closes before running it, the last copy fails the future instead of
/// leaving it waiting forever.
template <class T>
struct threadsafe_handover {
  task<T> work;                 // the task, until it is spawned
  threadsafe_state<T>* state;   // one reference until a completer takes it, then null

  threadsafe_handover(task<T> t, threadsafe_state<T>* s) noexcept : work(std::move(t)), state(s) {}
  threadsafe_handover(const threadsafe_handover&) = delete;
  threadsafe_handover& operator=(const threadsafe_handover&) = delete;
  ~threadsafe_handover() {
    if (!state) return;
    if (state->start()) {
      state->fail(std::make_exception_ptr(error("run_coroutine_threadsafe: the event loop closed before the task ran")));
    }
    state->release();
  }
};

}  // namespace detail

/// Spawns `t` on `loop` (which runs on another thread) and returns a future
/// of its result.
/// **Cancellation:** future::cancel() before the task started means it never
/// runs (cancel() returns true). On a running task, cancel() returns false
/// and cancels the task on its loop, as asyncio's future.cancel() does: the
/// cancellation reaches what the task awaits, and the future ends with the
/// task's end — coring::cancelled, unless the task catches it and returns a
/// value. A task cancelled before it ran (the loop was shutting down when it
/// arrived) ends the future with coring::cancelled.
/// **Errors:** the future rethrows the task's exception; coring::error if the
/// loop closed before the task could start.
/// **Thread safety:** callable from any thread.
template <class T>
[[nodiscard]] future<T> run_coroutine_threadsafe(event_loop& loop, task<T> t) {
  // References: the future's and the hand-over's. Reading the loop's inbox
  // pointer is safe from any thread (post() does it too).
  auto* state = new detail::threadsafe_state<T>(detail::loop_access::inbox_of(loop));
  auto handover = std::make_shared<detail::threadsafe_handover<T>>(std::move(t), state);
  loop.post([handover] {
    // The completer takes the hand-over's reference as soon as the task
    // frame exists: from then on the frame's end ends the future.
    auto completing = detail::complete_future_from(
        std::move(handover->work), detail::future_completer<T>(std::exchange(handover->state, nullptr)));
    spawn(std::move(completing), "run_coroutine_threadsafe").detach();
  });
  return future<T>(state);
}

}  // namespace coring
