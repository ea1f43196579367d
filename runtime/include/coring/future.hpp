#pragma once
// future<T>: the result of a job that runs on another thread or process,
// usable both from coroutines and from plain threads (concurrent.futures).
//
//   coring::future<int> f = pool.submit(work, 21);
//   int v = co_await f;            // in a coroutine: resumes on its own loop's thread
//   int w = f2.get();              // in plain code: blocks
//   if (f3.cancel()) { ... }       // a job that has not started never runs
//
// The executor owns the producing side through detail::future_state<T>;
// future<T> is the single consumer (move-only, like std::future).

#include <coring/detail/assert.hpp>
#include <coring/detail/duration.hpp>
#include <coring/detail/inbox.hpp>
#include <coring/detail/task_node.hpp>
#include <coring/error.hpp>
#include <coring/detail/loop_access.hpp>
#include <coring/event_loop.hpp>

#include <atomic>
#include <chrono>
#include <coroutine>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <utility>

namespace coring {

namespace detail {

/// Shared state of a job: its stage, its error, and who waits for it.
/// Reference-counted: the future holds one reference, the executor another.
/// Lock-free: one atomic word holds the stage, one slot the awaiting
/// coroutine; threads blocked in get()/wait() sleep on the word (futex).
class future_state_base {
 public:
  /// Where a job is. `handed`: given to a runner that begins it without
  /// telling the executor (a process pool's look-ahead); whether it has begun
  /// is in the executor's claim word, which cancel() and running() ask.
  enum class stage : std::uint8_t { pending, running, done, handed };

  /// What an executor's claim hook finds for a handed job (see on_handed).
  enum class claim : std::uint8_t {
    queued,   // not begun (and, asked to stop it, not stopped)
    stopped,  // asked to stop it: it never begins; cancel() ends it as cancelled
    started,  // the runner began it
    moved,    // not where the hook looked any more: read the stage again
  };

  /// A coroutine waiting for the job; lives in the awaiting frame. On
  /// completion it is pushed into its loop's inbox and resumed there.
  struct waiter : inbox_item {
    std::coroutine_handle<> handle;  // the awaiting coroutine
    std::shared_ptr<inbox> box;      // its loop's inbox
    task_node* node = nullptr;       // its cancellation state
  };

  future_state_base() = default;
  future_state_base(const future_state_base&) = delete;
  future_state_base& operator=(const future_state_base&) = delete;
  virtual ~future_state_base() = default;

  void add_ref() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  // ---- executor side ----
  /// pending → running. False if the job was cancelled: then it must not run.
  bool start() noexcept;
  /// pending → handed: the job goes to a runner that claims it (in a word the
  /// executor shares with it) before it begins, and skips it if a cancel
  /// claimed it first. False if the job was cancelled: then it must not run.
  /// **Requires:** on_handed() was called; the claim word is set up before.
  bool hand_over() noexcept;
  /// handed → pending: the executor claimed the job back before it began.
  /// **Requires:** the executor won that claim (so no cancel ended the job).
  void take_back() noexcept;
  /// The value or error is stored: → done; wakes blocked threads and the
  /// awaiting coroutine. A job cancelled meanwhile stays cancelled.
  void finish() noexcept;
  /// Stores `e` and finishes.
  void fail(std::exception_ptr e) noexcept {
    error_ = std::move(e);
    finish();
  }
  /// Lets the executor react when a running job is cancelled (a process
  /// pool kills the worker). Set before the job is published. The hook runs
  /// on the cancelling thread, possibly while the job finishes: a hook that
  /// defers its work must add_ref() the state first.
  void on_cancel_running(void (*fn)(future_state_base*, void*) noexcept, void* ctx) noexcept {
    cancel_running_ = fn;
    cancel_ctx_ = ctx;
  }
  /// Lets cancel() and running() ask where a handed job is: `fn(state, ctx,
  /// stop)` reads the executor's claim word and, if `stop`, tries to claim a
  /// job not begun for the cancel. It runs on the consumer's thread, with the
  /// cancel hook's context. Set before the job is published.
  void on_handed(claim (*fn)(const future_state_base*, void*, bool stop) noexcept) noexcept { claim_ = fn; }

  // ---- consumer side ----
  /// A pending job will never run (its result becomes coring::cancelled):
  /// true. A handed job is claimed first: not begun, it never runs (true);
  /// begun, it is running. A running job: the executor's cancel-running hook
  /// is called (if any) and false is returned. A finished job: false.
  bool cancel() noexcept;
  /// True if the job is running: started, or handed and claimed by its runner.
  [[nodiscard]] bool running() const noexcept;
  [[nodiscard]] bool ready() const noexcept { return stage_of(word_.load(std::memory_order_acquire)) == stage::done; }
  [[nodiscard]] stage current_stage() const noexcept { return stage_of(word_.load(std::memory_order_acquire)); }
  /// True if the job ended because cancel() stopped it before it started.
  [[nodiscard]] bool was_cancelled() const noexcept {
    return (word_.load(std::memory_order_acquire) & cancelled_bit) != 0;
  }
  void wait() noexcept;
  bool wait_until(std::chrono::steady_clock::time_point deadline) noexcept;
  /// Registers the awaiting coroutine. False if the job is already done.
  bool attach(waiter* w) noexcept;
  /// Takes the waiter back. False if delivery has already begun (its
  /// inbox item will run).
  bool detach(waiter* w) noexcept;

  std::exception_ptr error_;  // what the job threw

 protected:
  /// Rethrows the job's error (coring::cancelled for a cancelled job).
  void rethrow_if_failed() {
    if (was_cancelled()) throw cancelled{};
    if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
  }

 private:
  // word_: the stage in the low two bits, plus flags.
  static constexpr std::uint32_t stage_mask = 3;
  static constexpr std::uint32_t sleepers_bit = 4;   // a thread sleeps on the word: finish() must wake it
  static constexpr std::uint32_t cancelled_bit = 8;  // ended by cancel() before it started
  static stage stage_of(std::uint32_t w) noexcept { return static_cast<stage>(w & stage_mask); }
  static waiter* done_marker() noexcept { return reinterpret_cast<waiter*>(std::uintptr_t{1}); }
  bool end(std::uint32_t from_mask, std::uint32_t extra) noexcept;

  std::atomic<int> refs_{2};                     // the future and the executor
  std::atomic<std::uint32_t> word_{0};           // stage | flags; threads sleep on it
  std::atomic<waiter*> waiter_{nullptr};         // the awaiting coroutine, null, or done_marker() once delivered
  void (*cancel_running_)(future_state_base*, void*) noexcept = nullptr;  // executor's hook
  claim (*claim_)(const future_state_base*, void*, bool) noexcept = nullptr;  // asks a handed job's claim word
  void* cancel_ctx_ = nullptr;                   // the hooks' argument
};

template <class T>
class future_state : public future_state_base {
 public:
  /// Stores the job's value (then call finish()).
  template <class... A>
  void set_value(A&&... a) {
    value_.emplace(std::forward<A>(a)...);
  }
  // The exception leaves the shared state, so that it lives (and dies) on the
  // consumer's thread only, whoever drops the state's last reference.
  T take() {
    rethrow_if_failed();
    return std::move(*value_);
  }

 private:
  std::optional<T> value_;  // the job's value, once done without error
};

template <>
class future_state<void> : public future_state_base {
 public:
  void set_value() noexcept {}
  void take() { rethrow_if_failed(); }
};

/// True if a loop step runs on this thread (a blocking wait here would stall it).
bool on_loop_thread() noexcept;

}  // namespace detail

/// Awaiter of a future.
template <class T>
class [[nodiscard]] future_operation : detail::future_state_base::waiter, detail::cancel_hook {
 public:
  explicit future_operation(detail::future_state<T>* s) noexcept : detail::cancel_hook{&on_cancel}, state_(s) {
    run = &on_ready;
  }
  bool await_ready() const noexcept { return state_->ready(); }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) {
    node = detail::node_of(h);
    if (node && node->cancel_requested) {
      interrupted_ = true;
      return false;
    }
    event_loop* loop = event_loop::current();
    CORING_ASSERT(loop, "awaiting a coring::future needs an event loop on this thread");
    handle = h;
    box = detail::loop_access::inbox_of(*loop);
    if (!state_->attach(this)) return false;
    if (node) node->leaf = this;
    return true;
  }
  T await_resume() {
    if (interrupted_) {
      detail::consume_cancel(node);
      throw cancelled{};
    }
    // A job that our cancellation stopped before it started: that is the
    // cancellation, delivered here once.
    if (state_->was_cancelled()) detail::consume_cancel(node);
    try {
      return state_->take();
    } catch (const cancelled&) {
      // Stopped while running (a process pool kills the worker): the job can
      // end with coring::cancelled before on_cancel detaches us, and then it
      // is resumed as a result. That too is the cancellation, delivered once.
      detail::consume_cancel(node);
      throw;
    }
  }

 private:
  static void on_ready(detail::inbox_item* item, bool loop_alive) noexcept {
    auto* self = static_cast<future_operation*>(item);
    if (!loop_alive) return;
    if (self->node && self->node->leaf == self) self->node->leaf = nullptr;
    detail::loop_access::schedule(*event_loop::current(), self->handle);
  }
  static void on_cancel(detail::cancel_hook* c) noexcept {
    auto* self = static_cast<future_operation*>(c);
    self->state_->cancel();  // a pending job never runs; a running one is the executor's to stop
    if (self->state_->detach(self)) {
      self->interrupted_ = true;
      detail::loop_access::schedule(*event_loop::current(), self->handle);
    }
  }

  detail::future_state<T>* state_;  // shared with the executor; the future keeps it alive
  bool interrupted_ = false;        // resumed by cancellation, not by the result
};

/// The consumer side of a job's result. Move-only.
template <class T>
class [[nodiscard]] future {
 public:
  using value_type = T;

  /// An empty future (valid() is false).
  future() noexcept = default;
  /// Adopts one reference to `s` (executors use this).
  explicit future(detail::future_state<T>* s) noexcept : s_(s) {}
  future(future&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  future& operator=(future&& o) noexcept {
    if (this != &o) {
      reset();
      s_ = std::exchange(o.s_, nullptr);
    }
    return *this;
  }
  future(const future&) = delete;
  future& operator=(const future&) = delete;
  /// Drops the result; the job itself still runs (cancel() first to stop a pending one).
  ~future() { reset(); }

  [[nodiscard]] bool valid() const noexcept { return s_ != nullptr; }
  /// True once the job has ended (value, error or cancelled).
  [[nodiscard]] bool ready() const noexcept { return s_->ready(); }
  /// True while the job is running on a worker (never while it only waits
  /// in a worker's look-ahead).
  [[nodiscard]] bool running() const noexcept { return s_->running(); }

  /// Blocks until the job ends; gives its value or rethrows its exception
  /// (coring::cancelled if it was cancelled before it started).
  /// **Requires:** ready(), or not called on a thread that runs an event loop
  /// step (a wait there would stall the loop: co_await instead).
  T get() {
    wait();
    return s_->take();
  }
  /// Blocks until the job ends. **Requires:** as get().
  void wait() {
    if (s_->ready()) return;
    CORING_ASSERT(!detail::on_loop_thread(), "blocking future::wait/get on an event loop thread: co_await it");
    s_->wait();
  }
  /// Blocks at most `d`; true if the job has ended. **Requires:** as get().
  template <class Rep, class Period>
  bool wait_for(std::chrono::duration<Rep, Period> d) {
    CORING_ASSERT(!detail::on_loop_thread(), "blocking future::wait_for on an event loop thread");
    return s_->wait_until(detail::deadline_after(d));
  }
  /// Stops a job that has not started: it never runs, and the future ends
  /// with coring::cancelled. Returns false if the job is running or done
  /// (a process pool then kills the worker running it; a thread cannot be interrupted).
  bool cancel() noexcept { return s_->cancel(); }

  /// Waits without blocking the loop; the coroutine resumes on its own loop's
  /// thread, never on the worker.
  /// **Cancellation:** cancelling the awaiting task cancels the job if it has
  /// not started, stops waiting at once, and throws coring::cancelled.
  /// **Errors:** the job's exception, rethrown.
  future_operation<T> operator co_await() noexcept { return future_operation<T>(s_); }

  /// The shared state (for executors and as_completed).
  [[nodiscard]] detail::future_state<T>* state() const noexcept { return s_; }

 private:
  void reset() noexcept {
    if (s_) std::exchange(s_, nullptr)->release();
  }

  detail::future_state<T>* s_ = nullptr;  // one reference
};

}  // namespace coring
