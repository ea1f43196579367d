// coring::subprocess: programs run through pipes, waited for through a
// pidfd in the ring; no zombie and no leaked descriptor on any path.

#include <dirent.h>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <concepts>
#include <coring/current_task.hpp>
#include <coring/error.hpp>
#include <coring/event_loop.hpp>
#include <coring/gather.hpp>
#include <coring/sleep.hpp>
#include <coring/spawn.hpp>
#include <coring/subprocess.hpp>
#include <coring/task.hpp>
#include <coring/timeout.hpp>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "support/cancel_once.hpp"
#include "support/stopwatch.hpp"

namespace {

using namespace std::chrono_literals;
using coring::stdio;
using coring::subprocess;
using coring::task;
using coring_test::stopwatch;

// Descriptors this process has open now.
std::size_t open_fds() {
  std::size_t n = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (::readdir(d)) ++n;
    ::closedir(d);
  }
  return n;
}

// True if `pid` is neither running nor a zombie of ours (it was reaped).
bool reaped(pid_t pid) {
  siginfo_t info{};
  return ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) != 0 && errno == ECHILD;
}

// The shape net::byte_stream asks of a stream (net's own concept, restated
// so that this test does not depend on net being built).
template <class S>
concept byte_stream_shape = requires(S& s, std::span<std::byte> in, std::span<const std::byte> out,
                                     const coring::pipe_io_options& o) {
  s.read_some(in, o).await_resume();
  s.write_some(out, o).await_resume();
  s.close().await_resume();
};
static_assert(byte_stream_shape<coring::pipe_stream>);

// A minimal line reader over any such stream (what net::buffered_reader does, and more).
template <class Stream>
class line_reader {
 public:
  explicit line_reader(Stream& s) : s_(s) {}
  task<std::optional<std::string>> next() {
    for (;;) {
      if (auto nl = buf_.find('\n'); nl != std::string::npos) {
        std::string line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        co_return line;
      }
      char chunk[7];  // small on purpose: lines span reads
      std::size_t n = co_await s_.read_some(std::as_writable_bytes(std::span(chunk)));
      if (n == 0) {
        if (buf_.empty()) co_return std::nullopt;
        co_return std::exchange(buf_, {});
      }
      buf_.append(chunk, n);
    }
  }

 private:
  Stream& s_;
  std::string buf_;
};

// Forces the pidfd-poll path (kernels without IORING_OP_WAITID) for a scope.
struct poll_instead_of_waitid {
  explicit poll_instead_of_waitid(bool on) { coring::detail::subprocess_force_pidfd_poll(on); }
  ~poll_instead_of_waitid() { coring::detail::subprocess_force_pidfd_poll(false); }
};

}  // namespace

TEST_SUITE("runtime/subprocess") {
  TEST_CASE("exec runs a program and communicate gathers its output and exit code" * doctest::timeout(10)) {
    for (bool poll_path : {false, true}) {
      CAPTURE(poll_path);
      poll_instead_of_waitid path(poll_path);
      auto out = coring::run([]() -> task<subprocess::output> {
        auto p = co_await subprocess::exec({"echo", "hello", "world"}, {.stdout = stdio::pipe});
        CHECK(p.pid() > 0);
        co_return co_await p.communicate();
      }());
      CHECK(out.out == "hello world\n");
      CHECK(out.err.empty());
      CHECK(out.returncode == 0);
    }
  }

  TEST_CASE("wait gives the exit code, or minus the signal that ended the child" * doctest::timeout(10)) {
    for (bool poll_path : {false, true}) {
      CAPTURE(poll_path);
      poll_instead_of_waitid path(poll_path);
      coring::run([]() -> task<> {
        auto a = co_await subprocess::shell("exit 3");
        CHECK(co_await a.wait() == 3);
        CHECK(a.returncode() == 3);
        CHECK(co_await a.wait() == 3);  // again: at once
        auto b = co_await subprocess::shell("kill -TERM $$");
        CHECK(co_await b.wait() == -SIGTERM);
      }());
    }
  }

  TEST_CASE("stdin and stdout pipes both ways, stderr piped apart or merged into stdout" *
            doctest::timeout(10)) {
    coring::run([]() -> task<> {
      auto sorter = co_await subprocess::exec({"sort"}, {.stdin = stdio::pipe, .stdout = stdio::pipe});
      auto sorted = co_await sorter.communicate("pear\napple\nfig\n");
      CHECK(sorted.out == "apple\nfig\npear\n");

      auto both = co_await subprocess::shell("echo out; echo err >&2; exit 4",
                                             {.stdout = stdio::pipe, .stderr = stdio::pipe});
      auto r = co_await both.communicate();
      CHECK(r.out == "out\n");
      CHECK(r.err == "err\n");
      CHECK(r.returncode == 4);

      auto merged = co_await subprocess::shell("echo out; echo err >&2",
                                               {.stdout = stdio::pipe, .stderr = stdio::to_stdout});
      auto m = co_await merged.communicate();
      CHECK(m.out == "out\nerr\n");
    }());
  }

  TEST_CASE("64 MiB through cat both ways: no deadlock on full pipes" * doctest::timeout(120)) {
    std::string input(64u << 20, '\0');
    std::mt19937 rng(64);
    for (auto& c : input) c = static_cast<char>('a' + rng() % 26);
    stopwatch sw;
    auto out = coring::run([](const std::string& input) -> task<subprocess::output> {
      auto cat = co_await subprocess::exec({"cat"}, {.stdin = stdio::pipe, .stdout = stdio::pipe});
      co_return co_await cat.communicate(input);
    }(input));
    CHECK(out.returncode == 0);
    CHECK(out.out.size() == input.size());
    CHECK(out.out == input);
    MESSAGE("64 MiB through cat in " << std::chrono::duration<double>(sw.elapsed()).count() << " s");
  }

  TEST_CASE("devnull, files and our own descriptors as the child's streams" * doctest::timeout(10)) {
    char dir_template[] = "/tmp/coring-subprocess-XXXXXX";
    REQUIRE(::mkdtemp(dir_template));
    const std::string dir = dir_template;
    { std::ofstream(dir + "/in.txt") << "from a file\n"; }
    coring::run([](const std::string& dir) -> task<> {
      auto to_file = co_await subprocess::exec({"cat"}, {.stdin = coring::stdio_file{dir + "/in.txt"},
                                                         .stdout = coring::stdio_file{dir + "/out.txt"}});
      CHECK(co_await to_file.wait() == 0);
      auto appended = co_await subprocess::shell(
          "echo more", {.stdout = coring::stdio_file{.path = dir + "/out.txt", .append = true}});
      CHECK(co_await appended.wait() == 0);

      auto silent = co_await subprocess::shell(
          "cat; echo done", {.stdin = stdio::devnull, .stdout = stdio::pipe, .stderr = stdio::devnull});
      CHECK((co_await silent.communicate()).out == "done\n");

      int fds[2];
      REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
      auto via_fd = co_await subprocess::shell("echo via fd", {.stdout = coring::stdio_fd{fds[1]}});
      CHECK(co_await via_fd.wait() == 0);
      ::close(fds[1]);  // still ours: the child had a copy
      char buf[32] = {};
      CHECK(::read(fds[0], buf, sizeof buf) == 7);
      CHECK(std::string_view(buf, 7) == "via fd\n");
      ::close(fds[0]);
    }(dir));
    std::ifstream result(dir + "/out.txt");
    std::stringstream ss;
    ss << result.rdbuf();
    CHECK(ss.str() == "from a file\nmore\n");
    std::system(("rm -rf " + dir).c_str());
  }

  TEST_CASE("cwd and env set the child's directory and whole environment" * doctest::timeout(10)) {
    auto out = coring::run([]() -> task<subprocess::output> {
      std::vector<std::string> only{"GREETING=hi"};
      for (const auto& e : subprocess::environment()) {
        if (e.starts_with("PATH=")) only.push_back(e);
      }
      CHECK(only.size() == 2);
      auto p = co_await subprocess::shell("pwd; echo $GREETING; echo ${HOME:-unset}",
                                          {.stdout = stdio::pipe, .cwd = "/tmp", .env = only});
      co_return co_await p.communicate();
    }());
    CHECK(out.out == "/tmp\nhi\nunset\n");
  }

  TEST_CASE("a program that cannot run, a bad directory: io_error naming it, no child, no descriptor left" *
            doctest::timeout(10)) {
    coring::run([]() -> task<> {
      const std::size_t before = open_fds();
      bool missing = false;
      try {
        (void)co_await subprocess::exec({"coring-no-such-program"},
                                        {.stdin = stdio::pipe, .stdout = stdio::pipe});
      } catch (const coring::io_error& e) {
        missing = e.code().value() == ENOENT &&
                  std::string(e.what()).find("coring-no-such-program") != std::string::npos;
      }
      CHECK(missing);
      bool bad_dir = false;
      try {
        (void)co_await subprocess::exec({"true"}, {.cwd = "/coring/no/such/dir"});
      } catch (const coring::io_error& e) {
        bad_dir = e.code().value() == ENOENT &&
                  std::string(e.what()).find("/coring/no/such/dir") != std::string::npos;
      }
      CHECK(bad_dir);
      CHECK_THROWS_AS((void)co_await subprocess::exec(std::vector<std::string>{}), coring::error);
      CHECK_THROWS_AS((void)co_await subprocess::exec({"/etc/hostname"}),
                      coring::io_error);  // not executable
      CHECK(open_fds() == before);
    }());
  }

  TEST_CASE("terminate and kill end the child at once" * doctest::timeout(10)) {
    stopwatch sw;
    coring::run([]() -> task<> {
      auto a = co_await subprocess::exec({"sleep", "10"});
      a.terminate();
      CHECK(co_await a.wait() == -SIGTERM);
      auto b = co_await subprocess::exec({"sleep", "10"});
      b.kill();
      CHECK(co_await b.wait() == -SIGKILL);
      b.kill();  // reaped: no effect
    }());
    CHECK(sw.elapsed() < 5s);
  }

  TEST_CASE("cancelling a task in wait() kills and reaps the child, and delivers one cancellation" *
            doctest::timeout(10)) {
    pid_t pid = -1;
    stopwatch sw;
    coring_test::expect_cancelled_once([&]() -> task<> {
      auto p = co_await subprocess::exec({"sleep", "10"});
      pid = p.pid();
      (void)co_await p.wait();
    });
    CHECK(sw.elapsed() < 5s);
    REQUIRE(pid > 0);
    CHECK(reaped(pid));
  }

  // Like every coring task, a wait() awaited with a cancellation already
  // pending never starts: it throws at once, and the child is killed and
  // reaped when its subprocess object goes (here, at the end of the task).
  TEST_CASE("a wait() awaited with a cancellation pending throws at once, the child goes with its object" *
            doctest::timeout(10)) {
    pid_t pid = -1;
    stopwatch sw;
    coring::run([](pid_t& pid) -> task<> {
      auto p = co_await subprocess::exec({"sleep", "10"});
      pid = p.pid();
      (co_await coring::current_task()).cancel();
      CHECK_THROWS_AS((void)co_await p.wait(), coring::cancelled);
      CHECK_FALSE(p.returncode());
      co_await coring::sleep_for(1ms);  // delivered once
    }(pid));
    CHECK(sw.elapsed() < 5s);
    CHECK(reaped(pid));
  }

  TEST_CASE("cancelling communicate() kills and reaps the child" * doctest::timeout(10)) {
    pid_t pid = -1;
    coring_test::expect_cancelled_once([&]() -> task<> {
      auto p = co_await subprocess::exec({"cat"}, {.stdin = stdio::pipe, .stdout = stdio::pipe});
      pid = p.pid();
      (void)co_await p.communicate();  // cat waits for its input forever: our stdin stays open
    });
    REQUIRE(pid > 0);
    CHECK(reaped(pid));
  }

  TEST_CASE("a deadline around wait() kills and reaps the child, then times out" * doctest::timeout(10)) {
    pid_t pid = -1;
    coring::run([](pid_t& pid) -> task<> {
      auto p = co_await subprocess::exec({"sleep", "10"});
      pid = p.pid();
      CHECK_THROWS_AS(co_await coring::timeout(20ms, [&]() -> task<> { (void)co_await p.wait(); }),
                      coring::timeout_error);
      CHECK(p.returncode() == -SIGKILL);  // reaped by the cancelled wait, not by the destructor
    }(pid));
    REQUIRE(pid > 0);
    CHECK(reaped(pid));
  }

  TEST_CASE("destroying a subprocess that was not waited for kills and reaps it" * doctest::timeout(10)) {
    pid_t pid = coring::run([]() -> task<pid_t> {
      auto p = co_await subprocess::exec({"sleep", "10"}, {.stdin = stdio::pipe, .stdout = stdio::pipe});
      co_return p.pid();
    }());
    CHECK(reaped(pid));
  }

  TEST_CASE("the child gets only its three streams, an empty signal mask and default dispositions" *
            doctest::timeout(10)) {
    const std::string fds = coring::run([]() -> task<std::string> {
      auto p =
          co_await subprocess::exec({"ls", "/proc/self/fd"}, {.stdin = stdio::pipe, .stdout = stdio::pipe});
      co_return (co_await p.communicate()).out;
    }());
    CHECK(fds == "0\n1\n2\n3\n");  // 3 is ls's own handle on the directory
    const std::string status = coring::run([]() -> task<std::string> {
      ::signal(SIGPIPE, SIG_IGN);  // ignored here: the child still gets the default
      auto p = co_await subprocess::exec({"grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"},
                                         {.stdout = stdio::pipe});
      auto out = (co_await p.communicate()).out;
      ::signal(SIGPIPE, SIG_DFL);
      co_return out;
    }());
    CHECK(status == "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");
  }

  TEST_CASE("a pipe stream reads like any stream: lines through a small reader" * doctest::timeout(10)) {
    std::vector<std::string> lines = coring::run([]() -> task<std::vector<std::string>> {
      auto p = co_await subprocess::shell("printf 'first line\\nsecond, longer line\\nlast'",
                                          {.stdout = stdio::pipe});
      line_reader reader(p.stdout());
      std::vector<std::string> out;
      while (auto line = co_await reader.next()) out.push_back(*line);
      CHECK(co_await p.wait() == 0);
      co_return out;
    }());
    CHECK(lines == std::vector<std::string>{"first line", "second, longer line", "last"});
  }

  TEST_CASE("writing to a child that left gives EPIPE, never SIGPIPE, and communicate drops the rest" *
            doctest::timeout(10)) {
    coring::run([]() -> task<> {
      auto p = co_await subprocess::exec({"true"}, {.stdin = stdio::pipe});
      CHECK(co_await p.wait() == 0);
      std::string big(1 << 20, 'x');
      bool epipe = false;
      try {
        co_await p.stdin().write_all(std::as_bytes(std::span(big.data(), big.size())));
      } catch (const coring::io_error& e) {
        epipe = e.code().value() == EPIPE;
      }
      CHECK(epipe);

      auto q = co_await subprocess::shell("head -c 10", {.stdin = stdio::pipe, .stdout = stdio::pipe});
      auto r = co_await q.communicate(big);
      CHECK(r.out == std::string(10, 'x'));
      CHECK(r.returncode == 0);
    }());
  }

  TEST_CASE("several children at once, and the loop stays free meanwhile" * doctest::timeout(10)) {
    stopwatch sw;
    auto outs = coring::run([]() -> task<std::vector<std::string>> {
      std::vector<task<std::string>> runs;
      for (int i = 0; i < 6; ++i) {
        runs.push_back([](int i) -> task<std::string> {
          auto p =
              co_await subprocess::shell("sleep 0.1; echo " + std::to_string(i), {.stdout = stdio::pipe});
          co_return (co_await p.communicate()).out;
        }(i));
      }
      co_return co_await coring::gather(std::move(runs));
    }());
    CHECK(outs == std::vector<std::string>{"0\n", "1\n", "2\n", "3\n", "4\n", "5\n"});
    CHECK(sw.elapsed() < 2s);  // concurrently, not 6 × 0.1 s one after the other... with room for a slow VM
  }

  TEST_CASE("stress: children started, waited, cancelled at random: every one reaped, no descriptor left" *
            doctest::timeout(60)) {
    std::mt19937 rng(2026);
    const std::size_t before = open_fds();
    std::vector<pid_t> pids;
    int finished = 0, cancelled = 0;
    coring::run([](std::mt19937& rng, std::vector<pid_t>& pids, int& finished, int& cancelled) -> task<> {
      for (int round = 0; round < 30; ++round) {
        const auto cancel_after = std::chrono::microseconds(rng() % 15000);
        auto h = coring::spawn([](std::vector<pid_t>& pids) -> task<int> {
          auto p =
              co_await subprocess::shell("read x; echo $x", {.stdin = stdio::pipe, .stdout = stdio::pipe});
          pids.push_back(p.pid());
          auto r = co_await p.communicate("line\n");
          co_return r.out == "line\n" ? 1 : -100;
        }(pids));
        co_await coring::sleep_for(cancel_after);
        h.cancel();
        try {
          finished += co_await h;
        } catch (const coring::cancelled&) {
          ++cancelled;
        }
      }
    }(rng, pids, finished, cancelled));
    MESSAGE("finished " << finished << ", cancelled " << cancelled);
    CHECK(finished + cancelled == 30);
    for (pid_t pid : pids) CHECK(reaped(pid));
    CHECK(open_fds() == before);
  }

}  // TEST_SUITE
