#include <coring/current_task.hpp>

#include <doctest/doctest.h>

#include <coring/error.hpp>
#include <coring/event_loop.hpp>
#include <coring/gather.hpp>
#include <coring/sleep.hpp>
#include <coring/spawn.hpp>
#include <coring/task.hpp>

#include <chrono>
#include <string>

namespace {

using namespace std::chrono_literals;
using coring::task;

task<std::string> my_name() { co_return (co_await coring::current_task()).name(); }

task<coring::task_ref> me() { co_return co_await coring::current_task(); }

}  // namespace

TEST_SUITE("runtime/current_task") {
  TEST_CASE(
      "current_task gives the running task and its name; an awaited coroutine is part of its awaiter's task" *
      doctest::timeout(5)) {
    coring::run([]() -> task<> {
      coring::task_ref main = co_await coring::current_task();
      REQUIRE(main.valid());
      CHECK(std::string(main.name()) == "main");
      CHECK(co_await my_name() == "main");
      CHECK(co_await me() == main);  // one await chain, one task

      auto worker = coring::spawn(my_name(), "worker");
      CHECK(co_await worker == "worker");
      auto nameless = coring::spawn(my_name());
      CHECK(co_await nameless == "unnamed task");
      auto [a, b] = co_await coring::gather(me(), me());  // each child of a gather is its own task
      CHECK(a != b);
      CHECK(a != main);
    }());
  }

  TEST_CASE("a task can rename itself" * doctest::timeout(5)) {
    coring::run([]() -> task<> {
      auto h = coring::spawn([]() -> task<std::string> {
        (co_await coring::current_task()).set_name("renamed");
        co_return co_await my_name();
      }());
      CHECK(co_await h == "renamed");
    }());
  }

  TEST_CASE("cancel through a task_ref stops the task at its next suspension, cancelling() shows it pending" *
            doctest::timeout(5)) {
    coring::run([]() -> task<> {
      auto h = coring::spawn([]() -> task<bool> {
        coring::task_ref self = co_await coring::current_task();
        CHECK_FALSE(self.cancelling());
        self.cancel();
        const bool pending = self.cancelling();
        co_await coring::sleep_for(10s);  // throws at once
        co_return pending;
      }());
      CHECK_THROWS_AS(co_await h, coring::cancelled);
    }());
  }

}  // TEST_SUITE
