// Cancellation as a law, across every kind of leaf a task can be suspended
// in: it is delivered exactly once, it never needs stack proportional to the
// depth of what it cancels, and it is never lost (a cancel that finds the
// submission queue full is sent later).

#include <coring/as_completed.hpp>
#include <coring/error.hpp>
#include <coring/event.hpp>
#include <coring/event_loop.hpp>
#include <coring/gather.hpp>
#include <coring/io.hpp>
#include <coring/mutex.hpp>
#include <coring/queue.hpp>
#include <coring/semaphore.hpp>
#include <coring/sleep.hpp>
#include <coring/spawn.hpp>
#include <coring/task.hpp>
#include <coring/task_group.hpp>
#include <coring/wait_for.hpp>
#include <coring/when_any.hpp>

#include <doctest/doctest.h>

#include <fcntl.h>
#include <unistd.h>

#include "support/cancel_once.hpp"
#include "support/counted.hpp"
#include "support/pipe.hpp"
#include "support/stopwatch.hpp"
#include "support/tasks.hpp"

#include <array>
#include <chrono>
#include <cstddef>
#include <limits>
#include <memory>
#include <random>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using coring::task;
using coring_test::counted;
using coring_test::expect_cancelled_once;
using coring_test::stopwatch;

task<> sleep_long() { co_await coring::sleep_for(10s); }

// A chain of gathers `depth` deep, each level awaiting the next.
task<> nested_gathers(std::size_t depth) {
  if (depth == 0) {
    co_await coring::sleep_for(10s);
    co_return;
  }
  co_await coring::gather(nested_gathers(depth - 1));
}

// A chain of spawn + join `depth` deep.
task<> nested_joins(std::size_t depth) {
  if (depth == 0) {
    co_await coring::sleep_for(10s);
    co_return;
  }
  co_await coring::spawn(nested_joins(depth - 1));
}

}  // namespace

TEST_SUITE("runtime/cancellation") {

TEST_CASE("a cancelled sleep delivers one cancellation" * doctest::timeout(5)) {
  expect_cancelled_once([] { return sleep_long(); });
}

TEST_CASE("a cancelled yield delivers one cancellation" * doctest::timeout(5)) {
  // The victim keeps yielding: the cancellation arrives at one of its yields.
  expect_cancelled_once([]() -> task<> {
    for (;;) co_await coring::yield();
  });
}

TEST_CASE("a cancelled ring read delivers one cancellation and consumes nothing" * doctest::timeout(5)) {
  coring_test::test_pipe p;
  expect_cancelled_once([&]() -> task<> {
    std::array<std::byte, 16> buf;
    (void)co_await coring::read_some(p.read_fd(), buf);
  });
  p.write_now("x");
  char c = 0;
  CHECK(::read(p.read_fd(), &c, 1) == 1);  // the cancelled read took nothing
  CHECK(c == 'x');
}

TEST_CASE("a read cancelled just as its data arrives: the byte is read or left, never lost, never twice"
          * doctest::timeout(60)) {
  // Jittered race between a byte arriving (written by another thread) and the
  // reading task being cancelled. Exactly one of: the read returns the byte
  // (and the cancellation is delivered at the next suspension), or the read
  // ends cancelled and the byte is still in the pipe.
  std::mt19937 rng(20261130);
  int read_it = 0;
  int left_it = 0;
  for (int round = 0; round < 300; ++round) {
    coring_test::test_pipe p;
    const auto write_at = std::chrono::microseconds(rng() % 400);
    const auto cancel_at = std::chrono::microseconds(rng() % 400);
    int got = 0;
    int cancels = 0;
    coring::run([](int fd, int write_fd, std::chrono::microseconds write_at, std::chrono::microseconds cancel_at,
                   int& got, int& cancels) -> task<> {
      std::thread writer([=] {
        std::this_thread::sleep_for(write_at);
        char c = 'x';
        (void)::write(write_fd, &c, 1);
      });
      auto reader = coring::spawn([](int fd, int& got, int& cancels) -> task<> {
        std::array<std::byte, 4> buf;
        try {
          got = static_cast<int>(co_await coring::read_some(fd, buf));
        } catch (const coring::cancelled&) {
          ++cancels;
        }
        for (int k = 0; k < 2; ++k) {
          try {
            co_await coring::yield();
          } catch (const coring::cancelled&) {
            ++cancels;
          }
        }
      }(fd, got, cancels));
      co_await coring::yield();
      co_await coring::sleep_for(cancel_at);
      reader.cancel();
      co_await reader;
      writer.join();
    }(p.read_fd(), p.write_fd(), write_at, cancel_at, got, cancels));
    CHECK(cancels <= 1);
    char c = 0;
    ::fcntl(p.read_fd(), F_SETFL, O_NONBLOCK);  // the writer has written: empty means the task took it
    const bool still_there = ::read(p.read_fd(), &c, 1) == 1;
    CHECK((got == 1) != still_there);                          // read once, or left once
    if (got == 1) ++read_it;
    if (still_there) ++left_it;
  }
  MESSAGE("read by the task " << read_it << ", left in the pipe " << left_it);
}

TEST_CASE("a cancelled poll delivers one cancellation" * doctest::timeout(5)) {
  coring_test::test_pipe p;
  expect_cancelled_once([&]() -> task<> { (void)co_await coring::wait_readable(p.read_fd()); });
}

TEST_CASE("a cancelled timed ring read delivers cancellation, not a timeout" * doctest::timeout(5)) {
  coring_test::test_pipe p;
  expect_cancelled_once([&]() -> task<> {
    std::array<std::byte, 16> buf;
    (void)co_await coring::read_some(p.read_fd(), buf, {.timeout = 10s});
  });
}

TEST_CASE("waits on sync primitives deliver one cancellation each" * doctest::timeout(5)) {
  coring::event ev;
  expect_cancelled_once([&]() -> task<> { co_await ev.wait(); });
  coring::semaphore none(0);
  expect_cancelled_once([&]() -> task<> { co_await none.acquire(); });
  coring::queue<int> empty(1);
  expect_cancelled_once([&]() -> task<> { (void)co_await empty.pop(); });
  coring::queue<int> full(1);
  CHECK(full.try_push(1));
  expect_cancelled_once([&]() -> task<> { co_await full.push(2); });
  coring::mutex m;
  CHECK(m.try_lock());
  expect_cancelled_once([&]() -> task<> { co_await m.lock(); });
  m.unlock();
}

TEST_CASE("a cancelled join delivers one cancellation" * doctest::timeout(5)) {
  expect_cancelled_once([]() -> task<> { co_await coring::spawn(sleep_long()); });
}

TEST_CASE("cancelled combinators deliver one cancellation each" * doctest::timeout(5)) {
  expect_cancelled_once([]() -> task<> { co_await coring::gather(sleep_long(), sleep_long()); });
  expect_cancelled_once([]() -> task<> {
    std::vector<task<>> ts;
    ts.push_back(sleep_long());
    (void)co_await coring::gather_settled(std::move(ts));
  });
  expect_cancelled_once([]() -> task<> { (void)co_await coring::when_any(sleep_long(), sleep_long()); });
  expect_cancelled_once([]() -> task<> { co_await coring::wait_for(sleep_long(), 10s); });
  expect_cancelled_once([]() -> task<> {
    std::vector<task<>> ts;
    ts.push_back(sleep_long());
    co_await coring::as_completed(std::move(ts), [](auto& s) -> task<> { co_await s.next(); });
  });
  expect_cancelled_once([]() -> task<> {
    co_await coring::task_group::run([](coring::task_group& g) -> task<> {
      g.spawn(sleep_long());
      co_return;
    });
  });
}

TEST_CASE("cancelling a gather nested 300,000 deep uses constant stack" * doctest::timeout(60)) {
  // Each level's cancel hook cancels the next level; done by recursion this
  // overflowed the stack at -O2 from ~300,000 levels (100,000 under ASan).
  const std::size_t depth = 300'000;
  stopwatch sw;
  bool cancelled = coring::run([](std::size_t depth) -> task<bool> {
    auto root = coring::spawn(nested_gathers(depth));
    for (int i = 0; i < 8; ++i) co_await coring::sleep_for(1ms);  // let the chain build
    while (coring::event_loop::current()->live_tasks() < depth) co_await coring::sleep_for(1ms);
    root.cancel();
    try {
      co_await root;
    } catch (const coring::cancelled&) {
      co_return true;
    }
    co_return false;
  }(depth));
  CHECK(cancelled);
}

TEST_CASE("cancelling a spawn and join chain 300,000 deep uses constant stack" * doctest::timeout(60)) {
  const std::size_t depth = 300'000;
  bool cancelled = coring::run([](std::size_t depth) -> task<bool> {
    auto root = coring::spawn(nested_joins(depth));
    while (coring::event_loop::current()->live_tasks() < depth + 1) co_await coring::sleep_for(1ms);
    root.cancel();
    try {
      co_await root;
    } catch (const coring::cancelled&) {
      co_return true;
    }
    co_return false;
  }(depth));
  CHECK(cancelled);
}

TEST_CASE("cancels are never dropped when the submission queue is full" * doctest::timeout(10)) {
  // A ring with 2 SQ entries, 300 reads in flight, all cancelled at once by
  // a deadline: each cancel needs an SQE of its own. Every read must end
  // cancelled, promptly, and wait_for must report the timeout.
  constexpr int readers = 300;
  std::vector<std::unique_ptr<coring_test::test_pipe>> pipes;
  for (int i = 0; i < readers; ++i) pipes.push_back(std::make_unique<coring_test::test_pipe>());
  coring::event_loop loop({.ring_entries = 2});
  int cancelled = 0;
  bool timed_out = false;
  stopwatch sw;
  loop.run_until_complete([](auto& pipes, int& cancelled, bool& timed_out) -> task<> {
    std::vector<task<>> reads;
    for (auto& p : pipes) {
      reads.push_back([](int fd, int& cancelled) -> task<> {
        std::array<std::byte, 8> buf;
        try {
          (void)co_await coring::read_some(fd, buf);
        } catch (const coring::cancelled&) {
          ++cancelled;
          throw;
        }
      }(p->read_fd(), cancelled));
    }
    try {
      co_await coring::wait_for(coring::gather(std::move(reads)), 50ms);
    } catch (const coring::timeout_error&) {
      timed_out = true;
    }
  }(pipes, cancelled, timed_out));
  CHECK(timed_out);
  CHECK(cancelled == readers);
  CHECK(sw.elapsed() < 5s);
}

TEST_CASE("durations at the edges of their types are timeouts, not undefined behaviour" * doctest::timeout(5)) {
  using fsec = std::chrono::duration<double>;
  coring::run([]() -> task<> {
    // Never expire: these finish with their value.
    CHECK(co_await coring::wait_for(coring_test::value_after(1ms, 1), std::chrono::seconds::max()) == 1);
    CHECK(co_await coring::wait_for(coring_test::value_after(1ms, 2), fsec(std::numeric_limits<double>::infinity())) == 2);
    CHECK(co_await coring::wait_for(coring_test::value_after(1ms, 3), std::chrono::nanoseconds::max()) == 3);
    // Expire at once.
    bool nan_timed_out = false;
    try {
      (void)co_await coring::wait_for(coring_test::value_after(50ms, 4), fsec(std::numeric_limits<double>::quiet_NaN()));
    } catch (const coring::timeout_error&) {
      nan_timed_out = true;
    }
    CHECK(nan_timed_out);
    stopwatch sw;
    co_await coring::sleep_for(fsec(std::numeric_limits<double>::quiet_NaN()));
    co_await coring::sleep_for(fsec(-std::numeric_limits<double>::infinity()));
    co_await coring::sleep_for(std::chrono::seconds::min());
    CHECK(sw.elapsed() < 1s);
  }());
}

}  // TEST_SUITE
