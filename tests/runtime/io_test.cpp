#include <coring/io.hpp>

#include <doctest/doctest.h>

#include <coring/error.hpp>
#include <coring/event_loop.hpp>
#include <coring/sleep.hpp>
#include <coring/spawn.hpp>
#include <coring/task.hpp>

#include "support/pipe.hpp"
#include "support/stopwatch.hpp"

#include <poll.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <system_error>

namespace {

using namespace std::chrono_literals;
using coring::task;
using coring_test::stopwatch;
using coring_test::test_pipe;

std::span<const std::byte> bytes_of(std::string_view s) { return std::as_bytes(std::span(s.data(), s.size())); }

task<std::string> read_string(int fd) {
  std::array<std::byte, 64> buf{};
  std::size_t n = co_await coring::read_some(fd, buf);
  co_return std::string(reinterpret_cast<const char*>(buf.data()), n);
}

}  // namespace

TEST_SUITE("runtime/io") {

TEST_CASE("write_some and read_some move bytes through a pipe" * doctest::timeout(5)) {
  test_pipe pipe;
  std::string got = coring::run([](int rfd, int wfd) -> task<std::string> {
    std::string_view text = "hello, ring";
    CHECK(co_await coring::write_some(wfd, bytes_of(text)) == text.size());
    co_return co_await read_string(rfd);
  }(pipe.read_fd(), pipe.write_fd()));
  CHECK(got == "hello, ring");
}

TEST_CASE("read_some gives 0 at end of stream" * doctest::timeout(5)) {
  test_pipe pipe;
  pipe.write_now("last");
  pipe.close_write();
  coring::run([](int rfd) -> task<> {
    CHECK(co_await read_string(rfd) == "last");
    CHECK((co_await read_string(rfd)).empty());
  }(pipe.read_fd()));
}

TEST_CASE("read_some on a closed descriptor throws io_error naming the fd, with code EBADF") {
  coring::event_loop loop;  // first, so that its ring and eventfd do not reuse the closed number
  int fd = -1;
  {
    test_pipe pipe;
    fd = pipe.read_fd();
  }  // both ends closed: fd is now invalid
  bool thrown = false;
  try {
    loop.run_until_complete(read_string(fd));
  } catch (const coring::io_error& e) {
    thrown = true;
    CHECK(e.code() == std::error_code(EBADF, std::system_category()));
    CHECK(std::string(e.what()).find("read from fd " + std::to_string(fd)) != std::string::npos);
  }
  CHECK(thrown);
  CHECK_THROWS_AS(loop.run_until_complete(read_string(-1)), coring::error);  // io_error is a coring::error
}

TEST_CASE("wait_readable resumes once data arrives" * doctest::timeout(5)) {
  test_pipe pipe;
  coring::run([](int rfd, int wfd) -> task<> {
    auto waiter = coring::spawn([](int fd) -> task<unsigned> { co_return co_await coring::wait_readable(fd); }(rfd));
    co_await coring::sleep_for(5ms);
    CHECK_FALSE(waiter.done());  // nothing to read yet
    std::string_view text = "x";
    REQUIRE(::write(wfd, text.data(), 1) == 1);
    unsigned revents = co_await waiter;
    CHECK((revents & POLLIN) != 0);
    CHECK(co_await read_string(rfd) == "x");  // polling consumed nothing
  }(pipe.read_fd(), pipe.write_fd()));
}

TEST_CASE("cancelling a read blocked in the ring ends it at once and consumes nothing" * doctest::timeout(5)) {
  test_pipe pipe;
  stopwatch sw;
  coring::run([](int rfd, int wfd) -> task<> {
    auto reader = coring::spawn(read_string(rfd));
    co_await coring::sleep_for(5ms);  // the read is in the ring now
    CHECK_FALSE(reader.done());
    reader.cancel();
    bool joined_cancelled = false;
    try {
      co_await reader;
    } catch (const coring::cancelled&) {
      joined_cancelled = true;
    }
    CHECK(joined_cancelled);

    std::string_view text = "after";
    REQUIRE(::write(wfd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
    CHECK(co_await read_string(rfd) == "after");  // all of it: the cancelled read took nothing
  }(pipe.read_fd(), pipe.write_fd()));
  CHECK(sw.elapsed() < 1s);
}

}  // TEST_SUITE
