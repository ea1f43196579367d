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
  std::int64_t slice_ns = 0;       // options::run_once_slice: how long run_once() runs ready work
  unsigned batch_wait_us = 0;      // options::batch_wait where the kernel has min-wait, else 0
  bool eventfd_registered = false; // the inbox's eventfd is registered with the ring (first run_once())
  bool kernel_signals = false;     // ...and the kernel signals it (IORING_CQ_EVENTFD_DISABLED clear);
                                   // off while the loop blocks in the ring itself, on while a host holds it

  /// True if entering the kernel may reap something: deferred completion
  /// work waits (IORING_SQ_TASKRUN, with IORING_SETUP_TASKRUN_FLAG) or CQEs
  /// overflowed. Without TASKRUN_FLAG we cannot tell: then, if anything of
  /// ours is in flight. (Untracked SQEs, such as a linked timeout being
  /// cancelled, leave work behind too: only the flag sees it.)
  bool completions_pending() const noexcept {
    if (!(setup_flags & IORING_SETUP_TASKRUN_FLAG)) return in_flight != 0;
    return (__atomic_load_n(ring.sq.kflags, __ATOMIC_ACQUIRE) & (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW)) != 0;
  }

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
