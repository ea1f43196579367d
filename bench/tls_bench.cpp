// tls_bench: TLS client costs of coring against an HTTPS server it is given
// (bench/run_tls_bench starts nginx and runs curl and Python's ssl against
// it in the same run, and prints the ratios).
//
//   build/release/bench/tls_bench --port 8443 --ca cert.pem [--host localhost]
//       [--connections 500] [--bulk /big]
//
// Measures, one connection at a time, each connection being TCP connect +
// TLS handshake (certificate and host name checked) + "GET /1" + read to the
// end + close_notify:
//   handshakes_new_per_s      connections per second, every handshake a full one
//   handshakes_resumed_per_s  the same with the client's session cache (resumed handshakes)
// and, with --bulk PATH, one GET of PATH read to the end:
//   bulk_mib_per_s            MiB per second of the response (headers included)
// Output: one line of key=value pairs, e.g.
//   handshakes_new_per_s=812 handshakes_resumed_per_s=1630 resumed=500 bulk_mib_per_s=1210 bulk_bytes=268435705

#include <coring/coring.hpp>
#include <coring/net.hpp>

#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace net = coring::net;
using clock_type = std::chrono::steady_clock;

namespace {

struct settings {
  std::string host = "localhost";
  std::uint16_t port = 8443;
  std::string ca;
  int connections = 500;
  int concurrency = 16;
  std::string bulk;
};

// One request on a new connection; gives the bytes of the response.
coring::task<std::size_t> fetch(net::tls_context& ctx, const settings& s, const char* path, std::vector<std::byte>& buf,
                                bool& resumed) {
  net::tls_stream c = co_await net::tls_stream::connect(ctx, s.host, s.port);
  resumed = c.session_reused();
  const std::string request = "GET " + std::string(path) + " HTTP/1.1\r\nHost: " + s.host + "\r\nConnection: close\r\n\r\n";
  co_await c.write_all(std::as_bytes(std::span(request.data(), request.size())));
  std::size_t total = 0;
  for (;;) {
    const std::size_t n = co_await c.read_some(buf);
    if (n == 0) break;
    total += n;
  }
  co_await c.close();
  co_return total;
}

// CPU seconds (user + system) this process has used.
double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto sec = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
  return sec(u.ru_utime) + sec(u.ru_stime);
}

// s.connections connections made by `concurrency` tasks, each one at a time;
// prints "<name>_per_s=... <name>_cpu_us=..." and, for a caching context,
// "<name>_resumed=N".
coring::task<> phase(const char* name, net::tls_context& ctx, const settings& s, int concurrency) {
  int next = 0, resumed_count = 0;
  const auto start = clock_type::now();
  const double cpu_start = cpu_seconds();
  co_await coring::task_group::run([&](coring::task_group& group) -> coring::task<> {
    for (int w = 0; w < concurrency; ++w) {
      group.spawn([](net::tls_context& ctx, const settings& s, int& next, int& resumed_count) -> coring::task<> {
        std::vector<std::byte> buf(16 * 1024);
        bool resumed = false;
        while (next < s.connections) {
          ++next;
          (void)co_await fetch(ctx, s, "/1", buf, resumed);
          resumed_count += resumed ? 1 : 0;
        }
      }(ctx, s, next, resumed_count));
    }
    co_return;
  });
  const double seconds = std::chrono::duration<double>(clock_type::now() - start).count();
  std::printf("%s_per_s=%.0f %s_cpu_us=%.0f %s_resumed=%d ", name, s.connections / seconds, name,
              (cpu_seconds() - cpu_start) / s.connections * 1e6, name, resumed_count);
}

coring::task<> main_task(settings s) {
  std::vector<std::byte> buf(256 * 1024);
  bool resumed = false;
  net::tls_context fresh = net::tls_context::client({.ca_file = s.ca, .session_cache = false});
  net::tls_context caching = net::tls_context::client({.ca_file = s.ca});
  (void)co_await fetch(fresh, s, "/1", buf, resumed);    // warm up: the server's and our first-use costs
  (void)co_await fetch(caching, s, "/1", buf, resumed);  // and a session to resume

  co_await phase("new", fresh, s, 1);
  co_await phase("resumed", caching, s, 1);
  co_await phase("new_concurrent", fresh, s, s.concurrency);
  co_await phase("resumed_concurrent", caching, s, s.concurrency);
  if (!s.bulk.empty()) {
    const auto start = clock_type::now();
    const std::size_t bytes = co_await fetch(caching, s, s.bulk.c_str(), buf, resumed);
    const double bulk_s = std::chrono::duration<double>(clock_type::now() - start).count();
    std::printf("bulk_mib_per_s=%.0f bulk_bytes=%zu", static_cast<double>(bytes) / (1 << 20) / bulk_s, bytes);
  }
  std::printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
  settings s;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (arg == "--host") {
      s.host = value();
    } else if (arg == "--port") {
      s.port = static_cast<std::uint16_t>(std::strtoul(value().c_str(), nullptr, 10));
    } else if (arg == "--ca") {
      s.ca = value();
    } else if (arg == "--connections") {
      s.connections = std::atoi(value().c_str());
    } else if (arg == "--concurrency") {
      s.concurrency = std::atoi(value().c_str());
    } else if (arg == "--bulk") {
      s.bulk = value();
    } else {
      std::printf("usage: tls_bench --port N --ca F [--host H] [--connections N] [--concurrency N] [--bulk PATH]\n");
      return arg == "--help" ? 0 : 2;
    }
  }
  try {
    coring::run(main_task(s));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tls_bench: %s\n", e.what());
    return 1;
  }
}
