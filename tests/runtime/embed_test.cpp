// Embedding: a host's poll loop drives an event_loop through fd(),
// next_timeout() and run_once(). Each kind of work must make fd() readable
// promptly: the host sleeps in poll() with a 2 s timeout while the loop is
// otherwise idle, and a missed wake-up shows as the whole 2 s. Then
// run_once() must not block, and a host loop must not spin.

#include <coring/event_loop.hpp>

#include <doctest/doctest.h>

#include <coring/error.hpp>
#include <coring/event.hpp>
#include <coring/future.hpp>
#include <coring/io.hpp>
#include <coring/process_pool.hpp>
#include <coring/run_coroutine_threadsafe.hpp>
#include <coring/sleep.hpp>
#include <coring/spawn.hpp>
#include <coring/task.hpp>
#include <coring/thread_pool.hpp>

#include "support/pipe.hpp"
#include "support/stopwatch.hpp"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <latch>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using coring::task;
using coring_test::stopwatch;

// The host's timeout while it waits for one event; "well before" is under half.
constexpr auto host_timeout = 2000ms;
constexpr auto well_before = 1000ms;

int ceil_ms(std::chrono::nanoseconds d) {
  return static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(d).count());
}

// Runs the loop until it is idle and fd() is armed (next_timeout() is not
// zero), as a host does before it sleeps. Returns next_timeout().
std::optional<std::chrono::nanoseconds> settle(coring::event_loop& loop) {
  for (int i = 0; i < 1000; ++i) {
    auto t = loop.next_timeout();
    if (!t || *t > 0ns) return t;
    loop.run_once();
  }
  FAIL("the loop never became idle");
  return std::nullopt;
}

// The host sleeps on fd() alone (nothing else is due: no timer) for at most
// host_timeout. Checks that fd() became readable well before that, then that
// the run_once() the host calls for it returns at once. Returns the sleep.
std::chrono::nanoseconds host_sleeps_until_readable(coring::event_loop& loop) {
  REQUIRE_FALSE(settle(loop).has_value());  // only fd() can bring the work
  pollfd p{loop.fd(), POLLIN, 0};
  stopwatch sw;
  const int r = ::poll(&p, 1, static_cast<int>(host_timeout.count()));
  const auto slept = sw.elapsed();
  CHECK_MESSAGE(r == 1, "fd() never became readable: a missed wake-up");
  CHECK(slept < well_before);
  sw.restart();
  loop.run_once();
  CHECK(sw.elapsed() < 500ms);  // called because fd() was readable: it must not block
  return slept;
}

// Runs the loop as a host would (poll fd() for next_timeout(), run_once)
// until `done()` or `limit` passes; returns the host's iterations.
template <class Done>
int host_loop_until(coring::event_loop& loop, Done done, std::chrono::milliseconds limit) {
  stopwatch sw;
  int iterations = 0;
  while (!done() && sw.elapsed() < limit) {
    auto t = loop.next_timeout();
    pollfd p{loop.fd(), POLLIN, 0};
    ::poll(&p, 1, t ? ceil_ms(*t) : static_cast<int>(host_timeout.count()));
    loop.run_once();
    ++iterations;
  }
  return iterations;
}

task<std::string> read_text(int fd, coring::io_options opts = {}) {
  std::array<std::byte, 64> buf{};
  std::size_t n = co_await coring::read_some(fd, buf, opts);
  co_return std::string(reinterpret_cast<const char*>(buf.data()), n);
}

// What a read ended with: its text, "timeout", or "cancelled".
task<std::string> read_outcome(int fd, coring::io_options opts = {}) {
  try {
    co_return co_await read_text(fd, opts);
  } catch (const coring::timeout_error&) {
    co_return "timeout";
  } catch (const coring::cancelled&) {
    co_return "cancelled";
  }
}

int sleep_then_square(int x) {
  std::this_thread::sleep_for(50ms);
  return x * x;
}

int square_in_worker(int x) {
  ::usleep(50'000);
  return x * x;
}

}  // namespace

TEST_SUITE("runtime/embedding") {

TEST_CASE("a new loop is armed at once: next_timeout says wait for fd, and fd is not readable" *
          doctest::timeout(5)) {
  coring::event_loop loop;
  CHECK_FALSE(loop.next_timeout().has_value());
  pollfd p{loop.fd(), POLLIN, 0};
  CHECK(::poll(&p, 1, 0) == 0);
}

TEST_CASE("fd becomes readable well before the timeout when the kernel times a ring read out" *
          doctest::timeout(10)) {
  // No other thread: the read's linked timeout fires in the kernel 50 ms in,
  // and its completion is deferred task work that only fd() announces.
  coring_test::test_pipe pipe;
  coring::event_loop loop;
  auto reader = coring::spawn(read_outcome(pipe.read_fd(), {.timeout = 50ms}));
  const auto slept = host_sleeps_until_readable(loop);
  CHECK(slept >= 40ms);
  for (int i = 0; i < 10 && !reader.done(); ++i) loop.run_once();
  REQUIRE(reader.done());
  CHECK(reader.get() == "timeout");
}

TEST_CASE("a ring read that completes before its own timeout leaves nothing behind: the host sleeps" *
          doctest::timeout(10)) {
  // The linked timeout's cancellation is kernel work of an SQE the loop does
  // not track; a loop that waited for "its" operations only would never
  // reap it and tell the host to come back at once, forever (a spin).
  coring_test::test_pipe pipe;
  coring::event_loop loop;
  auto reader = coring::spawn(read_outcome(pipe.read_fd(), {.timeout = 5s}));
  REQUIRE_FALSE(settle(loop).has_value());
  pipe.write_now("in time");
  host_sleeps_until_readable(loop);
  for (int i = 0; i < 10 && !reader.done(); ++i) loop.run_once();
  REQUIRE(reader.done());
  CHECK(reader.get() == "in time");
  const auto steps = loop.stats().steps;
  CHECK_FALSE(settle(loop).has_value());
  CHECK(loop.stats().steps - steps < 10);
  pollfd p{loop.fd(), POLLIN, 0};
  CHECK(::poll(&p, 1, 100) == 0);  // idle: nothing makes fd() readable
}

TEST_CASE("a timer is announced by next_timeout, and the run_once after it fires it" * doctest::timeout(10)) {
  coring::event_loop loop;
  bool woke = false;
  coring::spawn([](bool& woke) -> task<> {
    co_await coring::sleep_for(30ms);
    woke = true;
  }(woke)).detach();
  auto t = settle(loop);
  REQUIRE(t.has_value());
  CHECK(*t <= 30ms);
  pollfd p{loop.fd(), POLLIN, 0};
  CHECK(::poll(&p, 1, ceil_ms(*t)) == 0);  // a timer does not make fd() readable: the host's timeout does it
  loop.run_once();
  CHECK(woke);
}

TEST_CASE("host code that cancels a task in a ring read makes next_timeout zero, the next run_once ends it" *
          doctest::timeout(10)) {
  coring_test::test_pipe pipe;
  coring::event_loop loop;
  auto reader = coring::spawn(read_outcome(pipe.read_fd()));
  REQUIRE_FALSE(settle(loop).has_value());
  reader.cancel();  // from the host, between run_once calls: the cancel SQE waits to be submitted
  auto t = loop.next_timeout();
  REQUIRE(t.has_value());
  CHECK(*t == 0ns);
  for (int i = 0; i < 10 && !reader.done(); ++i) loop.run_once();
  REQUIRE(reader.done());
  CHECK(reader.get() == "cancelled");
  pipe.write_now("x");  // the cancelled read took nothing
  char c = 0;
  CHECK(::read(pipe.read_fd(), &c, 1) == 1);
}

TEST_CASE("host code that spawns a task between run_once calls makes next_timeout zero" * doctest::timeout(5)) {
  coring::event_loop loop;
  REQUIRE_FALSE(settle(loop).has_value());
  bool ran = false;
  coring::spawn([](bool& ran) -> task<> {
    ran = true;
    co_return;
  }(ran)).detach();
  auto t = loop.next_timeout();
  REQUIRE(t.has_value());
  CHECK(*t == 0ns);
  loop.run_once();
  CHECK(ran);
  CHECK_FALSE(loop.next_timeout().has_value());
}

TEST_CASE("run_once returns after its slice while coroutines keep the loop busy, and next_timeout says zero" *
          doctest::timeout(10)) {
  coring::event_loop loop({.run_once_slice = 2ms});
  bool stop = false;
  std::uint64_t yields = 0;
  coring::spawn([](bool& stop, std::uint64_t& yields) -> task<> {
    while (!stop) {
      co_await coring::yield();
      ++yields;
    }
  }(stop, yields)).detach();
  const auto steps_before = loop.stats().steps;
  stopwatch sw;
  loop.run_once();
  CHECK(sw.elapsed() < 1s);                            // it came back to the host...
  CHECK(loop.stats().steps - steps_before > 100);      // ...after many steps, not one
  CHECK(yields > 100);
  auto t = loop.next_timeout();
  REQUIRE(t.has_value());
  CHECK(*t == 0ns);
  stop = true;
  loop.run_once();
}

TEST_CASE("run_once without an argument never blocks, whatever is pending" * doctest::timeout(10)) {
  coring_test::test_pipe pipe;
  coring::event_loop loop;
  auto reader = coring::spawn(read_outcome(pipe.read_fd()));
  coring::spawn([]() -> task<> { co_await coring::sleep_for(10s); }()).detach();
  for (int i = 0; i < 50; ++i) {
    stopwatch sw;
    loop.run_once();
    CHECK(sw.elapsed() < 200ms);
  }
  CHECK_FALSE(reader.done());
  reader.cancel();
  for (int i = 0; i < 10 && !reader.done(); ++i) loop.run_once();
  CHECK(reader.get() == "cancelled");
}

TEST_CASE("after run_until_complete blocked in the ring, next_timeout re-arms fd for the host" *
          doctest::timeout(10)) {
  coring_test::test_pipe pipe;
  coring::event_loop loop;
  auto reader = coring::spawn(read_outcome(pipe.read_fd(), {.timeout = 50ms}));
  // Blocks in the ring (a native park turns the kernel's signals off).
  loop.run_until_complete([]() -> task<> { co_await coring::sleep_for(5ms); }());
  CHECK_FALSE(reader.done());
  host_sleeps_until_readable(loop);
  for (int i = 0; i < 10 && !reader.done(); ++i) loop.run_once();
  REQUIRE(reader.done());
  CHECK(reader.get() == "timeout");
}

}  // TEST_SUITE

// Other threads are involved: the tsan preset runs suites named runtime/post*.
TEST_SUITE("runtime/post/embedding") {

TEST_CASE("fd becomes readable well before the timeout when a pipe read completes 50 ms in" *
          doctest::timeout(10)) {
  coring_test::test_pipe pipe;
  coring::event_loop loop;
  auto reader = coring::spawn(read_outcome(pipe.read_fd()));
  REQUIRE_FALSE(settle(loop).has_value());
  std::thread writer([&pipe] {
    std::this_thread::sleep_for(50ms);
    pipe.write_now("ping");
  });
  host_sleeps_until_readable(loop);
  writer.join();
  for (int i = 0; i < 10 && !reader.done(); ++i) loop.run_once();
  REQUIRE(reader.done());
  CHECK(reader.get() == "ping");
}

TEST_CASE("fd becomes readable well before the timeout when a thread-pool job the loop awaits ends" *
          doctest::timeout(10)) {
  coring::thread_pool pool(1);
  coring::event_loop loop;
  auto job = coring::spawn([](coring::thread_pool& pool) -> task<int> {
    co_return co_await pool.submit(sleep_then_square, 7);
  }(pool));
  host_sleeps_until_readable(loop);
  for (int i = 0; i < 10 && !job.done(); ++i) loop.run_once();
  REQUIRE(job.done());
  CHECK(job.get() == 49);
}

TEST_CASE("fd becomes readable well before the timeout when a process-pool job the loop awaits ends" *
          doctest::timeout(20)) {
  coring::process_pool pool({.workers = 1});
  coring::event_loop loop;
  // Start the worker first, so that the wait below is the job's 50 ms.
  (void)pool.submit(square_in_worker, 1).get();
  auto job = coring::spawn([](coring::process_pool& pool) -> task<int> {
    co_return co_await pool.submit(square_in_worker, 8);
  }(pool));
  host_sleeps_until_readable(loop);
  for (int i = 0; i < 10 && !job.done(); ++i) loop.run_once();
  REQUIRE(job.done());
  CHECK(job.get() == 64);
}

TEST_CASE("fd becomes readable well before the timeout when another thread posts a function" *
          doctest::timeout(10)) {
  coring::event_loop loop;
  std::atomic<bool> ran{false};
  REQUIRE_FALSE(settle(loop).has_value());
  std::thread poster([&] {
    std::this_thread::sleep_for(50ms);
    loop.post([&ran] { ran = true; });
  });
  host_sleeps_until_readable(loop);
  poster.join();
  CHECK(ran);
}

TEST_CASE("fd becomes readable well before the timeout when run_coroutine_threadsafe hands the loop a task" *
          doctest::timeout(10)) {
  coring::event_loop loop;
  REQUIRE_FALSE(settle(loop).has_value());
  coring::future<int> f;
  std::thread client([&] {
    std::this_thread::sleep_for(50ms);
    f = coring::run_coroutine_threadsafe(loop, []() -> task<int> { co_return 5; }());
  });
  host_sleeps_until_readable(loop);
  client.join();
  for (int i = 0; i < 10 && !f.ready(); ++i) loop.run_once();
  REQUIRE(f.ready());
  CHECK(f.get() == 5);
}

TEST_CASE("fd becomes readable well before the timeout when another thread cancels a job the loop awaits" *
          doctest::timeout(10)) {
  // The pool's only worker is busy, so the awaited job is still queued when
  // the other thread cancels its future: the awaiting task learns it through fd().
  coring::thread_pool pool(1);
  std::latch release{1};
  auto blocker = pool.submit([&release] { release.wait(); });
  coring::event_loop loop;
  coring::future<int> queued = pool.submit(sleep_then_square, 3);
  auto waiter = coring::spawn([](coring::future<int>& f) -> task<std::string> {
    try {
      co_return std::to_string(co_await f);
    } catch (const coring::cancelled&) {
      co_return "cancelled";
    }
  }(queued));
  REQUIRE_FALSE(settle(loop).has_value());
  std::atomic<bool> cancelled_in_time{false};
  std::thread canceller([&queued, &cancelled_in_time] {
    std::this_thread::sleep_for(50ms);
    cancelled_in_time = queued.cancel();  // still queued: it will never run
  });
  host_sleeps_until_readable(loop);
  canceller.join();
  CHECK(cancelled_in_time);
  for (int i = 0; i < 10 && !waiter.done(); ++i) loop.run_once();
  REQUIRE(waiter.done());
  CHECK(waiter.get() == "cancelled");
  release.count_down();
  blocker.get();
}

TEST_CASE("a cancellation posted from another thread ends a task in a ring read after one wake-up" *
          doctest::timeout(10)) {
  coring_test::test_pipe pipe;
  coring::event_loop loop;
  auto reader = coring::spawn(read_outcome(pipe.read_fd()));
  REQUIRE_FALSE(settle(loop).has_value());
  std::thread canceller([&loop, &reader] {
    std::this_thread::sleep_for(50ms);
    loop.post([&reader] { reader.cancel(); });
  });
  host_sleeps_until_readable(loop);  // its run_once runs the post, sends the cancel and reaps it
  canceller.join();
  REQUIRE(reader.done());
  CHECK(reader.get() == "cancelled");
}

TEST_CASE("a host loop driving ring I/O, timers, pool results and posts finishes them all and never spins" *
          doctest::timeout(30)) {
  // The workload of issue 10, which stalled: ring reads fed by another
  // thread, timers, 50 thread-pool results and 100 posts from another
  // thread. Each event needs at most one host iteration (several may share
  // one); a host that spins would count thousands in the ~0.5 s this takes.
  constexpr int pipe_messages = 20, sleeps = 20, pool_jobs = 50, posts = 100;
  coring_test::test_pipe pipe;
  coring::thread_pool pool(2);
  coring::event_loop loop;
  int read_count = 0, slept = 0, pooled = 0;
  std::atomic<int> posted{0};
  coring::spawn([](int fd, int& n) -> task<> {
    for (int i = 0; i < pipe_messages; ++i) {
      std::array<std::byte, 1> b{};
      if (co_await coring::read_some(fd, b, {.timeout = 5s}) == 1) ++n;  // each with a linked timeout
    }
  }(pipe.read_fd(), read_count)).detach();
  coring::spawn([](int& n) -> task<> {
    for (int i = 0; i < sleeps; ++i) {
      co_await coring::sleep_for(10ms);
      ++n;
    }
  }(slept)).detach();
  coring::spawn([](coring::thread_pool& pool, int& n) -> task<> {
    for (int i = 0; i < pool_jobs; ++i) {
      if (co_await pool.submit([i] {
            std::this_thread::sleep_for(3ms);
            return i;
          }) == i)
        ++n;
    }
  }(pool, pooled)).detach();
  std::thread feeder([&] {
    for (int i = 0; i < std::max(pipe_messages, posts); ++i) {
      std::this_thread::sleep_for(2ms);
      if (i < pipe_messages) pipe.write_now("x");
      if (i < posts) loop.post([&posted] { posted.fetch_add(1); });
    }
  });
  const int iterations = host_loop_until(
      loop, [&] { return read_count == pipe_messages && slept == sleeps && pooled == pool_jobs && posted == posts; },
      10s);
  feeder.join();
  MESSAGE("host iterations: " << iterations << ", host parks: " << loop.stats().host_parks
                              << ", eventfd writes: " << loop.stats().wakeups);
  CHECK(read_count == pipe_messages);
  CHECK(slept == sleeps);
  CHECK(pooled == pool_jobs);
  CHECK(posted == posts);
  CHECK(iterations <= 2 * (pipe_messages + sleeps + pool_jobs + posts));
  // Nothing here keeps the loop busy for a whole slice, so each iteration
  // should end with the loop idle and fd() armed (a host park); a loop that
  // sends its host back at once without work shows up here.
  CHECK(iterations <= static_cast<int>(loop.stats().host_parks) + 10);
  CHECK(loop.stats().wakeups <= loop.stats().host_parks + loop.stats().blocking_waits);
}

TEST_CASE("wake-ups racing with the host's park are never lost (random mix, fixed seed)" * doctest::timeout(120)) {
  // Another thread makes one event at a random moment around the host's
  // park; each must wake the host well before its timeout. CORING_STRESS=1
  // runs it long.
  const int rounds = std::getenv("CORING_STRESS") ? 5000 : 150;
  std::mt19937 rng(10);
  coring_test::test_pipe pipe;
  coring::thread_pool pool(1);
  coring::event_loop loop;
  int lost = 0;
  for (int round = 0; round < rounds; ++round) {
    const int kind = static_cast<int>(rng() % 3);
    const auto delay = std::chrono::microseconds(rng() % 300);
    bool done = false;
    std::atomic<bool> posted{false};
    coring::join_handle<void> waiter;
    if (kind == 0) {
      waiter = coring::spawn([](int fd, bool& done) -> task<> {
        std::array<std::byte, 1> b{};
        (void)co_await coring::read_some(fd, b);
        done = true;
      }(pipe.read_fd(), done));
    } else if (kind == 1) {
      waiter = coring::spawn([](coring::thread_pool& pool, std::chrono::microseconds d, bool& done) -> task<> {
        co_await pool.submit([d] { std::this_thread::sleep_for(d); });
        done = true;
      }(pool, delay, done));
    }
    loop.run_once();  // starts the waiter: its read or job is now in flight
    std::thread actor([&] {
      std::this_thread::sleep_for(delay);
      if (kind == 0) pipe.write_now("x");
      if (kind == 2) loop.post([&posted] { posted = true; });
    });
    stopwatch sw;
    auto finished = [&] { return kind == 2 ? posted.load() : done; };
    while (!finished() && sw.elapsed() < 3s) {
      auto t = loop.next_timeout();
      pollfd p{loop.fd(), POLLIN, 0};
      ::poll(&p, 1, t ? ceil_ms(*t) : static_cast<int>(host_timeout.count()));
      loop.run_once();
    }
    actor.join();
    if (!finished() || sw.elapsed() >= well_before) ++lost;
  }
  CHECK(lost == 0);
}

TEST_CASE("at most one eventfd write per park while a host holds the loop under a storm of posts" *
          doctest::timeout(30)) {
  coring::event_loop loop;
  constexpr int posts_per_thread = 20'000;
  std::atomic<int> ran{0};
  std::vector<std::thread> posters;
  for (int t = 0; t < 2; ++t)
    posters.emplace_back([&] {
      for (int i = 0; i < posts_per_thread; ++i) loop.post([&ran] { ran.fetch_add(1, std::memory_order_relaxed); });
    });
  host_loop_until(loop, [&] { return ran.load() == 2 * posts_per_thread; }, 20s);
  for (auto& p : posters) p.join();
  const auto s = loop.stats();
  MESSAGE("posts: " << 2 * posts_per_thread << ", eventfd writes: " << s.wakeups << ", host parks: " << s.host_parks);
  CHECK(ran.load() == 2 * posts_per_thread);
  CHECK(s.wakeups <= s.host_parks + s.blocking_waits);
}

}  // TEST_SUITE
