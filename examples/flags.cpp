// flags: the flag downloader of the concurrent.futures tutorials in C++ —
// five small images fetched sequentially, by a thread pool, by a process
// pool and by coroutines gathered on one http::client, each timed, each
// download logged with the process and thread that made it.
//
//   ./flags                                     # every mode, then a table
//   ./flags --mode processes --workers 4
//   ./flags --mode async --out /tmp/flags --countries "yemen zambia"
//   ./flags --base-url https://cdn.countryflags.com/download   # the real site
//   ./flags --quick                             # a short run (CI)
//
// Without --base-url it starts a small HTTP server of its own on 127.0.0.1
// (an http::server on a loop_thread) that serves /<country>/flag-jpg-small.jpg
// as a generated JPEG-like image of a few KiB (the same bytes on every run)
// after --delay-ms, so that it runs offline; a country it does not know is
// 404. Each flag is saved as <country>.jpg in --out (default: a new directory
// under $TMPDIR, printed). You should see one line per download,
// "downloaded yemen flag in process:<pid>, thread:<tid>" (tid: the kernel's
// thread id), then "sequential io took: X seconds" (threadpool, processpool,
// async), and for --mode all a table. With the local server, the saved files
// are then compared with the served bytes ("checked N flags in DIR").
// An HTTP error (an unknown country) is reported with the http::status_error's
// message ("flags: HTTP error: GET <url>: 404 Not Found"; from a worker
// process it comes back as a coring::remote_error naming that type) and the
// exit status is 1.

#include <coring/coring.hpp>
#include <coring/future_as_completed.hpp>
#include <coring/http/blocking_client.hpp>
#include <coring/http/client.hpp>
#include <coring/http/server.hpp>
#include <coring/loop_thread.hpp>
#include <coring/net.hpp>
#include <coring/process_pool.hpp>
#include <coring/thread_pool.hpp>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace http = coring::http;
namespace net = coring::net;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

struct settings {
  std::string mode = "all";
  std::vector<std::string> countries{"yemen", "zambia", "vietnam", "venezuela", "ukraine"};
  std::string base_url;  // empty: the local server
  std::string out;       // empty: a new temporary directory
  unsigned workers = 0;  // 0: the pools' defaults (threads: min(32, CPUs + 4); processes: CPUs)
  std::chrono::milliseconds delay{50};
};

// ---------------------------------------------------------------- the local server

// The countries the local server has a flag for.
bool known_country(std::string_view cc) {
  static const std::vector<std::string_view> known{
      "yemen", "zambia", "vietnam", "venezuela", "ukraine", "uganda", "tanzania", "sweden", "spain", "peru",
      "norway", "nepal", "mexico", "kenya", "japan", "india", "germany", "france", "chile", "brazil"};
  return std::find(known.begin(), known.end(), cc) != known.end();
}

// A JPEG-like image for `cc`: the JPEG start and JFIF marker, 2-6 KiB of
// bytes from a generator seeded by the name, the JPEG end marker. The same
// bytes on every run, so that the saved files can be checked.
std::string flag_image(std::string_view cc) {
  std::uint64_t x = 1469598103934665603ull;  // FNV-1a of the name seeds an xorshift generator
  for (char c : cc) x = (x ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  auto next = [&] {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  };
  std::string image("\xFF\xD8\xFF\xE0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00", 20);
  const std::size_t size = 2048 + next() % 4096;
  while (image.size() < size) image.push_back(static_cast<char>(next() & 0xFF));
  image += "\xFF\xD9";
  return image;
}

coring::task<> serve_flags(const http::router& app, net::tcp_listener listener) {
  http::server srv(app);
  co_await srv.serve(std::move(listener));
}

// ---------------------------------------------------------------- downloading

std::string flag_url(const std::string& base, const std::string& cc) {
  return base + "/" + cc + "/flag-jpg-small.jpg";
}

void log_download(const std::string& cc) {
  std::printf("downloaded %s flag in process:%d, thread:%d\n", cc.c_str(), static_cast<int>(getpid()),
              static_cast<int>(gettid()));
  std::fflush(stdout);  // one write per line, also from the worker processes
}

// The tutorial's get_flag: one request on this thread's session.
std::string get_flag(http::blocking_client& session, const std::string& base, const std::string& cc) {
  http::blocking_response resp = session.get(flag_url(base, cc));
  if (resp.status() != 200) {
    resp.raise_for_status();
  } else {
    log_download(cc);
  }
  return resp.text();
}

void write_flag(const std::string& dir, const std::string& cc, const std::string& bytes) {
  const fs::path path = fs::path(dir) / (cc + ".jpg");
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  f.close();
  if (!f) throw coring::error("writing " + path.string() + " failed");
}

void sequential_io(const settings& s) {
  http::blocking_client session;  // requests.get's connection, kept between the flags
  for (const auto& cc : s.countries) write_flag(s.out, cc, get_flag(session, s.base_url, cc));
}

// A thread-pool job: this thread's session, made by its first job.
std::string get_flag_on_thread(const std::string& base, const std::string& cc) {
  thread_local http::blocking_client session;
  return get_flag(session, base, cc);
}

void threadpool(const settings& s) {
  coring::thread_pool pool(s.workers);  // ThreadPoolExecutor(max_workers=workers)
  std::vector<coring::future<std::string>> futures;
  for (const auto& cc : s.countries) futures.push_back(pool.submit(get_flag_on_thread, s.base_url, cc));
  for (std::size_t i : coring::as_completed_indices(futures)) write_flag(s.out, s.countries[i], futures[i].get());
}

// A process-pool job: this worker's session, made by its first job; the
// image comes back to the parent, which saves it.
std::string get_flag_in_worker(std::string base, std::string cc) {
  static http::blocking_client session;
  return get_flag(session, base, cc);
}
CORING_REGISTER_JOB(get_flag_in_worker);  // messages name the job "get_flag_in_worker"

void processpool(const settings& s) {
  coring::process_pool pool({.workers = s.workers});  // ProcessPoolExecutor(max_workers=workers)
  std::printf("processpool workers: %u\n", pool.size());
  std::fflush(stdout);
  std::vector<coring::future<std::string>> futures;
  for (const auto& cc : s.countries) futures.push_back(pool.submit(get_flag_in_worker, s.base_url, cc));
  for (std::size_t i : coring::as_completed_indices(futures)) write_flag(s.out, s.countries[i], futures[i].get());
}

coring::task<> get_flag_async(http::client& session, const settings& s, const std::string& cc) {
  http::client_response resp = co_await session.get(flag_url(s.base_url, cc));
  if (resp.status() != 200) {
    resp.raise_for_status();
  } else {
    (void)co_await resp.save((fs::path(s.out) / (cc + ".jpg")).string());
    log_download(cc);
  }
}

coring::task<> async_io(const settings& s) {
  http::client session;  // aiohttp.ClientSession()
  std::vector<coring::task<>> jobs;
  for (const auto& cc : s.countries) jobs.push_back(get_flag_async(session, s, cc));
  co_await coring::gather(std::move(jobs));
}

double timed(const char* label, auto&& run) {
  const auto start = std::chrono::steady_clock::now();
  run();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%s took: %.3f seconds\n", label, seconds);
  std::fflush(stdout);
  return seconds;
}

// With the local server: each saved file holds the bytes it served.
void check_saved(const settings& s) {
  for (const auto& cc : s.countries) {
    const fs::path path = fs::path(s.out) / (cc + ".jpg");
    std::ifstream f(path, std::ios::binary);
    const std::string saved{std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
    if (saved != flag_image(cc)) {
      throw coring::error("checking " + path.string() + ": " + std::to_string(saved.size()) +
                          " bytes that differ from the " + std::to_string(flag_image(cc).size()) + " served");
    }
  }
  std::printf("checked %zu flags in %s: the bytes served\n", s.countries.size(), s.out.c_str());
}

int usage(int status) {
  std::printf(
      "usage: flags [--mode sequential|threads|processes|async|all] [--countries \"a b c\"]\n"
      "             [--out DIR] [--workers N] [--base-url URL] [--delay-ms N] [--quick]\n"
      "Downloads <base-url>/<country>/flag-jpg-small.jpg for each country (default: a\n"
      "local server answering after --delay-ms, 50) into DIR/<country>.jpg (default: a\n"
      "new temporary directory) in each mode, and prints the times. --workers: the\n"
      "pools' size (default: threads min(32, CPUs + 4), processes one per CPU).\n");
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
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) std::exit(usage(2));
      return argv[++i];
    };
    if (arg == "--mode") {
      s.mode = value();
    } else if (arg == "--countries") {
      std::istringstream words(value());
      s.countries.assign(std::istream_iterator<std::string>(words), std::istream_iterator<std::string>());
    } else if (arg == "--out") {
      s.out = value();
    } else if (arg == "--workers") {
      s.workers = static_cast<unsigned>(std::strtoul(value().c_str(), nullptr, 10));
    } else if (arg == "--base-url") {
      s.base_url = value();
      while (s.base_url.ends_with('/')) s.base_url.pop_back();
    } else if (arg == "--delay-ms") {
      s.delay = std::chrono::milliseconds(std::strtoul(value().c_str(), nullptr, 10));
    } else if (arg == "--quick") {
      s.delay = 5ms;
    } else if (arg == "--help" || arg == "-h") {
      return usage(0);
    } else {
      return usage(2);
    }
  }
  if (s.mode != "sequential" && s.mode != "threads" && s.mode != "processes" && s.mode != "async" &&
      s.mode != "all") {
    return usage(2);
  }

  try {
    if (s.out.empty()) {
      std::string pattern = (fs::temp_directory_path() / "coring-flags-XXXXXX").string();
      if (!mkdtemp(pattern.data())) throw coring::error("making a directory " + pattern + " failed");
      s.out = pattern;
    } else {
      fs::create_directories(s.out);
    }
    std::printf("saving the flags in %s\n", s.out.c_str());

    // The local server: its router outlives the loop_thread, whose
    // destructor cancels serve_flags (and so stops the server) first.
    http::router app;
    std::unique_ptr<coring::loop_thread> server;
    const bool local = s.base_url.empty();
    if (local) {
      app.get("/{cc}/flag-jpg-small.jpg", [delay = s.delay](http::request& req) -> coring::task<http::response> {
        const std::string cc(req.param("cc"));
        if (!known_country(cc)) throw http::request_error(404, "no flag for " + cc);
        co_await coring::sleep_for(delay);
        co_return http::response::bytes(flag_image(cc), "image/jpeg");
      });
      auto listener = net::tcp_listener::bind(net::address::loopback_v4(0));
      s.base_url = "http://127.0.0.1:" + std::to_string(listener.local_address().port());
      server = std::make_unique<coring::loop_thread>();
      (void)server->submit(serve_flags(app, std::move(listener)));
      std::printf("local server on %s, %lld ms per flag\n", s.base_url.c_str(),
                  static_cast<long long>(s.delay.count()));
    }

    std::vector<std::pair<std::string, double>> table;
    auto mode = [&](const char* name, const char* label, auto&& run) {
      if (s.mode != name && s.mode != "all") return;
      table.emplace_back(name, timed(label, run));
      if (local) check_saved(s);
    };
    mode("sequential", "sequential io", [&] { sequential_io(s); });
    mode("threads", "threadpool", [&] { threadpool(s); });
    mode("processes", "processpool", [&] { processpool(s); });
    mode("async", "async", [&] { coring::run(async_io(s)); });
    if (table.size() > 1) {
      std::printf("\n%-10s %10s %14s\n", "mode", "seconds", "vs sequential");
      for (const auto& [name, seconds] : table) {
        std::printf("%-10s %10.3f %13.1fx\n", name.c_str(), seconds, table.front().second / seconds);
      }
    }
  } catch (const http::status_error& e) {
    std::fprintf(stderr, "flags: HTTP error: %s\n", e.what());
    return 1;
  } catch (const coring::remote_error& e) {
    // A worker process raised it: the type and message came back by name.
    if (e.type_name() == "coring::http::status_error") {
      std::fprintf(stderr, "flags: HTTP error in a worker process: %s\n", e.message().c_str());
    } else {
      std::fprintf(stderr, "flags: %s\n", e.what());
    }
    return 1;
  } catch (const coring::error& e) {
    std::fprintf(stderr, "flags: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "flags: %s\n", e.what());
    return 1;
  }
  return 0;
}
