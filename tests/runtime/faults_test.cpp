// Faults in the runtime itself: allocations that fail while children start,
// a ring that fails while the loop shuts down, and the allocations the hot
// paths are allowed to make at all.

#include <coring/event_loop.hpp>

#include <coring/as_completed.hpp>
#include <coring/detail/loop_access.hpp>
#include <coring/error.hpp>
#include <coring/gather.hpp>
#include <coring/io.hpp>
#include <coring/sleep.hpp>
#include <coring/spawn.hpp>
#include <coring/task.hpp>
#include <coring/task_group.hpp>
#include <coring/wait_for.hpp>
#include <coring/when_any.hpp>

#include <doctest/doctest.h>

#include "support/allocations.hpp"
#include "support/counted.hpp"
#include "support/pipe.hpp"
#include "support/sanitizers.hpp"
#include "support/tasks.hpp"
#include "support/watchdog.hpp"

#include <fcntl.h>
#include <liburing.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <new>
#include <vector>

namespace {

using namespace std::chrono_literals;
using coring::task;
using coring_test::counted;
using coring_test::value_after;

// Undoes fail_allocations_after when a check throws.
struct allocation_faults {
  explicit allocation_faults(long after) noexcept { coring_test::fail_allocations_after(after); }
  ~allocation_faults() { coring_test::fail_allocations_after(-1); }
};

// What a combinator under injected allocation failures ended with.
enum class ended { with_values, with_bad_alloc };

template <class Combine>
ended run_with_failures_after(long n, Combine combine) {
  return coring::run([](long n, Combine& combine) -> task<ended> {
    std::vector<task<int>> tasks;
    for (int i = 0; i < 4; ++i) tasks.push_back(value_after(1ms, i, counted{}));
    try {
      bool ok;
      {
        allocation_faults faults(n);
        ok = co_await combine(std::move(tasks));
      }
      CHECK(ok);
      co_return ended::with_values;
    } catch (const std::bad_alloc&) {
      co_return ended::with_bad_alloc;
    }
  }(n, combine));
}

}  // namespace

TEST_SUITE("runtime/faults") {

TEST_CASE("children that cannot start for lack of memory leave no frame and no orphan" * doctest::timeout(30)) {
  // For every point at which an allocation can fail while a combinator starts
  // and runs its children, it ends with its values or with std::bad_alloc,
  // and every child has ended and been freed (counted; LeakSanitizer watches
  // the rest).
  REQUIRE(counted::live() == 0);
  auto gather_all = [](std::vector<task<int>> ts) -> task<bool> {
    auto v = co_await coring::gather(std::move(ts));
    co_return v == std::vector<int>{0, 1, 2, 3};
  };
  auto first = [](std::vector<task<int>> ts) -> task<bool> {
    auto r = co_await coring::when_any(std::move(ts));
    co_return r.value == static_cast<int>(r.index);
  };
  auto group = [](std::vector<task<int>> ts) -> task<bool> {
    co_await coring::task_group::run([&](coring::task_group& g) -> task<> {
      for (auto& t : ts) g.spawn(std::move(t));
      co_return;
    });
    co_return true;
  };
  auto stream = [](std::vector<task<int>> ts) -> task<bool> {
    int sum = co_await coring::as_completed(std::move(ts), [](auto& s) -> task<int> {
      int total = 0;
      while (!s.done()) total += co_await s.next();
      co_return total;
    });
    co_return sum == 6;
  };
  int failures = 0;
  for (long n = 0; n < 40; ++n) {
    for (ended e : {run_with_failures_after(n, gather_all), run_with_failures_after(n, first),
                    run_with_failures_after(n, group), run_with_failures_after(n, stream)}) {
      if (e == ended::with_bad_alloc) ++failures;
    }
    CHECK(counted::live() == 0);
  }
  CHECK(failures > 0);  // the injection did reach the combinators
}

TEST_CASE("a ring that fails while the loop shuts down is reported, not a crash" * doctest::timeout(10)) {
  // The loop's ring stops working (its descriptor now points at /dev/null)
  // while a task waits in a read: the destructor's drain cannot cancel it.
  // It must say so and return; it used to throw out of ~event_loop, which is
  // std::terminate.
  auto result = coring_test::run_in_child(
      [] {
        coring_test::test_pipe p;
        {
          coring::event_loop loop;
          loop.run_until_complete([](int fd) -> task<> {
            coring::spawn([](int fd) -> task<> {
              std::array<std::byte, 8> buf;
              (void)co_await coring::read_some(fd, buf);
            }(fd)).detach();
            co_await coring::yield();
            co_await coring::yield();
          }(p.read_fd()));
          int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
          // The ring is gone from under the loop. (loop.fd() is its eventfd, not the ring's.)
          ::dup2(null, coring::detail::loop_access::ring(loop).ring_fd);
          ::close(null);
        }  // must not terminate
        return true;
      },
      5s);
  CHECK(result == coring_test::child_result::exited_ok);
}

// Under ASan frames are plain operator new too, so they would be counted.
TEST_CASE("gather, wait_for and when_any make no allocation of their own" * doctest::timeout(10) *
          doctest::skip(coring_test::under_asan)) {
  coring::run([]() -> task<> {
    // Warm up: the loop's queues and tables reach their size.
    (void)co_await coring::gather(value_after(0ms, 1), value_after(0ms, 2));
    (void)co_await coring::wait_for(value_after(0ms, 1), 1s);
    (void)co_await coring::when_any(value_after(0ms, 1), value_after(0ms, 2));
    coring_test::allocation_scope counting;
    auto [a, b] = co_await coring::gather(value_after(0ms, 1), value_after(0ms, 2));
    CHECK(a + b == 3);
    CHECK(co_await coring::wait_for(value_after(0ms, 3), 1s) == 3);
    auto any = co_await coring::when_any(value_after(0ms, 4), value_after(1ms, 5));
    CHECK(any.index() == 0);
    CHECK(counting.count() == 0);  // frames come from the frame allocator; nothing else
  }());
}

TEST_CASE("post makes one allocation, holding the callable" * doctest::timeout(10)) {
  coring::event_loop loop;
  int ran = 0;
  loop.post([&ran] { ++ran; });  // warm up
  loop.run_once();
  coring_test::allocation_scope counting;
  loop.post([&ran, pad = std::array<char, 64>{}] { ran += 1 + pad[0]; });
  CHECK(counting.count() == 1);
  loop.run_once();
  CHECK(ran == 2);
}

}  // TEST_SUITE
