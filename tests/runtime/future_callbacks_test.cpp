// future<T>::add_done_callback and then(): continuations for plain code,
// run on the side that ends the job.

#include <coring/future.hpp>

#include <doctest/doctest.h>

#include <coring/error.hpp>
#include <coring/event_loop.hpp>
#include <coring/task.hpp>
#include <coring/thread_pool.hpp>

#include <atomic>
#include <future>
#include <mutex>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

// Waits until `counter` reaches `n` (a callback runs after get() is woken).
void wait_for_count(const std::atomic<int>& counter, int n) {
  while (counter.load() < n) std::this_thread::yield();
}

// A gate a job can wait on (std::promise's shared state is thread safe).
struct gate {
  std::promise<void> p;
  std::shared_future<void> f = p.get_future().share();
  void open() { p.set_value(); }
};

}  // namespace

TEST_SUITE("runtime/future_callbacks") {
  TEST_CASE("add_done_callback runs once on the worker thread that ends the job, in the order added" *
            doctest::timeout(10)) {
    coring::thread_pool pool(1);
    gate go;
    std::thread::id worker;
    auto f = pool.submit([&, g = go.f] {
      worker = std::this_thread::get_id();
      g.wait();
      return 5;
    });
    std::mutex m;
    std::vector<std::string> calls;
    std::vector<std::thread::id> threads;
    f.add_done_callback([&] {
      std::lock_guard lock(m);
      calls.push_back("first");
      threads.push_back(std::this_thread::get_id());
    });
    f.add_done_callback([&] {
      std::lock_guard lock(m);
      calls.push_back("second");
      threads.push_back(std::this_thread::get_id());
    });
    go.open();
    CHECK(f.get() == 5);
    pool.shutdown();
    REQUIRE(calls.size() == 2);
    CHECK(calls[0] == "first");
    CHECK(calls[1] == "second");
    CHECK(threads[0] == worker);
    CHECK(threads[1] == worker);
  }

  TEST_CASE("add_done_callback on a future that has ended runs at once on the calling thread" *
            doctest::timeout(10)) {
    coring::thread_pool pool(1);
    auto f = pool.submit([] { return 1; });
    f.wait();
    std::thread::id where;
    int calls = 0;
    f.add_done_callback([&] {
      ++calls;
      where = std::this_thread::get_id();
    });
    CHECK(calls == 1);
    CHECK(where == std::this_thread::get_id());
  }

  TEST_CASE(
      "add_done_callback runs for a failed job and for one cancelled before it started, and the future is "
      "ready" *
      doctest::timeout(10)) {
    coring::thread_pool pool(1);
    gate busy;
    auto blocker = pool.submit([g = busy.f] { g.wait(); });
    auto failing = pool.submit([]() -> int { throw std::runtime_error("job failed"); });
    auto queued = pool.submit([] { return 3; });
    std::atomic<int> failed_calls{0}, cancelled_calls{0};
    std::atomic<bool> ready_inside{false};
    failing.add_done_callback([&] { ++failed_calls; });
    queued.add_done_callback([&] {
      ++cancelled_calls;
      ready_inside = queued.ready();
    });
    CHECK(queued.cancel());  // runs the callback here, on this thread
    CHECK(cancelled_calls == 1);
    CHECK(ready_inside);
    busy.open();
    CHECK_THROWS_AS(failing.get(), std::runtime_error);
    wait_for_count(failed_calls, 1);
    pool.shutdown();  // workers joined: no callback runs later
    CHECK(failed_calls == 1);
    CHECK_THROWS_AS(queued.get(), coring::cancelled);
    blocker.get();
    CHECK(cancelled_calls == 1);
  }

  TEST_CASE("a done callback that throws is reported and the others still run" * doctest::timeout(10)) {
    coring::thread_pool pool(1);
    gate go;
    auto f = pool.submit([g = go.f] { g.wait(); });
    std::atomic<int> calls{0};
    f.add_done_callback([&] {
      ++calls;
      throw std::runtime_error("callback failure");
    });
    f.add_done_callback([&] { ++calls; });
    go.open();
    f.get();
    pool.shutdown();
    CHECK(calls == 2);
  }

  TEST_CASE("then computes on the completing side and chains" * doctest::timeout(10)) {
    coring::thread_pool pool(2);
    coring::future<std::string> f =
        pool.submit([] { return 20; }).then([](int v) { return v + 1; }).then([](int v) {
          return std::to_string(v * 2);
        });
    CHECK(f.get() == "42");

    coring::future<void> g = pool.submit([] {}).then([] {});
    g.get();
    std::atomic<int> seen{0};
    coring::future<void> h = pool.submit([] { return 7; }).then([&](int v) { seen = v; });
    h.get();
    CHECK(seen == 7);
  }

  TEST_CASE("then passes the job's error on without calling fn, and fn's own error ends the new future" *
            doctest::timeout(10)) {
    coring::thread_pool pool(1);
    bool called = false;
    auto f = pool.submit([]() -> int { throw std::invalid_argument("bad input"); }).then([&](int v) {
      called = true;
      return v;
    });
    CHECK_THROWS_AS(f.get(), std::invalid_argument);
    CHECK_FALSE(called);

    auto g = pool.submit([] { return 1; }).then([](int) -> int { throw std::length_error("fn failed"); });
    CHECK_THROWS_AS(g.get(), std::length_error);
  }

  TEST_CASE("cancelling a then-future before its job starts cancels the job, which never runs" *
            doctest::timeout(10)) {
    coring::thread_pool pool(1);
    gate busy;
    auto blocker = pool.submit([g = busy.f] { g.wait(); });
    std::atomic<bool> ran{false};
    auto f = pool.submit([&] {
                   ran = true;
                   return 1;
                 })
                 .then([](int v) { return v * 2; });
    CHECK_FALSE(f.cancel());  // the then-future itself is "running": the cancel goes to its job
    CHECK(f.ready());         // which had not started: it ended, and so did the then-future
    CHECK_THROWS_AS(f.get(), coring::cancelled);
    busy.open();
    blocker.get();
    pool.shutdown();
    CHECK_FALSE(ran.load());
  }

  TEST_CASE("a then-future can be awaited on a loop" * doctest::timeout(10)) {
    coring::thread_pool pool(1);
    int v = coring::run([](coring::thread_pool& p) -> coring::task<int> {
      co_return co_await p.submit([] { return 4; }).then([](int x) { return x * 10; });
    }(pool));
    CHECK(v == 40);
  }

  TEST_CASE("stress: callbacks added while jobs end run exactly once each" * doctest::timeout(30)) {
    coring::thread_pool pool(2);
    std::mt19937 rng(12345);
    constexpr int jobs = 2000;
    std::vector<std::atomic<int>> calls(jobs);
    std::vector<coring::future<int>> futures;
    futures.reserve(jobs);
    for (int i = 0; i < jobs; ++i) {
      const unsigned spin = rng() % 200;
      futures.push_back(pool.submit([spin, i] {
        std::atomic<unsigned> k{0};
        while (k.fetch_add(1, std::memory_order_relaxed) < spin) {
        }
        return i;
      }));
      // Race the registration with the job's end.
      futures.back().add_done_callback([&calls, i] { ++calls[static_cast<std::size_t>(i)]; });
      if (rng() % 2) futures.back().add_done_callback([&calls, i] { ++calls[static_cast<std::size_t>(i)]; });
    }
    long sum = 0;
    for (auto& f : futures) sum += f.get();
    pool.shutdown();
    CHECK(sum == static_cast<long>(jobs) * (jobs - 1) / 2);
    std::mt19937 replay(12345);
    for (int i = 0; i < jobs; ++i) {
      (void)(replay() % 200);
      const int expected = 1 + static_cast<int>(replay() % 2);
      CHECK(calls[static_cast<std::size_t>(i)].load() == expected);
    }
  }

}  // TEST_SUITE
