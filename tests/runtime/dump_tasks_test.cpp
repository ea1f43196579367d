// loop.dump_tasks(): every live task, what it awaits, its await chain; and
// dump_tasks_on(signal). Also: describing tasks costs them nothing.

#include <coring/event_loop.hpp>

#include <doctest/doctest.h>

#include <coring/channel.hpp>
#include <coring/error.hpp>
#include <coring/event.hpp>
#include <coring/gather.hpp>
#include <coring/io.hpp>
#include <coring/shield.hpp>
#include <coring/signal.hpp>
#include <coring/sleep.hpp>
#include <coring/spawn.hpp>
#include <coring/task.hpp>
#include <coring/thread_pool.hpp>
#include <coring/timeout.hpp>

#include "support/pipe.hpp"

#include <array>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <future>
#include <string>

namespace {

using namespace std::chrono_literals;
using coring::task;

// A task object is what it always was: describing it needs no field.
static_assert(sizeof(coring::detail::task_node) == 32);
static_assert(sizeof(coring::sleep_operation) == 48);

bool has(const std::string& report, const std::string& what) {
  const bool found = report.find(what) != std::string::npos;
  if (!found) MESSAGE("not found: '" << what << "' in:\n" << report);
  return found;
}

task<int> dump_test_sleeper(std::chrono::milliseconds d) {
  co_await coring::sleep_for(d);
  co_return 1;
}

task<int> dump_test_middle(std::chrono::milliseconds d) { co_return co_await dump_test_sleeper(d); }

task<> dump_test_reader(int fd) {
  std::array<std::byte, 8> buf;
  (void)co_await coring::read_some(fd, buf);
}

}  // namespace

TEST_SUITE("runtime/dump_tasks") {
  TEST_CASE("dump_tasks lists each task with its name, what it awaits, and its await chain" *
            doctest::timeout(10)) {
    coring_test::test_pipe pipe;
    std::string report = coring::run([](int fd) -> task<std::string> {
      auto sleeper = coring::spawn(dump_test_middle(5s), "sleeper");
      auto reader = coring::spawn(dump_test_reader(fd), "reader");
      auto group = coring::spawn(
          []() -> task<> { (void)co_await coring::gather(dump_test_sleeper(5s), dump_test_sleeper(6s)); }(),
          "group");
      auto joiner =
          coring::spawn([](coring::join_handle<int>& h) -> task<> { (void)co_await h; }(sleeper), "joiner");
      coring::event ev;
      auto waiter = coring::spawn([](coring::event& ev) -> task<> { co_await ev.wait(); }(ev), "waiter");
      auto deadline =
          coring::spawn(coring::timeout(5s, []() -> task<> { co_await coring::sleep_for(10s); }), "deadline");
      co_await coring::sleep_for(10ms);
      waiter.cancel();  // cancelling: leaves its wait at once
      std::string r = coring::event_loop::current()->describe_tasks();
      reader.cancel();
      group.cancel();
      joiner.cancel();
      deadline.cancel();
      ev.set();
      for (auto* h : {&reader, &group, &joiner, &waiter, &deadline}) {
        try {
          co_await *h;
        } catch (const coring::cancelled&) {
        }
      }
      co_return r;
    }(pipe.read_fd()));
    CHECK(has(report, "live task(s)"));
    CHECK(has(report, "- task 'main'"));
    CHECK(has(report, "task 'sleeper'"));
    CHECK(has(report, "awaits sleep until +"));
    CHECK(has(report, "awaits read on fd " + std::to_string(pipe.read_fd())));
    CHECK(has(report, "task 'group'"));
    CHECK(has(report, "awaits a child set of 2"));
    CHECK(has(report, "task 'joiner'"));
    CHECK(has(report, "awaits join of task 'sleeper'"));
    CHECK(has(report, "task 'waiter'"));
    CHECK(has(report, "[cancelling]"));
    CHECK(has(report, "task 'deadline'"));
    CHECK(has(report, "awaits a child set of 1"));
    // The await chain, innermost first, by name (from the binary's symbol table).
    CHECK(has(report, "at (anonymous namespace)::dump_test_sleeper("));
    CHECK(has(report, "at (anonymous namespace)::dump_test_middle("));
    CHECK(has(report, "at (anonymous namespace)::dump_test_reader(int)"));
    const auto sleeper_at = report.find("at (anonymous namespace)::dump_test_sleeper(");
    const auto middle_at = report.find("at (anonymous namespace)::dump_test_middle(");
    CHECK(sleeper_at < middle_at);
    // A joined task is listed under its joiner, the children of a gather under it.
    const auto joiner_at = report.find("task 'joiner'");
    const auto sleeper_task_at = report.find("- task 'sleeper'");
    CHECK(joiner_at < sleeper_task_at);
    CHECK(has(report, "\n  - task 'sleeper'"));
  }

  TEST_CASE("dump_tasks describes futures, channels, shields and signals" * doctest::timeout(10)) {
    coring::thread_pool pool(1);
    std::promise<void> release;
    std::shared_future<void> gate = release.get_future().share();
    std::string report =
        coring::run([](coring::thread_pool& pool, std::shared_future<void> gate) -> task<std::string> {
          auto job = coring::spawn(
              [](coring::thread_pool& pool, std::shared_future<void> gate) -> task<> {
                co_await pool.submit([gate] { gate.wait(); });
              }(pool, gate),
              "job waiter");
          coring::channel<int> ch(1);
          auto receiver = coring::spawn(
              [](coring::channel<int>& ch) -> task<> { (void)co_await ch.receive(); }(ch), "receiver");
          auto shielded = coring::spawn(coring::shield(dump_test_sleeper(5s)), "shielding");
          auto sig =
              coring::spawn([]() -> task<> { (void)co_await coring::signal(SIGUSR1); }(), "signal waiter");
          co_await coring::sleep_for(10ms);
          std::string r = coring::event_loop::current()->describe_tasks();
          receiver.cancel();
          sig.cancel();
          for (auto* h : {&receiver, &sig}) {
            try {
              co_await *h;
            } catch (const coring::cancelled&) {
            }
          }
          co_return r;  // the shielded sleep and the job waiter end with the loop (its shutdown cancels every
                        // task)
        }(pool, gate));
    release.set_value();
    CHECK(has(report, "awaits future of job 0x"));
    CHECK(has(report, "(running)"));
    CHECK(has(report, "awaits receive on a channel (empty)"));
    CHECK(has(report, "awaits shield"));
    CHECK(has(report, "awaits signal SIGUSR1"));
    CHECK(has(report, "task 'coring: SIGUSR1 watcher'"));
  }

  TEST_CASE("dump_tasks_on(SIGUSR2) prints the report each time the signal arrives" * doctest::timeout(10)) {
    std::FILE* out = std::tmpfile();
    REQUIRE(out);
    coring::run([](std::FILE* out) -> task<> {
      auto dumper = coring::spawn(coring::dump_tasks_on(SIGUSR2, out), "dumper");
      auto sleeper = coring::spawn(dump_test_sleeper(5s), "busy sleeper");
      co_await coring::sleep_for(5ms);
      ::raise(SIGUSR2);
      co_await coring::sleep_for(20ms);
      dumper.cancel();
      sleeper.cancel();
      CHECK_THROWS_AS(co_await dumper, coring::cancelled);
      CHECK_THROWS_AS(co_await sleeper, coring::cancelled);
    }(out));
    std::rewind(out);
    std::string text;
    char buf[4096];
    while (std::size_t n = std::fread(buf, 1, sizeof buf, out)) text.append(buf, n);
    std::fclose(out);
    CHECK(has(text, "task 'busy sleeper'"));
    CHECK(has(text, "task 'dumper'"));  // the one printing: running
    CHECK(has(text, "at coring::dump_tasks_on(int"));
    CHECK(has(text, "task 'coring: SIGUSR2 watcher'"));
  }

}  // TEST_SUITE
