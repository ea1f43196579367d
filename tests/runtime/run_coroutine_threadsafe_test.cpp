#include <coring/run_coroutine_threadsafe.hpp>

#include <coring/loop_thread.hpp>
#include <coring/sleep.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <latch>
#include <random>
#include <stdexcept>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

coring::task<std::thread::id> where_and_after(std::chrono::milliseconds d) {
  co_await coring::sleep_for(d);
  co_return std::this_thread::get_id();
}

coring::task<int> fails() {
  co_await coring::sleep_for(1ms);
  throw std::invalid_argument("bad input to the loop task");
}

coring::task<int> marks(std::atomic<bool>& ran) {
  ran = true;
  co_return 1;
}

}  // namespace

TEST_SUITE("runtime/post") {

TEST_CASE("run_coroutine_threadsafe runs the task on the loop's thread and gives its value" * doctest::timeout(10)) {
  coring::loop_thread lt;
  coring::future<std::thread::id> f = coring::run_coroutine_threadsafe(lt.loop(), where_and_after(5ms));
  CHECK(f.get() == lt.get_id());
  CHECK(lt.get_id() != std::this_thread::get_id());
}

TEST_CASE("run_coroutine_threadsafe hands the task's exception to the future" * doctest::timeout(10)) {
  coring::loop_thread lt;
  auto f = coring::run_coroutine_threadsafe(lt.loop(), fails());
  CHECK_THROWS_WITH_AS((void)f.get(), "bad input to the loop task", std::invalid_argument);
}

TEST_CASE("run_coroutine_threadsafe fails the future if the loop closes before the task ran" * doctest::timeout(10)) {
  std::atomic<bool> ran{false};
  coring::future<int> f;
  {
    coring::event_loop loop;  // never runs: the posted hand-over is dropped when the loop closes
    f = coring::run_coroutine_threadsafe(loop, marks(ran));
  }
  CHECK_THROWS_AS((void)f.get(), coring::error);
  CHECK_FALSE(ran);
}

TEST_CASE("a run_coroutine_threadsafe future cancelled before the task started never runs it" * doctest::timeout(10)) {
  std::atomic<bool> ran{false};
  coring::loop_thread lt;
  std::latch cancelled{1};
  lt.post([&cancelled] { cancelled.wait(); });  // holds the loop until the future is cancelled
  auto f = coring::run_coroutine_threadsafe(lt.loop(), marks(ran));
  CHECK(f.cancel());
  cancelled.count_down();
  auto g = coring::run_coroutine_threadsafe(lt.loop(), where_and_after(1ms));
  (void)g.get();  // the loop has handled both hand-overs by now
  CHECK_FALSE(ran);
  CHECK_THROWS_AS((void)f.get(), coring::cancelled);
}

TEST_CASE("future.cancel() on a running run_coroutine_threadsafe task cancels it on its loop, at once"
          * doctest::timeout(10)) {
  coring::loop_thread lt;
  std::atomic<bool> started{false};
  std::atomic<int> cancellations{0};
  auto f = coring::run_coroutine_threadsafe(lt.loop(), [](std::atomic<bool>& started, std::atomic<int>& seen)
                                                           -> coring::task<int> {
    started = true;
    try {
      co_await coring::sleep_for(10s);
    } catch (const coring::cancelled&) {
      ++seen;
      throw;
    }
    co_return 1;
  }(started, cancellations));
  while (!started) std::this_thread::yield();
  const auto before = std::chrono::steady_clock::now();
  CHECK_FALSE(f.cancel());  // running: not stopped here, but on its loop
  REQUIRE(f.wait_for(5s));
  CHECK(std::chrono::steady_clock::now() - before < 2s);  // woke at once, not at the 10 s sleep
  CHECK_THROWS_AS((void)f.get(), coring::cancelled);
  CHECK(cancellations == 1);
}

TEST_CASE("a run_coroutine_threadsafe task that catches the cancellation gives its value to the future"
          * doctest::timeout(10)) {
  coring::loop_thread lt;
  std::atomic<bool> started{false};
  auto f = coring::run_coroutine_threadsafe(lt.loop(), [](std::atomic<bool>& started) -> coring::task<int> {
    started = true;
    try {
      co_await coring::sleep_for(10s);
    } catch (const coring::cancelled&) {
      co_return 9;
    }
    co_return 1;
  }(started));
  while (!started) std::this_thread::yield();
  (void)f.cancel();
  CHECK(f.get() == 9);
}

TEST_CASE("stress: cancel() racing with the end of run_coroutine_threadsafe tasks ends every future once"
          * doctest::timeout(30)) {
  coring::loop_thread lt;
  std::mt19937 rng(777);
  int values = 0;
  int cancelled = 0;
  for (int i = 0; i < 300; ++i) {
    const auto delay = std::chrono::microseconds(rng() % 300);
    auto f = coring::run_coroutine_threadsafe(lt.loop(), [](std::chrono::microseconds d) -> coring::task<int> {
      co_await coring::sleep_for(d);
      co_return 1;
    }(delay));
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 300));
    (void)f.cancel();
    REQUIRE(f.wait_for(5s));
    try {
      values += f.get();
    } catch (const coring::cancelled&) {
      ++cancelled;
    }
  }
  MESSAGE("values " << values << ", cancelled " << cancelled);
  CHECK(values + cancelled == 300);
}

TEST_CASE("a hand-over that runs while the loop shuts down ends its future with cancelled" * doctest::timeout(10)) {
  // The task arrives while ~event_loop drains: it is cancelled before its
  // body ran, and its future must end all the same (it used to stay pending
  // forever, and get() hung).
  std::atomic<bool> ran{false};
  coring::future<int> late;
  {
    coring::event_loop loop;
    loop.run_until_complete([](coring::event_loop& l, coring::future<int>& late, std::atomic<bool>& ran) -> coring::task<> {
      coring::spawn([](coring::event_loop& l, coring::future<int>& late, std::atomic<bool>& ran) -> coring::task<> {
        try {
          co_await coring::sleep_for(10s);
        } catch (const coring::cancelled&) {
          late = coring::run_coroutine_threadsafe(l, marks(ran));
        }
        co_await coring::sleep_for(1ms);  // the drain steps on: the hand-over runs now
      }(l, late, ran)).detach();
      co_await coring::yield();
    }(loop, late, ran));
  }
  REQUIRE(late.valid());
  REQUIRE(late.wait_for(2s));
  CHECK_THROWS_AS((void)late.get(), coring::cancelled);
  CHECK_FALSE(ran);
}

TEST_CASE("every run_coroutine_threadsafe future ends while its loop stops, whatever the timing"
          * doctest::timeout(60)) {
  // Another thread hands tasks over while the loop stops and shuts down.
  // Each future ends with its value, coring::cancelled (cancelled mid-body or
  // before it) or coring::error (the loop closed first) — none stays pending.
  int values = 0;
  int cancelled = 0;
  int closed = 0;
  for (int round = 0; round < 20; ++round) {
    std::promise<coring::event_loop*> ready;
    std::latch handed_over{1};
    std::thread owner([&] {
      coring::event_loop loop;
      ready.set_value(&loop);
      loop.run_forever();
      handed_over.wait();  // the loop object stays alive until the poster is done with it
    });                    // ~event_loop: cancels what runs, runs what arrived, closes the inbox
    coring::event_loop* loop = ready.get_future().get();
    std::vector<coring::future<int>> fs;
    for (int i = 0; i < 400; ++i) {
      fs.push_back(coring::run_coroutine_threadsafe(*loop, [](bool slow) -> coring::task<int> {
        if (slow) co_await coring::sleep_for(1ms);
        co_return 1;
      }(i % 2 == 1)));
      if (i == 200) loop->post([loop] { loop->stop(); });
    }
    handed_over.count_down();
    owner.join();
    for (auto& f : fs) {
      REQUIRE(f.wait_for(2s));
      try {
        values += f.get();
      } catch (const coring::cancelled&) {
        ++cancelled;
      } catch (const coring::error&) {
        ++closed;
      }
    }
  }
  MESSAGE("values " << values << ", cancelled " << cancelled << ", loop closed first " << closed);
  CHECK(values + cancelled + closed == 20 * 400);
}

}  // TEST_SUITE
