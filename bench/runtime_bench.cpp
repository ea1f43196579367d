// runtime_bench: what the core of coring costs, one workload per run so that
// peak RSS is per workload. Same workloads, same output line as
// bench/runtime_asio_baseline.cpp; bench/run_runtime_bench runs both and
// prints the ratios.
//
//   build/release/bench/runtime_bench spawn_join|await_task|yield|sleep
//
// Prints: coring <workload> ns_per_op=<ns> ops=<n> peak_rss_kib=<KiB> bytes_per_task=<bytes>
//   spawn_join  1,000,000 × spawn a trivial task<int> and join it       (ns per spawn+join)
//   await_task  10,000,000 × co_await a trivial task<int>              (ns per await)
//   yield       10,000,000 × co_await coring::yield() in one task      (ns per yield)
//   sleep       1,000,000 concurrent sleep_for(10ms), each in its own spawned task
//               (ns per sleeper, first spawn to last wake; bytes of RSS per sleeping task)

#include <coring/event_loop.hpp>
#include <coring/sleep.hpp>
#include <coring/spawn.hpp>
#include <coring/task.hpp>

#include "support/rss.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace {

using namespace std::chrono_literals;
using bench_clock = std::chrono::steady_clock;

constexpr std::uint64_t spawn_join_ops = 1'000'000;
constexpr std::uint64_t await_task_ops = 10'000'000;
constexpr std::uint64_t yield_ops = 10'000'000;
const std::uint64_t sleep_tasks = std::getenv("SLEEP_TASKS") ? std::strtoull(std::getenv("SLEEP_TASKS"), nullptr, 10) : 1'000'000;

volatile std::uint64_t sink = 0;

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "runtime_bench: %s\n", what);
  std::exit(1);
}

using bench::current_rss_bytes;
using bench::peak_rss_kib;

struct result {
  double total_ns = 0;
  std::uint64_t ops = 0;
  double bytes_per_task = 0;
};

double ns_between(bench_clock::time_point a, bench_clock::time_point b) {
  return static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(b - a).count());
}

coring::task<int> trivial(int i) { co_return i; }

coring::task<> spawn_join(result& r) {
  std::uint64_t sum = 0;
  auto t0 = bench_clock::now();
  for (std::uint64_t i = 0; i < spawn_join_ops; ++i) {
    sum += static_cast<std::uint64_t>(co_await coring::spawn(trivial(static_cast<int>(i))));
  }
  auto t1 = bench_clock::now();
  if (sum != spawn_join_ops * (spawn_join_ops - 1) / 2) fail("spawn_join: bad sum");
  sink = sum;
  r = {ns_between(t0, t1), spawn_join_ops, 0};
}

coring::task<> await_task(result& r) {
  std::uint64_t sum = 0;
  auto t0 = bench_clock::now();
  for (std::uint64_t i = 0; i < await_task_ops; ++i) sum += static_cast<std::uint64_t>(co_await trivial(static_cast<int>(i)));
  auto t1 = bench_clock::now();
  if (sum != await_task_ops * (await_task_ops - 1) / 2) fail("await_task: bad sum");
  sink = sum;
  r = {ns_between(t0, t1), await_task_ops, 0};
}

coring::task<> yield_loop(result& r) {
  std::uint64_t count = 0;
  auto t0 = bench_clock::now();
  for (std::uint64_t i = 0; i < yield_ops; ++i) {
    co_await coring::yield();
    ++count;
  }
  auto t1 = bench_clock::now();
  if (count != yield_ops) fail("yield: bad count");
  sink = count;
  r = {ns_between(t0, t1), yield_ops, 0};
}

struct sleep_state {
  std::uint64_t waiting = 0;   // sleepers that have started their sleep
  std::uint64_t finished = 0;  // sleepers whose sleep has ended
  long rss_sleeping = -1;      // RSS when the last one started sleeping
};

coring::task<> sleeper(sleep_state& s) {
  if (++s.waiting == sleep_tasks) s.rss_sleeping = current_rss_bytes();
  co_await coring::sleep_for(10ms);
  ++s.finished;
}

result run_sleep() {
  coring::event_loop loop;
  sleep_state s;
  const long rss_before = current_rss_bytes();
  auto t0 = bench_clock::now();
  for (std::uint64_t i = 0; i < sleep_tasks; ++i) coring::spawn(sleeper(s)).detach();
  while (loop.live_tasks() != 0) loop.run_once(std::chrono::hours(1));
  auto t1 = bench_clock::now();
  if (s.finished != sleep_tasks) fail("sleep: not all sleepers finished");
  return {ns_between(t0, t1), sleep_tasks, static_cast<double>(s.rss_sleeping - rss_before) / sleep_tasks};
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s spawn_join|await_task|yield|sleep\n", argv[0]);
    return 2;
  }
  std::string_view w = argv[1];
  result r;
  if (w == "spawn_join") {
    coring::run(spawn_join(r));
  } else if (w == "await_task") {
    coring::run(await_task(r));
  } else if (w == "yield") {
    coring::run(yield_loop(r));
  } else if (w == "sleep") {
    r = run_sleep();
  } else {
    std::fprintf(stderr, "unknown workload '%s' (spawn_join|await_task|yield|sleep)\n", argv[1]);
    return 2;
  }
  std::printf("coring %s ns_per_op=%.2f ops=%llu peak_rss_kib=%ld bytes_per_task=%.1f\n", argv[1],
              r.total_ns / static_cast<double>(r.ops), static_cast<unsigned long long>(r.ops), peak_rss_kib(),
              r.bytes_per_task);
}
