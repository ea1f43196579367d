// pipeline: an async generator feeding a process pool, at most K jobs in
// flight, results streamed in input order; Ctrl-C stops it cleanly.
//
//   build/release/examples/pipeline [--count N] [--workers W] [--in-flight K] [--slow]
//
// A generator yields work items with a short await between them, as if they
// came from a socket; each one goes to a process pool (counting the primes
// below it: CPU work, in another process); at most K (default 4) jobs are in
// flight, and each result prints as soon as it and every one before it are
// done — in input order, while later jobs still run. With --slow the items
// come every 300 ms, so that there is time to press Ctrl-C or to send
// SIGUSR1 (kill -USR1 <pid>), which prints every task and what it awaits.
//
// Ctrl-C: coring::run cancels the main task where it waits (a future, or the
// generator's sleep); the jobs in flight are cancelled (a running one's
// worker is killed), the generator is closed, the pool is shut down, and the
// program prints "interrupted" and exits with status 130. It ends by itself
// otherwise, after N items (default 24).

#include <coring/coring.hpp>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <string>
#include <utility>

using namespace std::chrono_literals;

namespace {

struct settings {
  int count = 24;
  unsigned workers = 2;
  std::size_t in_flight = 4;
  std::chrono::milliseconds pause{2};
};

// The job: CPU-bound, run in a worker process.
long primes_below(long limit) {
  long found = 0;
  for (long n = 2; n < limit; ++n) {
    bool prime = true;
    for (long d = 2; d * d <= n; ++d) {
      if (n % d == 0) {
        prime = false;
        break;
      }
    }
    found += prime;
  }
  return found;
}

// The source: items arrive one by one, with an await between them.
coring::generator<long> work_items(int count, std::chrono::milliseconds pause) {
  for (int i = 1; i <= count; ++i) {
    co_await coring::sleep_for(pause);
    co_yield 20'000L + 7'919L * (i % 7);
  }
}

// The jobs in flight, oldest first. If the pipeline stops early, the ones
// still here are cancelled (a queued job never runs; a running one's worker
// is killed).
struct in_flight_jobs {
  std::deque<std::pair<long, coring::future<long>>> jobs;
  ~in_flight_jobs() {
    for (auto& [n, f] : jobs) f.cancel();
  }
};

coring::task<> stream_results(coring::process_pool& pool, coring::generator<long> items, std::size_t limit) {
  in_flight_jobs window;
  int printed = 0;
  auto print_oldest = [&]() -> coring::task<> {
    auto& [n, f] = window.jobs.front();
    const long primes = co_await f;
    std::printf("item %2d: %ld primes below %ld\n", ++printed, primes, n);
    std::fflush(stdout);
    window.jobs.pop_front();
  };
  co_await coring::for_each(std::move(items), [&](long n) -> coring::task<> {
    window.jobs.emplace_back(n, pool.submit(primes_below, n));
    if (window.jobs.size() >= limit) co_await print_oldest();  // back-pressure: the generator waits
  });
  while (!window.jobs.empty()) co_await print_oldest();
}

coring::task<> pipeline(settings s) {
  // SIGUSR1 prints every task; ended with the loop.
  coring::spawn(coring::dump_tasks_on(SIGUSR1), "SIGUSR1: dump_tasks").detach();
  co_await coring::yield();  // it runs, and blocks SIGUSR1 on this thread
  // Made now, in the main task: the pool's manager thread starts with
  // SIGINT (blocked by coring::run) and SIGUSR1 blocked, as this thread has
  // them, so those signals come to the loop and not to it.
  coring::process_pool pool({.workers = s.workers});
  std::exception_ptr stopped;
  try {
    co_await stream_results(pool, work_items(s.count, s.pause), s.in_flight);
  } catch (...) {
    stopped = std::current_exception();
  }
  // The cancellation, if any, was delivered once: this wait runs normally.
  co_await pool.shutdown_async(
      {.wait = true, .cancel_pending = stopped != nullptr, .kill = stopped != nullptr});
  if (stopped) std::rethrow_exception(stopped);
  std::printf("done: %d items\n", s.count);
}

}  // namespace

int main(int argc, char** argv) {
  // First: the fork server is forked while this process has one thread.
  coring::process_pool::start_fork_server();
  settings s;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> long { return i + 1 < argc ? std::atol(argv[++i]) : 0; };
    if (arg == "--count") {
      s.count = static_cast<int>(value());
    } else if (arg == "--workers") {
      s.workers = static_cast<unsigned>(value());
    } else if (arg == "--in-flight") {
      s.in_flight = static_cast<std::size_t>(value());
    } else if (arg == "--slow") {
      s.pause = 300ms;
    } else {
      std::printf("usage: pipeline [--count N] [--workers W] [--in-flight K] [--slow]\n");
      return arg == "--help" ? 0 : 2;
    }
  }
  if (s.count < 0 || s.workers == 0 || s.in_flight == 0) {
    std::fprintf(stderr, "pipeline: --count, --workers and --in-flight must be positive\n");
    return 2;
  }
  try {
    coring::run(pipeline(s));
  } catch (const coring::interrupted&) {
    std::printf("interrupted: jobs in flight cancelled, pool shut down\n");
    return 130;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pipeline: %s\n", e.what());
    return 1;
  }
}
