// echo_client: opens connections to an echo server, sends bytes on each,
// reads them back through a buffered reader and checks them; prints the
// throughput.
//
//   build/release/examples/echo_server --port 7777 &
//   build/release/examples/echo_client --port 7777 --connections 100 --bytes 1048576
//   build/release/examples/echo_client --quick     # with its own server in the same process
//   build/release/examples/echo_client --quick --tls --cert cert.pem --key key.pem   # the same over TLS
//
// You should see one line per run: "100 connections echoed 104857600 bytes
// in 0.21 s (950 MiB/s)". Without --port, a server runs inside the client
// (the same loop), so --quick ends by itself anywhere.
//
// Options: --host H (default 127.0.0.1), --port N, --connections N
// (default 100; --quick: 10), --bytes N per connection (default 1 MiB; --quick: 64 KiB);
// --tls speaks TLS, trusting --ca F (default: the system's CAs, or --cert F
// when given) and checking the name --host; the server in this process
// (no --port) then needs --cert F and --key F. With --tls, --host defaults
// to localhost.

#include <coring/coring.hpp>
#include <coring/net.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

namespace net = coring::net;

namespace {

struct settings {
  std::string host = "127.0.0.1";
  int port = -1;  // -1: run a server in this process
  std::size_t connections = 100;
  std::size_t bytes = 1 << 20;
  bool quick = false;
  bool tls = false;
  std::string cert, key, ca;
};

// Sends `bytes` on `conn` while reading them back through a buffered reader.
// Over TCP the writer ends its side (shutdown_write); over TLS the reader
// closes (close_notify) once everything came back.
template <class Stream>
coring::task<std::size_t> exchange_on(Stream& conn, std::size_t bytes, unsigned seed) {
  std::vector<std::byte> out(bytes);
  for (std::size_t i = 0; i < bytes; ++i) out[i] = static_cast<std::byte>((i * 7 + seed) & 0xff);
  auto writer = coring::spawn([](Stream& c, const std::vector<std::byte>& d) -> coring::task<> {
    co_await c.write_all(d);
    if constexpr (std::is_same_v<Stream, net::tcp_stream>) co_await c.shutdown_write();
  }(conn, out));
  net::buffered_reader in(conn, {.io = {.timeout = std::chrono::seconds(10)}});
  std::size_t checked = 0;
  while (checked < bytes) {
    std::string_view chunk = co_await in.read_some();
    if (chunk.empty()) break;
    if (std::memcmp(chunk.data(), out.data() + checked, std::min(chunk.size(), bytes - checked)) != 0) break;
    checked += chunk.size();
  }
  co_await writer;
  co_await conn.close();
  if (checked != bytes) throw coring::error("echo_client: connection " + std::to_string(seed) + " got a wrong echo");
  co_return checked;
}

// One connection: a writer task sends while this one reads the echo back.
coring::task<std::size_t> exchange(std::string host, std::uint16_t port, std::size_t bytes, unsigned seed,
                                   net::tls_context* tls) {
  if (!tls) {
    net::tcp_stream conn = co_await net::tcp_stream::connect(host, port, {.timeout = std::chrono::seconds(5)});
    co_return co_await exchange_on(conn, bytes, seed);
  }
  net::tls_stream conn = co_await net::tls_stream::connect(*tls, host, port, {.timeout = std::chrono::seconds(5)});
  co_return co_await exchange_on(conn, bytes, seed);
}

// The in-process server's TLS echo: until the client's close_notify.
coring::task<> echo_tls(net::tls_context& ctx, net::tcp_stream tcp) {
  net::tls_stream conn = co_await net::tls_stream::accept(ctx, std::move(tcp), {.timeout = std::chrono::seconds(10)});
  std::vector<std::byte> buf(65536);
  for (;;) {
    std::size_t n = co_await conn.read_some(buf);
    if (n == 0) break;
    co_await conn.write_all(std::span(buf).first(n));
  }
  co_await conn.close();
}

coring::task<> echo(net::tcp_stream conn) {
  for (;;) {
    net::lent_buffer data = co_await conn.read_lent();
    if (data.empty()) break;
    co_await conn.write_all(data.bytes());
  }
}

coring::task<> main_task(settings s) {
  std::optional<net::tls_context> server_tls, client_tls;
  if (s.tls) {
    client_tls = net::tls_context::client({.ca_file = s.ca.empty() ? s.cert : s.ca});
    if (s.port < 0) server_tls = net::tls_context::server({.cert_file = s.cert, .key_file = s.key});
  }
  net::tcp_listener own;
  coring::join_handle<void> server;
  if (s.port < 0) {  // no server given: run one here
    own = net::tcp_listener::bind(net::address::loopback_v4(0));
    s.port = own.local_address().port();
    server = coring::spawn([](net::tcp_listener& l, std::size_t n, net::tls_context* tls) -> coring::task<> {
      co_await coring::task_group::run([&](coring::task_group& g) -> coring::task<> {
        for (std::size_t i = 0; i < n; ++i) {
          net::tcp_stream conn = co_await l.accept();
          if (tls) {
            g.spawn(echo_tls(*tls, std::move(conn)));
          } else {
            g.spawn(echo(std::move(conn)));
          }
        }
      });
    }(own, s.connections, server_tls ? &*server_tls : nullptr));
  }
  auto start = std::chrono::steady_clock::now();
  std::vector<coring::task<std::size_t>> runs;
  for (std::size_t i = 0; i < s.connections; ++i)
    runs.push_back(exchange(s.host, static_cast<std::uint16_t>(s.port), s.bytes, static_cast<unsigned>(i),
                            client_tls ? &*client_tls : nullptr));
  std::size_t total = 0;
  for (std::size_t n : co_await coring::gather(std::move(runs))) total += n;
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (server.valid()) co_await server;
  std::printf("%zu connections echoed %zu bytes in %.2f s (%.0f MiB/s)%s\n", s.connections, total, seconds,
              static_cast<double>(total) / (1 << 20) / seconds, s.tls ? " over TLS" : "");
}

}  // namespace

int main(int argc, char** argv) {
  settings s;
  bool connections_set = false, bytes_set = false, host_set = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&] { return i + 1 < argc ? std::strtoull(argv[++i], nullptr, 10) : 0ull; };
    if (arg == "--host" && i + 1 < argc) {
      s.host = argv[++i];
      host_set = true;
    } else if (arg == "--port") {
      s.port = static_cast<int>(value());
    } else if (arg == "--connections") {
      s.connections = value();
      connections_set = true;
    } else if (arg == "--bytes") {
      s.bytes = value();
      bytes_set = true;
    } else if (arg == "--quick") {
      s.quick = true;
    } else if (arg == "--tls") {
      s.tls = true;
    } else if ((arg == "--cert" || arg == "--key" || arg == "--ca") && i + 1 < argc) {
      (arg == "--cert" ? s.cert : arg == "--key" ? s.key : s.ca) = argv[++i];
    } else {
      std::printf("usage: echo_client [--host H] [--port N] [--connections N] [--bytes N] [--quick]\n"
                  "                   [--tls [--ca F] [--cert F --key F]]\n");
      return arg == "--help" ? 0 : 2;
    }
  }
  if (s.tls && !host_set) s.host = "localhost";
  if (s.quick && !connections_set) s.connections = 10;
  if (s.quick && !bytes_set) s.bytes = 65536;
  try {
    coring::run(main_task(s));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "echo_client: %s\n", e.what());
    return 1;
  }
}
