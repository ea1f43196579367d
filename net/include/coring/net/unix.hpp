#pragma once
// Unix-domain stream sockets: net::unix_stream and net::unix_listener, with
// the interface of their TCP twins.
//
//   auto listener = net::unix_listener::bind("/run/app.sock");   // "@name": abstract, no file
//   auto conn = co_await net::unix_stream::connect("/run/app.sock");
//   auto [a, b] = net::unix_stream::pair();                        // socketpair, connected
//
// A unix_stream is a socket_stream (see socket_stream.hpp); a unix_listener
// is a basic_listener<unix_stream> (see listener.hpp). Accepted peers are
// unnamed, so an accepted stream's peer() is the listener's path.

#include <coring/net/address.hpp>
#include <coring/net/listener.hpp>
#include <coring/net/socket_stream.hpp>
#include <coring/task.hpp>

#include <chrono>
#include <string_view>
#include <utility>

namespace coring::net {

class unix_stream : public socket_stream {
 public:
  using socket_stream::socket_stream;

  /// Connects to the socket at `path` ("@name" for the abstract namespace).
  /// **Cancellation:** as tcp_stream::connect. **Errors:** net::connect_error
  /// "connect to unix:/path: No such file or directory"; coring::timeout_error
  /// after `timeout`; std::invalid_argument for a path over 107 bytes.
  [[nodiscard]] static task<unix_stream> connect(std::string path,
                                                 std::chrono::nanoseconds timeout = std::chrono::nanoseconds::max());
  /// Two connected streams (socketpair, CLOEXEC). **Errors:** io_error.
  [[nodiscard]] static std::pair<unix_stream, unix_stream> pair();
};

class unix_listener : public basic_listener<unix_stream> {
 public:
  /// A closed listener.
  unix_listener() noexcept = default;
  /// Listens at `path` (a stale socket file there is removed first, and the
  /// file is removed again by close(), unless `o.unlink_existing` is false).
  /// **Errors:** io_error "listen on unix:/path: bind: ..."; std::invalid_argument for a bad path.
  [[nodiscard]] static unix_listener bind(std::string_view path, const listen_options& o = {});

 private:
  using basic_listener::basic_listener;
};

}  // namespace coring::net
