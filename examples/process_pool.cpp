// process_pool: CPU-bound work in worker processes that survives a crash.
//
// What it shows: submit() of a plain function with serialisable arguments
// (one registered by name), map() over a range in chunks,
// as_completed_indices() over the futures, and a job that segfaults: that
// one job fails with coring::broken_worker, the worker is replaced, and
// every other job still completes.
//
// Run:   ./build/dev/examples/process_pool
// You see: three fib values, the map's sum, the as_completed order (fastest
// job first), a line "job failed: worker <pid> running crash was killed by
// signal 11 (SIGSEGV)", and "after the crash: 832040". It ends by itself.

#include <coring/future_as_completed.hpp>
#include <coring/process_pool.hpp>

#include <csignal>
#include <cstdio>
#include <numeric>
#include <vector>

namespace {

long fib(int n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }
// Optional: fib's jobs also carry this name (messages use it), so that a
// process not forked from this program could run them.
CORING_REGISTER_JOB(fib);

long crash(int) {
  std::signal(SIGSEGV, SIG_DFL);
  volatile long* p = nullptr;
  return *p;  // segfaults in the worker, not here
}

coring::task<long> sum_of_fibs(coring::process_pool& pool) {
  std::vector<int> ns(30);
  std::iota(ns.begin(), ns.end(), 0);
  std::vector<long> fibs = co_await pool.map(fib, ns, {.chunk_size = 5});
  co_return std::accumulate(fibs.begin(), fibs.end(), 0L);
}

}  // namespace

int main() {
  // First line of main: fork the fork server while we are single-threaded.
  coring::process_pool::start_fork_server();
  coring::process_pool pool({.workers = 2});

  // submit: a future, blocking get() in plain code (co_await it in a task).
  auto a = pool.submit(fib, 25);
  auto b = pool.submit(fib, 26);
  auto c = pool.submit([](int n) { return fib(n) * 2; }, 20);  // a lambda without captures
  std::printf("fib(25) = %ld, fib(26) = %ld, 2*fib(20) = %ld\n", a.get(), b.get(), c.get());

  // map: chunks of 5 elements per job, results in input order.
  std::printf("sum of fib(0..29) = %ld\n", coring::run(sum_of_fibs(pool)));

  // as_completed_indices: indices in the order the jobs end.
  std::vector<coring::future<long>> fs;
  for (int n : {32, 22, 27}) fs.push_back(pool.submit(fib, n));
  std::printf("as_completed order:");
  for (std::size_t i : coring::as_completed_indices(fs)) std::printf(" fib(%d)=%ld", i == 0 ? 32 : i == 1 ? 22 : 27, fs[i].get());
  std::printf("\n");

  // A crashing job fails alone; the pool replaces the worker and goes on.
  auto bad = pool.submit(crash, 0);
  auto good = pool.submit(fib, 30);
  try {
    (void)bad.get();
  } catch (const coring::broken_worker& e) {
    std::printf("job failed: %s\n", e.what());
  }
  std::printf("after the crash: %ld\n", good.get());
  pool.shutdown();  // the destructor would do the same
}
