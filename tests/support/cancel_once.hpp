#pragma once
// expect_cancelled_once: the exactly-once law for one kind of leaf.
//
//   coring_test::expect_cancelled_once([&]() -> coring::task<> { co_await some_leaf(); });
//
// Runs the awaiting task on a loop, lets it suspend in the leaf, cancels it,
// and checks that the task sees coring::cancelled exactly once: its clean-up
// awaits afterwards (a sleep, a yield) run normally instead of throwing the
// same cancellation again, and the task then ends with its own value.

#include <coring/error.hpp>
#include <coring/event_loop.hpp>
#include <coring/sleep.hpp>
#include <coring/spawn.hpp>
#include <coring/task.hpp>

#include <doctest/doctest.h>

#include <chrono>

namespace coring_test {

/// What became of the cancelled task.
struct cancel_report {
  int cancellations_seen = 0;   // coring::cancelled caught at the leaf
  bool cleanup_ran = false;     // the awaits after it completed normally
  bool ended_normally = false;  // the task's join gave its value
};

template <class MakeLeaf>
cancel_report cancel_while_suspended(MakeLeaf make_leaf, int settle_steps = 5) {
  cancel_report r;
  coring::run([](MakeLeaf& make, cancel_report& r, int settle) -> coring::task<> {
    auto victim = coring::spawn([](MakeLeaf& make, cancel_report& r) -> coring::task<int> {
      try {
        co_await make();
      } catch (const coring::cancelled&) {
        ++r.cancellations_seen;
      }
      co_await coring::sleep_for(std::chrono::milliseconds(1));  // must not throw the same cancellation
      co_await coring::yield();
      r.cleanup_ran = true;
      co_return 7;
    }(make, r));
    for (int i = 0; i < settle; ++i) co_await coring::yield();
    victim.cancel();
    r.ended_normally = (co_await victim) == 7;
  }(make_leaf, r, settle_steps));
  return r;
}

template <class MakeLeaf>
void expect_cancelled_once(MakeLeaf make_leaf, int settle_steps = 5) {
  cancel_report r = cancel_while_suspended(make_leaf, settle_steps);
  CHECK(r.cancellations_seen == 1);
  CHECK(r.cleanup_ran);
  CHECK(r.ended_normally);
}

}  // namespace coring_test
