#include "sockets.hpp"

#include <liburing.h>
#include <signal.h>
#include <sys/socket.h>

#include <mutex>

namespace coring::net::detail {

void ignore_sigpipe_once() noexcept {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction current {};
    if (::sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) {
      struct sigaction ignore {};
      ignore.sa_handler = SIG_IGN;
      ::sigemptyset(&ignore.sa_mask);
      ::sigaction(SIGPIPE, &ignore, nullptr);
    }
  });
}

address peer_of(int fd) noexcept {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return {};
  return address::from_native(reinterpret_cast<sockaddr*>(&ss), len);
}

address local_of(int fd) noexcept {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return {};
  return address::from_native(reinterpret_cast<sockaddr*>(&ss), len);
}

connect_operation::connect_operation(int fd, const address& to, std::chrono::nanoseconds timeout) noexcept
    : socket_operation(&prep, timeout), fd_(fd), to_(&to) {}

void connect_operation::prep(io_uring_sqe* sqe, socket_operation& op) noexcept {
  auto& self = static_cast<connect_operation&>(op);
  io_uring_prep_connect(sqe, self.fd_, self.to_->native(), static_cast<socklen_t>(self.to_->native_size()));
}

}  // namespace coring::net::detail
