#pragma once
// http::server: an HTTP/1.1 server on one event loop, and http::serve: a
// blocking main() that runs one such server per thread.
//
//   http::router app;
//   app.get("/", [](http::request&) -> coring::task<http::response> { co_return http::response::text("hi\n"); });
//
//   http::server srv(app, {.idle_timeout = 30s});
//   co_await srv.serve("0.0.0.0", 8080);    // until srv.stop({.grace = 5s}) from another task
//
//   int main() { http::serve(app, 8080, {.threads = 4}); }   // until SIGINT or SIGTERM
//
// How it behaves:
// - Every connection is a task in a task_group that serve() awaits: none
//   outlives serve(). Requests on a connection are answered in order
//   (pipelining); responses to pipelined requests that arrive together leave
//   in one send. Keep-alive unless the client or the server says close.
// - Parsing is llhttp's strict mode. Bad input is answered with a status and
//   a short text body, then the connection is closed: malformed or
//   smuggling-shaped requests 400, head too large or too many fields 431,
//   a body over max_body_bytes 413, a head or body that does not arrive in
//   time 408. A client that stops reading is cut off after write_timeout,
//   an idle keep-alive connection after idle_timeout (quietly).
// - A handler that throws request_error gets its status; any other
//   exception gives 500 and goes to the loop's exception handler; the
//   connection and the server live on.
// - Reads borrow the listener's provided buffers: an idle connection pins
//   no receive buffer. Timeouts are deadlines checked by one sweeper task per
//   server (a shutdown(2) wakes the connection's read or write), so a
//   request costs no timer.
// - stop({.grace}) closes the listener, closes idle keep-alive connections,
//   lets requests in flight finish (their responses say Connection: close),
//   and after the grace period cancels what is left; serve() then returns.
// Thread safety: a server is used on one loop (the one running serve());
// stop() and stats() on that loop's thread.

#include <coring/http/request.hpp>
#include <coring/http/response.hpp>
#include <coring/http/router.hpp>
#include <coring/net/tcp.hpp>
#include <coring/task.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace coring::http {

using namespace std::chrono_literals;

/// Settings of a server: limits, timeouts, logging. Each limit is answered
/// with its status and a short body before the connection closes.
struct server_options {
  std::size_t max_head_bytes = 16 * 1024;     ///< request line + header fields (431 past it)
  std::size_t max_headers = 100;              ///< header fields per request (431 past it)
  std::size_t max_body_bytes = 1024 * 1024;   ///< a request body (413 past it)
  std::chrono::nanoseconds header_timeout = 10s;  ///< from a request's first byte to its last header (408)
  std::chrono::nanoseconds body_timeout = 30s;    ///< longest wait for the next piece of a body (408)
  std::chrono::nanoseconds idle_timeout = 60s;    ///< a keep-alive connection waiting for its next request (closed quietly)
  std::chrono::nanoseconds write_timeout = 30s;   ///< longest wait for a client to take response bytes (closed)
  std::chrono::nanoseconds linger_timeout = 1s;   ///< after an error response, how long unread input is drained before closing
  std::string server_name = "coring";         ///< the Server field ("" : none)
  bool access_log = false;                    ///< one line per request to `log`
  /// Where access log lines go (without the newline); null: stderr.
  std::function<void(std::string_view line)> log{};
  net::listen_options listen{};               ///< for serve(address, port)
};

/// Counters of a server (of one loop; http::serve sums its loops').
struct server_stats {
  std::uint64_t connections = 0;          ///< accepted
  std::uint64_t open_connections = 0;     ///< open now
  std::uint64_t requests = 0;             ///< requests whose head was complete
  std::uint64_t bytes_received = 0;
  std::uint64_t bytes_sent = 0;           ///< response bytes (files included)
  std::uint64_t responses_2xx = 0, responses_3xx = 0, responses_4xx = 0, responses_5xx = 0;
  // errors by kind
  std::uint64_t malformed = 0;            ///< 400 for a request llhttp refused
  std::uint64_t head_too_large = 0;       ///< 431 (size or count of fields)
  std::uint64_t body_too_large = 0;       ///< 413
  std::uint64_t header_timeouts = 0;      ///< 408 while the head arrived
  std::uint64_t body_timeouts = 0;        ///< 408 while the body arrived
  std::uint64_t idle_timeouts = 0;        ///< keep-alive connections closed for idleness
  std::uint64_t write_timeouts = 0;       ///< clients that stopped reading
  std::uint64_t handler_errors = 0;       ///< handlers that threw something else than request_error (500)
  std::uint64_t client_errors = 0;        ///< connections that ended in a reset, or mid-request

  server_stats& operator+=(const server_stats& o) noexcept;
};

/// Settings of stop().
struct stop_options {
  std::chrono::nanoseconds grace = 10s;  ///< how long requests in flight may take to finish
};

namespace detail {
struct server_state;
}

class server {
 public:
  /// A server for `app` (which must outlive it).
  explicit server(const router& app, server_options o = {});
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  /// Listens on `address`:`port` ("0.0.0.0", "127.0.0.1", "::") and serves
  /// until stop(). **Errors:** io_error if it cannot listen; io_error if
  /// accepting fails for good. **Cancellation:** every connection is
  /// cancelled and awaited, then coring::cancelled.
  /// **Requires:** not serving already.
  [[nodiscard]] task<> serve(std::string address, std::uint16_t port);
  /// Serves the connections of `listener` (bound already: port 0, or
  /// SO_REUSEPORT siblings) until stop(). **Errors/Cancellation:** as above.
  [[nodiscard]] task<> serve(net::tcp_listener listener);

  /// Stops serving (see the top of this header); serve() returns once the
  /// last connection has ended. Idempotent; before serve() it makes serve()
  /// return at once. **Requires:** on the serving loop's thread.
  void stop(stop_options o = {});

  /// The port being listened on (0 when not serving).
  [[nodiscard]] std::uint16_t port() const noexcept;
  /// The counters so far. **Requires:** on the serving loop's thread.
  [[nodiscard]] server_stats stats() const noexcept;

 private:
  std::unique_ptr<detail::server_state> state_;
};

/// Settings of http::serve.
struct serve_options {
  unsigned threads = 0;                  ///< loops (threads); 0 = one per core
  std::string address = "0.0.0.0";       ///< where to listen
  server_options server{};               ///< each loop's server
  std::chrono::nanoseconds grace = 10s;  ///< stop's grace period on SIGINT/SIGTERM
  /// Called (on the calling thread) once every loop listens, with the port.
  std::function<void(std::uint16_t port)> on_listening{};
};

/// Serves `app` on `port` with one event loop per thread, each with its own
/// SO_REUSEPORT listener (the kernel spreads connections; nothing is shared
/// on the request path), until the process gets SIGINT or SIGTERM; then
/// stops every loop gracefully and returns their summed counters.
/// SIGINT and SIGTERM are blocked in the calling thread (and so in the loops)
/// while it runs and read from a signalfd. A thread started before (a
/// process_pool's, say) must block them as well, or a signal sent to the
/// process may be delivered to it, with its default action: block them at
/// the top of main, before starting threads. **Errors:** io_error if it cannot listen.
/// **Requires:** called from a thread with no event loop running.
server_stats serve(const router& app, std::uint16_t port, const serve_options& o = {});

}  // namespace coring::http
