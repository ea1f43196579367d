#include <coring/net/resolve.hpp>

#include <doctest/doctest.h>

#include <coring/error.hpp>
#include <coring/gather.hpp>
#include <coring/net/detail/dns_lane.hpp>
#include <coring/net/error.hpp>
#include <coring/sleep.hpp>
#include <coring/spawn.hpp>
#include <coring/task.hpp>

#include "support/stopwatch.hpp"

#include <netdb.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using coring::task;
using coring::net::address;
using coring::net::resolve;
using coring_test::stopwatch;
namespace lane = coring::net::detail;

// A lookup that takes 300 ms and counts how many run at once.
std::atomic<int> running{0};
std::atomic<int> most_running{0};
std::atomic<int> finished{0};
std::atomic<bool> gate_open{false};  // "gated.test" waits for it instead of 300 ms
lane::lookup_result slow_lookup(const std::string& host, std::uint16_t port) {
  int now = ++running;
  for (int seen = most_running.load(); now > seen && !most_running.compare_exchange_weak(seen, now);) {
  }
  if (host == "gated.test") {
    while (!gate_open.load()) std::this_thread::sleep_for(1ms);
  } else {
    std::this_thread::sleep_for(300ms);
  }
  --running;
  ++finished;
  lane::lookup_result r;
  if (host == "fails.test") {
    r.error = ::gai_strerror(EAI_AGAIN);
  } else {
    r.addresses.push_back(address::loopback_v4(port));
  }
  return r;
}

struct slow_resolver {
  slow_resolver() {
    running = 0;
    most_running = 0;
    finished = 0;
    gate_open = false;
    lane::set_blocking_lookup(&slow_lookup);
  }
  ~slow_resolver() {
    // Let the lane finish what we started before the real lookup comes back.
    gate_open = true;
    while (running.load() != 0) std::this_thread::sleep_for(5ms);
    lane::set_blocking_lookup(nullptr);
  }
};

}  // namespace

TEST_SUITE("net/dns") {

TEST_CASE("IP literals and localhost resolve on the loop without the lane" * doctest::timeout(10)) {
  const auto before = lane::lane_lookups();
  coring::run([]() -> task<> {
    auto v4 = co_await resolve("127.0.0.1", 80);
    REQUIRE(v4.size() == 1);
    CHECK(v4[0] == address::loopback_v4(80));
    auto v6 = co_await resolve("[::1]", 443);
    REQUIRE(v6.size() == 1);
    CHECK(v6[0].to_string() == "[::1]:443");
    auto local = co_await resolve("LocalHost.", 8080);
    REQUIRE(local.size() == 2);
    CHECK(local[0].to_string() == "127.0.0.1:8080");
    CHECK(local[1].to_string() == "[::1]:8080");
    auto sub = co_await resolve("api.localhost", 1);
    CHECK(sub.size() == 2);
  }());
  CHECK(lane::lane_lookups() == before);
}

TEST_CASE("a name under .invalid fails at once with dns_error naming it and the reason" * doctest::timeout(10)) {
  stopwatch sw;
  coring::run([]() -> task<> {
    bool thrown = false;
    try {
      (void)co_await resolve("nonexistent.invalid", 80);
    } catch (const coring::net::dns_error& e) {
      thrown = true;
      CHECK(e.host() == "nonexistent.invalid");
      CHECK(e.reason() == ::gai_strerror(EAI_NONAME));
      CHECK(std::string(e.what()) == std::string("resolve nonexistent.invalid: ") + ::gai_strerror(EAI_NONAME));
    }
    CHECK(thrown);
    CHECK_THROWS_AS((void)co_await resolve("", 80), coring::net::dns_error);
  }());
  CHECK(sw.elapsed() < 1s);  // never waited for a resolver
}

TEST_CASE("other names go through getaddrinfo on the DNS lane" * doctest::timeout(20)) {
  const auto before = lane::lane_lookups();
  coring::run([]() -> task<> {
    // inet_aton's shorthand is no literal for us, but getaddrinfo takes it
    // without asking any server: a real lookup on the lane that works offline.
    auto a = co_await resolve("127.1", 99);
    REQUIRE_FALSE(a.empty());
    CHECK(a[0] == address::loopback_v4(99));
  }());
  CHECK(lane::lane_lookups() == before + 1);
}

TEST_CASE("a failing lookup on the lane is a dns_error with getaddrinfo's reason" * doctest::timeout(10)) {
  slow_resolver fake;
  coring::run([]() -> task<> {
    bool thrown = false;
    try {
      (void)co_await resolve("fails.test", 1);
    } catch (const coring::net::dns_error& e) {
      thrown = true;
      CHECK(std::string(e.what()) == std::string("resolve fails.test: ") + ::gai_strerror(EAI_AGAIN));
    }
    CHECK(thrown);
  }());
}

TEST_CASE("cancelling a resolve returns at once and the lookup's result is dropped when it lands" *
          doctest::timeout(10)) {
  slow_resolver fake;
  coring::run([]() -> task<> {
    auto h = coring::spawn(resolve("gated.test", 1));
    co_await coring::sleep_for(20ms);  // the lookup runs on the lane now
    h.cancel();
    CHECK_THROWS_AS(co_await h, coring::cancelled);
    CHECK(finished.load() == 0);  // the cancel did not wait for the lookup, which is still blocked
  }());
  gate_open = true;
  while (finished.load() == 0) std::this_thread::sleep_for(5ms);  // it lands later, on nobody
  CHECK(finished.load() == 1);
}

TEST_CASE("a resolve with a timeout ends with timeout_error naming the host" * doctest::timeout(10)) {
  slow_resolver fake;
  coring::run([]() -> task<> {
    bool thrown = false;
    try {
      (void)co_await resolve("slow.test", 1, {.timeout = 50ms});
    } catch (const coring::timeout_error& e) {
      thrown = true;
      CHECK(std::string(e.what()) == "resolve slow.test: timed out after 50 ms");
    }
    CHECK(thrown);
  }());
}

TEST_CASE("the lane runs at most four lookups at once and serves them all" * doctest::timeout(20)) {
  slow_resolver fake;
  coring::run([]() -> task<> {
    std::vector<task<std::vector<address>>> lookups;
    for (int i = 0; i < 10; ++i) lookups.push_back(resolve("host" + std::to_string(i) + ".test", static_cast<std::uint16_t>(i)));
    auto results = co_await coring::gather(std::move(lookups));
    for (std::size_t i = 0; i < results.size(); ++i) {
      REQUIRE(results[i].size() == 1);
      CHECK(results[i][0].port() == i);
    }
  }());
  CHECK(most_running.load() == static_cast<int>(lane::lane_threads));
}

TEST_CASE("lookups from two loops on two threads share the lane" * doctest::timeout(20)) {
  slow_resolver fake;
  int ok = 0;
  std::thread other([&] {
    coring::run([](int& ok) -> task<> {
      auto a = co_await resolve("other.test", 2);
      if (a.size() == 1 && a[0].port() == 2) ++ok;
    }(ok));
  });
  coring::run([]() -> task<> {
    auto a = co_await resolve("main.test", 3);
    CHECK(a.size() == 1);
  }());
  other.join();
  CHECK(ok == 1);
}

}  // TEST_SUITE
