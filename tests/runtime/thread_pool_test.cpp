#include <coring/thread_pool.hpp>

#include <coring/event_loop.hpp>
#include <coring/future_as_completed.hpp>
#include <coring/sleep.hpp>
#include <coring/spawn.hpp>
#include <coring/task.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
#include <latch>
#include <numeric>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

// Counts live instances, to prove job records (and what they hold) are freed.
struct counted {
  static inline std::atomic<int> live{0};
  int value = 0;
  explicit counted(int v = 0) : value(v) { ++live; }
  counted(const counted& o) : value(o.value) { ++live; }
  counted(counted&& o) noexcept : value(o.value) { ++live; }
  counted& operator=(const counted&) = default;
  counted& operator=(counted&&) = default;
  ~counted() { --live; }
};

struct custom_error : std::runtime_error {
  int code;
  custom_error(const std::string& what, int c) : std::runtime_error(what), code(c) {}
};

// A gate a job can wait on (std::promise's shared state is thread safe).
struct gate {
  std::promise<void> p;
  std::shared_future<void> f = p.get_future().share();
  void open() { p.set_value(); }
};

}  // namespace

TEST_SUITE("runtime/thread_pool") {

TEST_CASE("default_size follows asyncio: min(32, cpus + 4)") {
  std::size_t cpus = std::max(1u, std::thread::hardware_concurrency());
  CHECK(coring::thread_pool::default_size() == std::min<std::size_t>(32, cpus + 4));
  coring::thread_pool pool;
  CHECK(pool.max_workers() == coring::thread_pool::default_size());
  CHECK(pool.worker_count() == 0);  // lazily created
}

TEST_CASE("submit runs the job on a worker and get returns its value" * doctest::timeout(30)) {
  coring::thread_pool pool(2);
  auto f = pool.submit([](int a, int b) { return std::make_pair(std::this_thread::get_id(), a * b); }, 6, 7);
  auto [id, v] = f.get();
  CHECK(v == 42);
  CHECK(id != std::this_thread::get_id());
  CHECK(pool.worker_count() >= 1);
  CHECK(pool.worker_count() <= 2);
}

TEST_CASE("void jobs and move-only arguments are supported" * doctest::timeout(30)) {
  coring::thread_pool pool(2);
  std::atomic<int> hits{0};
  auto f = pool.submit([&hits](std::unique_ptr<int> p) { hits += *p; }, std::make_unique<int>(5));
  f.get();
  CHECK(hits == 5);
  auto g = pool.submit([](std::unique_ptr<int> p) { return p; }, std::make_unique<int>(9));
  CHECK(*g.get() == 9);
}

TEST_CASE("continuations run on the loop thread, never on the worker" * doctest::timeout(30)) {
  coring::thread_pool pool(2);
  auto body = [&]() -> coring::task<int> {
    const auto loop_id = std::this_thread::get_id();
    int checked = 0;
    for (int i = 0; i < 20; ++i) {
      // Long enough that the coroutine really suspends and is woken from the worker.
      auto worker_id = co_await pool.submit([] {
        std::this_thread::sleep_for(2ms);
        return std::this_thread::get_id();
      });
      CHECK(worker_id != loop_id);
      CHECK(std::this_thread::get_id() == loop_id);
      ++checked;
    }
    co_return checked;
  };
  CHECK(coring::run(body()) == 20);
}

TEST_CASE("exceptions cross intact, both awaited and from get()" * doctest::timeout(30)) {
  coring::thread_pool pool(2);
  auto thrower = [](int c) -> int { throw custom_error("job " + std::to_string(c) + " failed", c); };

  auto f = pool.submit(thrower, 7);
  try {
    (void)f.get();
    FAIL("no exception");
  } catch (const custom_error& e) {
    CHECK(std::string(e.what()) == "job 7 failed");
    CHECK(e.code == 7);
  }

  auto body = [&]() -> coring::task<void> {
    try {
      co_await pool.submit(thrower, 11);
      FAIL("no exception");
    } catch (const custom_error& e) {
      CHECK(std::string(e.what()) == "job 11 failed");
      CHECK(e.code == 11);
    }
  };
  coring::run(body());

  // Not derived from std::exception: still intact.
  auto g = pool.submit([] { throw 42; });
  CHECK_THROWS_AS(g.get(), int);
}

TEST_CASE("a job cancelled before it started never runs" * doctest::timeout(30)) {
  coring::thread_pool pool(1);
  gate g;
  std::latch started(1);
  std::atomic<bool> second_ran{false};
  auto first = pool.submit([&] {
    started.count_down();
    g.f.wait();
    return 1;
  });
  started.wait();  // the only worker is busy
  auto second = pool.submit([&] { second_ran = true; return 2; });
  CHECK_FALSE(second.ready());
  CHECK(second.cancel());
  CHECK(second.ready());
  CHECK_FALSE(first.cancel());  // running: cannot be stopped
  g.open();
  CHECK(first.get() == 1);
  CHECK_THROWS_AS(second.get(), coring::cancelled);
  // A job after it proves the worker went past the cancelled one.
  CHECK(pool.submit([] { return 3; }).get() == 3);
  CHECK_FALSE(second_ran.load());
}

TEST_CASE("cancelling the awaiting task cancels a job that has not started" * doctest::timeout(30)) {
  coring::thread_pool pool(1);
  gate g;
  std::latch started(1);
  std::atomic<bool> ran{false};
  auto blocker = pool.submit([&] {
    started.count_down();
    g.f.wait();
  });
  started.wait();
  bool got_cancelled = false;
  auto body = [&]() -> coring::task<void> {
    auto waiter = [&]() -> coring::task<void> {
      try {
        co_await pool.submit([&] { ran = true; });
      } catch (const coring::cancelled&) {
        got_cancelled = true;
        throw;
      }
    };
    auto h = coring::spawn(waiter());
    co_await coring::sleep_for(10ms);
    h.cancel();
    try {
      co_await h;
    } catch (const coring::cancelled&) {
    }
  };
  coring::run(body());
  g.open();
  blocker.get();
  pool.shutdown();
  CHECK(got_cancelled);
  CHECK_FALSE(ran.load());
}

TEST_CASE("shutdown with cancel_pending ends pending futures with coring::cancelled" * doctest::timeout(30)) {
  coring::thread_pool pool(1);
  gate g;
  std::latch started(1);
  std::atomic<int> ran{0};
  auto first = pool.submit([&] {
    started.count_down();
    g.f.wait();
    ++ran;
    return 1;
  });
  started.wait();
  std::vector<coring::future<int>> pending;
  for (int i = 0; i < 10; ++i) pending.push_back(pool.submit([&ran] { ++ran; return 2; }));
  CHECK(pool.pending() == 10);
  pool.shutdown({.wait = false, .cancel_pending = true});
  for (auto& f : pending) {
    CHECK(f.ready());
    CHECK_THROWS_AS(f.get(), coring::cancelled);
  }
  CHECK_THROWS_WITH_AS((void)pool.submit([] { return 0; }), "thread_pool: submit after shutdown", coring::error);
  g.open();
  CHECK(first.get() == 1);  // the running job finished
  pool.shutdown({.wait = true});
  CHECK(pool.worker_count() == 0);
  CHECK(ran == 1);
}

TEST_CASE("shutdown without cancel_pending runs every queued job first" * doctest::timeout(30)) {
  std::atomic<int> ran{0};
  std::vector<coring::future<void>> fs;
  {
    coring::thread_pool pool(2);
    for (int i = 0; i < 50; ++i)
      fs.push_back(pool.submit([&ran] {
        std::this_thread::sleep_for(100us);
        ++ran;
      }));
  }  // destructor: shutdown with wait
  CHECK(ran == 50);
  for (auto& f : fs) CHECK(f.ready());
}

TEST_CASE("100,000 jobs round-trip through a coroutine" * doctest::timeout(60)) {
  coring::thread_pool pool;
  constexpr int n = 100'000;
  auto body = [&]() -> coring::task<std::int64_t> {
    std::vector<coring::future<std::int64_t>> fs;
    fs.reserve(n);
    for (int i = 0; i < n; ++i) fs.push_back(pool.submit([](std::int64_t x) { return x * 2; }, i));
    std::int64_t sum = 0;
    for (auto& f : fs) sum += co_await f;
    co_return sum;
  };
  CHECK(coring::run(body()) == std::int64_t{n} * (n - 1));
}

TEST_CASE("eventfd writes never exceed loop parks" * doctest::timeout(30)) {
  coring::thread_pool pool(3);
  coring::event_loop loop;
  auto body = [&]() -> coring::task<int> {
    int sum = 0;
    // One at a time (the loop parks for nearly every job) and in batches.
    for (int i = 0; i < 300; ++i) sum += co_await pool.submit([i] { return i % 3; });
    for (int round = 0; round < 20; ++round) {
      std::vector<coring::future<int>> fs;
      for (int i = 0; i < 500; ++i) fs.push_back(pool.submit([] { return 1; }));
      for (auto& f : fs) sum += co_await f;
    }
    co_return sum;
  };
  CHECK(loop.run_until_complete(body()) == 300 + 20 * 500);
  MESSAGE("parks: " << loop.stats().blocking_waits << ", eventfd writes: " << loop.stats().wakeups);
  CHECK(loop.stats().blocking_waits > 0);
  CHECK(loop.stats().wakeups <= loop.stats().blocking_waits);
}

TEST_CASE("a loop destroyed while jobs are in flight leaves nothing behind and resumes nothing" *
          doctest::timeout(30)) {
  coring::thread_pool pool(2);
  gate running_gate, hog_gate;
  std::latch running_started(1), hog_started(1);
  std::atomic<bool> resumed{false};
  std::atomic<bool> pending_ran{false};
  CHECK(counted::live == 0);
  // Keep one worker busy so that the second job below stays queued.
  auto hog = pool.submit([&] {
    hog_started.count_down();
    hog_gate.f.wait();
  });
  hog_started.wait();
  {
    coring::event_loop loop;
    auto waiter = [&](bool running) -> coring::task<void> {
      if (running) {
        counted c = co_await pool.submit(
            [&](counted x) {
              running_started.count_down();
              running_gate.f.wait();
              return x;
            },
            counted(1));
      } else {
        counted c = co_await pool.submit(
            [&](counted x) {
              pending_ran = true;
              return x;
            },
            counted(2));
      }
      resumed = true;
    };
    auto driver = [&]() -> coring::task<void> {
      coring::spawn(waiter(true)).detach();   // its job will be running
      coring::spawn(waiter(false)).detach();  // its job stays queued
      co_await coring::sleep_for(1ms);
    };
    loop.run_until_complete(driver());
    running_started.wait();
    CHECK(pool.pending() == 1);
    // The loop ends here with both tasks suspended on their futures.
  }
  running_gate.open();  // the running job ends after its loop is gone
  hog_gate.open();
  hog.get();
  pool.shutdown();
  CHECK_FALSE(resumed.load());
  CHECK_FALSE(pending_ran.load());  // the loop's shutdown cancelled it before it started
  CHECK(counted::live == 0);        // job records, arguments and results all freed
}

TEST_CASE("post() from another thread runs on the loop thread" * doctest::timeout(30)) {
  coring::event_loop loop;
  std::thread::id loop_id = std::this_thread::get_id();
  std::atomic<int> ran{0};
  std::vector<std::thread::id> where;
  auto body = [&]() -> coring::task<void> {
    std::thread t([&] {
      for (int i = 0; i < 1000; ++i)
        loop.post([&] {
          where.push_back(std::this_thread::get_id());
          ++ran;
        });
    });
    while (ran < 1000) co_await coring::sleep_for(1ms);
    t.join();
  };
  loop.run_until_complete(body());
  CHECK(ran == 1000);
  CHECK(std::all_of(where.begin(), where.end(), [&](auto id) { return id == loop_id; }));
  CHECK(loop.stats().wakeups <= loop.stats().blocking_waits);
}

TEST_CASE("blocking get and wait_for work from plain threads" * doctest::timeout(30)) {
  coring::thread_pool pool(2);
  gate g;
  auto f = pool.submit([&] {
    g.f.wait();
    return std::string("done");
  });
  CHECK_FALSE(f.wait_for(20ms));
  CHECK_FALSE(f.ready());
  std::vector<std::thread> others;
  std::atomic<int> seen{0};
  auto shared = pool.submit([] {
    std::this_thread::sleep_for(5ms);
    return 5;
  });
  int from_thread = 0;
  std::thread t([&] { from_thread = shared.get(); });
  g.open();
  CHECK(f.wait_for(10s));
  CHECK(f.ready());
  CHECK(f.get() == "done");
  t.join();
  CHECK(from_thread == 5);
  (void)seen;
}

TEST_CASE("map returns results in input order and rethrows the first failure" * doctest::timeout(30)) {
  coring::thread_pool pool(4);
  std::vector<int> in(200);
  std::iota(in.begin(), in.end(), 0);
  auto out = pool.map(
      [](int x) {
        // Later inputs finish first.
        std::this_thread::sleep_for(std::chrono::microseconds((200 - x) * 5));
        return x * x;
      },
      in);
  REQUIRE(out.size() == in.size());
  for (int i = 0; i < 200; ++i) CHECK(out[static_cast<std::size_t>(i)] == i * i);

  std::vector<std::string> words{"a", "bb", "ccc"};
  auto lens = pool.map([](const std::string& s) { return s.size(); }, words);
  CHECK(lens == std::vector<std::size_t>{1, 2, 3});

  CHECK_THROWS_WITH_AS((void)pool.map(
                           [](int x) {
                             if (x == 3) throw std::runtime_error("three");
                             return x;
                           },
                           in),
                       "three", std::runtime_error);
}

TEST_CASE("blocking as_completed_indices yields every index in completion order" * doctest::timeout(30)) {
  coring::thread_pool pool(5);
  std::vector<coring::future<int>> fs;
  fs.reserve(5);
  // Completion order is the reverse of submission order, whatever the
  // timing: the jobs wait for a gate that opens once the stream watches
  // them, and job i then waits until job i + 1 has ended.
  gate go;
  for (int i = 0; i < 4; ++i)
    fs.push_back(pool.submit([i, &fs, f = go.f] {
      f.wait();
      if (i < 3) {
        fs[static_cast<std::size_t>(i) + 1].wait();
        std::this_thread::sleep_for(2ms);  // a margin: job i + 1's end reaches the stream first
      }
      return i;
    }));
  fs.push_back(pool.submit([] { return 99; }));
  fs.back().wait();  // already done before as_completed starts
  std::vector<std::size_t> order;
  auto stream = coring::as_completed_indices(fs);
  order.push_back(*stream.wait_next());  // the stream now watches every future
  go.open();
  for (std::size_t i : stream) {
    CHECK(fs[i].ready());
    order.push_back(i);
  }
  REQUIRE(order.size() == 5);
  CHECK(order[0] == 4);
  CHECK(std::vector<std::size_t>(order.begin() + 1, order.end()) == std::vector<std::size_t>{3, 2, 1, 0});
  CHECK(fs[0].get() == 0);

  // The timeout form.
  gate g;
  std::vector<coring::future<int>> slow;
  slow.push_back(pool.submit([&] {
    g.f.wait();
    return 1;
  }));
  {
    auto s = coring::as_completed_indices(slow);
    CHECK_THROWS_AS((void)s.wait_next_for(10ms), coring::timeout_error);
    g.open();
    CHECK(s.wait_next_for(10s) == std::optional<std::size_t>(0));
    CHECK(s.wait_next() == std::nullopt);
  }
  CHECK(slow[0].get() == 1);

  // Destroying a stream early leaves the futures usable.
  gate g2;
  std::vector<coring::future<int>> more;
  more.push_back(pool.submit([&] {
    g2.f.wait();
    return 7;
  }));
  { auto s = coring::as_completed_indices(more); CHECK_THROWS_AS((void)s.wait_next_for(1ms), coring::timeout_error); }
  g2.open();
  CHECK(more[0].get() == 7);
}

TEST_CASE("awaitable as_completed_indices yields indices in completion order on the loop thread" * doctest::timeout(30)) {
  coring::thread_pool pool(5);
  auto body = [&]() -> coring::task<std::vector<int>> {
    const auto loop_id = std::this_thread::get_id();
    std::vector<coring::future<int>> fs;
    fs.reserve(5);
    // As in the blocking test: the jobs wait for a gate opened once the
    // stream watches them, then each waits for the one after it.
    gate go;
    for (int i = 0; i < 4; ++i)
      fs.push_back(pool.submit([i, &fs, f = go.f] {
        f.wait();
        if (i < 3) {
          fs[static_cast<std::size_t>(i) + 1].wait();
          std::this_thread::sleep_for(2ms);
        }
        return i * 10;
      }));
    fs.push_back(pool.submit([] { return 99; }));
    while (!fs.back().ready()) co_await coring::yield();  // a blocking wait is not allowed here
    std::vector<int> values;
    auto done = coring::as_completed_indices(fs);
    values.push_back(co_await fs[*co_await done.next()]);  // the finished one; the stream now watches all
    go.open();
    while (auto i = co_await done.next()) {
      CHECK(std::this_thread::get_id() == loop_id);
      values.push_back(co_await fs[*i]);
    }
    co_return values;
  };
  CHECK(coring::run(body()) == std::vector<int>{99, 30, 20, 10, 0});
}

TEST_CASE("an awaitable as_completed_indices stream can be cancelled and dropped early" * doctest::timeout(30)) {
  coring::thread_pool pool(2);
  gate g;
  std::vector<coring::future<int>> fs;
  fs.push_back(pool.submit([&] {
    g.f.wait();
    return 1;
  }));
  bool cancelled = false;
  auto body = [&]() -> coring::task<void> {
    auto watcher = [&]() -> coring::task<void> {
      auto done = coring::as_completed_indices(fs);
      try {
        (void)co_await done.next();
      } catch (const coring::cancelled&) {
        cancelled = true;
        throw;
      }
    };
    auto h = coring::spawn(watcher());
    for (int i = 0; i < 5; ++i) co_await coring::yield();  // the watcher waits: steps, not time
    h.cancel();
    try {
      co_await h;
    } catch (const coring::cancelled&) {
    }
  };
  coring::run(body());
  CHECK(cancelled);
  g.open();
  CHECK(fs[0].get() == 1);
}

TEST_CASE("to_thread runs on the default pool and resumes on the loop" * doctest::timeout(30)) {
  auto body = [&]() -> coring::task<std::string> {
    const auto loop_id = std::this_thread::get_id();
    auto [id, s] = co_await coring::to_thread(
        [](std::string a, int n) {
          std::string r;
          for (int i = 0; i < n; ++i) r += a;
          return std::make_pair(std::this_thread::get_id(), r);
        },
        std::string("ab"), 3);
    CHECK(id != loop_id);
    CHECK(std::this_thread::get_id() == loop_id);
    co_return s;
  };
  CHECK(coring::run(body()) == "ababab");
  CHECK(&coring::default_thread_pool() == &coring::default_thread_pool());
  CHECK(coring::default_thread_pool().max_workers() == coring::thread_pool::default_size());
}

TEST_CASE("idle workers retire after the keep-alive and come back on demand" * doctest::timeout(30)) {
  coring::thread_pool pool(coring::thread_pool::options{.max_workers = 3, .keep_alive = 300ms});
  std::vector<coring::future<int>> fs;
  std::latch all(3);
  for (int i = 0; i < 3; ++i)
    fs.push_back(pool.submit([&all, i] {
      all.arrive_and_wait();  // needs three workers at once
      return i;
    }));
  for (auto& f : fs) (void)f.get();
  CHECK(pool.worker_count() == 3);
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (pool.worker_count() != 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(5ms);
  CHECK(pool.worker_count() == 0);
  CHECK(pool.submit([] { return 8; }).get() == 8);
  CHECK(pool.worker_count() == 1);
}

TEST_CASE("many threads submit at once" * doctest::timeout(30)) {
  coring::thread_pool pool(4);
  std::atomic<std::int64_t> total{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&] {
      std::vector<coring::future<int>> fs;
      for (int i = 0; i < 2000; ++i) fs.push_back(pool.submit([i] { return i; }));
      std::int64_t s = 0;
      for (auto& f : fs) s += f.get();
      total += s;
    });
  for (auto& t : ts) t.join();
  CHECK(total == 4 * (2000 * 1999 / 2));
  CHECK(pool.worker_count() >= 1);
  CHECK(pool.worker_count() <= 4);  // never more than max_workers
}

TEST_CASE("workers retiring while jobs arrive never exceed max_workers" * doctest::timeout(60)) {
  // Submitting joins the retired workers, which drops the pool's lock: what
  // was decided before (start a worker?) must be decided again after.
  coring::thread_pool pool(coring::thread_pool::options{.max_workers = 2, .keep_alive = 1ms});
  std::atomic<int> running{0};
  std::atomic<int> most{0};
  for (int round = 0; round < 60; ++round) {
    std::vector<std::thread> submitters;
    std::vector<std::vector<coring::future<int>>> results(3);
    for (int t = 0; t < 3; ++t)
      submitters.emplace_back([&, t] {
        for (int i = 0; i < 20; ++i)
          results[t].push_back(pool.submit([&] {
            int now = ++running;
            int seen = most.load();
            while (now > seen && !most.compare_exchange_weak(seen, now)) {
            }
            --running;
            return 1;
          }));
      });
    for (auto& t : submitters) t.join();
    for (auto& r : results)
      for (auto& f : r) CHECK(f.get() == 1);
    CHECK(pool.worker_count() <= 2);
    std::this_thread::sleep_for(3ms);  // let the workers retire: the next round joins them
  }
  CHECK(most.load() <= 2);
}

TEST_CASE("a submit racing shutdown either runs its job or throws: no future is left pending"
          * doctest::timeout(60)) {
  for (int round = 0; round < 100; ++round) {
    coring::thread_pool pool(coring::thread_pool::options{.max_workers = 1, .keep_alive = 1ms});
    (void)pool.submit([] { return 0; }).get();
    std::this_thread::sleep_for(2ms);  // a retired worker waits to be joined by the next submit
    std::vector<coring::future<int>> fs;
    int refused = 0;
    std::thread submitter([&] {
      for (int i = 0; i < 200; ++i) {
        try {
          fs.push_back(pool.submit([] { return 1; }));
        } catch (const coring::error&) {
          ++refused;
        }
      }
    });
    pool.shutdown({.wait = true});
    submitter.join();
    for (auto& f : fs) REQUIRE(f.wait_for(2s));  // queued after shutdown returned, it would never run
    CHECK(static_cast<int>(fs.size()) + refused == 200);
  }
}

coring::task<int> get_when_ready(coring::future<int>& f) {
  while (!f.ready()) co_await coring::sleep_for(1ms);
  co_return f.get();  // cannot block: allowed on the loop thread
}

TEST_CASE("get on a future that is already ready is allowed on a loop thread" * doctest::timeout(30)) {
  coring::thread_pool pool(1);
  coring::future<int> f = pool.submit([] { return 7; });
  CHECK(coring::run(get_when_ready(f)) == 7);
}

}  // TEST_SUITE
