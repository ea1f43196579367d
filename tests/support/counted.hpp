#pragma once
// counted: a value that counts its live instances, to prove that coroutine
// frames (and whatever they hold) are freed.
//
//   coring::task<> holder(counted c) { co_await coring::sleep_for(10s); }
//   ... run or cancel it ...
//   CHECK(counted::live() == 0);
//
// The counter is a static atomic shared by every test of the binary, so a
// test that uses it starts by checking that it is 0 (a leak in an earlier
// test then shows up there too).

#include <atomic>

namespace coring_test {

class counted {
 public:
  counted() noexcept { count_.fetch_add(1, std::memory_order_relaxed); }
  counted(const counted&) noexcept { count_.fetch_add(1, std::memory_order_relaxed); }
  counted(counted&&) noexcept { count_.fetch_add(1, std::memory_order_relaxed); }
  counted& operator=(const counted&) noexcept = default;
  counted& operator=(counted&&) noexcept = default;
  ~counted() { count_.fetch_sub(1, std::memory_order_relaxed); }

  /// Instances alive right now.
  [[nodiscard]] static int live() noexcept { return count_.load(std::memory_order_relaxed); }

 private:
  static inline std::atomic<int> count_{0};
};

}  // namespace coring_test
