#include <coring/net/unix.hpp>

#include <doctest/doctest.h>

#include <coring/error.hpp>
#include <coring/net/error.hpp>
#include <coring/spawn.hpp>
#include <coring/task.hpp>

#include "support/net.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <system_error>

namespace {
using coring::task;
using coring::net::unix_listener;
using coring::net::unix_stream;
using coring_test::bytes_of;
using coring_test::run_net;

std::string temp_socket_path() { return "/tmp/coring-unix-test-" + std::to_string(::getpid()) + ".sock"; }

task<std::string> echo_one(unix_listener& l, std::string_view text) {
  auto server = coring::spawn([](unix_listener& l) -> task<> {
    unix_stream s = co_await l.accept();
    std::array<std::byte, 64> buf;
    std::size_t n = co_await s.read_some(buf);
    co_await s.write_all(std::span(buf).first(n));
  }(l));
  unix_stream c = co_await unix_stream::connect(l.local_address().host());
  co_await c.write_all(bytes_of(text));
  std::array<std::byte, 64> buf;
  std::size_t n = co_await c.read_some(buf);
  co_await server;
  co_return std::string(coring_test::text_of(std::span(buf).first(n)));
}
}  // namespace

TEST_SUITE("net/unix") {

TEST_CASE("a Unix listener at a path accepts and echoes, and close removes the file" * doctest::timeout(10)) {
  const std::string path = temp_socket_path();
  run_net([](std::string path) -> task<> {
    unix_listener l = unix_listener::bind(path);
    CHECK(l.local_address().to_string() == "unix:" + path);
    CHECK(co_await echo_one(l, "over a file") == "over a file");
    l.close();
    struct stat st{};
    CHECK(::stat(path.c_str(), &st) != 0);
  }(path));
}

TEST_CASE("an abstract Unix socket needs no file" * doctest::timeout(10)) {
  run_net([]() -> task<> {
    unix_listener l = unix_listener::bind("@coring-test-" + std::to_string(::getpid()));
    CHECK(co_await echo_one(l, "abstract") == "abstract");
  }());
}

TEST_CASE("connecting to a missing path is a connect_error naming it" * doctest::timeout(10)) {
  run_net([]() -> task<> {
    bool thrown = false;
    try {
      (void)co_await unix_stream::connect("/tmp/coring-no-such-socket");
    } catch (const coring::net::connect_error& e) {
      thrown = true;
      CHECK(std::string(e.what()) == "connect to unix:/tmp/coring-no-such-socket: No such file or directory");
      CHECK(e.code() == std::error_code(ENOENT, std::system_category()));
    }
    CHECK(thrown);
  }());
}

TEST_CASE("a stream pair moves bytes both ways and shutdown_write ends one direction" * doctest::timeout(10)) {
  run_net([]() -> task<> {
    auto [a, b] = unix_stream::pair();
    co_await a.write_all(bytes_of("ping"));
    co_await a.shutdown_write();
    std::array<std::byte, 8> buf;
    CHECK(co_await b.read_some(buf) == 4);
    CHECK(co_await b.read_some(buf) == 0);  // a's direction ended
    co_await b.write_all(bytes_of("pong"));  // b's still open
    CHECK(co_await a.read_some(buf) == 4);
    co_await a.close();
    CHECK_FALSE(a.is_open());
  }());
}

}  // TEST_SUITE
