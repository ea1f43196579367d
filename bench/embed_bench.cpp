// embed_bench: what it costs to run coring inside another event loop.
//
// The same workloads as bench/runtime_bench, run by one coring loop driven
// natively (run_until_complete) or by a host loop through fd(),
// next_timeout() and run_once(): a plain epoll loop, a Boost.Asio
// io_context (stream_descriptor::async_wait + steady_timer), a libuv loop
// (uv_poll_t + uv_timer_t). One host and one workload per process;
// bench/run_embed_bench runs them all, interleaved, and prints ratios
// against native from the same run.
//
//   build/release/bench/embed_bench native|epoll|asio|libuv spawn_join|yield|sleep|pingpong|wake
//
// Prints one line:
//   embed <host> <workload> ns_per_op=<ns> ops=<n>                  (the four workloads)
//   embed <host> wake median_us=<us> p99_us=<us> samples=<n>        (wake)
//   spawn_join  1,000,000 × spawn a trivial task<int> and join it      (ns per spawn+join)
//   yield       10,000,000 × co_await coring::yield() in one task     (ns per yield)
//   sleep       100,000 concurrent sleep_for(10ms), each its own task  (ns per sleeper, first spawn to last wake)
//   pingpong    100,000 round trips of one byte over two pipes between two tasks,
//               every read and write through the ring                  (ns per round trip)
//   wake        2,000 times: another thread post()s a function that sets an event a
//               parked task waits on; the time from just before post() to the task
//               running (microseconds; the loop is idle and its host asleep each time)

// Boost 1.74's headers use std::exchange without including <utility>.
#include <utility>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#if defined(__SANITIZE_THREAD__) && !defined(__clang__) && __GNUC__ >= 12
#pragma GCC diagnostic ignored "-Wtsan"
#endif
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#pragma GCC diagnostic pop

#include <coring/event.hpp>
#include <coring/event_loop.hpp>
#include <coring/io.hpp>
#include <coring/sleep.hpp>
#include <coring/spawn.hpp>
#include <coring/task.hpp>

#include <uv.h>

#include <fcntl.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <random>
#include <span>
#include <string_view>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

using bench_clock = std::chrono::steady_clock;

constexpr std::uint64_t spawn_join_ops = 1'000'000;
constexpr std::uint64_t yield_ops = 10'000'000;
constexpr std::uint64_t sleep_tasks = 100'000;
constexpr std::uint64_t pingpong_ops = 100'000;
constexpr int wake_samples = 2'000;

volatile std::uint64_t sink = 0;

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "embed_bench: %s\n", what);
  std::exit(1);
}

int ceil_ms(std::chrono::nanoseconds d) {
  return static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(d).count());
}

// ---------------------------------------------------------------- the hosts

// Runs the loop until `root` ends, the way the named host would.
void drive_native(coring::event_loop& loop, coring::task<> root) { loop.run_until_complete(std::move(root)); }

void drive_epoll(coring::event_loop& loop, coring::task<> root) {
  auto h = coring::spawn(std::move(root));
  const int ep = ::epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = loop.fd();
  if (::epoll_ctl(ep, EPOLL_CTL_ADD, loop.fd(), &ev) < 0) fail("epoll_ctl");
  while (!h.done()) {
    std::optional<std::chrono::nanoseconds> t = loop.next_timeout();
    std::array<epoll_event, 8> events;
    int n = ::epoll_wait(ep, events.data(), static_cast<int>(events.size()), t ? ceil_ms(*t) : -1);
    bool due = (t && (*t == 0ns || n == 0));
    for (int i = 0; i < n; ++i) due |= events[static_cast<std::size_t>(i)].data.fd == loop.fd();
    if (due) loop.run_once();
  }
  ::close(ep);
  h.get();
}

// As in examples/embed_asio.cpp.
class asio_driver {
 public:
  asio_driver(asio::io_context& ioc, coring::event_loop& loop) : loop_(loop), fd_(ioc, loop.fd()), timer_(ioc) {}
  ~asio_driver() { fd_.release(); }
  void stop() {
    stopped_ = true;
    fd_.cancel();
    timer_.cancel();
  }
  void schedule() {
    if (stopped_) return;
    auto t = loop_.next_timeout();
    if (t && *t == 0ns) {
      if (!run_posted_) {
        run_posted_ = true;
        asio::post(fd_.get_executor(), [this] {
          run_posted_ = false;
          run();
        });
      }
      return;
    }
    if (!fd_waiting_) {
      fd_waiting_ = true;
      fd_.async_wait(asio::posix::stream_descriptor::wait_read, [this](boost::system::error_code ec) {
        fd_waiting_ = false;
        if (!ec) run();
      });
    }
    if (t) {
      timer_.expires_after(*t);
      timer_.async_wait([this](boost::system::error_code ec) {
        if (!ec) run();
      });
    } else {
      timer_.cancel();
    }
  }
  std::function<void()> on_run;  // after each run_once()

 private:
  void run() {
    if (stopped_) return;
    loop_.run_once();
    if (on_run) on_run();
    schedule();
  }
  coring::event_loop& loop_;
  asio::posix::stream_descriptor fd_;
  asio::steady_timer timer_;
  bool fd_waiting_ = false;
  bool run_posted_ = false;
  bool stopped_ = false;
};

void drive_asio(coring::event_loop& loop, coring::task<> root) {
  asio::io_context ioc(1);
  auto h = coring::spawn(std::move(root));
  asio_driver d(ioc, loop);
  d.on_run = [&] {
    if (h.done()) d.stop();
  };
  d.schedule();
  ioc.run();
  h.get();
}

// As in examples/embed_libuv.cpp.
struct uv_driver {
  uv_loop_t* uv;
  coring::event_loop* loop;
  uv_poll_t poll;
  uv_timer_t timer;
  coring::join_handle<void>* root;

  void run() {
    loop->run_once();
    if (root->done()) {
      uv_close(reinterpret_cast<uv_handle_t*>(&poll), nullptr);
      uv_close(reinterpret_cast<uv_handle_t*>(&timer), nullptr);
      return;
    }
    schedule();
  }
  void schedule() {
    auto t = loop->next_timeout();
    if (!t) {
      uv_timer_stop(&timer);
      return;
    }
    uv_update_time(uv);
    uv_timer_start(&timer, [](uv_timer_t* h) { static_cast<uv_driver*>(h->data)->run(); },
                   static_cast<std::uint64_t>(ceil_ms(*t)), 0);
  }
};

void drive_libuv(coring::event_loop& loop, coring::task<> root) {
  uv_loop_t uv;
  uv_loop_init(&uv);
  auto h = coring::spawn(std::move(root));
  uv_driver d{&uv, &loop, {}, {}, &h};
  uv_poll_init(&uv, &d.poll, loop.fd());
  uv_timer_init(&uv, &d.timer);
  d.poll.data = d.timer.data = &d;
  uv_poll_start(&d.poll, UV_READABLE, [](uv_poll_t* p, int, int) { static_cast<uv_driver*>(p->data)->run(); });
  d.schedule();
  uv_run(&uv, UV_RUN_DEFAULT);
  uv_loop_close(&uv);
  h.get();
}

using driver = void (*)(coring::event_loop&, coring::task<>);

// ---------------------------------------------------------------- the workloads

double ns_between(bench_clock::time_point a, bench_clock::time_point b) {
  return static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(b - a).count());
}

coring::task<int> trivial(int i) { co_return i; }

coring::task<> spawn_join(double& ns) {
  std::uint64_t sum = 0;
  auto t0 = bench_clock::now();
  for (std::uint64_t i = 0; i < spawn_join_ops; ++i)
    sum += static_cast<std::uint64_t>(co_await coring::spawn(trivial(static_cast<int>(i))));
  ns = ns_between(t0, bench_clock::now());
  if (sum != spawn_join_ops * (spawn_join_ops - 1) / 2) fail("spawn_join: bad sum");
  sink = sum;
}

coring::task<> yield_loop(double& ns) {
  auto t0 = bench_clock::now();
  std::uint64_t count = 0;
  for (std::uint64_t i = 0; i < yield_ops; ++i) {
    co_await coring::yield();
    ++count;
  }
  ns = ns_between(t0, bench_clock::now());
  sink = count;
}

coring::task<> sleeper(std::uint64_t& finished) {
  co_await coring::sleep_for(10ms);
  ++finished;
}

coring::task<> sleeps(double& ns) {
  std::uint64_t finished = 0;
  auto t0 = bench_clock::now();
  std::vector<coring::join_handle<void>> hs;
  hs.reserve(sleep_tasks);
  for (std::uint64_t i = 0; i < sleep_tasks; ++i) hs.push_back(coring::spawn(sleeper(finished)));
  for (auto& h : hs) co_await h;
  ns = ns_between(t0, bench_clock::now());
  if (finished != sleep_tasks) fail("sleep: not all sleepers finished");
}

coring::task<> pong(int in, int out) {
  std::array<std::byte, 1> b{};
  for (std::uint64_t i = 0; i < pingpong_ops; ++i) {
    if (co_await coring::read_some(in, b) != 1) fail("pingpong: short read");
    co_await coring::write_some(out, b);
  }
}

coring::task<> pingpong(double& ns) {
  int a[2], b[2];
  if (::pipe2(a, O_CLOEXEC) != 0 || ::pipe2(b, O_CLOEXEC) != 0) fail("pipe2");
  auto other = coring::spawn(pong(a[0], b[1]));
  std::array<std::byte, 1> byte{std::byte{7}};
  auto t0 = bench_clock::now();
  for (std::uint64_t i = 0; i < pingpong_ops; ++i) {
    co_await coring::write_some(a[1], byte);
    if (co_await coring::read_some(b[0], byte) != 1) fail("pingpong: short read");
  }
  ns = ns_between(t0, bench_clock::now());
  co_await other;
  for (int fd : {a[0], a[1], b[0], b[1]}) ::close(fd);
}

// Another thread posts `wake_samples` times at random gaps (the loop is
// parked each time); each post sets the event the measuring task waits on.
coring::task<> wake(coring::event_loop& loop, std::vector<double>& micros) {
  struct shared {
    coring::event go;
    std::atomic<std::int64_t> posted_at{0};
  } s;
  std::atomic<bool> ready{false};
  std::thread poster([&] {
    std::mt19937 rng(42);
    for (int i = 0; i < wake_samples; ++i) {
      while (!ready.exchange(false, std::memory_order_acq_rel)) std::this_thread::yield();
      std::this_thread::sleep_for(std::chrono::microseconds(300 + rng() % 400));  // the loop and its host fall asleep
      s.posted_at.store(bench_clock::now().time_since_epoch().count(), std::memory_order_relaxed);
      loop.post([&s] { s.go.set(); });
    }
  });
  for (int i = 0; i < wake_samples; ++i) {
    ready.store(true, std::memory_order_release);
    co_await s.go.wait();
    const auto now = bench_clock::now().time_since_epoch().count();
    micros.push_back(static_cast<double>(now - s.posted_at.load(std::memory_order_relaxed)) / 1000.0);
    s.go.clear();
  }
  poster.join();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s native|epoll|asio|libuv spawn_join|yield|sleep|pingpong|wake\n", argv[0]);
    return 2;
  }
  const std::string_view host = argv[1], w = argv[2];
  driver drive = host == "native" ? drive_native
                 : host == "epoll" ? drive_epoll
                 : host == "asio"  ? drive_asio
                 : host == "libuv" ? drive_libuv
                                   : nullptr;
  if (!drive) {
    std::fprintf(stderr, "unknown host '%s'\n", argv[1]);
    return 2;
  }
  coring::event_loop loop;
  double ns = 0;
  std::uint64_t ops = 0;
  if (w == "spawn_join") {
    drive(loop, spawn_join(ns));
    ops = spawn_join_ops;
  } else if (w == "yield") {
    drive(loop, yield_loop(ns));
    ops = yield_ops;
  } else if (w == "sleep") {
    drive(loop, sleeps(ns));
    ops = sleep_tasks;
  } else if (w == "pingpong") {
    drive(loop, pingpong(ns));
    ops = pingpong_ops;
  } else if (w == "wake") {
    std::vector<double> micros;
    micros.reserve(wake_samples);
    drive(loop, wake(loop, micros));
    std::sort(micros.begin(), micros.end());
    std::printf("embed %s wake median_us=%.2f p99_us=%.2f samples=%zu\n", argv[1], micros[micros.size() / 2],
                micros[micros.size() * 99 / 100], micros.size());
    return 0;
  } else {
    std::fprintf(stderr, "unknown workload '%s'\n", argv[2]);
    return 2;
  }
  std::printf("embed %s %s ns_per_op=%.2f ops=%llu\n", argv[1], argv[2], ns / static_cast<double>(ops),
              static_cast<unsigned long long>(ops));
}
