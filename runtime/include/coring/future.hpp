#pragma once
// future<T>: the result of a job that runs on another thread or process,
// usable both from coroutines and from plain threads (concurrent.futures).
//
//   coring::future<int> f = pool.submit(work, 21);
//   int v = co_await f;            // in a coroutine: resumes on its own loop's thread
//   int w = f2.get();              // in plain code: blocks
//   if (f3.cancel()) { ... }       // a job that has not started never runs
//   f4.add_done_callback([] { ... });               // plain code: told on the completing thread
//   coring::future<int> g = std::move(f5).then([](int v) { return v * 2; });
//
// The executor owns the producing side through detail::future_state<T>;
// future<T> is the single consumer (move-only, like std::future).

#include <coring/detail/assert.hpp>
#include <coring/detail/duration.hpp>
#include <coring/detail/inbox.hpp>
#include <coring/detail/introspection.hpp>
#include <coring/detail/task_node.hpp>
#include <coring/error.hpp>
#include <coring/detail/loop_access.hpp>
#include <coring/event_loop.hpp>

#include <atomic>
#include <chrono>
#include <coroutine>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

namespace coring {

namespace detail {

/// A function to call when a job ends (future::add_done_callback, then).
/// Lives on the heap until it has run; `run` frees it.
struct done_callback_node {
  done_callback_node* next = nullptr;  // the next callback registered before this one
  /// Calls the function (if `call`) and frees the node.
  void (*run)(done_callback_node* self, bool call) noexcept = nullptr;
};

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
  /// Frees callbacks that never ran (a state that never finished).
  virtual ~future_state_base();

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
  /// Registers a callback to run when the job ends, on the thread that ends
  /// it. False if the job has already ended: then the caller runs it.
  bool add_callback(done_callback_node* c) noexcept;

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
  static done_callback_node* callbacks_done() noexcept {
    return reinterpret_cast<done_callback_node*>(std::uintptr_t{1});
  }
  bool end(std::uint32_t from_mask, std::uint32_t extra) noexcept;
  void run_callbacks() noexcept;

  std::atomic<int> refs_{2};                     // the future and the executor
  std::atomic<std::uint32_t> word_{0};           // stage | flags; threads sleep on it
  std::atomic<waiter*> waiter_{nullptr};         // the awaiting coroutine, null, or done_marker() once delivered
  std::atomic<done_callback_node*> callbacks_{nullptr};  // newest first; callbacks_done() once they ran
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

/// A done callback that threw: reported on stderr (the completing thread
/// has nobody to give it to, as concurrent.futures logs it).
void report_callback_failure(std::exception_ptr error) noexcept;

/// add_done_callback's node: one allocation holding the function.
template <class Fn>
struct callback_of final : done_callback_node {
  Fn fn;
  explicit callback_of(Fn&& f) : fn(std::move(f)) { run = &run_it; }
  static void run_it(done_callback_node* self, bool call) noexcept {
    auto* c = static_cast<callback_of*>(self);
    if (call) {
      try {
        c->fn();
      } catch (...) {
        report_callback_failure(std::current_exception());
      }
    }
    delete c;
  }
};

/// The state of a future made by then(): it keeps the source's state alive
/// so that cancelling it can reach the source job.
template <class R>
class then_state final : public future_state<R> {
 public:
  explicit then_state(future_state_base* source) noexcept : source_(source) {
    source_->add_ref();
    // "Running" from the start: cancel() then calls the hook below, which
    // cancels the source, and its end ends this one.
    this->start();
    this->on_cancel_running(
        [](future_state_base*, void* src) noexcept { static_cast<future_state_base*>(src)->cancel(); }, source_);
  }
  ~then_state() override { source_->release(); }

 private:
  future_state_base* source_;  // one reference
};

/// then()'s node: owns the source future and one reference to the new state.
template <class T, class R, class Fn>
struct continuation_of final : done_callback_node {
  future_state<T>* source;  // one reference (the consumed future's)
  then_state<R>* next;      // one reference
  Fn fn;
  continuation_of(future_state<T>* s, then_state<R>* n, Fn&& f) : source(s), next(n), fn(std::move(f)) {
    run = &run_it;
  }
  static void run_it(done_callback_node* self, bool call) noexcept {
    auto* c = static_cast<continuation_of*>(self);
    if (call) {
      try {
        if constexpr (std::is_void_v<T> && std::is_void_v<R>) {
          c->source->take();
          c->fn();
          c->next->set_value();
        } else if constexpr (std::is_void_v<T>) {
          c->source->take();
          c->next->set_value(c->fn());
        } else if constexpr (std::is_void_v<R>) {
          c->fn(c->source->take());
          c->next->set_value();
        } else {
          c->next->set_value(c->fn(c->source->take()));
        }
      } catch (...) {
        c->next->error_ = std::current_exception();
      }
      c->next->finish();
    } else {
      c->next->fail(std::make_exception_ptr(cancelled{}));
    }
    c->source->release();
    c->next->release();
    delete c;
  }
};

/// What then(fn) gives for a future<T>.
template <class T, class Fn>
struct then_result {
  using type = std::invoke_result_t<Fn&, T>;
};
template <class Fn>
struct then_result<void, Fn> {
  using type = std::invoke_result_t<Fn&>;
};

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
    (void)&described_;  // registers this instantiation with dump_tasks()
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
      // The job ended cancelled before our hook could detach us (a
      // run_coroutine_threadsafe task that our cancellation reached; a
      // process-pool job whose worker was killed for it): that exception is
      // the delivery, so a pending request is spent.
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
  // For dump_tasks(): "future of job 0x55d0c3a0 (running)"; the state's address names the job.
  static void describe(const detail::cancel_hook& c, detail::leaf_report& out) {
    const auto& self = static_cast<const future_operation&>(c);
    char id[32];
    std::snprintf(id, sizeof id, "%p", static_cast<const void*>(self.state_));
    const auto stage = self.state_->current_stage();
    out.what = std::string("future of job ") + id +
               (stage == detail::future_state_base::stage::running ? " (running)"
                : stage == detail::future_state_base::stage::pending ? " (queued)"
                                                                     : " (done)");
    out.frame = self.handle;
  }
  static void on_cancel(detail::cancel_hook* c) noexcept {
    auto* self = static_cast<future_operation*>(c);
    self->state_->cancel();  // a pending job never runs; a running one is the executor's to stop
    if (self->state_->detach(self)) {
      self->interrupted_ = true;
      detail::loop_access::schedule(*event_loop::current(), self->handle);
    }
  }
  static inline const bool described_ = detail::register_leaf(&on_cancel, &describe);

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
  /// (a process pool then kills the worker running it; a thread cannot be
  /// interrupted; a run_coroutine_threadsafe task is cancelled on its loop).
  bool cancel() noexcept { return s_->cancel(); }

  /// Calls `fn()` once when the job ends — with a value, an error or
  /// cancelled — on the thread that ends it: a pool's worker thread, the
  /// loop thread of a run_coroutine_threadsafe task, or the thread calling
  /// cancel(). If the job has already ended, calls it now, on this thread.
  /// Keep it short and non-blocking (it delays that thread); read the result
  /// from the future afterwards (ready() is true from inside the callback).
  /// Several callbacks run in the order they were added
  /// (concurrent.futures' add_done_callback).
  /// **Errors:** std::bad_alloc (one allocation holding `fn`). An exception
  /// `fn` throws is reported on stderr, never propagated.
  /// **Thread safety:** any thread, also concurrently with the job's end.
  template <class Fn>
  void add_done_callback(Fn fn) {
    auto* node = new detail::callback_of<Fn>(std::move(fn));
    if (!s_->add_callback(node)) node->run(node, true);
  }

  /// Consumes this future and gives one of `fn(value)` (`fn()` for a
  /// future<void>), computed on the thread that ends the job (see
  /// add_done_callback) — a continuation for plain code, without a loop.
  /// An error of the job skips `fn` and ends the new future with it; an
  /// exception from `fn` does too.
  /// **Cancellation:** cancel() on the new future cancels this job (a
  /// pending job never runs; the new future then ends with coring::cancelled).
  /// **Errors:** std::bad_alloc (the new state and the continuation).
  template <class Fn>
  [[nodiscard]] auto then(Fn fn) && -> future<typename detail::then_result<T, Fn>::type> {
    using R = typename detail::then_result<T, Fn>::type;
    CORING_ASSERT(s_, "then() on an empty future");
    auto* next = new detail::then_state<R>(s_);  // references: the returned future's and the continuation's
    detail::continuation_of<T, R, Fn>* node;
    try {
      node = new detail::continuation_of<T, R, Fn>(s_, next, std::move(fn));
    } catch (...) {
      next->release();
      next->release();
      throw;
    }
    s_ = nullptr;  // the continuation holds our reference now
    future<R> out(next);
    if (!node->source->add_callback(node)) node->run(node, true);
    return out;
  }

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
