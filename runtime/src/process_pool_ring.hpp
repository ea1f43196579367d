#pragma once
// The process pool manager's little ring loop: its wait, through an io_uring
// of its own. One-shot POLL_ADDs on the wake eventfd, each worker's socket and
// each worker's pidfd (a pidfd polls readable when the process exits), and a
// worker's socket for POLLOUT while a job waits for room in it,
// re-armed after they fire — poll(2) semantics, but a worker's death is seen
// through the ring. A poll in the ring holds a reference to its file: a socket
// closed with a poll still armed would stay open for the worker (no end of
// stream), so close() removes the poll and reaps its completion first.

#include <liburing.h>

#include <cstdint>
#include <unordered_map>

namespace coring::detail {

/// The manager thread's wait. **Thread safety:** one thread (the manager's,
/// which must also create it: the ring's owner).
class ring_waiter {
 public:
  /// **Errors:** io_error if the ring cannot be created.
  ring_waiter();
  ring_waiter(const ring_waiter&) = delete;
  ring_waiter& operator=(const ring_waiter&) = delete;
  ~ring_waiter();

  /// Watches `fd` for POLLIN, or POLLOUT if `out` (arms a poll unless one is armed).
  void watch(int fd, bool out = false);
  /// Submits and waits until at least one watched fd is ready.
  void wait();
  /// True (once) if `fd` became readable (writable if `out`) in the last wait.
  bool take_ready(int fd, bool out = false);
  /// Removes `fd`'s polls (waiting for the ring to let go of the file), then closes it.
  void close(int& fd) noexcept;

 private:
  struct slot {
    bool armed = false;  // a POLL_ADD for it is in the ring
    bool ready = false;  // it fired and has not been taken
  };

  // A poll's user_data and key in slots_: the fd and the direction; 0 is a POLL_REMOVE's own completion.
  static std::uint64_t key(int fd, bool out) noexcept {
    return ((static_cast<std::uint64_t>(fd) << 1) | (out ? 1 : 0)) + 1;
  }
  void remove(int fd, bool out) noexcept;
  io_uring_sqe* sqe_or_flush() noexcept;
  void reap() noexcept;

  io_uring ring_{};                      // the manager thread's own ring
  std::unordered_map<std::uint64_t, slot> slots_;  // by key()
};

}  // namespace coring::detail
