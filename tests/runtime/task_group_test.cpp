#include <coring/task_group.hpp>

#include <doctest/doctest.h>

#include <coring/error.hpp>
#include <coring/event_loop.hpp>
#include <coring/sleep.hpp>
#include <coring/spawn.hpp>
#include <coring/task.hpp>

#include "support/counted.hpp"
#include "support/tasks.hpp"
#include "support/stopwatch.hpp"

#include <chrono>
#include <stdexcept>
#include <string>

namespace {

using namespace std::chrono_literals;
using coring::task;
using coring_test::counted;
using coring_test::fails_after;
using coring_test::cancellable;
using coring_test::stopwatch;

task<> count_after(std::chrono::milliseconds d, int& n, counted = {}) {
  co_await coring::sleep_for(d);
  ++n;
}

// Spawns two children of depth - 1 into the same group, down to depth 0.
task<> fan_out(coring::task_group& group, int depth, int& nodes) {
  ++nodes;
  co_await coring::yield();
  if (depth > 0) {
    group.spawn(fan_out(group, depth - 1, nodes));
    group.spawn(fan_out(group, depth - 1, nodes));
  }
}

}  // namespace

TEST_SUITE("runtime/task_group") {

TEST_CASE("join waits for every child" * doctest::timeout(5)) {
  REQUIRE(counted::live() == 0);
  int finished = 0;
  stopwatch sw;
  coring::run([](int& n) -> task<> {
    coring::task_group group;
    group.spawn(count_after(15ms, n));
    group.spawn(count_after(5ms, n));
    group.spawn(count_after(10ms, n));
    CHECK(group.running() == 3);
    co_await group.join();
    CHECK(n == 3);
    CHECK(group.running() == 0);
  }(finished));
  CHECK(finished == 3);
  CHECK(sw.elapsed() >= 15ms);
  CHECK(counted::live() == 0);
}

TEST_CASE("a failing child cancels the others and join rethrows its exception" * doctest::timeout(5)) {
  REQUIRE(counted::live() == 0);
  int cancellations = 0;
  std::string caught;
  stopwatch sw;
  coring::run([](int& c, std::string& msg) -> task<> {
    coring::task_group group;
    group.spawn(cancellable(c));
    group.spawn(fails_after(5ms, "child failed"));
    group.spawn(cancellable(c));
    try {
      co_await group.join();
    } catch (const std::runtime_error& e) {
      msg = e.what();
    }
    CHECK(group.running() == 0);
  }(cancellations, caught));
  CHECK(caught == "child failed");
  CHECK(cancellations == 2);
  CHECK(sw.elapsed() < 1s);
  CHECK(counted::live() == 0);
}

TEST_CASE("children spawn more children into the group; join waits for all of them" * doctest::timeout(5)) {
  int nodes = coring::run([]() -> task<int> {
    int nodes = 0;
    coring::task_group group;
    group.spawn(fan_out(group, 6, nodes));
    co_await group.join();
    CHECK(group.running() == 0);
    co_return nodes;
  }());
  CHECK(nodes == 127);  // 2^7 - 1
}

TEST_CASE("cancelling the task that joins a group cancels the children and waits for them"
          * doctest::timeout(5)) {
  REQUIRE(counted::live() == 0);
  int cancellations = 0;
  int live_when_joined = -1;
  stopwatch sw;
  coring::run([](int& c, int& live) -> task<> {
    auto joiner = coring::spawn([](int& n) -> task<> {
      coring::task_group group;
      for (int i = 0; i < 3; ++i) group.spawn(cancellable(n));
      co_await group.join();
    }(c));
    co_await coring::sleep_for(2ms);
    joiner.cancel();
    bool joined_cancelled = false;
    try {
      co_await joiner;
    } catch (const coring::cancelled&) {
      joined_cancelled = true;
    }
    CHECK(joined_cancelled);
    live = counted::live();
  }(cancellations, live_when_joined));
  CHECK(cancellations == 3);
  CHECK(live_when_joined == 0);
  CHECK(sw.elapsed() < 1s);
}

TEST_CASE("a child spawned after the group failed is cancelled at once" * doctest::timeout(5)) {
  bool body_ran = false;
  coring::run([](bool& ran) -> task<> {
    coring::task_group group;
    group.spawn(fails_after(1ms, "early failure"));
    co_await coring::sleep_for(5ms);
    group.spawn([](bool& r) -> task<> {
      r = true;
      co_return;
    }(ran));
    try {
      co_await group.join();
    } catch (const std::runtime_error&) {
    }
  }(body_ran));
  CHECK_FALSE(body_ran);
}

}  // TEST_SUITE
