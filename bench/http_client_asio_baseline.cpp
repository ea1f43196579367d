// http_client_asio_baseline: the workload of bench/http_client_bench on
// Boost.Beast (http::async_write, http::async_read) and Boost.Asio C++20
// coroutines, without coring: the baseline bench/run_http_client_bench
// compares coring's client with.
//
//   build/release/bench/http_client_asio_baseline --requests 10000 --connections 100 [--size BYTES] URL
//
// One io_context on this thread; --connections workers co_spawned, each
// with its own keep-alive connection, taking the next request from a shared
// count: GET, the response read whole into a string body. Every status must
// be 200 and, with --size, every body exactly BYTES long. URL: http://host:port/path
// (a numeric or resolvable host, no TLS). Output: the same key=value line as
// http_client_bench.

#include <utility>  // Boost 1.74's awaitable.hpp uses std::exchange without including it

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <stdexcept>
#include <string>

namespace asio = boost::asio;
namespace beast_http = boost::beast::http;
using asio::ip::tcp;
using clock_type = std::chrono::steady_clock;

namespace {

struct settings {
  std::size_t requests = 10000;
  std::size_t connections = 100;
  long long size = -1;  // expected body bytes; -1: not checked
  std::string url, host, port = "80", target = "/";
};

struct totals {
  std::size_t next = 0;  // the next request to send
  std::uint64_t bytes = 0;
  std::exception_ptr failure;
};

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

bool parse_url(settings& s) {
  const std::string prefix = "http://";
  if (s.url.rfind(prefix, 0) != 0) return false;
  const std::string rest = s.url.substr(prefix.size());
  const std::size_t slash = rest.find('/');
  const std::string authority = rest.substr(0, slash);
  s.target = slash == std::string::npos ? "/" : rest.substr(slash);
  const std::size_t colon = authority.rfind(':');
  s.host = authority.substr(0, colon);
  if (colon != std::string::npos) s.port = authority.substr(colon + 1);
  return !s.host.empty();
}

asio::awaitable<void> worker(const tcp::resolver::results_type& endpoints, const settings& s, totals& t) {
  auto executor = co_await asio::this_coro::executor;
  tcp::socket socket(executor);
  co_await asio::async_connect(socket, endpoints, asio::use_awaitable);
  beast_http::request<beast_http::empty_body> req{beast_http::verb::get, s.target, 11};
  req.set(beast_http::field::host, s.host + ":" + s.port);
  // The fields coring's client (and aiohttp) send by default, so that nginx
  // does the same work for each client's requests.
  req.set(beast_http::field::user_agent, "beast-http/1.74");
  req.set(beast_http::field::accept, "*/*");
  req.set(beast_http::field::accept_encoding, "gzip, deflate");
  // Beast reads as much as the buffer has room for (at most 64 KiB): without
  // this reserve a 100 KiB body arrives in 200 reads of 512 bytes.
  boost::beast::flat_buffer buffer;
  buffer.reserve(64 * 1024);
  while (t.next < s.requests) {
    ++t.next;
    co_await beast_http::async_write(socket, req, asio::use_awaitable);
    beast_http::response<beast_http::string_body> res;
    co_await beast_http::async_read(socket, buffer, res, asio::use_awaitable);
    if (res.result_int() != 200) {
      throw std::runtime_error("GET " + s.url + " answered " + std::to_string(res.result_int()));
    }
    if (s.size >= 0 && res.body().size() != static_cast<std::size_t>(s.size)) {
      throw std::runtime_error("GET " + s.url + " gave " + std::to_string(res.body().size()) + " bytes, not " +
                               std::to_string(s.size));
    }
    t.bytes += res.body().size();
    if (!res.keep_alive()) {  // the server closes: a new connection for the next request
      socket.close();
      socket = tcp::socket(executor);
      buffer.clear();
      co_await asio::async_connect(socket, endpoints, asio::use_awaitable);
    }
  }
  boost::system::error_code ignored;
  socket.shutdown(tcp::socket::shutdown_both, ignored);
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
    } else if (arg.rfind("http", 0) == 0 && s.url.empty()) {
      s.url = arg;
    } else {
      std::printf("usage: http_client_asio_baseline [--requests N] [--connections N] [--size BYTES] URL\n");
      return arg == "--help" ? 0 : 2;
    }
  }
  if (!parse_url(s) || s.connections == 0) {
    std::printf("usage: http_client_asio_baseline [--requests N] [--connections N] [--size BYTES] http://host:port/path\n");
    return 2;
  }
  try {
    asio::io_context io(1);
    const tcp::resolver::results_type endpoints = tcp::resolver(io).resolve(s.host, s.port);
    totals t;
    const double cpu_before = cpu_seconds();
    const auto start = clock_type::now();
    for (std::size_t i = 0; i < s.connections; ++i) {
      asio::co_spawn(io, worker(endpoints, s, t), [&t](std::exception_ptr e) {
        if (e && !t.failure) t.failure = e;
      });
    }
    io.run();
    const double seconds = std::chrono::duration<double>(clock_type::now() - start).count();
    const double cpu = cpu_seconds() - cpu_before;
    if (t.failure) std::rethrow_exception(t.failure);
    std::printf("requests=%zu seconds=%.3f requests_per_s=%.0f mb_per_s=%.1f cpu_us_per_request=%.1f bytes=%llu\n",
                s.requests, seconds, static_cast<double>(s.requests) / seconds,
                static_cast<double>(t.bytes) / 1e6 / seconds, cpu * 1e6 / static_cast<double>(s.requests),
                static_cast<unsigned long long>(t.bytes));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "http_client_asio_baseline: %s\n", e.what());
    return 1;
  }
}
