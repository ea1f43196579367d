#pragma once
// net::socket_stream: a connected stream socket (TCP or Unix) whose every
// operation is one io_uring SQE from an awaiter in the caller's frame.
// tcp_stream and unix_stream are socket_streams with their own ways to
// connect; a listener's accept() makes them too.
//
//   std::array<std::byte, 4096> buf;
//   std::size_t n = co_await conn.read_some(buf, {.timeout = 5s});  // 0 = the peer closed
//   co_await conn.write_all(std::span(buf).first(n));
//   co_await conn.writev_all(parts);                                  // gathered, one sendmsg
//   co_await conn.shutdown_write();                                   // the peer reads end of stream
//   co_await conn.close();                                            // or let it go out of scope
//
// Cancellation: every operation is cancelled in the ring (IORING_OP_ASYNC_CANCEL)
// and the task gets coring::cancelled exactly once; a cancelled read consumed
// nothing. Timeouts: `{.timeout}` links an IORING_OP_LINK_TIMEOUT to the SQE —
// no timer of ours, no helper task, no allocation — and expiry is
// coring::timeout_error "read from 127.0.0.1:8080: timed out after 2000 ms".
// Errors: coring::io_error naming the operation and the peer; end of stream
// is a value. Sends carry MSG_NOSIGNAL: a closed peer is EPIPE, never SIGPIPE.
// Thread safety: a stream is used on the loop thread that runs its operations;
// at most one read and one write in flight at a time.

#include <coring/net/address.hpp>
#include <coring/net/byte_stream.hpp>
#include <coring/net/detail/socket_operation.hpp>
#include <coring/net/lent_buffer.hpp>

#include <sys/socket.h>
#include <sys/uio.h>

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>

namespace coring::net {

class socket_stream;

namespace detail {
void retain(buffer_pool* pool) noexcept;
void release(buffer_pool* pool) noexcept;
}  // namespace detail

/// Awaiter of read_some(): the number of bytes received, 0 at end of stream.
class receive_operation : public detail::socket_operation {
 public:
  receive_operation(const socket_stream& s, std::span<std::byte> buffer, const io_options& o) noexcept;
  /// **Errors:** io_error "read from <peer>: ..."; timeout_error.
  std::size_t await_resume();

 private:
  static void prep(::io_uring_sqe* sqe, detail::socket_operation& op) noexcept;
  const socket_stream* stream_;  // whose fd and peer
  std::span<std::byte> buffer_;  // the caller's; the awaiting frame keeps it alive
};

/// Awaiter of write_some() and write_all(): the number of bytes sent.
class send_operation : public detail::socket_operation {
 public:
  send_operation(const socket_stream& s, std::span<const std::byte> data, const io_options& o, bool all) noexcept;
  /// **Errors:** io_error "write to <peer>: ..." (EPIPE, ECONNRESET); timeout_error.
  std::size_t await_resume();

 private:
  static void prep(::io_uring_sqe* sqe, detail::socket_operation& op) noexcept;
  static bool step(detail::socket_operation& op, int res, unsigned flags) noexcept;
  const socket_stream* stream_;      // whose fd and peer
  std::span<const std::byte> data_;  // the caller's
  std::size_t done_ = 0;             // bytes sent by earlier submissions (write_all)
  bool all_;                         // write_all: go on until all of data_ is sent
};

/// Awaiter of writev_all(): every byte of every part, in order.
class send_vector_operation : public detail::socket_operation {
 public:
  send_vector_operation(const socket_stream& s, std::span<const std::span<const std::byte>> parts,
                        const io_options& o) noexcept;
  /// The total sent (the sum of the parts). **Errors:** as write_all.
  std::size_t await_resume();

 private:
  static constexpr std::size_t batch = 16;  // iovecs per sendmsg
  static void prep(::io_uring_sqe* sqe, detail::socket_operation& op) noexcept;
  static bool step(detail::socket_operation& op, int res, unsigned flags) noexcept;
  void fill() noexcept;
  const socket_stream* stream_;                       // whose fd and peer
  std::span<const std::span<const std::byte>> parts_; // the caller's
  std::size_t index_ = 0;                             // first part not wholly sent
  std::size_t offset_ = 0;                            // bytes of parts_[index_] already sent
  std::size_t total_ = 0;                             // bytes sent so far
  ::iovec iov_[batch];                                // the next batch, as the kernel reads it
  ::msghdr msg_{};                                    // points at iov_
};

/// Awaiter of shutdown_write().
class shutdown_operation : public detail::socket_operation {
 public:
  shutdown_operation(const socket_stream& s, const io_options& o) noexcept;
  /// **Errors:** io_error "shut down writing to <peer>: ..." (ENOTCONN if the peer is gone).
  void await_resume();

 private:
  static void prep(::io_uring_sqe* sqe, detail::socket_operation& op) noexcept;
  const socket_stream* stream_;
};

/// Awaiter of read_lent(): the bytes in a buffer lent by the stream's pool.
class lent_read_operation : public detail::socket_operation {
 public:
  lent_read_operation(const socket_stream& s, const io_options& o) noexcept;
  ~lent_read_operation();
  /// Empty at end of stream. **Errors:** as read_some.
  lent_buffer await_resume();

 private:
  static void prep(::io_uring_sqe* sqe, detail::socket_operation& op) noexcept;
  static bool step(detail::socket_operation& op, int res, unsigned flags) noexcept;
  static constexpr std::size_t own_size = 16384;  // bytes of a buffer of our own
  const socket_stream* stream_;  // whose fd, peer and pool
  std::byte* own_ = nullptr;     // a buffer of our own (new[]) when there is no pool or it is exhausted
  bool no_memory_ = false;       // no buffer could be had at all
};

/// Awaiter of close(): ready at once (closing a socket never blocks; SO_LINGER is never set).
struct close_operation {
  bool await_ready() const noexcept { return true; }
  void await_suspend(std::coroutine_handle<>) const noexcept {}
  void await_resume() const noexcept {}
};

class socket_stream {
 public:
  /// A closed stream.
  socket_stream() noexcept = default;
  /// Adopts the connected socket `fd` (CLOEXEC) to `peer`, reading into
  /// buffers of `pool` when given (the stream takes over one reference).
  socket_stream(int fd, const address& peer, detail::buffer_pool* pool = nullptr) noexcept
      : fd_(fd), pool_(pool), peer_(peer) {}
  socket_stream(socket_stream&& o) noexcept
      : fd_(std::exchange(o.fd_, -1)), pool_(std::exchange(o.pool_, nullptr)), peer_(o.peer_) {}
  socket_stream& operator=(socket_stream&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
      pool_ = std::exchange(o.pool_, nullptr);
      peer_ = o.peer_;
    }
    return *this;
  }
  socket_stream(const socket_stream&) = delete;
  socket_stream& operator=(const socket_stream&) = delete;
  /// Closes the socket (close(2); no operation may be in flight).
  ~socket_stream() { reset(); }

  /// Receives at most buffer.size() bytes; 0 means the peer closed its side.
  /// **Cancellation:** the receive is cancelled in the ring; nothing is
  /// consumed unless it had completed (then the bytes are delivered and the
  /// cancellation comes at the next suspension). **Errors:** io_error
  /// "read from 127.0.0.1:8080: Connection reset by peer"; timeout_error
  /// with `{.timeout}`. **Requires:** `buffer` outlives the operation (it
  /// does when it lives in the awaiting frame).
  [[nodiscard]] receive_operation read_some(std::span<std::byte> buffer, const io_options& o = {}) noexcept {
    return {*this, buffer, o};
  }
  /// Sends at least one byte of `data` (unless it is empty), returns how many.
  /// **Cancellation/Errors:** as read_some ("write to ..."; EPIPE, never SIGPIPE).
  [[nodiscard]] send_operation write_some(std::span<const std::byte> data, const io_options& o = {}) noexcept {
    return {*this, data, o, false};
  }
  /// Sends all of `data`: one SQE with MSG_WAITALL (the kernel keeps going
  /// until all is sent), submitted again only if it returns early (a signal,
  /// a deadline that passed after some progress). `{.timeout}` bounds each
  /// wait for progress. **Cancellation:** the send is cancelled in the ring
  /// and the task gets coring::cancelled (some of `data` may have been sent).
  /// **Errors:** as write_some.
  [[nodiscard]] send_operation write_all(std::span<const std::byte> data, const io_options& o = {}) noexcept {
    return {*this, data, o, true};
  }
  /// Sends every part in order with sendmsg (up to 16 parts per SQE).
  /// **Cancellation/Errors:** as write_all. **Requires:** `parts` and what they
  /// point to outlive the operation.
  [[nodiscard]] send_vector_operation writev_all(std::span<const std::span<const std::byte>> parts,
                                                 const io_options& o = {}) noexcept {
    return {*this, parts, o};
  }
  /// Ends our direction (shutdown(SHUT_WR) through the ring): the peer reads
  /// end of stream, and we can still read. **Errors:** io_error.
  [[nodiscard]] shutdown_operation shutdown_write(const io_options& o = {}) noexcept { return {*this, o}; }
  /// Closes the socket now; awaiting the result is instant (close(2) of a
  /// socket does not block). Idempotent. **Requires:** no operation in flight.
  [[nodiscard]] close_operation close() noexcept {
    reset();
    return {};
  }

  /// True if reads can borrow the listener's provided buffers (read_lent()).
  [[nodiscard]] bool lends_buffers() const noexcept { return pool_ != nullptr; }
  /// Receives into a buffer the kernel picks from the listener's pool when
  /// data arrives: a connection waiting here pins no buffer. Empty at end of
  /// stream. On a stream without a pool (or when the pool is at its limit)
  /// the read uses a buffer of its own. **Cancellation/Errors:** as read_some.
  [[nodiscard]] lent_read_operation read_lent(const io_options& o = {}) noexcept { return {*this, o}; }

  [[nodiscard]] bool is_open() const noexcept { return fd_ >= 0; }
  [[nodiscard]] int native_handle() const noexcept { return fd_; }
  /// Who is at the other end (for a stream a Unix listener accepted: the
  /// listener's path, since such peers are unnamed).
  [[nodiscard]] const address& peer() const noexcept { return peer_; }
  /// Our end's address (getsockname). **Errors:** io_error.
  [[nodiscard]] address local_address() const;
  /// Gives up the descriptor without closing it.
  int release() noexcept;

  /// Internal: the pool reads borrow from (null: none).
  [[nodiscard]] detail::buffer_pool* pool() const noexcept { return pool_; }

 protected:
  void reset() noexcept;

  int fd_ = -1;                          // the socket, or -1
  detail::buffer_pool* pool_ = nullptr;  // provided buffers for read_lent (one reference), or null
  address peer_;                         // for error messages and peer()
};

static_assert(byte_stream<socket_stream>);

}  // namespace coring::net
