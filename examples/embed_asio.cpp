// embed_asio: coring inside a Boost.Asio io_context, coroutines of both
// libraries handing work to each other on one thread.
//
// The driver (coring_driver below, ~50 lines to copy into your service)
// watches loop.fd() with posix::stream_descriptor::async_wait(wait_read),
// arms a steady_timer from loop.next_timeout(), and calls loop.run_once()
// when either fires; when work is ready it posts the run_once() instead, so
// Asio's own handlers get their turn between slices. Then:
//   - an Asio coroutine (awaitable<>) asks coring to run a task and awaits
//     its result (await_in_coring): the task offloads to coring's thread
//     pool and reads a pipe through the ring;
//   - a coring task asks Asio to run an awaitable<> and awaits its result
//     (await_in_asio): Asio's steady_timer and an Asio TCP echo round trip;
//   - a plain thread post()s to the coring loop and writes the pipe.
//
// Run:   build/dev/examples/embed_asio     (ends by itself; ctest runs it)
// You see both sides' lines interleaved, each result arriving in the other
// library's coroutine, then the driver's counts.

// Boost 1.74's headers use std::exchange without including <utility>.
#include <utility>

// Boost 1.74 sees C++20 coroutines in clang only through the Coroutines TS
// (<experimental/coroutine>); clang 14 (the sanitizer presets) has the
// standard ones, which Asio then uses.
#if defined(__clang__) && defined(__cpp_impl_coroutine) && !defined(BOOST_ASIO_HAS_CO_AWAIT)
#define BOOST_ASIO_HAS_CO_AWAIT 1
#endif

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#if defined(__SANITIZE_THREAD__) && !defined(__clang__) && __GNUC__ >= 12
#pragma GCC diagnostic ignored "-Wtsan"
#endif
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#pragma GCC diagnostic pop

#include <coring/coring.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

// ---------------------------------------------------------------- the driver

// Drives a coring::event_loop from an io_context running on the loop's thread.
class coring_driver {
 public:
  coring_driver(asio::io_context& ioc, coring::event_loop& loop)
      : loop_(loop), fd_(ioc, loop.fd()), timer_(ioc) {}
  // Gives fd() back without closing it (the loop owns it).
  ~coring_driver() { fd_.release(); }

  void start() { schedule(); }
  // Stops watching: io_context::run() can end once nothing else is pending.
  void stop() {
    stopped_ = true;
    fd_.cancel();
    timer_.cancel();
  }
  // After host code touched the loop outside run_once() (spawned a task,
  // set an event), next_timeout() may have become zero: look again.
  void poke() { schedule(); }
  int slices() const { return slices_; }

 private:
  void run() {
    ++slices_;
    loop_.run_once();  // never blocks
    schedule();
  }
  void schedule() {
    if (stopped_) return;
    std::optional<std::chrono::nanoseconds> t = loop_.next_timeout();
    if (t && *t == 0ns) {  // work is ready: run it soon, after the handlers Asio has queued
      if (!run_posted_) {
        run_posted_ = true;
        asio::post(fd_.get_executor(), [this] {
          run_posted_ = false;
          if (!stopped_) run();
        });
      }
      return;
    }
    if (!fd_waiting_) {
      fd_waiting_ = true;
      fd_.async_wait(asio::posix::stream_descriptor::wait_read, [this](boost::system::error_code ec) {
        fd_waiting_ = false;
        if (!ec && !stopped_) run();
      });
    }
    if (t) {
      timer_.expires_after(*t);  // cancels the previous wait: its handler sees operation_aborted
      timer_.async_wait([this](boost::system::error_code ec) {
        if (!ec && !stopped_) run();
      });
    } else {
      timer_.cancel();
    }
  }

  coring::event_loop& loop_;
  asio::posix::stream_descriptor fd_;  // loop.fd(), watched for readability
  asio::steady_timer timer_;           // next_timeout()
  bool fd_waiting_ = false;            // an async_wait on fd_ is pending
  bool run_posted_ = false;            // a run() is posted
  bool stopped_ = false;
  int slices_ = 0;                     // run_once() calls
};

// ---------------------------------------------------------------- the bridges

// From an Asio coroutine: runs `t` as a coring task and awaits its result.
template <class T, class Handler>
coring::task<> finish_in_asio(coring::task<T> t, Handler handler) {
  std::exception_ptr error;
  T value{};
  try {
    value = co_await std::move(t);
  } catch (...) {
    error = std::current_exception();
  }
  auto ex = asio::get_associated_executor(handler);
  asio::post(ex, [h = std::move(handler), error, value = std::move(value)]() mutable { std::move(h)(error, value); });
}

template <class T>
asio::awaitable<T> await_in_coring(coring_driver& driver, coring::task<T> t) {
  co_return co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(std::exception_ptr, T)>(
      [&driver](auto handler, coring::task<T> t) {
        // Same thread as the loop: spawn directly, then let the driver see it.
        coring::spawn(finish_in_asio(std::move(t), std::move(handler)), "asio's request").detach();
        driver.poke();
      },
      asio::use_awaitable, std::move(t));
}

// From a coring task: runs an Asio awaitable on the io_context and awaits its
// result. The state is shared: if the coring task is cancelled, the Asio side
// still finishes into it.
template <class T>
coring::task<T> await_in_asio(asio::io_context& ioc, coring_driver& driver, asio::awaitable<T> a) {
  struct state {
    coring::event done;
    std::optional<T> value;
    std::exception_ptr error;
  };
  auto s = std::make_shared<state>();
  asio::co_spawn(ioc, std::move(a), [s, &driver](std::exception_ptr e, T v) {
    s->error = e;
    s->value = std::move(v);
    s->done.set();   // the coring task is ready now...
    driver.poke();   // ...so next_timeout() is zero: run it
  });
  co_await s->done.wait();
  if (s->error) std::rethrow_exception(s->error);
  co_return std::move(*s->value);
}

// ---------------------------------------------------------------- Asio's side

asio::awaitable<void> echo_session(asio::ip::tcp::socket socket) {
  std::array<char, 256> buf;
  for (;;) {
    boost::system::error_code ec;
    std::size_t n = co_await socket.async_read_some(asio::buffer(buf), asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
    co_await asio::async_write(socket, asio::buffer(buf, n), asio::use_awaitable);
  }
}

asio::awaitable<void> echo_server(asio::ip::tcp::acceptor& acceptor) {
  for (;;) {
    auto socket = co_await acceptor.async_accept(asio::use_awaitable);
    asio::co_spawn(acceptor.get_executor(), echo_session(std::move(socket)), asio::detached);
  }
}

// What coring asks of Asio: a steady_timer wait, then an echo round trip.
asio::awaitable<std::string> asio_work(asio::ip::tcp::endpoint server, std::string text) {
  auto ex = co_await asio::this_coro::executor;
  asio::steady_timer timer(ex, 20ms);
  co_await timer.async_wait(asio::use_awaitable);
  asio::ip::tcp::socket socket(ex);
  co_await socket.async_connect(server, asio::use_awaitable);
  co_await asio::async_write(socket, asio::buffer(text), asio::use_awaitable);
  std::string back(text.size(), '\0');
  co_await asio::async_read(socket, asio::buffer(back), asio::use_awaitable);
  co_return "asio echoed '" + back + "'";
}

// ---------------------------------------------------------------- coring's side

long fib(int n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }

// What Asio asks of coring: a thread-pool job, then a line from a pipe that
// another thread writes (read through the ring).
coring::task<std::string> coring_work(int n, int pipe_fd) {
  long f = co_await coring::to_thread(fib, n);
  std::array<std::byte, 64> buf;
  std::size_t got = co_await coring::read_some(pipe_fd, buf, {.timeout = 2s});
  co_return "coring computed fib(" + std::to_string(n) + ") = " + std::to_string(f) + " and read '" +
      std::string(reinterpret_cast<const char*>(buf.data()), got) + "'";
}

}  // namespace

int main() {
  asio::io_context ioc(1);
  coring::event_loop loop;  // on this thread, the io_context's
  coring_driver driver(ioc, loop);
  driver.start();

  asio::ip::tcp::acceptor acceptor(ioc, asio::ip::tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  asio::co_spawn(ioc, echo_server(acceptor), asio::detached);
  const auto server = acceptor.local_endpoint();

  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return 1;
  std::thread other([&loop, w = fds[1]] {
    std::this_thread::sleep_for(30ms);
    loop.post([] { std::printf("post:   a plain thread's function runs on the io_context's thread\n"); });
    std::this_thread::sleep_for(30ms);
    if (::write(w, "hello from a plain thread", 25) != 25) std::perror("write");
  });

  int answers = 0;
  // When both answers are in, stop watching: with the server closed too,
  // io_context::run() then ends.
  auto answered = [&] {
    if (++answers < 2) return;
    driver.stop();
    acceptor.close();
  };
  // Asio → coring: an Asio coroutine awaits a coring task.
  asio::co_spawn(ioc, [&]() -> asio::awaitable<void> {
    std::string r = co_await await_in_coring(driver, coring_work(30, fds[0]));
    std::printf("asio:   %s\n", r.c_str());
    answered();
  }, asio::detached);
  // coring → Asio: a coring task awaits an Asio coroutine.
  coring::spawn([](asio::io_context& ioc, coring_driver& d, asio::ip::tcp::endpoint server,
                   std::function<void()> answered) -> coring::task<> {
    std::string r = co_await await_in_asio(ioc, d, asio_work(server, "ping from coring"));
    std::printf("coring: %s\n", r.c_str());
    answered();
  }(ioc, driver, server, answered)).detach();
  driver.poke();

  ioc.run();
  other.join();
  ::close(fds[0]);
  ::close(fds[1]);
  std::printf("driver: %d run_once() slices; loop: %llu ring completions, %llu eventfd writes by other threads\n",
              driver.slices(), static_cast<unsigned long long>(loop.stats().completions),
              static_cast<unsigned long long>(loop.stats().wakeups));
  return answers == 2 ? 0 : 1;
}
