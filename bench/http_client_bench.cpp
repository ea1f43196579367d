// http_client_bench: many GETs of one URL through http::client, the request
// rate and the client's CPU cost (bench/run_http_client_bench starts nginx
// and runs Boost.Beast, aiohttp, curl and wrk against it in the same run).
//
//   build/release/bench/http_client_bench --requests 10000 --connections 100 [--size BYTES]
//       [--batch-wait MICROSECONDS] URL
//
// --batch-wait sets the loop's options::batch_wait (batched wake-ups; 0, the
// default, leaves them off).
// One session with limit = --connections; as many workers as connections,
// each taking the next request from a shared count, GET, the body read whole
// (resp.bytes()). Every status must be 200 and, with --size, every body
// exactly BYTES long; otherwise it exits 1 naming the first difference.
// Output: one line of key=value pairs, e.g.
//   requests=10000 seconds=0.512 requests_per_s=19531 mb_per_s=20.0 cpu_us_per_request=48.1 bytes=10240000
// (mb_per_s: body bytes, 10^6 per MB; cpu: user + system, getrusage).

#include <coring/coring.hpp>
#include <coring/http/client.hpp>

#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

namespace http = coring::http;
using clock_type = std::chrono::steady_clock;

namespace {

struct settings {
  std::size_t requests = 10000;
  std::size_t connections = 100;
  long long size = -1;  // expected body bytes; -1: not checked
  long long batch_wait_us = 0;  // the loop's options::batch_wait
  std::string url;
};

struct totals {
  std::size_t next = 0;  // the next request to send
  std::uint64_t bytes = 0;
};

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

coring::task<> worker(http::client& session, const settings& s, totals& t) {
  while (t.next < s.requests) {
    ++t.next;
    http::client_response resp = co_await session.get(s.url);
    if (resp.status() != 200) throw std::runtime_error("GET " + s.url + " answered " + std::to_string(resp.status()));
    const std::vector<std::byte> body = co_await resp.bytes();
    if (s.size >= 0 && body.size() != static_cast<std::size_t>(s.size)) {
      throw std::runtime_error("GET " + s.url + " gave " + std::to_string(body.size()) + " bytes, not " +
                               std::to_string(s.size));
    }
    t.bytes += body.size();
  }
}

coring::task<> main_task(const settings& s) {
  http::client_options options{.limit = s.connections};
  http::client session(std::move(options));
  totals t;
  const double cpu_before = cpu_seconds();
  const auto start = clock_type::now();
  std::vector<coring::task<>> workers;
  for (std::size_t i = 0; i < s.connections; ++i) workers.push_back(worker(session, s, t));
  co_await coring::gather(std::move(workers));
  const double seconds = std::chrono::duration<double>(clock_type::now() - start).count();
  const double cpu = cpu_seconds() - cpu_before;
  std::printf("requests=%zu seconds=%.3f requests_per_s=%.0f mb_per_s=%.1f cpu_us_per_request=%.1f bytes=%llu\n",
              s.requests, seconds, static_cast<double>(s.requests) / seconds,
              static_cast<double>(t.bytes) / 1e6 / seconds, cpu * 1e6 / static_cast<double>(s.requests),
              static_cast<unsigned long long>(t.bytes));
}

}  // namespace

int main(int argc, char** argv) {
  settings s;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (arg == "--requests") {
      s.requests = std::strtoull(value().c_str(), nullptr, 10);
    } else if (arg == "--connections") {
      s.connections = std::strtoull(value().c_str(), nullptr, 10);
    } else if (arg == "--size") {
      s.size = std::atoll(value().c_str());
    } else if (arg == "--batch-wait") {
      s.batch_wait_us = std::atoll(value().c_str());
    } else if (arg.rfind("http", 0) == 0 && s.url.empty()) {
      s.url = arg;
    } else {
      std::printf("usage: http_client_bench [--requests N] [--connections N] [--size BYTES] [--batch-wait US] URL\n");
      return arg == "--help" ? 0 : 2;
    }
  }
  if (s.url.empty() || s.connections == 0) {
    std::printf("usage: http_client_bench [--requests N] [--connections N] [--size BYTES] [--batch-wait US] URL\n");
    return 2;
  }
  try {
    coring::run_options run;
    run.loop.batch_wait = std::chrono::microseconds(s.batch_wait_us);
    coring::run(main_task(s), run);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "http_client_bench: %s\n", e.what());
    return 1;
  }
}
