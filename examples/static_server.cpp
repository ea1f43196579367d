// static_server: serves a directory over HTTP/1.1 — files spliced from disk
// to the socket (no copy through user space), ETag and Last-Modified with
// 304, Range with 206, MIME types from the extension, and no path out of the
// directory. The cats downloader (examples/cats) can download from it
// with --url-base http://127.0.0.1:<port>.
//
//   build/release/examples/static_server --dir ./cats --port 8080   # until Ctrl-C (SIGINT) or SIGTERM
//   curl -O http://127.0.0.1:8080/tom.jpg
//   curl -r 0-99 http://127.0.0.1:8080/tom.jpg | wc -c              # 100
//
// You should see "serving <dir> at http://127.0.0.1:8080/ with 1 thread";
// on Ctrl-C it stops gracefully (downloads in flight finish) and prints its
// counters.
//
// Options: --dir D (default: the current directory), --port N (0: any free
// port), --address A (default 127.0.0.1), --threads N (loops; 0: one per
// core), --prefix P (URL prefix, default /), --log (an access log line per request).

#include <coring/coring.hpp>
#include <coring/http/server.hpp>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace http = coring::http;

int main(int argc, char** argv) {
  http::serve_options options{.threads = 1, .address = "127.0.0.1"};
  std::uint16_t port = 8080;
  std::string dir = ".";
  std::string prefix = "/";
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "static_server: %s needs a value\n", arg.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "--dir") {
      dir = value();
    } else if (arg == "--port") {
      port = static_cast<std::uint16_t>(std::stoul(value()));
    } else if (arg == "--address") {
      options.address = value();
    } else if (arg == "--threads") {
      options.threads = static_cast<unsigned>(std::stoul(value()));
    } else if (arg == "--prefix") {
      prefix = value();
    } else if (arg == "--log") {
      options.server.access_log = true;
    } else {
      std::fprintf(
          stderr,
          "usage: static_server [--dir D] [--port N] [--address A] [--threads N] [--prefix P] [--log]\n");
      return arg == "--help" ? 0 : 2;
    }
  }

  http::router app;
  try {
    app.static_files(prefix, dir);
  } catch (const coring::error& e) {
    std::fprintf(stderr, "static_server: %s\n", e.what());
    return 1;
  }
  options.on_listening = [&](std::uint16_t bound) {
    const unsigned threads = options.threads ? options.threads : std::thread::hardware_concurrency();
    std::printf("serving %s at http://%s:%u%s with %u thread%s\n", dir.c_str(), options.address.c_str(),
                bound, prefix.c_str(), threads, threads == 1 ? "" : "s");
    std::fflush(stdout);
  };
  http::server_stats s = http::serve(app, port, options);
  std::printf("served %llu requests (%llu bytes) on %llu connections\n",
              static_cast<unsigned long long>(s.requests), static_cast<unsigned long long>(s.bytes_sent),
              static_cast<unsigned long long>(s.connections));
}
