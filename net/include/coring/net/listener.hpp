#pragma once
// net::basic_listener: a listening socket whose accept() is served by one
// multishot IORING_OP_ACCEPT — one SQE accepts connection after connection —
// with the accepted descriptors queued in the listener until tasks take them.
// tcp_listener and unix_listener are basic_listeners with their own bind().
//
//   auto listener = net::tcp_listener::bind(*net::address::parse("127.0.0.1:0"));
//   for (;;) {
//     net::tcp_stream conn = co_await listener.accept();
//     coring::spawn(serve(std::move(conn)));
//   }
//
// How it behaves:
// - The multishot SQE is armed by the first accept() and re-armed whenever
//   the kernel ends it. When more than 256 accepted connections wait in the
//   queue it is cancelled (the kernel's backlog holds the rest) and armed
//   again when a task next asks.
// - Descriptor exhaustion (EMFILE, ENFILE) or memory pressure: the listener
//   backs off (10 ms, doubling up to 1 s), keeps serving the connections it
//   has, and accepts again when the timer fires. stats().backoffs counts it.
// - Accepted sockets are CLOEXEC; TCP ones have TCP_NODELAY (from the
//   listening socket). Their reads can borrow buffers from a provided-buffer
//   ring registered by the listener (read_lent), so idle connections pin no
//   receive buffer.
// - Cancelling a task waiting in accept() removes it from the queue of
//   waiters: no connection is lost (one that was already handed to it is
//   delivered, the cancellation comes at its next suspension).
// - close() (or the destructor) cancels the multishot SQE, closes the
//   connections accepted but not taken, and ends tasks waiting in accept()
//   with io_error "accept on <address>: the listener was closed".
// Thread safety: a listener is used on one loop thread (the one of its first accept()).

#include <coring/detail/assert.hpp>
#include <coring/detail/task_node.hpp>
#include <coring/detail/timer_node.hpp>
#include <coring/event_loop.hpp>
#include <coring/net/address.hpp>
#include <coring/net/byte_stream.hpp>

#include <chrono>
#include <coroutine>
#include <cstdint>
#include <utility>

namespace coring::net {

/// Settings of a listener.
struct listen_options {
  int backlog = 4096;              ///< listen(2) backlog (the kernel caps it at net.core.somaxconn)
  bool reuse_address = true;       ///< SO_REUSEADDR (TCP)
  bool reuse_port = false;         ///< SO_REUSEPORT: several listeners (one per loop/thread) on one port (TCP)
  bool nodelay = true;             ///< TCP_NODELAY on accepted connections (TCP)
  bool lend_buffers = true;        ///< register a provided-buffer ring for the accepted streams' read_lent()
  std::size_t buffer_size = 16384; ///< bytes per provided buffer
  unsigned max_buffers = 1024;     ///< provided buffers made at most (in chunks of 32, as demand grows)
  bool unlink_existing = true;     ///< Unix: remove a stale socket file at the path before binding
};

/// Counters of a listener.
struct listener_stats {
  std::uint64_t accepted = 0;  ///< connections the kernel accepted for us
  std::uint64_t backoffs = 0;  ///< times accept stopped for lack of descriptors or memory
  std::uint64_t rearms = 0;    ///< multishot accept SQEs submitted
  std::size_t queued = 0;      ///< accepted connections waiting for an accept() now
  unsigned buffers = 0;        ///< provided buffers made so far
};

namespace detail {
class listener_core;
class buffer_pool;

/// An accepted connection on its way to becoming a stream.
struct accepted_socket {
  int fd;
  address peer;
  buffer_pool* pool;  // one reference for the stream, or null
};

/// The part of accept() that does not depend on the stream type. Internal.
class accept_waiter : public coring::detail::cancel_hook, public coring::detail::timer_node {
 public:
  accept_waiter(listener_core* core, std::chrono::nanoseconds timeout) noexcept;
  /// Closes a connection handed over and never taken.
  ~accept_waiter();
  accept_waiter(const accept_waiter&) = delete;
  accept_waiter& operator=(const accept_waiter&) = delete;

  bool await_ready() noexcept;
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) {
    node_ = coring::detail::node_of(h);
    if (node_ && node_->cancel_requested) {
      outcome_ = outcome::cancelled;
      return false;
    }
    return suspend(h);
  }

 protected:
  /// The connection, or throws: coring::cancelled, timeout_error, io_error.
  accepted_socket take();

 private:
  friend class listener_core;
  enum class outcome : std::uint8_t { waiting, delivered, cancelled, timed_out, failed };
  bool suspend(std::coroutine_handle<> h);
  static void on_cancel(coring::detail::cancel_hook* h) noexcept;
  static void on_timeout(coring::detail::timer_node* t) noexcept;

  listener_core* core_;                          // the listener's state
  std::coroutine_handle<> handle_;               // the waiting coroutine
  coring::detail::task_node* node_ = nullptr;    // its cancellation state
  accept_waiter* next_ = nullptr;                // FIFO of waiters
  accept_waiter* prev_ = nullptr;
  std::int64_t timeout_ns_;                      // -1: none
  int fd_ = -1;                                  // the connection handed over
  int error_ = 0;                                // errno when failed (0: the listener was closed)
  outcome outcome_ = outcome::waiting;           // how the wait ended
  // Copied when the wait ends, so that take() never touches the listener,
  // which may be closed (and freed) before the task resumes:
  buffer_pool* pool_ = nullptr;                  // for the stream (one reference), or null
  address where_;                                // the listener's address, for the stream or the message
};

/// Makes a listening socket (CLOEXEC) bound to `where`. **Errors:** io_error.
listener_core* listen_on(const address& where, const listen_options& o);
void close_listener(listener_core* core) noexcept;
const address& listener_address(const listener_core* core) noexcept;
int listener_fd(const listener_core* core) noexcept;
listener_stats listener_statistics(const listener_core* core) noexcept;
}  // namespace detail

/// Awaiter of accept(): the next connection as a `Stream`.
template <class Stream>
class accept_operation : public detail::accept_waiter {
 public:
  using accept_waiter::accept_waiter;
  /// **Errors:** timeout_error "accept on 127.0.0.1:8080: timed out after 100 ms";
  /// io_error "accept on ...: the listener was closed" or the kernel's reason.
  Stream await_resume() {
    detail::accepted_socket s = take();
    return Stream(s.fd, s.peer, s.pool);
  }
};

/// A listening socket that accepts `Stream`s (see the top of this header).
template <class Stream>
class basic_listener {
 public:
  /// A closed listener.
  basic_listener() noexcept = default;
  basic_listener(basic_listener&& o) noexcept : core_(std::exchange(o.core_, nullptr)) {}
  basic_listener& operator=(basic_listener&& o) noexcept {
    if (this != &o) {
      close();
      core_ = std::exchange(o.core_, nullptr);
    }
    return *this;
  }
  basic_listener(const basic_listener&) = delete;
  basic_listener& operator=(const basic_listener&) = delete;
  /// close().
  ~basic_listener() { close(); }

  /// The next connection, in the order the kernel accepted them.
  /// **Cancellation:** the task leaves the queue of waiters at once; no
  /// connection is lost. **Errors:** see accept_operation; timeout_error with
  /// `{.timeout}` (a deadline in the loop's timer heap: the multishot SQE is
  /// shared, so it cannot carry a linked timeout). **Requires:** open.
  [[nodiscard]] accept_operation<Stream> accept(const io_options& o = {}) noexcept {
    CORING_ASSERT(core_, "accept() on a closed listener");
    return {core_, o.timeout};
  }
  /// Stops listening (see the top of this header). Idempotent.
  /// **Requires:** on the listener's loop thread, while its loop lives.
  void close() noexcept {
    if (core_) detail::close_listener(std::exchange(core_, nullptr));
  }
  [[nodiscard]] bool is_open() const noexcept { return core_ != nullptr; }
  /// Where it listens (with the real port when bound to port 0).
  [[nodiscard]] const address& local_address() const noexcept { return detail::listener_address(core_); }
  [[nodiscard]] int native_handle() const noexcept { return detail::listener_fd(core_); }
  [[nodiscard]] listener_stats stats() const noexcept { return detail::listener_statistics(core_); }

 protected:
  explicit basic_listener(detail::listener_core* core) noexcept : core_(core) {}

 private:
  detail::listener_core* core_ = nullptr;  // owned; outlives us while its multishot SQE is in flight
};

}  // namespace coring::net
