#include <coring/as_completed.hpp>

#include <doctest/doctest.h>

#include <coring/error.hpp>
#include <coring/event_loop.hpp>
#include <coring/sleep.hpp>
#include <coring/spawn.hpp>
#include <coring/task.hpp>

#include "support/counted.hpp"
#include "support/stopwatch.hpp"
#include "support/tasks.hpp"

#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using coring::task;
using coring_test::cancellable;
using coring_test::counted;
using coring_test::fails_after;
using coring_test::stopwatch;
using coring_test::value_after;

// Sleeps long; when cancelled, writes into `log` — which belongs to the frame
// that started as_completed — after a further await, the way real clean-up
// code does (closing a connection, flushing a buffer).
task<int> logs_on_cancel(std::vector<std::string>& log, std::string name) {
  try {
    co_await coring::sleep_for(10s);
  } catch (const coring::cancelled&) {
    log.push_back(name + " cancelled");
  }
  co_await coring::yield();  // clean-up that itself awaits
  log.push_back(name + " cleaned up");
  throw coring::cancelled{};
}

}  // namespace

TEST_SUITE("runtime/as_completed") {

TEST_CASE("as_completed gives results in completion order" * doctest::timeout(5)) {
  std::vector<int> order = coring::run([]() -> task<std::vector<int>> {
    std::vector<task<int>> tasks;
    tasks.push_back(value_after(30ms, 30));
    tasks.push_back(value_after(10ms, 10));
    tasks.push_back(value_after(20ms, 20));
    co_return co_await coring::as_completed(std::move(tasks), [](auto& results) -> task<std::vector<int>> {
      CHECK(results.remaining() == 3);
      std::vector<int> order;
      std::vector<std::size_t> indices;
      while (!results.done()) {
        order.push_back(co_await results.next());
        indices.push_back(results.last_index());
      }
      CHECK(results.remaining() == 0);
      CHECK(indices == std::vector<std::size_t>{1, 2, 0});
      co_return order;
    });
  }());
  CHECK(order == std::vector<int>{10, 20, 30});
}

TEST_CASE("a failed task's exception is rethrown at its turn and the stream goes on" * doctest::timeout(5)) {
  std::vector<std::string> events = coring::run([]() -> task<std::vector<std::string>> {
    std::vector<task<int>> tasks;
    tasks.push_back(value_after(30ms, 3));
    tasks.push_back(fails_after(20ms, "second"));
    tasks.push_back(value_after(10ms, 1));
    std::vector<std::string> events;
    co_await coring::as_completed(std::move(tasks), [&](auto& results) -> task<> {
      while (!results.done()) {
        try {
          events.push_back(std::to_string(co_await results.next()));
        } catch (const std::runtime_error& e) {
          events.push_back(std::string("error: ") + e.what() + " at " + std::to_string(results.last_index()));
        }
      }
    });
    co_return events;
  }());
  CHECK(events == std::vector<std::string>{"1", "error: second at 1", "3"});
}

TEST_CASE("leaving the loop early cancels the rest and waits for them before as_completed returns"
          * doctest::timeout(5)) {
  REQUIRE(counted::live() == 0);
  stopwatch sw;
  std::vector<std::string> log = coring::run([]() -> task<std::vector<std::string>> {
    std::vector<std::string> log;  // lent to the tasks: it must outlive every one of them
    std::vector<task<int>> tasks;
    tasks.push_back(logs_on_cancel(log, "a"));
    tasks.push_back(value_after(1ms, 1, counted{}));
    tasks.push_back(logs_on_cancel(log, "b"));
    int first = co_await coring::as_completed(std::move(tasks), [](auto& results) -> task<int> {
      int v = co_await results.next();
      co_return v;  // the usual `break` after the first result
    });
    CHECK(first == 1);
    log.push_back("as_completed returned");
    co_return log;
  }());
  CHECK(log == std::vector<std::string>{"a cancelled", "b cancelled", "a cleaned up", "b cleaned up",
                                        "as_completed returned"});
  CHECK(counted::live() == 0);
  CHECK(sw.elapsed() < 1s);
}

TEST_CASE("a body that throws gets the rest cancelled and awaited, then its exception" * doctest::timeout(5)) {
  std::vector<std::string> log;
  std::string caught;
  coring::run([](std::vector<std::string>& log, std::string& caught) -> task<> {
    std::vector<task<int>> tasks;
    tasks.push_back(logs_on_cancel(log, "a"));
    tasks.push_back(value_after(1ms, 1));
    try {
      co_await coring::as_completed(std::move(tasks), [](auto& results) -> task<> {
        (void)co_await results.next();
        throw std::runtime_error("body gave up");
      });
    } catch (const std::runtime_error& e) {
      caught = e.what();
      log.push_back("caught");
    }
  }(log, caught));
  CHECK(caught == "body gave up");
  CHECK(log == std::vector<std::string>{"a cancelled", "a cleaned up", "caught"});
}

TEST_CASE("cancelling the task awaiting next() cancels the remaining tasks and waits for them"
          * doctest::timeout(5)) {
  REQUIRE(counted::live() == 0);
  int cancellations = 0;
  bool consumer_cancelled = false;
  coring::run([](int& c, bool& consumer_cancelled) -> task<> {
    auto consumer = coring::spawn([](int& n) -> task<> {
      std::vector<task<int>> tasks;
      tasks.push_back(cancellable(n));
      tasks.push_back(cancellable(n));
      co_await coring::as_completed(std::move(tasks), [](auto& results) -> task<> { (void)co_await results.next(); });
    }(c));
    co_await coring_test::let_children_start();
    consumer.cancel();
    try {
      co_await consumer;
    } catch (const coring::cancelled&) {
      consumer_cancelled = true;
    }
    CHECK(c == 2);  // already, not later: as_completed waited for them
  }(cancellations, consumer_cancelled));
  CHECK(consumer_cancelled);
  CHECK(cancellations == 2);
  CHECK(counted::live() == 0);
}

TEST_CASE("a task error the body never took goes to the loop's exception handler" * doctest::timeout(5)) {
  std::vector<std::string> reported;
  coring::event_loop loop;
  loop.set_exception_handler([&](std::exception_ptr e, std::string_view) {
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      reported.push_back(ex.what());
    }
  });
  int first = loop.run_until_complete([]() -> task<int> {
    std::vector<task<int>> tasks;
    tasks.push_back(value_after(1ms, 7));
    tasks.push_back(fails_after(2ms, "never taken"));
    co_return co_await coring::as_completed(std::move(tasks), [](auto& results) -> task<int> {
      int v = co_await results.next();
      co_await coring::sleep_for(10ms);  // the failure happens meanwhile
      co_return v;
    });
  }());
  CHECK(first == 7);
  CHECK(reported == std::vector<std::string>{"never taken"});
}

TEST_CASE("as_completed over no tasks runs the body with an empty stream" * doctest::timeout(5)) {
  bool ran = coring::run([]() -> task<bool> {
    co_return co_await coring::as_completed(std::vector<task<int>>{}, [](auto& results) -> task<bool> {
      co_return results.done();
    });
  }());
  CHECK(ran);
}

}  // TEST_SUITE
