#include <coring/as_completed.hpp>

#include <doctest/doctest.h>

#include <coring/error.hpp>
#include <coring/event_loop.hpp>
#include <coring/sleep.hpp>
#include <coring/task.hpp>

#include "support/counted.hpp"
#include "support/tasks.hpp"
#include "support/stopwatch.hpp"

#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using coring::task;
using coring_test::counted;
using coring_test::value_after;
using coring_test::fails_after;
using coring_test::cancellable;
using coring_test::stopwatch;

}  // namespace

TEST_SUITE("runtime/as_completed") {

TEST_CASE("as_completed gives results in completion order" * doctest::timeout(5)) {
  std::vector<int> order = coring::run([]() -> task<std::vector<int>> {
    std::vector<task<int>> tasks;
    tasks.push_back(value_after(30ms, 30));
    tasks.push_back(value_after(10ms, 10));
    tasks.push_back(value_after(20ms, 20));
    auto stream = coring::as_completed(std::move(tasks));
    CHECK(stream.remaining() == 3);
    std::vector<int> order;
    while (!stream.done()) order.push_back(co_await stream.next());
    CHECK(stream.remaining() == 0);
    co_return order;
  }());
  CHECK(order == std::vector<int>{10, 20, 30});
}

TEST_CASE("a failed task's exception is rethrown at its turn and the stream goes on" * doctest::timeout(5)) {
  std::vector<std::string> events = coring::run([]() -> task<std::vector<std::string>> {
    std::vector<task<int>> tasks;
    tasks.push_back(value_after(30ms, 3));
    tasks.push_back(fails_after(20ms, "second"));
    tasks.push_back(value_after(10ms, 1));
    auto stream = coring::as_completed(std::move(tasks));
    std::vector<std::string> events;
    while (!stream.done()) {
      try {
        events.push_back(std::to_string(co_await stream.next()));
      } catch (const std::runtime_error& e) {
        events.push_back(std::string("error: ") + e.what());
      }
    }
    co_return events;
  }());
  CHECK(events == std::vector<std::string>{"1", "error: second", "3"});
}

TEST_CASE("dropping the stream early cancels the tasks that have not finished" * doctest::timeout(5)) {
  REQUIRE(counted::live() == 0);
  int cancellations = 0;
  stopwatch sw;
  coring::run([](int& c) -> task<> {
    {
      std::vector<task<int>> tasks;
      tasks.push_back(cancellable(c));
      tasks.push_back(value_after(1ms, 1, counted{}));
      tasks.push_back(cancellable(c));
      auto stream = coring::as_completed(std::move(tasks));
      CHECK(co_await stream.next() == 1);
    }  // dropped with two tasks still asleep
    for (int i = 0; i < 100 && c < 2; ++i) co_await coring::sleep_for(1ms);
    CHECK(c == 2);
    CHECK(counted::live() == 0);
  }(cancellations));
  CHECK(cancellations == 2);
  CHECK(counted::live() == 0);
  CHECK(sw.elapsed() < 1s);
}

TEST_CASE("cancelling the task awaiting next() cancels the remaining tasks" * doctest::timeout(5)) {
  REQUIRE(counted::live() == 0);
  int cancellations = 0;
  coring::run([](int& c) -> task<> {
    auto consumer = coring::spawn([](int& n) -> task<> {
      std::vector<task<int>> tasks;
      tasks.push_back(cancellable(n));
      tasks.push_back(cancellable(n));
      auto stream = coring::as_completed(std::move(tasks));
      co_await stream.next();
    }(c));
    co_await coring::sleep_for(2ms);
    consumer.cancel();
    try {
      co_await consumer;
    } catch (const coring::cancelled&) {
    }
    for (int i = 0; i < 100 && c < 2; ++i) co_await coring::sleep_for(1ms);
  }(cancellations));
  CHECK(cancellations == 2);
  CHECK(counted::live() == 0);
}

}  // TEST_SUITE
