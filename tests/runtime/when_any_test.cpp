#include <coring/when_any.hpp>

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
#include <variant>
#include <vector>

namespace {

using namespace std::chrono_literals;
using coring::task;
using coring_test::counted;
using coring_test::value_after;
using coring_test::nothing_after;
using coring_test::text_after;
using coring_test::fails_after;
using coring_test::cancellable;
using coring_test::stopwatch;

}  // namespace

TEST_SUITE("runtime/when_any") {

TEST_CASE("when_any over a vector gives the first to finish and cancels the others" * doctest::timeout(5)) {
  REQUIRE(counted::live() == 0);
  int cancellations = 0;
  stopwatch sw;
  auto result = coring::run([](int& c) -> task<coring::when_any_result<int>> {
    std::vector<task<int>> tasks;
    tasks.push_back(cancellable(c));
    tasks.push_back(value_after(5ms, 42));
    tasks.push_back(cancellable(c));
    auto r = co_await coring::when_any(std::move(tasks));
    CHECK(c == 2);  // the losers ended before when_any returned
    co_return r;
  }(cancellations));
  CHECK(result.index == 1);
  CHECK(result.value == 42);
  CHECK(cancellations == 2);
  CHECK(counted::live() == 0);
  CHECK(sw.elapsed() < 1s);
}

TEST_CASE("when_any over arguments gives a variant whose index is the winner's position" * doctest::timeout(5)) {
  int cancellations = 0;
  auto v = coring::run([](int& c) -> task<std::variant<int, std::string>> {
    co_return co_await coring::when_any(cancellable(c), text_after(5ms, "fast"));
  }(cancellations));
  REQUIRE(v.index() == 1);
  CHECK(std::get<1>(v) == "fast");
  CHECK(cancellations == 1);

  auto w = coring::run(coring::when_any(value_after(30ms, 1), nothing_after(1ms)));
  CHECK(w.index() == 1);
  CHECK(std::holds_alternative<std::monostate>(w));
}

TEST_CASE("when_any rethrows the exception of a first finisher that failed" * doctest::timeout(5)) {
  int cancellations = 0;
  std::string caught;
  coring::run([](int& c, std::string& msg) -> task<> {
    std::vector<task<int>> tasks;
    tasks.push_back(cancellable(c));
    tasks.push_back(fails_after(5ms, "first finisher failed"));
    try {
      co_await coring::when_any(std::move(tasks));
    } catch (const std::runtime_error& e) {
      msg = e.what();
    }
  }(cancellations, caught));
  CHECK(caught == "first finisher failed");
  CHECK(cancellations == 1);
  CHECK(counted::live() == 0);
}

TEST_CASE("when_any of an empty vector throws coring::error") {
  CHECK_THROWS_AS(coring::run(coring::when_any(std::vector<task<int>>{})), coring::error);
}

}  // TEST_SUITE
