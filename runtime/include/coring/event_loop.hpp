#pragma once
// event_loop: one thread's io_uring-backed loop that runs coroutine tasks.
//
//   int v = coring::run(main_task());          // asyncio.run(main())
//
//   coring::event_loop loop;                   // or drive one yourself
//   int v = loop.run_until_complete(main_task());
//
// A loop belongs to the thread that created it: every coroutine of the loop
// is resumed on that thread. A run step submits queued ring operations and
// reaps completions in one batch (waiting only when nothing is ready), fires
// expired timers, runs functions posted from other threads, then resumes the
// ready coroutines in FIFO order.
//
// Embedding: a host service (its own epoll loop, a Boost.Asio io_context, a
// libuv loop) drives the loop with fd(), next_timeout() and run_once(); the
// contract is written out once, above run_once() below. To run a loop on a
// thread of its own instead, see <coring/loop_thread.hpp>.

#include <coring/detail/assert.hpp>
#include <coring/detail/duration.hpp>
#include <coring/detail/inbox.hpp>
#include <coring/detail/ready_queue.hpp>
#include <coring/detail/sigint.hpp>
#include <coring/detail/task_node.hpp>
#include <coring/error.hpp>
#include <coring/task.hpp>
#include <coring/timer_handle.hpp>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace coring {

namespace detail {
class loop_core;
struct loop_access;
/// A posted function that threw goes to the loop's exception handler.
void report_posted_failure(std::exception_ptr error) noexcept;
/// A function posted to a loop: one allocation holding the callable.
template <class Fn>
struct posted_call final : inbox_item {
  Fn fn;
  explicit posted_call(Fn&& f) : fn(std::move(f)) { run = &run_it; }
  static void run_it(inbox_item* self, bool loop_alive) noexcept {
    auto* p = static_cast<posted_call*>(self);
    if (loop_alive) {
      try {
        p->fn();
      } catch (...) {
        report_posted_failure(std::current_exception());
      }
    }
    delete p;
  }
};
}  // namespace detail

class event_loop {
 public:
  /// How the loop is set up.
  struct options {
    unsigned ring_entries = 1024;  ///< submission queue size (power of two)
    /// How long run_once() goes on running work that is ready before it
    /// returns to its host, so that the host's own descriptors are served.
    std::chrono::nanoseconds run_once_slice = std::chrono::microseconds(500);
    /// Batched wake-ups, off (0) by default. When the loop has nothing to
    /// run and at least 8 ring operations in flight, it lets the kernel hold
    /// its wake-up for up to this long until a quarter of them (2 to 64)
    /// have completed; past that, the first completion wakes it as usual.
    /// For programs that keep many connections busy (a client fetching over
    /// 100 connections, a loaded server): fewer wake-ups, larger batches of
    /// sends, and so less CPU per request on both sides; the price is up to
    /// this much added latency on a wake-up that finds fewer completions.
    /// Timers, cancellations and cross-thread wake-ups still come on time
    /// or within this bound. Needs io_uring's min-wait (Linux 6.12); on
    /// older kernels it is ignored (see batch_wait()). At most 1 s.
    std::chrono::microseconds batch_wait{0};
  };

  /// Counters for tests and tuning.
  struct statistics {
    std::uint64_t steps = 0;          ///< run steps taken
    std::uint64_t blocking_waits = 0; ///< times the loop parked in the ring
    std::uint64_t host_parks = 0;     ///< times the loop was left idle to its host with fd() armed (run_once, next_timeout)
    std::uint64_t wakeups = 0;        ///< eventfd writes made by other threads to wake it (at most one per park of either kind)
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
  /// Never throws: a ring that fails meanwhile is reported on stderr and the
  /// frames of tasks that could not end are leaked rather than freed under
  /// the kernel.
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

  // ---- Embedding: the contract between the loop and a host that drives it ----
  //
  // What to watch: fd(), for readability only (POLLIN, EPOLLIN, Asio's
  //   async_wait(wait_read), libuv's UV_READABLE). It is an eventfd that the
  //   kernel signals when ring operations complete (io_uring_register_eventfd:
  //   the ring's own fd is not woken for DEFER_TASKRUN's deferred work) and
  //   that other threads write when they post work, finish a future the loop
  //   awaits or cancel one. Never read or write it yourself: run_once()
  //   empties it.
  // How long the host may sleep: next_timeout(). Zero: call run_once() now,
  //   without sleeping. A duration: the next timer is due then (round up to
  //   your timer's granularity; waking early costs one idle run_once()).
  //   nullopt: only fd() can bring work.
  // When to call what: the host's loop is
  //     for (;;) {
  //       auto t = loop.next_timeout();       // after anything that touched the loop
  //       sleep until fd() is readable, or t passes (with your own descriptors);
  //       loop.run_once();                    // fd() readable, t passed, or t was zero
  //     }
  //   run_once() (no argument) never blocks: it runs what is ready for at most
  //   options::run_once_slice, then empties fd() and arms it before returning.
  //   Calling it when nothing is ready is harmless; a host that wakes only for
  //   fd() and t never spins.
  // From which thread: run_once(), next_timeout(), spawn() and everything that
  //   touches tasks, on the thread that created the loop, between run_once()
  //   calls or inside the loop's coroutines. Work the host starts there outside
  //   run_once() (spawn(), a join_handle's cancel(), event::set()) makes
  //   next_timeout() zero: ask it again before sleeping. post() and the
  //   futures of thread_pool, process_pool and run_coroutine_threadsafe: any
  //   thread; they make fd() readable.
  // From inside a coroutine of the loop: post(), spawn(), stop(), fd() and
  //   next_timeout() are fine; run_once(), run_until_complete() and
  //   run_forever() are not (no re-entrancy; asserted in debug builds).
  // Mixing: run_until_complete() and run_forever() may run in between (they
  //   block in the ring itself); the next next_timeout() or run_once() re-arms fd().
  // Lifetime: take fd() out of your poller before the loop is destroyed.

  /// Runs the loop for a host: waits at most `max_wait` for work if nothing is
  /// ready (zero, the default: never waits), then runs steps while work is
  /// ready, for at most options::run_once_slice. When it returns with nothing
  /// ready, fd() is empty and armed: it becomes readable for any new work.
  /// Returns true if the loop still has work (ready coroutines, live tasks,
  /// timers or operations in flight).
  /// **Errors:** io_error if the ring fails, or (first call only) if the kernel
  /// refuses to register fd() with the ring.
  /// **Requires:** called on the loop's thread, not from one of its coroutines.
  bool run_once(std::chrono::nanoseconds max_wait = std::chrono::nanoseconds::zero());

  /// The descriptor a host polls for readability: it becomes readable when a
  /// ring operation completes, another thread posts work, or a future the
  /// loop awaits ends or is cancelled. Valid for the loop's lifetime; never
  /// changes. See the embedding contract above.
  /// **Thread safety:** any thread.
  [[nodiscard]] int fd() const noexcept;
  /// How long a host may sleep before the next run_once() is due: zero if
  /// work is ready (coroutines, posted functions, operations to submit), the
  /// time to the next timer, or nullopt for "until fd() is readable". If
  /// fd() is not armed yet (a new loop, or one that ran run_until_complete),
  /// arms it first, as run_once() does before it returns.
  /// **Errors:** as run_once() (arming may enter the kernel).
  /// **Requires:** called on the loop's thread. From inside a coroutine of the
  /// loop it always says zero.
  [[nodiscard]] std::optional<std::chrono::nanoseconds> next_timeout();

  /// Runs `fn` on the loop's thread soon (asyncio's call_soon_threadsafe).
  /// **Thread safety:** callable from any thread, also while the loop sleeps:
  /// at most one eventfd write wakes it per sleep. After the loop is
  /// destroyed, posted functions are dropped without running.
  /// **Errors:** std::bad_alloc (the one allocation that holds `fn`).
  template <class Fn>
  void post(Fn fn) {
    post_item(new detail::posted_call<Fn>(std::move(fn)));
  }

  /// Calls `fn()` on the loop's thread once `delay` has passed (asyncio's
  /// loop.call_later); returns a handle that can cancel it. The call happens
  /// in the step that fires timers, in deadline order; an exception from
  /// `fn` goes to the exception handler. A function still scheduled when the
  /// loop is destroyed is dropped without running. Durations as sleep_for:
  /// max() never fires, zero and negative fire on the next step.
  /// **Errors:** std::bad_alloc (one allocation holds `fn`).
  /// **Requires:** called on the loop's thread.
  template <class Rep, class Period, class Fn>
  timer_handle call_later(std::chrono::duration<Rep, Period> delay, Fn fn) {
    return call_at(detail::deadline_after(delay), std::move(fn));
  }
  /// As call_later, at `when` on the steady clock (asyncio's loop.call_at).
  template <class Fn>
  timer_handle call_at(std::chrono::steady_clock::time_point when, Fn fn);

  /// Replaces the handler for exceptions nobody retrieved (default: print to stderr).
  void set_exception_handler(exception_handler handler);

  /// The IORING_SETUP_* flags the ring was created with.
  [[nodiscard]] unsigned setup_flags() const noexcept;
  /// Counters since creation.
  [[nodiscard]] statistics stats() const noexcept;
  /// options::batch_wait as it applies: 0 if it was not asked for or the
  /// kernel lacks io_uring's min-wait (IORING_FEAT_MIN_TIMEOUT, Linux 6.12).
  [[nodiscard]] std::chrono::microseconds batch_wait() const noexcept;
  /// True while a run step of this loop is executing (on its thread).
  [[nodiscard]] bool running() const noexcept { return running_; }
  /// Spawned tasks that have not ended yet.
  [[nodiscard]] std::size_t live_tasks() const noexcept { return live_.size(); }

  /// Prints every live task of the loop (asyncio's print_stack for all
  /// tasks, Python 3.14's `python -m asyncio ps`): its name, whether it is
  /// cancelling, what it awaits (a sleep until when, a read on which fd, the
  /// future of which job, a child set of how many, a join of which task...)
  /// and its await chain, innermost coroutine first (names from the
  /// binary's symbol table; "file+0xoffset" for addr2line if it was
  /// stripped). Tasks another one waits for (a joined task, the children of
  /// a gather) are listed, indented, under it. See dump_tasks_on() in
  /// <coring/signal.hpp> to print it on SIGUSR1.
  /// **Requires:** called on the loop's thread (from a task, a callback, or between run steps).
  void dump_tasks(std::FILE* out = stderr) const;
  /// The report dump_tasks() prints.
  [[nodiscard]] std::string describe_tasks() const;

 private:
  friend struct detail::loop_access;  // what awaiters and combinators may do: <coring/detail/loop_access.hpp>

  void post_item(detail::inbox_item* item) noexcept;
  void step(bool may_block, std::int64_t max_wait_ns);
  bool hand_to_host();
  void leave_host_park() noexcept;
  void drain_inbox() noexcept;
  void cancel_all_and_drain();
  void shut_down() noexcept;

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
  bool host_parked_ = false;               // run_once() left the loop idle with fd() armed; the next run unparks
};

/// How coring::run runs its task.
struct run_options {
  /// Watch SIGINT (on the main thread, when it has its default disposition):
  /// the first cancels the main task, and run() then throws
  /// coring::interrupted; a second has the default action. See <coring/signal.hpp>.
  bool handle_sigint = true;
  /// The options of the loop run() creates.
  event_loop::options loop{};
};

/// Runs `t` on a new event loop until it ends (asyncio.run): returns its value
/// or rethrows its exception. Tasks it spawned and left running are then
/// cancelled and awaited before the loop closes.
/// **Errors:** what `t` throws; coring::interrupted if SIGINT cancelled it
/// (unless `opts.handle_sigint` is false).
template <class T>
T run(task<T> t, run_options opts = {});

// ---------------------------------------------------------------- implementation

template <class T>
T event_loop::run_until_complete(task<T> t) {
  CORING_ASSERT(!running_, "event_loop::run_until_complete called re-entrantly");
  if (host_parked_) leave_host_park();
  auto h = detail::start_spawned(*this, t, "main");
  struct owner {
    decltype(h) frame;
    ~owner() { detail::release_spawned(frame.promise(), frame.address()); }
  } own{h};
  while (!h.promise().own_node_.done) step(true, -1);
  return detail::take_spawned(h);
}

template <class Fn>
timer_handle event_loop::call_at(std::chrono::steady_clock::time_point when, Fn fn) {
  auto* c = new detail::scheduled_call_of<Fn>(std::move(fn));
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(when.time_since_epoch()).count();
  c->deadline_ns = ns > 0 ? ns : 0;
  try {
    detail::schedule_call(*this, *c);
  } catch (...) {
    c->destroy(c);
    throw;
  }
  return timer_handle(c);
}

template <class T>
T run(task<T> t, run_options opts) {
  event_loop loop(opts.loop);  // its destructor cancels and awaits what the task left running
  if (!opts.handle_sigint) return loop.run_until_complete(std::move(t));
  detail::sigint_handling sigint;  // ends before the loop: a SIGINT during the shutdown has the default action
  try {
    return loop.run_until_complete(detail::with_sigint(std::move(t), sigint));
  } catch (const cancelled&) {
    if (sigint.fired()) throw interrupted(SIGINT);
    throw;
  }
}

}  // namespace coring
