// Raw liburing baseline for bench/net_bench: the least an io_uring TCP echo
// server can do — one multishot accept, one recv into a 16 KiB buffer per
// connection, one send (MSG_WAITALL) of what came, repeat; user_data is the
// connection; no coroutines, no abstraction. The ring has the flags coring
// uses (SINGLE_ISSUER | DEFER_TASKRUN).
//
//   net_liburing_baseline        # prints "port <n>", then serves until killed

#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {

struct connection {
  int fd;
  bool sending;
  char buf[16384];
};

io_uring ring;
constexpr std::uint64_t accept_tag = 1;

io_uring_sqe* sqe() {
  io_uring_sqe* s = io_uring_get_sqe(&ring);
  if (!s) {
    io_uring_submit(&ring);
    s = io_uring_get_sqe(&ring);
  }
  return s;
}

void arm_accept(int listener) {
  io_uring_sqe* s = sqe();
  io_uring_prep_multishot_accept(s, listener, nullptr, nullptr, SOCK_CLOEXEC);
  io_uring_sqe_set_data64(s, accept_tag);
}

void recv_on(connection* c) {
  c->sending = false;
  io_uring_sqe* s = sqe();
  io_uring_prep_recv(s, c->fd, c->buf, sizeof c->buf, 0);
  io_uring_sqe_set_data(s, c);
}

void send_on(connection* c, unsigned n) {
  c->sending = true;
  io_uring_sqe* s = sqe();
  io_uring_prep_send(s, c->fd, c->buf, n, MSG_WAITALL | MSG_NOSIGNAL);
  io_uring_sqe_set_data(s, c);
}

}  // namespace

int main() {
  io_uring_params p{};
  p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE;
  p.cq_entries = 4096;
  if (io_uring_queue_init_params(1024, &ring, &p) != 0) return 1;
  int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  ::setsockopt(listener, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(listener, reinterpret_cast<sockaddr*>(&sin), sizeof sin) != 0 || ::listen(listener, 4096) != 0) return 1;
  socklen_t len = sizeof sin;
  ::getsockname(listener, reinterpret_cast<sockaddr*>(&sin), &len);
  std::printf("port %u\n", static_cast<unsigned>(ntohs(sin.sin_port)));
  std::fflush(stdout);
  arm_accept(listener);
  for (;;) {
    io_uring_submit_and_wait(&ring, 1);
    unsigned head, seen = 0;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(&ring, head, cqe) {
      ++seen;
      if (cqe->user_data == accept_tag) {
        if (cqe->res >= 0) recv_on(new connection{cqe->res, false, {}});
        if (!(cqe->flags & IORING_CQE_F_MORE)) arm_accept(listener);
        continue;
      }
      auto* c = reinterpret_cast<connection*>(cqe->user_data);
      if (cqe->res <= 0) {
        ::close(c->fd);
        delete c;
      } else if (c->sending) {
        recv_on(c);
      } else {
        send_on(c, static_cast<unsigned>(cqe->res));
      }
    }
    io_uring_cq_advance(&ring, seen);
  }
}
