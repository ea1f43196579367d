// Cancelling a task that awaits a future (a thread-pool job, a future from
// run_coroutine_threadsafe, the as_completed_indices stream): one
// cancellation, delivered once, whatever stage the job is at — queued,
// running, or finishing just as the cancel comes.

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <coring/error.hpp>
#include <coring/event_loop.hpp>
#include <coring/future.hpp>
#include <coring/future_as_completed.hpp>
#include <coring/run_coroutine_threadsafe.hpp>
#include <coring/sleep.hpp>
#include <coring/spawn.hpp>
#include <coring/task.hpp>
#include <coring/thread_pool.hpp>
#include <future>
#include <random>
#include <thread>
#include <vector>

#include "support/cancel_once.hpp"

namespace {

using namespace std::chrono_literals;
using coring::task;
using coring_test::expect_cancelled_once;

// A gate a job can wait on (std::promise's shared state is thread safe).
struct gate {
  std::promise<void> p;
  std::shared_future<void> f = p.get_future().share();
  void open() { p.set_value(); }
};

}  // namespace

TEST_SUITE("runtime/future_cancellation") {
  TEST_CASE("a task awaiting a queued thread-pool job gets one cancellation and the job never runs" *
            doctest::timeout(10)) {
    coring::thread_pool pool(1);
    gate busy;
    auto blocker = pool.submit([f = busy.f] { f.wait(); });
    std::atomic<bool> queued_ran{false};
    coring::future<int> queued = pool.submit([&] {
      queued_ran = true;
      return 1;
    });
    expect_cancelled_once([&]() -> task<> { (void)co_await queued; });
    busy.open();
    blocker.get();
    pool.shutdown();
    CHECK_FALSE(queued_ran.load());
    CHECK(queued.ready());
  }

  TEST_CASE("a task awaiting a running thread-pool job gets one cancellation and stops waiting at once" *
            doctest::timeout(10)) {
    coring::thread_pool pool(1);
    gate release;
    std::atomic<bool> started{false};
    coring::future<int> running = pool.submit([&, f = release.f] {
      started = true;
      f.wait();
      return 2;
    });
    while (!started) std::this_thread::yield();
    expect_cancelled_once([&]() -> task<> { (void)co_await running; });
    release.open();
    CHECK(running.get() == 2);  // a running job is not interrupted; its value is still there
  }

  TEST_CASE("a task awaiting a run_coroutine_threadsafe future gets one cancellation" *
            doctest::timeout(10)) {
    std::promise<coring::event_loop*> ready;
    std::thread owner([&] {
      coring::event_loop loop;
      ready.set_value(&loop);
      loop.run_forever();
    });
    coring::event_loop* other = ready.get_future().get();
    std::atomic<bool> started{false}, remote_cancelled{false};
    auto f = coring::run_coroutine_threadsafe(
        *other, [](std::atomic<bool>& started, std::atomic<bool>& remote_cancelled) -> task<int> {
          started = true;
          try {
            co_await coring::sleep_for(300ms);
          } catch (const coring::cancelled&) {
            remote_cancelled = true;
            throw;
          }
          co_return 3;
        }(started, remote_cancelled));
    while (!started) std::this_thread::yield();
    expect_cancelled_once([&]() -> task<> { (void)co_await f; });
    // Cancelling the awaiter cancels the future, and that cancels the task on
    // its own loop (as asyncio's future.cancel() does): it ends cancelled. (The
    // awaiter may have taken that end as its cancellation, so only wait here.)
    f.wait();
    CHECK(remote_cancelled);
    other->post([other] { other->stop(); });
    owner.join();
  }

  TEST_CASE("a task awaiting as_completed_indices gets one cancellation" * doctest::timeout(10)) {
    coring::thread_pool pool(1);
    gate release;
    std::vector<coring::future<int>> fs;
    fs.push_back(pool.submit([f = release.f] {
      f.wait();
      return 4;
    }));
    auto done = coring::as_completed_indices(fs);
    expect_cancelled_once([&]() -> task<> { (void)co_await done.next(); });
    release.open();
    CHECK(fs[0].get() == 4);
  }

  TEST_CASE("a running job that its executor ends with coring::cancelled inside the cancel: one cancellation" *
            doctest::timeout(10)) {
    // As a process pool's manager may do: the cancel hook kills the worker and
    // the job ends with coring::cancelled before the awaiting task has stopped
    // waiting, so the job's own outcome carries the cancellation.
    auto* st = new coring::detail::future_state<int>();  // two references: the future's and ours
    st->on_cancel_running(
        [](coring::detail::future_state_base* s, void*) noexcept {
          s->fail(std::make_exception_ptr(coring::cancelled{}));
        },
        nullptr);
    REQUIRE(st->start());
    coring::future<int> f(st);
    expect_cancelled_once([&]() -> task<> { (void)co_await f; });
    CHECK(f.ready());
    st->release();
  }

  TEST_CASE("cancelled just as the job completes: exactly one outcome, the cancellation delivered once" *
            doctest::timeout(60)) {
    // Jittered race between a job finishing and the awaiting task being
    // cancelled. Whichever wins, the task sees the value or coring::cancelled
    // at the await, and a cancellation that came after the value is delivered
    // at the next suspension: exactly one coring::cancelled in all, never two.
    coring::thread_pool pool(2);
    std::mt19937 rng(20261130);
    int values = 0;
    int cancelled_at_await = 0;
    int cancelled_after = 0;
    const int rounds = 400;
    for (int round = 0; round < rounds; ++round) {
      const auto job_us = std::chrono::microseconds(rng() % 300);
      const auto cancel_us = std::chrono::microseconds(rng() % 300);
      struct counts {
        bool submitted = false;
        int cancels = 0;
        bool value = false;
        bool cleanup = false;
      } c;
      coring::run([](coring::thread_pool& pool, std::chrono::microseconds job_us,
                     std::chrono::microseconds cancel_us, counts& c) -> task<> {
        auto victim = coring::spawn(
            [](coring::thread_pool& pool, std::chrono::microseconds job_us, counts& c) -> task<> {
              auto f = pool.submit([job_us] {
                std::this_thread::sleep_for(job_us);
                return 5;
              });
              c.submitted = true;
              try {
                c.value = (co_await f) == 5;
              } catch (const coring::cancelled&) {
                ++c.cancels;
              }
              for (int k = 0; k < 3; ++k) {  // the cancellation, if not yet delivered, lands at one of these
                try {
                  co_await coring::sleep_for(0ms);
                } catch (const coring::cancelled&) {
                  ++c.cancels;
                }
              }
              c.cleanup = true;
            }(pool, job_us, c));
        while (!c.submitted) co_await coring::yield();
        co_await coring::sleep_for(cancel_us);
        victim.cancel();
        co_await victim;
      }(pool, job_us, cancel_us, c));
      CHECK(c.cancels <= 1);               // never delivered twice
      CHECK((c.value || c.cancels == 1));  // the value, or the cancellation: never neither
      CHECK(c.cleanup);
      if (c.value) ++values;
      if (c.cancels == 1 && !c.value) ++cancelled_at_await;
      if (c.cancels == 1 && c.value) ++cancelled_after;
    }
    MESSAGE("values " << values << ", cancelled at the await " << cancelled_at_await << ", after the value "
                      << cancelled_after);
    CHECK(values + cancelled_at_await == rounds);
  }

}  // TEST_SUITE
