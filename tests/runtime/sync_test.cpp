#include <coring/event.hpp>
#include <coring/mutex.hpp>
#include <coring/queue.hpp>
#include <coring/semaphore.hpp>

#include <doctest/doctest.h>

#include <coring/event_loop.hpp>
#include <coring/sleep.hpp>
#include <coring/spawn.hpp>
#include <coring/task.hpp>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace std::chrono_literals;

namespace {

// Lets every ready task run until it suspends again. The loop resumes ready
// coroutines in FIFO order, so a few rounds are enough for what a test spawned.
coring::task<> settle(int rounds = 3) {
  for (int i = 0; i < rounds; ++i) co_await coring::yield();
}

// Joins `h`; true if the task ended with coring::cancelled.
template <class T>
coring::task<bool> ended_cancelled(coring::join_handle<T>& h) {
  try {
    co_await h;
  } catch (const coring::cancelled&) {
    co_return true;
  }
  co_return false;
}

// ------------------------------------------------------------------ event

coring::task<> wait_and_log(coring::event& ev, std::vector<int>& log, int id) {
  co_await ev.wait();
  log.push_back(id);
}

// Waits, logs, then waits again and logs again (the event may still be set).
coring::task<> wait_twice(coring::event& ev, std::vector<int>& log, int id) {
  co_await ev.wait();
  log.push_back(id);
  co_await ev.wait();
  log.push_back(-id);
}

coring::task<> event_basics() {
  coring::event ev;
  CHECK_FALSE(ev.is_set());
  ev.set();
  CHECK(ev.is_set());
  co_await ev.wait();  // set: returns at once
  co_await ev.wait();  // and again
  ev.clear();
  CHECK_FALSE(ev.is_set());

  std::vector<int> log;
  auto h = coring::spawn(wait_and_log(ev, log, 1));
  co_await settle();
  CHECK(ev.waiting() == 1);
  CHECK(log.empty());
  CHECK_FALSE(h.done());
  ev.set();
  co_await h;
  CHECK(log == std::vector<int>{1});
  CHECK(ev.waiting() == 0);

  coring::event born_set(true);
  CHECK(born_set.is_set());
  co_await born_set.wait();
}

coring::task<> event_fifo() {
  coring::event ev;
  std::vector<int> log;
  std::vector<coring::join_handle<void>> hs;
  for (int id = 1; id <= 4; ++id) hs.push_back(coring::spawn(wait_and_log(ev, log, id)));
  co_await settle();
  CHECK(ev.waiting() == 4);
  ev.set();
  CHECK(log.empty());  // woken through the loop, never inside set()
  CHECK(ev.waiting() == 0);
  for (auto& h : hs) co_await h;
  CHECK(log == std::vector<int>{1, 2, 3, 4});
}

coring::task<> event_cancel_waiter() {
  coring::event ev;
  std::vector<int> log;
  auto a = coring::spawn(wait_and_log(ev, log, 1));
  auto b = coring::spawn(wait_and_log(ev, log, 2));
  auto c = coring::spawn(wait_and_log(ev, log, 3));
  co_await settle();
  REQUIRE(ev.waiting() == 3);
  b.cancel();
  CHECK(ev.waiting() == 2);  // unlinked by the cancellation itself
  co_await coring::yield();
  CHECK(b.done());  // ended at once, the event still clear
  const bool b_cancelled = co_await ended_cancelled(b);
  CHECK(b_cancelled);
  ev.set();
  co_await a;
  co_await c;
  CHECK(log == std::vector<int>{1, 3});
}

coring::task<> event_woken_then_cancelled() {
  coring::event ev;
  std::vector<int> log;
  auto h = coring::spawn(wait_twice(ev, log, 1));
  co_await settle();
  ev.set();   // h is handed its wake-up...
  h.cancel(); // ...and cancelled in the same step
  const bool h_cancelled = co_await ended_cancelled(h);
  CHECK(h_cancelled);
  // The first wait returned normally; the second (event still set) delivered
  // the pending cancellation.
  CHECK(log == std::vector<int>{1});
}

// ------------------------------------------------------------------ semaphore

coring::task<> acquire_and_log(coring::semaphore& sem, std::vector<int>& log, int id) {
  co_await sem.acquire();
  log.push_back(id);
}

coring::task<> acquire_guard_then_sleep(coring::semaphore& sem, bool& got) {
  auto permit = co_await sem.acquire_guard();
  got = true;
  co_await coring::sleep_for(50ms);  // cancelled here; the guard returns the permit
}

coring::task<> bounded_worker(coring::semaphore& sem, int id, int& in_flight, int& max_in_flight,
                              std::vector<int>& order) {
  auto permit = co_await sem.acquire_guard();
  order.push_back(id);
  ++in_flight;
  max_in_flight = std::max(max_in_flight, in_flight);
  co_await coring::sleep_for(1ms);
  --in_flight;
}

coring::task<> semaphore_basics() {
  coring::semaphore sem(2);
  CHECK(sem.available() == 2);
  CHECK(sem.try_acquire());
  co_await sem.acquire();  // a free permit: no waiting
  CHECK(sem.available() == 0);
  CHECK_FALSE(sem.try_acquire());
  sem.release(2);
  CHECK(sem.available() == 2);
  sem.release();
  CHECK(sem.available() == 3);
}

coring::task<> semaphore_fifo_handoff() {
  coring::semaphore sem(0);
  std::vector<int> log;
  auto a = coring::spawn(acquire_and_log(sem, log, 1));
  auto b = coring::spawn(acquire_and_log(sem, log, 2));
  auto c = coring::spawn(acquire_and_log(sem, log, 3));
  co_await settle();
  REQUIRE(sem.waiting() == 3);

  sem.release();
  // The permit went straight to the first waiter: it is not free for a newcomer.
  CHECK(sem.available() == 0);
  CHECK_FALSE(sem.try_acquire());
  CHECK(sem.waiting() == 2);
  auto late = coring::spawn(acquire_and_log(sem, log, 4));  // arrives before 1 has even run
  co_await settle();
  CHECK(log == std::vector<int>{1});
  CHECK(sem.waiting() == 3);

  sem.release(2);
  co_await settle();
  CHECK(log == std::vector<int>{1, 2, 3});
  sem.release(3);  // one to the late waiter, two become free
  co_await late;
  CHECK(log == std::vector<int>{1, 2, 3, 4});
  CHECK(sem.available() == 2);
  co_await a;
  co_await b;
  co_await c;
}

coring::task<> semaphore_cancel_waiter() {
  coring::semaphore sem(0);
  std::vector<int> log;
  auto a = coring::spawn(acquire_and_log(sem, log, 1));
  auto b = coring::spawn(acquire_and_log(sem, log, 2));
  auto c = coring::spawn(acquire_and_log(sem, log, 3));
  co_await settle();
  b.cancel();
  CHECK(sem.waiting() == 2);
  co_await coring::yield();
  CHECK(b.done());
  const bool b_cancelled = co_await ended_cancelled(b);
  CHECK(b_cancelled);
  sem.release(2);
  co_await a;
  co_await c;
  CHECK(log == std::vector<int>{1, 3});
  CHECK(sem.available() == 0);  // the cancelled waiter took nothing, the others one each
  sem.release();
  CHECK(sem.available() == 1);
}

coring::task<> semaphore_permit_not_lost() {
  coring::semaphore sem(0);
  {
    // Handed a permit, then cancelled in the same step: it keeps the permit
    // (acquire returns) and its guard returns it when the cancellation ends it.
    bool got = false;
    auto h = coring::spawn(acquire_guard_then_sleep(sem, got));
    co_await settle();
    sem.release();
    h.cancel();
    const bool h_cancelled = co_await ended_cancelled(h);
    CHECK(h_cancelled);
    CHECK(got);
    CHECK(sem.available() == 1);
  }
  CHECK(sem.try_acquire());
  {
    // Cancelled before any release: it never gets a permit, and the next
    // release is free for others.
    bool got = false;
    auto h = coring::spawn(acquire_guard_then_sleep(sem, got));
    co_await settle();
    h.cancel();
    sem.release();
    const bool h_cancelled = co_await ended_cancelled(h);
    CHECK(h_cancelled);
    CHECK_FALSE(got);
    CHECK(sem.available() == 1);
  }
}

coring::task<> semaphore_bounds_concurrency() {
  constexpr int limit = 10;
  constexpr int tasks = 50;
  coring::semaphore sem(limit);
  int in_flight = 0;
  int max_in_flight = 0;
  std::vector<int> order;
  std::vector<coring::join_handle<void>> hs;
  for (int i = 0; i < tasks; ++i) hs.push_back(coring::spawn(bounded_worker(sem, i, in_flight, max_in_flight, order)));
  for (auto& h : hs) co_await h;
  CHECK(max_in_flight == limit);
  CHECK(in_flight == 0);
  CHECK(sem.available() == static_cast<std::size_t>(limit));
  REQUIRE(order.size() == static_cast<std::size_t>(tasks));
  for (int i = 0; i < tasks; ++i) CHECK(order[static_cast<std::size_t>(i)] == i);  // FIFO
}

coring::task<> semaphore_guard_moves() {
  coring::semaphore sem(1);
  coring::semaphore_guard g = co_await sem.acquire_guard();
  CHECK(g.owns_permit());
  CHECK(sem.available() == 0);
  coring::semaphore_guard g2 = std::move(g);
  CHECK_FALSE(g);
  CHECK(g2);
  CHECK(sem.available() == 0);
  g2.reset();
  CHECK_FALSE(g2);
  CHECK(sem.available() == 1);
  g2.reset();  // owns nothing: no second release
  CHECK(sem.available() == 1);
  {
    auto g3 = co_await sem.acquire_guard();
    CHECK(sem.available() == 0);
  }
  CHECK(sem.available() == 1);
}

// ------------------------------------------------------------------ mutex

coring::task<> lock_and_log(coring::mutex& m, std::vector<int>& log, int id) {
  auto lock = co_await m.scoped_lock();
  log.push_back(id);
  co_await coring::yield();  // hold it across a suspension point
}

coring::task<> exclusive_worker(coring::mutex& m, int id, bool& inside, int& overlaps, std::vector<int>& log) {
  for (int round = 0; round < 3; ++round) {
    auto lock = co_await m.scoped_lock();
    if (inside) ++overlaps;
    inside = true;
    co_await coring::sleep_for(1ms);
    co_await coring::yield();
    log.push_back(id);
    inside = false;
  }
}

coring::task<> lock_guard_then_sleep(coring::mutex& m, bool& got) {
  auto lock = co_await m.scoped_lock();
  got = true;
  co_await coring::sleep_for(50ms);  // cancelled here; the guard unlocks
}

coring::task<> mutex_basics() {
  coring::mutex m;
  CHECK_FALSE(m.is_locked());
  CHECK(m.try_lock());
  CHECK(m.is_locked());
  CHECK_FALSE(m.try_lock());
  m.unlock();
  CHECK_FALSE(m.is_locked());
  co_await m.lock();  // free: no waiting
  CHECK(m.is_locked());
  m.unlock();
  {
    auto lock = co_await m.scoped_lock();
    CHECK(lock.owns_lock());
    CHECK(m.is_locked());
    auto moved = std::move(lock);
    CHECK_FALSE(lock);
    CHECK(m.is_locked());
    moved.unlock();
    CHECK_FALSE(m.is_locked());
  }
  CHECK_FALSE(m.is_locked());
}

coring::task<> mutex_exclusion() {
  coring::mutex m;
  bool inside = false;
  int overlaps = 0;
  std::vector<int> log;
  std::vector<coring::join_handle<void>> hs;
  for (int id = 1; id <= 4; ++id) hs.push_back(coring::spawn(exclusive_worker(m, id, inside, overlaps, log)));
  for (auto& h : hs) co_await h;
  CHECK(overlaps == 0);
  // FIFO hand-off: a task that comes back for the lock queues behind the others.
  CHECK(log == std::vector<int>{1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4});
  CHECK_FALSE(m.is_locked());
}

coring::task<> mutex_fifo_no_barging() {
  coring::mutex m;
  std::vector<int> log;
  co_await m.lock();
  auto a = coring::spawn(lock_and_log(m, log, 1));
  auto b = coring::spawn(lock_and_log(m, log, 2));
  co_await settle(1);
  REQUIRE(m.waiting() == 2);
  m.unlock();
  // Handed to the first waiter: still locked, and a newcomer must queue.
  CHECK(m.is_locked());
  CHECK_FALSE(m.try_lock());
  auto c = coring::spawn(lock_and_log(m, log, 3));
  co_await a;
  co_await b;
  co_await c;
  CHECK(log == std::vector<int>{1, 2, 3});
  CHECK_FALSE(m.is_locked());
}

coring::task<> mutex_cancel_waiter() {
  coring::mutex m;
  std::vector<int> log;
  co_await m.lock();
  auto a = coring::spawn(lock_and_log(m, log, 1));
  auto b = coring::spawn(lock_and_log(m, log, 2));
  auto c = coring::spawn(lock_and_log(m, log, 3));
  co_await settle();
  b.cancel();
  CHECK(m.waiting() == 2);
  co_await coring::yield();
  CHECK(b.done());
  const bool b_cancelled = co_await ended_cancelled(b);
  CHECK(b_cancelled);
  m.unlock();
  co_await a;
  co_await c;
  CHECK(log == std::vector<int>{1, 3});
  CHECK_FALSE(m.is_locked());
}

coring::task<> mutex_lock_not_lost() {
  coring::mutex m;
  co_await m.lock();
  bool got = false;
  auto h = coring::spawn(lock_guard_then_sleep(m, got));
  co_await settle();
  m.unlock();  // handed to h...
  h.cancel();  // ...which is cancelled in the same step
  const bool h_cancelled = co_await ended_cancelled(h);
  CHECK(h_cancelled);
  CHECK(got);
  CHECK_FALSE(m.is_locked());  // its guard unlocked when the cancellation ended it
  CHECK(m.try_lock());
  m.unlock();
}

// ------------------------------------------------------------------ queue

coring::task<> produce(coring::queue<int>& q, int n, int& pushed) {
  for (int i = 0; i < n; ++i) {
    co_await q.push(int{i});
    ++pushed;
  }
}

coring::task<> consume(coring::queue<int>& q, int n, std::vector<int>& got, std::size_t& max_size) {
  for (int i = 0; i < n; ++i) {
    got.push_back(co_await q.pop());
    max_size = std::max(max_size, q.size());
    co_await coring::sleep_for(100us);
  }
}

coring::task<> pop_and_log(coring::queue<int>& q, std::vector<int>& log) { log.push_back(co_await q.pop()); }

coring::task<> pop_then_yield(coring::queue<int>& q, std::optional<int>& got) {
  got = co_await q.pop();
  co_await coring::yield();  // the cancellation is delivered here
}

coring::task<> push_string(coring::queue<std::string>& q, std::string& value, bool& saw_closed) {
  try {
    co_await q.push(std::move(value));
  } catch (const coring::queue_closed& e) {
    saw_closed = std::string(e.what()).find("push on a closed queue") != std::string::npos;
    throw;
  }
}

coring::task<> push_then_yield(coring::queue<int>& q, int& value, bool& pushed) {
  co_await q.push(std::move(value));
  pushed = true;
  co_await coring::yield();  // the cancellation is delivered here
}

coring::task<> pop_expect_closed(coring::queue<int>& q, bool& saw_closed) {
  try {
    (void)co_await q.pop();
  } catch (const coring::queue_closed&) {
    saw_closed = true;
  }
}

coring::task<> queue_basics() {
  coring::queue<int> q(2);
  CHECK(q.capacity() == 2);
  CHECK(q.empty());
  CHECK_FALSE(q.full());
  CHECK(q.try_push(1));
  const int two = 2;
  CHECK(q.try_push(two));
  CHECK(q.full());
  CHECK(q.size() == 2);
  CHECK_FALSE(q.try_push(3));
  CHECK(q.try_pop() == 1);
  co_await q.push(3);  // room: no waiting; the ring buffer wraps
  auto second = co_await q.pop();
  CHECK(second == 2);
  auto third = co_await q.pop();
  CHECK(third == 3);
  CHECK(q.try_pop() == std::nullopt);
  CHECK(q.empty());

  // A move-only type: moved from only when enqueued.
  coring::queue<std::unique_ptr<int>> ptrs(1);
  auto p = std::make_unique<int>(7);
  co_await ptrs.push(std::move(p));
  CHECK(p == nullptr);
  auto other = std::make_unique<int>(8);
  CHECK_FALSE(ptrs.try_push(std::move(other)));
  REQUIRE(other != nullptr);  // refused: left with the caller
  CHECK(*other == 8);
  auto back = co_await ptrs.pop();
  CHECK(*back == 7);
}

coring::task<> queue_back_pressure() {
  coring::queue<int> q(2);
  int pushed = 0;
  auto producer = coring::spawn(produce(q, 10, pushed));
  co_await settle();
  CHECK(pushed == 2);  // blocked on the third push
  CHECK(q.full());
  CHECK(q.waiting_pushers() == 1);
  auto first = co_await q.pop();
  CHECK(first == 0);
  CHECK(q.size() == 2);  // the waiting pusher's value took the freed slot at once
  co_await settle();
  CHECK(pushed == 3);

  std::vector<int> got{0};
  std::size_t max_size = 0;
  auto consumer = coring::spawn(consume(q, 9, got, max_size));
  co_await producer;
  co_await consumer;
  CHECK(got == std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  CHECK(max_size <= 2);
  CHECK(q.empty());
}

coring::task<> queue_poppers_fifo() {
  coring::queue<int> q(4);
  std::vector<int> log;
  std::vector<coring::join_handle<void>> hs;
  for (int i = 0; i < 3; ++i) hs.push_back(coring::spawn(pop_and_log(q, log)));
  co_await settle();
  REQUIRE(q.waiting_poppers() == 3);
  CHECK(q.try_push(10));
  co_await q.push(20);
  CHECK(q.try_push(30));
  CHECK(q.empty());  // handed straight to the waiting poppers
  CHECK(log.empty());
  for (auto& h : hs) co_await h;
  CHECK(log == std::vector<int>{10, 20, 30});
}

coring::task<> queue_close() {
  coring::queue<std::string> q(2);
  CHECK(q.try_push("a"));
  co_await q.push("b");
  std::string c = "c";
  bool pusher_saw_closed = false;
  auto pusher = coring::spawn(push_string(q, c, pusher_saw_closed));
  co_await settle();
  REQUIRE(q.waiting_pushers() == 1);

  q.close();
  CHECK(q.closed());
  CHECK(q.waiting_pushers() == 0);
  bool threw = false;
  try {
    co_await pusher;
  } catch (const coring::queue_closed&) {
    threw = true;
  }
  CHECK(threw);
  CHECK(pusher_saw_closed);
  CHECK(c == "c");  // never enqueued: still the pusher's

  std::string d = "d";
  CHECK_THROWS_WITH_AS((void)q.try_push(std::move(d)), doctest::Contains("push on a closed queue"),
                       coring::queue_closed);
  CHECK(d == "d");
  threw = false;
  try {
    co_await q.push(std::string("e"));
  } catch (const coring::queue_closed& e) {
    threw = std::string(e.what()).find("push on a closed queue") != std::string::npos;
  }
  CHECK(threw);

  // Poppers drain what was queued, then see the queue closed.
  auto first = co_await q.pop();
  CHECK(first == "a");
  CHECK(q.try_pop() == "b");
  threw = false;
  try {
    (void)co_await q.pop();
  } catch (const coring::queue_closed&) {
    threw = true;
  }
  CHECK(threw);
  CHECK_THROWS_AS((void)q.try_pop(), coring::queue_closed);

  // A popper waiting when the queue closes is woken with queue_closed.
  coring::queue<int> q2(1);
  bool popper_saw_closed = false;
  auto popper = coring::spawn(pop_expect_closed(q2, popper_saw_closed));
  co_await settle();
  REQUIRE(q2.waiting_poppers() == 1);
  q2.close();
  q2.close();  // idempotent
  co_await popper;
  CHECK(popper_saw_closed);
}

coring::task<> queue_cancel_pusher() {
  coring::queue<std::string> q(1);
  co_await q.push("a");
  std::string b = "b";
  std::string c = "c";
  bool unused = false;
  auto pb = coring::spawn(push_string(q, b, unused));
  auto pc = coring::spawn(push_string(q, c, unused));
  co_await settle();
  REQUIRE(q.waiting_pushers() == 2);
  pb.cancel();
  CHECK(q.waiting_pushers() == 1);
  const bool pb_cancelled = co_await ended_cancelled(pb);
  CHECK(pb_cancelled);
  CHECK(b == "b");  // never enqueued: not lost, still the pusher's
  auto first = co_await q.pop();
  CHECK(first == "a");
  auto second = co_await q.pop();  // b is not in the queue: not duplicated either
  CHECK(second == "c");
  co_await pc;
  CHECK(q.empty());
  CHECK(c.empty());  // moved from: it was enqueued
}

coring::task<> queue_cancel_popper() {
  coring::queue<int> q(1);
  {
    // Cancelled while waiting: it leaves, and the value goes to the next popper.
    std::vector<int> log;
    auto a = coring::spawn(pop_and_log(q, log));
    auto b = coring::spawn(pop_and_log(q, log));
    co_await settle();
    a.cancel();
    CHECK(q.waiting_poppers() == 1);
    const bool a_cancelled = co_await ended_cancelled(a);
    CHECK(a_cancelled);
    CHECK(q.try_push(5));
    co_await b;
    CHECK(log == std::vector<int>{5});
    CHECK(q.empty());
  }
  {
    // Handed a value, then cancelled in the same step: it still gets the value.
    std::optional<int> got;
    auto h = coring::spawn(pop_then_yield(q, got));
    co_await settle();
    CHECK(q.try_push(7));
    CHECK(q.empty());
    h.cancel();
    const bool h_cancelled = co_await ended_cancelled(h);
    CHECK(h_cancelled);
    CHECK(got == 7);
    CHECK(q.empty());
  }
  {
    // A waiting pusher whose value a pop took, then cancelled: its push succeeded.
    CHECK(q.try_push(1));
    int value = 2;
    bool pushed = false;
    auto h = coring::spawn(push_then_yield(q, value, pushed));
    co_await settle();
    REQUIRE(q.waiting_pushers() == 1);
    auto first = co_await q.pop();  // frees the slot: 2 moves in
    CHECK(first == 1);
    h.cancel();
    const bool h_cancelled = co_await ended_cancelled(h);
    CHECK(h_cancelled);
    CHECK(pushed);
    CHECK(q.size() == 1);
    auto second = co_await q.pop();  // exactly once
    CHECK(second == 2);
    CHECK(q.empty());
  }
}

coring::task<> queue_rendezvous() {
  coring::queue<int> q(0);
  CHECK(q.empty());
  CHECK(q.full());
  CHECK_FALSE(q.try_push(1));  // nobody waits to pop
  int pushed = 0;
  auto producer = coring::spawn(produce(q, 2, pushed));
  co_await settle();
  CHECK(q.waiting_pushers() == 1);
  CHECK(pushed == 0);
  CHECK(q.try_pop() == 0);  // taken straight from the pusher
  auto second = co_await q.pop();
  CHECK(second == 1);
  co_await producer;
  CHECK(pushed == 2);
  CHECK(q.try_pop() == std::nullopt);

  std::vector<int> log;
  auto popper = coring::spawn(pop_and_log(q, log));
  co_await settle();
  CHECK(q.try_push(9));  // a popper waits: handed over
  co_await popper;
  CHECK(log == std::vector<int>{9});
}

// ------------------------------------------------------------------ misuse
#if CORING_CHECKS

// Runs `fn` in a child process; true if it died of SIGABRT (a CORING_ASSERT).
template <class Fn>
bool aborts(Fn fn) {
  std::fflush(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    // The child must die by the assertion alone: no doctest crash handler, and
    // the expected message stays out of the test's output.
    std::signal(SIGABRT, SIG_DFL);
    int devnull = ::open("/dev/null", O_WRONLY);
    if (devnull >= 0) {
      ::dup2(devnull, 1);
      ::dup2(devnull, 2);
    }
    fn();
    ::_exit(0);
  }
  int status = 0;
  if (pid < 0 || ::waitpid(pid, &status, 0) != pid) return false;
  return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
}

coring::task<> acquire_once(coring::semaphore& sem) { co_await sem.acquire(); }

#endif  // CORING_DEBUG

}  // namespace

TEST_SUITE("runtime/sync") {
  TEST_CASE("event wait returns at once while set and suspends again after clear" * doctest::timeout(10)) {
    coring::run(event_basics());
  }
  TEST_CASE("event set wakes every waiter through the loop in the order they started waiting" *
            doctest::timeout(10)) {
    coring::run(event_fifo());
  }
  TEST_CASE("a cancelled event waiter ends at once and leaves the others to be woken" * doctest::timeout(10)) {
    coring::run(event_cancel_waiter());
  }
  TEST_CASE("an event waiter woken and cancelled in the same step returns and sees the cancellation next" *
            doctest::timeout(10)) {
    coring::run(event_woken_then_cancelled());
  }

  TEST_CASE("semaphore counts permits with try_acquire, acquire and release" * doctest::timeout(10)) {
    coring::run(semaphore_basics());
  }
  TEST_CASE("semaphore release hands the permit to the first waiter so a newcomer cannot barge" *
            doctest::timeout(10)) {
    coring::run(semaphore_fifo_handoff());
  }
  TEST_CASE("a cancelled semaphore waiter ends at once, takes no permit, and the others are served" *
            doctest::timeout(10)) {
    coring::run(semaphore_cancel_waiter());
  }
  TEST_CASE("a permit handed to a task cancelled in the same step is returned by its guard, not lost" *
            doctest::timeout(10)) {
    coring::run(semaphore_permit_not_lost());
  }
  TEST_CASE("a semaphore of 10 keeps at most 10 of 50 tasks inside, admitted in FIFO order" *
            doctest::timeout(10)) {
    coring::run(semaphore_bounds_concurrency());
  }
  TEST_CASE("semaphore_guard returns its permit exactly once, after moves and reset" * doctest::timeout(10)) {
    coring::run(semaphore_guard_moves());
  }

  TEST_CASE("mutex try_lock fails while locked and unlock frees it" * doctest::timeout(10)) {
    coring::run(mutex_basics());
  }
  TEST_CASE("mutex keeps a section exclusive across suspension points and serves waiters in turn" *
            doctest::timeout(10)) {
    coring::run(mutex_exclusion());
  }
  TEST_CASE("mutex unlock hands the lock to the first waiter so a newcomer cannot barge" *
            doctest::timeout(10)) {
    coring::run(mutex_fifo_no_barging());
  }
  TEST_CASE("a cancelled mutex waiter ends at once and the lock goes to the next waiter" *
            doctest::timeout(10)) {
    coring::run(mutex_cancel_waiter());
  }
  TEST_CASE("a lock handed to a task cancelled in the same step is released by its guard" *
            doctest::timeout(10)) {
    coring::run(mutex_lock_not_lost());
  }

  TEST_CASE("queue try_push and try_pop respect capacity and order, and refuse without consuming" *
            doctest::timeout(10)) {
    coring::run(queue_basics());
  }
  TEST_CASE("queue producer waits while full and the consumer sees every item in order" *
            doctest::timeout(10)) {
    coring::run(queue_back_pressure());
  }
  TEST_CASE("queue poppers wait while empty and receive pushed values in FIFO order" * doctest::timeout(10)) {
    coring::run(queue_poppers_fifo());
  }
  TEST_CASE("a closed queue fails pushers with queue_closed and lets poppers drain it first" *
            doctest::timeout(10)) {
    coring::run(queue_close());
  }
  TEST_CASE("a cancelled pusher keeps its value and the queue neither loses nor duplicates it" *
            doctest::timeout(10)) {
    coring::run(queue_cancel_pusher());
  }
  TEST_CASE("a value handed to a popper is delivered even if the popper is cancelled in the same step" *
            doctest::timeout(10)) {
    coring::run(queue_cancel_popper());
  }
  TEST_CASE("a queue of capacity 0 hands each value from a pusher to a popper" * doctest::timeout(10)) {
    coring::run(queue_rendezvous());
  }

#if CORING_CHECKS
  TEST_CASE("unlocking a free mutex or destroying a primitive with waiters is caught by an assertion" *
            doctest::timeout(10)) {
    CHECK(aborts([] {
      coring::mutex m;
      m.unlock();
    }));
    CHECK(aborts([] {
      coring::event_loop loop;
      auto* sem = new coring::semaphore(0);
      auto h = coring::spawn(acquire_once(*sem));
      loop.run_once();  // the task starts and waits for a permit
      delete sem;
    }));
    CHECK_FALSE(aborts([] {
      coring::mutex m;
      if (m.try_lock()) m.unlock();
    }));
  }
#endif
}
