#include <doctest/doctest.h>
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <coring/http/server.hpp>
#include <coring/sleep.hpp>
#include <future>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "support/fds.hpp"
#include "support/http.hpp"
#include "support/stopwatch.hpp"

// http::serve: one loop per thread, each with its own SO_REUSEPORT listener,
// stopped by SIGTERM. In CORING_THREADED_SUITES: the tsan preset runs it.

namespace http = coring::http;
using namespace std::chrono_literals;
using coring_test::raw_client;
using coring_test::raw_response;

TEST_SUITE("net/http_serve_threads") {
  TEST_CASE(
      "serve with 2 threads: both loops answer, SIGTERM stops them gracefully, the counters are summed" *
      doctest::timeout(60)) {
    std::mutex m;
    std::set<std::thread::id> loops_seen;
    http::router app;
    app.get("/", [&](http::request&) -> coring::task<http::response> {
      {
        std::lock_guard lock(m);
        loops_seen.insert(std::this_thread::get_id());
      }
      co_return http::response::text("hello");
    });
    std::atomic<bool> slow_started{false};
    app.get("/slow", [&slow_started](http::request&) -> coring::task<http::response> {
      slow_started = true;
      co_await coring::sleep_for(300ms);
      co_return http::response::text("slept");
    });

    const int before = coring_test::settled_fd_count();
    std::promise<std::uint16_t> listening;
    std::future<std::uint16_t> port_future = listening.get_future();
    http::server_stats total;
    std::exception_ptr failure;
    std::thread server_thread([&] {
      try {
        total = http::serve(
            app, 0, {.threads = 2, .address = "127.0.0.1", .grace = 5s, .on_listening = [&](std::uint16_t p) {
                       listening.set_value(p);
                     }});
      } catch (...) {
        failure = std::current_exception();
        listening.set_value(0);
      }
    });
    const std::uint16_t port = port_future.get();
    REQUIRE(port != 0);

    // 64 connections of 5 requests: the kernel spreads them over both listeners.
    std::vector<raw_client> clients;
    for (int i = 0; i < 64; ++i) clients.emplace_back(port);
    int answered = 0;
    for (int round = 0; round < 5; ++round) {
      for (raw_client& c : clients) c.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
      for (raw_client& c : clients) answered += c.response().body == "hello";
    }
    CHECK(answered == 64 * 5);
    {
      std::lock_guard lock(m);
      CHECK(loops_seen.size() == 2);
    }

    // A request in flight when SIGTERM comes is answered, then the connection closes.
    raw_client slow(port);
    slow.send("GET /slow HTTP/1.1\r\nHost: t\r\n\r\n");
    while (!slow_started) std::this_thread::sleep_for(1ms);
    // To the serving thread alone: it blocks SIGTERM and reads it from its signalfd.
    REQUIRE(::pthread_kill(server_thread.native_handle(), SIGTERM) == 0);
    raw_response r = slow.response();
    CHECK(r.status == 200);
    CHECK(r.body == "slept");
    CHECK(r.field("Connection") == "close");
    for (raw_client& c : clients) CHECK(c.closed_by_server());  // idle keep-alive connections are closed
    server_thread.join();
    CHECK_FALSE(failure);
    CHECK(total.connections == 65);
    CHECK(total.requests == 64 * 5 + 1);
    CHECK(total.responses_2xx == 64 * 5 + 1);
    CHECK(total.open_connections == 0);
    clients.clear();
    slow.close();
    CHECK(coring_test::fd_count_returns_to(before));
  }
}
