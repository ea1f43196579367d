#pragma once
// loop_thread: an event loop running on a thread of its own, for plain code
// that hands it coroutines (asyncio's loop in a background thread plus
// run_coroutine_threadsafe).
//
//   coring::loop_thread io;                              // starts the thread and its loop
//   coring::future<int> f = io.submit(count_rows());     // from any thread
//   int rows = f.get();                                  // blocks; or co_await f on another loop
//   // ~loop_thread: stops the loop, cancels the tasks still running, joins
//
// Built on event_loop::run_forever() and run_coroutine_threadsafe(): each
// submitted task is spawned on the loop's thread and its end (value,
// exception or cancellation) reaches the future.

#include <coring/detail/inbox.hpp>
#include <coring/event_loop.hpp>
#include <coring/future.hpp>
#include <coring/run_coroutine_threadsafe.hpp>
#include <coring/task.hpp>

#include <atomic>
#include <memory>
#include <thread>
#include <utility>

namespace coring {

/// A thread that runs one event loop until the loop_thread is destroyed.
/// Neither copyable nor movable (the thread refers to it).
class loop_thread {
 public:
  /// Starts the thread, which creates a loop with `opts` and runs it
  /// (run_forever); returns once the loop exists.
  /// **Errors:** io_error if the loop cannot be created (the thread has
  /// ended by then); std::system_error if the thread cannot be started.
  explicit loop_thread(const event_loop::options& opts = {});
  /// Stops the loop after its current step, cancels the tasks still alive
  /// and lets them finish (their futures end with coring::cancelled, or with
  /// their value if they ignore the cancellation), closes the loop and joins
  /// the thread. A task handed over too late to start ends its future with
  /// coring::error. Never throws.
  /// **Requires:** not called on the loop's own thread (it would join itself),
  /// and no other thread is still calling submit() or post().
  ~loop_thread();
  loop_thread(const loop_thread&) = delete;
  loop_thread& operator=(const loop_thread&) = delete;

  /// Runs `t` on the loop (run_coroutine_threadsafe) and returns the future
  /// of its result.
  /// **Cancellation:** future::cancel() before the task started means it
  /// never runs; a running task is not interrupted by it.
  /// **Errors:** the future rethrows the task's exception; coring::cancelled
  /// if the loop was shutting down; std::bad_alloc here.
  /// **Thread safety:** any thread, the loop's own included.
  template <class T>
  [[nodiscard]] future<T> submit(task<T> t) {
    return run_coroutine_threadsafe(*loop_, std::move(t));
  }

  /// Runs `fn` on the loop's thread soon (event_loop::post).
  /// **Thread safety:** any thread.
  template <class Fn>
  void post(Fn fn) {
    loop_->post(std::move(fn));
  }

  /// The loop. Touch it only from its own thread, except for post(), fd()
  /// and run_coroutine_threadsafe().
  [[nodiscard]] event_loop& loop() noexcept { return *loop_; }
  /// The id of the thread that runs the loop.
  [[nodiscard]] std::thread::id get_id() const noexcept { return id_; }

 private:
  void run(const event_loop::options& opts, void* started) noexcept;

  event_loop* loop_ = nullptr;       // lives on the thread's stack until the thread ends
  std::shared_ptr<detail::inbox> inbox_;  // the loop's inbox, shared: outlives the loop
  std::thread::id id_;               // the thread's id
  std::atomic<bool> stopping_{false};  // set by the destructor: run_forever() returning means the end
  detail::inbox_item stop_request_;  // the destructor's stop(), pushed without allocating
  std::thread thread_;               // last: starts after the members above exist
};

}  // namespace coring
