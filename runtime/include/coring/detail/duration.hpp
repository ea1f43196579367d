#pragma once
// Turning a user's timeout (any std::chrono::duration, integral or floating,
// possibly max(), infinite or NaN) into nanoseconds without undefined
// behaviour. Internal.

#include <chrono>
#include <cstdint>

namespace coring::detail {

/// No deadline at all.
inline constexpr std::int64_t no_deadline = -1;

/// `d` in whole nanoseconds, rounded up; zero for zero, negative and NaN
/// durations (they expire at once); no_deadline beyond ~31 years (max(),
/// infinity): such a timeout never fires.
template <class Rep, class Period>
std::int64_t timeout_ns(std::chrono::duration<Rep, Period> d) noexcept {
  const double seconds = std::chrono::duration<double>(d).count();
  if (!(seconds > 0)) return 0;
  if (seconds > 1e9) return no_deadline;
  return std::chrono::ceil<std::chrono::nanoseconds>(d).count();
}

/// now + `d` on the steady clock, saturating: max() and infinity give
/// time_point::max() (never); zero, negative and NaN give now.
template <class Rep, class Period>
std::chrono::steady_clock::time_point deadline_after(std::chrono::duration<Rep, Period> d) noexcept {
  const std::int64_t ns = timeout_ns(d);
  if (ns == no_deadline) return std::chrono::steady_clock::time_point::max();
  return std::chrono::steady_clock::now() + std::chrono::nanoseconds(ns);
}

}  // namespace coring::detail
