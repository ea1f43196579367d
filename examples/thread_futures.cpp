// thread_futures: concurrent.futures in C++, then the same work from a coroutine.
//
// What it shows:
//   1. A plain main() with no event loop at all, written like Python's
//      concurrent.futures: ThreadPoolExecutor.submit → thread_pool::submit,
//      as_completed → coring::as_completed_indices, Executor.map → thread_pool::map,
//      shutdown → thread_pool::shutdown, Future.result() → future::get(),
//      Future.add_done_callback → future::add_done_callback, and a
//      continuation with future::then.
//   2. The same "downloads" awaited from a coroutine under coring::run with
//      coring::to_thread (asyncio.to_thread): the loop thread never blocks,
//      and every result comes back on it.
//
// Run:   ./build/dev/examples/thread_futures
// You see: five "download" jobs (each sleeps, standing in for a blocking call)
// reported in completion order — the shortest first, not the submission order —
// then the map results in input order, then the coroutine's results; every part
// takes about as long as its slowest job, not the sum. It ends by itself.

#include <coring/future_as_completed.hpp>
#include <coring/thread_pool.hpp>

#include <coring/event_loop.hpp>
#include <coring/task.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace {

// A blocking function, as a library might offer it: "downloads" a site.
std::size_t download(const std::string& site, int millis) {
  std::this_thread::sleep_for(std::chrono::milliseconds(millis));
  return site.size() * 1000 + static_cast<std::size_t>(millis);
}

const std::vector<std::pair<std::string, int>> sites = {
    {"https://www.jython.org", 120}, {"http://olympus.realpython.org/dice", 40}, {"https://example.com", 80},
    {"https://isocpp.org", 20},      {"https://kernel.dk", 60}};

double seconds_since(steady::time_point t0) { return std::chrono::duration<double>(steady::now() - t0).count(); }

void plain_threads() {
  std::printf("-- concurrent.futures style, no event loop --\n");
  auto t0 = steady::now();
  coring::thread_pool pool(5);  // ThreadPoolExecutor(max_workers=5)

  std::vector<coring::future<std::size_t>> futures;
  for (const auto& [site, ms] : sites) futures.push_back(pool.submit(download, site, ms));

  for (std::size_t i : coring::as_completed_indices(futures)) {  // completion order
    std::printf("  %-36s -> %zu bytes\n", sites[i].first.c_str(), futures[i].get());
  }

  // A continuation on the worker that ends the job, and a callback after it.
  coring::future<std::string> sized = pool.submit(download, "https://isocpp.org", 10).then([](std::size_t bytes) {
    return std::to_string(bytes / 1000) + " kB";
  });
  std::atomic<bool> told{false};
  sized.add_done_callback([&told] { told = true; });  // runs on the thread that completes it
  std::printf("  then(): %s\n", sized.get().c_str());

  std::vector<int> numbers{1, 2, 3, 4, 5, 6, 7, 8};
  std::vector<int> squares = pool.map([](int x) { return x * x; }, numbers);  // input order
  std::printf("  map(square): ");
  for (int s : squares) std::printf("%d ", s);
  std::printf("\n");

  pool.shutdown({.wait = true, .cancel_pending = false});
  std::printf("  add_done_callback: %s\n", told ? "called" : "not called");
  std::printf("  Duration %.2f seconds (the slowest job is 0.12 s)\n", seconds_since(t0));
}

coring::task<std::size_t> with_coroutines() {
  std::printf("-- the same from a coroutine, with to_thread --\n");
  auto t0 = steady::now();
  std::vector<coring::future<std::size_t>> futures;
  for (const auto& [site, ms] : sites) futures.push_back(coring::to_thread(download, site, ms));

  std::size_t total = 0;
  auto done = coring::as_completed_indices(futures);
  while (auto i = co_await done.next()) {  // the loop stays free meanwhile
    std::size_t bytes = co_await futures[*i];  // already done: no suspension
    std::printf("  %-36s -> %zu bytes\n", sites[*i].first.c_str(), bytes);
    total += bytes;
  }
  std::printf("  Duration %.2f seconds\n", seconds_since(t0));
  co_return total;
}

}  // namespace

int main() {
  plain_threads();
  std::size_t total = coring::run(with_coroutines());
  std::printf("total %zu bytes\n", total);
  return 0;
}
