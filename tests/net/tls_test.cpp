#include <coring/net/tls.hpp>

#include <doctest/doctest.h>

#include <coring/error.hpp>
#include <coring/event.hpp>
#include <coring/gather.hpp>
#include <coring/net/buffered_reader.hpp>
#include <coring/net/error.hpp>
#include <coring/net/tcp.hpp>
#include <coring/sleep.hpp>
#include <coring/spawn.hpp>
#include <coring/task.hpp>

#include "support/cancel_once.hpp"
#include "support/fds.hpp"
#include "support/net.hpp"
#include "support/sanitizers.hpp"
#include "support/tls.hpp"

#include <fcntl.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

extern char** environ;

namespace {

using namespace std::chrono_literals;
using coring::task;
using coring::net::client_certificate;
using coring::net::tcp_listener;
using coring::net::tcp_stream;
using coring::net::tls_context;
using coring::net::tls_error;
using coring::net::tls_options;
using coring::net::tls_stream;
using coring::net::tls_version;
using coring_test::bytes_of;
using coring_test::pki;
using coring_test::run_net;
using coring_test::text_of;

tls_context server_context(const coring_test::cert_files& id, tls_options o = {}) {
  o.cert_file = id.cert;
  o.key_file = id.key;
  return tls_context::server(o);
}

tls_context trusting_client(tls_options o = {}) {
  o.ca_file = pki().ca;
  return tls_context::client(o);
}

// Reads exactly `n` bytes (fewer only at end of stream).
task<std::vector<std::byte>> read_n(tls_stream& s, std::size_t n) {
  std::vector<std::byte> out(n);
  std::size_t got = 0;
  while (got < n) {
    std::size_t k = co_await s.read_some(std::span(out).subspan(got, std::min<std::size_t>(n - got, 1 << 20)));
    if (k == 0) break;
    got += k;
  }
  out.resize(got);
  co_return out;
}

// Echoes until end of stream, then closes with close_notify; says whether
// the peer's end was truncated.
task<bool> echo(tls_stream s) {
  std::vector<std::byte> buf(65536);
  for (;;) {
    std::size_t n = co_await s.read_some(buf);
    if (n == 0) break;
    co_await s.write_all(std::span(buf).first(n));
  }
  const bool truncated = s.truncated();
  co_await s.close();
  co_return truncated;
}

// A server on a loopback port that runs `handler` over each TLS connection it accepts.
struct echo_server {
  tcp_listener listener = coring_test::loopback_listener();
  [[nodiscard]] std::uint16_t port() const { return listener.local_address().port(); }
};

task<bool> serve_one_echo(tcp_listener& l, const tls_context& ctx) {
  tls_stream s = co_await tls_stream::accept(ctx, co_await l.accept(), {.timeout = 10s});
  co_return co_await echo(std::move(s));
}

task<> echo_test(std::size_t size) {
  echo_server srv;
  tls_context sctx = server_context(pki().server);
  auto server = coring::spawn(serve_one_echo(srv.listener, sctx));
  tls_context cctx = trusting_client();
  tls_stream c = co_await tls_stream::connect(cctx, "localhost", srv.port(), {.timeout = 10s});
  CHECK(c.version() == "TLSv1.3");
  const auto data = coring_test::pattern(size, static_cast<std::uint32_t>(size));
  auto writer = coring::spawn([](tls_stream& c, const std::vector<std::byte>& d) -> task<> {
    co_await c.write_all(d);
  }(c, data));
  auto back = co_await read_n(c, data.size());
  co_await writer;
  CHECK(back.size() == data.size());
  CHECK(back == data);
  co_await c.close();
  CHECK_FALSE(co_await server);  // the server saw our close_notify
}

// Connects to a server using `id`, expecting the handshake to fail; gives
// the client's and the server's errors.
struct refusal {
  std::string client;
  long client_verify = 0;
  std::string server;
};

task<refusal> refused(const coring_test::cert_files& id, std::string name, tls_context cctx) {
  refusal r;
  echo_server srv;
  tls_context sctx = server_context(id);
  auto server = coring::spawn([](tcp_listener& l, const tls_context& ctx, refusal& r) -> task<> {
    try {
      (void)co_await tls_stream::accept(ctx, co_await l.accept(), {.timeout = 10s});
    } catch (const tls_error& e) {
      r.server = e.what();
    }
  }(srv.listener, sctx, r));
  try {
    (void)co_await tls_stream::connect(cctx, "127.0.0.1", srv.port(), {.timeout = 10s, .server_name = name});
  } catch (const tls_error& e) {
    r.client = e.what();
    r.client_verify = e.verify_result();
  }
  co_await server;
  co_return r;
}

// A program started with its stdin and stdout (stderr too) on pipes: the
// TLS peers that nobody here wrote (openssl s_server / s_client, Python's ssl).
struct peer_process {
  pid_t pid = -1;
  int in = -1;   // its stdin
  int out = -1;  // its stdout and stderr

  explicit peer_process(std::vector<std::string> argv) {
    int to[2], from[2];
    REQUIRE(::pipe2(to, O_CLOEXEC) == 0);
    REQUIRE(::pipe2(from, O_CLOEXEC) == 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, to[0], 0);
    posix_spawn_file_actions_adddup2(&fa, from[1], 1);
    posix_spawn_file_actions_adddup2(&fa, from[1], 2);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    const int r = ::posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(to[0]);
    ::close(from[1]);
    in = to[1];
    out = from[0];
    REQUIRE_MESSAGE(r == 0, "cannot start ", argv[0]);
  }
  peer_process(const peer_process&) = delete;
  peer_process& operator=(const peer_process&) = delete;
  ~peer_process() {
    close_input();
    if (out >= 0) ::close(out);
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
  void write(std::string_view text) const { REQUIRE(::write(in, text.data(), text.size()) == static_cast<ssize_t>(text.size())); }
  void close_input() {
    if (in >= 0) ::close(in);
    in = -1;
  }
  // Output until a line containing `marker` has been read or the output
  // ends; gives up after 60 s without output (a loaded machine can take
  // seconds to start Python).
  std::string read_until(std::string_view marker) const {
    std::string text;
    for (;;) {
      const auto nl = text.find(marker);
      if (nl != std::string::npos && text.find('\n', nl) != std::string::npos) return text;
      pollfd p{out, POLLIN, 0};
      if (::poll(&p, 1, 60'000) <= 0) return text;
      char buf[4096];
      const ssize_t n = ::read(out, buf, sizeof buf);
      if (n <= 0) return text;
      text.append(buf, static_cast<std::size_t>(n));
    }
  }
  // All output until it ends, then waits for the exit; true if it exited 0.
  bool finish(std::string& text) {
    text += read_until("\x01never");
    int status = 0;
    const bool ok = ::waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    pid = -1;
    return ok;
  }
};

// The port in "ACCEPT 127.0.0.1:43127" (openssl s_server's first line), or
// in a line of digits (our Python server's).
std::uint16_t port_in(const std::string& text, std::string_view after) {
  const auto at = text.find(after);
  if (at == std::string::npos) return 0;
  return static_cast<std::uint16_t>(std::stoi(text.substr(at + after.size())));
}

}  // namespace

TEST_SUITE("net/tls") {

TEST_CASE("handshake and echo of 1 byte, client close_notify seen by the server" * doctest::timeout(20)) {
  run_net(echo_test(1));
}

TEST_CASE("handshake and echo of 1 MiB" * doctest::timeout(30)) { run_net(echo_test(1 << 20)); }

TEST_CASE("handshake and echo of 64 MiB (16 MiB under ASan)" * doctest::timeout(120)) {
  run_net(echo_test(coring_test::under_asan ? 16u << 20 : 64u << 20));
}

TEST_CASE("a tls_stream is a byte_stream: buffered_reader reads lines from it" * doctest::timeout(20)) {
  run_net([]() -> task<> {
    echo_server srv;
    tls_context sctx = server_context(pki().server);
    auto server = coring::spawn(serve_one_echo(srv.listener, sctx));
    tls_context cctx = trusting_client();
    tls_stream c = co_await tls_stream::connect(cctx, "localhost", srv.port());
    co_await c.write_all(bytes_of("first line\r\nsecond\n"));
    coring::net::buffered_reader in(c);
    CHECK(co_await in.read_line(100) == std::optional<std::string_view>("first line"));
    CHECK(co_await in.read_line(100) == std::optional<std::string_view>("second"));
    co_await c.close();
    CHECK_FALSE(co_await server);
  }());
}

TEST_CASE("ALPN picks the server's first choice the client offers, and sessions resume" * doctest::timeout(20)) {
  for (tls_version v : {tls_version::tls1_2, tls_version::tls1_3}) {
    CAPTURE(static_cast<int>(v));
    run_net([](tls_version v) -> task<> {
      echo_server srv;
      tls_context sctx = server_context(pki().server, {.alpn = {"h2", "http/1.1"}});
      tls_context cctx = trusting_client({.alpn = {"http/1.1", "h2"}, .max_version = v});
      for (int i = 0; i < 2; ++i) {
        auto server = coring::spawn(serve_one_echo(srv.listener, sctx));
        tls_stream c = co_await tls_stream::connect(cctx, "localhost", srv.port());
        CHECK(c.alpn() == "h2");
        CHECK(c.version() == (v == tls_version::tls1_3 ? "TLSv1.3" : "TLSv1.2"));
        CHECK(c.session_reused() == (i == 1));
        CHECK_FALSE(c.cipher().empty());
        co_await c.write_all(bytes_of("x"));
        CHECK(text_of(co_await read_n(c, 1)) == "x");  // TLS 1.3: the session ticket arrives with it
        co_await c.close();
        CHECK_FALSE(co_await server);
      }
      CHECK(cctx.cached_sessions() == 1);
    }(v));
  }
}

TEST_CASE("no common ALPN protocol: the handshake goes on without one" * doctest::timeout(20)) {
  run_net([]() -> task<> {
    echo_server srv;
    tls_context sctx = server_context(pki().server, {.alpn = {"h2"}});
    auto server = coring::spawn(serve_one_echo(srv.listener, sctx));
    tls_context cctx = trusting_client({.alpn = {"http/1.1"}});
    tls_stream c = co_await tls_stream::connect(cctx, "localhost", srv.port());
    CHECK(c.alpn().empty());
    co_await c.close();
    CHECK_FALSE(co_await server);
  }());
}

TEST_CASE("connecting by IP address checks the certificate's IP entry" * doctest::timeout(20)) {
  run_net([]() -> task<> {
    echo_server srv;
    tls_context sctx = server_context(pki().server);
    auto server = coring::spawn(serve_one_echo(srv.listener, sctx));
    tls_context cctx = trusting_client();
    tls_stream c = co_await tls_stream::connect(cctx, "127.0.0.1", srv.port());
    CHECK(c.is_open());
    co_await c.close();
    CHECK_FALSE(c.is_open());
    CHECK_FALSE(co_await server);
  }());
}

TEST_CASE("a wrong host name is refused with 'hostname mismatch'" * doctest::timeout(20)) {
  refusal r = run_net(refused(pki().server, "wrong.example", trusting_client()));
  CHECK(r.client.find("TLS handshake with wrong.example:") == 0);
  CHECK(r.client.find("certificate verify failed: hostname mismatch") != std::string::npos);
  CHECK(r.client_verify != 0);
  CHECK(r.server.find("TLS handshake with 127.0.0.1:") == 0);
  CHECK(r.server.find("alert") != std::string::npos);
}

TEST_CASE("an expired certificate is refused with 'certificate has expired'" * doctest::timeout(20)) {
  refusal r = run_net(refused(pki().expired, "localhost", trusting_client()));
  CHECK(r.client.find("certificate verify failed: certificate has expired") != std::string::npos);
  CHECK(r.server.find("alert certificate expired") != std::string::npos);
}

TEST_CASE("a certificate from an unknown CA is refused with 'unable to get local issuer certificate'" *
          doctest::timeout(20)) {
  refusal r = run_net(refused(pki().untrusted, "localhost", trusting_client()));
  CHECK(r.client.find("certificate verify failed: unable to get local issuer certificate") != std::string::npos);
  CHECK(r.server.find("alert unknown ca") != std::string::npos);
}

TEST_CASE("a self-signed certificate is refused with 'self-signed certificate'" * doctest::timeout(20)) {
  refusal r = run_net(refused(pki().self_signed, "localhost", trusting_client()));
  CHECK(r.client.find("certificate verify failed: self-signed certificate") != std::string::npos);
}

TEST_CASE("the system store does not trust the test CA, verify off accepts anything" * doctest::timeout(20)) {
  refusal r = run_net(refused(pki().server, "localhost", tls_context::client()));
  CHECK(r.client.find("unable to get local issuer certificate") != std::string::npos);
  run_net([]() -> task<> {
    echo_server srv;
    tls_context sctx = server_context(pki().self_signed);
    auto server = coring::spawn(serve_one_echo(srv.listener, sctx));
    tls_context cctx = tls_context::client({.verify = false});
    tls_stream c = co_await tls_stream::connect(cctx, "localhost", srv.port());
    CHECK(c.peer_subject() == "CN=localhost");
    co_await c.close();
    CHECK_FALSE(co_await server);
  }());
}

TEST_CASE("load errors name the file and OpenSSL's reason" * doctest::timeout(10)) {
  const auto& p = pki();
  auto message = [](auto make) -> std::string {
    try {
      make();
    } catch (const tls_error& e) {
      return e.what();
    }
    return "no error";
  };
  CHECK(message([&] { (void)tls_context::client({.ca_file = p.missing}); }) ==
        "load CA file " + p.missing + ": No such file or directory");
  CHECK(message([&] { (void)tls_context::server({.cert_file = p.missing, .key_file = p.server.key}); }) ==
        "load certificate " + p.missing + ": No such file or directory");
  CHECK(message([&] { (void)tls_context::server({.cert_file = p.not_pem, .key_file = p.server.key}); }) ==
        "load certificate " + p.not_pem + ": no start line");
  CHECK(message([&] { (void)tls_context::server({.cert_file = p.server.cert, .key_file = p.not_pem}); })
            .starts_with("load key " + p.not_pem + ": "));
  CHECK(message([&] { (void)tls_context::server({.cert_file = p.server.cert, .key_file = p.client.key}); })
            .starts_with("key " + p.client.key + " does not match certificate " + p.server.cert));
  CHECK(message([&] { (void)tls_context::server({}); }).find("needs a certificate") != std::string::npos);
  CHECK(message([&] { (void)tls_context::client({.alpn = {""}}); }).find("ALPN") != std::string::npos);
}

TEST_CASE("client certificates: required and given, required and missing, requested and missing" *
          doctest::timeout(20)) {
  const auto& p = pki();
  // Required and given: the server sees who the client is.
  run_net([](const coring_test::test_pki& p) -> task<> {
    echo_server srv;
    tls_context sctx = server_context(p.server, {.ca_file = p.ca, .client_certificates = client_certificate::require});
    std::string subject;
    auto server = coring::spawn([](tcp_listener& l, const tls_context& ctx, std::string& subject) -> task<bool> {
      tls_stream s = co_await tls_stream::accept(ctx, co_await l.accept());
      subject = s.peer_subject();
      co_return co_await echo(std::move(s));
    }(srv.listener, sctx, subject));
    tls_context cctx = trusting_client({.cert_file = p.client.cert, .key_file = p.client.key});
    tls_stream c = co_await tls_stream::connect(cctx, "localhost", srv.port());
    co_await c.write_all(bytes_of("hi"));
    CHECK(text_of(co_await read_n(c, 2)) == "hi");
    co_await c.close();
    CHECK_FALSE(co_await server);
    CHECK(subject == "CN=client");
  }(p));
  // Required and missing: the server refuses; the client learns it from the
  // alert, at the end of its handshake (TLS 1.2) or at its first read (1.3).
  for (tls_version v : {tls_version::tls1_2, tls_version::tls1_3}) {
    CAPTURE(static_cast<int>(v));
    run_net([](const coring_test::test_pki& p, tls_version v) -> task<> {
      echo_server srv;
      tls_context sctx =
          server_context(p.server, {.ca_file = p.ca, .client_certificates = client_certificate::require});
      std::string server_error;
      auto server = coring::spawn([](tcp_listener& l, const tls_context& ctx, std::string& err) -> task<> {
        try {
          (void)co_await tls_stream::accept(ctx, co_await l.accept());
        } catch (const tls_error& e) {
          err = e.what();
        }
      }(srv.listener, sctx, server_error));
      tls_context cctx = trusting_client({.max_version = v});
      std::string client_error;
      try {
        tls_stream c = co_await tls_stream::connect(cctx, "localhost", srv.port());
        std::array<std::byte, 1> b;
        (void)co_await c.read_some(b);
      } catch (const tls_error& e) {
        client_error = e.what();
      }
      co_await server;
      CHECK(server_error.find("peer did not return a certificate") != std::string::npos);
      CHECK(client_error.find("alert") != std::string::npos);
    }(p, v));
  }
  // Requested and missing: let in, no subject.
  run_net([](const coring_test::test_pki& p) -> task<> {
    echo_server srv;
    tls_context sctx = server_context(p.server, {.ca_file = p.ca, .client_certificates = client_certificate::request});
    std::string subject = "unset";
    auto server = coring::spawn([](tcp_listener& l, const tls_context& ctx, std::string& subject) -> task<bool> {
      tls_stream s = co_await tls_stream::accept(ctx, co_await l.accept());
      subject = s.peer_subject();
      co_return co_await echo(std::move(s));
    }(srv.listener, sctx, subject));
    tls_context cctx = trusting_client();
    tls_stream c = co_await tls_stream::connect(cctx, "localhost", srv.port());
    co_await c.write_all(bytes_of("hi"));
    CHECK(text_of(co_await read_n(c, 2)) == "hi");
    co_await c.close();
    CHECK_FALSE(co_await server);
    CHECK(subject.empty());
  }(p));
}

TEST_CASE("a peer that closes without close_notify: read gives 0 and truncated() says so" * doctest::timeout(20)) {
  for (bool clean : {false, true}) {
    CAPTURE(clean);
    run_net([](bool clean) -> task<> {
      echo_server srv;
      tls_context sctx = server_context(pki().server);
      auto server = coring::spawn([](tcp_listener& l, const tls_context& ctx, bool clean) -> task<> {
        tls_stream s = co_await tls_stream::accept(ctx, co_await l.accept());
        co_await s.write_all(bytes_of("bye"));
        if (clean) co_await s.close();
        // else: the stream dies here and its socket is closed without a close_notify
      }(srv.listener, sctx, clean));
      tls_context cctx = trusting_client();
      tls_stream c = co_await tls_stream::connect(cctx, "localhost", srv.port());
      CHECK(text_of(co_await read_n(c, 3)) == "bye");
      co_await server;
      std::array<std::byte, 16> b;
      CHECK(co_await c.read_some(b) == 0);
      CHECK(c.truncated() == !clean);
      CHECK(co_await c.read_some(b) == 0);  // and stays at end of stream
      co_await c.close();
    }(clean));
  }
}

TEST_CASE("key updates the peer requests, between reads and writes, disturb neither" * doctest::timeout(20)) {
  run_net([]() -> task<> {
    echo_server srv;
    tls_context sctx = server_context(pki().server);
    auto server = coring::spawn([](tcp_listener& l, const tls_context& ctx) -> task<> {
      tls_stream s = co_await tls_stream::accept(ctx, co_await l.accept());
      // Requested: the client must update its sending keys too and say so.
      REQUIRE(SSL_key_update(static_cast<SSL*>(s.native_handle()), SSL_KEY_UPDATE_REQUESTED) == 1);
      co_await s.write_all(bytes_of("x"));  // the KeyUpdate goes out first
      co_await coring::sleep_for(20ms);
      co_await s.write_all(bytes_of("w"));
      CHECK(text_of(co_await read_n(s, 1)) == "y");  // under the client's new keys
      REQUIRE(SSL_key_update(static_cast<SSL*>(s.native_handle()), SSL_KEY_UPDATE_REQUESTED) == 1);
      co_await s.write_all(bytes_of("z"));
      CHECK(text_of(co_await read_n(s, 1)) == "!");
      co_await s.close();
    }(srv.listener, sctx));
    tls_context cctx = trusting_client();
    tls_stream c = co_await tls_stream::connect(cctx, "localhost", srv.port());
    CHECK(text_of(co_await read_n(c, 1)) == "x");
    CHECK(text_of(co_await read_n(c, 1)) == "w");
    co_await c.write_all(bytes_of("y"));  // OpenSSL sends the KeyUpdate reply with the next write
    CHECK(text_of(co_await read_n(c, 1)) == "z");
    co_await c.write_all(bytes_of("!"));
    co_await server;
    std::array<std::byte, 4> b;
    CHECK(co_await c.read_some(b) == 0);
    CHECK_FALSE(c.truncated());
    co_await c.close();
  }());
}

TEST_CASE("a plain-text client is refused by a TLS server with tls_error" * doctest::timeout(20)) {
  run_net([]() -> task<> {
    echo_server srv;
    tls_context sctx = server_context(pki().server);
    std::string err;
    auto server = coring::spawn([](tcp_listener& l, const tls_context& ctx, std::string& err) -> task<> {
      try {
        (void)co_await tls_stream::accept(ctx, co_await l.accept());
      } catch (const tls_error& e) {
        err = e.what();
      }
    }(srv.listener, sctx, err));
    tcp_stream c = co_await tcp_stream::connect(srv.listener.local_address());
    co_await c.write_all(bytes_of("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    co_await server;
    CHECK(err.find("TLS handshake with 127.0.0.1:") == 0);
  }());
}

TEST_CASE("a handshake the peer never answers: the timeout ends connect and accept with timeout_error" *
          doctest::timeout(20)) {
  run_net([]() -> task<> {
    echo_server srv;
    tls_context cctx = trusting_client();
    // The listener accepts nothing at the TLS level: the client's ClientHello goes unanswered.
    try {
      (void)co_await tls_stream::connect(cctx, "localhost", srv.port(), {.timeout = 100ms});
      FAIL("no timeout");
    } catch (const coring::timeout_error& e) {
      CHECK(std::string(e.what()) == "TLS handshake with localhost:" + std::to_string(srv.port()) +
                                         ": timed out after 100 ms");
    }
    (void)co_await srv.listener.accept();  // that client's connection, closed by now
    tcp_stream quiet = co_await tcp_stream::connect(srv.listener.local_address());
    tls_context sctx = server_context(pki().server);
    CHECK_THROWS_AS((void)co_await tls_stream::accept(sctx, co_await srv.listener.accept(), {.timeout = 100ms}),
                    coring::timeout_error);
  }());
}

TEST_CASE("cancelling a handshake in flight ends it with cancelled, exactly once, and closes its socket" *
          doctest::timeout(20)) {
  const int before = coring_test::settled_fd_count();
  {
    tcp_listener listener = coring_test::loopback_listener();
    const std::uint16_t port = listener.local_address().port();
    coring_test::expect_cancelled_once([port]() -> task<> {
      tls_context cctx = trusting_client();
      (void)co_await tls_stream::connect(cctx, "localhost", port);
    }, 50);
    // And the server side, waiting for a ClientHello that never comes.
    coring_test::expect_cancelled_once([]() -> task<> {
      tcp_listener quiet_listener = coring_test::loopback_listener();
      tcp_stream quiet = co_await tcp_stream::connect(quiet_listener.local_address());
      tls_context sctx = server_context(pki().server);
      (void)co_await tls_stream::accept(sctx, co_await quiet_listener.accept());
    }, 50);
  }
  CHECK(coring_test::fd_count_returns_to(before));
}

TEST_CASE("cancelling a read in flight loses nothing: the stream reads on afterwards" * doctest::timeout(20)) {
  run_net([]() -> task<> {
    echo_server srv;
    tls_context sctx = server_context(pki().server);
    auto server = coring::spawn(serve_one_echo(srv.listener, sctx));
    tls_context cctx = trusting_client();
    tls_stream c = co_await tls_stream::connect(cctx, "localhost", srv.port());
    auto reader = coring::spawn([](tls_stream& c) -> task<std::size_t> {
      std::array<std::byte, 16> b;
      co_return co_await c.read_some(b);
    }(c));
    co_await coring::sleep_for(10ms);
    reader.cancel();
    CHECK_THROWS_AS((void)co_await reader, coring::cancelled);
    // The read with a timeout ends likewise and leaves the stream usable.
    std::array<std::byte, 16> b;
    CHECK_THROWS_AS((void)co_await c.read_some(b, {.timeout = 20ms}), coring::timeout_error);
    co_await c.write_all(bytes_of("still here"));
    CHECK(text_of(co_await read_n(c, 10)) == "still here");
    co_await c.close();
    CHECK_FALSE(co_await server);
  }());
}

TEST_CASE("TLS reads cancelled at random moments while records stream in lose and duplicate nothing" *
          doctest::timeout(60)) {
  run_net([]() -> task<> {
    echo_server srv;
    tls_context sctx = server_context(pki().server);
    constexpr std::size_t total = 200'000;
    const auto data = coring_test::pattern(total, 5);
    auto writer = coring::spawn([](tcp_listener& l, const tls_context& ctx, const std::vector<std::byte>& d) -> task<> {
      tls_stream s = co_await tls_stream::accept(ctx, co_await l.accept());
      for (std::size_t off = 0; off < d.size(); off += 1000) {
        co_await s.write_all(std::span(d).subspan(off, 1000));
        co_await coring::yield();
      }
      co_await s.close();
    }(srv.listener, sctx, data));
    tls_context cctx = trusting_client();
    tls_stream c = co_await tls_stream::connect(cctx, "localhost", srv.port());
    std::vector<std::byte> got;
    std::mt19937 rng(13);
    int cancels = 0;
    bool ended = false;
    while (!ended) {
      auto reader = coring::spawn([](tls_stream& s, std::vector<std::byte>& out, bool& ended) -> task<> {
        std::array<std::byte, 777> buf;
        for (;;) {
          std::size_t n = co_await s.read_some(buf);
          out.insert(out.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
          if (n == 0) {
            ended = true;
            co_return;
          }
        }
      }(c, got, ended));
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
    CHECK_FALSE(c.truncated());
    co_await c.close();
  }());
}

TEST_CASE("a cancelled write leaves the stream unable to write, and close still closes it" * doctest::timeout(20)) {
  run_net([]() -> task<> {
    echo_server srv;
    tls_context sctx = server_context(pki().server);
    // A server that completes the handshake, then reads nothing.
    coring::event release;
    auto server = coring::spawn([](tcp_listener& l, const tls_context& ctx, coring::event& release) -> task<> {
      tls_stream s = co_await tls_stream::accept(ctx, co_await l.accept());
      co_await release.wait();
    }(srv.listener, sctx, release));
    tls_context cctx = trusting_client();
    tls_stream c = co_await tls_stream::connect(cctx, "localhost", srv.port());
    const std::vector<std::byte> big(64u << 20);  // more than the socket buffers hold
    auto writer = coring::spawn([](tls_stream& c, const std::vector<std::byte>& d) -> task<> {
      co_await c.write_all(d);
    }(c, big));
    co_await coring::sleep_for(20ms);  // the socket buffers are full by now: the send waits in the ring
    writer.cancel();
    CHECK_THROWS_AS(co_await writer, coring::cancelled);
    CHECK_THROWS_AS((void)co_await c.write_all(bytes_of("more")), coring::io_error);
    co_await c.close();
    CHECK_FALSE(c.is_open());
    release.set();
    co_await server;
  }());
}

TEST_CASE("operations on a closed or moved-from stream are io_error, close is idempotent" * doctest::timeout(10)) {
  run_net([]() -> task<> {
    tls_stream s;
    CHECK_FALSE(s.is_open());
    std::array<std::byte, 4> b;
    CHECK_THROWS_AS((void)co_await s.read_some(b), coring::io_error);
    CHECK_THROWS_AS((void)co_await s.write_some(b), coring::io_error);
    co_await s.close();
    co_await s.close();
    CHECK(s.alpn().empty());
    CHECK(s.peer_subject().empty());
  }());
}

TEST_CASE("1,000 concurrent TLS connections on one loop are accepted, echoed and closed" * doctest::timeout(120)) {
  run_net([]() -> task<> {
    constexpr int n = 1000;
    tcp_listener listener = coring_test::loopback_listener();
    tls_context sctx = server_context(pki().server);
    tls_context cctx = trusting_client();
    const std::uint16_t port = listener.local_address().port();
    int clean_ends = 0;
    auto server = coring::spawn([](tcp_listener& l, const tls_context& ctx, int& clean_ends) -> task<> {
      std::vector<coring::join_handle<void>> conns;
      conns.reserve(n);
      for (int i = 0; i < n; ++i) {
        tcp_stream s = co_await l.accept();
        conns.push_back(coring::spawn([](tcp_stream s, const tls_context& ctx, int& clean_ends) -> task<> {
          tls_stream t = co_await tls_stream::accept(ctx, std::move(s), {.timeout = 60s});
          if (!co_await echo(std::move(t))) ++clean_ends;
        }(std::move(s), ctx, clean_ends)));
      }
      for (auto& c : conns) co_await c;
    }(listener, sctx, clean_ends));
    int echoed = 0;
    std::vector<task<>> clients;
    clients.reserve(n);
    for (int i = 0; i < n; ++i) {
      clients.push_back([](int i, std::uint16_t port, const tls_context& ctx, int& echoed) -> task<> {
        tls_stream c = co_await tls_stream::connect(ctx, "localhost", port, {.timeout = 60s});
        std::string msg = "connection " + std::to_string(i);
        co_await c.write_all(bytes_of(msg));
        if (text_of(co_await read_n(c, msg.size())) == msg) ++echoed;
        co_await c.close();
      }(i, port, cctx, echoed));
    }
    co_await coring::gather(std::move(clients));
    co_await server;
    CHECK(echoed == n);
    CHECK(clean_ends == n);
  }());
}

// Timeouts here are generous: they only turn a hang into a failure, and a
// loaded machine has taken more than 10 s to start Python.
TEST_CASE("interop: a coring client talks to openssl s_server, TLS 1.2 and 1.3" * doctest::timeout(150)) {
  const auto& p = pki();
  for (std::string v : {"-tls1_2", "-tls1_3"}) {
    CAPTURE(v);
    peer_process server({"openssl", "s_server", "-accept", "127.0.0.1:0", "-cert", p.server.cert, "-key",
                         p.server.key, "-rev", "-naccept", "1", v});
    const std::uint16_t port = port_in(server.read_until("ACCEPT"), "ACCEPT 127.0.0.1:");
    REQUIRE(port != 0);
    run_net([](std::uint16_t port, std::string v) -> task<> {
      tls_context cctx = trusting_client();
      tls_stream c = co_await tls_stream::connect(cctx, "localhost", port, {.timeout = 60s});
      CHECK(c.version() == (v == "-tls1_2" ? "TLSv1.2" : "TLSv1.3"));
      co_await c.write_all(bytes_of("hello coring\n"));
      coring::net::buffered_reader in(c, {.io = {.timeout = 60s}});
      CHECK(co_await in.read_line(100) == std::optional<std::string_view>("gniroc olleh"));  // -rev: each line reversed
      co_await c.close();
    }(port, v));
    std::string out;
    CHECK(server.finish(out));
    CHECK(out.find("CONNECTION CLOSED") != std::string::npos);  // it saw our close_notify
  }
}

TEST_CASE("interop: openssl s_client verifies and talks to a coring server" * doctest::timeout(150)) {
  run_net([]() -> task<> {
    const auto& p = pki();
    tcp_listener listener = coring_test::loopback_listener();  // a listener lives and dies in its loop
    const std::string port = std::to_string(listener.local_address().port());
    peer_process client({"openssl", "s_client", "-connect", "127.0.0.1:" + port, "-CAfile", p.ca, "-servername",
                         "localhost", "-verify_return_error", "-quiet"});
    client.write("ping\n");  // -quiet: it goes on after the end of its input, until we close
    tls_context sctx = server_context(p.server);
    tls_stream s = co_await tls_stream::accept(sctx, co_await listener.accept({.timeout = 60s}), {.timeout = 60s});
    coring::net::buffered_reader in(s, {.io = {.timeout = 60s}});
    CHECK(co_await in.read_line(100) == std::optional<std::string_view>("ping"));
    co_await s.write_all(bytes_of("pong\n"));
    co_await s.close();
    std::string out;
    CHECK(client.finish(out));  // blocks the loop, which has nothing else to do
    CHECK(out.find("verify return:1") != std::string::npos);
    CHECK(out.find("pong\n") != std::string::npos);
  }());
}

TEST_CASE("interop: Python's ssl module as client and as server" * doctest::timeout(150)) {
  // Python as the client of a coring server.
  run_net([]() -> task<> {
    const auto& p = pki();
    tcp_listener listener = coring_test::loopback_listener();
    peer_process client({"python3", "-c", R"(
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
with socket.create_connection(("127.0.0.1", int(sys.argv[2]))) as s:
    with ctx.wrap_socket(s, server_hostname="localhost") as t:
        t.sendall(b"ping\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = t.recv(100)
            if not chunk:
                break
            data += chunk
        print(data.decode().strip(), t.version(), flush=True)
)", p.ca, std::to_string(listener.local_address().port())});
    tls_context sctx = server_context(p.server);
    tls_stream s = co_await tls_stream::accept(sctx, co_await listener.accept({.timeout = 60s}), {.timeout = 60s});
    coring::net::buffered_reader in(s, {.io = {.timeout = 60s}});
    CHECK(co_await in.read_line(100) == std::optional<std::string_view>("ping"));
    co_await s.write_all(bytes_of("pong\n"));
    co_await s.close();
    std::string out;
    CHECK(client.finish(out));
    CHECK(out == "pong TLSv1.3\n");
  }());
  // Python as the server of a coring client; it ends with close_notify (unwrap).
  {
    peer_process server({"python3", "-c", R"(
import socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
srv = socket.create_server(("127.0.0.1", 0))
print("PORT", srv.getsockname()[1], flush=True)
conn, _ = srv.accept()
t = ctx.wrap_socket(conn, server_side=True)
data = b""
while not data.endswith(b"\n"):
    data += t.recv(100)
t.sendall(data.upper())
t.unwrap()
t.close()
)", pki().server.cert, pki().server.key});
    const std::uint16_t port = port_in(server.read_until("PORT"), "PORT ");
    REQUIRE(port != 0);
    run_net([](std::uint16_t port) -> task<> {
      tls_context cctx = trusting_client();
      tls_stream c = co_await tls_stream::connect(cctx, "localhost", port, {.timeout = 60s});
      co_await c.write_all(bytes_of("shout\n"));
      coring::net::buffered_reader in(c, {.io = {.timeout = 60s}});
      CHECK(co_await in.read_line(100) == std::optional<std::string_view>("SHOUT"));
      CHECK_FALSE(co_await in.read_line(100));  // its close_notify
      CHECK_FALSE(c.truncated());
      co_await c.close();
    }(port));
    std::string out;
    CHECK(server.finish(out));
  }
}

}  // TEST_SUITE
