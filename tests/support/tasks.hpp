#pragma once
// Small tasks the combinator tests share: values after a delay, a failure
// after a delay, and a long sleeper that records the cancellation it sees.

#include "support/counted.hpp"

#include <coring/sleep.hpp>
#include <coring/task.hpp>

#include <chrono>
#include <stdexcept>
#include <string>

namespace coring_test {

inline coring::task<int> value_after(std::chrono::milliseconds d, int v, counted = {}) {
  co_await coring::sleep_for(d);
  co_return v;
}

inline coring::task<> nothing_after(std::chrono::milliseconds d) { co_await coring::sleep_for(d); }

inline coring::task<std::string> text_after(std::chrono::milliseconds d, std::string s) {
  co_await coring::sleep_for(d);
  co_return s;
}

inline coring::task<int> fails_after(std::chrono::milliseconds d, std::string message, counted = {}) {
  co_await coring::sleep_for(d);
  throw std::runtime_error(message);
}

/// Lets the tasks spawned so far — and those they spawn, a few levels down —
/// start and reach their first suspension. Steps, not time: under a loaded
/// machine a short sleep may end before a child ever ran, and a task
/// cancelled before it first ran never runs its body.
inline coring::task<> let_children_start(int steps = 10) {
  for (int i = 0; i < steps; ++i) co_await coring::yield();
}

/// Sleeps 10 s; counts the cancellation it observes, then lets it go on.
inline coring::task<int> cancellable(int& cancellations, counted = {}) {
  try {
    co_await coring::sleep_for(std::chrono::seconds(10));
  } catch (const coring::cancelled&) {
    ++cancellations;
    throw;
  }
  co_return 0;
}

}  // namespace coring_test
