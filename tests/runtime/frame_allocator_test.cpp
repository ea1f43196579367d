// The frame allocator under the pattern run_coroutine_threadsafe creates:
// frames made on one thread and freed on another, for ever.

#include <coring/detail/frame_allocator.hpp>

#include <coring/sleep.hpp>
#include <coring/task.hpp>

#include <doctest/doctest.h>

#include "support/allocations.hpp"
#include "support/sanitizers.hpp"

#include <unistd.h>

#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

namespace {

coring::task<int> never_started(int v) { co_return v; }

// A task whose frame holds ~800 bytes across a suspension: a frame of about
// 900 bytes, the size of a request handler with a few strings and a response.
coring::task<int> big_frame(int v) {
  char scratch[800];
  for (std::size_t i = 0; i < sizeof scratch; ++i) scratch[i] = static_cast<char>(v + static_cast<int>(i));
  co_await coring::sleep_for(std::chrono::seconds(0));
  int sum = 0;
  for (char c : scratch) sum += c;
  co_return sum;
}

// Resident set size of this process, in bytes.
std::size_t resident_bytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  REQUIRE(f != nullptr);
  unsigned long size = 0, resident = 0;
  REQUIRE(std::fscanf(f, "%lu %lu", &size, &resident) == 2);
  std::fclose(f);
  return resident * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
}

// CORING_STRESS=1 runs the long form.
std::size_t scaled(std::size_t quick, std::size_t full) { return std::getenv("CORING_STRESS") ? full : quick; }

}  // namespace

TEST_SUITE("runtime/frame_allocator") {

TEST_CASE("frames up to 1 KiB come from the free lists, not operator new" * doctest::timeout(30) *
          doctest::skip(coring_test::under_asan)) {
  coring::run([]() -> coring::task<> {
    // The first carves a chunk (malloc, not operator new) and warms the loop's timers.
    const int expected = co_await big_frame(1);
    coring_test::allocation_scope counting;
    for (int i = 0; i < 1000; ++i) CHECK(co_await big_frame(1) == expected);
    CHECK(counting.count() == 0);
  }());
}

// Under ASan frames are plain operator new and freed memory is quarantined:
// the allocator tested here is not in that build.
TEST_CASE("frames made on one thread and freed on another are reused, in flat memory" * doctest::timeout(120) *
          doctest::skip(coring_test::under_asan)) {
  const std::size_t total = scaled(10'000'000, 50'000'000);
  constexpr std::size_t batch = 1024;
  std::mutex m;
  std::condition_variable cv;
  std::deque<std::vector<coring::task<int>>> handed;
  bool finished = false;
  std::size_t freed = 0;
  std::size_t consumer_cache = 0;

  std::thread consumer([&] {
    for (;;) {
      std::vector<coring::task<int>> tasks;
      {
        std::unique_lock lock(m);
        cv.wait(lock, [&] { return !handed.empty() || finished; });
        if (handed.empty()) break;
        tasks = std::move(handed.front());
        handed.pop_front();
      }
      cv.notify_all();
      freed += tasks.size();
      tasks.clear();  // the frames die here, on this thread
    }
    consumer_cache = coring::detail::frame_cache_statistics().thread_cached_bytes;
  });

  std::size_t rss_after_warmup = 0;
  for (std::size_t made = 0; made < total; made += batch) {
    std::vector<coring::task<int>> tasks;
    tasks.reserve(batch);
    for (std::size_t i = 0; i < batch; ++i) tasks.push_back(never_started(static_cast<int>(i)));
    {
      std::unique_lock lock(m);
      cv.wait(lock, [&] { return handed.size() < 8; });
      handed.push_back(std::move(tasks));
    }
    cv.notify_all();
    if (rss_after_warmup == 0 && made >= total / 10) rss_after_warmup = resident_bytes();
  }
  {
    std::lock_guard lock(m);
    finished = true;
  }
  cv.notify_all();
  consumer.join();
  const std::size_t rss_end = resident_bytes();
  CHECK(freed == (total + batch - 1) / batch * batch);
  MESSAGE("RSS after warm-up " << rss_after_warmup / 1024 << " KiB, at the end " << rss_end / 1024 << " KiB");
  // 9/10 of the frames were made after the warm-up; kept, they would add
  // hundreds of MiB.
  CHECK(rss_end < rss_after_warmup + 16 * 1024 * 1024);
  CHECK(consumer_cache <= 64 * 1024);  // the freeing thread keeps a bounded cache
}

}  // TEST_SUITE
