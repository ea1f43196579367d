// cats: the "download 20 cats" tutorial in C++ — 20 cats x 5 downloads each
// of <url-base>/<cat>.jpg from a static file server, in the tutorial's stages,
// each printing "Duration X seconds":
//
//   naive    a new connection per download (urlopen; here a fresh
//            http::blocking_client per download), the cats one after another
//   threads  a thread pool of 5 mapping download_cat over the 20 cats, still
//            a new connection per download
//   session  the same pool, one keep-alive session per thread (thread_local)
//   async    a gather of 20 cats, each a gather of its 5 downloads, on one
//            http::client (the tutorial opens a ClientSession per download;
//            one shared session is how aiohttp should be used, and keeps its
//            connections alive between downloads). It starts all 100
//            downloads at once, so a new session opens up to --limit
//            connections (100, aiohttp's default) where the pool's sessions
//            reuse 5: --limit 5 shows the difference
//
//   ./cats                                 # every stage, then a table
//   ./cats --stage session --repeat 3
//   ./cats --stage async --limit 5
//   ./cats --url-base http://127.0.0.1:8080   # e.g. nginx, or examples/static_server --dir DIR
//   ./cats --quick                         # one run per stage (CI)
//
// The tutorial times each stage with timeit(number=10): here --repeat N
// (default 10, as the tutorial) runs a stage N times and its Duration is the
// total, as timeit's; the table divides it by N. --quick sets --repeat 1.
//
// Without --url-base it writes 20 generated images 1.jpg..20.jpg (20-60 KiB,
// the same bytes on every run) into a new temporary directory, serves it with
// http::server and router::static_files on a loop_thread (what
// examples/static_server does), and removes the directory at exit. Every
// download's size is checked against the file's size (for --url-base:
// against the Content-Length sent); a wrong size is an error (exit status 1).

#include <coring/coring.hpp>
#include <coring/http/blocking_client.hpp>
#include <coring/http/client.hpp>
#include <coring/http/server.hpp>
#include <coring/loop_thread.hpp>
#include <coring/net.hpp>
#include <coring/thread_pool.hpp>

#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

namespace http = coring::http;
namespace net = coring::net;
namespace fs = std::filesystem;

namespace {

constexpr int cat_count = 20;         // the tutorial's range(1, 21)
constexpr int downloads_per_cat = 5;  // its range(5)
constexpr std::size_t pool_size = 5;  // its ThreadPoolExecutor(max_workers=5)

/// A download whose size is not the file's.
class size_error : public coring::error {
 public:
  using error::error;
};

// Where the cats are and how big each is.
struct target {
  std::string base;                  // "http://127.0.0.1:PORT"
  std::vector<std::uint64_t> sizes;  // sizes[cat - 1]; empty: check against Content-Length
};

// A directory removed with everything in it when this is destroyed.
struct temp_dir {
  fs::path path;
  temp_dir() {
    std::string pattern = (fs::temp_directory_path() / "coring-cats-XXXXXX").string();
    if (!mkdtemp(pattern.data())) throw coring::error("making a directory " + pattern + " failed");
    path = pattern;
  }
  ~temp_dir() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
};

// ---------------------------------------------------------------- the local cat server

// Writes 1.jpg..20.jpg: a JPEG start and JFIF marker, 20-60 KiB of bytes from
// a generator seeded by the cat's number, a JPEG end. Gives their sizes.
std::vector<std::uint64_t> write_cats(const fs::path& dir) {
  std::vector<std::uint64_t> sizes;
  for (int cat = 1; cat <= cat_count; ++cat) {
    std::uint64_t x = 0x9E3779B97F4A7C15ull * static_cast<std::uint64_t>(cat);
    auto next = [&] {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      return x;
    };
    std::string image("\xFF\xD8\xFF\xE0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00", 20);
    const std::size_t size = 20 * 1024 + next() % (40 * 1024);
    while (image.size() < size) image.push_back(static_cast<char>(next() & 0xFF));
    image += "\xFF\xD9";
    const fs::path path = dir / (std::to_string(cat) + ".jpg");
    std::ofstream f(path, std::ios::binary);
    f.write(image.data(), static_cast<std::streamsize>(image.size()));
    f.close();
    if (!f) throw coring::error("writing " + path.string() + " failed");
    sizes.push_back(image.size());
  }
  return sizes;
}

coring::task<> serve_cats(const http::router& app, net::tcp_listener listener) {
  http::server srv(app);
  co_await srv.serve(std::move(listener));
}

// ---------------------------------------------------------------- the stages

std::string cat_url(const target& t, int cat) { return t.base + "/" + std::to_string(cat) + ".jpg"; }

// Throws size_error unless `got` bytes is what cat `cat` should have.
void check_size(const target& t, int cat, std::size_t got, const http::headers& h) {
  std::uint64_t expected = 0;
  if (!t.sizes.empty()) {
    expected = t.sizes[static_cast<std::size_t>(cat - 1)];
  } else if (auto length = h.get("Content-Length"); length && !h.contains("Content-Encoding")) {
    expected = std::strtoull(std::string(*length).c_str(), nullptr, 10);
  } else {
    return;  // a remote server that does not say: nothing to compare with
  }
  if (got != expected) {
    throw size_error("GET " + cat_url(t, cat) + ": " + std::to_string(got) + " bytes downloaded, " +
                     std::to_string(expected) + " expected");
  }
}

std::uint64_t download(http::blocking_client& session, const target& t, int cat) {
  http::blocking_response r = session.get(cat_url(t, cat));
  r.raise_for_status();
  check_size(t, cat, r.text().size(), r.headers());
  return r.text().size();
}

// The tutorial's download_cat with urlopen: a new connection per download.
std::uint64_t download_cat_naive(const target& t, int cat) {
  std::uint64_t bytes = 0;
  for (int i = 0; i < downloads_per_cat; ++i) {
    http::blocking_client once;
    bytes += download(once, t, cat);
  }
  return bytes;
}

// Its session-per-thread version: this thread's keep-alive session.
std::uint64_t download_cat_session(const target& t, int cat) {
  thread_local http::blocking_client session;
  std::uint64_t bytes = 0;
  for (int i = 0; i < downloads_per_cat; ++i) bytes += download(session, t, cat);
  return bytes;
}

std::vector<int> cats() {
  std::vector<int> ids(cat_count);
  std::iota(ids.begin(), ids.end(), 1);
  return ids;
}

std::uint64_t naive(const target& t) {
  std::uint64_t bytes = 0;
  for (int cat : cats()) bytes += download_cat_naive(t, cat);
  return bytes;
}

// runner.map(download_cat, range(1, 21)) in a ThreadPoolExecutor(5).
std::uint64_t threads(const target& t, auto download_cat) {
  coring::thread_pool runner(pool_size);
  std::vector<std::uint64_t> bytes = runner.map([&](int cat) { return download_cat(t, cat); }, cats());
  return std::accumulate(bytes.begin(), bytes.end(), std::uint64_t{0});
}

coring::task<std::uint64_t> download_async(http::client& session, const target& t, int cat) {
  const std::string url = cat_url(t, cat);
  http::client_response r = co_await session.get(url);
  r.raise_for_status();
  const std::vector<std::byte> body = co_await r.bytes();
  check_size(t, cat, body.size(), r.headers());
  co_return body.size();
}

coring::task<std::uint64_t> download_cat_async(http::client& session, const target& t, int cat) {
  std::vector<coring::task<std::uint64_t>> downloads;
  for (int i = 0; i < downloads_per_cat; ++i) downloads.push_back(download_async(session, t, cat));
  std::uint64_t bytes = 0;
  for (std::uint64_t n : co_await coring::gather(std::move(downloads))) bytes += n;
  co_return bytes;
}

coring::task<std::uint64_t> async_cats(const target& t, std::size_t limit) {
  http::client_options o{.limit = limit};  // aiohttp's TCPConnector(limit=100) by default
  http::client session(std::move(o));
  std::vector<coring::task<std::uint64_t>> all;
  for (int cat : cats()) all.push_back(download_cat_async(session, t, cat));
  std::uint64_t bytes = 0;
  for (std::uint64_t n : co_await coring::gather(std::move(all))) bytes += n;
  co_return bytes;
}

int usage(int status) {
  std::printf(
      "usage: cats [--stage naive|threads|session|async|all] [--repeat N] [--limit N]\n"
      "            [--url-base URL] [--quick]\n"
      "Downloads 20 cats x 5 times each (<url-base>/1.jpg .. 20.jpg; default: generated\n"
      "images served from a temporary directory by a local server) in each stage,\n"
      "--repeat times (default 10; --quick: 1), and prints each stage's Duration.\n"
      "--limit: connections of the async stage's session (default 100).\n");
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  std::string stage = "all";
  std::string url_base;
  int repeat = 10;
  std::size_t limit = 100;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) std::exit(usage(2));
      return argv[++i];
    };
    if (arg == "--stage") {
      stage = value();
    } else if (arg == "--repeat") {
      repeat = std::max(1, std::atoi(value().c_str()));
    } else if (arg == "--limit") {
      limit = std::strtoull(value().c_str(), nullptr, 10);
    } else if (arg == "--url-base") {
      url_base = value();
      while (url_base.ends_with('/')) url_base.pop_back();
    } else if (arg == "--quick") {
      repeat = 1;
    } else if (arg == "--help" || arg == "-h") {
      return usage(0);
    } else {
      return usage(2);
    }
  }
  if (stage != "naive" && stage != "threads" && stage != "session" && stage != "async" && stage != "all") {
    return usage(2);
  }

  try {
    // Declared in this order so that the server stops (~loop_thread) before
    // its router goes, and both before the directory is removed.
    std::unique_ptr<temp_dir> dir;
    http::router app;
    std::unique_ptr<coring::loop_thread> server;
    target t{.base = url_base, .sizes = {}};
    if (url_base.empty()) {
      dir = std::make_unique<temp_dir>();
      t.sizes = write_cats(dir->path);
      app.static_files("/", dir->path.string());
      auto listener = net::tcp_listener::bind(net::address::loopback_v4(0));
      t.base = "http://127.0.0.1:" + std::to_string(listener.local_address().port());
      server = std::make_unique<coring::loop_thread>();
      (void)server->submit(serve_cats(app, std::move(listener)));
      std::printf("serving %d generated cats (%llu bytes) from %s at %s/\n", cat_count,
                  static_cast<unsigned long long>(std::accumulate(t.sizes.begin(), t.sizes.end(), std::uint64_t{0})),
                  dir->path.c_str(), t.base.c_str());
    }
    std::printf("%d cats x %d downloads, %d run%s per stage\n", cat_count, downloads_per_cat, repeat,
                repeat == 1 ? "" : "s");
    std::fflush(stdout);

    std::vector<std::pair<std::string, double>> table;
    auto run_stage = [&](const char* name, auto&& once) {
      if (stage != name && stage != "all") return;
      const auto start = std::chrono::steady_clock::now();
      std::uint64_t bytes = 0;
      for (int r = 0; r < repeat; ++r) bytes += once();
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::printf("%-8s Duration %.3f seconds (%d x %d downloads, %llu bytes, sizes checked)\n", name, seconds,
                  repeat, cat_count * downloads_per_cat, static_cast<unsigned long long>(bytes));
      std::fflush(stdout);
      table.emplace_back(name, seconds / repeat);
    };
    run_stage("naive", [&] { return naive(t); });
    run_stage("threads", [&] { return threads(t, download_cat_naive); });
    run_stage("session", [&] { return threads(t, download_cat_session); });
    run_stage("async", [&] { return coring::run(async_cats(t, limit)); });
    if (table.size() > 1) {
      std::printf("\n%-8s %14s %10s\n", "stage", "seconds/run", "vs naive");
      for (const auto& [name, seconds] : table) {
        std::printf("%-8s %14.3f %9.1fx\n", name.c_str(), seconds, table.front().second / seconds);
      }
    }
  } catch (const coring::error& e) {
    std::fprintf(stderr, "cats: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cats: %s\n", e.what());
    return 1;
  }
  return 0;
}
