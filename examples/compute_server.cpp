// compute_server: the FastAPI endpoint that offloads CPU-bound work to a
// process pool, in C++. GET /compute/{n} sums i*i for i in [0, n) in a worker
// process and answers {"result": <total>}; GET /health answers at once, even
// while every worker is busy, because the event loop only waits for the job.
//
//   build/release/examples/compute_server --port 8000 --workers 2   # until Ctrl-C (SIGINT) or SIGTERM
//   curl http://127.0.0.1:8000/compute/1000        # {"result":332833500}
//   curl http://127.0.0.1:8000/compute/3000000000 &  curl http://127.0.0.1:8000/health
//
// You should see "listening on 127.0.0.1:8000 with 2 workers"; the /health
// request answers {"status":"ok"} while the long computation runs. The total
// is exact (128-bit, as Python's integers would give it) for n up to 10^12;
// a larger or non-numeric n gets 400.
//
// Options: --port N (0: any free port), --address A (default 127.0.0.1),
// --workers N (processes; 0: one per core), --log (an access log line per request).

#include <pthread.h>
#include <signal.h>

#include <coring/coring.hpp>
#include <coring/http/server.hpp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>

namespace http = coring::http;

namespace {

constexpr std::int64_t max_n = 1'000'000'000'000;  // (10^12)^3 / 3 fits in 128 bits

// The job: the seed's cpu_bound_task. Runs in a worker process; the total
// travels back as decimal digits (the codec has no 128-bit integers).
std::string sum_of_squares(std::int64_t n) {
  unsigned __int128 total = 0;
  for (std::int64_t i = 0; i < n; ++i)
    total += static_cast<unsigned __int128>(i) * static_cast<unsigned __int128>(i);
  std::string digits;
  do {
    digits.insert(digits.begin(), static_cast<char>('0' + static_cast<int>(total % 10)));
    total /= 10;
  } while (total != 0);
  return digits;
}
CORING_REGISTER_JOB(sum_of_squares);

}  // namespace

int main(int argc, char** argv) {
  // First line of main: the fork server is forked while the process has one thread.
  coring::process_pool::start_fork_server();

  http::serve_options options{.threads = 1, .address = "127.0.0.1"};
  std::uint16_t port = 8000;
  unsigned workers = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "compute_server: %s needs a value\n", arg.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "--port") {
      port = static_cast<std::uint16_t>(std::stoul(value()));
    } else if (arg == "--address") {
      options.address = value();
    } else if (arg == "--workers") {
      workers = static_cast<unsigned>(std::stoul(value()));
    } else if (arg == "--log") {
      options.server.access_log = true;
    } else {
      std::fprintf(stderr, "usage: compute_server [--port N] [--address A] [--workers N] [--log]\n");
      return arg == "--help" ? 0 : 2;
    }
  }

  // http::serve reads SIGINT and SIGTERM from a signalfd, so they must be
  // blocked in every thread: the pool's thread, started first, inherits this mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  coring::process_pool pool({.workers = workers});

  http::router app;
  app.get("/compute/{n}", [&pool](http::request& req) -> coring::task<http::response> {
    const auto n = req.param<std::int64_t>("n");  // 400 if not an integer
    if (n > max_n) throw http::request_error(400, "n is larger than 10^12");
    // Offloaded: this coroutine waits, the loop goes on serving other requests.
    const std::string total = co_await pool.submit(sum_of_squares, n);
    co_return http::response::bytes("{\"result\":" + total + "}", "application/json");
  });
  app.get("/health", [](http::request&) -> coring::task<http::response> {
    co_return http::response::json({{"status", "ok"}});
  });

  options.on_listening = [&](std::uint16_t bound) {
    std::printf("listening on %s:%u with %u workers\n", options.address.c_str(), bound,
                workers ? workers : std::thread::hardware_concurrency());
    std::fflush(stdout);
  };
  http::server_stats s = http::serve(app, port, options);
  std::printf("served %llu requests\n", static_cast<unsigned long long>(s.requests));
}
