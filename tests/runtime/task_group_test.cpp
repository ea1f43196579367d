#include <coring/task_group.hpp>

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
using coring::task_group;
using coring_test::cancellable;
using coring_test::counted;
using coring_test::fails_after;
using coring_test::stopwatch;

task<> count_after(std::chrono::milliseconds d, int& n, counted = {}) {
  co_await coring::sleep_for(d);
  ++n;
}

// Spawns two children of depth - 1 into the same group, down to depth 0.
task<> fan_out(task_group& group, int depth, int& nodes) {
  ++nodes;
  co_await coring::yield();
  if (depth > 0) {
    group.spawn(fan_out(group, depth - 1, nodes));
    group.spawn(fan_out(group, depth - 1, nodes));
  }
}

// A child that, when cancelled, touches state owned by the frame that
// started the group, after a further await (real clean-up code does).
task<> touches_parent_state_on_cancel(std::vector<int>& parent_state) {
  try {
    co_await coring::sleep_for(10s);
  } catch (const coring::cancelled&) {
    parent_state.push_back(1);
  }
  co_await coring::yield();
  parent_state.push_back(2);
}

}  // namespace

TEST_SUITE("runtime/task_group") {

TEST_CASE("run waits for every child and gives the body's value" * doctest::timeout(5)) {
  REQUIRE(counted::live() == 0);
  int finished = 0;
  stopwatch sw;
  int value = coring::run([](int& n) -> task<int> {
    co_return co_await task_group::run([&](task_group& g) -> task<int> {
      g.spawn(count_after(15ms, n));
      g.spawn(count_after(5ms, n));
      g.spawn(count_after(10ms, n));
      CHECK(g.running() == 3);
      co_return 42;  // returns before the children end: run() still waits
    });
  }(finished));
  CHECK(value == 42);
  CHECK(finished == 3);
  CHECK(sw.elapsed() >= 15ms);
  CHECK(counted::live() == 0);
}

TEST_CASE("a failing child cancels the others and the body, and run rethrows its exception"
          * doctest::timeout(5)) {
  REQUIRE(counted::live() == 0);
  int cancellations = 0;
  bool body_cancelled = false;
  std::string caught;
  stopwatch sw;
  coring::run([](int& c, bool& body_cancelled, std::string& msg) -> task<> {
    try {
      co_await task_group::run([&](task_group& g) -> task<> {
        g.spawn(cancellable(c));
        g.spawn(fails_after(5ms, "child failed"));
        g.spawn(cancellable(c));
        try {
          co_await coring::sleep_for(10s);
        } catch (const coring::cancelled&) {
          body_cancelled = true;
          throw;
        }
      });
    } catch (const std::runtime_error& e) {
      msg = e.what();
    }
  }(cancellations, body_cancelled, caught));
  CHECK(caught == "child failed");
  CHECK(cancellations == 2);
  CHECK(body_cancelled);
  CHECK(sw.elapsed() < 1s);
  CHECK(counted::live() == 0);
}

TEST_CASE("a body that throws has its children cancelled and awaited before run rethrows"
          * doctest::timeout(5)) {
  std::vector<int> parent_state;  // lent to the child: freed right after run() ends
  std::string caught;
  coring::run([](std::vector<int>& state, std::string& caught) -> task<> {
    try {
      co_await task_group::run([&](task_group& g) -> task<> {
        g.spawn(touches_parent_state_on_cancel(state));
        co_await coring::yield();
        throw std::runtime_error("between spawn and the end of the body");
      });
    } catch (const std::runtime_error& e) {
      caught = e.what();
      state.push_back(3);  // the child has finished its clean-up by now
    }
  }(parent_state, caught));
  CHECK(caught == "between spawn and the end of the body");
  CHECK(parent_state == std::vector<int>{1, 2, 3});
}

TEST_CASE("a child never runs after the frame that started the group has ended" * doctest::timeout(5)) {
  // The reproduction from the issue: the parent owns a vector and throws
  // right after spawning; the child touches the vector when cancelled. Under
  // ASan a child that outlived the frame is a use after free.
  int caught = 0;
  coring::run([](int& caught) -> task<> {
    for (int round = 0; round < 20; ++round) {
      try {
        co_await [](int round) -> task<> {
          std::vector<int> owned_by_parent(100, round);
          co_await task_group::run([&](task_group& g) -> task<> {
            g.spawn(touches_parent_state_on_cancel(owned_by_parent));
            g.spawn(touches_parent_state_on_cancel(owned_by_parent));
            if (round % 2 == 0) co_await coring::yield();
            throw std::runtime_error("parent failed");
          });
        }(round);
      } catch (const std::runtime_error&) {
        ++caught;
      }
    }
  }(caught));
  CHECK(caught == 20);
}

TEST_CASE("children spawn more children into the group and run waits for all of them" * doctest::timeout(5)) {
  int nodes = coring::run([]() -> task<int> {
    int nodes = 0;
    co_await task_group::run([&](task_group& g) -> task<> {
      g.spawn(fan_out(g, 6, nodes));
      co_return;
    });
    co_return nodes;
  }());
  CHECK(nodes == 127);  // 2^7 - 1
}

TEST_CASE("cancelling the task that runs a group cancels the body and the children and waits for them"
          * doctest::timeout(5)) {
  REQUIRE(counted::live() == 0);
  int cancellations = 0;
  int live_when_joined = -1;
  stopwatch sw;
  coring::run([](int& c, int& live) -> task<> {
    auto runner = coring::spawn([](int& n) -> task<> {
      co_await task_group::run([&](task_group& g) -> task<> {
        for (int i = 0; i < 3; ++i) g.spawn(cancellable(n));
        (void)co_await cancellable(n);  // the body is cancelled too
      });
    }(c));
    // Steps, not time: the body and the children must have started (a task
    // cancelled before it first ran never runs its body, so it counts nothing).
    for (int i = 0; i < 10; ++i) co_await coring::yield();
    runner.cancel();
    bool runner_cancelled = false;
    try {
      co_await runner;
    } catch (const coring::cancelled&) {
      runner_cancelled = true;
    }
    CHECK(runner_cancelled);
    live = counted::live();
  }(cancellations, live_when_joined));
  CHECK(cancellations == 4);
  CHECK(live_when_joined == 0);
  CHECK(sw.elapsed() < 1s);
}

TEST_CASE("a child spawned after the group failed is cancelled at once" * doctest::timeout(5)) {
  bool late_body_ran = false;
  coring::run([](bool& ran) -> task<> {
    try {
      co_await task_group::run([&](task_group& g) -> task<> {
        g.spawn(fails_after(1ms, "early failure"));
        try {
          co_await coring::sleep_for(5s);
        } catch (const coring::cancelled&) {
        }
        g.spawn([](bool& r) -> task<> {
          r = true;
          co_return;
        }(ran));
      });
    } catch (const std::runtime_error&) {
    }
  }(late_body_ran));
  CHECK_FALSE(late_body_ran);
}

TEST_CASE("cancel() stops the children but lets the body decide when it ends" * doctest::timeout(5)) {
  int cancellations = 0;
  std::string after = coring::run([](int& c) -> task<std::string> {
    co_return co_await task_group::run([&](task_group& g) -> task<std::string> {
      g.spawn(cancellable(c));
      g.spawn(cancellable(c));
      co_await coring::yield();
      g.cancel();
      co_await coring::sleep_for(5ms);
      co_return "body finished after cancel, " + std::to_string(g.running()) + " running";
    });
  }(cancellations));
  CHECK(after == "body finished after cancel, 0 running");
  CHECK(cancellations == 2);
}

TEST_CASE("a second failure goes to the loop's exception handler, the first is rethrown" * doctest::timeout(5)) {
  std::vector<std::string> reported;
  coring::event_loop loop;
  loop.set_exception_handler([&](std::exception_ptr e, std::string_view) {
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      reported.push_back(ex.what());
    }
  });
  std::string caught = loop.run_until_complete([]() -> task<std::string> {
    try {
      co_await task_group::run([](task_group& g) -> task<> {
        g.spawn(fails_after(1ms, "first"));
        g.spawn([]() -> task<> {
          try {
            co_await coring::sleep_for(10s);
          } catch (const coring::cancelled&) {
          }
          throw std::runtime_error("second, while cancelled");
        }());
        co_return;
      });
    } catch (const std::runtime_error& e) {
      co_return e.what();
    }
    co_return "nothing";
  }());
  CHECK(caught == "first");
  CHECK(reported == std::vector<std::string>{"second, while cancelled"});
}

TEST_CASE("a child's failure is reported, not lost, when the caller's cancellation wins" * doctest::timeout(5)) {
  std::vector<std::string> reported;
  coring::event_loop loop;
  loop.set_exception_handler([&](std::exception_ptr e, std::string_view) {
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      reported.push_back(ex.what());
    }
  });
  bool cancelled = loop.run_until_complete([]() -> task<bool> {
    auto runner = coring::spawn(task_group::run([](task_group& g) -> task<> {
      g.spawn(fails_after(1ms, "child failed while the caller was being cancelled"));
      try {
        co_await coring::sleep_for(10s);
      } catch (const coring::cancelled&) {
      }
      co_await coring::sleep_for(20ms);  // the body's clean-up outlasts both events
    }));
    co_await coring_test::let_children_start();  // the child's 1 ms starts before our 5 ms
    co_await coring::sleep_for(5ms);
    runner.cancel();
    try {
      co_await runner;
    } catch (const coring::cancelled&) {
      co_return true;
    }
    co_return false;
  }());
  CHECK(cancelled);
  CHECK(reported == std::vector<std::string>{"child failed while the caller was being cancelled"});
}

}  // TEST_SUITE
