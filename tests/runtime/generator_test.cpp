// coring::generator<T>: values with awaits between them; exceptions and
// cancellations crossing both ways; clean-up on every way out.

#include <doctest/doctest.h>

#include <array>
#include <chrono>
#include <coring/error.hpp>
#include <coring/event_loop.hpp>
#include <coring/future_as_completed.hpp>
#include <coring/generator.hpp>
#include <coring/io.hpp>
#include <coring/sleep.hpp>
#include <coring/spawn.hpp>
#include <coring/task.hpp>
#include <coring/thread_pool.hpp>
#include <coring/timeout.hpp>
#include <cstddef>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/cancel_once.hpp"
#include "support/counted.hpp"
#include "support/pipe.hpp"
#include "support/stopwatch.hpp"

namespace {

using namespace std::chrono_literals;
using coring::generator;
using coring::task;
using coring_test::counted;

generator<int> count_to(int n, std::chrono::milliseconds pause = 0ms) {
  for (int i = 1; i <= n; ++i) {
    if (pause > 0ms) co_await coring::sleep_for(pause);
    co_yield i;
  }
}

// What a generator saw of its own end.
struct cleanup_log {
  int cancellations = 0;
  bool async_cleanup_ran = false;
  bool ended = false;
};

// Yields forever, 1 ms apart; on cancellation (from its consumer or close())
// cleans up with an await and lets it through.
generator<int> ticks(cleanup_log& log, counted = {}) {
  std::exception_ptr stop;
  try {
    for (int i = 0;; ++i) {
      co_await coring::sleep_for(1ms);
      co_yield i;
    }
  } catch (const coring::cancelled&) {
    ++log.cancellations;
    stop = std::current_exception();
  }
  co_await coring::sleep_for(1ms);  // clean-up that awaits
  log.async_cleanup_ran = true;
  log.ended = true;
  std::rethrow_exception(stop);
}

// The chunks of a pipe until end of stream, like a streaming HTTP body.
generator<std::string> chunks(int fd) {
  std::array<std::byte, 16> buf{};
  for (;;) {
    std::size_t n = co_await coring::read_some(fd, buf);
    if (n == 0) co_return;
    co_yield std::string(reinterpret_cast<const char*>(buf.data()), n);
  }
}

}  // namespace

TEST_SUITE("runtime/generator") {
  TEST_CASE("a generator yields its values in order, with awaits between them, then nullopt for good" *
            doctest::timeout(5)) {
    std::vector<int> got = coring::run([]() -> task<std::vector<int>> {
      std::vector<int> out;
      auto g = count_to(4, 1ms);
      CHECK_FALSE(g.done());
      while (auto v = co_await g.next()) out.push_back(*v);
      CHECK(g.done());
      CHECK_FALSE((co_await g.next()).has_value());
      co_return out;
    }());
    CHECK(got == std::vector<int>{1, 2, 3, 4});
  }

  TEST_CASE("yielded rvalues are moved out, yielded lvalues are copied" * doctest::timeout(5)) {
    coring::run([]() -> task<> {
      auto owners = []() -> generator<std::unique_ptr<int>> {
        co_yield std::make_unique<int>(1);
        auto p = std::make_unique<int>(2);
        co_yield std::move(p);
        CHECK(p == nullptr);  // it was moved to the consumer
      }();
      auto a = co_await owners.next();
      auto b = co_await owners.next();
      REQUIRE(a);
      REQUIRE(b);
      CHECK(**a + **b == 3);
      CHECK_FALSE(co_await owners.next());

      auto names = []() -> generator<std::string> {
        std::string kept = "kept";
        co_yield kept;  // an lvalue: the generator keeps its own
        CHECK(kept == "kept");
      }();
      CHECK(*(co_await names.next()) == "kept");
      CHECK_FALSE(co_await names.next());
    }());
  }

  TEST_CASE("an exception in the generator comes out of next() once, then it has ended" *
            doctest::timeout(5)) {
    coring::run([]() -> task<> {
      auto g = []() -> generator<int> {
        co_yield 1;
        co_await coring::yield();
        throw std::runtime_error("generator failed");
      }();
      CHECK(*(co_await g.next()) == 1);
      CHECK_THROWS_WITH_AS(co_await g.next(), "generator failed", std::runtime_error);
      CHECK(g.done());
      CHECK_FALSE(co_await g.next());
    }());
  }

  TEST_CASE(
      "cancelling the consumer cancels what the generator awaits; it cleans up and next() throws, once" *
      doctest::timeout(5)) {
    REQUIRE(counted::live() == 0);
    cleanup_log log;
    coring_test::expect_cancelled_once([&]() -> task<> {
      auto g = ticks(log);
      for (;;) (void)co_await g.next();
    });
    CHECK(log.cancellations == 1);
    CHECK(log.async_cleanup_ran);
    CHECK(counted::live() == 0);
  }

  TEST_CASE("a consumer cancelled before the first next() never runs the generator's body" *
            doctest::timeout(5)) {
    bool body_ran = false;
    coring::run([](bool& ran) -> task<> {
      auto h = coring::spawn([](bool& ran) -> task<> {
        auto g = [](bool& ran) -> generator<int> {
          ran = true;
          co_yield 1;
        }(ran);
        (void)co_await g.next();
      }(ran));
      h.cancel();
      CHECK_THROWS_AS(co_await h, coring::cancelled);
    }(body_ran));
    CHECK_FALSE(body_ran);
  }

  TEST_CASE("close() runs the generator's clean-up, awaits included, later next()s give nullopt" *
            doctest::timeout(5)) {
    REQUIRE(counted::live() == 0);
    cleanup_log log;
    coring::run([](cleanup_log& log) -> task<> {
      auto g = ticks(log);
      CHECK(*(co_await g.next()) == 0);
      CHECK(*(co_await g.next()) == 1);
      co_await g.close();
      CHECK(g.done());
      CHECK_FALSE(co_await g.next());
      co_await g.close();               // again: no effect
      co_await coring::sleep_for(1ms);  // close() delivered no cancellation to us
    }(log));
    CHECK(log.cancellations == 1);
    CHECK(log.async_cleanup_ran);
    CHECK(counted::live() == 0);
  }

  TEST_CASE("close() on a generator that never started destroys it without running its body" *
            doctest::timeout(5)) {
    REQUIRE(counted::live() == 0);
    cleanup_log log;
    coring::run([](cleanup_log& log) -> task<> {
      auto g = ticks(log);
      CHECK(counted::live() == 1);  // its parameter
      co_await g.close();
      CHECK(counted::live() == 0);
      CHECK(g.done());
      CHECK_FALSE(co_await g.next());
    }(log));
    CHECK(log.cancellations == 0);
  }

  TEST_CASE("close() on a generator that yields again instead of ending throws coring::error" *
            doctest::timeout(5)) {
    coring::run([]() -> task<> {
      auto g = []() -> generator<int> {
        for (;;) {
          try {
            co_yield 1;
          } catch (const coring::cancelled&) {
            // ignores close()
          }
        }
      }();
      (void)co_await g.next();
      CHECK_THROWS_AS(co_await g.close(), coring::error);
    }());
  }

  TEST_CASE("throw_into() throws at the co_yield: a generator may recover and yield, or let it out" *
            doctest::timeout(5)) {
    coring::run([]() -> task<> {
      auto g = []() -> generator<std::string> {
        for (int i = 0; i < 3; ++i) {
          std::string recovered;
          try {
            co_yield "value";
          } catch (const std::invalid_argument& e) {
            recovered = std::string("recovered from ") + e.what();
          }
          if (!recovered.empty()) co_yield std::move(recovered);
        }
      }();
      CHECK(*(co_await g.next()) == "value");
      auto r = co_await g.throw_into(std::make_exception_ptr(std::invalid_argument("bad")));
      CHECK(*r == "recovered from bad");
      CHECK(*(co_await g.next()) == "value");
      CHECK_THROWS_AS(co_await g.throw_into(std::make_exception_ptr(std::length_error("out"))),
                      std::length_error);
      CHECK(g.done());

      auto fresh = count_to(3);
      CHECK_THROWS_AS(co_await fresh.throw_into(std::make_exception_ptr(std::length_error("early"))),
                      std::length_error);
      CHECK(fresh.done());
    }());
  }

  TEST_CASE("destroying a generator early runs its RAII clean-up where it waits" * doctest::timeout(5)) {
    REQUIRE(counted::live() == 0);
    coring::run([]() -> task<> {
      {
        auto g = []() -> generator<int> {
          counted guard;  // a local of the generator
          co_yield 1;
          co_yield 2;
        }();
        (void)co_await g.next();
        CHECK(counted::live() == 1);
      }  // dropped at its first co_yield
      CHECK(counted::live() == 0);
      {
        auto g = ticks(*std::make_unique<cleanup_log>(), counted{});
        CHECK(counted::live() == 1);  // never started: only its parameter
      }
      CHECK(counted::live() == 0);
    }());
  }

  TEST_CASE("cancelled just as the generator yields: the value or the cancellation, delivered once" *
            doctest::timeout(30)) {
    std::mt19937 rng(77);
    int values = 0, cancels = 0;
    for (int round = 0; round < 150; ++round) {
      const auto yield_at = std::chrono::microseconds(rng() % 400);
      const auto cancel_at = std::chrono::microseconds(rng() % 400);
      int seen_cancel = 0;
      bool got = false, cleanup = false;
      coring::run([](std::chrono::microseconds y, std::chrono::microseconds c, int& seen, bool& got,
                     bool& cleanup) -> task<> {
        auto consumer =
            coring::spawn([](std::chrono::microseconds y, int& seen, bool& got, bool& cleanup) -> task<> {
              auto g = [](std::chrono::microseconds y) -> generator<int> {
                co_await coring::sleep_for(y);
                co_yield 1;
              }(y);
              try {
                got = (co_await g.next()).has_value();
              } catch (const coring::cancelled&) {
                ++seen;
              }
              try {
                co_await coring::sleep_for(0ms);  // a cancellation that came after the value lands here
              } catch (const coring::cancelled&) {
                ++seen;
              }
              cleanup = true;
            }(y, seen, got, cleanup));
        co_await coring::sleep_for(c);
        consumer.cancel();
        co_await consumer;
      }(yield_at, cancel_at, seen_cancel, got, cleanup));
      CHECK(seen_cancel <= 1);
      CHECK((got || seen_cancel == 1));
      CHECK(cleanup);
      values += got;
      cancels += !got;
    }
    MESSAGE("values " << values << ", cancelled before the value " << cancels);
  }

  TEST_CASE("for_each visits every value, fn may be plain, a task, or stop early with false" *
            doctest::timeout(5)) {
    coring::run([]() -> task<> {
      int sum = 0;
      co_await coring::for_each(count_to(4), [&](int v) { sum += v; });
      CHECK(sum == 10);

      std::vector<int> seen;
      co_await coring::for_each(count_to(3), [&](int v) -> task<> {
        co_await coring::sleep_for(1ms);
        seen.push_back(v);
      });
      CHECK(seen == std::vector<int>{1, 2, 3});

      cleanup_log log;
      int taken = 0;
      co_await coring::for_each(ticks(log), [&](int) { return ++taken < 3; });
      CHECK(taken == 3);
      CHECK(log.cancellations == 1);  // stopped early: the generator was closed
      CHECK(log.async_cleanup_ran);
    }());
  }

  TEST_CASE("for_each closes the generator when fn throws, then rethrows" * doctest::timeout(5)) {
    cleanup_log log;
    CHECK_THROWS_AS(coring::run(coring::for_each(ticks(log),
                                                 [](int v) {
                                                   if (v == 2) throw std::out_of_range("fn failed");
                                                 })),
                    std::out_of_range);
    CHECK(log.cancellations == 1);
    CHECK(log.async_cleanup_ran);
  }

  TEST_CASE("for_each delivers one cancellation when its task is cancelled (the exactly-once law)" *
            doctest::timeout(5)) {
    cleanup_log log;
    coring_test::expect_cancelled_once(
        [&]() -> task<> { co_await coring::for_each(ticks(log), [](int) {}); });
    CHECK(log.cancellations == 1);
    CHECK(log.ended);
  }

  TEST_CASE("a streaming body as a generator: chunks of a pipe until end of stream, under a timeout" *
            doctest::timeout(5)) {
    coring_test::test_pipe pipe;
    pipe.write_now("0123456789abcdefghij0123456789");
    pipe.close_write();
    std::string body = coring::run([](int fd) -> task<std::string> {
      std::string all;
      co_await coring::for_each(chunks(fd), [&](std::string c) { all += c; });
      co_return all;
    }(pipe.read_fd()));
    CHECK(body == "0123456789abcdefghij0123456789");

    coring_test::test_pipe silent;  // never written: the generator's read runs into the consumer's deadline
    coring_test::stopwatch sw;
    CHECK_THROWS_AS(
        coring::run(coring::timeout(
            20ms,
            [&]() -> task<> { co_await coring::for_each(chunks(silent.read_fd()), [](std::string) {}); })),
        coring::timeout_error);
    CHECK(sw.elapsed() < 1s);
  }

  TEST_CASE("generators compose: one consumes another" * doctest::timeout(5)) {
    auto doubled = [](generator<int> in) -> generator<int> {
      while (auto v = co_await in.next()) co_yield *v * 2;
    };
    std::vector<int> got = coring::run([](auto doubled) -> task<std::vector<int>> {
      std::vector<int> out;
      co_await coring::for_each(doubled(count_to(3, 1ms)), [&](int v) { out.push_back(v); });
      co_return out;
    }(doubled));
    CHECK(got == std::vector<int>{2, 4, 6});
  }

}  // TEST_SUITE

TEST_SUITE("runtime/future_generator") {
  TEST_CASE("as_completed over futures is expressible as a generator" * doctest::timeout(10)) {
    coring::thread_pool pool(3);
    auto in_completion_order = [](std::vector<coring::future<int>>& fs) -> generator<int> {
      auto done = coring::as_completed_indices(fs);
      while (auto i = co_await done.next()) co_yield co_await fs[*i];
    };
    std::vector<int> got = coring::run([](coring::thread_pool& pool, auto make) -> task<std::vector<int>> {
      std::vector<coring::future<int>> fs;
      for (int ms : {60, 5, 30}) {
        fs.push_back(pool.submit([ms] {
          std::this_thread::sleep_for(std::chrono::milliseconds(ms));
          return ms;
        }));
      }
      std::vector<int> out;
      co_await coring::for_each(make(fs), [&](int v) { out.push_back(v); });
      co_return out;
    }(pool, in_completion_order));
    CHECK(got == std::vector<int>{5, 30, 60});
  }

}  // TEST_SUITE
