#pragma once
// A deadline registered in the loop's timer heap. Internal. The node lives in
// the awaiting coroutine's frame (a sleep) or a combinator's state (wait_for);
// the heap holds (deadline, node*) and the node knows its heap slot, so that
// removing a cancelled timer is O(log n).

#include <cstdint>

namespace coring::detail {

struct timer_node {
  static constexpr std::uint32_t not_queued = ~0u;
  std::int64_t deadline_ns = 0;                   // steady_clock time, in ns since its epoch
  void (*fire)(timer_node*) noexcept = nullptr;   // called once when the deadline passes
  std::uint32_t heap_index = not_queued;          // slot in the heap, or not_queued
  bool fired = false;                             // the deadline passed (set by the loop before fire)
};

}  // namespace coring::detail
