// hello_server: the smallest HTTP server — one route answering "Hello, world!"
// (13 bytes, no newline), served by one event loop per thread (http::serve), each with its
// own SO_REUSEPORT listener.
//
//   build/release/examples/hello_server --port 8080 --threads 2   # until Ctrl-C (SIGINT) or SIGTERM
//   curl -i http://127.0.0.1:8080/
//   wrk -c 100 -d 5 http://127.0.0.1:8080/
//
// You should see "listening on 0.0.0.0:8080 with 2 threads"; curl prints the
// response with its Date and Server fields. On Ctrl-C the server stops
// gracefully (requests in flight finish) and prints its counters.
//
// Options: --port N (0: any free port), --threads N (0: one per core),
// --address A (default 0.0.0.0), --log (an access log line per request).

#include <coring/coring.hpp>
#include <coring/http/server.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace http = coring::http;

int main(int argc, char** argv) {
  http::serve_options options;
  std::uint16_t port = 8080;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "hello_server: %s needs a value\n", arg.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "--port") {
      port = static_cast<std::uint16_t>(std::stoul(value()));
    } else if (arg == "--threads") {
      options.threads = static_cast<unsigned>(std::stoul(value()));
    } else if (arg == "--address") {
      options.address = value();
    } else if (arg == "--log") {
      options.server.access_log = true;
    } else {
      std::fprintf(stderr, "usage: hello_server [--port N] [--threads N] [--address A] [--log]\n");
      return arg == "--help" ? 0 : 2;
    }
  }

  http::router app;
  app.get("/", [](http::request&) -> coring::task<http::response> {
    co_return http::response::text("Hello, world!");  // 13 bytes
  });

  options.on_listening = [&](std::uint16_t bound) {
    std::printf("listening on %s:%u with %u threads\n", options.address.c_str(), bound,
                options.threads ? options.threads : std::thread::hardware_concurrency());
    std::fflush(stdout);
  };
  http::server_stats s = http::serve(app, port, options);
  std::printf("served %llu requests on %llu connections\n", static_cast<unsigned long long>(s.requests),
              static_cast<unsigned long long>(s.connections));
}
