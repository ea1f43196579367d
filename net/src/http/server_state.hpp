#pragma once
// What a server shares with its connections (one loop, no locks), and the
// ring operations the file responses use. Private to coring::net.

#include <linux/openat2.h>
#include <sys/stat.h>

#include <coring/event.hpp>
#include <coring/http/detail/message_parser.hpp>
#include <coring/http/server.hpp>
#include <coring/net/detail/socket_operation.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace coring::http::detail {

/// What a connection is doing, for the sweeper's deadlines and for stop().
enum class phase : std::uint8_t {
  none,     ///< nothing timed (a handler runs, a file is spliced)
  idle,     ///< waiting for the first byte of a request (keep-alive)
  head,     ///< a request's head is arriving
  body,     ///< a request's body is arriving
  writing,  ///< a response is going out
  linger,   ///< after an error response: draining input before the close
};

/// A connection as the server sees it: an intrusive list node in the connection's frame.
struct connection_link {
  connection_link* prev = nullptr;
  connection_link* next = nullptr;
  int fd = -1;                   // the socket, for shutdown(2) when a deadline passes
  phase current = phase::none;   // what it waits for now
  phase expired = phase::none;   // the phase whose deadline the sweeper enforced
  std::int64_t deadline_ns = 0;  // coarse monotonic; meaningful unless current is none
};

/// CLOCK_MONOTONIC_COARSE in ns (a vDSO read of a few ns; jiffy resolution).
[[nodiscard]] std::int64_t coarse_now_ns() noexcept;

/// "Date: <IMF-fixdate>\r\n" for this second, cached per thread.
[[nodiscard]] std::string_view date_field() noexcept;

/// A request parser with `limits`, from this thread's cache (so that idle
/// connections keep none: it is most of a connection's memory).
[[nodiscard]] std::unique_ptr<message_parser> take_parser(parser_limits limits);
/// Gives `p`, between two messages, back to this thread's cache (or frees it).
void give_back_parser(std::unique_ptr<message_parser>& p, parser_limits limits) noexcept;

/// True if `s` has a buffer on the heap. A string's inline room (15 bytes in
/// libstdc++) makes its capacity never 0, so that is not the test.
[[nodiscard]] inline bool holds_buffer(const std::string& s) noexcept {
  return s.capacity() > std::string().capacity();
}
/// A response buffer from this thread's cache (so idle connections keep none).
[[nodiscard]] std::string take_buffer() noexcept;
/// Gives `s` back to this thread's cache (emptied).
void give_back_buffer(std::string& s) noexcept;

struct server_state {
  explicit server_state(const router& a, server_options o);

  void link(connection_link& c) noexcept;
  void unlink(connection_link& c) noexcept;
  /// Enforces the deadlines that have passed (shutdown(2) wakes the connection).
  void sweep() noexcept;
  /// stop(): idle connections are woken to close.
  void close_idle() noexcept;

  const router* app;                       // the routes (read only)
  server_options options;                  // as given
  server_stats stats;                      // counters (this loop only)
  connection_link* connections = nullptr;  // every open connection
  net::tcp_listener* listener = nullptr;   // while serve() runs
  coring::event drained;                   // set when stopping and the last connection has ended
  std::chrono::nanoseconds tick;           // the sweeper's period
  stop_options stop_with;                  // stop()'s options
  std::string ok_head;                     // "HTTP/1.1 200 OK\r\n" and the Server field: most heads start so
  std::uint16_t port = 0;                  // listening on (0: not serving)
  bool stopping = false;                   // stop() was called
  bool serving = false;                    // serve() runs
};

/// IORING_OP_OPENAT2: opens `path` under `dir` (read only, CLOEXEC); with
/// `beneath`, RESOLVE_BENEATH keeps the path (symlinks included) inside `dir`.
/// Gives the fd or -errno.
class open_file_operation : public net::detail::socket_operation {
 public:
  open_file_operation(int dir, const std::string& path, bool beneath) noexcept;
  int await_resume() { return result(); }

 private:
  static void prep(::io_uring_sqe* sqe, net::detail::socket_operation& op) noexcept;
  int dir_;
  const char* path_;  // the caller's string, alive in its frame
  ::open_how how_{};
};

/// IORING_OP_STATX of an open fd: type, size, mtime. Gives 0 or -errno.
class stat_file_operation : public net::detail::socket_operation {
 public:
  explicit stat_file_operation(int fd) noexcept;
  int await_resume() { return result(); }
  [[nodiscard]] const struct ::statx& info() const noexcept { return stx_; }

 private:
  static void prep(::io_uring_sqe* sqe, net::detail::socket_operation& op) noexcept;
  int fd_;
  struct ::statx stx_ {};
};

}  // namespace coring::http::detail
