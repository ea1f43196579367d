#pragma once
// event_loop: one thread's io_uring-backed loop that runs coroutine tasks.
//
//   int v = coring::run(main_task());          // asyncio.run(main())
//
//   coring::event_loop loop;                   // or drive one yourself
//   int v = loop.run_until_complete(main_task());
//
// A loop belongs to the thread that runs it: every coroutine of the loop is
// resumed on that thread. A run step resumes the ready coroutines in FIFO
// order, then submits queued ring operations and reaps completions in a batch
// (waiting only when nothing is ready), then fires expired timers.
// Embedding: run_once(), fd() and next_timeout() let a host service drive
// the loop from its own poll loop; post() is safe from any thread.

#include <coring/detail/assert.hpp>
#include <coring/detail/ready_queue.hpp>
#include <coring/detail/task_node.hpp>
#include <coring/detail/timer_node.hpp>
#include <coring/task.hpp>

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>
#include <thread>
#include <vector>

namespace coring {

namespace detail {
class loop_core;
class ring_operation;
struct inbox_item;
class inbox;
}  // namespace detail

class event_loop {
 public:
  /// How the ring is set up.
  struct options {
    unsigned ring_entries = 1024;  ///< submission queue size (power of two)
  };

  /// Counters for tests and tuning.
  struct statistics {
    std::uint64_t steps = 0;          ///< run steps taken
    std::uint64_t blocking_waits = 0; ///< times the loop parked in the ring
    std::uint64_t wakeups = 0;        ///< eventfd writes made by other threads to wake it
    std::uint64_t completions = 0;    ///< CQEs reaped
  };

  /// Called with an exception that a detached task ended with and nobody retrieved.
  using exception_handler = std::function<void(std::exception_ptr error, std::string_view task_name)>;

  /// Creates the loop and its ring (SINGLE_ISSUER|DEFER_TASKRUN where the
  /// kernel has them, else COOP_TASKRUN, else plain). The loop becomes this
  /// thread's current loop if there is none.
  /// **Errors:** io_error if the ring or the eventfd cannot be created.
  event_loop();
  explicit event_loop(const options& opts);
  /// Cancels the tasks still alive, lets them finish, then closes the ring.
  ~event_loop();
  event_loop(const event_loop&) = delete;
  event_loop& operator=(const event_loop&) = delete;

  /// The loop running (or most recently created) on this thread, or null.
  static event_loop* current() noexcept;

  /// Runs the loop until `t` ends and returns its value or rethrows its
  /// exception. Tasks spawned meanwhile keep running on later calls.
  /// **Requires:** not called from a coroutine of this loop (no re-entrancy).
  template <class T>
  T run_until_complete(task<T> t);

  /// Runs until stop() is called.
  void run_forever();
  /// Makes run_forever() return after the current step. Loop thread only.
  void stop() noexcept { stop_requested_ = true; }

  /// One run step for a host that drives the loop: resumes what is ready,
  /// reaps completions and fires timers, waiting at most `max_wait` if
  /// nothing is ready. Returns true if the loop still has work (ready
  /// coroutines, live tasks, timers or operations in flight).
  bool run_once(std::chrono::nanoseconds max_wait = std::chrono::nanoseconds::zero());

  /// A descriptor (the ring's) that becomes readable when I/O completes or
  /// another thread posts work; poll it, then call run_once().
  [[nodiscard]] int fd() const noexcept;
  /// How long a host may sleep before the next run_once() is due: zero if
  /// coroutines are ready, the time to the next timer, or nullopt for "until fd() is readable".
  [[nodiscard]] std::optional<std::chrono::nanoseconds> next_timeout() const;

  /// Runs `fn` on the loop's thread soon (asyncio's call_soon_threadsafe).
  /// **Thread safety:** callable from any thread, also while the loop sleeps:
  /// at most one eventfd write wakes it per sleep. After the loop is
  /// destroyed, posted functions are dropped without running.
  void post(std::function<void()> fn);

  /// Replaces the handler for exceptions nobody retrieved (default: print to stderr).
  void set_exception_handler(exception_handler handler);

  /// The IORING_SETUP_* flags the ring was created with.
  [[nodiscard]] unsigned setup_flags() const noexcept;
  /// Counters since creation.
  [[nodiscard]] statistics stats() const noexcept;
  /// True while a run step of this loop is executing (on its thread).
  [[nodiscard]] bool running() const noexcept { return running_; }
  /// Spawned tasks that have not ended yet.
  [[nodiscard]] std::size_t live_tasks() const noexcept { return live_.size(); }

  // ---- for awaiters and combinators (coring's own headers) ----

  /// Queues a coroutine to be resumed in this loop's next batch.
  void schedule(std::coroutine_handle<> h) { ready_.push(h); }
  /// Registers / unregisters a deadline.
  void add_timer(detail::timer_node& t);
  void remove_timer(detail::timer_node& t) noexcept;
  /// Queues an SQE for `op` (submitted in the next run step).
  void submit(detail::ring_operation& op);
  /// Queues an ASYNC_CANCEL for `op`; `op` still completes through its CQE.
  void submit_cancel(detail::ring_operation& op);
  /// Tracks a spawned task so that shutdown can cancel it.
  void adopt(detail::task_node& n);
  void forget(detail::task_node& n) noexcept;
  /// Hands an unretrieved exception to the exception handler.
  void report(std::exception_ptr error, const char* task_name) noexcept;
  /// The inbox other threads post into; outlives the loop (closed at its end).
  [[nodiscard]] const std::shared_ptr<detail::inbox>& inbox() const noexcept { return inbox_; }
  /// Cancels every live task and runs until they have all ended.
  void cancel_all_and_drain();

 private:
  void step(bool may_block, std::int64_t max_wait_ns);
  void drain_inbox() noexcept;

  detail::ready_queue ready_;              // coroutines to resume, FIFO
  std::unique_ptr<detail::loop_core> core_;  // the ring, the timer heap: see loop_core.hpp
  std::shared_ptr<detail::inbox> inbox_;   // cross-thread posts; shared with producers
  std::vector<detail::task_node*> live_;   // spawned tasks that have not ended (node.live_index is the slot)
  exception_handler on_error_;             // null: print to stderr
  statistics stats_;                       // counters kept by the loop (wakeups live in the inbox)
  event_loop* previous_current_ = nullptr; // this thread's current loop before us
  std::thread::id owner_;                  // the thread that created the ring and alone may run it
  bool running_ = false;                   // inside run_until_complete / run_forever / run_once
  bool stop_requested_ = false;            // stop() was called
  bool draining_ = false;                  // cancel_all_and_drain() runs: new tasks are cancelled at once
};

/// Runs `t` on a new event loop until it ends (asyncio.run): returns its value
/// or rethrows its exception. Tasks it spawned and left running are then
/// cancelled and awaited before the loop closes.
template <class T>
T run(task<T> t);

}  // namespace coring

// run_until_complete and run are built on spawn.
#include <coring/spawn.hpp>
