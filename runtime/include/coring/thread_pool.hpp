#pragma once
// thread_pool: run blocking or CPU-heavy functions on worker threads and get
// their results back as coring::future<T> (concurrent.futures.ThreadPoolExecutor,
// asyncio's run_in_executor / to_thread).
//
//   coring::thread_pool pool;                       // min(32, cpus + 4) workers, made lazily
//   coring::future<int> f = pool.submit(parse, text);
//   int v = co_await f;                             // in a coroutine: resumes on its loop's thread
//   int w = pool.submit(parse, other).get();        // in plain code: blocks
//   std::vector<int> r = pool.map(square, inputs);  // plain code: results in input order
//   pool.shutdown({.wait = true, .cancel_pending = false});
//
//   std::string s = co_await coring::to_thread(read_file, path);  // the default pool
//
// One FIFO queue under a mutex; a worker is created when a job is queued and
// no idle worker is free to take it, up to max_workers; a worker idle for
// keep_alive retires. A job is one allocation: its record is the future's
// shared state and holds the callable and its arguments.

#include <coring/detail/assert.hpp>
#include <coring/detail/frame_allocator.hpp>
#include <coring/error.hpp>
#include <coring/future.hpp>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <functional>
#include <iterator>
#include <list>
#include <mutex>
#include <optional>
#include <ranges>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace coring {

namespace detail {
/// A queued job as the pool sees it: an intrusive FIFO link and two entry points.
struct pool_job_link {
  pool_job_link* next = nullptr;                        // next job in the queue
  void (*run)(pool_job_link* self) noexcept = nullptr;  // runs it (unless cancelled) and drops the pool's reference
  void (*drop)(pool_job_link* self) noexcept = nullptr; // cancels it unrun and drops the pool's reference
};

template <class R, class Fn, class Args>
class pool_job;

/// The value type of a job: the invoke result with references and cv removed
/// (a reference result is copied, since it crosses threads).
template <class F, class... A>
using job_result_t = std::remove_cvref_t<std::invoke_result_t<std::decay_t<F>&&, std::decay_t<A>&&...>>;
}  // namespace detail

/// How shutdown() treats jobs and workers.
struct shutdown_options {
  bool wait = true;             ///< block until every worker has ended (running and kept jobs done)
  bool cancel_pending = false;  ///< jobs not started yet never run: their futures end with coring::cancelled
};

/// A pool of worker threads with one FIFO job queue.
class thread_pool {
 public:
  /// Construction settings.
  struct options {
    std::size_t max_workers = default_size();                  ///< most threads alive at once (at least 1)
    std::chrono::milliseconds keep_alive{10'000};              ///< an idle worker retires after this long
  };

  /// asyncio's default executor size: min(32, hardware_concurrency + 4).
  [[nodiscard]] static std::size_t default_size() noexcept;

  /// A pool of at most `max_workers` threads (0 means default_size()); none is
  /// started until a job is submitted. **Thread safety:** the pool may be used
  /// from any number of threads at once.
  explicit thread_pool(std::size_t max_workers = default_size());
  /// A pool with the given options.
  explicit thread_pool(const options& opts);
  /// shutdown({.wait = true}): queued jobs still run, then every worker is joined.
  /// **Requires:** not destroyed by one of its own workers. It blocks: destroy
  /// a pool on a loop thread only if its jobs are short.
  ~thread_pool();
  thread_pool(const thread_pool&) = delete;
  thread_pool& operator=(const thread_pool&) = delete;

  /// Queues `f(args...)` (both decay-copied into the job) and returns the
  /// future of its result. The job runs on a worker; a coroutine awaiting the
  /// future resumes on its own loop's thread.
  /// **Cancellation:** future::cancel() (or cancelling the task awaiting it)
  /// before the job starts means it never runs (it stays queued, holding its
  /// callable, until a worker discards it); a running job runs to its end.
  /// **Errors:** coring::error "thread_pool: submit after shutdown" once
  /// shutdown() was called; std::system_error if no worker exists and none can
  /// be started; std::bad_alloc. What `f` throws reaches the future intact.
  /// **Thread safety:** any thread, also a worker of this pool.
  template <class F, class... A>
  [[nodiscard]] future<detail::job_result_t<F, A...>> submit(F&& f, A&&... args);

  /// Calls `f(x)` for every x of `inputs` on the pool and returns the results
  /// in input order (concurrent.futures' map, collected). Blocks.
  /// **Errors:** the first exception in input order is rethrown after the jobs
  /// not yet started are cancelled (the running ones are waited for); and as submit().
  /// **Requires:** not called on an event loop thread (await submit()'s futures there);
  /// `f` is copyable (one copy per job) and its result is not void.
  template <class F, std::ranges::input_range Range>
  [[nodiscard]] auto map(F&& f, Range&& inputs)
      -> std::vector<detail::job_result_t<F&, std::ranges::range_reference_t<Range>>>;

  /// Stops accepting jobs; with `cancel_pending` the queued jobs never run
  /// (their futures end with coring::cancelled), else the workers run them
  /// first; with `wait`, blocks until every worker has ended. A later call
  /// with wait = true after one without still waits (two concurrent waiting
  /// calls: one of them returns early).
  /// **Requires:** with wait, not called on an event loop thread nor by a worker of this pool.
  /// **Thread safety:** any thread.
  void shutdown(shutdown_options opts = {});

  /// The most workers this pool starts.
  [[nodiscard]] std::size_t max_workers() const noexcept { return max_workers_; }
  /// Workers alive now.
  [[nodiscard]] std::size_t worker_count() const;
  /// Jobs queued and not yet taken by a worker (cancelled ones included until a worker discards them).
  [[nodiscard]] std::size_t pending() const;

 private:
  void enqueue(detail::pool_job_link* job);
  void stop(shutdown_options opts);
  void worker_main(std::list<std::thread>::iterator self);
  void join_retired(std::unique_lock<std::mutex>& lock);

  const std::size_t max_workers_;                  // the size limit
  const std::chrono::milliseconds keep_alive_;     // idle time before a worker retires
  mutable std::mutex m_;                           // guards everything below
  std::condition_variable work_cv_;                // idle workers wait here for jobs
  detail::pool_job_link* head_ = nullptr;          // oldest queued job
  detail::pool_job_link* tail_ = nullptr;          // newest queued job
  std::size_t queued_ = 0;                         // length of the queue
  std::size_t live_ = 0;                           // workers started and not ended
  std::size_t idle_ = 0;                           // workers blocked in work_cv_
  std::size_t signalled_ = 0;                      // notifies sent to idle workers not yet taken up
  std::list<std::thread> threads_;                 // live workers (each knows its own node)
  std::list<std::thread> retired_;                 // workers that retired and still need a join
  bool stopping_ = false;                          // shutdown() was called
};

/// The process-wide default pool used by to_thread()
/// (asyncio's default executor): created on first use with default_size()
/// workers, shut down with wait at exit.
/// **Thread safety:** any thread.
[[nodiscard]] thread_pool& default_thread_pool();

/// Runs `f(args...)` on the default pool (asyncio.to_thread); await the
/// future. (net's DNS resolution does not use it: getaddrinfo runs on a lane of its own.)
/// **Cancellation:** as thread_pool::submit. **Errors:** as thread_pool::submit.
template <class F, class... A>
[[nodiscard]] future<detail::job_result_t<F, A...>> to_thread(F&& f, A&&... args) {
  return default_thread_pool().submit(std::forward<F>(f), std::forward<A>(args)...);
}

// ---------------------------------------------------------------- implementation

namespace detail {

/// One job: the future's shared state, the queue link, the callable and its arguments.
template <class R, class Fn, class Args>
class pool_job final : public future_state<R>, public pool_job_link {
 public:
  template <class F, class... A>
  explicit pool_job(F&& f, A&&... a) : work_(std::in_place, std::forward<F>(f), Args(std::forward<A>(a)...)) {
    pool_job_link::run = &run_it;
    pool_job_link::drop = &drop_it;
  }
  // From the frame allocator, as task frames: a burst of submits from the
  // loop thread would otherwise spend most of its time in malloc.
  static void* operator new(std::size_t n) { return allocate_frame(n); }
  static void operator delete(void* p, std::size_t n) noexcept { free_frame(p, n); }

 private:
  static void run_it(pool_job_link* link) noexcept {
    auto* self = static_cast<pool_job*>(link);
    if (self->start()) {
      try {
        if constexpr (std::is_void_v<R>) {
          std::apply(std::move(self->work_->first), std::move(self->work_->second));
          self->set_value();
        } else {
          self->set_value(std::apply(std::move(self->work_->first), std::move(self->work_->second)));
        }
      } catch (...) {
        self->error_ = std::current_exception();
      }
      // Free what the job captured before anyone can see its end.
      self->work_.reset();
      self->finish();
    } else {
      self->work_.reset();
    }
    self->release();
  }
  static void drop_it(pool_job_link* link) noexcept {
    auto* self = static_cast<pool_job*>(link);
    self->cancel();
    self->work_.reset();
    self->release();
  }

  std::optional<std::pair<Fn, Args>> work_;  // the callable and its arguments, until run or dropped
};

}  // namespace detail

template <class F, class... A>
future<detail::job_result_t<F, A...>> thread_pool::submit(F&& f, A&&... args) {
  using R = detail::job_result_t<F, A...>;
  using job = detail::pool_job<R, std::decay_t<F>, std::tuple<std::decay_t<A>...>>;
  auto* j = new job(std::forward<F>(f), std::forward<A>(args)...);
  try {
    enqueue(j);
  } catch (...) {
    delete j;  // never published: both references are ours
    throw;
  }
  return future<R>(j);
}

template <class F, std::ranges::input_range Range>
auto thread_pool::map(F&& f, Range&& inputs)
    -> std::vector<detail::job_result_t<F&, std::ranges::range_reference_t<Range>>> {
  using R = detail::job_result_t<F&, std::ranges::range_reference_t<Range>>;
  static_assert(!std::is_void_v<R>, "thread_pool::map needs a function with a result; use submit for void");
  CORING_ASSERT(!detail::on_loop_thread(), "thread_pool::map blocks: do not call it on an event loop thread");
  std::vector<future<R>> futures;
  if constexpr (std::ranges::sized_range<Range>) futures.reserve(std::ranges::size(inputs));
  try {
    for (auto&& x : inputs) futures.push_back(submit(f, std::forward<decltype(x)>(x)));
  } catch (...) {
    for (auto& fu : futures) fu.cancel();
    for (auto& fu : futures) fu.wait();
    throw;
  }
  std::vector<R> results;
  results.reserve(futures.size());
  for (std::size_t i = 0; i < futures.size(); ++i) {
    try {
      results.push_back(futures[i].get());
    } catch (...) {
      for (std::size_t k = i + 1; k < futures.size(); ++k) futures[k].cancel();
      for (std::size_t k = i + 1; k < futures.size(); ++k) futures[k].wait();
      throw;
    }
  }
  return results;
}

}  // namespace coring
