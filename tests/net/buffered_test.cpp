#include <coring/net/buffered_reader.hpp>
#include <coring/net/buffered_writer.hpp>

#include <doctest/doctest.h>

#include <coring/error.hpp>
#include <coring/net/tcp.hpp>
#include <coring/net/unix.hpp>
#include <coring/sleep.hpp>
#include <coring/spawn.hpp>
#include <coring/task.hpp>

#include "support/net.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace std::chrono_literals;
using coring::task;
using coring::net::buffered_reader;
using coring::net::buffered_writer;
using coring::net::tcp_listener;
using coring::net::tcp_stream;
using coring::net::unix_stream;
using coring_test::bytes_of;
using coring_test::run_net;

// Sends `chunks` one by one with a pause, then ends the stream.
template <class Stream>
task<> send_chunks(Stream& s, std::vector<std::string> chunks) {
  for (auto& c : chunks) {
    co_await s.write_all(bytes_of(c));
    co_await coring::sleep_for(1ms);
  }
  co_await s.shutdown_write();
}

// A connected pair: the first a listener accepted (it lends buffers), the second a client.
struct tcp_pair {
  tcp_stream server, client;
};
task<tcp_pair> connected_tcp() {
  tcp_listener l = coring_test::loopback_listener();
  tcp_stream c = co_await tcp_stream::connect(l.local_address());
  tcp_stream s = co_await l.accept();
  co_return tcp_pair{std::move(s), std::move(c)};
}

}  // namespace

TEST_SUITE("net/buffered") {

TEST_CASE("read_until, read_line, read_exactly and read_some split a stream whatever its chunks" *
          doctest::timeout(10)) {
  // The same bytes cut three ways; lent (accepted TCP) and own-buffer (Unix pair) readers.
  const std::vector<std::vector<std::string>> cuts = {
      {"GET / HTTP/1.1\r\nHost: x\r\n\r\nline one\nline two\r\n0123456789tail"},
      {"GET / HT", "TP/1.1\r", "\nHost: x\r\n\r", "\nline one\nli", "ne two\r\n01234", "56789t", "ail"},
  };
  for (bool lent : {true, false}) {
    for (const auto& cut : cuts) {
      CAPTURE(lent);
      CAPTURE(cut.size());
      run_net([](bool lent, std::vector<std::string> cut) -> task<> {
        auto check = [](auto& server, auto& client, std::vector<std::string> cut) -> task<> {
          auto sender = coring::spawn(send_chunks(client, cut));
          buffered_reader in(server, {.buffer_size = 64});
          CHECK(co_await in.read_until("\r\n\r\n", 100) == "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
          CHECK(co_await in.read_line(100) == std::optional<std::string_view>("line one"));
          CHECK(co_await in.read_line(100) == std::optional<std::string_view>("line two"));
          CHECK(co_await in.read_exactly(10) == "0123456789");
          std::string rest;
          for (;;) {
            std::string_view v = co_await in.read_some();
            if (v.empty()) break;
            rest += v;
          }
          CHECK(rest == "tail");
          CHECK((co_await in.read_line(100)) == std::nullopt);  // end of stream is a value
          std::string_view none = co_await in.read_until("x", 10);
          CHECK(none.empty());
          co_await sender;
        };
        if (lent) {
          tcp_pair p = co_await connected_tcp();
          CHECK(p.server.lends_buffers());
          co_await check(p.server, p.client, cut);
        } else {
          auto [a, b] = unix_stream::pair();
          CHECK_FALSE(a.lends_buffers());
          co_await check(a, b, cut);
        }
      }(lent, cut));
    }
  }
}

TEST_CASE("read_until past its limit is a limit_error and the bytes stay buffered" * doctest::timeout(10)) {
  run_net([]() -> task<> {
    auto [a, b] = unix_stream::pair();
    co_await b.write_all(bytes_of("0123456789abcdef\n"));
    buffered_reader in(a, {.buffer_size = 4});
    bool thrown = false;
    try {
      (void)co_await in.read_until("\n", 8);
    } catch (const coring::net::limit_error& e) {
      thrown = true;
      CHECK(std::string(e.what()) == "read_until: no delimiter within the first 8 bytes");
    }
    CHECK(thrown);
    CHECK(in.peek().starts_with("01234567"));
    CHECK(in.memory_held() <= 16);  // grew to the limit, not past it
    CHECK(co_await in.read_line(100) == std::optional<std::string_view>("0123456789abcdef"));
    // A delimiter found beyond the limit is still past it.
    co_await b.write_all(bytes_of("0123456789\n"));
    CHECK_THROWS_AS((void)co_await in.read_line(5), coring::net::limit_error);
    // limit_error is a coring::error.
    CHECK_THROWS_AS((void)co_await in.read_line(5), coring::error);
  }());
}

TEST_CASE("end of stream before the delimiter gives what was left" * doctest::timeout(10)) {
  run_net([]() -> task<> {
    auto [a, b] = unix_stream::pair();
    co_await b.write_all(bytes_of("no newline"));
    co_await b.shutdown_write();
    buffered_reader in(a);
    CHECK(co_await in.read_line(100) == std::optional<std::string_view>("no newline"));
    CHECK(co_await in.read_line(100) == std::nullopt);
    std::string_view none = co_await in.read_exactly(5);
    CHECK(none.empty());
  }());
}

TEST_CASE("a reader waiting on an idle accepted connection holds no memory" * doctest::timeout(10)) {
  run_net([]() -> task<> {
    tcp_pair p = co_await connected_tcp();
    buffered_reader in(p.server);
    auto reader = coring::spawn([](buffered_reader<tcp_stream>& in) -> task<std::string> {
      std::string out;
      while (auto line = co_await in.read_line(100)) out += std::string(*line) + "|";
      co_return out;
    }(in));
    co_await coring::sleep_for(5ms);
    CHECK(in.memory_held() == 0);
    co_await p.client.write_all(bytes_of("one\ntw"));  // a partial line: copied into a small buffer of its own
    co_await coring::sleep_for(5ms);
    CHECK(in.buffered() == 2);
    co_await p.client.write_all(bytes_of("o\n"));
    co_await coring::sleep_for(5ms);
    CHECK(in.memory_held() == 0);  // all consumed: waiting again with nothing held
    co_await p.client.shutdown_write();
    CHECK(co_await reader == "one|two|");
  }());
}

TEST_CASE("a cancelled buffered read keeps what it had read for the next call" * doctest::timeout(10)) {
  run_net([]() -> task<> {
    tcp_pair p = co_await connected_tcp();
    buffered_reader in(p.server);
    auto reader = coring::spawn([](buffered_reader<tcp_stream>& in) -> task<> { (void)co_await in.read_exactly(10); }(in));
    co_await p.client.write_all(bytes_of("01234"));
    co_await coring::sleep_for(10ms);
    reader.cancel();
    CHECK_THROWS_AS(co_await reader, coring::cancelled);
    CHECK(in.buffered() == 5);
    co_await p.client.write_all(bytes_of("56789"));
    CHECK(co_await in.read_exactly(10) == "0123456789");
  }());
}

TEST_CASE("buffered_writer gathers small writes until flush and sends large ones straight" *
          doctest::timeout(10)) {
  run_net([]() -> task<> {
    auto [a, b] = unix_stream::pair();
    buffered_writer out(a, {.buffer_size = 16});
    co_await out.write("abc");
    co_await out.write("def");
    CHECK(out.buffered() == 6);
    std::array<std::byte, 64> buf;
    CHECK_THROWS_AS((void)co_await b.read_some(buf, {.timeout = 20ms}), coring::timeout_error);  // nothing sent yet
    co_await out.write("0123456789abcdefXYZ");  // larger than the buffer: flushes, then goes out itself
    CHECK(out.buffered() == 0);
    co_await out.write("!");
    co_await out.flush();
    co_await a.shutdown_write();
    std::string got;
    for (;;) {
      std::size_t n = co_await b.read_some(buf);
      if (n == 0) break;
      got += coring_test::text_of(std::span(buf).first(n));
    }
    CHECK(got == "abcdef0123456789abcdefXYZ!");
  }());
}

}  // TEST_SUITE
