#include <coring/net/tcp.hpp>

#include <doctest/doctest.h>

#include <coring/error.hpp>
#include <coring/event.hpp>
#include <coring/gather.hpp>
#include <coring/net/error.hpp>
#include <coring/semaphore.hpp>
#include <coring/sleep.hpp>
#include <coring/spawn.hpp>
#include <coring/task.hpp>

#include "support/cancel_once.hpp"
#include "support/fds.hpp"
#include "support/net.hpp"
#include "support/stopwatch.hpp"
#include "support/watchdog.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <random>
#include <set>
#include <unordered_set>
#include <thread>
#include <set>
#include <string>
#include <system_error>
#include <vector>

namespace {

using namespace std::chrono_literals;
using coring::task;
using coring::net::address;
using coring::net::tcp_listener;
using coring::net::tcp_stream;
using coring_test::bytes_of;
using coring_test::run_net;
using coring_test::stopwatch;

// Echoes until the peer ends its side, reading into a buffer of its own.
task<> echo_copying(tcp_stream conn) {
  std::vector<std::byte> buf(65536);
  for (;;) {
    std::size_t n = co_await conn.read_some(buf);
    if (n == 0) break;
    co_await conn.write_all(std::span(buf).first(n));
  }
  co_await conn.shutdown_write();
}

// Echoes until the peer ends its side, reading into buffers the listener lends.
task<> echo_lent(tcp_stream conn) {
  for (;;) {
    coring::net::lent_buffer b = co_await conn.read_lent();
    if (b.empty()) break;
    co_await conn.write_all(b.bytes());
  }
  co_await conn.shutdown_write();
}

// Sends `data` while reading the echo back; gives what came back.
task<std::vector<std::byte>> round_trip(tcp_stream& conn, const std::vector<std::byte>& data) {
  auto writer = coring::spawn([](tcp_stream& c, const std::vector<std::byte>& d) -> task<> {
    co_await c.write_all(d);
    co_await c.shutdown_write();
  }(conn, data));
  std::vector<std::byte> back(data.size() + 1);
  std::size_t got = 0;
  for (;;) {
    std::size_t n = co_await conn.read_some(std::span(back).subspan(got, std::min<std::size_t>(back.size() - got, 1 << 20)));
    if (n == 0) break;
    got += n;
    if (got == back.size()) back.resize(back.size() * 2);
  }
  back.resize(got);
  co_await writer;
  co_return back;
}

task<> echo_test(std::size_t size, bool lent) {
  tcp_listener listener = coring_test::loopback_listener();
  auto server = coring::spawn([](tcp_listener& l, bool lent) -> task<> {
    tcp_stream conn = co_await l.accept();
    CHECK(conn.peer().is_loopback());
    CHECK(conn.lends_buffers());
    CHECK(conn.nodelay());  // inherited from the listening socket
    if (lent) {
      co_await echo_lent(std::move(conn));
    } else {
      co_await echo_copying(std::move(conn));
    }
  }(listener, lent));
  tcp_stream client = co_await tcp_stream::connect(listener.local_address());
  CHECK(client.peer() == listener.local_address());
  CHECK(client.nodelay());
  auto data = coring_test::pattern(size, static_cast<std::uint32_t>(size));
  auto back = co_await round_trip(client, data);
  CHECK(back.size() == data.size());
  CHECK(back == data);
  co_await server;
}

// A listener whose accept queue is full and never drained: further SYNs are
// dropped, so connects to it hang (the loopback stand-in for an unreachable host).
struct black_hole {
  int listener = -1;
  std::vector<int> fillers;
  std::uint16_t port = 0;
  black_hole() {
    listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    address a = address::loopback_v4(0);
    REQUIRE(::bind(listener, a.native(), static_cast<socklen_t>(a.native_size())) == 0);
    REQUIRE(::listen(listener, 0) == 0);
    sockaddr_in sin{};
    socklen_t len = sizeof sin;
    ::getsockname(listener, reinterpret_cast<sockaddr*>(&sin), &len);
    port = ntohs(sin.sin_port);
    // Fill the accept queue (backlog 0 holds one) with non-blocking connects.
    for (int i = 0; i < 3; ++i) {
      int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
      address to = address::loopback_v4(port);
      (void)::connect(fd, to.native(), static_cast<socklen_t>(to.native_size()));
      fillers.push_back(fd);
    }
    std::this_thread::sleep_for(20ms);
  }
  ~black_hole() {
    for (int fd : fillers) ::close(fd);
    ::close(listener);
  }
};

}  // namespace

TEST_SUITE("net/tcp") {

TEST_CASE("connect, accept and echo 1 byte" * doctest::timeout(10)) { run_net(echo_test(1, false)); }

TEST_CASE("connect, accept and echo 1 MiB through lent buffers" * doctest::timeout(20)) {
  run_net(echo_test(1 << 20, true));
}

TEST_CASE("connect, accept and echo 64 MiB, copying and lent" * doctest::timeout(60)) {
  run_net(echo_test(64 << 20, false));
  run_net(echo_test(64 << 20, true));
}

TEST_CASE("connect by name resolves localhost and tries its addresses in order" * doctest::timeout(10)) {
  run_net([]() -> task<> {
    tcp_listener listener = coring_test::loopback_listener();
    auto server = coring::spawn([](tcp_listener& l) -> task<> { co_await echo_copying(co_await l.accept()); }(listener));
    tcp_stream c = co_await tcp_stream::connect("localhost", listener.local_address().port());
    CHECK(c.peer() == listener.local_address());  // 127.0.0.1 comes first
    auto back = co_await round_trip(c, coring_test::pattern(100));
    CHECK(back == coring_test::pattern(100));
    co_await server;
  }());
}

TEST_CASE("10,000 concurrent connections are opened, echoed and closed" * doctest::timeout(120)) {
  // Server and clients in two processes, each under its RLIMIT_NOFILE
  // raised to the hard limit (10,000 descriptors and some per side).
  auto r = coring_test::run_in_child(
      [] {
        constexpr int n = 10'000;
        rlimit lim{};
        ::getrlimit(RLIMIT_NOFILE, &lim);
        lim.rlim_cur = lim.rlim_max;
        if (::setrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur < n + 200) {
          std::fprintf(stderr, "RLIMIT_NOFILE's hard limit (%ju) is too low for 10,000 connections\n",
                       static_cast<std::uintmax_t>(lim.rlim_max));
          return false;
        }
        tcp_listener listener = coring_test::loopback_listener();
        const address where = listener.local_address();
        pid_t clients = ::fork();
        if (clients == 0) {
          listener.close();
          int echoed = 0;
          coring::run([](address to, int& echoed) -> task<> {
            coring::semaphore connecting(256);  // SYNs in flight: keep under the listen backlog
            coring::event all_echoed;
            std::vector<task<>> conns;
            conns.reserve(n);
            for (int i = 0; i < n; ++i) {
              conns.push_back([](int i, address to, coring::semaphore& connecting, coring::event& all_echoed,
                                 int& echoed) -> task<> {
                auto permit = co_await connecting.acquire_guard();
                tcp_stream c = co_await tcp_stream::connect(to);
                { auto done = std::move(permit); }
                std::string msg = std::to_string(i);
                co_await c.write_all(bytes_of(msg));
                std::array<std::byte, 16> buf;
                std::size_t got = 0;
                while (got < msg.size()) got += co_await c.read_some(std::span(buf).subspan(got));
                if (coring_test::text_of(std::span(buf).first(got)) == msg && ++echoed == n) all_echoed.set();
                co_await all_echoed.wait();  // every connection stays open until all have echoed
                co_await c.shutdown_write();
                (void)co_await c.read_some(buf);
              }(i, to, connecting, all_echoed, echoed));
            }
            co_await coring::gather(std::move(conns));
          }(where, echoed));
          ::_exit(echoed == n ? 0 : 1);
        }
        int open_now = 0, peak = 0;
        coring::run([](tcp_listener l, int& open_now, int& peak) -> task<> {  // it dies with the loop's task
          std::vector<coring::join_handle<void>> conns;
          conns.reserve(n);
          for (int i = 0; i < n; ++i) {
            tcp_stream s = co_await l.accept({.timeout = 30s});
            peak = std::max(peak, ++open_now);
            conns.push_back(coring::spawn([](tcp_stream s, int& open_now) -> task<> {
              co_await echo_lent(std::move(s));
              --open_now;
            }(std::move(s), open_now)));
          }
          for (auto& c : conns) co_await c;
        }(std::move(listener), open_now, peak));
        int status = 0;
        ::waitpid(clients, &status, 0);
        const bool clients_ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        if (!clients_ok || peak != n) std::fprintf(stderr, "clients ok %d, peak %d\n", clients_ok, peak);
        return clients_ok && peak == n;
      },
      110s);
  CHECK(r == coring_test::child_result::exited_ok);
}

TEST_CASE("connection refused is a connect_error naming host:port and the errno text" * doctest::timeout(10)) {
  run_net([]() -> task<> {
    std::uint16_t port;
    {
      tcp_listener l = coring_test::loopback_listener();
      port = l.local_address().port();
    }
    co_await coring::sleep_for(5ms);  // let the ring release the closed listener's port
    bool thrown = false;
    try {
      (void)co_await tcp_stream::connect("127.0.0.1", port);
    } catch (const coring::net::connect_error& e) {
      thrown = true;
      std::string what = e.what();
      CHECK(what.find("connect to 127.0.0.1:" + std::to_string(port)) != std::string::npos);
      CHECK(what.find("Connection refused") != std::string::npos);
      CHECK(e.code() == std::error_code(ECONNREFUSED, std::system_category()));
    }
    CHECK(thrown);
    // By name: every address of localhost is tried and named.
    thrown = false;
    try {
      (void)co_await tcp_stream::connect("localhost", port);
    } catch (const coring::net::connect_error& e) {
      thrown = true;
      std::string what = e.what();
      CHECK(what.find("connect to localhost:" + std::to_string(port)) != std::string::npos);
      CHECK(what.find("tried 127.0.0.1:" + std::to_string(port) + ", [::1]:" + std::to_string(port)) !=
            std::string::npos);
    }
    CHECK(thrown);
  }());
}

TEST_CASE("a connect to an unreachable port ends with timeout_error after its timeout" * doctest::timeout(10)) {
  black_hole hole;
  stopwatch sw;
  run_net([](std::uint16_t port) -> task<> {
    bool thrown = false;
    try {
      (void)co_await tcp_stream::connect("127.0.0.1", port, {.timeout = 100ms});
    } catch (const coring::timeout_error& e) {
      thrown = true;
      CHECK(std::string(e.what()) == "connect to 127.0.0.1:" + std::to_string(port) + ": timed out after 100 ms");
    }
    CHECK(thrown);
  }(hole.port));
  CHECK(sw.elapsed() >= 100ms);
  CHECK(sw.elapsed() < 2s);
}

TEST_CASE("cancelling a connect in flight ends it at once with cancelled, exactly once" * doctest::timeout(10)) {
  black_hole hole;
  const int before = coring_test::settled_fd_count();
  stopwatch sw;
  coring_test::expect_cancelled_once([port = hole.port]() -> task<> {
    (void)co_await tcp_stream::connect(address::loopback_v4(port));
  });
  CHECK(sw.elapsed() < 1s);
  CHECK(coring_test::fd_count_returns_to(before));
}

TEST_CASE("cancelling accept before it starts and while it waits loses no connection" * doctest::timeout(10)) {
  run_net([]() -> task<> {
    tcp_listener listener = coring_test::loopback_listener();
    // Before it starts: the task never runs its body.
    auto early = coring::spawn([](tcp_listener& l) -> task<> { (void)co_await l.accept(); }(listener));
    early.cancel();
    CHECK_THROWS_AS(co_await early, coring::cancelled);
    // While it waits in the listener's queue of waiters.
    auto waiting = coring::spawn([](tcp_listener& l) -> task<> { (void)co_await l.accept(); }(listener));
    co_await coring::sleep_for(5ms);
    CHECK_FALSE(waiting.done());
    waiting.cancel();
    CHECK_THROWS_AS(co_await waiting, coring::cancelled);
    // The connection made now goes to the next accept, not to a cancelled waiter.
    tcp_stream c = co_await tcp_stream::connect(listener.local_address());
    tcp_stream s = co_await listener.accept({.timeout = 2s});
    CHECK(s.is_open());
    co_await c.write_all(bytes_of("hi"));
    std::array<std::byte, 2> buf;
    CHECK(co_await s.read_some(buf) == 2);
  }());
}

TEST_CASE("accept is cancelled exactly once, and the clean-up awaits after it run" * doctest::timeout(10)) {
  const int before = coring_test::settled_fd_count();
  coring_test::expect_cancelled_once([]() -> task<> {
    tcp_listener l = coring_test::loopback_listener();
    (void)co_await l.accept();
  });
  CHECK(coring_test::fd_count_returns_to(before));
}

TEST_CASE("accept cancelled just as connections arrive: every connection is accepted exactly once" *
          doctest::timeout(30)) {
  run_net([]() -> task<> {
    tcp_listener listener = coring_test::loopback_listener();
    std::mt19937 rng(7);
    int accepted = 0, cancelled = 0;
    std::vector<tcp_stream> clients, servers;
    for (int round = 0; round < 60; ++round) {
      auto waiter = coring::spawn([](tcp_listener& l) -> task<tcp_stream> { co_return co_await l.accept(); }(listener));
      clients.push_back(co_await tcp_stream::connect(listener.local_address()));
      for (unsigned i = rng() % 4; i > 0; --i) co_await coring::yield();
      waiter.cancel();
      bool was_cancelled = false;
      try {
        servers.push_back(co_await waiter);
        ++accepted;
      } catch (const coring::cancelled&) {
        was_cancelled = true;
        ++cancelled;
      }
      if (was_cancelled) servers.push_back(co_await listener.accept({.timeout = 2s}));  // the connection is still there
    }
    CHECK(accepted + cancelled == 60);
    CHECK(listener.stats().queued == 0);
    CHECK(listener.stats().accepted == 60);
    // Each server end belongs to a distinct client: a byte sent on each arrives on its own pair.
    for (std::size_t i = 0; i < clients.size(); ++i) {
      std::string tag = std::to_string(i % 10);
      co_await clients[i].write_all(bytes_of(tag));
    }
    std::unordered_set<address> peers;
    for (auto& s : servers) peers.insert(s.peer());
    CHECK(peers.size() == 60);
    MESSAGE("accepted " << accepted << ", cancelled then accepted again " << cancelled);
  }());
}

TEST_CASE("accept with a timeout ends with timeout_error naming the listener" * doctest::timeout(10)) {
  run_net([]() -> task<> {
    tcp_listener listener = coring_test::loopback_listener();
    stopwatch sw;
    bool thrown = false;
    try {
      (void)co_await listener.accept({.timeout = 30ms});
    } catch (const coring::timeout_error& e) {
      thrown = true;
      CHECK(std::string(e.what()) == "accept on " + listener.local_address().to_string() + ": timed out after 30 ms");
    }
    CHECK(thrown);
    CHECK(sw.elapsed() >= 30ms);
  }());
}

TEST_CASE("closing a listener ends its waiting accepts and closes connections nobody took" * doctest::timeout(10)) {
  run_net([]() -> task<> {
    tcp_listener listener = coring_test::loopback_listener();
    const std::string where = listener.local_address().to_string();
    // Two connections accepted by the kernel and queued, nobody takes them.
    tcp_stream a = co_await tcp_stream::connect(listener.local_address());
    tcp_stream s = co_await listener.accept();  // arms the multishot
    tcp_stream b = co_await tcp_stream::connect(listener.local_address());
    co_await coring::sleep_for(10ms);
    CHECK(listener.stats().queued == 1);
    auto waiter = coring::spawn([](tcp_listener& l) -> task<> {
      tcp_stream x = co_await l.accept();
      tcp_stream y = co_await l.accept();
    }(listener));
    co_await coring::sleep_for(5ms);
    listener.close();
    std::string message;
    try {
      co_await waiter;
    } catch (const coring::io_error& e) {
      message = e.what();
    }
    CHECK(message == "accept on " + where + ": the listener was closed: Operation canceled");
    // b's server end was closed by the listener: b reads end of stream.
    std::array<std::byte, 4> buf;
    CHECK(co_await b.read_some(buf, {.timeout = 2s}) == 0);
  }());
}

TEST_CASE("cancelling a read with half the data arrived loses no byte" * doctest::timeout(10)) {
  run_net([]() -> task<> {
    tcp_listener listener = coring_test::loopback_listener();
    tcp_stream client = co_await tcp_stream::connect(listener.local_address());
    tcp_stream server = co_await listener.accept();
    // The reader wants 10 bytes and holds on to what it has got.
    std::string received;
    auto reader = coring::spawn([](tcp_stream& s, std::string& out) -> task<> {
      std::array<std::byte, 10> buf;
      while (out.size() < 10) {
        std::size_t n = co_await s.read_some(std::span(buf).first(10 - out.size()));
        out += coring_test::text_of(std::span(buf).first(n));
      }
    }(server, received));
    co_await client.write_all(bytes_of("01234"));
    co_await coring::sleep_for(10ms);
    CHECK(received == "01234");
    reader.cancel();  // the read for the other half is in the ring now
    CHECK_THROWS_AS(co_await reader, coring::cancelled);
    co_await client.write_all(bytes_of("56789"));
    std::array<std::byte, 10> buf;
    std::size_t n = co_await server.read_some(buf);
    received += coring_test::text_of(std::span(buf).first(n));
    CHECK(received == "0123456789");
  }());
}

TEST_CASE("reads cancelled at random moments while bytes stream in lose and duplicate nothing" *
          doctest::timeout(30)) {
  run_net([]() -> task<> {
    tcp_listener listener = coring_test::loopback_listener();
    tcp_stream client = co_await tcp_stream::connect(listener.local_address());
    tcp_stream server = co_await listener.accept();
    constexpr std::size_t total = 200'000;
    auto data = coring_test::pattern(total, 3);
    auto writer = coring::spawn([](tcp_stream& c, const std::vector<std::byte>& d) -> task<> {
      for (std::size_t off = 0; off < d.size(); off += 1000) {
        co_await c.write_all(std::span(d).subspan(off, 1000));
        co_await coring::yield();
      }
    }(client, data));
    std::vector<std::byte> got;
    std::mt19937 rng(11);
    int cancels = 0;
    while (got.size() < total) {
      auto reader = coring::spawn([](tcp_stream& s, std::vector<std::byte>& out) -> task<> {
        std::array<std::byte, 777> buf;
        for (;;) {
          std::size_t n = co_await s.read_some(buf);
          out.insert(out.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
          if (n == 0) co_return;
        }
      }(server, got));
      for (unsigned i = rng() % 5; i > 0; --i) co_await coring::yield();
      reader.cancel();
      try {
        co_await reader;
      } catch (const coring::cancelled&) {
        ++cancels;
      }
    }
    co_await writer;
    CHECK(got.size() == total);
    CHECK(got == data);
    CHECK(cancels > 0);
  }());
}

TEST_CASE("a read with a timeout ends with timeout_error naming the peer" * doctest::timeout(10)) {
  run_net([]() -> task<> {
    tcp_listener listener = coring_test::loopback_listener();
    tcp_stream client = co_await tcp_stream::connect(listener.local_address());
    tcp_stream server = co_await listener.accept();
    std::array<std::byte, 8> buf;
    stopwatch sw;
    bool thrown = false;
    try {
      (void)co_await server.read_some(buf, {.timeout = 40ms});
    } catch (const coring::timeout_error& e) {
      thrown = true;
      CHECK(std::string(e.what()) == "read from " + server.peer().to_string() + ": timed out after 40 ms");
    }
    CHECK(thrown);
    CHECK(sw.elapsed() >= 40ms);
    // The stream is still good: data sent now arrives.
    co_await client.write_all(bytes_of("late"));
    CHECK(co_await server.read_some(buf, {.timeout = 2s}) == 4);
  }());
}

TEST_CASE("a peer reset mid-read is an io_error ECONNRESET naming the peer" * doctest::timeout(10)) {
  run_net([]() -> task<> {
    tcp_listener listener = coring_test::loopback_listener();
    tcp_stream client = co_await tcp_stream::connect(listener.local_address());
    tcp_stream server = co_await listener.accept();
    auto reader = coring::spawn([](tcp_stream& s) -> task<std::string> {
      std::array<std::byte, 64> buf;
      try {
        for (;;) {
          if (co_await s.read_some(buf) == 0) co_return "end of stream";
        }
      } catch (const coring::io_error& e) {
        CHECK(e.code() == std::error_code(ECONNRESET, std::system_category()));
        co_return e.what();
      }
    }(server));
    co_await client.write_all(bytes_of("partial"));
    co_await coring::sleep_for(5ms);
    linger l{1, 0};  // close with RST
    REQUIRE(::setsockopt(client.native_handle(), SOL_SOCKET, SO_LINGER, &l, sizeof l) == 0);
    co_await client.close();
    std::string what = co_await reader;
    CHECK(what == "read from " + server.peer().to_string() + ": Connection reset by peer");
  }());
}

TEST_CASE("writing to a closed peer is EPIPE or ECONNRESET, never SIGPIPE" * doctest::timeout(20)) {
  auto r = coring_test::run_in_child(
      [] {
        ::signal(SIGPIPE, SIG_DFL);  // a signal would kill this child
        std::string what;
        coring::run([](std::string& what) -> task<> {
          tcp_listener listener = coring_test::loopback_listener();
          tcp_stream client = co_await tcp_stream::connect(listener.local_address());
          { tcp_stream server = co_await listener.accept(); }
          co_await coring::sleep_for(5ms);
          std::vector<std::byte> chunk(65536);
          try {
            for (int i = 0; i < 1000; ++i) co_await client.write_all(chunk);
          } catch (const coring::io_error& e) {
            what = e.what();
          }
        }(what));
        return what.find("write to 127.0.0.1:") == 0 &&
               (what.find("Broken pipe") != std::string::npos || what.find("reset") != std::string::npos);
      },
      15s);
  CHECK(r == coring_test::child_result::exited_ok);
}

TEST_CASE("writev_all sends every part in order, more parts than one sendmsg takes" * doctest::timeout(10)) {
  run_net([]() -> task<> {
    tcp_listener listener = coring_test::loopback_listener();
    tcp_stream client = co_await tcp_stream::connect(listener.local_address());
    tcp_stream server = co_await listener.accept();
    std::vector<std::string> texts;
    std::string expected;
    for (int i = 0; i < 40; ++i) {
      texts.push_back(i % 7 == 0 ? std::string() : std::string(static_cast<std::size_t>(i * 1000), char('a' + i % 26)));
      expected += texts.back();
    }
    std::vector<std::span<const std::byte>> parts;
    for (auto& t : texts) parts.push_back(bytes_of(t));
    auto writer = coring::spawn([](tcp_stream& c, std::vector<std::span<const std::byte>>& p) -> task<std::size_t> {
      std::size_t n = co_await c.writev_all(p);
      co_await c.shutdown_write();
      co_return n;
    }(client, parts));
    std::string got;
    std::vector<std::byte> buf(65536);
    for (;;) {
      std::size_t n = co_await server.read_some(buf);
      if (n == 0) break;
      got += coring_test::text_of(std::span(buf).first(n));
    }
    CHECK(co_await writer == expected.size());
    CHECK(got == expected);
  }());
}

TEST_CASE("an idle accepted connection pins no buffer and the pool grows with concurrent readers" *
          doctest::timeout(10)) {
  run_net([]() -> task<> {
    tcp_listener listener = coring_test::loopback_listener({.buffer_size = 4096, .max_buffers = 256});
    constexpr int n = 100;
    std::vector<tcp_stream> clients;
    std::vector<tcp_stream> servers;
    for (int i = 0; i < n; ++i) {
      clients.push_back(co_await tcp_stream::connect(listener.local_address()));
      servers.push_back(co_await listener.accept());
    }
    CHECK(listener.stats().buffers == 32);  // the first chunk, untouched by idle readers
    // n readers hold their lent buffers at once: the pool must grow past its first chunk.
    std::vector<coring::net::lent_buffer> held(n);
    std::vector<task<>> readers;
    for (int i = 0; i < n; ++i) {
      readers.push_back([](tcp_stream& s, coring::net::lent_buffer& out) -> task<> {
        out = co_await s.read_lent();
      }(servers[static_cast<std::size_t>(i)], held[static_cast<std::size_t>(i)]));
    }
    auto all = coring::spawn(coring::gather(std::move(readers)));
    for (int i = 0; i < n; ++i) co_await clients[static_cast<std::size_t>(i)].write_all(bytes_of(std::to_string(i)));
    co_await all;
    for (int i = 0; i < n; ++i) CHECK(held[static_cast<std::size_t>(i)].text() == std::to_string(i));
    CHECK(listener.stats().buffers >= 96);
    CHECK(listener.stats().buffers <= 128);
    held.clear();  // back to the ring
  }());
}

TEST_CASE("a lent buffer given back is lent again soon: one reader cycles through the shallow ring, not the whole pool" *
          doctest::timeout(10)) {
  run_net([]() -> task<> {
    tcp_listener listener = coring_test::loopback_listener({.buffer_size = 1024, .max_buffers = 256});
    tcp_stream client = co_await tcp_stream::connect(listener.local_address());
    tcp_stream server = co_await listener.accept();
    // Make the pool grow: 40 buffers held at once.
    std::vector<coring::net::lent_buffer> held;
    std::vector<tcp_stream> clients, servers;
    for (int i = 0; i < 40; ++i) {
      clients.push_back(co_await tcp_stream::connect(listener.local_address()));
      servers.push_back(co_await listener.accept());
      co_await clients.back().write_all(bytes_of("h"));
      held.push_back(co_await servers.back().read_lent());
    }
    held.clear();
    const std::size_t made = listener.stats().buffers;
    CHECK(made >= 64);
    // One reader, one message at a time: a ring handing out every free
    // buffer in turn would cycle through all of them; the shallow ring
    // refilled from the most recently given back uses its depth (8, and a
    // few more that the reads which found it empty above added) and the one
    // just returned.
    std::set<const std::byte*> used;
    for (int i = 0; i < 300; ++i) {
      co_await client.write_all(bytes_of("m" + std::to_string(i)));
      coring::net::lent_buffer b = co_await server.read_lent();
      CHECK(b.text() == "m" + std::to_string(i));
      used.insert(b.data());
    }
    CHECK(used.size() <= 16);
    CHECK(listener.stats().buffers == made);
  }());
}

TEST_CASE("a lent read past the pool's limit uses a buffer of its own" * doctest::timeout(10)) {
  run_net([]() -> task<> {
    tcp_listener listener = coring_test::loopback_listener({.buffer_size = 1024, .max_buffers = 32});
    std::vector<tcp_stream> clients, servers;
    std::vector<coring::net::lent_buffer> held;
    for (int i = 0; i < 40; ++i) {
      clients.push_back(co_await tcp_stream::connect(listener.local_address()));
      servers.push_back(co_await listener.accept());
      co_await clients.back().write_all(bytes_of("x" + std::to_string(i)));
      held.push_back(co_await servers.back().read_lent());
      CHECK(held.back().text() == "x" + std::to_string(i));
    }
    CHECK(listener.stats().buffers == 32);
  }());
}

TEST_CASE("EMFILE in accept: the listener backs off, keeps serving, and accepts again when descriptors free up" *
          doctest::timeout(30)) {
  auto r = coring_test::run_in_child(
      [] {
        bool ok = false;
        coring::run([](bool& ok) -> task<> {
          tcp_listener listener = coring_test::loopback_listener();
          // 12 clients whose connections the kernel completes in the backlog.
          std::vector<tcp_stream> clients;
          for (int i = 0; i < 12; ++i) clients.push_back(co_await tcp_stream::connect(listener.local_address()));
          // Room for 4 more descriptors only: lower the limit, fill every
          // free slot below it, then free 4.
          int highest = 0;
          for (int fd = 0; fd < 4096; ++fd)
            if (::fcntl(fd, F_GETFD) != -1) highest = fd;
          rlimit lim{};
          ::getrlimit(RLIMIT_NOFILE, &lim);
          lim.rlim_cur = static_cast<rlim_t>(highest + 1 + 8);
          if (::setrlimit(RLIMIT_NOFILE, &lim) != 0) co_return;
          std::vector<int> fillers;
          for (int fd; (fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0;) fillers.push_back(fd);
          for (int i = 0; i < 4; ++i) {
            ::close(fillers.back());
            fillers.pop_back();
          }
          std::vector<tcp_stream> held;
          for (int i = 0; i < 4; ++i) held.push_back(co_await listener.accept({.timeout = 2s}));
          // The fifth accept meets EMFILE: the listener backs off instead of failing.
          auto fifth = coring::spawn([](tcp_listener& l) -> task<tcp_stream> { co_return co_await l.accept(); }(listener));
          co_await coring::sleep_for(50ms);
          const bool waited = !fifth.done();
          const bool backed_off = listener.stats().backoffs > 0;
          // Existing connections are still served meanwhile.
          co_await clients[0].write_all(bytes_of("ping"));
          std::array<std::byte, 4> buf;
          const bool served = co_await held[0].read_some(buf, {.timeout = 2s}) == 4;
          // Free descriptors: the listener accepts again, all the remaining clients.
          held.clear();
          int rest = 0;
          if ((co_await fifth).is_open()) ++rest;
          for (int i = 0; i < 7; ++i) {
            tcp_stream s = co_await listener.accept({.timeout = 5s});  // closed at once: room for the next
            if (s.is_open()) ++rest;
          }
          ok = waited && backed_off && served && rest == 8;
          if (!ok) std::fprintf(stderr, "waited %d backed_off %d served %d rest %d\n", waited, backed_off, served, rest);
        }(ok));
        return ok;
      },
      25s);
  CHECK(r == coring_test::child_result::exited_ok);
}

TEST_CASE("TCP listeners bind with reuse_port, and bind errors name the address" * doctest::timeout(10)) {
  run_net([]() -> task<> {
    tcp_listener a = coring_test::loopback_listener({.reuse_port = true});
    tcp_listener b = tcp_listener::bind(a.local_address(), {.reuse_port = true});
    CHECK(b.local_address() == a.local_address());
    bool thrown = false;
    try {
      tcp_listener c = tcp_listener::bind(a.local_address());
    } catch (const coring::io_error& e) {
      thrown = true;
      CHECK(std::string(e.what()) == "listen on " + a.local_address().to_string() + ": bind: Address already in use");
    }
    CHECK(thrown);
    co_return;
  }());
}

}  // TEST_SUITE
