#pragma once
// stopwatch: elapsed time for lower-bound and "clearly faster than" checks.
// Never assert an exact duration: only order, lower bounds, and generous
// upper bounds that separate "at once" from "when the timer fires".

#include <doctest/doctest.h>

#include <chrono>
#include <string>

namespace coring_test {

using namespace std::chrono_literals;

class stopwatch {
 public:
  using clock = std::chrono::steady_clock;
  stopwatch() noexcept : start_(clock::now()) {}
  /// Time since construction (or the last restart()).
  [[nodiscard]] clock::duration elapsed() const noexcept { return clock::now() - start_; }
  void restart() noexcept { start_ = clock::now(); }

 private:
  clock::time_point start_;
};

}  // namespace coring_test

// Durations print as "<n> ns" in assertion messages.
namespace doctest {
template <class Rep, class Period>
struct StringMaker<std::chrono::duration<Rep, Period>> {
  static String convert(const std::chrono::duration<Rep, Period>& d) {
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
    return String((std::to_string(ns) + " ns").c_str());
  }
};
}  // namespace doctest
