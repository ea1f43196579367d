// shield: the inner task runs to its end when the awaiter is cancelled; the
// awaiter still sees the cancellation, once, after the inner task ended.

#include <doctest/doctest.h>

#include <chrono>
#include <coring/error.hpp>
#include <coring/event_loop.hpp>
#include <coring/shield.hpp>
#include <coring/sleep.hpp>
#include <coring/spawn.hpp>
#include <coring/task.hpp>
#include <coring/wait_for.hpp>
#include <random>
#include <stdexcept>
#include <string>

#include "support/cancel_once.hpp"
#include "support/counted.hpp"
#include "support/stopwatch.hpp"

namespace {

using namespace std::chrono_literals;
using coring::task;
using coring_test::counted;
using coring_test::stopwatch;

task<int> finishes_after(std::chrono::milliseconds d, bool& finished, counted = {}) {
  co_await coring::sleep_for(d);
  finished = true;
  co_return 42;
}

task<int> fails_after(std::chrono::milliseconds d) {
  co_await coring::sleep_for(d);
  throw std::runtime_error("shielded failure");
}

}  // namespace

TEST_SUITE("runtime/shield") {
  TEST_CASE("shield gives the value of a task nobody cancels, and rethrows its error" * doctest::timeout(5)) {
    bool finished = false;
    CHECK(coring::run(coring::shield(finishes_after(1ms, finished))) == 42);
    CHECK(finished);
    CHECK_THROWS_AS(coring::run(coring::shield(fails_after(1ms))), std::runtime_error);
  }

  TEST_CASE("cancelling the awaiter lets the shielded task finish, then delivers one cancellation" *
            doctest::timeout(5)) {
    REQUIRE(counted::live() == 0);
    bool finished = false;
    int cancellations = 0;
    bool finished_before_cancel_seen = false;
    stopwatch sw;
    coring::run([](bool& finished, int& cancellations, bool& ordered) -> task<> {
      auto victim = coring::spawn([](bool& finished, int& cancellations, bool& ordered) -> task<> {
        try {
          (void)co_await coring::shield(finishes_after(30ms, finished));
        } catch (const coring::cancelled&) {
          ++cancellations;
          ordered = finished;
        }
        co_await coring::sleep_for(1ms);  // the cancellation was delivered once: this sleeps normally
      }(finished, cancellations, ordered));
      co_await coring::sleep_for(5ms);
      victim.cancel();
      co_await victim;
    }(finished, cancellations, finished_before_cancel_seen));
    CHECK(finished);
    CHECK(cancellations == 1);
    CHECK(finished_before_cancel_seen);
    CHECK(sw.elapsed() >= 30ms);
    CHECK(counted::live() == 0);
  }

  TEST_CASE("a shield delivers one cancellation (the exactly-once law)" * doctest::timeout(5)) {
    bool finished = false;
    coring_test::expect_cancelled_once(
        [&]() -> task<> { (void)co_await coring::shield(finishes_after(5ms, finished)); });
    CHECK(finished);
  }

  TEST_CASE("cancelled just as the shielded task ends: its value, or one cancellation after it ended" *
            doctest::timeout(30)) {
    std::mt19937 rng(5);
    int values = 0, cancels = 0;
    for (int round = 0; round < 150; ++round) {
      const auto work = std::chrono::microseconds(rng() % 400);
      const auto cancel_at = std::chrono::microseconds(rng() % 400);
      bool finished = false, got = false;
      int seen = 0;
      coring::run([](std::chrono::microseconds w, std::chrono::microseconds c, bool& finished, bool& got,
                     int& seen) -> task<> {
        auto victim =
            coring::spawn([](std::chrono::microseconds w, bool& finished, bool& got, int& seen) -> task<> {
              try {
                got = co_await coring::shield([](std::chrono::microseconds w, bool& finished) -> task<int> {
                        co_await coring::sleep_for(w);
                        finished = true;
                        co_return 1;
                      }(w, finished)) == 1;
              } catch (const coring::cancelled&) {
                ++seen;
              }
              try {
                co_await coring::sleep_for(0ms);
              } catch (const coring::cancelled&) {
                ++seen;
              }
            }(w, finished, got, seen));
        co_await coring::sleep_for(c);
        victim.cancel();
        co_await victim;
      }(work, cancel_at, finished, got, seen));
      CHECK(finished);  // always: the shield waited for it
      CHECK(seen <= 1);
      CHECK((got || seen == 1));
      values += got;
      cancels += !got;
    }
    MESSAGE("values " << values << ", cancelled " << cancels);
  }

  TEST_CASE("the error of a shielded task whose awaiter was cancelled goes to the exception handler" *
            doctest::timeout(5)) {
    coring::event_loop loop;
    std::string reported;
    loop.set_exception_handler([&](std::exception_ptr e, std::string_view) {
      try {
        std::rethrow_exception(e);
      } catch (const std::runtime_error& ex) {
        reported = ex.what();
      }
    });
    bool saw_cancel = loop.run_until_complete([]() -> task<bool> {
      auto victim = coring::spawn([]() -> task<> { (void)co_await coring::shield(fails_after(10ms)); }());
      co_await coring::yield();
      co_await coring::yield();
      victim.cancel();
      try {
        co_await victim;
      } catch (const coring::cancelled&) {
        co_return true;
      }
      co_return false;
    }());
    CHECK(saw_cancel);
    CHECK(reported == "shielded failure");
  }

  TEST_CASE("a deadline around a shield waits for the shielded task, then times out" * doctest::timeout(5)) {
    bool finished = false;
    stopwatch sw;
    CHECK_THROWS_AS(coring::run(coring::wait_for(coring::shield(finishes_after(40ms, finished)), 5ms)),
                    coring::timeout_error);
    CHECK(finished);
    CHECK(sw.elapsed() >= 40ms);
  }

  TEST_CASE("a task cancelled before shield starts never starts the shielded task" * doctest::timeout(5)) {
    bool finished = false;
    coring::run([](bool& finished) -> task<> {
      auto victim = coring::spawn(coring::shield(finishes_after(1ms, finished)));
      victim.cancel();  // before it ever ran
      CHECK_THROWS_AS(co_await victim, coring::cancelled);
    }(finished));
    CHECK_FALSE(finished);
  }

  TEST_CASE("loop shutdown cancels a shielded task too: nothing hangs" * doctest::timeout(5)) {
    stopwatch sw;
    coring::run([]() -> task<> {
      coring::spawn([]() -> task<> {
        bool never = false;
        (void)co_await coring::shield(finishes_after(10s, never));
      }())
          .detach();
      co_await coring::sleep_for(1ms);
    }());
    CHECK(sw.elapsed() < 2s);
  }

}  // TEST_SUITE
