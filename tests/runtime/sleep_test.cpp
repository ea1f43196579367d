#include <coring/sleep.hpp>

#include <doctest/doctest.h>

#include <coring/error.hpp>
#include <coring/event_loop.hpp>
#include <coring/gather.hpp>
#include <coring/spawn.hpp>
#include <coring/task.hpp>

#include "support/counted.hpp"
#include "support/stopwatch.hpp"

#include <chrono>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using coring::task;
using coring_test::counted;
using coring_test::stopwatch;

task<> sleep_then_record(std::chrono::milliseconds d, std::vector<int>& order, int id) {
  co_await coring::sleep_for(d);
  order.push_back(id);
}

task<> yielder(std::string& trace, char id, int times) {
  for (int i = 0; i < times; ++i) {
    trace += id;
    co_await coring::yield();
  }
}

}  // namespace

TEST_SUITE("runtime/sleep") {

TEST_CASE("sleep_for waits at least the given duration" * doctest::timeout(5)) {
  auto elapsed = coring::run([]() -> task<stopwatch::clock::duration> {
    stopwatch sw;
    co_await coring::sleep_for(20ms);
    co_return sw.elapsed();
  }());
  CHECK(elapsed >= 20ms);
}

TEST_CASE("10,000 concurrent sleeps all finish, no earlier than their deadline" * doctest::timeout(10)) {
  constexpr int n = 10'000;
  int finished = 0;
  stopwatch sw;
  coring::run([](int& fin) -> task<> {
    std::vector<task<>> sleeps;
    sleeps.reserve(n);
    for (int i = 0; i < n; ++i) {
      sleeps.push_back([](int& f) -> task<> {
        co_await coring::sleep_for(20ms);
        ++f;
      }(fin));
    }
    co_await coring::gather(std::move(sleeps));
  }(finished));
  CHECK(finished == n);
  CHECK(sw.elapsed() >= 20ms);
}

TEST_CASE("sleepers wake in deadline order" * doctest::timeout(5)) {
  std::vector<int> order = coring::run([]() -> task<std::vector<int>> {
    std::vector<int> order;
    co_await coring::gather(sleep_then_record(30ms, order, 30), sleep_then_record(10ms, order, 10),
                            sleep_then_record(20ms, order, 20));
    co_return order;
  }());
  CHECK(order == std::vector<int>{10, 20, 30});
}

TEST_CASE("sleep_until a time in the past returns promptly" * doctest::timeout(5)) {
  stopwatch sw;
  coring::run([]() -> task<> {
    co_await coring::sleep_until(coring::clock::now() - 1h);
    co_await coring::sleep_until(coring::clock::time_point{});  // the clock's epoch
    co_await coring::sleep_for(-5ms);
  }());
  CHECK(sw.elapsed() < 1s);
}

TEST_CASE("yield lets the other ready tasks run in turn") {
  std::string trace = coring::run([]() -> task<std::string> {
    std::string trace;
    co_await coring::gather(yielder(trace, 'A', 3), yielder(trace, 'B', 3));
    co_return trace;
  }());
  CHECK(trace == "ABABAB");
}

TEST_CASE("a cancelled sleep ends at once and removes its timer" * doctest::timeout(5)) {
  REQUIRE(counted::live() == 0);
  coring::event_loop loop;
  bool saw_cancel = false;
  auto h = coring::spawn([](bool& saw, counted) -> task<> {
    try {
      co_await coring::sleep_for(10s);
    } catch (const coring::cancelled&) {
      saw = true;
      throw;
    }
  }(saw_cancel, counted{}));
  stopwatch sw;
  loop.run_once();  // the task starts and sleeps
  REQUIRE(loop.next_timeout().has_value());
  CHECK(*loop.next_timeout() > 1s);  // the 10 s timer

  h.cancel();
  for (int i = 0; i < 10 && !h.done(); ++i) loop.run_once();
  REQUIRE(h.done());
  CHECK(saw_cancel);
  CHECK_THROWS_AS(h.get(), coring::cancelled);
  CHECK(sw.elapsed() < 1s);
  CHECK_FALSE(loop.next_timeout().has_value());  // the timer is gone
  h.detach();
  CHECK(counted::live() == 0);
}

}  // TEST_SUITE
