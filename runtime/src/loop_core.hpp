#pragma once
// The private half of event_loop: the ring and the timer heap.

#include <coring/detail/loop_access.hpp>
#include <coring/detail/timer_node.hpp>

#include <liburing.h>

#include <cstdint>
#include <vector>


namespace coring::detail {

class loop_core {
 public:
  struct timer_entry {
    std::int64_t deadline_ns;  // copy of node->deadline_ns, kept here for cache-friendly sifting
    timer_node* node;
  };

  io_uring ring{};                 // the ring; created on the loop's thread
  unsigned setup_flags = 0;        // IORING_SETUP_* it was created with
  std::vector<timer_entry> heap;   // binary min-heap of deadlines
  std::size_t in_flight = 0;       // our SQEs whose final CQE has not come back (eventfd poll excluded)
  unsigned busy_steps = 0;         // steps with ready work since we last entered the kernel
  bool efd_armed = false;          // the eventfd poll is in the ring
  completion efd_completion{};     // user_data of the eventfd poll
  std::vector<completion*> pending_cancels;  // cancels that found the SQ full, sent first by the next step

  void heap_push(timer_node& t);
  void heap_remove(timer_node& t) noexcept;
  timer_node* heap_pop() noexcept;

 private:
  void place(std::size_t i, const timer_entry& e) noexcept {
    heap[i] = e;
    e.node->heap_index = static_cast<std::uint32_t>(i);
  }
  void sift_up(std::size_t i, timer_entry e) noexcept;
  void sift_down(std::size_t i, timer_entry e) noexcept;
};

}  // namespace coring::detail
