#pragma once
// The HTTP client's connections and their pool. Private to coring::net.
//
// A connection is a stream (plain TCP, or any other net::byte_stream behind
// a small virtual interface: TLS), a receive buffer, a response parser and
// the buffer its requests are serialised into. The pool keeps, per origin
// (scheme, host, port), the idle connections (most recently used last) and
// how many are open, and counts every open connection against the total
// limit and its origin's against the per-host limit. A request takes a
// `slot`: an idle connection, or the right to open one; a slot that dies
// without being given back closes its connection (or frees its right).
//
// When no slot can be had, the request waits in its origin's FIFO of
// slot_waiters (in its own frame, no allocation). Whenever something frees
// up — a connection goes idle or closes, a right is given back — dispatch()
// serves the longest-waiting request that can now be served, across
// origins: with an idle connection of its origin, with a new right, or, when
// only the total limit stands in the way, by closing the least recently
// used idle connection of another origin. A waiter that is granted is no
// longer cancellable (what it was handed is never lost); one that is
// cancelled leaves its list.

#include <coring/detail/timer_node.hpp>
#include <coring/detail/wait_list.hpp>
#include <coring/http/client.hpp>
#include <coring/http/detail/message_parser.hpp>
#include <coring/net/byte_stream.hpp>
#include <coring/net/tcp.hpp>
#include <coring/task.hpp>

#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace coring::http::detail {

using steady = std::chrono::steady_clock;

/// A byte stream other than plain TCP (TLS), one virtual call per operation.
class transport {
 public:
  virtual ~transport() = default;
  [[nodiscard]] virtual task<std::size_t> read_some(std::span<std::byte> buffer, net::io_options o) = 0;
  [[nodiscard]] virtual task<> write_all(std::span<const std::byte> data, net::io_options o) = 0;
  [[nodiscard]] virtual task<> close() = 0;
  /// The socket underneath, for the staleness check (-1: none).
  [[nodiscard]] virtual int native_handle() const noexcept = 0;
  /// True if bytes waiting on the socket are not by themselves a sign of a
  /// dead connection (TLS: a session ticket may arrive after the handshake).
  [[nodiscard]] virtual bool may_have_unread_records() const noexcept { return false; }
};

/// Any net::byte_stream as a transport.
template <net::byte_stream S>
class stream_transport final : public transport {
 public:
  explicit stream_transport(S s) : stream_(std::move(s)) {}
  task<std::size_t> read_some(std::span<std::byte> buffer, net::io_options o) override {
    co_return co_await stream_.read_some(buffer, o);
  }
  task<> write_all(std::span<const std::byte> data, net::io_options o) override {
    if constexpr (requires { stream_.write_all(data, o); }) {
      co_await stream_.write_all(data, o);
    } else {
      while (!data.empty()) data = data.subspan(co_await stream_.write_some(data, o));
    }
  }
  task<> close() override { co_await stream_.close(); }
  int native_handle() const noexcept override {
    if constexpr (requires { { stream_.native_handle() } -> std::convertible_to<int>; }) {
      return stream_.native_handle();
    } else {
      return -1;
    }
  }
  bool may_have_unread_records() const noexcept override { return true; }
  S& stream() noexcept { return stream_; }

 private:
  S stream_;
};

struct host_pool;

/// One connection to an origin.
class connection {
 public:
  static constexpr std::size_t buffer_size = 64 * 1024;  // one read at most

  connection(host_pool& host, net::tcp_stream s, parser_limits limits);
  connection(host_pool& host, std::unique_ptr<transport> t, parser_limits limits);
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  /// Plain TCP (the fast path), or null.
  [[nodiscard]] net::tcp_stream* tcp() noexcept { return tcp_ ? &*tcp_ : nullptr; }
  /// The other transport, when not plain TCP.
  [[nodiscard]] transport* other() noexcept { return other_.get(); }

  /// Bytes received and not yet parsed.
  [[nodiscard]] std::string_view buffered() const noexcept {
    return {reinterpret_cast<const char*>(buf_.get()) + begin_, end_ - begin_};
  }
  void consume(std::size_t n) noexcept {
    begin_ += n;
    if (begin_ == end_) begin_ = end_ = 0;
  }
  /// Where the next read goes (the whole buffer once everything was parsed).
  [[nodiscard]] std::span<std::byte> free_space() noexcept {
    if (begin_ == end_) begin_ = end_ = 0;
    return {buf_.get() + end_, buffer_size - end_};
  }
  void received(std::size_t n) noexcept { end_ += n; }

  /// True if the peer has closed (or sent something unasked): a recv with
  /// MSG_PEEK | MSG_DONTWAIT, no ring operation, used before reusing a
  /// connection for a request that may not be sent twice.
  [[nodiscard]] bool looks_closed() const noexcept;

  message_parser parser;            // the responses
  std::string out;                  // the request head being sent (kept for its capacity)
  host_pool* host;                  // whose it is
  std::uint64_t requests = 0;       // requests sent on it
  steady::time_point expires{};     // while idle: when it is closed
  std::chrono::nanoseconds keep_alive_limit = std::chrono::nanoseconds::max();  // the server's Keep-Alive timeout

 private:
  std::optional<net::tcp_stream> tcp_;     // plain TCP
  std::unique_ptr<transport> other_;       // or this
  std::unique_ptr<std::byte[]> buf_;       // received bytes
  std::size_t begin_ = 0;                  // first unparsed byte
  std::size_t end_ = 0;                    // one past the last received byte
};

/// One origin's share of the pool.
struct host_pool {
  std::string key;       // "http://host:port"
  std::string scheme;    // "http" or "https"
  std::string host;      // as in the URL (lower case; IPv6 without brackets)
  std::uint16_t port = 0;
  std::vector<std::unique_ptr<connection>> idle;  // most recently used last
  std::size_t open = 0;  // connections of this origin counted against the limits (in use, idle, being opened)
  coring::detail::wait_list waiters;  // requests waiting for a slot here, FIFO
  bool listed = false;   // in pool::waiting_hosts_
};

class pool;

/// A lease from the pool: an idle connection, or (conn null) the right to
/// open one. Destroyed without release(): the connection is closed, the
/// right given back.
class slot {
 public:
  slot() noexcept = default;
  slot(pool& p, host_pool& h, std::unique_ptr<connection> c) noexcept : pool_(&p), host_(&h), conn(std::move(c)) {}
  slot(slot&& o) noexcept : pool_(std::exchange(o.pool_, nullptr)), host_(o.host_), conn(std::move(o.conn)) {}
  slot& operator=(slot&& o) noexcept;
  slot(const slot&) = delete;
  slot& operator=(const slot&) = delete;
  ~slot() { reset(); }

  /// Gives the connection (or the right) back: closed, or kept idle if `reusable`.
  void release(bool reusable) noexcept;
  /// Takes the connection out of the slot; the slot is then empty (the
  /// caller gives it back to the pool through pool::release).
  std::unique_ptr<connection> take() noexcept {
    pool_ = nullptr;
    return std::move(conn);
  }
  [[nodiscard]] explicit operator bool() const noexcept { return pool_ != nullptr; }
  [[nodiscard]] host_pool& host() const noexcept { return *host_; }

 private:
  void reset() noexcept { release(false); }
  pool* pool_ = nullptr;
  host_pool* host_ = nullptr;

 public:
  std::unique_ptr<connection> conn;  // the connection, or null: open one
};

/// A request waiting for a slot (in its own frame).
class slot_waiter : public coring::detail::sync_waiter {
 public:
  slot_waiter(pool& p, host_pool& h, bool fresh) noexcept : pool_(p), host_(h), fresh_(fresh) {}
  bool await_ready() const noexcept { return false; }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> handle);
  slot await_resume() {
    if (result() != outcome::granted) throw_cancelled();
    return std::move(granted_);
  }

 private:
  friend class pool;
  void park_here(std::coroutine_handle<> handle);
  pool& pool_;
  host_pool& host_;
  bool fresh_;             // wants a new connection, not an idle one (a retry)
  std::uint64_t seq_ = 0;  // arrival order across origins
  slot granted_;           // what dispatch() handed over
};

class pool {
 public:
  explicit pool(const client_options& o);
  ~pool();
  pool(const pool&) = delete;
  pool& operator=(const pool&) = delete;

  /// The share of the origin of `u` (made on first use).
  host_pool& host_for(const url& u);
  /// A slot at once if one can be had (and nobody waits there before us).
  /// `fresh`: never an idle connection.
  [[nodiscard]] bool try_acquire(host_pool& h, bool fresh, slot& out);
  /// Waits for a slot. **Cancellation:** leaves the queue.
  [[nodiscard]] slot_waiter wait(host_pool& h, bool fresh) noexcept { return {*this, h, fresh}; }

  /// A connection whose exchange ended: kept idle for its origin if
  /// `reusable` (or handed straight to a waiter), else closed.
  void release(std::unique_ptr<connection> c, bool reusable) noexcept;
  /// A right to open a connection that was not used.
  void give_back(host_pool& h) noexcept;
  /// Closes every idle connection.
  void close_idle() noexcept;

  [[nodiscard]] std::size_t open() const noexcept { return open_; }
  [[nodiscard]] std::size_t idle() const noexcept { return idle_; }
  [[nodiscard]] std::size_t waiting() const noexcept;

 private:
  friend class slot_waiter;
  struct idle_timer : coring::detail::timer_node {
    pool* owner = nullptr;
  };

  [[nodiscard]] bool per_host_ok(const host_pool& h) const noexcept {
    return limit_per_host_ == 0 || h.open < limit_per_host_;
  }
  [[nodiscard]] bool total_ok() const noexcept { return limit_ == 0 || open_ < limit_; }
  /// Takes the most recent idle connection of `h` that has not expired.
  std::unique_ptr<connection> pop_idle(host_pool& h, steady::time_point now) noexcept;
  /// Closes one idle connection, least recently used first: of `h` if
  /// given, else of any origin. False if there is none.
  bool evict_idle(host_pool* h) noexcept;
  /// Counts a new connection against the limits.
  void reserve(host_pool& h) noexcept {
    ++h.open;
    ++open_;
  }
  /// Forgets a closed connection (or an unused right).
  void unreserve(host_pool& h) noexcept {
    --h.open;
    --open_;
  }
  /// Serves waiting requests while something can be given to them.
  void dispatch() noexcept;
  /// What a waiter on `h` can be given now, if anything (see dispatch()).
  [[nodiscard]] bool servable(const host_pool& h, bool fresh) const noexcept;
  slot serve(host_pool& h, bool fresh) noexcept;
  void arm_timer(steady::time_point when) noexcept;
  static void on_timer(coring::detail::timer_node* t) noexcept;
  void expire_idle() noexcept;

  std::size_t limit_;                  // total connections (0: none)
  std::size_t limit_per_host_;         // per origin (0: none)
  std::chrono::nanoseconds keepalive_; // idle lifetime
  std::unordered_map<std::string, std::unique_ptr<host_pool>> hosts_;  // by key
  std::string key_scratch_;            // the key being looked up (keeps its capacity)
  std::vector<host_pool*> waiting_hosts_;  // origins that have (or had) waiters
  std::size_t open_ = 0;               // connections counted against limit_
  std::size_t idle_ = 0;               // of which idle
  std::uint64_t next_seq_ = 0;         // arrival numbers of waiters
  event_loop* loop_ = nullptr;         // whose timer heap holds timer_
  idle_timer timer_;                   // the earliest idle expiry
};

template <class P>
bool slot_waiter::await_suspend(std::coroutine_handle<P> handle) {
  if (begin_wait(handle)) return false;
  // Something may have freed up between the caller's try and this wait.
  if (pool_.try_acquire(host_, fresh_, granted_)) {
    grant_inline();
    return false;
  }
  park_here(handle);
  return true;
}

}  // namespace coring::http::detail
