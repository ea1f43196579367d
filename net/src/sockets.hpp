#pragma once
// Helpers shared by net's sources. Private.

#include <coring/net/address.hpp>
#include <coring/net/detail/socket_operation.hpp>

#include <unistd.h>

#include <utility>

namespace coring::net::detail {

/// Closes a descriptor unless released.
struct fd_guard {
  int fd;
  ~fd_guard() {
    if (fd >= 0) ::close(fd);
  }
  int release() noexcept { return std::exchange(fd, -1); }
};

/// Sets SIGPIPE to SIG_IGN once per process if it still has the default
/// action (a handler the application installed is left alone). Every send
/// of ours carries MSG_NOSIGNAL; this covers what cannot: splice into a
/// socket, and the runtime's plain write_some on a socket fd.
void ignore_sigpipe_once() noexcept;

/// getpeername / getsockname as addresses (family none on failure).
address peer_of(int fd) noexcept;
address local_of(int fd) noexcept;

/// One IORING_OP_CONNECT. Gives 0 or -errno (-ECANCELED: its deadline passed).
class connect_operation : public socket_operation {
 public:
  connect_operation(int fd, const address& to, std::chrono::nanoseconds timeout) noexcept;
  int await_resume() { return result(); }

 private:
  static void prep(::io_uring_sqe* sqe, socket_operation& op) noexcept;
  int fd_;
  const address* to_;
};

}  // namespace coring::net::detail
