// Boost.Asio baseline for the coring runtime benchmark (bench/run_runtime_bench).
//
// Single-threaded Boost.Asio (C++20 coroutines: awaitable / co_spawn /
// use_awaitable) on an io_context with a single-thread, lock-free-I/O
// concurrency hint. Runs exactly ONE workload per process, named by argv[1],
// so that peak RSS is per workload, and prints exactly one line:
//
//   asio <workload> ns_per_op=<float> ops=<n> peak_rss_kib=<n> bytes_per_task=<float>
//
// Workloads (mirrored by coring's bench/runtime_bench):
//   spawn_join  1,000,000 x { co_await co_spawn(ex, trivial(i), use_awaitable) }
//   await_task  10,000,000 x { co_await trivial(i) }
//   yield       10,000,000 x { co_await post(ex, use_awaitable) }
//   sleep       1,000,000 concurrent coroutines, each waiting on a 10 ms
//               steady_timer; ns/op = wall time from first spawn until all
//               finished / 1e6; bytes_per_task = RSS growth (statm) from before
//               spawning to the moment all 1e6 are waiting, / 1e6.
//
// Build: g++ -std=c++20 -O2 -DNDEBUG bench/runtime_asio_baseline.cpp -o runtime_asio_baseline -pthread

// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

// g++ 12 -Wall -Wextra is clean with these headers. Under -fsanitize=thread
// (the tsan preset builds with -Werror), g++ 12 flags the std::atomic_thread_fence
// that Asio's std_fenced_block uses (-Wtsan); that is Boost's code, not ours.
#pragma GCC diagnostic push
#if defined(__SANITIZE_THREAD__) && !defined(__clang__) && __GNUC__ >= 12
#pragma GCC diagnostic ignored "-Wtsan"
#endif
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#pragma GCC diagnostic pop

#include "support/rss.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string_view>

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using clock_type = std::chrono::steady_clock;

namespace {

// Hint 1 already selects Asio's single-threaded scheduler fast paths;
// UNSAFE_IO additionally drops the reactor I/O locking. (Scheduler locking is
// kept, as the brief asks; BOOST_ASIO_CONCURRENCY_HINT_UNSAFE would drop it too.)
#ifndef ASIO_BASELINE_HINT
#define ASIO_BASELINE_HINT BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO
#endif

constexpr std::uint64_t kSpawnJoinOps = 1'000'000;
constexpr std::uint64_t kAwaitTaskOps = 10'000'000;
constexpr std::uint64_t kYieldOps = 10'000'000;
constexpr std::uint64_t kSleepTasks = 1'000'000;
constexpr auto kSleepDuration = std::chrono::milliseconds(10);

// Keeps results observable so the optimiser cannot drop the work.
volatile std::uint64_t g_sink = 0;

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "runtime_asio_baseline: %s\n", what);
  std::exit(1);
}

using bench::current_rss_bytes;
using bench::peak_rss_kib;

double elapsed_ns(clock_type::time_point a, clock_type::time_point b) {
  return static_cast<double>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(b - a).count());
}

struct Result {
  double total_ns = 0;
  std::uint64_t ops = 0;
  double bytes_per_task = 0;
};

// The trivial task: completes immediately with its argument.
awaitable<int> trivial(int i) { co_return i; }

void run_or_rethrow(asio::io_context& ctx, std::exception_ptr& error) {
  ctx.run();
  if (error) std::rethrow_exception(error);
}

auto record_error(std::exception_ptr& error) {
  return [&error](std::exception_ptr e) {
    if (e) error = e;
  };
}

// --- spawn_join -------------------------------------------------------------

awaitable<void> spawn_join_driver(Result& r) {
  auto ex = co_await asio::this_coro::executor;
  std::uint64_t sum = 0;
  const auto t0 = clock_type::now();
  for (std::uint64_t i = 0; i < kSpawnJoinOps; ++i) {
    sum += static_cast<std::uint64_t>(
        co_await asio::co_spawn(ex, trivial(static_cast<int>(i)), use_awaitable));
  }
  const auto t1 = clock_type::now();
  if (sum != kSpawnJoinOps * (kSpawnJoinOps - 1) / 2) fail("spawn_join: bad sum");
  g_sink = sum;
  r.total_ns = elapsed_ns(t0, t1);
  r.ops = kSpawnJoinOps;
}

// --- await_task -------------------------------------------------------------

awaitable<void> await_task_driver(Result& r) {
  std::uint64_t sum = 0;
  const auto t0 = clock_type::now();
  for (std::uint64_t i = 0; i < kAwaitTaskOps; ++i) {
    sum += static_cast<std::uint64_t>(co_await trivial(static_cast<int>(i)));
  }
  const auto t1 = clock_type::now();
  if (sum != kAwaitTaskOps * (kAwaitTaskOps - 1) / 2) fail("await_task: bad sum");
  g_sink = sum;
  r.total_ns = elapsed_ns(t0, t1);
  r.ops = kAwaitTaskOps;
}

// --- yield --------------------------------------------------------------------

awaitable<void> yield_driver(Result& r) {
  auto ex = co_await asio::this_coro::executor;
  std::uint64_t count = 0;
  const auto t0 = clock_type::now();
  for (std::uint64_t i = 0; i < kYieldOps; ++i) {
    co_await asio::post(ex, use_awaitable);
    ++count;
  }
  const auto t1 = clock_type::now();
  if (count != kYieldOps) fail("yield: bad count");
  g_sink = count;
  r.total_ns = elapsed_ns(t0, t1);
  r.ops = kYieldOps;
}

Result run_driver(awaitable<void> (*driver)(Result&)) {
  asio::io_context ctx(ASIO_BASELINE_HINT);
  Result r;
  std::exception_ptr error;
  asio::co_spawn(ctx, driver(r), record_error(error));
  run_or_rethrow(ctx, error);
  return r;
}

// --- sleep --------------------------------------------------------------------

struct SleepState {
  asio::io_context* ctx = nullptr;
  std::uint64_t waiting = 0;   // coroutines that have started their wait
  std::uint64_t finished = 0;  // coroutines whose wait has completed
  long rss_sleeping = -1;
  std::uint64_t finished_at_measure = 0;
};

awaitable<void> sleeper(SleepState& s) {
  asio::steady_timer t(*s.ctx, kSleepDuration);
  if (++s.waiting == kSleepTasks) {
    // This is the last sleeper. The posted handler runs only after this
    // coroutine has suspended in async_wait below, i.e. when all
    // kSleepTasks timers are armed: measure RSS right there.
    asio::post(*s.ctx, [&s] {
      s.rss_sleeping = current_rss_bytes();
      s.finished_at_measure = s.finished;
    });
  }
  co_await t.async_wait(use_awaitable);
  ++s.finished;
}

Result run_sleep() {
  asio::io_context ctx(ASIO_BASELINE_HINT);
  {
    // Instantiate the timer service (epoll/timerfd setup) before the baseline
    // RSS sample so it is not charged to the tasks.
    asio::steady_timer warm(ctx);
    (void)warm;
  }
  SleepState s;
  s.ctx = &ctx;
  std::exception_ptr error;

  const long rss_before = current_rss_bytes();
  const auto t0 = clock_type::now();
  for (std::uint64_t i = 0; i < kSleepTasks; ++i) {
    asio::co_spawn(ctx, sleeper(s), record_error(error));
  }
  run_or_rethrow(ctx, error);
  const auto t1 = clock_type::now();

  if (s.finished != kSleepTasks) fail("sleep: not all sleepers finished");
  if (s.rss_sleeping < 0) fail("sleep: RSS was never sampled");
  if (s.finished_at_measure != 0) {
    std::fprintf(stderr,
                 "runtime_asio_baseline: warning: %llu sleepers had already "
                 "finished when RSS was sampled\n",
                 static_cast<unsigned long long>(s.finished_at_measure));
  }
  g_sink = s.finished;

  Result r;
  r.total_ns = elapsed_ns(t0, t1);
  r.ops = kSleepTasks;
  r.bytes_per_task =
      static_cast<double>(s.rss_sleeping - rss_before) / static_cast<double>(kSleepTasks);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s spawn_join|await_task|yield|sleep\n", argv[0]);
    return 2;
  }
  const std::string_view workload = argv[1];
  Result r;
  try {
    if (workload == "spawn_join") {
      r = run_driver(spawn_join_driver);
    } else if (workload == "await_task") {
      r = run_driver(await_task_driver);
    } else if (workload == "yield") {
      r = run_driver(yield_driver);
    } else if (workload == "sleep") {
      r = run_sleep();
    } else {
      std::fprintf(stderr, "unknown workload '%s' (spawn_join|await_task|yield|sleep)\n",
                   argv[1]);
      return 2;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "runtime_asio_baseline: exception: %s\n", e.what());
    return 1;
  }
  if (r.ops == 0) fail("workload did not run");

  std::printf("asio %s ns_per_op=%.2f ops=%llu peak_rss_kib=%ld bytes_per_task=%.1f\n",
              argv[1], r.total_ns / static_cast<double>(r.ops),
              static_cast<unsigned long long>(r.ops), peak_rss_kib(), r.bytes_per_task);
  return 0;
}
