// download_sites: the asyncio tutorial's downloader in C++ — the same pages
// fetched in a plain loop, by a thread pool (one blocking session per thread),
// by a process pool (one blocking session per worker process) and by
// coroutines gathered on one http::client, each timed.
//
//   ./download_sites --mode all            # sync, threads, processes, async; then a table
//   ./download_sites --mode async --sites 160 --delay-ms 50
//   ./download_sites --mode processes --processes 4
//   ./download_sites --mode threads http://example.com/ https://www.python.org/
//   ./download_sites --quick               # a short run (CI)
//
// Without URLs it starts a small HTTP server of its own on 127.0.0.1 (on a
// loop_thread) that answers each request after --delay-ms, like a remote
// site, so that it runs offline. You should see one "Downloaded N sites in
// X seconds" line per mode and, for --mode all, a table of the modes.

#include <coring/coring.hpp>
#include <coring/http/blocking_client.hpp>
#include <coring/http/client.hpp>
#include <coring/loop_thread.hpp>
#include <coring/net.hpp>
#include <coring/process_pool.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace http = coring::http;
namespace net = coring::net;
using namespace std::chrono_literals;

namespace {

struct settings {
  std::string mode = "all";
  std::size_t sites = 160;          // the tutorial's 2 pages x 80
  std::size_t threads = 5;          // the tutorial's max_workers
  unsigned processes = 0;           // ProcessPoolExecutor's default: one per CPU
  std::chrono::milliseconds delay{50};
  std::vector<std::string> urls;
};

// ---------------------------------------------------------------- the local server

coring::task<> answer(net::tcp_stream conn, std::chrono::milliseconds delay) {
  net::buffered_reader in(conn);
  static const std::string body(10 * 1024, 'x');
  const std::string reply = "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: " +
                            std::to_string(body.size()) + "\r\n\r\n" + body;
  try {
    for (;;) {
      std::string_view head = co_await in.read_until("\r\n\r\n", 16384);
      if (head.empty()) break;  // the client closed
      co_await coring::sleep_for(delay);
      co_await conn.write_all(std::as_bytes(std::span(reply.data(), reply.size())));
    }
  } catch (const coring::error&) {
    // A client that went away mid-request: nothing to answer.
  }
}

coring::task<> serve(net::tcp_listener listener, std::chrono::milliseconds delay) {
  co_await coring::task_group::run([&](coring::task_group& group) -> coring::task<> {
    for (;;) group.spawn(answer(co_await listener.accept(), delay));
  });
}

// ---------------------------------------------------------------- the modes

std::size_t download_sync(const std::vector<std::string>& urls) {
  http::blocking_client session;  // requests.Session()
  std::size_t bytes = 0;
  for (const auto& u : urls) bytes += session.get(u).text().size();
  return bytes;
}

std::size_t download_threads(const std::vector<std::string>& urls, std::size_t threads) {
  std::atomic<std::size_t> next{0}, bytes{0};
  std::vector<std::thread> pool;
  for (std::size_t t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      http::blocking_client session;  // one session per thread, as the tutorial's thread-local one
      for (std::size_t i = next++; i < urls.size(); i = next++) bytes += session.get(urls[i]).text().size();
    });
  }
  for (auto& t : pool) t.join();
  return bytes;
}

// A job of the process pool: it runs in a worker process, whose session is
// made by its first job and kept for the next ones (the tutorial's global
// session, set by the pool's initializer).
std::size_t download_in_worker(std::string url) {
  static http::blocking_client session;
  return session.get(url).text().size();
}
CORING_REGISTER_JOB(download_in_worker);  // messages name the job "download_in_worker"

std::size_t download_processes(const std::vector<std::string>& urls, unsigned processes) {
  coring::process_pool pool({.workers = processes});  // ProcessPoolExecutor(): timed with its start
  std::size_t bytes = 0;
  for (std::size_t n : coring::run(pool.map(download_in_worker, urls))) bytes += n;
  return bytes;
}

coring::task<std::size_t> download_one(http::client& session, const std::string& u) {
  http::client_response r = co_await session.get(u);
  co_return (co_await r.text()).size();
}

coring::task<std::size_t> download_async(const std::vector<std::string>& urls) {
  http::client session;  // aiohttp.ClientSession(): at most 100 connections
  std::vector<coring::task<std::size_t>> jobs;
  for (const auto& u : urls) jobs.push_back(download_one(session, u));
  std::size_t bytes = 0;
  for (std::size_t n : co_await coring::gather(std::move(jobs))) bytes += n;
  co_return bytes;
}

double timed(const char* mode, std::size_t n, auto&& run) {
  const auto start = std::chrono::steady_clock::now();
  const std::size_t bytes = run();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%-9s Downloaded %zu sites in %.3f seconds (%zu bytes)\n", mode, n, seconds, bytes);
  std::fflush(stdout);
  return seconds;
}

int usage(int status) {
  std::printf(
      "usage: download_sites [--mode sync|threads|processes|async|all] [--sites N]\n"
      "                      [--threads N] [--processes N] [--delay-ms N] [--quick] [URL...]\n"
      "Downloads the URLs (default: two pages of a local server that answers after\n"
      "--delay-ms, repeated to --sites downloads) in each mode and prints the times.\n"
      "--threads: the thread pool's size (5); --processes: the process pool's\n"
      "(0, the default: one per CPU).\n");
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  // First line of main: the process pool's fork server, forked while this
  // process has one thread (the local server's loop_thread comes later).
  coring::process_pool::start_fork_server();
  settings s;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&] { return i + 1 < argc ? std::strtoull(argv[++i], nullptr, 10) : 0ull; };
    if (arg == "--mode" && i + 1 < argc) {
      s.mode = argv[++i];
    } else if (arg == "--sites") {
      s.sites = value();
    } else if (arg == "--threads") {
      s.threads = value();
    } else if (arg == "--processes") {
      s.processes = static_cast<unsigned>(value());
    } else if (arg == "--delay-ms") {
      s.delay = std::chrono::milliseconds(value());
    } else if (arg == "--quick") {
      s.sites = 20;
      s.delay = 10ms;
    } else if (arg == "--help" || arg == "-h") {
      return usage(0);
    } else if (arg.starts_with("-")) {
      return usage(2);
    } else {
      s.urls.push_back(arg);
    }
  }
  if (s.mode != "sync" && s.mode != "threads" && s.mode != "processes" && s.mode != "async" && s.mode != "all") {
    return usage(2);
  }

  std::unique_ptr<coring::loop_thread> server;
  std::vector<std::string> urls;
  if (s.urls.empty()) {
    auto listener = net::tcp_listener::bind(net::address::loopback_v4(0));
    const std::string base = "http://127.0.0.1:" + std::to_string(listener.local_address().port());
    server = std::make_unique<coring::loop_thread>();
    (void)server->submit(serve(std::move(listener), s.delay));
    s.urls = {base + "/", base + "/about"};
    std::printf("local server on %s, %lld ms per response\n", base.c_str(),
                static_cast<long long>(s.delay.count()));
  }
  for (std::size_t i = 0; i < s.sites; ++i) urls.push_back(s.urls[i % s.urls.size()]);

  try {
    std::vector<std::pair<std::string, double>> table;
    if (s.mode == "sync" || s.mode == "all") {
      table.emplace_back("sync", timed("sync", urls.size(), [&] { return download_sync(urls); }));
    }
    if (s.mode == "threads" || s.mode == "all") {
      table.emplace_back("threads", timed("threads", urls.size(), [&] { return download_threads(urls, s.threads); }));
    }
    if (s.mode == "processes" || s.mode == "all") {
      table.emplace_back("processes", timed("processes", urls.size(), [&] {
        return download_processes(urls, s.processes);
      }));
    }
    if (s.mode == "async" || s.mode == "all") {
      table.emplace_back("async", timed("async", urls.size(), [&] { return coring::run(download_async(urls)); }));
    }
    if (table.size() > 1) {
      std::printf("\n%-9s %10s %10s\n", "mode", "seconds", "vs sync");
      for (const auto& [mode, seconds] : table) {
        std::printf("%-9s %10.3f %9.1fx\n", mode.c_str(), seconds, table.front().second / seconds);
      }
    }
  } catch (const coring::error& e) {
    std::fprintf(stderr, "download_sites: %s\n", e.what());
    return 1;
  }
  return 0;
}
