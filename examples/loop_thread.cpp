// loop_thread: plain, blocking code hands coroutines to an event loop that
// runs on a thread of its own (asyncio's loop in a background thread plus
// run_coroutine_threadsafe).
//
// main() never runs a loop itself: it submits tasks to a coring::loop_thread
// and gets their results through futures, in completion order; the last task
// never ends by itself, and destroying the loop_thread cancels it.
//
// Run:   build/dev/examples/loop_thread     (ends by itself; ctest runs it)
// You see three "fetches" answered in the order they finish (not the order
// they were submitted), all within ~0.3 s because they run concurrently on
// the loop, then the long task reported cancelled.

#include <coring/coring.hpp>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// A stand-in for a request: waits on the loop, then does a little work on
// the thread pool.
coring::task<std::string> fetch(std::string what, std::chrono::milliseconds latency) {
  co_await coring::sleep_for(latency);
  std::size_t n = co_await coring::to_thread([](std::size_t k) { return k * 1000; }, what.size());
  co_return what + ": " + std::to_string(n) + " bytes";
}

coring::task<> forever() {
  for (;;) co_await coring::sleep_for(1h);
}

}  // namespace

int main() {
  const auto t0 = std::chrono::steady_clock::now();
  coring::future<void> endless;
  {
    coring::loop_thread io;  // the thread and its loop start here
    std::vector<coring::future<std::string>> fetches;
    fetches.push_back(io.submit(fetch("slow.example", 300ms)));
    fetches.push_back(io.submit(fetch("fast.example", 100ms)));
    fetches.push_back(io.submit(fetch("medium.example", 200ms)));
    endless = io.submit(forever());

    for (std::size_t i : coring::as_completed_indices(fetches))  // blocks this thread, not the loop
      std::printf("%5.3f s  %s\n", seconds_since(t0), fetches[i].get().c_str());
  }  // ~loop_thread: stops the loop, cancels forever(), joins

  try {
    endless.get();
  } catch (const coring::cancelled&) {
    std::printf("%5.3f s  the endless task was cancelled when the loop_thread went away\n", seconds_since(t0));
    return 0;
  }
  return 1;
}
