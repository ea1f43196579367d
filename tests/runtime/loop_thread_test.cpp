#include <coring/loop_thread.hpp>

#include <doctest/doctest.h>

#include <coring/error.hpp>
#include <coring/sleep.hpp>
#include <coring/spawn.hpp>
#include <coring/task.hpp>

#include "support/counted.hpp"
#include "support/stopwatch.hpp"

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using coring::task;
using coring_test::counted;
using coring_test::stopwatch;

task<std::thread::id> thread_after(std::chrono::milliseconds d) {
  co_await coring::sleep_for(d);
  co_return std::this_thread::get_id();
}

task<int> twice(int x) {
  co_await coring::yield();
  co_return 2 * x;
}

task<int> sleeps_long(std::atomic<int>& cancelled, counted = {}) {
  try {
    co_await coring::sleep_for(10s);
  } catch (const coring::cancelled&) {
    cancelled.fetch_add(1);
    throw;
  }
  co_return 0;
}

}  // namespace

// A loop on its own thread: the tsan preset runs suites named runtime/post*.
TEST_SUITE("runtime/post/loop_thread") {

TEST_CASE("loop_thread runs submitted tasks on its own thread and gives their values" * doctest::timeout(10)) {
  coring::loop_thread lt;
  CHECK(lt.get_id() != std::this_thread::get_id());
  CHECK(lt.submit(thread_after(1ms)).get() == lt.get_id());
  // From several plain threads at once.
  std::vector<std::thread> clients;
  std::atomic<int> sum{0};
  for (int t = 0; t < 4; ++t)
    clients.emplace_back([&lt, &sum, t] {
      for (int i = 0; i < 100; ++i) sum.fetch_add(lt.submit(twice(t * 100 + i)).get());
    });
  for (auto& c : clients) c.join();
  CHECK(sum.load() == 2 * (399 * 400 / 2));
}

TEST_CASE("a submitted task's exception reaches its future" * doctest::timeout(10)) {
  coring::loop_thread lt;
  auto f = lt.submit([]() -> task<int> {
    co_await coring::yield();
    throw std::out_of_range("no such row");
  }());
  CHECK_THROWS_WITH_AS((void)f.get(), "no such row", std::out_of_range);
}

TEST_CASE("a task on one loop awaits a task it submitted to a loop_thread" * doctest::timeout(10)) {
  coring::loop_thread worker;
  const auto here = std::this_thread::get_id();
  auto [value, where] = coring::run([](coring::loop_thread& w, std::thread::id here) -> task<std::pair<int, bool>> {
    int v = co_await w.submit(twice(21));
    co_return std::pair{v, std::this_thread::get_id() == here};  // resumed on our own loop's thread
  }(worker, here));
  CHECK(value == 42);
  CHECK(where);
}

TEST_CASE("destroying a loop_thread cancels the tasks still running and ends their futures at once" *
          doctest::timeout(10)) {
  REQUIRE(counted::live() == 0);
  std::atomic<int> cancelled{0};
  std::vector<coring::future<int>> futures;
  stopwatch sw;
  {
    coring::loop_thread lt;
    for (int i = 0; i < 3; ++i) futures.push_back(lt.submit(sleeps_long(cancelled)));
    // Let them start (and go to sleep) before the loop stops.
    CHECK(lt.submit(thread_after(5ms)).get() == lt.get_id());
  }
  CHECK(sw.elapsed() < 2s);  // not at the 10 s timers
  CHECK(cancelled.load() == 3);
  for (auto& f : futures) {
    REQUIRE(f.ready());
    CHECK_THROWS_AS((void)f.get(), coring::cancelled);
  }
  CHECK(counted::live() == 0);
}

TEST_CASE("a task's own stop() does not end the loop_thread: later submissions still run" * doctest::timeout(10)) {
  coring::loop_thread lt;
  lt.submit([]() -> task<> {
      coring::event_loop::current()->stop();
      co_return;
    }())
      .get();
  CHECK(lt.submit(twice(4)).get() == 8);
}

TEST_CASE("every future of a loop_thread ends while it is destroyed, whatever the timing" * doctest::timeout(60)) {
  // Tasks submitted just before the loop_thread is destroyed, most still
  // queued: each future ends with its value or coring::cancelled (or
  // coring::error, had one reached a closed loop) — none stays pending.
  int values = 0, cancelled = 0, closed = 0;
  for (int round = 0; round < 20; ++round) {
    std::vector<coring::future<int>> fs;
    {
      coring::loop_thread lt;
      for (int i = 0; i < 200; ++i) fs.push_back(lt.submit(twice(1)));
    }  // most are still queued here
    for (auto& f : fs) {
      REQUIRE(f.wait_for(2s));
      try {
        values += f.get() / 2;
      } catch (const coring::cancelled&) {
        ++cancelled;
      } catch (const coring::error&) {
        ++closed;
      }
    }
  }
  MESSAGE("values " << values << ", cancelled " << cancelled << ", loop closed first " << closed);
  CHECK(values + cancelled + closed == 20 * 200);
}

}  // TEST_SUITE
