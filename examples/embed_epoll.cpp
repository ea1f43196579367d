// embed_epoll: coring tasks inside a plain epoll service.
//
// The host is an ordinary single-threaded epoll loop with descriptors of its
// own: a TCP line-echo service on 127.0.0.1 (a listening socket and the
// connections it accepts, served with plain non-blocking read/write) and, with
// --serve, stdin. coring's loop joins the same epoll set through loop.fd();
// loop.next_timeout() bounds epoll_wait; loop.run_once() runs when fd() is
// readable or the timeout passed. Meanwhile, on the same thread, coring tasks:
//   - a client that connects to the host's own echo service and talks to it
//     through the ring (coring::write_some / read_some),
//   - a ticker (coring::sleep_for),
//   - a job on the thread pool (coring::to_thread),
//   - and a plain thread that hands the loop work with post().
//
// Run:   build/dev/examples/embed_epoll            (ends by itself; ctest runs it)
//        build/dev/examples/embed_epoll --serve    (keeps serving until stdin ends:
//                                                   try `nc 127.0.0.1 <port>`, then Ctrl-D here)
// You see the echoes, the ticks, the job's result and the posts interleaved,
// then how many times the host's loop went round for how many events: about
// one iteration per event, never a spin.

#include <coring/coring.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>

using namespace std::chrono_literals;

namespace {

[[noreturn]] void die(const char* what) {
  std::perror(what);
  std::exit(1);
}

int listen_on_loopback(std::uint16_t& port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) < 0 || ::listen(fd, 16) < 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) < 0)
    die("listen");
  port = ntohs(addr.sin_port);
  return fd;
}

// ---------------------------------------------------------------- coring's side

// Talks to the host's echo service through the ring.
coring::task<int> echo_client(std::uint16_t port, int lines) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  // Loopback: the kernel completes the handshake without the host's accept().
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) die("connect");
  int echoed = 0;
  for (int i = 1; i <= lines; ++i) {
    std::string line = "line " + std::to_string(i) + "\n";
    co_await coring::write_some(fd, std::as_bytes(std::span(line)));
    std::string back;
    std::array<std::byte, 256> buf;
    while (back.size() < line.size()) {
      std::size_t n = co_await coring::read_some(fd, buf, {.timeout = 2s});
      if (n == 0) break;
      back.append(reinterpret_cast<const char*>(buf.data()), n);
    }
    std::printf("coring client: sent %-8s got back %s", line.substr(0, line.size() - 1).c_str(), back.c_str());
    if (back == line) ++echoed;
    co_await coring::sleep_for(15ms);
  }
  ::close(fd);
  co_return echoed;
}

coring::task<> ticker(int ticks) {
  for (int i = 1; i <= ticks; ++i) {
    co_await coring::sleep_for(40ms);
    std::printf("coring ticker: tick %d\n", i);
  }
}

std::uint64_t sum_of_squares(std::uint64_t n) {
  std::uint64_t s = 0;
  for (std::uint64_t i = 1; i <= n; ++i) s += i * i;
  return s;
}

coring::task<int> coring_side(std::uint16_t port, int lines) {
  auto [echoed, sum, ticked] = co_await coring::gather(
      echo_client(port, lines),
      []() -> coring::task<std::uint64_t> { co_return co_await coring::to_thread(sum_of_squares, 1'000'000); }(),
      []() -> coring::task<int> {
        co_await ticker(3);
        co_return 3;
      }());
  std::printf("coring: thread-pool job gave %llu; %d ticks\n", static_cast<unsigned long long>(sum), ticked);
  co_return echoed;
}

// ---------------------------------------------------------------- the host

// The host's own echo service: plain non-blocking reads and writes.
void serve_connection(int fd, int epoll_fd) {
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      // Small lines over loopback: the socket buffer takes them whole.
      if (::write(fd, buf, static_cast<std::size_t>(n)) != n) std::fprintf(stderr, "host: short write\n");
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    ::epoll_ctl(epoll_fd, EPOLL_CTL_DEL, fd, nullptr);  // end of stream or error
    ::close(fd);
    return;
  }
}

void watch(int epoll_fd, int fd) {
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = fd;
  if (::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl");
}

}  // namespace

int main(int argc, char** argv) {
  const bool serve = argc > 1 && std::string_view(argv[1]) == "--serve";
  std::uint16_t port = 0;
  const int listen_fd = listen_on_loopback(port);
  std::printf("host: echo service on 127.0.0.1:%u\n", port);

  coring::event_loop loop;
  const int epoll_fd = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd < 0) die("epoll_create1");
  watch(epoll_fd, listen_fd);
  watch(epoll_fd, loop.fd());  // the whole of coring, to epoll: one descriptor
  if (serve) watch(epoll_fd, STDIN_FILENO);

  auto coring_main = coring::spawn(coring_side(port, 5), "coring side");
  // Another thread hands the loop work; fd() wakes the host for it.
  std::thread poster([&loop] {
    for (int i = 1; i <= 3; ++i) {
      std::this_thread::sleep_for(30ms);
      loop.post([i] { std::printf("posted from another thread: #%d (runs on the host's thread)\n", i); });
    }
  });

  int iterations = 0, coring_wakes = 0, host_events = 0;
  bool stdin_open = serve;
  while (!coring_main.done() || stdin_open) {
    std::optional<std::chrono::nanoseconds> t = loop.next_timeout();
    const int timeout_ms = t ? static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(*t).count()) : -1;
    std::array<epoll_event, 16> events;
    const int n = ::epoll_wait(epoll_fd, events.data(), static_cast<int>(events.size()), timeout_ms);
    if (n < 0 && errno != EINTR) die("epoll_wait");
    ++iterations;
    bool coring_due = (n == 0 && t.has_value()) || (t && *t == 0ns);  // its timer, or work that was ready
    for (int i = 0; i < n; ++i) {
      const int fd = events[static_cast<std::size_t>(i)].data.fd;
      if (fd == loop.fd()) {
        coring_due = true;
      } else if (fd == listen_fd) {
        ++host_events;
        while (true) {
          int c = ::accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (c < 0) break;
          watch(epoll_fd, c);
        }
      } else if (fd == STDIN_FILENO) {
        char buf[256];
        if (::read(STDIN_FILENO, buf, sizeof buf) <= 0) {
          stdin_open = false;
          ::epoll_ctl(epoll_fd, EPOLL_CTL_DEL, STDIN_FILENO, nullptr);
        }
      } else {
        ++host_events;
        serve_connection(fd, epoll_fd);
      }
    }
    if (coring_due) {
      ++coring_wakes;
      loop.run_once();  // never blocks; arms fd() again before it returns
    }
  }
  poster.join();
  const int echoed = coring_main.get();

  // Take fd() out of the poller before the loop goes.
  ::epoll_ctl(epoll_fd, EPOLL_CTL_DEL, loop.fd(), nullptr);
  ::close(epoll_fd);
  ::close(listen_fd);
  const auto s = loop.stats();
  std::printf("host: %d iterations of epoll_wait for %d host events and %d coring wake-ups "
              "(%llu ring completions, %llu eventfd writes by other threads)\n",
              iterations, host_events, coring_wakes, static_cast<unsigned long long>(s.completions),
              static_cast<unsigned long long>(s.wakeups));
  if (echoed != 5) {
    std::fprintf(stderr, "embed_epoll: only %d of 5 lines came back\n", echoed);
    return 1;
  }
  return 0;
}
