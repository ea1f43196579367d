#include <coring/spawn.hpp>

#include <doctest/doctest.h>

#include <coring/error.hpp>
#include <coring/event_loop.hpp>
#include <coring/sleep.hpp>
#include <coring/task.hpp>

#include "support/counted.hpp"
#include "support/stopwatch.hpp"

#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using coring::task;
using coring_test::counted;
using coring_test::stopwatch;

task<> record(std::vector<int>& order, int id) {
  order.push_back(id);
  co_return;
}

task<int> value_after_yield(int v) {
  co_await coring::yield();
  co_return v;
}

task<int> fails_after_yield() {
  co_await coring::yield();
  throw std::runtime_error("spawned task failed");
}

// Sleeps for `d` holding a counted; records a cancellation it observed.
task<> sleeper(std::chrono::milliseconds d, bool& saw_cancel, counted = {}) {
  try {
    co_await coring::sleep_for(d);
  } catch (const coring::cancelled&) {
    saw_cancel = true;
    throw;
  }
}

}  // namespace

TEST_SUITE("runtime/spawn") {

TEST_CASE("spawned tasks start on the next step, in spawn order, concurrently with the spawner") {
  std::vector<int> order = coring::run([]() -> task<std::vector<int>> {
    std::vector<int> order;
    auto a = coring::spawn(record(order, 1));
    auto b = coring::spawn(record(order, 2));
    auto c = coring::spawn(record(order, 3));
    order.push_back(0);  // the spawner goes on first
    co_await a;
    co_await b;
    co_await c;
    co_return order;
  }());
  CHECK(order == std::vector<int>{0, 1, 2, 3});
}

TEST_CASE("joining a spawned task gives its value or rethrows its exception") {
  coring::run([]() -> task<> {
    auto ok = coring::spawn(value_after_yield(7));
    auto bad = coring::spawn(fails_after_yield());
    CHECK(co_await ok == 7);
    std::string caught;
    try {
      co_await bad;
    } catch (const std::runtime_error& e) {
      caught = e.what();
    }
    CHECK(caught == "spawned task failed");
  }());
}

TEST_CASE("join_handle::get gives the result of a task that has ended") {
  coring::run([]() -> task<> {
    auto h = coring::spawn(value_after_yield(3));
    while (!h.done()) co_await coring::yield();
    CHECK(h.get() == 3);
  }());
}

TEST_CASE("cancel ends a sleeping task at once with coring::cancelled" * doctest::timeout(5)) {
  REQUIRE(counted::live() == 0);
  bool saw_cancel = false;
  stopwatch sw;
  coring::run([](bool& saw) -> task<> {
    auto h = coring::spawn(sleeper(10s, saw));
    co_await coring::sleep_for(1ms);  // it is asleep now
    CHECK_FALSE(h.done());
    h.cancel();
    h.cancel();  // idempotent
    bool joined_cancelled = false;
    try {
      co_await h;
    } catch (const coring::cancelled&) {
      joined_cancelled = true;
    }
    CHECK(joined_cancelled);
    CHECK(h.done());
  }(saw_cancel));
  CHECK(saw_cancel);
  CHECK(sw.elapsed() < 1s);
  CHECK(counted::live() == 0);
}

TEST_CASE("a task cancelled before it ever ran never runs its body") {
  coring::run([]() -> task<> {
    std::vector<int> order;
    auto h = coring::spawn(record(order, 1));
    h.cancel();
    bool joined_cancelled = false;
    try {
      co_await h;
    } catch (const coring::cancelled&) {
      joined_cancelled = true;
    }
    CHECK(joined_cancelled);
    CHECK(order.empty());
  }());
}

TEST_CASE("cancelling a task that joins another cancels the joined task too" * doctest::timeout(5)) {
  REQUIRE(counted::live() == 0);
  bool inner_cancelled = false;
  bool outer_cancelled = false;
  stopwatch sw;
  coring::run([](bool& inner, bool& outer) -> task<> {
    auto joiner = coring::spawn([](bool& inner_saw, bool& outer_saw) -> task<> {
      auto joined = coring::spawn(sleeper(10s, inner_saw));
      try {
        co_await joined;
      } catch (const coring::cancelled&) {
        outer_saw = true;
        throw;
      }
    }(inner, outer));
    // Steps, not time: the joined task must have started (a task cancelled
    // before it first ran never runs its body, so it would see nothing).
    for (int i = 0; i < 5; ++i) co_await coring::yield();
    joiner.cancel();
    try {
      co_await joiner;
    } catch (const coring::cancelled&) {
    }
    CHECK(joiner.done());
  }(inner_cancelled, outer_cancelled));
  CHECK(inner_cancelled);
  CHECK(outer_cancelled);
  CHECK(sw.elapsed() < 1s);
  CHECK(counted::live() == 0);
}

TEST_CASE("dropping the join handle detaches the task, which runs to its end" * doctest::timeout(5)) {
  REQUIRE(counted::live() == 0);
  bool finished = false;
  coring::run([](bool& fin) -> task<> {
    {
      auto dropped = coring::spawn([](bool& f, counted) -> task<> {
        co_await coring::sleep_for(5ms);
        f = true;
      }(fin, counted{}));
    }
    CHECK(counted::live() == 1);
    for (int i = 0; i < 200 && !fin; ++i) co_await coring::sleep_for(1ms);
  }(finished));
  CHECK(finished);
  CHECK(counted::live() == 0);  // the detached frame freed itself
}

TEST_CASE("spawning and joining 100,000 tasks" * doctest::timeout(10)) {
  long sum = coring::run([]() -> task<long> {
    constexpr int n = 100'000;
    std::vector<coring::join_handle<int>> handles;
    handles.reserve(n);
    for (int i = 0; i < n; ++i) handles.push_back(coring::spawn([](int v) -> task<int> { co_return v; }(i)));
    long s = 0;
    for (auto& h : handles) s += co_await h;
    co_return s;
  }());
  CHECK(sum == 100'000L * 99'999L / 2);
}

}  // TEST_SUITE
