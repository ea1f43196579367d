// Raw liburing baseline for bench/run_http_server_bench: the least an
// io_uring HTTP responder can do — one multishot accept, one recv into a
// 4 KiB buffer per connection, and for every request in what came (counted
// by its blank line, nothing else is parsed) one fixed 13-byte response, all
// of them in one send (MSG_WAITALL); user_data is the connection; no
// coroutines, no abstraction. The ring has the flags coring uses
// (SINGLE_ISSUER | DEFER_TASKRUN). It is the physical limit a real server
// is measured against.
//
//   http_liburing_baseline [port]   # prints "port <n>", then serves until killed

#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

constexpr char response[] =
    "HTTP/1.1 200 OK\r\nServer: raw\r\nDate: Mon, 30 Nov 2026 00:00:00 GMT\r\n"
    "Content-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, world!";
constexpr std::size_t response_size = sizeof response - 1;

struct connection {
  int fd;
  bool sending;
  unsigned matched;  // bytes of "\r\n\r\n" seen at the end of the input so far
  char buf[4096];
  std::string out;
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

// Requests that ended in buf[0, n): blank lines, also across reads.
unsigned count_requests(connection* c, unsigned n) {
  static constexpr char end[] = "\r\n\r\n";
  unsigned requests = 0;
  for (unsigned i = 0; i < n; ++i) {
    const char ch = c->buf[i];
    if (ch == end[c->matched]) {
      if (++c->matched == 4) {
        ++requests;
        c->matched = 0;
      }
    } else {
      c->matched = ch == '\r' ? 1 : 0;
    }
  }
  return requests;
}

void send_on(connection* c, unsigned requests) {
  c->sending = true;
  c->out.clear();
  for (unsigned i = 0; i < requests; ++i) c->out.append(response, response_size);
  io_uring_sqe* s = sqe();
  io_uring_prep_send(s, c->fd, c->out.data(), c->out.size(), MSG_WAITALL | MSG_NOSIGNAL);
  io_uring_sqe_set_data(s, c);
}

}  // namespace

int main(int argc, char** argv) {
  io_uring_params p{};
  p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE;
  p.cq_entries = 8192;
  if (io_uring_queue_init_params(2048, &ring, &p) != 0) return 1;
  int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  ::setsockopt(listener, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sin.sin_port = htons(static_cast<std::uint16_t>(argc > 1 ? std::atoi(argv[1]) : 0));
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
        if (cqe->res >= 0) recv_on(new connection{cqe->res, false, 0, {}, {}});
        if (!(cqe->flags & IORING_CQE_F_MORE)) arm_accept(listener);
        continue;
      }
      auto* c = reinterpret_cast<connection*>(cqe->user_data);
      if (cqe->res <= 0) {
        ::close(c->fd);
        delete c;
      } else if (c->sending) {
        recv_on(c);
      } else if (const unsigned requests = count_requests(c, static_cast<unsigned>(cqe->res)); requests > 0) {
        send_on(c, requests);
      } else {
        recv_on(c);
      }
    }
    io_uring_cq_advance(&ring, seen);
  }
}
