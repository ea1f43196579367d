#include <coring/wait_for.hpp>

#include <doctest/doctest.h>

#include <coring/error.hpp>
#include <coring/event_loop.hpp>
#include <coring/io.hpp>
#include <coring/sleep.hpp>
#include <coring/task.hpp>

#include "support/counted.hpp"
#include "support/pipe.hpp"
#include "support/stopwatch.hpp"

#include <unistd.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <exception>
#include <string>
#include <type_traits>

namespace {

using namespace std::chrono_literals;
using coring::task;
using coring_test::counted;
using coring_test::stopwatch;

static_assert(std::is_base_of_v<coring::error, coring::timeout_error>);
static_assert(std::is_base_of_v<std::exception, coring::timeout_error>);
static_assert(!std::is_base_of_v<std::exception, coring::cancelled>);

task<int> value_after(std::chrono::milliseconds d, int v) {
  co_await coring::sleep_for(d);
  co_return v;
}

task<int> cancellable(bool& saw_cancel, counted = {}) {
  try {
    co_await coring::sleep_for(10s);
  } catch (const coring::cancelled&) {
    saw_cancel = true;
    throw;
  }
  co_return 0;
}

task<std::string> read_string(int fd) {
  std::array<std::byte, 64> buf{};
  std::size_t n = co_await coring::read_some(fd, buf);
  co_return std::string(reinterpret_cast<const char*>(buf.data()), n);
}

// Awaits `t`; gives the timeout_error's message, or "" if it did not time out.
template <class T>
task<std::string> timeout_message(task<T> t) {
  try {
    co_await std::move(t);
  } catch (const coring::timeout_error& e) {
    co_return e.what();
  }
  co_return "";
}

}  // namespace

TEST_SUITE("runtime/wait_for") {

TEST_CASE("wait_for gives the value of a task that finishes in time" * doctest::timeout(5)) {
  coring::event_loop loop;
  CHECK(loop.run_until_complete(coring::wait_for(value_after(1ms, 7), 1s)) == 7);
  CHECK_FALSE(loop.next_timeout().has_value());  // the deadline's timer is gone
}

TEST_CASE("wait_for throws timeout_error naming the time, after the late task observed cancellation"
          * doctest::timeout(5)) {
  REQUIRE(counted::live() == 0);
  bool saw_cancel = false;
  stopwatch sw;
  std::string message = coring::run(timeout_message(coring::wait_for(cancellable(saw_cancel), 20ms)));
  CHECK(message.find("20 ms") != std::string::npos);
  CHECK(saw_cancel);
  CHECK(sw.elapsed() >= 20ms);
  CHECK(sw.elapsed() < 1s);
  CHECK(counted::live() == 0);
}

TEST_CASE("wait_for on a task blocked in a ring operation times out promptly and cancels the read"
          * doctest::timeout(5)) {
  coring_test::test_pipe pipe;
  stopwatch sw;
  std::string message = coring::run(timeout_message(coring::wait_for(read_string(pipe.read_fd()), 20ms)));
  CHECK(message.find("20 ms") != std::string::npos);
  CHECK(sw.elapsed() >= 20ms);
  CHECK(sw.elapsed() < 1s);

  // The cancelled read consumed nothing: a new read gets all that is written later.
  pipe.write_now("later");
  CHECK(coring::run(read_string(pipe.read_fd())) == "later");
}

TEST_CASE("wait_until gives the value in time and throws timeout_error past the deadline" * doctest::timeout(5)) {
  CHECK(coring::run(coring::wait_until(value_after(1ms, 3), coring::clock::now() + 1s)) == 3);

  bool saw_cancel = false;
  stopwatch sw;
  std::string message =
      coring::run(timeout_message(coring::wait_until(cancellable(saw_cancel), coring::clock::now() + 20ms)));
  CHECK(message.find("deadline") != std::string::npos);
  CHECK(saw_cancel);
  CHECK(sw.elapsed() >= 20ms);
  CHECK(sw.elapsed() < 1s);
}

TEST_CASE("nested wait_for: the shorter timeout decides" * doctest::timeout(5)) {
  SUBCASE("the inner timeout is shorter") {
    bool saw_cancel = false;
    std::string message =
        coring::run(timeout_message(coring::wait_for(coring::wait_for(cancellable(saw_cancel), 20ms), 2s)));
    CHECK(message.find("20 ms") != std::string::npos);
    CHECK(saw_cancel);
  }
  SUBCASE("the outer timeout is shorter") {
    bool saw_cancel = false;
    stopwatch sw;
    std::string message =
        coring::run(timeout_message(coring::wait_for(coring::wait_for(cancellable(saw_cancel), 2s), 20ms)));
    CHECK(message.find("20 ms") != std::string::npos);
    CHECK(saw_cancel);
    CHECK(sw.elapsed() < 1s);
  }
  CHECK(counted::live() == 0);
}

TEST_CASE("a task that ignores the cancellation and returns a value wins over the timeout" * doctest::timeout(5)) {
  int v = coring::run(coring::wait_for(
      []() -> task<int> {
        try {
          co_await coring::sleep_for(10s);
        } catch (const coring::cancelled&) {
          co_return 5;  // swallowed on purpose
        }
        co_return 0;
      }(),
      100ms));  // long enough for the task to have started even on a loaded machine
  CHECK(v == 5);
}

}  // TEST_SUITE
