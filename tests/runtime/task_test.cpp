#include <coring/task.hpp>

#include <doctest/doctest.h>

#include <coring/event_loop.hpp>
#include <coring/spawn.hpp>

#include "support/counted.hpp"

#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

namespace {

using coring::task;
using coring_test::counted;

task<int> answer() { co_return 42; }

task<> set_flag(bool& flag) {
  flag = true;
  co_return;
}

int global_value = 7;
task<int&> reference_to_global() { co_return global_value; }

task<std::unique_ptr<int>> make_unique_int(int v) { co_return std::make_unique<int>(v); }

task<int> throws_runtime_error(std::string message) {
  throw std::runtime_error(message);
  co_return 0;
}

task<int> chain(int depth) {
  if (depth == 0) co_return 0;
  co_return 1 + co_await chain(depth - 1);
}

task<int> one() { co_return 1; }

task<> holds_counted(counted) { co_return; }

}  // namespace

TEST_SUITE("runtime/task") {

TEST_CASE("a task does not run its body until it is awaited") {
  bool ran = false;
  auto lazy = set_flag(ran);
  CHECK_FALSE(ran);
  CHECK(lazy.valid());
  coring::run([](task<> t, bool& ran_when_awaited) -> task<> {
    CHECK_FALSE(ran_when_awaited);
    co_await std::move(t);
    CHECK(ran_when_awaited);
  }(std::move(lazy), ran));
  CHECK(ran);
}

TEST_CASE("awaiting a task gives its value, nothing for task<void>, and the referred object for task<T&>") {
  coring::run([]() -> task<> {
    CHECK(co_await answer() == 42);

    bool flag = false;
    co_await set_flag(flag);
    CHECK(flag);

    int& ref = co_await reference_to_global();
    CHECK(&ref == &global_value);

    std::unique_ptr<int> p = co_await make_unique_int(5);
    REQUIRE(p);
    CHECK(*p == 5);
  }());
}

TEST_CASE("an exception thrown by a task propagates to its awaiter") {
  coring::run([]() -> task<> {
    std::string caught;
    try {
      co_await throws_runtime_error("broken on purpose");
    } catch (const std::runtime_error& e) {
      caught = e.what();
    }
    CHECK(caught == "broken on purpose");
  }());
  CHECK_THROWS_WITH_AS(coring::run(throws_runtime_error("at the root")), "at the root", std::runtime_error);
}

TEST_CASE("a task is move-only and moving it transfers the frame") {
  static_assert(!std::is_copy_constructible_v<task<int>>);
  static_assert(!std::is_copy_assignable_v<task<int>>);
  static_assert(std::is_nothrow_move_constructible_v<task<int>>);
  static_assert(std::is_nothrow_move_assignable_v<task<int>>);

  REQUIRE(counted::live() == 0);
  auto a = holds_counted(counted{});
  CHECK(counted::live() == 1);
  task<> b = std::move(a);
  CHECK_FALSE(a.valid());  // NOLINT(bugprone-use-after-move): the moved-from state is specified
  CHECK(b.valid());
  CHECK(counted::live() == 1);

  // Move-assigning over a task frees the frame it held.
  b = holds_counted(counted{});
  CHECK(counted::live() == 1);
  coring::run(std::move(b));
  CHECK(counted::live() == 0);

  CHECK_FALSE(task<int>().valid());
}

TEST_CASE("destroying a task that never started frees its frame") {
  REQUIRE(counted::live() == 0);
  {
    auto t = holds_counted(counted{});
    CHECK(counted::live() == 1);
  }
  CHECK(counted::live() == 0);
}

TEST_CASE("an await chain one million deep completes without overflowing the stack" * doctest::timeout(30)) {
  CHECK(coring::run(chain(1'000'000)) == 1'000'000);
}

TEST_CASE("awaiting one million trivial tasks in a loop completes" * doctest::timeout(30)) {
  long sum = coring::run([]() -> task<long> {
    long s = 0;
    for (int i = 0; i < 1'000'000; ++i) s += co_await one();
    co_return s;
  }());
  CHECK(sum == 1'000'000);
}

}  // TEST_SUITE
