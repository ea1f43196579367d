// echo_server: a TCP echo server — multishot accept, one task per
// connection, reads into buffers the listener lends (an idle connection pins
// no receive buffer).
//
//   build/release/examples/echo_server --port 7777          # serves until killed
//   build/release/examples/echo_client --port 7777 --connections 100 --bytes 1048576
//   build/release/examples/echo_server --quick               # serves its own short client run, then ends
//   build/release/examples/echo_server --tls --cert cert.pem --key key.pem   # the same over TLS
//
// You should see "listening on 127.0.0.1:7777"; each client connection is
// echoed until the client closes its side. With --quick the server runs 20
// clients against itself (64 KiB each), checks every byte came back and
// prints "echoed 1310720 bytes on 20 connections" before it exits.
//
// Options: --port N (0: any free port), --connections N and --bytes N (for
// the --quick run), --quick; --tls with --cert F and --key F (PEM) serves
// TLS, and the --quick clients then trust --ca F (default: the certificate
// itself, as for a self-signed one) and check the name localhost.

#include <coring/coring.hpp>
#include <coring/net.hpp>

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
  std::uint16_t port = 7777;
  std::size_t connections = 20;
  std::size_t bytes = 65536;
  bool quick = false;
  bool tls = false;
  std::string cert, key, ca;
};

coring::task<> echo(net::tcp_stream conn) {
  for (;;) {
    net::lent_buffer data = co_await conn.read_lent();  // the kernel picks a buffer when data arrives
    if (data.empty()) break;                             // the client closed its side
    co_await conn.write_all(data.bytes());
  }
}

// The same over TLS: until the client's close_notify (or its end of stream).
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

coring::task<> serve(net::tcp_listener& listener, std::size_t connections, net::tls_context* tls) {
  co_await coring::task_group::run([&](coring::task_group& group) -> coring::task<> {
    for (std::size_t i = 0; i != connections; ++i) {
      net::tcp_stream conn = co_await listener.accept();
      if (tls) {
        group.spawn(echo_tls(*tls, std::move(conn)));
      } else {
        group.spawn(echo(std::move(conn)));
      }
    }
  });  // returns when every connection has ended
}

// The --quick run's client: sends `bytes` on one connection, reads them back, checks them.
// Over TCP the writer ends its side (shutdown_write); over TLS the reader
// closes once everything came back.
template <class Stream>
coring::task<std::size_t> exchange(Stream& conn, std::size_t bytes, unsigned seed) {
  std::vector<std::byte> out(bytes), in(bytes);
  for (std::size_t i = 0; i < bytes; ++i) out[i] = static_cast<std::byte>((i * 31 + seed) & 0xff);
  auto writer = coring::spawn([](Stream& c, std::vector<std::byte>& d) -> coring::task<> {
    co_await c.write_all(d);
    if constexpr (std::is_same_v<Stream, net::tcp_stream>) co_await c.shutdown_write();
  }(conn, out));
  std::size_t got = 0;
  while (got < bytes) {
    std::size_t n = co_await conn.read_some(std::span(in).subspan(got));
    if (n == 0) break;
    got += n;
  }
  co_await writer;
  co_await conn.close();
  if (got != bytes || in != out) throw coring::error("echo_server: the echo differs from what was sent");
  co_return got;
}

coring::task<std::size_t> client(net::address server, std::size_t bytes, unsigned seed, net::tls_context* tls) {
  net::tcp_stream conn = co_await net::tcp_stream::connect(server);
  if (!tls) co_return co_await exchange(conn, bytes, seed);
  net::tls_stream secure = co_await net::tls_stream::connect(*tls, std::move(conn), "localhost");
  co_return co_await exchange(secure, bytes, seed);
}

coring::task<> main_task(settings s) {
  std::optional<net::tls_context> server_tls, client_tls;
  if (s.tls) {
    server_tls = net::tls_context::server({.cert_file = s.cert, .key_file = s.key});
    client_tls = net::tls_context::client({.ca_file = s.ca.empty() ? s.cert : s.ca});
  }
  net::tls_context* tls = server_tls ? &*server_tls : nullptr;
  auto listener = net::tcp_listener::bind(net::address::loopback_v4(s.quick ? 0 : s.port));
  std::printf("listening on %s\n", listener.local_address().to_string().c_str());
  std::fflush(stdout);
  if (!s.quick) {
    co_await serve(listener, SIZE_MAX, tls);
    co_return;
  }
  auto server = coring::spawn(serve(listener, s.connections, tls));
  std::vector<coring::task<std::size_t>> clients;
  for (std::size_t i = 0; i < s.connections; ++i)
    clients.push_back(client(listener.local_address(), s.bytes, static_cast<unsigned>(i), client_tls ? &*client_tls : nullptr));
  std::size_t total = 0;
  for (std::size_t n : co_await coring::gather(std::move(clients))) total += n;
  co_await server;
  std::printf("echoed %zu bytes on %zu connections%s\n", total, s.connections, s.tls ? " over TLS" : "");
}

}  // namespace

int main(int argc, char** argv) {
  settings s;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&] { return i + 1 < argc ? std::strtoull(argv[++i], nullptr, 10) : 0ull; };
    if (arg == "--port") {
      s.port = static_cast<std::uint16_t>(value());
    } else if (arg == "--connections") {
      s.connections = value();
    } else if (arg == "--bytes") {
      s.bytes = value();
    } else if (arg == "--quick") {
      s.quick = true;
    } else if (arg == "--tls") {
      s.tls = true;
    } else if ((arg == "--cert" || arg == "--key" || arg == "--ca") && i + 1 < argc) {
      (arg == "--cert" ? s.cert : arg == "--key" ? s.key : s.ca) = argv[++i];
    } else {
      std::printf("usage: echo_server [--port N] [--quick [--connections N] [--bytes N]] [--tls --cert F --key F [--ca F]]\n");
      return arg == "--help" ? 0 : 2;
    }
  }
  try {
    coring::run(main_task(s));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "echo_server: %s\n", e.what());
    return 1;
  }
}
