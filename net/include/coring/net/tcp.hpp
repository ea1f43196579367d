#pragma once
// TCP: net::tcp_stream (connect) and net::tcp_listener (bind, accept).
//
//   auto conn = co_await net::tcp_stream::connect("localhost", 8080, {.timeout = 2s});
//   co_await conn.write_all(request);
//
//   auto listener = net::tcp_listener::bind(*net::address::parse("0.0.0.0:8080"), {.reuse_port = true});
//   net::tcp_stream client = co_await listener.accept();
//
// A tcp_stream is a socket_stream (read_some, write_some, write_all,
// writev_all, shutdown_write, close, read_lent; see socket_stream.hpp) with
// TCP_NODELAY on; a tcp_listener is a basic_listener<tcp_stream> (multishot
// accept; see listener.hpp).

#include <coring/net/address.hpp>
#include <coring/net/listener.hpp>
#include <coring/net/socket_stream.hpp>
#include <coring/task.hpp>

#include <chrono>
#include <cstdint>
#include <string>

namespace coring::net {

/// Settings of a connect.
struct connect_options {
  /// The whole connect — resolving the name and trying each address — ends
  /// with coring::timeout_error after this long. max(): no limit of ours.
  std::chrono::nanoseconds timeout = std::chrono::nanoseconds::max();
  /// TCP_NODELAY: send small writes at once (Nagle off).
  bool nodelay = true;
};

class tcp_stream : public socket_stream {
 public:
  using socket_stream::socket_stream;

  /// Resolves `host` (see resolve.hpp) and connects to its addresses in
  /// order until one accepts (no happy eyeballs): one IORING_OP_CONNECT per
  /// attempt, with a linked timeout for what is left of `timeout`.
  /// **Cancellation:** the connect in flight is cancelled in the ring, its
  /// socket closed; the task gets coring::cancelled. **Errors:**
  /// net::dns_error; net::connect_error "connect to host:port: <errno text>
  /// (tried 127.0.0.1:port, [::1]:port)" naming the last errno; coring::timeout_error
  /// "connect to host:port: timed out after N ms".
  [[nodiscard]] static task<tcp_stream> connect(std::string host, std::uint16_t port, connect_options o = {});
  /// Connects to one address. **Cancellation/Errors:** as above (no dns_error).
  [[nodiscard]] static task<tcp_stream> connect(address to, connect_options o = {});

  /// Turns Nagle's algorithm off (true) or on. **Errors:** io_error.
  void set_nodelay(bool on);
  /// Whether TCP_NODELAY is set. **Errors:** io_error.
  [[nodiscard]] bool nodelay() const;
};

class tcp_listener : public basic_listener<tcp_stream> {
 public:
  /// A closed listener.
  tcp_listener() noexcept = default;
  /// Listens on `where` (port 0: the kernel picks one; local_address() says
  /// which). **Errors:** io_error "listen on 127.0.0.1:80: bind: Permission denied".
  [[nodiscard]] static tcp_listener bind(const address& where, const listen_options& o = {});

 private:
  using basic_listener::basic_listener;
};

}  // namespace coring::net
