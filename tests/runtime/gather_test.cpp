#include <coring/gather.hpp>

#include <doctest/doctest.h>

#include <coring/error.hpp>
#include <coring/event_loop.hpp>
#include <coring/outcome.hpp>
#include <coring/sleep.hpp>
#include <coring/spawn.hpp>
#include <coring/task.hpp>

#include "support/counted.hpp"
#include "support/tasks.hpp"
#include "support/stopwatch.hpp"

#include <chrono>
#include <exception>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
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

struct deep_error : std::runtime_error {
  int depth;
  deep_error(const std::string& m, int d) : std::runtime_error(m), depth(d) {}
};

task<int> level3() {
  co_await coring::yield();
  throw deep_error("failed three awaits down", 3);
}
task<int> level2() { co_return co_await level3() + 1; }
task<int> level1() { co_return co_await level2() + 1; }

}  // namespace

TEST_SUITE("runtime/gather") {

TEST_CASE("gather of a tuple gives each value in argument order, std::monostate for task<void>"
          * doctest::timeout(5)) {
  auto [i, v, s] = coring::run(coring::gather(value_after(20ms, 1), nothing_after(10ms), text_after(1ms, "three")));
  static_assert(std::is_same_v<decltype(v), std::monostate>);
  CHECK(i == 1);
  CHECK(s == "three");
}

TEST_CASE("gather of a vector gives the values in input order, not completion order" * doctest::timeout(5)) {
  std::vector<int> values = coring::run([]() -> task<std::vector<int>> {
    std::vector<task<int>> tasks;
    for (int i = 0; i < 4; ++i) tasks.push_back(value_after(std::chrono::milliseconds(20 - 5 * i), i));
    co_return co_await coring::gather(std::move(tasks));
  }());
  CHECK(values == std::vector<int>{0, 1, 2, 3});

  int done = 0;
  coring::run([](int& d) -> task<> {
    std::vector<task<>> tasks;
    for (int i = 0; i < 3; ++i) tasks.push_back([](int& n) -> task<> {
      co_await coring::yield();
      ++n;
    }(d));
    static_assert(std::is_void_v<coring::gather_vector_t<void>>);
    co_await coring::gather(std::move(tasks));
  }(done));
  CHECK(done == 3);

  CHECK(coring::run(coring::gather(std::vector<task<int>>{})).empty());
}

TEST_CASE("gathering 100,000 tasks" * doctest::timeout(10)) {
  std::vector<int> values = coring::run([]() -> task<std::vector<int>> {
    std::vector<task<int>> tasks;
    tasks.reserve(100'000);
    for (int i = 0; i < 100'000; ++i) tasks.push_back([](int v) -> task<int> { co_return v; }(i));
    co_return co_await coring::gather(std::move(tasks));
  }());
  REQUIRE(values.size() == 100'000);
  bool in_order = true;
  for (int i = 0; i < 100'000; ++i) in_order = in_order && values[i] == i;
  CHECK(in_order);
}

TEST_CASE("gathered tasks run concurrently" * doctest::timeout(5)) {
  stopwatch sw;
  coring::run(coring::gather(nothing_after(30ms), nothing_after(30ms), nothing_after(30ms)));
  auto elapsed = sw.elapsed();
  CHECK(elapsed >= 30ms);
  CHECK(elapsed < 90ms);  // three 30 ms sleeps one after another would take 90 ms
}

TEST_CASE("gather rethrows the first failure after cancelling the others" * doctest::timeout(5)) {
  REQUIRE(counted::live() == 0);
  int cancellations = 0;
  stopwatch sw;
  std::string caught;
  coring::run([](int& c, std::string& msg) -> task<> {
    try {
      co_await coring::gather(cancellable(c), fails_after(5ms, "first failure"), cancellable(c));
    } catch (const std::runtime_error& e) {
      msg = e.what();
      CHECK(c == 2);  // the others had ended before the failure was rethrown
    }
  }(cancellations, caught));
  CHECK(caught == "first failure");
  CHECK(cancellations == 2);
  CHECK(sw.elapsed() < 1s);
  CHECK(counted::live() == 0);

  // Vector form.
  cancellations = 0;
  caught.clear();
  coring::run([](int& c, std::string& msg) -> task<> {
    std::vector<task<int>> tasks;
    tasks.push_back(cancellable(c));
    tasks.push_back(fails_after(5ms, "vector failure"));
    tasks.push_back(cancellable(c));
    try {
      co_await coring::gather(std::move(tasks));
    } catch (const std::runtime_error& e) {
      msg = e.what();
    }
  }(cancellations, caught));
  CHECK(caught == "vector failure");
  CHECK(cancellations == 2);
  CHECK(counted::live() == 0);
}

TEST_CASE("a later failure of a gathered task goes to the loop's exception handler" * doctest::timeout(5)) {
  std::vector<std::string> reported;
  coring::event_loop loop;
  loop.set_exception_handler([&reported](std::exception_ptr e, std::string_view) {
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      reported.push_back(ex.what());
    }
  });
  std::string caught;
  loop.run_until_complete([](std::string& msg) -> task<> {
    auto fails_while_cancelled = []() -> task<int> {
      try {
        co_await coring::sleep_for(10s);
      } catch (const coring::cancelled&) {
        throw std::runtime_error("cleanup failed");
      }
      co_return 0;
    };
    try {
      co_await coring::gather(fails_after(1ms, "first failure"), fails_while_cancelled());
    } catch (const std::runtime_error& e) {
      msg = e.what();
    }
  }(caught));
  CHECK(caught == "first failure");
  CHECK(reported == std::vector<std::string>{"cleanup failed"});
}

TEST_CASE("an exception from three awaits deep inside a gathered task surfaces with its type and message"
          * doctest::timeout(5)) {
  bool caught = false;
  coring::run([](bool& c) -> task<> {
    try {
      co_await coring::gather(value_after(1ms, 1), level1());
    } catch (const deep_error& e) {
      c = true;
      CHECK(std::string(e.what()) == "failed three awaits down");
      CHECK(e.depth == 3);
    }
  }(caught));
  CHECK(caught);
}

TEST_CASE("gather_settled gives one outcome per task, value or exception" * doctest::timeout(5)) {
  coring::run([]() -> task<> {
    auto [a, b, c] = co_await coring::gather_settled(value_after(1ms, 5), fails_after(1ms, "settled failure"),
                                                     nothing_after(1ms));
    CHECK(a.has_value());
    CHECK(a.value() == 5);
    CHECK_FALSE(a.error());
    CHECK_FALSE(b.has_value());
    REQUIRE(b.error());
    CHECK_THROWS_WITH_AS(b.value(), "settled failure", std::runtime_error);
    CHECK(c.has_value());

    std::vector<task<int>> tasks;
    tasks.push_back(fails_after(1ms, "first"));
    tasks.push_back(value_after(2ms, 2));
    tasks.push_back(fails_after(3ms, "third"));
    auto outcomes = co_await coring::gather_settled(std::move(tasks));
    REQUIRE(outcomes.size() == 3);
    CHECK_FALSE(outcomes[0].has_value());
    CHECK(outcomes[1].has_value());
    CHECK(outcomes[1].value() == 2);
    CHECK_FALSE(outcomes[2].has_value());  // a failure does not cancel the others
    CHECK_THROWS_WITH_AS(outcomes[2].value(), "third", std::runtime_error);
  }());
}

TEST_CASE("cancelling the task that awaits gather cancels every child and waits for them" * doctest::timeout(5)) {
  REQUIRE(counted::live() == 0);
  int cancellations = 0;
  int live_when_joined = -1;
  stopwatch sw;
  coring::run([](int& c, int& live) -> task<> {
    auto awaiting = coring::spawn([](int& n) -> task<> {
      co_await coring::gather(cancellable(n), cancellable(n), cancellable(n));
    }(c));
    co_await coring_test::let_children_start();
    awaiting.cancel();
    bool joined_cancelled = false;
    try {
      co_await awaiting;
    } catch (const coring::cancelled&) {
      joined_cancelled = true;
    }
    CHECK(joined_cancelled);
    live = counted::live();  // children never outlive the gather
  }(cancellations, live_when_joined));
  CHECK(cancellations == 3);
  CHECK(live_when_joined == 0);
  CHECK(sw.elapsed() < 1s);
}

TEST_CASE("gather frees every frame after success, failure and cancellation" * doctest::timeout(5)) {
  enum class ending { success, failure, cancellation };
  for (ending e : {ending::success, ending::failure, ending::cancellation}) {
    CAPTURE(static_cast<int>(e));
    REQUIRE(counted::live() == 0);
    int cancellations = 0;
    coring::run([](ending how, int& c) -> task<> {
      std::vector<task<int>> tasks;
      tasks.push_back(value_after(1ms, 1, counted{}));
      tasks.push_back(how == ending::failure ? fails_after(2ms, "x", counted{}) : value_after(2ms, 2, counted{}));
      tasks.push_back(how == ending::success ? value_after(3ms, 3, counted{}) : cancellable(c, counted{}));
      auto h = coring::spawn(coring::gather(std::move(tasks)));
      co_await coring::sleep_for(5ms);
      if (how == ending::cancellation) h.cancel();
      try {
        co_await h;
      } catch (const std::runtime_error&) {
      } catch (const coring::cancelled&) {
      }
    }(e, cancellations));
    CHECK(counted::live() == 0);
    CHECK(cancellations == (e == ending::success ? 0 : 1));
  }
}

}  // TEST_SUITE
