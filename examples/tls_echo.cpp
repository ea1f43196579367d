// tls_echo: a TLS echo server and client — a tls_context for each side,
// tls_stream::accept and tls_stream::connect (certificate and host name
// checked), a buffered reader over the TLS stream, close() with close_notify.
//
//   openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj /CN=localhost
//       -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout key.pem -out cert.pem      # one line
//   build/release/examples/tls_echo server --cert cert.pem --key key.pem --port 8443   # until killed
//   build/release/examples/tls_echo client --ca cert.pem --port 8443 hello world
//   build/release/examples/tls_echo quick --cert cert.pem --key key.pem --ca cert.pem  # both, then ends
//
// The server prints "listening on 127.0.0.1:8443" and one line per client
// ("127.0.0.1:50412: TLSv1.3 TLS_AES_256_GCM_SHA384, 2 lines"). The client
// sends each word as a line and prints what came back ("hello", "world"),
// then "TLSv1.3, ALPN echo, closed with close_notify". `quick` runs the
// server and 10 clients in one process and prints "10 clients echoed over
// TLS" before it exits.
//
// Options: --cert F and --key F (the server's certificate and key, PEM),
// --ca F (what the client trusts; default: the system's CAs), --host H
// (default localhost: the name checked against the certificate), --port N.

#include <coring/coring.hpp>
#include <coring/net.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace net = coring::net;
using namespace std::chrono_literals;

namespace {

struct settings {
  std::string mode;
  std::string cert, key, ca;
  std::string host = "localhost";
  std::uint16_t port = 8443;
  std::vector<std::string> words;
};

// One client connection: echoes each line back until the client closes.
coring::task<> echo(net::tls_context& ctx, net::tcp_stream tcp) {
  const std::string who = tcp.peer().to_string();
  try {
    net::tls_stream conn = co_await net::tls_stream::accept(ctx, std::move(tcp), {.timeout = 10s});
    net::buffered_reader in(conn, {.io = {.timeout = 60s}});
    int lines = 0;
    for (;;) {
      std::string_view line = co_await in.read_until("\n", 65536);
      if (line.empty()) break;  // end of stream
      co_await conn.write_all(std::as_bytes(std::span(line.data(), line.size())));
      ++lines;
    }
    std::printf("%s: %s %s, %d lines%s\n", who.c_str(), std::string(conn.version()).c_str(),
                std::string(conn.cipher()).c_str(), lines, conn.truncated() ? " (closed without close_notify)" : "");
    co_await conn.close();
  } catch (const coring::error& e) {  // one bad client does not stop the server
    std::printf("%s: %s\n", who.c_str(), e.what());
  }
  std::fflush(stdout);
}

coring::task<> serve(net::tcp_listener& listener, net::tls_context& ctx, std::size_t clients) {
  co_await coring::task_group::run([&](coring::task_group& group) -> coring::task<> {
    for (std::size_t i = 0; i != clients; ++i) group.spawn(echo(ctx, co_await listener.accept()));
  });
}

// Sends each word as a line, reads each back; gives what came back.
coring::task<std::vector<std::string>> client(net::tls_context& ctx, std::string host, std::uint16_t port,
                                              std::vector<std::string> words) {
  net::tls_stream conn = co_await net::tls_stream::connect(ctx, host, port, {.timeout = 10s});
  net::buffered_reader in(conn, {.io = {.timeout = 10s}});
  std::vector<std::string> back;
  for (const std::string& w : words) {
    std::string line = w + "\n";
    co_await conn.write_all(std::as_bytes(std::span(line.data(), line.size())));
    auto echoed = co_await in.read_line(65536);
    if (!echoed) throw coring::error("tls_echo: the server closed the connection");
    back.emplace_back(*echoed);
  }
  std::string alpn(conn.alpn());
  co_await conn.close();
  std::printf("%s, ALPN %s, closed with close_notify\n", std::string(conn.version()).c_str(),
              alpn.empty() ? "none" : alpn.c_str());
  co_return back;
}

coring::task<> main_task(settings s) {
  if (s.mode == "client") {
    net::tls_context ctx = net::tls_context::client({.ca_file = s.ca, .alpn = {"echo"}});
    auto run = client(ctx, s.host, s.port, s.words);
    for (const std::string& line : co_await std::move(run)) std::printf("%s\n", line.c_str());
    co_return;
  }
  net::tls_context server_ctx = net::tls_context::server({.cert_file = s.cert, .key_file = s.key, .alpn = {"echo"}});
  auto listener = net::tcp_listener::bind(net::address::loopback_v4(s.mode == "quick" ? 0 : s.port));
  std::printf("listening on %s\n", listener.local_address().to_string().c_str());
  std::fflush(stdout);
  if (s.mode == "server") {
    co_await serve(listener, server_ctx, SIZE_MAX);
    co_return;
  }
  constexpr std::size_t clients = 10;
  auto server = coring::spawn(serve(listener, server_ctx, clients));
  net::tls_context client_ctx = net::tls_context::client({.ca_file = s.ca, .alpn = {"echo"}});
  std::vector<coring::task<std::vector<std::string>>> runs;
  for (std::size_t i = 0; i < clients; ++i) {
    std::vector<std::string> words(1, "hello");
    words.push_back(std::to_string(i));
    runs.push_back(client(client_ctx, s.host, listener.local_address().port(), std::move(words)));
  }
  std::size_t i = 0;
  for (const auto& back : co_await coring::gather(std::move(runs))) {
    if (back != std::vector<std::string>{"hello", std::to_string(i++)})
      throw coring::error("tls_echo: the echo differs from what was sent");
  }
  co_await server;
  std::printf("%zu clients echoed over TLS\n", clients);
}

}  // namespace

int main(int argc, char** argv) {
  settings s;
  if (argc > 1) s.mode = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (arg == "--cert") {
      s.cert = value();
    } else if (arg == "--key") {
      s.key = value();
    } else if (arg == "--ca") {
      s.ca = value();
    } else if (arg == "--host") {
      s.host = value();
    } else if (arg == "--port") {
      s.port = static_cast<std::uint16_t>(std::strtoul(value().c_str(), nullptr, 10));
    } else if (!arg.starts_with("--")) {
      s.words.push_back(arg);
    } else {
      s.mode.clear();
      break;
    }
  }
  if (s.words.empty()) s.words = {"hello"};
  const bool needs_key = s.mode == "server" || s.mode == "quick";
  if ((s.mode != "client" && !needs_key) || (needs_key && (s.cert.empty() || s.key.empty()))) {
    std::printf(
        "usage: tls_echo server --cert F --key F [--port N]\n"
        "       tls_echo client [--ca F] [--host H] [--port N] [words...]\n"
        "       tls_echo quick --cert F --key F --ca F\n");
    return s.mode == "--help" ? 0 : 2;
  }
  try {
    coring::run(main_task(s));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tls_echo: %s\n", e.what());
    return 1;
  }
}
