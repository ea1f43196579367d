// loop.call_later / call_at: plain functions scheduled on the loop, with a
// handle that cancels them.

#include <coring/timer_handle.hpp>

#include <doctest/doctest.h>

#include <coring/event_loop.hpp>
#include <coring/sleep.hpp>
#include <coring/task.hpp>

#include "support/allocations.hpp"
#include "support/stopwatch.hpp"

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using coring::task;
using coring_test::stopwatch;

}  // namespace

TEST_SUITE("runtime/timer_handle") {
  TEST_CASE("call_later runs the function on the loop's thread after the delay, in deadline order" *
            doctest::timeout(5)) {
    coring::event_loop loop;
    std::vector<std::string> order;
    std::thread::id where;
    stopwatch sw;
    loop.call_later(20ms, [&] { order.push_back("20ms"); });
    loop.call_later(5ms, [&] {
      order.push_back("5ms");
      where = std::this_thread::get_id();
    });
    loop.call_at(coring::clock::now() + 10ms, [&] { order.push_back("10ms"); });
    loop.run_until_complete([]() -> task<> { co_await coring::sleep_for(40ms); }());
    CHECK(order == std::vector<std::string>{"5ms", "10ms", "20ms"});
    CHECK(where == std::this_thread::get_id());
    CHECK(sw.elapsed() >= 20ms);
  }

  TEST_CASE("a cancelled call never runs, and its function is freed at once" * doctest::timeout(5)) {
    coring::event_loop loop;
    auto held = std::make_shared<int>(0);
    std::weak_ptr<int> watch = held;
    bool ran = false;
    coring::timer_handle h = loop.call_later(5ms, [&ran, held = std::move(held)] { ran = true; });
    CHECK(h.valid());
    CHECK_FALSE(h.cancelled());
    h.cancel();
    CHECK(h.cancelled());
    CHECK(watch.expired());  // the node (and what the function holds) is gone
    h.cancel();              // idempotent
    loop.run_until_complete([]() -> task<> { co_await coring::sleep_for(20ms); }());
    CHECK_FALSE(ran);
    CHECK_FALSE(h.fired());
    CHECK_FALSE(loop.next_timeout().has_value());  // its timer left the heap
  }

  TEST_CASE("dropping the handle does not cancel, cancel after the call is a no-op" * doctest::timeout(5)) {
    coring::event_loop loop;
    int calls = 0;
    loop.call_later(1ms, [&] { ++calls; });  // handle dropped at once
    coring::timer_handle h = loop.call_later(1ms, [&] { ++calls; });
    loop.run_until_complete([]() -> task<> { co_await coring::sleep_for(10ms); }());
    CHECK(calls == 2);
    CHECK(h.fired());
    h.cancel();
    CHECK_FALSE(h.cancelled());
  }

  TEST_CASE("a call can schedule and cancel calls, and cancelling itself while running is a no-op" *
            doctest::timeout(5)) {
    coring::event_loop loop;
    std::vector<int> order;
    coring::timer_handle later;
    coring::timer_handle self;
    self = loop.call_later(1ms, [&] {
      order.push_back(1);
      self.cancel();  // running: no effect
      loop.call_later(0ms, [&] { order.push_back(2); });
      later.cancel();
    });
    later = loop.call_later(5ms, [&] { order.push_back(3); });
    loop.run_until_complete([]() -> task<> { co_await coring::sleep_for(20ms); }());
    CHECK(order == std::vector<int>{1, 2});
    CHECK(later.cancelled());
  }

  TEST_CASE("an exception from a call goes to the loop's exception handler" * doctest::timeout(5)) {
    coring::event_loop loop;
    std::string reported, name;
    loop.set_exception_handler([&](std::exception_ptr e, std::string_view n) {
      name = n;
      try {
        std::rethrow_exception(e);
      } catch (const std::runtime_error& ex) {
        reported = ex.what();
      }
    });
    loop.call_later(1ms, [] { throw std::runtime_error("late failure"); });
    loop.run_until_complete([]() -> task<> { co_await coring::sleep_for(10ms); }());
    CHECK(reported == "late failure");
    CHECK(name == "call_later callback");
  }

  TEST_CASE(
      "calls still scheduled when the loop is destroyed never run and are freed; their handles stay inert" *
      doctest::timeout(5)) {
    auto held = std::make_shared<int>(0);
    std::weak_ptr<int> watch = held;
    bool ran = false;
    coring::timer_handle h;
    {
      coring::event_loop loop;
      h = loop.call_later(1h, [&ran, held = std::move(held)] { ran = true; });
      loop.call_later(1h, [&ran] { ran = true; });
      loop.run_until_complete([]() -> task<> { co_return; }());
    }
    CHECK_FALSE(ran);
    CHECK(watch.expired());
    h.cancel();  // the loop is gone: no effect, no crash
    CHECK_FALSE(h.cancelled());
  }

  TEST_CASE("call_later with max() never fires" * doctest::timeout(5)) {
    coring::event_loop loop;
    bool ran = false;
    coring::timer_handle h = loop.call_later(std::chrono::nanoseconds::max(), [&] { ran = true; });
    loop.run_until_complete([]() -> task<> { co_await coring::sleep_for(5ms); }());
    CHECK_FALSE(ran);
    h.cancel();
    CHECK(h.cancelled());
  }

  TEST_CASE("call_later makes one allocation, holding the function" * doctest::timeout(5)) {
    coring::event_loop loop;
    for (int i = 0; i < 8; ++i) loop.call_later(1ms, [] {}).cancel();  // warm up: the heap's storage
    coring_test::allocation_scope counting;
    coring::timer_handle h = loop.call_later(1ms, [] {});
    CHECK(counting.count() == 1);
    h.cancel();
  }

}  // TEST_SUITE
