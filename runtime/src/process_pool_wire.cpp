#include "process_pool_wire.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace coring::detail {

void close_fd(int& fd) noexcept {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

namespace {

// Writes `parts` one after the other into a new sealed memfd; returns it, or -errno.
int payload_memfd(std::string_view first, std::string_view second) noexcept {
  int memfd = ::memfd_create("coring-payload", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (memfd < 0) return -errno;
  for (std::string_view part : {first, second}) {
    std::size_t off = 0;
    while (off < part.size()) {
      ssize_t n = ::write(memfd, part.data() + off, part.size() - off);
      if (n < 0) {
        if (errno == EINTR) continue;
        int e = errno;
        ::close(memfd);
        return -e;
      }
      off += static_cast<std::size_t>(n);
    }
  }
  // Sealed, so that the receiver may trust the size it reads.
  ::fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
  return memfd;
}

send_result send_once(int sock, msg_header h, std::string_view first, std::string_view second, bool out_of_line,
                      bool nonblocking) noexcept {
  int memfd = -1;
  iovec iov[3];
  iov[0] = {&h, sizeof h};
  std::size_t iovcnt = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  msghdr msg{};
  if (out_of_line) {
    memfd = payload_memfd(first, second);
    if (memfd < 0) return {-memfd, true};
    h.flags |= f_memfd;
    std::memset(control, 0, sizeof control);
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &memfd, sizeof(int));
  } else {
    for (std::string_view part : {first, second}) {
      if (!part.empty()) iov[iovcnt++] = {const_cast<char*>(part.data()), part.size()};
    }
  }
  msg.msg_iov = iov;
  msg.msg_iovlen = iovcnt;
  send_result r;
  while (::sendmsg(sock, &msg, MSG_NOSIGNAL | (nonblocking ? MSG_DONTWAIT : 0)) < 0) {
    if (errno == EINTR) continue;
    r.err = errno;
    break;
  }
  if (memfd >= 0) ::close(memfd);
  return r;
}

}  // namespace

send_result send_message(int sock, msg_header h, std::string_view first, std::string_view second,
                         bool nonblocking) noexcept {
  bool out_of_line = first.size() + second.size() > inline_limit;
  send_result r = send_once(sock, h, first, second, out_of_line, nonblocking);
  // A socket whose send buffer was made smaller than an inline message: the
  // payload goes out of line instead.
  if (r.err == EMSGSIZE && !out_of_line) r = send_once(sock, h, first, second, true, nonblocking);
  return r;
}

ssize_t recv_with_fds(int sock, void* buf, std::size_t len, int flags, int* fds, std::size_t max_fds,
                      std::size_t& got, int& msg_flags) {
  iovec iov{buf, len};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 2)];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  bool reset_seen = false;
  for (;;) {
    n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | flags);
    if (n >= 0) break;
    if (errno == EINTR) continue;
    // A unix socket closed with messages unread in its queue makes its peer's
    // next recvmsg fail with ECONNRESET (once: the error is consumed), even
    // though messages sent to that peer before the close are still queued.
    // Read on: they are replies, and the end of stream comes after them.
    if (errno == ECONNRESET && !reset_seen) {
      reset_seen = true;
      continue;
    }
    return -errno;
  }
  got = 0;
  msg_flags = msg.msg_flags;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      if (got < max_fds) {
        fds[got++] = fd;
      } else {
        ::close(fd);
      }
    }
  }
  return n;
}

int recv_message(int sock, receiver& r, msg_header& h, std::string_view& payload, bool nonblocking) {
  int fd = -1;
  std::size_t got = 0;
  int msg_flags = 0;
  ssize_t n = recv_with_fds(sock, r.buf.data(), r.buf.size(), nonblocking ? MSG_DONTWAIT : 0, &fd, 1, got, msg_flags);
  if (n < 0) return static_cast<int>(n);
  if (n == 0) {
    close_fd(fd);
    return 0;
  }
  if (static_cast<std::size_t>(n) < sizeof h || (msg_flags & MSG_TRUNC)) {
    close_fd(fd);
    return -EPROTO;
  }
  std::memcpy(&h, r.buf.data(), sizeof h);
  if (h.flags & f_memfd) {
    // MSG_CTRUNC: the kernel could not give us the descriptor (RLIMIT_NOFILE reached).
    if (fd < 0) return (msg_flags & MSG_CTRUNC) ? -EMFILE : -EPROTO;
    struct stat st {};
    if (::fstat(fd, &st) < 0) {
      int e = errno;
      close_fd(fd);
      return -e;
    }
    r.large.resize(static_cast<std::size_t>(st.st_size));
    std::size_t off = 0;
    while (off < r.large.size()) {
      ssize_t got = ::pread(fd, r.large.data() + off, r.large.size() - off, static_cast<off_t>(off));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        close_fd(fd);
        return -EPROTO;
      }
      off += static_cast<std::size_t>(got);
    }
    close_fd(fd);
    payload = r.large;
  } else {
    close_fd(fd);
    payload = std::string_view(r.buf.data() + sizeof h, static_cast<std::size_t>(n) - sizeof h);
  }
  return 1;
}

int send_fds(int sock, const void* data, std::size_t len, const int* fds, std::size_t nfds) {
  iovec iov{const_cast<void*>(data), len};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 2)];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (nfds > 0) {
    std::memset(control, 0, sizeof control);
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    std::memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
  }
  while (::sendmsg(sock, &msg, MSG_NOSIGNAL) < 0) {
    if (errno != EINTR) return errno;
  }
  return 0;
}

}  // namespace coring::detail
