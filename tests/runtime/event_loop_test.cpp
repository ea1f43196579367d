#include <coring/event_loop.hpp>

#include <doctest/doctest.h>

#include <coring/error.hpp>
#include <coring/io.hpp>
#include <coring/sleep.hpp>
#include <coring/spawn.hpp>
#include <coring/task.hpp>

#include "support/counted.hpp"
#include "support/pipe.hpp"
#include "support/stopwatch.hpp"
#include "support/watchdog.hpp"

#include <liburing.h>
#include <poll.h>

#include <array>
#include <atomic>
#include <chrono>
#include <memory>
#include <cstddef>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using coring::task;
using coring_test::counted;
using coring_test::stopwatch;

task<int> answer() { co_return 42; }

task<int> fails(std::string message) {
  co_await coring::yield();
  throw std::runtime_error(message);
}

// Sleeps long while holding a counted; records whether it was cancelled.
task<> long_sleeper(counted, bool& saw_cancel) {
  try {
    co_await coring::sleep_for(10s);
  } catch (const coring::cancelled&) {
    saw_cancel = true;
    throw;
  }
}

task<> short_sleeper(std::chrono::milliseconds d, bool& done) {
  co_await coring::sleep_for(d);
  done = true;
}

struct reported {
  std::string task_name;
  std::string message;
};

std::string message_of(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    return ex.what();
  } catch (const coring::cancelled&) {
    return "coring::cancelled";
  } catch (...) {
    return "?";
  }
}

}  // namespace

TEST_SUITE("runtime/event_loop") {

TEST_CASE("coring::run returns the task's value or rethrows its exception") {
  CHECK(coring::run(answer()) == 42);
  CHECK_THROWS_WITH_AS(coring::run(fails("root failed")), "root failed", std::runtime_error);
}

TEST_CASE("run_until_complete runs tasks on an explicit loop, one after another") {
  coring::event_loop loop;
  CHECK(coring::event_loop::current() == &loop);
  CHECK(loop.run_until_complete(answer()) == 42);
  CHECK_THROWS_AS(loop.run_until_complete(fails("second run")), std::runtime_error);
  CHECK(loop.run_until_complete(answer()) == 42);
  CHECK_FALSE(loop.running());
}

TEST_CASE("the ring is set up with SINGLE_ISSUER and DEFER_TASKRUN on this kernel") {
  static_assert(IORING_SETUP_SINGLE_ISSUER == 1u << 12);
  static_assert(IORING_SETUP_DEFER_TASKRUN == 1u << 13);
  coring::event_loop loop;
  const unsigned flags = loop.setup_flags();
  CHECK((flags & IORING_SETUP_SINGLE_ISSUER) != 0);
  CHECK((flags & IORING_SETUP_DEFER_TASKRUN) != 0);
  CHECK(loop.fd() >= 0);
}

task<> leave_two_sleepers(bool& a, bool& b) {
  coring::spawn(long_sleeper(counted{}, a), "left running").detach();
  auto kept = coring::spawn(long_sleeper(counted{}, b), "kept handle");
  co_await coring::sleep_for(1ms);  // both are now asleep in their timers
  CHECK(counted::live() == 2);
  kept.detach();
}

// Runs coring::run in a child process so that a hang (the drain parking in
// the ring after the last task ended, a bug fixed once) shows up as a failure.
TEST_CASE("tasks still running when run() returns are cancelled and their frames freed" * doctest::timeout(5)) {
  REQUIRE(counted::live() == 0);
  auto result = coring_test::run_in_child(
      [] {
        bool a = false;
        bool b = false;
        coring::run(leave_two_sleepers(a, b));
        return a && b && counted::live() == 0;
      },
      2s);
  CHECK_MESSAGE(result == coring_test::child_result::exited_ok,
                "coring::run did not return promptly (timed_out = 2) or left a task uncancelled (failed = 1)");
}

TEST_CASE("shutting a loop down cancels its live tasks at once and frees their frames" * doctest::timeout(5)) {
  REQUIRE(counted::live() == 0);
  // In a child process, so that a drain parking in the ring after the last
  // task ended (a bug fixed once) shows as a failure, not a stuck binary.
  auto result = coring_test::run_in_child(
      [] {
        bool a_cancelled = false;
        bool b_cancelled = false;
        auto loop = std::make_unique<coring::event_loop>();
        loop->run_until_complete(leave_two_sleepers(a_cancelled, b_cancelled));
        if (loop->live_tasks() != 2) return false;
        stopwatch sw;
        loop.reset();  // ~event_loop cancels and drains
        return a_cancelled && b_cancelled && counted::live() == 0 && sw.elapsed() < 400ms;  // not at the 10 s timers
      },
      2s);
  CHECK(result == coring_test::child_result::exited_ok);
}

TEST_CASE("an exception nobody retrieved goes to the exception handler with the task's name"
          * doctest::timeout(5)) {
  std::vector<reported> reports;
  coring::event_loop loop;
  loop.set_exception_handler([&reports](std::exception_ptr e, std::string_view name) {
    reports.push_back({std::string(name), message_of(e)});
  });
  loop.run_until_complete([]() -> task<> {
    coring::spawn(fails("detached failure"), "worker").detach();
    { auto dropped = coring::spawn(fails("dropped handle"), "dropped"); }
    for (int i = 0; i < 5; ++i) co_await coring::yield();
  }());
  REQUIRE(reports.size() == 2);
  CHECK(reports[0].task_name == "worker");
  CHECK(reports[0].message == "detached failure");
  CHECK(reports[1].task_name == "dropped");
  CHECK(reports[1].message == "dropped handle");
}

TEST_CASE("a cancelled task is not reported to the exception handler" * doctest::timeout(5)) {
  REQUIRE(counted::live() == 0);
  int reports = 0;
  bool cancelled_by_handle = false;
  bool cancelled_at_shutdown = false;
  auto loop_owner = std::make_unique<coring::event_loop>();
  coring::event_loop& loop = *loop_owner;
  loop.set_exception_handler([&reports](std::exception_ptr, std::string_view) { ++reports; });
  loop.run_until_complete([](bool& by_handle, bool& at_shutdown) -> task<> {
    auto h = coring::spawn(long_sleeper(counted{}, by_handle), "cancelled by its handle");
    coring::spawn(long_sleeper(counted{}, at_shutdown), "cancelled at shutdown").detach();
    for (int i = 0; i < 5; ++i) co_await coring::yield();  // both have started: steps, not time
    h.cancel();
    co_await coring::sleep_for(1ms);
    CHECK(h.done());
    // dropping h now frees a frame that ended with coring::cancelled
  }(cancelled_by_handle, cancelled_at_shutdown));
  loop_owner.reset();  // ~event_loop cancels the detached sleeper and drains
  CHECK(cancelled_by_handle);
  CHECK(cancelled_at_shutdown);
  CHECK(reports == 0);
  CHECK(counted::live() == 0);
}

TEST_CASE("run_once, next_timeout and fd let a host drive the loop" * doctest::timeout(5)) {
  coring::event_loop loop;
  CHECK_FALSE(loop.next_timeout().has_value());  // nothing to do: wait for fd() only (embed_test.cpp has the rest)

  bool done = false;
  auto h = coring::spawn(short_sleeper(20ms, done));
  REQUIRE(loop.next_timeout().has_value());
  CHECK(*loop.next_timeout() == 0ns);  // the new task is ready to run

  stopwatch sw;
  CHECK(loop.run_once());  // the task starts and goes to sleep
  CHECK_FALSE(done);
  std::optional<std::chrono::nanoseconds> t = loop.next_timeout();
  REQUIRE(t.has_value());
  CHECK(*t > 0ns);
  CHECK(*t <= 20ms);

  // A host's poll loop: sleep on fd() for next_timeout(), then run a step.
  int steps = 0;
  while (!h.done() && steps < 1000) {
    pollfd pfd{loop.fd(), POLLIN, 0};
    auto wait = loop.next_timeout();
    int ms = wait ? static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(*wait).count()) : 1000;
    ::poll(&pfd, 1, ms);
    loop.run_once();
    ++steps;
  }
  REQUIRE(h.done());
  CHECK(done);
  CHECK(sw.elapsed() >= 20ms);
  h.get();
  CHECK_FALSE(loop.next_timeout().has_value());  // no timers, nothing ready
}

TEST_CASE("the loop's fd becomes readable when a ring operation completes" * doctest::timeout(5)) {
  coring_test::test_pipe pipe;
  coring::event_loop loop;
  auto reader = coring::spawn([](int fd) -> task<std::string> {
    std::array<std::byte, 16> buf{};
    std::size_t n = co_await coring::read_some(fd, buf);
    co_return std::string(reinterpret_cast<const char*>(buf.data()), n);
  }(pipe.read_fd()));
  loop.run_once();  // start the reader: its read goes into the ring
  loop.run_once();
  CHECK_FALSE(reader.done());
  CHECK_FALSE(loop.next_timeout().has_value());  // only I/O is pending

  pipe.write_now("ping");
  pollfd pfd{loop.fd(), POLLIN, 0};
  stopwatch sw;
  CHECK(::poll(&pfd, 1, 2000) == 1);
  CHECK(sw.elapsed() < 1s);  // at once: the data was there (the ring's own fd woke only at the timeout)
  for (int i = 0; i < 100 && !reader.done(); ++i) loop.run_once(10ms);
  REQUIRE(reader.done());
  CHECK(reader.get() == "ping");
}

TEST_CASE("stats count steps and the completions reaped from the ring" * doctest::timeout(5)) {
  coring_test::test_pipe pipe;
  coring::event_loop loop;
  const auto before = loop.stats().completions;
  loop.run_until_complete([](int rfd, int wfd) -> task<> {
    std::array<std::byte, 8> buf{};
    for (int i = 0; i < 10; ++i) {
      const std::byte b{static_cast<unsigned char>(i)};
      CHECK(co_await coring::write_some(wfd, std::span(&b, 1)) == 1);
      CHECK(co_await coring::read_some(rfd, buf) == 1);
    }
  }(pipe.read_fd(), pipe.write_fd()));
  CHECK(loop.stats().completions >= before + 20);
  CHECK(loop.stats().steps > 0);
}

coring::task<> stop_after(coring::event_loop& loop, std::chrono::milliseconds d, bool& ran) {
  co_await coring::sleep_for(d);
  ran = true;
  loop.stop();
}

TEST_CASE("run_forever runs spawned tasks until stop() and can run again" * doctest::timeout(5)) {
  coring::event_loop loop;
  bool first = false, second = false;
  coring::spawn(stop_after(loop, 10ms, first)).detach();
  loop.run_forever();
  CHECK(first);
  CHECK(loop.live_tasks() == 0);
  coring::spawn(stop_after(loop, 1ms, second)).detach();
  loop.run_forever();  // a second run starts afresh: the earlier stop() does not linger
  CHECK(second);
}

}  // TEST_SUITE

// Cross-thread posts start threads: the tsan preset runs suites named runtime/post*.
TEST_SUITE("runtime/post") {

TEST_CASE("post from another thread runs the function on the loop's thread" * doctest::timeout(5)) {
  coring::event_loop loop;
  const auto loop_thread = std::this_thread::get_id();
  std::thread::id ran_on{};
  std::atomic<int> runs{0};
  bool ran_inside_step = false;

  std::thread poster([&] {
    for (int i = 0; i < 3; ++i) {
      loop.post([&] {
        ran_on = std::this_thread::get_id();
        ran_inside_step = loop.running();
        runs.fetch_add(1);
      });
    }
  });
  // Block in the ring until the posts wake the loop.
  for (int i = 0; i < 200 && runs.load() < 3; ++i) loop.run_once(50ms);
  poster.join();
  for (int i = 0; i < 10 && runs.load() < 3; ++i) loop.run_once();
  CHECK(runs.load() == 3);
  CHECK(ran_on == loop_thread);
  CHECK(ran_inside_step);
}

TEST_CASE("a post wakes a loop that is blocked in the ring" * doctest::timeout(5)) {
  coring::event_loop loop;
  bool saw_cancel = false;
  std::thread poster;
  stopwatch sw;
  // The only timer is 10 s away, so the loop parks in the ring; the posted
  // function (which cancels the sleeper) must wake it.
  loop.run_until_complete([](coring::event_loop& l, std::thread& t, bool& saw) -> task<> {
    auto sleeper = coring::spawn(long_sleeper(counted{}, saw));
    auto* handle = &sleeper;
    t = std::thread([&l, handle] {
      std::this_thread::sleep_for(5ms);
      l.post([handle] { handle->cancel(); });
    });
    try {
      co_await sleeper;
    } catch (const coring::cancelled&) {
    }
  }(loop, poster, saw_cancel));
  poster.join();
  CHECK(saw_cancel);
  CHECK(sw.elapsed() < 2s);
}

}  // TEST_SUITE
