// coring::channel<T>: plain threads and other loops feed one task on a loop.
// Order, bounds, close, cancellation (exactly once, never losing a value),
// and a stress case counting every value once.

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <coring/channel.hpp>
#include <coring/current_task.hpp>
#include <coring/error.hpp>
#include <coring/event_loop.hpp>
#include <coring/gather.hpp>
#include <coring/run_coroutine_threadsafe.hpp>
#include <coring/sleep.hpp>
#include <coring/spawn.hpp>
#include <coring/task.hpp>
#include <cstdlib>
#include <future>
#include <latch>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "support/cancel_once.hpp"
#include "support/stopwatch.hpp"

namespace {

using namespace std::chrono_literals;
using coring::task;
using coring_test::stopwatch;

std::size_t scaled(std::size_t quick, std::size_t full) {
  return std::getenv("CORING_STRESS") ? full : quick;
}

// An event loop running on its own thread until the object dies.
class loop_on_thread {
 public:
  loop_on_thread() {
    thread_ = std::thread([this] {
      coring::event_loop loop;
      loop_ = &loop;
      started_.count_down();
      loop.run_forever();
    });
    started_.wait();
  }
  ~loop_on_thread() {
    loop_->post([l = loop_] { l->stop(); });
    thread_.join();
  }
  coring::event_loop& loop() { return *loop_; }

 private:
  std::latch started_{1};
  coring::event_loop* loop_ = nullptr;
  std::thread thread_;
};

// Receives until the channel is closed and drained.
task<std::vector<int>> drain(coring::channel<int>& ch) {
  std::vector<int> out;
  while (auto v = co_await ch.receive()) out.push_back(*v);
  co_return out;
}

}  // namespace

TEST_SUITE("runtime/channel") {
  TEST_CASE("values come out in order, after close the queued ones, then nullopt, a send after close throws" *
            doctest::timeout(5)) {
    coring::channel<int> ch(4);
    std::vector<int> got = coring::run([](coring::channel<int>& ch) -> task<std::vector<int>> {
      auto producer = coring::spawn([](coring::channel<int>& ch) -> task<> {
        for (int i = 0; i < 10; ++i) co_await ch.send(int{i});  // waits whenever 4 are queued
        ch.close();
      }(ch));
      std::vector<int> out = co_await drain(ch);
      co_await producer;
      CHECK_FALSE((co_await ch.receive()).has_value());
      CHECK_THROWS_AS(co_await ch.send(1), coring::channel_closed);
      co_return out;
    }(ch));
    CHECK(got == std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
    CHECK_THROWS_AS((void)ch.try_send(1), coring::channel_closed);
  }

  TEST_CASE("a plain thread's blocking_send feeds the loop and blocks while the channel is full" *
            doctest::timeout(10)) {
    coring::channel<int> ch(2);
    std::atomic<int> sent{0};
    std::thread producer([&] {
      for (int i = 0; i < 6; ++i) {
        ch.blocking_send(i);
        ++sent;
      }
      ch.close();
    });
    std::vector<int> got =
        coring::run([](coring::channel<int>& ch, std::atomic<int>& sent) -> task<std::vector<int>> {
          co_await coring::sleep_for(30ms);  // nobody receives: the producer fills the channel and blocks
          CHECK(sent.load() == 2);
          CHECK(ch.size() == 2);
          co_return co_await drain(ch);
        }(ch, sent));
    producer.join();
    CHECK(got == std::vector<int>{0, 1, 2, 3, 4, 5});
  }

  TEST_CASE("a receive waiting on an empty channel wakes as soon as a thread sends, not later" *
            doctest::timeout(10)) {
    coring::channel<std::string> ch(1);
    stopwatch sw;
    std::thread producer([&] {
      std::this_thread::sleep_for(20ms);
      ch.blocking_send("hello");
    });
    std::string got = coring::run([](coring::channel<std::string>& ch) -> task<std::string> {
      auto v = co_await ch.receive();
      co_return *v;
    }(ch));
    producer.join();
    CHECK(got == "hello");
    CHECK(sw.elapsed() >= 20ms);
    CHECK(sw.elapsed() < 1s);
  }

  TEST_CASE("a coroutine on another loop sends without blocking its own loop" * doctest::timeout(10)) {
    coring::channel<int> ch(1);
    loop_on_thread other;
    std::atomic<int> ticks{0};
    // On the other loop: a sender that waits (the channel is full) and a ticker that keeps running meanwhile.
    auto ticker = coring::run_coroutine_threadsafe(other.loop(), [](std::atomic<int>& ticks) -> task<> {
      for (int i = 0; i < 20; ++i) {
        co_await coring::sleep_for(1ms);
        ++ticks;
      }
    }(ticks));
    auto sender = coring::run_coroutine_threadsafe(other.loop(), [](coring::channel<int>& ch) -> task<> {
      for (int i = 0; i < 3; ++i) co_await ch.send(int{i});
      ch.close();
    }(ch));
    ticker.get();  // ran to its end while the sender waited for room
    CHECK(ticks.load() == 20);
    std::vector<int> got = coring::run(drain(ch));
    sender.get();
    CHECK(got == std::vector<int>{0, 1, 2});
  }

  TEST_CASE(
      "close wakes waiting senders (thread and coroutine) with channel_closed; their values stay theirs" *
      doctest::timeout(10)) {
    coring::channel<int> ch(1);
    CHECK(ch.try_send(0));
    std::atomic<bool> thread_closed{false};
    std::thread blocked([&] {
      try {
        ch.blocking_send(1);
      } catch (const coring::channel_closed&) {
        thread_closed = true;
      }
    });
    coring::run([](coring::channel<int>& ch) -> task<> {
      auto value = std::make_unique<int>(2);
      coring::channel<std::unique_ptr<int>> owners(0);
      auto sender = coring::spawn(
          [](coring::channel<std::unique_ptr<int>>& owners, std::unique_ptr<int>& value) -> task<bool> {
            try {
              co_await owners.send(std::move(value));
            } catch (const coring::channel_closed&) {
              co_return true;
            }
            co_return false;
          }(owners, value));
      co_await coring::sleep_for(20ms);  // both senders are waiting now
      ch.close();
      owners.close();
      CHECK(co_await sender);
      CHECK(value != nullptr);               // never taken: still the caller's
      CHECK(*(co_await ch.receive()) == 0);  // queued before close: delivered
      CHECK_FALSE((co_await ch.receive()).has_value());
    }(ch));
    blocked.join();
    CHECK(thread_closed);
  }

  TEST_CASE("a cancelled receive delivers one cancellation and takes nothing" * doctest::timeout(5)) {
    coring::channel<int> ch(1);
    coring_test::expect_cancelled_once([&]() -> task<> { (void)co_await ch.receive(); });
    CHECK(ch.try_send(5));
    CHECK(*ch.try_receive() == 5);
  }

  TEST_CASE("a receive or a send awaited with a cancellation pending throws at once and moves nothing" *
            doctest::timeout(5)) {
    coring::channel<int> ch(1);
    CHECK(ch.try_send(1));
    coring::run([](coring::channel<int>& ch) -> task<> {
      (co_await coring::current_task()).cancel();
      CHECK_THROWS_AS((void)co_await ch.receive(), coring::cancelled);
      (co_await coring::current_task()).cancel();
      int v = 2;
      CHECK_THROWS_AS(co_await ch.send(std::move(v)), coring::cancelled);
      co_await coring::sleep_for(1ms);  // each was delivered once
    }(ch));
    CHECK(ch.size() == 1);
    CHECK(*ch.try_receive() == 1);
  }

  TEST_CASE("a cancelled send on a full channel delivers one cancellation and queues nothing" *
            doctest::timeout(5)) {
    coring::channel<int> ch(1);
    CHECK(ch.try_send(1));
    int value = 2;
    coring_test::expect_cancelled_once([&]() -> task<> { co_await ch.send(std::move(value)); });
    CHECK(ch.size() == 1);
    CHECK(*ch.try_receive() == 1);
    CHECK_FALSE(ch.try_receive().has_value());
  }

  TEST_CASE("capacity 0 is a rendezvous: a send waits for a receive" * doctest::timeout(10)) {
    coring::channel<int> ch(0);
    std::atomic<bool> returned{false};
    std::thread producer([&] {
      ch.blocking_send(7);
      returned = true;
    });
    std::this_thread::sleep_for(20ms);
    CHECK_FALSE(returned.load());
    CHECK(ch.size() == 0);
    int got =
        coring::run([](coring::channel<int>& ch) -> task<int> { co_return *(co_await ch.receive()); }(ch));
    producer.join();
    CHECK(got == 7);
    CHECK(returned);
  }

  TEST_CASE("a receive cancelled just as a value arrives: the value is received or left, never lost" *
            doctest::timeout(30)) {
    std::mt19937 rng(99);
    int received = 0, left = 0;
    const int rounds = static_cast<int>(scaled(200, 5000));
    for (int round = 0; round < rounds; ++round) {
      coring::channel<int> ch(1);
      const auto send_at = std::chrono::microseconds(rng() % 300);
      const auto cancel_at = std::chrono::microseconds(rng() % 300);
      std::thread producer([&] {
        std::this_thread::sleep_for(send_at);
        ch.blocking_send(round);
      });
      int cancels = 0;
      bool got = false;
      coring::run(
          [](coring::channel<int>& ch, std::chrono::microseconds c, int& cancels, bool& got) -> task<> {
            auto receiver = coring::spawn([](coring::channel<int>& ch, int& cancels, bool& got) -> task<> {
              try {
                got = (co_await ch.receive()).has_value();
              } catch (const coring::cancelled&) {
                ++cancels;
              }
              try {
                co_await coring::sleep_for(0ms);  // a cancellation that came after the value lands here
              } catch (const coring::cancelled&) {
                ++cancels;
              }
            }(ch, cancels, got));
            co_await coring::sleep_for(c);
            receiver.cancel();
            co_await receiver;
          }(ch, cancel_at, cancels, got));
      producer.join();
      CHECK(cancels <= 1);
      CHECK((got || cancels == 1));  // the value, or the cancellation (both when it came after the value)
      const bool still_there = ch.try_receive().has_value();
      CHECK(got != still_there);  // exactly one place holds the value
      if (got) ++received;
      if (still_there) ++left;
    }
    MESSAGE("received " << received << ", left in the channel " << left);
  }

  TEST_CASE("stress: threads and coroutines on two loops send, every value is received exactly once" *
            doctest::timeout(60)) {
    const int per_sender = static_cast<int>(scaled(2000, 100000));
    constexpr int threads = 3, coroutines = 4;
    coring::channel<int> ch(8);
    std::atomic<int> senders_left{threads + coroutines};
    auto finish_one = [&] {
      if (--senders_left == 0) ch.close();
    };
    std::vector<std::thread> producers;
    for (int t = 0; t < threads; ++t) {
      producers.emplace_back([&, t] {
        std::mt19937 rng(static_cast<unsigned>(t));
        for (int i = 0; i < per_sender; ++i) {
          const int v = t * per_sender + i;
          if (rng() % 4 == 0) {
            while (!ch.try_send(int{v})) std::this_thread::yield();
          } else {
            ch.blocking_send(v);
          }
        }
        finish_one();
      });
    }
    loop_on_thread other;
    std::vector<coring::future<void>> remote;
    for (int c = 0; c < coroutines; ++c) {
      remote.push_back(coring::run_coroutine_threadsafe(
          other.loop(), [](coring::channel<int>& ch, int base, int n, auto finish) -> task<> {
            for (int i = 0; i < n; ++i) {
              co_await ch.send(base + i);
              if (i % 64 == 0) co_await coring::yield();
            }
            finish();
          }(ch, (threads + c) * per_sender, per_sender, finish_one)));
    }
    std::vector<int> counts(static_cast<std::size_t>((threads + coroutines) * per_sender), 0);
    coring::run([](coring::channel<int>& ch, std::vector<int>& counts) -> task<> {
      std::mt19937 rng(5);
      while (auto v = co_await ch.receive()) {
        ++counts[static_cast<std::size_t>(*v)];
        if (rng() % 16 == 0) co_await coring::sleep_for(0ms);  // let the channel fill up now and then
      }
    }(ch, counts));
    for (auto& t : producers) t.join();
    for (auto& f : remote) f.get();
    int wrong = 0;
    for (int c : counts) wrong += c != 1;
    CHECK(wrong == 0);
  }

}  // TEST_SUITE
