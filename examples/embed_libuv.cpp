// embed_libuv: coring inside a libuv loop, the way a Node-style service
// would host it: libuv owns the network, request handlers are coring tasks.
//
// The driver (coring_in_uv below) is a uv_poll_t on loop.fd() (UV_READABLE)
// and a uv_timer_t armed from loop.next_timeout(); either calls
// loop.run_once(). A zero timeout becomes a 0 ms timer, so libuv polls its
// own handles (without blocking) before coring's next slice. Then:
//   - libuv → coring: a libuv TCP line service (uv_tcp_t, uv_read_start) hands
//     each line to a coring task, which works on it (coring::to_thread, a
//     sleep) and answers through uv_write;
//   - coring → libuv: a coring task awaits a job on libuv's own thread pool
//     (uv_queue_work);
//   - a coring client talks to the libuv service through the ring, and a
//     plain thread post()s to the loop.
//
// Run:   build/dev/examples/embed_libuv     (ends by itself; ctest runs it)
// You see the service's answers as the client gets them, libuv's job result
// in a coring task, the post, then the driver's counts.

#include <coring/coring.hpp>

#include <uv.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <thread>

using namespace std::chrono_literals;

namespace {

void check(int r, const char* what) {
  if (r < 0) {
    std::fprintf(stderr, "%s: %s\n", what, uv_strerror(r));
    std::exit(1);
  }
}

// ---------------------------------------------------------------- the driver

// Drives a coring::event_loop from a libuv loop on the same thread.
class coring_in_uv {
 public:
  coring_in_uv(uv_loop_t* uv, coring::event_loop& loop) : uv_(uv), loop_(loop) {
    check(uv_poll_init(uv, &poll_, loop.fd()), "uv_poll_init");
    check(uv_timer_init(uv, &timer_), "uv_timer_init");
    poll_.data = timer_.data = this;
    check(uv_poll_start(&poll_, UV_READABLE, [](uv_poll_t* p, int, int) { self(p)->run(); }), "uv_poll_start");
    schedule();
  }
  // After host code touched the loop outside run_once() (spawned a task,
  // set an event), next_timeout() may have become zero: look again.
  void poke() { schedule(); }
  // Closes both handles (before the coring loop goes); uv_run then ends
  // once nothing else is active.
  void close() {
    closed_ = true;
    uv_close(reinterpret_cast<uv_handle_t*>(&poll_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&timer_), nullptr);
  }
  [[nodiscard]] uv_loop_t* uv() const { return uv_; }
  [[nodiscard]] int slices() const { return slices_; }

 private:
  template <class Handle>
  static coring_in_uv* self(Handle* h) {
    return static_cast<coring_in_uv*>(h->data);
  }
  void run() {
    ++slices_;
    loop_.run_once();  // never blocks
    schedule();
  }
  void schedule() {
    if (closed_) return;
    std::optional<std::chrono::nanoseconds> t = loop_.next_timeout();
    if (!t) {
      uv_timer_stop(&timer_);
      return;
    }
    // libuv's timers count whole milliseconds from its cached clock: round up.
    uv_update_time(uv_);
    const auto ms = static_cast<std::uint64_t>(std::chrono::ceil<std::chrono::milliseconds>(*t).count());
    uv_timer_start(&timer_, [](uv_timer_t* h) { self(h)->run(); }, ms, 0);
  }

  uv_loop_t* uv_;
  coring::event_loop& loop_;
  uv_poll_t poll_;    // loop.fd(), readable
  uv_timer_t timer_;  // next_timeout()
  int slices_ = 0;    // run_once() calls
  bool closed_ = false;
};

// ---------------------------------------------------------------- coring → libuv

long fib(int n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }

// Runs fib(n) on libuv's thread pool and awaits it. The request is shared
// with libuv until its after-work callback, whatever becomes of the task.
coring::task<long> fib_on_libuv_pool(coring_in_uv& driver, int n) {
  struct job {
    uv_work_t req;
    int n;
    long result = 0;
    coring::event done;
    coring_in_uv* driver;
    std::shared_ptr<job> keep;  // libuv's reference, dropped in the after-work callback
  };
  auto j = std::make_shared<job>();
  j->n = n;
  j->driver = &driver;
  j->keep = j;
  j->req.data = j.get();
  check(uv_queue_work(
            driver.uv(), &j->req, [](uv_work_t* r) { static_cast<job*>(r->data)->result = fib(static_cast<job*>(r->data)->n); },
            [](uv_work_t* r, int) {
              auto* self = static_cast<job*>(r->data);
              self->done.set();         // on the loop's thread: the waiting task is ready...
              self->driver->poke();     // ...so run it
              auto last = std::move(self->keep);
            }),
        "uv_queue_work");
  co_await j->done.wait();
  co_return j->result;
}

// ---------------------------------------------------------------- libuv → coring

// One connection of the libuv line service. Shared by its handlers, which
// may outlive it (they check `open`).
struct connection : std::enable_shared_from_this<connection> {
  uv_tcp_t handle;
  coring_in_uv* driver = nullptr;
  std::string pending;  // bytes of an unfinished line
  bool open = true;
  std::shared_ptr<connection> keep;  // libuv's reference, dropped in the close callback

  void write(std::string text) {
    struct request {
      uv_write_t req;
      std::string text;
    };
    auto* w = new request{{}, std::move(text)};
    uv_buf_t buf = uv_buf_init(w->text.data(), static_cast<unsigned>(w->text.size()));
    if (uv_write(&w->req, reinterpret_cast<uv_stream_t*>(&handle), &buf, 1,
                 [](uv_write_t* r, int) { delete reinterpret_cast<request*>(r); }) < 0)
      delete w;
  }
  void close() {
    if (!open) return;
    open = false;
    uv_close(reinterpret_cast<uv_handle_t*>(&handle), [](uv_handle_t* h) {
      auto last = std::move(static_cast<connection*>(h->data)->keep);
    });
  }
};

std::string shout(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return s;
}

// A request handler, as a coring task: offloads, waits, answers through libuv.
coring::task<> handle_line(std::shared_ptr<connection> c, std::string line) {
  std::string answer = co_await coring::to_thread(shout, line);
  co_await coring::sleep_for(10ms);
  if (c->open) c->write(answer + "\n");
}

void on_read(uv_stream_t* stream, ssize_t n, const uv_buf_t* buf) {
  auto c = static_cast<connection*>(stream->data)->shared_from_this();
  if (n > 0) {
    c->pending.append(buf->base, static_cast<std::size_t>(n));
    for (std::size_t nl; (nl = c->pending.find('\n')) != std::string::npos;) {
      // libuv's callback starts a coring task: same thread, so spawn directly.
      coring::spawn(handle_line(c, c->pending.substr(0, nl)), "line handler").detach();
      c->pending.erase(0, nl + 1);
    }
    c->driver->poke();
  } else if (n < 0) {
    c->close();
  }
  delete[] buf->base;
}

void on_connection(uv_stream_t* server, int status) {
  if (status < 0) return;
  auto* driver = static_cast<coring_in_uv*>(server->data);
  auto c = std::make_shared<connection>();
  c->driver = driver;
  c->keep = c;
  uv_tcp_init(driver->uv(), &c->handle);
  c->handle.data = c.get();
  if (uv_accept(server, reinterpret_cast<uv_stream_t*>(&c->handle)) < 0) {
    c->close();
    return;
  }
  uv_read_start(
      reinterpret_cast<uv_stream_t*>(&c->handle),
      [](uv_handle_t*, std::size_t size, uv_buf_t* buf) { *buf = uv_buf_init(new char[size], static_cast<unsigned>(size)); },
      on_read);
}

// ---------------------------------------------------------------- a coring client

coring::task<int> client(int port, int lines) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
    std::perror("connect");
    co_return 0;
  }
  std::string requests;
  for (int i = 1; i <= lines; ++i) requests += "request number " + std::to_string(i) + "\n";
  co_await coring::write_some(fd, std::as_bytes(std::span(requests)));
  std::string answers;
  std::array<std::byte, 512> buf;
  int got = 0;
  while (got < lines) {
    std::size_t n = co_await coring::read_some(fd, buf, {.timeout = 2s});
    if (n == 0) break;
    answers.append(reinterpret_cast<const char*>(buf.data()), n);
    for (std::size_t nl; (nl = answers.find('\n')) != std::string::npos; answers.erase(0, nl + 1)) {
      std::printf("client: the libuv service answered %s\n", answers.substr(0, nl).c_str());
      ++got;
    }
  }
  ::close(fd);
  co_return got;
}

}  // namespace

int main() {
  uv_loop_t* uv = uv_default_loop();
  coring::event_loop loop;  // on this thread, libuv's
  coring_in_uv driver(uv, loop);

  uv_tcp_t server;
  check(uv_tcp_init(uv, &server), "uv_tcp_init");
  server.data = &driver;
  sockaddr_in addr{};
  uv_ip4_addr("127.0.0.1", 0, &addr);
  check(uv_tcp_bind(&server, reinterpret_cast<const sockaddr*>(&addr), 0), "uv_tcp_bind");
  check(uv_listen(reinterpret_cast<uv_stream_t*>(&server), 16, on_connection), "uv_listen");
  int len = sizeof addr;
  uv_tcp_getsockname(&server, reinterpret_cast<sockaddr*>(&addr), &len);
  const int port = ntohs(addr.sin_port);
  std::printf("libuv: line service on 127.0.0.1:%d\n", port);

  std::thread poster([&loop] {
    std::this_thread::sleep_for(20ms);
    loop.post([] { std::printf("post: a plain thread's function runs on libuv's thread\n"); });
  });

  bool ok = false;
  auto main_task = coring::spawn(
      [](coring_in_uv& driver, int port, bool& ok, uv_tcp_t& server) -> coring::task<> {
        auto [answered, f] = co_await coring::gather(client(port, 3), fib_on_libuv_pool(driver, 27));
        std::printf("coring: libuv's thread pool computed fib(27) = %ld\n", f);
        ok = answered == 3 && f == 196418;
        // Done: close what keeps uv_run going. (Handlers of closed
        // connections see c->open == false.)
        uv_close(reinterpret_cast<uv_handle_t*>(&server), nullptr);
        driver.close();
      }(driver, port, ok, server),
      "main");
  driver.poke();

  uv_run(uv, UV_RUN_DEFAULT);  // ends when the server and the driver are closed
  poster.join();
  main_task.get();
  uv_walk(uv, [](uv_handle_t* h, void*) { if (!uv_is_closing(h)) uv_close(h, nullptr); }, nullptr);
  uv_run(uv, UV_RUN_DEFAULT);  // connections still open close now
  uv_loop_close(uv);
  std::printf("driver: %d run_once() slices; loop: %llu ring completions, %llu eventfd writes by other threads\n",
              driver.slices(), static_cast<unsigned long long>(loop.stats().completions),
              static_cast<unsigned long long>(loop.stats().wakeups));
  return ok ? 0 : 1;
}
