// tools/coring-get run as a child process against a scripted server of the
// test's own (plain or TLS, on a loop_thread), which counts its hits, the
// requests it is answering at once and its open connections.

#include <doctest/doctest.h>

#include <coring/error.hpp>
#include <coring/future.hpp>
#include <coring/http/date.hpp>
#include <coring/loop_thread.hpp>
#include <coring/net/buffered_reader.hpp>
#include <coring/net/tcp.hpp>
#include <coring/net/tls.hpp>
#include <coring/sleep.hpp>
#include <coring/task.hpp>
#include <coring/task_group.hpp>

#include "support/fds.hpp"
#include "support/net.hpp"
#include "support/tls.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#ifndef CORING_GET_PATH
#error "CORING_GET_PATH must name the built coring-get (set by tests/CMakeLists.txt)"
#endif

namespace {

namespace net = coring::net;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

// ---------------------------------------------------------------- the scripted server

/// An HTTP/1.1 server on 127.0.0.1 whose answer depends on the path's first segment:
///   /bytes/N/...     200 with N bytes of coring_test::pattern(N, N)
///   /missing/...     404
///   /flaky/...       503 to the first two requests for that path, then 200 "recovered"
///   /busy/...        429 with Retry-After: 1 to the first request for that path, then 200 "done"
///   /later/...       503 with Retry-After: the HTTP date 2 s from now (rounded down to the
///                    second) to the first request for that path, then 200 "later"
///   /past/...        503 with Retry-After: Fri, 31 Dec 1999 23:59:59 GMT, then 200 "past"
///   /far/...         503 with Retry-After: Fri, 31 Dec 9999 23:59:59 GMT, then 200 "far"
///   /garbage/...     503 with Retry-After: soon-ish, then 200 "garbage"
///   /truncated/...   Content-Length 1000, 100 bytes sent, then the connection closed
///   /stall/...       no answer at all
///   /dribble/...     Content-Length 1000000, 1000 bytes sent, then nothing more
///   /slow/...        200 with the path as body, after 150 ms
///   anything else    200 with the path as body
class scripted_server {
 public:
  explicit scripted_server(bool tls = false) {
    if (tls) {
      net::tls_options o;
      o.cert_file = coring_test::pki().server.cert;
      o.key_file = coring_test::pki().server.key;
      tls_ = std::make_unique<net::tls_context>(net::tls_context::server(o));
    }
    auto listener = coring_test::loopback_listener();
    port_ = listener.local_address().port();
    done_ = loop_.submit(serve(*this, std::move(listener)));
  }
  scripted_server(const scripted_server&) = delete;
  scripted_server& operator=(const scripted_server&) = delete;

  [[nodiscard]] std::string url(std::string_view path) const {
    return std::string(tls_ ? "https" : "http") + "://127.0.0.1:" + std::to_string(port_) + std::string(path);
  }
  [[nodiscard]] int hits(const std::string& path) {
    std::lock_guard lock(mutex_);
    auto it = hits_.find(path);
    return it == hits_.end() ? 0 : it->second;
  }
  /// When each request for `path` came, in order.
  [[nodiscard]] std::vector<std::chrono::steady_clock::time_point> hit_times(const std::string& path) {
    std::lock_guard lock(mutex_);
    return hit_times_[path];
  }
  [[nodiscard]] int max_requests_at_once() {
    std::lock_guard lock(mutex_);
    return max_in_flight_;
  }
  [[nodiscard]] int max_connections_at_once() {
    std::lock_guard lock(mutex_);
    return max_connections_;
  }

 private:
  static coring::task<> serve(scripted_server& self, net::tcp_listener listener) {
    co_await coring::task_group::run([&](coring::task_group& group) -> coring::task<> {
      for (;;) group.spawn(self.connection(co_await listener.accept()));
    });
  }

  coring::task<> connection(net::tcp_stream conn) {
    try {
      if (!tls_) {
        co_await session(conn);
      } else {
        net::io_options o;
        o.timeout = 5s;
        net::tls_stream s = co_await net::tls_stream::accept(*tls_, std::move(conn), o);
        co_await session(s);
      }
    } catch (const coring::error&) {
      // A client that went away, or refused our certificate: nothing to answer.
    }
  }

  template <class Stream>
  coring::task<> session(Stream& conn) {
    count(connections_, max_connections_, +1);
    struct leave {
      scripted_server* self;
      ~leave() { self->count(self->connections_, self->max_connections_, -1); }
    } left{this};
    net::buffered_reader in(conn);
    for (;;) {
      const std::string_view head = co_await in.read_until("\r\n\r\n", 16384);
      if (head.empty()) break;
      const std::size_t from = head.find(' ') + 1;
      const std::string path(head.substr(from, head.find(' ', from) - from));
      int hit;
      {
        std::lock_guard lock(mutex_);
        hit = ++hits_[path];
        hit_times_[path].push_back(std::chrono::steady_clock::now());
      }
      count(in_flight_, max_in_flight_, +1);
      struct done {
        scripted_server* self;
        ~done() { self->count(self->in_flight_, self->max_in_flight_, -1); }
      } answered{this};
      if (!co_await answer(conn, path, hit)) break;
    }
  }

  // Answers one request; false when the connection is to be closed.
  template <class Stream>
  coring::task<bool> answer(Stream& conn, const std::string& path, int hit) {
    auto reply = [](int status, std::string_view reason, const std::string& body) {
      return "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) +
             "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    };
    std::string out;
    if (path.starts_with("/bytes/")) {
      const std::size_t n = std::stoul(path.substr(7));
      const auto body = coring_test::pattern(n, static_cast<std::uint32_t>(n));
      out = reply(200, "OK", std::string(reinterpret_cast<const char*>(body.data()), body.size()));
    } else if (path.starts_with("/missing/")) {
      out = reply(404, "Not Found", "no such thing");
    } else if (path.starts_with("/flaky/")) {
      out = hit <= 2 ? reply(503, "Service Unavailable", "busy") : reply(200, "OK", "recovered");
    } else if (path.starts_with("/busy/")) {
      out = hit == 1 ? "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n"
                     : reply(200, "OK", "done");
    } else if (path.starts_with("/later/") || path.starts_with("/past/") || path.starts_with("/far/") ||
               path.starts_with("/garbage/")) {
      const std::string kind = path.substr(1, path.find('/', 1) - 1);
      std::string when = "soon-ish";
      if (kind == "later") when = coring::http::format_date(std::chrono::system_clock::now() + 2s);
      if (kind == "past") when = "Fri, 31 Dec 1999 23:59:59 GMT";
      if (kind == "far") when = "Fri, 31 Dec 9999 23:59:59 GMT";
      out = hit == 1 ? "HTTP/1.1 503 Service Unavailable\r\nRetry-After: " + when +
                           "\r\nContent-Length: 0\r\n\r\n"
                     : reply(200, "OK", kind);
    } else if (path.starts_with("/truncated/")) {
      co_await conn.write_all(coring_test::bytes_of("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" +
                                                    std::string(100, 't')));
      co_return false;
    } else if (path.starts_with("/stall/")) {
      co_await coring::sleep_for(60s);
      co_return false;
    } else if (path.starts_with("/dribble/")) {
      co_await conn.write_all(coring_test::bytes_of("HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" +
                                                    std::string(1000, 'd')));
      co_await coring::sleep_for(60s);
      co_return false;
    } else {
      if (path.starts_with("/slow/")) co_await coring::sleep_for(150ms);
      out = reply(200, "OK", path);
    }
    co_await conn.write_all(coring_test::bytes_of(out));
    co_return true;
  }

  void count(int& now, int& most, int by) {
    std::lock_guard lock(mutex_);
    now += by;
    most = std::max(most, now);
  }

  std::unique_ptr<net::tls_context> tls_;
  std::uint16_t port_ = 0;
  std::mutex mutex_;
  std::map<std::string, int> hits_;  // requests per path
  std::map<std::string, std::vector<std::chrono::steady_clock::time_point>> hit_times_;  // and when
  int in_flight_ = 0;                // requests read and not yet answered
  int max_in_flight_ = 0;
  int connections_ = 0;              // connections open
  int max_connections_ = 0;
  coring::future<void> done_;
  coring::loop_thread loop_;  // last: stopped (its tasks cancelled) before the rest goes
};

// ---------------------------------------------------------------- running coring-get

struct run_result {
  int status = -1;     // the exit status; 128 + N if killed by signal N; -1 if it timed out
  bool killed = false;  // a signal ended it (rather than its own exit)
  std::string output;  // stdout and stderr (or the terminal's output)
};

struct run_options {
  bool terminal = false;              // under a pseudo-terminal (forkpty) instead of a pipe
  std::optional<std::string> input;   // its stdin; /dev/null when absent
  std::function<bool(const std::string& output)> interrupt_when;  // polled; once true, the signal is sent
  int interrupt_with = SIGINT;                                     // that signal
};

/// Runs coring-get with `args` and waits for it (at most 60 s).
run_result run_get(const std::vector<std::string>& args, const run_options& o = {}) {
  // Everything the child needs is made before fork: the parent has other threads.
  std::vector<std::string> argv{CORING_GET_PATH};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);

  run_result r;
  int in[2] = {-1, -1};
  REQUIRE(::pipe2(in, O_CLOEXEC) == 0);
  int out_read = -1;
  pid_t pid;
  if (o.terminal) {
    int master = -1;
    pid = ::forkpty(&master, nullptr, nullptr, nullptr);
    if (pid == 0) {
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      ::execv(cargv[0], cargv.data());
      ::_exit(127);
    }
    out_read = master;
    ::close(in[0]);
    ::close(in[1]);
  } else {
    int out[2];
    REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
    pid = ::fork();
    if (pid == 0) {
      ::dup2(in[0], 0);
      ::dup2(out[1], 1);
      ::dup2(out[1], 2);
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      ::execv(cargv[0], cargv.data());
      ::_exit(127);
    }
    ::close(in[0]);
    ::close(out[1]);
    out_read = out[0];
    if (o.input) {
      std::string_view left = *o.input;
      while (!left.empty()) {
        const ssize_t n = ::write(in[1], left.data(), left.size());
        if (n <= 0) break;
        left.remove_prefix(static_cast<std::size_t>(n));
      }
    }
    ::close(in[1]);
  }
  REQUIRE(pid > 0);

  const auto deadline = std::chrono::steady_clock::now() + 60s;
  bool interrupted = false;
  for (;;) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      break;
    }
    if (o.interrupt_when && !interrupted && o.interrupt_when(r.output)) {
      ::kill(pid, o.interrupt_with);
      interrupted = true;
    }
    pollfd p{out_read, POLLIN, 0};
    if (::poll(&p, 1, 20) <= 0) continue;
    char buf[4096];
    const ssize_t n = ::read(out_read, buf, sizeof buf);
    if (n <= 0) break;  // end of the pipe, or EIO once the terminal's last user has gone
    r.output.append(buf, static_cast<std::size_t>(n));
  }
  ::close(out_read);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (WIFEXITED(status)) r.status = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) {
    r.status = 128 + WTERMSIG(status);
    r.killed = true;
  }
  if (std::chrono::steady_clock::now() > deadline) r.status = -1;
  return r;
}

/// A fresh directory, removed with what is in it.
struct temp_dir {
  fs::path path;
  temp_dir() {
    std::string t = (fs::temp_directory_path() / "coring-get-test-XXXXXX").string();
    REQUIRE(::mkdtemp(t.data()) != nullptr);
    path = t;
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  [[nodiscard]] std::string str() const { return path.string(); }
};

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

std::string pattern_text(std::size_t n) {
  const auto v = coring_test::pattern(n, static_cast<std::uint32_t>(n));
  return {reinterpret_cast<const char*>(v.data()), v.size()};
}

bool contains(const std::string& text, std::string_view what) { return text.find(what) != std::string::npos; }

}  // namespace

TEST_SUITE("net/coring_get") {

TEST_CASE("coring-get saves each URL under its path's last segment and a repeated name as name.1" *
          doctest::timeout(120)) {
  const int fds = coring_test::settled_fd_count();
  {
    scripted_server server;
    temp_dir dir;
    const std::string out = (dir.path / "new" / "sub").string();  // made on the way
    const run_result r =
        run_get({"--out", out, server.url("/bytes/1000/a.bin"), server.url("/bytes/70000/b%20c.dat"),
                 server.url("/other/a.bin"), server.url("/dir/"), server.url("/a/%2E%2E")});
    INFO(r.output);
    CHECK(r.status == 0);
    CHECK(names_in(out) ==
          std::vector<std::string>{"a.bin", "a.bin.1", "b c.dat", "index.html", "index.html.1"});
    CHECK(read_file(fs::path(out) / "a.bin") == pattern_text(1000));
    CHECK(read_file(fs::path(out) / "b c.dat") == pattern_text(70000));
    CHECK(read_file(fs::path(out) / "a.bin.1") == "/other/a.bin");
    CHECK(read_file(fs::path(out) / "index.html") == "/dir/");
    CHECK(read_file(fs::path(out) / "index.html.1") == "/a/%2E%2E");
    CHECK(
        contains(r.output, "ok " + server.url("/bytes/1000/a.bin") + " -> " + out + "/a.bin (1000 bytes, "));
    CHECK(contains(r.output,
                   "ok " + server.url("/bytes/70000/b%20c.dat") + " -> " + out + "/b c.dat (70000 bytes, "));
    CHECK(contains(r.output,
                   "5 downloaded, 0 failed, " + std::to_string(1000 + 70000 + 12 + 5 + 9) + " bytes in "));
    CHECK_FALSE(contains(r.output, "\r"));  // not a terminal: plain lines
  }
  CHECK(coring_test::fd_count_returns_to(fds));
}

TEST_CASE("coring-get -i reads URLs from a file or stdin and skips comments and blank lines" *
          doctest::timeout(120)) {
  const int fds = coring_test::settled_fd_count();
  {
    scripted_server server;
    temp_dir dir;
    const std::string list = (dir.path / "list.txt").string();
    {
      std::ofstream f(list);
      f << "# two files\n\n" << server.url("/one.txt") << "\n   \n  " << server.url("/two.txt") << "  \r\n#"
        << server.url("/commented.txt") << "\n";
    }
    const std::string out = (dir.path / "from-file").string();
    const run_result r = run_get({"-i", list, "--out", out});
    INFO(r.output);
    CHECK(r.status == 0);
    CHECK(names_in(out) == std::vector<std::string>{"one.txt", "two.txt"});
    CHECK(server.hits("/commented.txt") == 0);

    const std::string out2 = (dir.path / "from-stdin").string();
    run_options o;
    o.input = server.url("/three.txt") + "\n# no\n" + server.url("/four.txt") + "\n";
    const run_result r2 = run_get({"--out", out2, "-i", "-", "-q"}, o);
    INFO(r2.output);
    CHECK(r2.status == 0);
    CHECK(names_in(out2) == std::vector<std::string>{"four.txt", "three.txt"});
    CHECK(read_file(fs::path(out2) / "four.txt") == "/four.txt");
    CHECK(r2.output.empty());  // -q: nothing but failures
  }
  CHECK(coring_test::fd_count_returns_to(fds));
}

TEST_CASE("coring-get fails a 404 at once without retrying and exits with status 1" * doctest::timeout(120)) {
  const int fds = coring_test::settled_fd_count();
  {
    scripted_server server;
    temp_dir dir;
    const run_result r =
        run_get({"--out", dir.str(), "--retries", "3", "--retry-delay", "0.01", server.url("/missing/x.bin"),
                 server.url("/fine.txt")});
    INFO(r.output);
    CHECK(r.status == 1);
    CHECK(server.hits("/missing/x.bin") == 1);
    CHECK(contains(r.output, "FAILED " + server.url("/missing/x.bin") + ": GET " +
                                 server.url("/missing/x.bin") + ": 404 Not Found\n"));
    CHECK(contains(r.output, "1 downloaded, 1 failed, 9 bytes in "));
    CHECK(names_in(dir.path) == std::vector<std::string>{"fine.txt"});
  }
  CHECK(coring_test::fd_count_returns_to(fds));
}

TEST_CASE(
    "coring-get retries a 503 and succeeds with --retries 2 but fails with --retries 1 and heeds "
    "Retry-After" *
    doctest::timeout(120)) {
  const int fds = coring_test::settled_fd_count();
  {
    scripted_server server;
    temp_dir dir;
    const run_result ok =
        run_get({"--out", dir.str(), "--retries", "2", "--retry-delay", "0.01", server.url("/flaky/a.txt")});
    INFO(ok.output);
    CHECK(ok.status == 0);
    CHECK(server.hits("/flaky/a.txt") == 3);
    CHECK(read_file(dir.path / "a.txt") == "recovered");
    CHECK(contains(ok.output, "retry " + server.url("/flaky/a.txt") + ": GET " + server.url("/flaky/a.txt") +
                                  ": 503 Service Unavailable (attempt 1 of 3 failed; again in "));

    const run_result failed =
        run_get({"--out", dir.str(), "--retries", "1", "--retry-delay", "0.01", server.url("/flaky/b.txt")});
    INFO(failed.output);
    CHECK(failed.status == 1);
    CHECK(server.hits("/flaky/b.txt") == 2);
    CHECK(contains(failed.output, "FAILED " + server.url("/flaky/b.txt") + ": GET " +
                                      server.url("/flaky/b.txt") +
                                      ": 503 Service Unavailable (after 2 attempts)"));
    CHECK(names_in(dir.path) == std::vector<std::string>{"a.txt"});

    // A Retry-After in seconds lengthens the wait.
    const run_result busy =
        run_get({"--out", dir.str(), "--retries", "1", "--retry-delay", "0.01", server.url("/busy/c.txt")});
    INFO(busy.output);
    CHECK(busy.status == 0);
    CHECK(server.hits("/busy/c.txt") == 2);
    CHECK(contains(busy.output, ": 429 Too Many Requests (attempt 1 of 2 failed; again in 1.00 s)"));
    CHECK(read_file(dir.path / "c.txt") == "done");
  }
  CHECK(coring_test::fd_count_returns_to(fds));
}

TEST_CASE(
    "coring-get waits until the HTTP date of a Retry-After and falls back to the backoff for a bad one" *
    doctest::timeout(120)) {
  const int fds = coring_test::settled_fd_count();
  {
    scripted_server server;
    temp_dir dir;
    // The date is 1 to 2 s ahead when sent: the retry comes no sooner than that.
    const run_result later =
        run_get({"--out", dir.str(), "--retries", "1", "--retry-delay", "0.01", server.url("/later/a.txt")});
    INFO(later.output);
    CHECK(later.status == 0);
    CHECK(read_file(dir.path / "a.txt") == "later");
    const auto times = server.hit_times("/later/a.txt");
    REQUIRE(times.size() == 2);
    // 1 s, less a little for system_clock (the date) against steady_clock (the hits).
    CHECK(times[1] - times[0] >= 950ms);
    // The wait it announced: the date less the time it read the answer, so a little under 1 s when
    // the date was sent just before a second ended and took a while to arrive, never over 2 s.
    const std::string announced = ": 503 Service Unavailable (attempt 1 of 2 failed; again in ";
    const std::size_t at = later.output.find(announced);
    REQUIRE(at != std::string::npos);
    const double wait = std::stod(later.output.substr(at + announced.size()));
    CHECK(wait > 0.5);
    CHECK(wait <= 2.0);

    // A date passed asks for no wait: the backoff alone (0.005 to 0.01 s) applies.
    const run_result past =
        run_get({"--out", dir.str(), "--retries", "1", "--retry-delay", "0.01", server.url("/past/b.txt")});
    INFO(past.output);
    CHECK(past.status == 0);
    CHECK(server.hits("/past/b.txt") == 2);
    CHECK(read_file(dir.path / "b.txt") == "past");
    CHECK(contains(past.output, ": 503 Service Unavailable (attempt 1 of 2 failed; again in 0.0"));

    // Neither seconds nor a date: ignored, the backoff applies and the retry still happens.
    const run_result garbage = run_get(
        {"--out", dir.str(), "--retries", "1", "--retry-delay", "0.01", server.url("/garbage/c.txt")});
    INFO(garbage.output);
    CHECK(garbage.status == 0);
    CHECK(server.hits("/garbage/c.txt") == 2);
    CHECK(read_file(dir.path / "c.txt") == "garbage");
    CHECK(contains(garbage.output, ": 503 Service Unavailable (attempt 1 of 2 failed; again in 0.0"));
  }
  CHECK(coring_test::fd_count_returns_to(fds));
}

TEST_CASE("coring-get on SIGTERM cancels its downloads, removes their .part files and exits 143" *
          doctest::timeout(120)) {
  const int fds = coring_test::settled_fd_count();
  {
    scripted_server server;
    temp_dir dir;
    run_options o;
    const fs::path part = dir.path / "d.bin.part";
    o.interrupt_with = SIGTERM;
    o.interrupt_when = [&](const std::string&) {
      std::error_code ec;
      return fs::file_size(part, ec) == 1000 && !ec;
    };
    const run_result r =
        run_get({"--out", dir.str(), server.url("/dribble/d.bin"), server.url("/stall/e.bin")}, o);
    INFO(r.output);
    CHECK(r.status == 143);
    CHECK_FALSE(r.killed);  // its own exit, after the cleanup, not SIGTERM's default action
    CHECK(contains(r.output, "interrupted: 0 downloaded, 0 failed"));
    CHECK(names_in(dir.path).empty());
  }
  CHECK(coring_test::fd_count_returns_to(fds));
}

TEST_CASE("coring-get caps a far Retry-After date at 60 s and SIGTERM ends that wait with status 143" *
          doctest::timeout(120)) {
  const int fds = coring_test::settled_fd_count();
  {
    scripted_server server;
    temp_dir dir;
    run_options o;
    o.interrupt_with = SIGTERM;
    o.interrupt_when = [](const std::string& output) { return contains(output, "again in 60.00 s)"); };
    const run_result r =
        run_get({"--out", dir.str(), "--retries", "1", "--retry-delay", "0.01", server.url("/far/f.txt")}, o);
    INFO(r.output);
    CHECK(r.status == 143);
    CHECK_FALSE(r.killed);  // its own exit, after the cleanup, not SIGTERM's default action
    CHECK(contains(r.output, ": 503 Service Unavailable (attempt 1 of 2 failed; again in 60.00 s)"));
    CHECK(contains(r.output, "interrupted: 0 downloaded, 0 failed"));
    CHECK(server.hits("/far/f.txt") == 1);
    CHECK(names_in(dir.path).empty());
  }
  CHECK(coring_test::fd_count_returns_to(fds));
}

TEST_CASE("coring-get retries a body cut short and leaves neither the file nor its .part" *
          doctest::timeout(120)) {
  const int fds = coring_test::settled_fd_count();
  {
    scripted_server server;
    temp_dir dir;
    const run_result r = run_get(
        {"--out", dir.str(), "--retries", "1", "--retry-delay", "0.01", server.url("/truncated/t.bin")});
    INFO(r.output);
    CHECK(r.status == 1);
    CHECK(server.hits("/truncated/t.bin") == 2);
    CHECK(contains(r.output, "FAILED " + server.url("/truncated/t.bin") + ": "));
    CHECK(contains(r.output, "0 downloaded, 1 failed, 0 bytes in "));
    CHECK(names_in(dir.path).empty());
  }
  CHECK(coring_test::fd_count_returns_to(fds));
}

TEST_CASE("coring-get exits with status 2 for usage errors and 0 for --help and --version" *
          doctest::timeout(60)) {
  temp_dir dir;
  const run_result none = run_get({"--out", dir.str()});
  CHECK(none.status == 2);
  CHECK(contains(none.output, "coring-get: no URL given"));
  const run_result bogus = run_get({"--bogus", "http://127.0.0.1:1/x"});
  CHECK(bogus.status == 2);
  CHECK(contains(bogus.output, "unknown option '--bogus'"));
  const run_result zero = run_get({"--concurrency", "0", "http://127.0.0.1:1/x"});
  CHECK(zero.status == 2);
  CHECK(contains(zero.output, "--concurrency wants a whole number"));
  const run_result missing_value = run_get({"http://127.0.0.1:1/x", "--timeout"});
  CHECK(missing_value.status == 2);
  CHECK(contains(missing_value.output, "--timeout needs a value"));
  const run_result no_list = run_get({"-i", (dir.path / "absent.txt").string()});
  CHECK(no_list.status == 2);
  CHECK(contains(no_list.output, "cannot read the URL list"));
  const run_result help = run_get({"--help"});
  CHECK(help.status == 0);
  CHECK(contains(help.output, "usage: coring-get"));
  CHECK(contains(help.output, "--timeout SECONDS"));
  const run_result version = run_get({"--version"});
  CHECK(version.status == 0);
  CHECK(contains(version.output, "coring-get "));
  // A URL that cannot be fetched is a failure of its own, named, not a usage error.
  const run_result bad = run_get({"--out", dir.str(), "htp:/x"});
  CHECK(bad.status == 1);
  CHECK(contains(bad.output, "FAILED htp:/x: bad URL 'htp:/x'"));
  CHECK(names_in(dir.path).empty());
  // An --out that cannot be a directory fails the run before any download.
  { std::ofstream(dir.path / "plain"); }
  const run_result no_dir = run_get({"--out", (dir.path / "plain").string(), "http://127.0.0.1:1/x"});
  CHECK(no_dir.status == 1);
  CHECK(contains(no_dir.output,
                 "coring-get: cannot make the directory '" + (dir.path / "plain").string() + "'"));
}

TEST_CASE("coring-get keeps to --concurrency in total and to --per-host per server" * doctest::timeout(120)) {
  const int fds = coring_test::settled_fd_count();
  {
    temp_dir dir;
    {
      scripted_server server;
      std::vector<std::string> args{"--out", (dir.path / "c").string(), "--concurrency", "3", "-q"};
      for (int i = 0; i < 12; ++i) args.push_back(server.url("/slow/" + std::to_string(i)));
      const run_result r = run_get(args);
      INFO(r.output);
      CHECK(r.status == 0);
      CHECK(names_in(dir.path / "c").size() == 12);
      CHECK(server.max_requests_at_once() <= 3);
      CHECK(server.max_requests_at_once() >= 2);  // they did overlap: the limit, not luck, kept them at 3
      CHECK(server.max_connections_at_once() <= 3);
    }
    {
      scripted_server server;
      std::vector<std::string> args{"--out", (dir.path / "p").string(), "--per-host", "2", "-q"};
      for (int i = 0; i < 10; ++i) args.push_back(server.url("/slow/" + std::to_string(i)));
      const run_result r = run_get(args);
      INFO(r.output);
      CHECK(r.status == 0);
      CHECK(names_in(dir.path / "p").size() == 10);
      CHECK(server.max_connections_at_once() <= 2);
      CHECK(server.max_requests_at_once() <= 2);
      CHECK(server.max_requests_at_once() == 2);
    }
  }
  CHECK(coring_test::fd_count_returns_to(fds));
}

TEST_CASE("coring-get --timeout fails a download from a server that stalls and names the timeout" *
          doctest::timeout(120)) {
  const int fds = coring_test::settled_fd_count();
  {
    scripted_server server;
    temp_dir dir;
    const run_result r =
        run_get({"--out", dir.str(), "--timeout", "0.3", "--retries", "0", server.url("/stall/s.bin")});
    INFO(r.output);
    CHECK(r.status == 1);
    CHECK(server.hits("/stall/s.bin") == 1);
    CHECK(contains(r.output, "FAILED " + server.url("/stall/s.bin") + ": GET " + server.url("/stall/s.bin") +
                                 ": read timeout"));
    CHECK(names_in(dir.path).empty());
  }
  CHECK(coring_test::fd_count_returns_to(fds));
}

TEST_CASE("coring-get over https trusts --cacert, refuses an unknown certificate and accepts any with -k" *
          doctest::timeout(120)) {
  const coring_test::test_pki& pki = coring_test::pki();
  const int fds = coring_test::settled_fd_count();
  {
    scripted_server server(true);
    temp_dir dir;
    const run_result trusted =
        run_get({"--out", dir.str(), "--cacert", pki.ca, server.url("/bytes/5000/s.bin")});
    INFO(trusted.output);
    CHECK(trusted.status == 0);
    CHECK(read_file(dir.path / "s.bin") == pattern_text(5000));

    const run_result refused =
        run_get({"--out", dir.str(), "--retries", "0", server.url("/refused.bin")});
    INFO(refused.output);
    CHECK(refused.status == 1);
    CHECK(contains(refused.output, "FAILED " + server.url("/refused.bin") + ": GET " +
                                       server.url("/refused.bin") + ": cannot connect: "));
    CHECK(contains(refused.output, "certificate"));
    CHECK(server.hits("/refused.bin") == 0);

    const run_result insecure = run_get({"--out", dir.str(), "-kq", server.url("/insecure.bin")});
    INFO(insecure.output);
    CHECK(insecure.status == 0);
    CHECK(insecure.output.empty());
    CHECK(names_in(dir.path) == std::vector<std::string>{"insecure.bin", "s.bin"});
  }
  CHECK(coring_test::fd_count_returns_to(fds));
}

TEST_CASE("coring-get on a terminal redraws one progress line with carriage returns" *
          doctest::timeout(120)) {
  const int fds = coring_test::settled_fd_count();
  {
    scripted_server server;
    temp_dir dir;
    std::vector<std::string> args{"--out", dir.str(), "--concurrency", "1"};
    for (int i = 0; i < 4; ++i) args.push_back(server.url("/slow/" + std::to_string(i)));
    run_options o;
    o.terminal = true;
    const run_result r = run_get(args, o);
    INFO(r.output);
    CHECK(r.status == 0);
    CHECK(names_in(dir.path).size() == 4);
    CHECK(contains(r.output, "\r["));                  // the line, redrawn from its start
    CHECK(contains(r.output, "/4] 0 failed, "));
    CHECK_FALSE(contains(r.output, "ok http"));        // no per-file lines on a terminal
    CHECK(contains(r.output, "4 downloaded, 0 failed, "));
  }
  CHECK(coring_test::fd_count_returns_to(fds));
}

TEST_CASE("coring-get on Ctrl-C cancels its downloads, removes their .part files and exits 130" *
          doctest::timeout(120)) {
  const int fds = coring_test::settled_fd_count();
  {
    scripted_server server;
    temp_dir dir;
    run_options o;
    const fs::path part = dir.path / "d.bin.part";
    o.interrupt_when = [&](const std::string&) {
      std::error_code ec;
      return fs::file_size(part, ec) == 1000 && !ec;
    };
    const run_result r =
        run_get({"--out", dir.str(), server.url("/dribble/d.bin"), server.url("/stall/e.bin")}, o);
    INFO(r.output);
    CHECK(r.status == 130);
    CHECK(contains(r.output, "interrupted: 0 downloaded, 0 failed"));
    CHECK(names_in(dir.path).empty());
  }
  CHECK(coring_test::fd_count_returns_to(fds));
}

}  // TEST_SUITE
