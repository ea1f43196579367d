// coring::signal and coring::run's SIGINT. Signals raised here are
// thread-directed at the loop's thread (raise) while coring::signal blocks
// them there; anything that ends a process by a signal runs in a forked child.

#include <doctest/doctest.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <coring/error.hpp>
#include <coring/event_loop.hpp>
#include <coring/loop_thread.hpp>
#include <coring/process_pool.hpp>
#include <coring/run_coroutine_threadsafe.hpp>
#include <coring/signal.hpp>
#include <coring/sleep.hpp>
#include <coring/spawn.hpp>
#include <coring/task.hpp>
#include <coring/thread_pool.hpp>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <thread>

#include "support/cancel_once.hpp"
#include "support/stopwatch.hpp"
#include "support/watchdog.hpp"

namespace {

using namespace std::chrono_literals;
using coring::task;
using coring_test::stopwatch;

bool blocked_here(int signo) {
  sigset_t mask;
  pthread_sigmask(SIG_BLOCK, nullptr, &mask);
  return sigismember(&mask, signo) != 0;
}

// Runs `fn` in a forked child; gives its raw wait status (the child is
// killed after `limit`). For runs that may end by a signal.
template <class Fn>
int child_status(Fn fn, std::chrono::milliseconds limit = 5s) {
  pid_t pid = ::fork();
  if (pid == 0) {
    std::signal(SIGINT, SIG_DFL);  // doctest reports SIGINT with a handler of its own: a program's default
    ::_exit(fn());
  }
  REQUIRE(pid > 0);
  const auto deadline = std::chrono::steady_clock::now() + limit;
  int status = 0;
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(2ms);
  }
  return status;
}

// The threads of this process, by tid.
std::set<long> thread_ids() {
  std::set<long> ids;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/task"))
    ids.insert(std::stol(e.path().filename()));
  return ids;
}

// True if thread `tid` of this process blocks `signo` (its SigBlk mask).
bool thread_blocks(long tid, int signo) {
  std::ifstream status("/proc/self/task/" + std::to_string(tid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("SigBlk:", 0) == 0) return (std::stoull(line.substr(7), nullptr, 16) >> (signo - 1)) & 1u;
  }
  return false;
}

}  // namespace

TEST_SUITE("runtime/signal") {
  TEST_CASE("co_await signal() returns when the signal arrives, not before" * doctest::timeout(5)) {
    REQUIRE_FALSE(blocked_here(SIGUSR1));
    coring::event_loop loop;
    stopwatch sw;
    int got = loop.run_until_complete([](coring::event_loop& loop) -> task<int> {
      loop.call_later(20ms, [] { ::raise(SIGUSR1); });
      co_return co_await coring::signal(SIGUSR1);
    }(loop));
    CHECK(got == SIGUSR1);
    CHECK(sw.elapsed() >= 20ms);
    CHECK(sw.elapsed() < 1s);
    CHECK(blocked_here(SIGUSR1));  // watched until the loop ends
  }

  TEST_CASE("the signal is blocked only while a loop watches it" * doctest::timeout(5)) {
    REQUIRE_FALSE(blocked_here(SIGUSR2));
    {
      coring::event_loop loop;
      loop.run_until_complete([]() -> task<> {
        auto waiter = coring::spawn([]() -> task<int> { co_return co_await coring::signal(SIGUSR2); }());
        co_await coring::yield();
        CHECK(blocked_here(SIGUSR2));
        ::raise(SIGUSR2);
        CHECK(co_await waiter == SIGUSR2);
      }());
    }
    CHECK_FALSE(blocked_here(SIGUSR2));
  }

  TEST_CASE("every task waiting for the signal wakes" * doctest::timeout(5)) {
    coring::run([]() -> task<> {
      auto a = coring::spawn([]() -> task<int> { co_return co_await coring::signal(SIGUSR1); }());
      auto b = coring::spawn([]() -> task<int> { co_return co_await coring::signal(SIGUSR1); }());
      co_await coring::sleep_for(5ms);
      ::raise(SIGUSR1);
      CHECK(co_await a == SIGUSR1);
      CHECK(co_await b == SIGUSR1);
    }());
  }

  TEST_CASE("a signal that arrives while nobody waits is kept for the next await, several count as one" *
            doctest::timeout(5)) {
    coring::run([]() -> task<> {
      auto first = coring::spawn([]() -> task<int> { co_return co_await coring::signal(SIGUSR2); }());
      co_await coring::yield();
      ::raise(SIGUSR2);
      CHECK(co_await first == SIGUSR2);
      ::raise(SIGUSR2);  // nobody waits now
      co_await coring::sleep_for(5ms);
      ::raise(SIGUSR2);
      co_await coring::sleep_for(5ms);
      stopwatch sw;
      CHECK(co_await coring::signal(SIGUSR2) == SIGUSR2);  // at once
      CHECK(sw.elapsed() < 100ms);
      auto next = coring::spawn([]() -> task<int> { co_return co_await coring::signal(SIGUSR2); }());
      co_await coring::sleep_for(10ms);
      CHECK_FALSE(next.done());  // the two kept ones were one
      ::raise(SIGUSR2);
      CHECK(co_await next == SIGUSR2);
    }());
  }

  TEST_CASE("a cancelled signal wait delivers one cancellation, the signal stays watched" *
            doctest::timeout(5)) {
    coring_test::expect_cancelled_once([]() -> task<> { (void)co_await coring::signal(SIGUSR1); });
  }

  TEST_CASE("cancelled just as the signal arrives: the signal or the cancellation, once each, none lost" *
            doctest::timeout(30)) {
    std::mt19937 rng(31);
    int signals = 0, cancels = 0;
    coring::run([](std::mt19937& rng, int& signals, int& cancels) -> task<> {
      for (int round = 0; round < 100; ++round) {
        const auto raise_at = std::chrono::microseconds(rng() % 300);
        const auto cancel_at = std::chrono::microseconds(rng() % 300);
        int seen = 0;
        bool got = false;
        auto waiter = coring::spawn([](int& seen, bool& got) -> task<> {
          try {
            got = co_await coring::signal(SIGUSR1) == SIGUSR1;
          } catch (const coring::cancelled&) {
            ++seen;
          }
          try {
            co_await coring::sleep_for(0ms);
          } catch (const coring::cancelled&) {
            ++seen;
          }
        }(seen, got));
        auto raiser = coring::spawn([](std::chrono::microseconds d) -> task<> {
          co_await coring::sleep_for(d);
          ::raise(SIGUSR1);
        }(raise_at));
        co_await coring::sleep_for(cancel_at);
        waiter.cancel();
        co_await waiter;
        co_await raiser;
        CHECK(seen <= 1);
        CHECK((got || seen == 1));
        if (!got) {
          // The signal was not lost: it is kept for the next await.
          stopwatch sw;
          CHECK(co_await coring::signal(SIGUSR1) == SIGUSR1);
          CHECK(sw.elapsed() < 500ms);
        }
        signals += got;
        cancels += !got;
      }
    }(rng, signals, cancels));
    MESSAGE("signals " << signals << ", cancelled first " << cancels);
  }

  TEST_CASE("a signal that cannot be waited for is an error" * doctest::timeout(5)) {
    CHECK_THROWS_AS(coring::run([]() -> task<> { (void)co_await coring::signal(SIGKILL); }()), coring::error);
    CHECK_THROWS_AS(coring::run([]() -> task<> { (void)co_await coring::signal(SIGSEGV); }()), coring::error);
  }

  TEST_CASE("a process-directed signal (kill) reaches the waiting task" * doctest::timeout(10)) {
    auto result = coring_test::run_in_child(
        [] {
          return coring::run([]() -> task<bool> {
            coring::event_loop* loop = coring::event_loop::current();
            loop->call_later(10ms, [] { ::kill(::getpid(), SIGTERM); });
            co_return co_await coring::signal(SIGTERM) == SIGTERM;
          }());
        },
        5s);
    CHECK(result == coring_test::child_result::exited_ok);
  }

  TEST_CASE("threads of coring's pools take no asynchronous signal" * doctest::timeout(10)) {
    coring::thread_pool pool(1);
    bool blocked = pool.submit([] {
                         return blocked_here(SIGINT) && blocked_here(SIGTERM) && blocked_here(SIGUSR1) &&
                                !blocked_here(SIGSEGV);
                       })
                       .get();
    CHECK(blocked);
    CHECK_FALSE(blocked_here(SIGINT));  // the submitting thread's own mask is as it was
  }

  TEST_CASE("a process pool's manager thread and a loop_thread take no asynchronous signal" *
            doctest::timeout(30)) {
    const std::set<long> before = thread_ids();
    coring::process_pool procs({.workers = 1});
    coring::loop_thread lt;
    CHECK(coring::run_coroutine_threadsafe(
              lt.loop(), []() -> task<bool> { co_return blocked_here(SIGINT) && blocked_here(SIGTERM); }())
              .get());
    int new_threads = 0;
    for (long tid : thread_ids()) {
      if (before.count(tid)) continue;
      ++new_threads;
      CAPTURE(tid);
      CHECK(thread_blocks(tid, SIGINT));
      CHECK(thread_blocks(tid, SIGTERM));
    }
    CHECK(new_threads >= 2);  // the manager and the loop's thread
    CHECK_FALSE(blocked_here(SIGINT));
  }

}  // TEST_SUITE

TEST_SUITE("runtime/signal_run") {
  TEST_CASE("coring::run: the first SIGINT cancels the main task, which cleans up, run throws interrupted" *
            doctest::timeout(10)) {
    int status = child_status([] {
      bool cleaned_up = false;
      try {
        coring::run([](bool& cleaned_up) -> task<> {
          coring::event_loop::current()->call_later(10ms, [] { ::raise(SIGINT); });
          try {
            co_await coring::sleep_for(10s);
          } catch (const coring::cancelled&) {
            cleaned_up = true;  // and may await: the cancellation was delivered once
          }
          co_await coring::sleep_for(1ms);
          throw coring::cancelled{};  // ends by the cancellation
        }(cleaned_up));
      } catch (const coring::interrupted& e) {
        return cleaned_up && e.signal_number() == SIGINT && !blocked_here(SIGINT) ? 130 : 1;
      }
      return 2;
    });
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 130);
  }

  TEST_CASE("coring::run: a main task that handles the SIGINT and returns gives its value" *
            doctest::timeout(10)) {
    int status = child_status([] {
      int v = coring::run([]() -> task<int> {
        coring::event_loop::current()->call_later(10ms, [] { ::raise(SIGINT); });
        try {
          co_await coring::sleep_for(10s);
        } catch (const coring::cancelled&) {
          co_return 7;
        }
        co_return 0;
      }());
      return v;
    });
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 7);
  }

  TEST_CASE("coring::run: a second SIGINT has the default action" * doctest::timeout(10)) {
    int status = child_status([] {
      coring::run([]() -> task<> {
        coring::event_loop::current()->call_later(10ms, [] { ::raise(SIGINT); });
        try {
          co_await coring::sleep_for(10s);
        } catch (const coring::cancelled&) {
        }
        co_await coring::sleep_for(20ms);  // the watch has stopped by now
        ::raise(SIGINT);                   // ends the process
        co_await coring::sleep_for(10s);
      }());
      return 0;
    });
    CHECK(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGINT);
  }

  TEST_CASE("coring::run: a task awaiting signal(SIGINT) takes it instead of run" * doctest::timeout(10)) {
    int status = child_status([] {
      return coring::run([]() -> task<int> {
        coring::event_loop::current()->call_later(10ms, [] { ::raise(SIGINT); });
        co_return co_await coring::signal(SIGINT) == SIGINT ? 5 : 1;
      }());
    });
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 5);
  }

  TEST_CASE("coring::run leaves SIGINT alone when told to, or when the program has its own disposition" *
            doctest::timeout(10)) {
    int opted_out = child_status([] {
      coring::run(
          []() -> task<> {
            coring::event_loop::current()->call_later(10ms, [] { ::raise(SIGINT); });
            co_await coring::sleep_for(10s);
          }(),
          {.handle_sigint = false});
      return 0;
    });
    CHECK(WIFSIGNALED(opted_out));
    CHECK(WTERMSIG(opted_out) == SIGINT);

    int ignored = child_status([] {
      std::signal(SIGINT, SIG_IGN);
      coring::run([]() -> task<> {
        ::raise(SIGINT);
        co_await coring::sleep_for(20ms);  // not cancelled
      }());
      return 3;
    });
    CHECK(WIFEXITED(ignored));
    CHECK(WEXITSTATUS(ignored) == 3);
  }

}  // TEST_SUITE
