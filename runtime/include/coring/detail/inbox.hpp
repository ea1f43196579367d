#pragma once
// inbox: how other threads hand work to a loop. Internal.
//
// An intrusive MPSC stack (push with CAS, drain with exchange, reversed to
// FIFO) plus a three-state park word (EMPTY / PARKED / NOTIFIED): a producer
// writes the eventfd only if it swapped the word away from PARKED, so there
// is at most one write per loop sleep (see docs/runtime.md). The
// inbox is shared (shared_ptr) with producers and outlives its loop; the loop
// closes it when it ends, after which push() fails and items are disposed of
// by their producer.

#include <atomic>
#include <cstdint>

namespace coring::detail {

struct inbox_item {
  inbox_item* next = nullptr;
  /// Runs the item on the loop thread (`loop_alive`), or only releases its
  /// resources when the loop closed before running it. Must free the item if it owns itself.
  void (*run)(inbox_item* self, bool loop_alive) noexcept = nullptr;
};

class inbox {
 public:
  /// Takes ownership of the eventfd `efd`.
  explicit inbox(int efd) noexcept : efd_(efd) {}
  ~inbox();
  inbox(const inbox&) = delete;
  inbox& operator=(const inbox&) = delete;

  /// Adds an item and wakes the loop if it is parked. Returns false if the
  /// inbox is closed (the item was not taken). **Thread safety:** any thread.
  bool push(inbox_item* item) noexcept;
  /// True if items are waiting (a cheap check for the loop).
  bool has_items() const noexcept {
    inbox_item* h = head_.load(std::memory_order_relaxed);
    return h != nullptr && h != closed_marker();
  }
  /// Takes every waiting item, oldest first (linked by next). Loop thread.
  inbox_item* take_all() noexcept;
  /// Before the loop blocks: EMPTY→PARKED. False if a producer already
  /// notified or items are waiting (then the loop must not block).
  bool try_park() noexcept;
  /// After the loop wakes: back to EMPTY.
  void unpark() noexcept { park_.store(empty, std::memory_order_seq_cst); }
  /// Refuses further pushes and runs every waiting item with loop_alive = false.
  void close() noexcept;
  /// The eventfd producers write to wake the loop.
  int fd() const noexcept { return efd_; }
  /// eventfd writes made so far (one per park at most).
  std::uint64_t wakeups() const noexcept { return wakeups_.load(std::memory_order_relaxed); }

 private:
  static constexpr int empty = 0, parked = 1, notified = 2;
  static inbox_item* closed_marker() noexcept { return reinterpret_cast<inbox_item*>(std::uintptr_t{1}); }

  std::atomic<inbox_item*> head_{nullptr};  // newest first; closed_marker() once closed
  std::atomic<int> park_{empty};            // EMPTY / PARKED / NOTIFIED
  std::atomic<std::uint64_t> wakeups_{0};   // eventfd writes made
  int efd_;                                  // eventfd armed (polled) in the loop's ring
};

}  // namespace coring::detail
