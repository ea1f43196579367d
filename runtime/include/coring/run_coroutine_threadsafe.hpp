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

/// Runs `t` on the loop and publishes its end into `s` (one reference).
template <class T>
task<> complete_future_from(task<T> t, future_state<T>* s) {
  if (!s->start()) {  // the future was cancelled before the task started
    s->release();
    co_return;
  }
  try {
    if constexpr (std::is_void_v<T>) {
      co_await std::move(t);
      s->set_value();
    } else {
      s->set_value(co_await std::move(t));
    }
  } catch (...) {
    s->error_ = std::current_exception();
  }
  s->finish();
  s->release();
}

/// The posted hand-over, shared by the copies std::function makes. If the
/// loop closes before running it, the last copy fails the future instead of
/// leaving it waiting forever.
template <class T>
struct threadsafe_handover {
  task<T> work;             // the task, until it is spawned
  future_state<T>* state;   // one reference, passed on to the spawned task
  bool spawned = false;     // the task runs on the loop now

  threadsafe_handover(task<T> t, future_state<T>* s) noexcept : work(std::move(t)), state(s) {}
  threadsafe_handover(const threadsafe_handover&) = delete;
  threadsafe_handover& operator=(const threadsafe_handover&) = delete;
  ~threadsafe_handover() {
    if (spawned) return;
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
/// runs; a running task is not interrupted by it.
/// **Errors:** the future rethrows the task's exception; coring::error if the
/// loop closed before the task could start.
/// **Thread safety:** callable from any thread.
template <class T>
[[nodiscard]] future<T> run_coroutine_threadsafe(event_loop& loop, task<T> t) {
  auto* state = new detail::future_state<T>();  // references: the future's and the hand-over's
  auto handover = std::make_shared<detail::threadsafe_handover<T>>(std::move(t), state);
  loop.post([handover] {
    spawn(detail::complete_future_from(std::move(handover->work), handover->state), "run_coroutine_threadsafe")
        .detach();
    handover->spawned = true;
  });
  return future<T>(state);
}

}  // namespace coring
