#pragma once
// Fixtures for HTTP server tests: a server on a loop thread of its own (so
// the test thread can be a plain blocking client), a raw-socket client that
// reads responses byte-exactly, and a runner for external programs
// (python3, curl, wrk) that always stops and reaps them.
//
//   http::router app; ...
//   coring_test::http_fixture f(app, {.idle_timeout = 200ms});
//   coring_test::raw_client c(f.port());
//   c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
//   auto r = c.response();           // r.status, r.head, r.body
//   f.stop();                        // graceful, waits for serve() to return

#include <doctest/doctest.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <coring/future.hpp>
#include <coring/http/server.hpp>
#include <coring/loop_thread.hpp>
#include <coring/net/address.hpp>
#include <coring/net/tcp.hpp>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "support/fds.hpp"

namespace coring_test {

/// A server serving `app` on 127.0.0.1:<any port> on a loop thread.
class http_fixture {
 public:
  explicit http_fixture(const coring::http::router& app, coring::http::server_options o = {})
      : server_(app, std::move(o)) {
    auto listener = coring::net::tcp_listener::bind(coring::net::address::loopback_v4(0));
    port_ = listener.local_address().port();
    done_ = loop_.submit(server_.serve(std::move(listener)));
  }
  ~http_fixture() { stop(std::chrono::milliseconds(0)); }
  http_fixture(const http_fixture&) = delete;
  http_fixture& operator=(const http_fixture&) = delete;

  [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
  [[nodiscard]] coring::loop_thread& loop() noexcept { return loop_; }
  [[nodiscard]] coring::http::server& server() noexcept { return server_; }

  /// The server's counters (read on its loop).
  coring::http::server_stats stats() {
    return loop_
        .submit([](coring::http::server& s) -> coring::task<coring::http::server_stats> {
          co_return s.stats();
        }(server_))
        .get();
  }
  /// stop({.grace}) on the loop, then waits for serve() to return (rethrowing its failure).
  void stop(std::chrono::nanoseconds grace = std::chrono::seconds(5)) {
    if (stopped_) return;
    stopped_ = true;
    loop_.post([this, grace] { server_.stop({.grace = grace}); });
    done_.get();
  }
  /// Starts stop() without waiting; wait() then waits for serve().
  void begin_stop(std::chrono::nanoseconds grace) {
    stopped_ = true;
    loop_.post([this, grace] { server_.stop({.grace = grace}); });
  }
  void wait() { done_.get(); }

 private:
  coring::loop_thread loop_;
  coring::http::server server_;
  coring::future<void> done_;
  std::uint16_t port_ = 0;
  bool stopped_ = false;
};

/// A response as read off the wire.
struct raw_response {
  int status = 0;
  std::string head;  // status line and fields, each line with its CRLF, without the blank line
  std::string body;  // de-chunked
  [[nodiscard]] std::optional<std::string> field(std::string_view name) const {
    std::string lower_head, lower_name(name);
    for (char& c : lower_name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::size_t at = 0;
    while ((at = head.find("\r\n", at)) != std::string::npos) {
      at += 2;
      std::size_t colon = head.find(':', at);
      std::size_t eol = head.find("\r\n", at);
      if (colon == std::string::npos || eol == std::string::npos || colon > eol) continue;
      std::string n = head.substr(at, colon - at);
      for (char& c : n) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (n == lower_name) {
        std::size_t v = colon + 1;
        while (v < eol && head[v] == ' ') ++v;
        return head.substr(v, eol - v);
      }
    }
    return std::nullopt;
  }
};

/// A blocking TCP client on 127.0.0.1 with a receive timeout.
class raw_client {
 public:
  explicit raw_client(std::uint16_t port, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&sin), sizeof sin) == 0);
    const int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    set_timeout(timeout);
  }
  ~raw_client() { close(); }
  raw_client(raw_client&& o) noexcept : fd_(std::exchange(o.fd_, -1)), buffered_(std::move(o.buffered_)) {}
  raw_client(const raw_client&) = delete;
  raw_client& operator=(const raw_client&) = delete;

  void set_timeout(std::chrono::milliseconds t) {
    timeval tv{static_cast<time_t>(t.count() / 1000), static_cast<suseconds_t>(t.count() % 1000 * 1000)};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  /// A smaller receive buffer (for clients that stop reading).
  void set_receive_buffer(int bytes) { ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes); }

  /// Sends all of `s`; false if the server has closed.
  bool send(std::string_view s) {
    while (!s.empty()) {
      ssize_t n = ::send(fd_, s.data(), s.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      s.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }
  /// Reads the next response (status 0 if the connection ended or timed out first).
  /// `head_request`: the response has no body whatever its fields say.
  raw_response response(bool head_request = false) {
    raw_response r;
    std::size_t end;
    while ((end = buffered_.find("\r\n\r\n")) == std::string::npos) {
      if (!fill()) return r;
    }
    r.head = buffered_.substr(0, end + 2);  // each field line ends with CRLF
    buffered_.erase(0, end + 4);
    if (r.head.size() < 12 || r.head.compare(0, 7, "HTTP/1.") != 0) return r;
    r.status = std::atoi(r.head.c_str() + 9);
    if (head_request || r.status < 200 || r.status == 204 || r.status == 304) return r;
    if (auto te = r.field("Transfer-Encoding"); te && te->find("chunked") != std::string::npos) {
      for (;;) {
        std::size_t eol;
        while ((eol = buffered_.find("\r\n")) == std::string::npos) {
          if (!fill()) return fail(r);
        }
        const std::size_t size = std::stoul(buffered_.substr(0, eol), nullptr, 16);
        buffered_.erase(0, eol + 2);
        while (buffered_.size() < size + 2) {
          if (!fill()) return fail(r);
        }
        r.body += buffered_.substr(0, size);
        buffered_.erase(0, size + 2);
        if (size == 0) break;
      }
    } else if (auto cl = r.field("Content-Length")) {
      const std::size_t size = std::stoul(*cl);
      while (buffered_.size() < size) {
        if (!fill()) return fail(r);
      }
      r.body = buffered_.substr(0, size);
      buffered_.erase(0, size);
    } else {
      while (fill()) {
      }
      r.body = std::move(buffered_);
      buffered_.clear();
    }
    return r;
  }
  /// True if the server closes the connection (end of stream, or a reset) with nothing more to read.
  bool closed_by_server() {
    if (!buffered_.empty()) return false;
    char c;
    ssize_t n = ::recv(fd_, &c, 1, 0);
    return n == 0 || (n < 0 && (errno == ECONNRESET || errno == EPIPE));
  }
  /// Everything until the server closes.
  std::string read_to_end() {
    while (fill()) {
    }
    return std::exchange(buffered_, {});
  }
  [[nodiscard]] int fd() const noexcept { return fd_; }
  void close() {
    if (fd_ >= 0) ::close(std::exchange(fd_, -1));
  }

 private:
  static raw_response fail(raw_response r) {
    r.status = 0;
    return r;
  }
  bool fill() {
    char buf[65536];
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) return false;
    buffered_.append(buf, static_cast<std::size_t>(n));
    return true;
  }
  int fd_ = -1;
  std::string buffered_;
};

/// One request on a new connection; the response.
inline raw_response fetch(std::uint16_t port, std::string_view request) {
  raw_client c(port);
  c.send(request);
  return c.response(request.starts_with("HEAD "));
}
/// GET `target` on a new connection.
inline raw_response get(std::uint16_t port, std::string_view target) {
  return fetch(port, "GET " + std::string(target) + " HTTP/1.1\r\nHost: test\r\n\r\n");
}

/// How an external program ended.
struct program_result {
  int exit_code = -1;  // -1: killed (timed out) or could not start
  std::string output;  // its stdout and stderr
  bool timed_out = false;
};

/// Runs `argv` (argv[0] an absolute path), capturing stdout and stderr, and
/// kills it after `limit`. Always reaps it.
inline program_result run_program(std::vector<std::string> argv, std::chrono::milliseconds limit) {
  program_result result;
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return result;
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(p[1], 1);
    ::dup2(p[1], 2);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  ::close(p[1]);
  if (pid < 0) {
    ::close(p[0]);
    return result;
  }
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      result.timed_out = true;
      ::kill(pid, SIGKILL);
      break;
    }
    pollfd pfd{p[0], POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(left.count())) <= 0) continue;
    char buf[4096];
    ssize_t n = ::read(p[0], buf, sizeof buf);
    if (n <= 0) break;
    result.output.append(buf, static_cast<std::size_t>(n));
  }
  ::close(p[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!result.timed_out && WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  return result;
}

/// True if `path` is an executable file.
inline bool have_program(const char* path) { return ::access(path, X_OK) == 0; }

}  // namespace coring_test
