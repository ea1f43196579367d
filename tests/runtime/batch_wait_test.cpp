// event_loop::options::batch_wait: the kernel may hold a wake-up for up to
// batch_wait while it waits for a quarter of the operations in flight, but
// a lone completion, a timer, a cross-thread post and a cancellation still
// wake the loop, and an idle loop sleeps instead of waking every batch_wait.
#include <doctest/doctest.h>

#include <array>
#include <chrono>
#include <coring/event_loop.hpp>
#include <coring/gather.hpp>
#include <coring/io.hpp>
#include <coring/sleep.hpp>
#include <coring/spawn.hpp>
#include <coring/timeout.hpp>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "support/pipe.hpp"
#include "support/stopwatch.hpp"

using namespace std::chrono_literals;
using coring::task;
using coring_test::stopwatch;
using coring_test::test_pipe;

namespace {

constexpr int pipes = 16;  // in flight: enough for batching (8 or more)

task<std::string> read_string(int fd) {
  std::array<std::byte, 64> buf{};
  std::size_t n = co_await coring::read_some(fd, buf);
  co_return std::string(reinterpret_cast<const char*>(buf.data()), n);
}

coring::event_loop::options batched(std::chrono::microseconds wait) {
  coring::event_loop::options o;
  o.batch_wait = wait;
  return o;
}

// Reads on all of `p` (in flight together), each answered "x" after its writer's turn.
struct pipe_set {
  std::vector<std::unique_ptr<test_pipe>> p;
  pipe_set() {
    for (int i = 0; i < pipes; ++i) p.push_back(std::make_unique<test_pipe>());
  }
  std::vector<task<std::string>> reads() {
    std::vector<task<std::string>> t;
    for (auto& q : p) t.push_back(read_string(q->read_fd()));
    return t;
  }
  void write_all(std::string_view s) {
    for (auto& q : p) q->write_now(s);
  }
};

}  // namespace

TEST_SUITE("runtime/batch_wait") {
  TEST_CASE("batch_wait is off by default, capped at a second, and applies where the kernel has min-wait" *
            doctest::timeout(10)) {
    coring::event_loop plain;
    CHECK(plain.batch_wait() == 0us);
    coring::event_loop asked(batched(50us));
    CHECK((asked.batch_wait() == 50us || asked.batch_wait() == 0us));  // 0: the kernel lacks min-wait
    coring::event_loop capped(batched(5s));
    CHECK((capped.batch_wait() == 1s || capped.batch_wait() == 0us));
  }

  TEST_CASE("a lone completion among many reads in flight still wakes the loop, within batch_wait" *
            doctest::timeout(10)) {
    coring::event_loop loop(batched(40ms));
    pipe_set idle;  // 16 reads that complete only at the end
    test_pipe lone;
    stopwatch sw;
    std::thread writer([&lone] {
      std::this_thread::sleep_for(20ms);
      lone.write_now("lone");
    });
    std::string got = loop.run_until_complete([](pipe_set& s, test_pipe& l) -> task<std::string> {
      auto others = coring::spawn(coring::gather(s.reads()));
      std::string one = co_await read_string(l.read_fd());
      s.write_all("x");
      std::vector<std::string> rest = co_await std::move(others);
      CHECK(rest.size() == static_cast<std::size_t>(pipes));
      co_return one;
    }(idle, lone));
    writer.join();
    CHECK(got == "lone");
    CHECK(sw.elapsed() >= 20ms);
    CHECK(sw.elapsed() < 1s);
    // Where the kernel batches, it held the lone completion to the end of the
    // 40 ms window that began when the loop went to sleep.
    if (loop.batch_wait() != 0us) CHECK(sw.elapsed() >= 39ms);
  }

  TEST_CASE("timers due before the batch window ends fire on time" * doctest::timeout(10)) {
    coring::event_loop loop(batched(500ms));
    pipe_set idle;
    stopwatch sw;
    std::chrono::steady_clock::duration slept{};
    loop.run_until_complete([](pipe_set& s, std::chrono::steady_clock::duration& out) -> task<> {
      auto others = coring::spawn(coring::gather(s.reads()));
      stopwatch t;
      co_await coring::sleep_for(20ms);
      out = t.elapsed();
      s.write_all("x");
      co_await std::move(others);
    }(idle, slept));
    CHECK(slept >= 20ms);
    CHECK(slept < 300ms);  // not held to the 500 ms window
  }

  TEST_CASE("an idle loop with reads in flight sleeps, and a post from another thread wakes it" *
            doctest::timeout(10)) {
    coring::event_loop loop(batched(1ms));
    pipe_set idle;
    const auto waits_before = loop.stats().blocking_waits;
    std::thread poster([&loop, &idle] {
      std::this_thread::sleep_for(200ms);
      loop.post([&idle] { idle.write_all("x"); });
    });
    stopwatch sw;
    loop.run_until_complete([](pipe_set& s) -> task<> { co_await coring::gather(s.reads()); }(idle));
    poster.join();
    CHECK(sw.elapsed() >= 200ms);
    CHECK(sw.elapsed() < 2s);
    // 200 ms asleep: a handful of waits, not one per 1 ms window.
    CHECK(loop.stats().blocking_waits - waits_before < 20);
  }

  TEST_CASE("a cancelled read among many in flight ends within the batch window" * doctest::timeout(10)) {
    coring::event_loop loop(batched(50ms));
    pipe_set idle;
    test_pipe quiet;
    stopwatch sw;
    bool timed_out = loop.run_until_complete([](pipe_set& s, test_pipe& q) -> task<bool> {
      auto others = coring::spawn(coring::gather(s.reads()));
      bool expired = false;
      std::array<std::byte, 16> buf{};
      try {
        (void)co_await coring::read_some(q.read_fd(), buf, {.timeout = 10ms});
      } catch (const coring::timeout_error&) {
        expired = true;
      }
      s.write_all("x");
      co_await std::move(others);
      co_return expired;
    }(idle, quiet));
    CHECK(timed_out);
    CHECK(sw.elapsed() >= 10ms);
    CHECK(sw.elapsed() < 1s);
  }

  TEST_CASE("coring::run passes its loop options on" * doctest::timeout(10)) {
    coring::run_options o;
    o.handle_sigint = false;
    o.loop.batch_wait = 30us;
    const auto applied = coring::run(
        []() -> task<std::chrono::microseconds> { co_return coring::event_loop::current()->batch_wait(); }(), o);
    CHECK((applied == 30us || applied == 0us));
  }
}
