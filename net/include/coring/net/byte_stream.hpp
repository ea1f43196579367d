#pragma once
// net::byte_stream: what the buffered reader and writer (and later TLS and
// HTTP) need from a connection, whatever carries it — TCP, Unix sockets, TLS,
// subprocess pipes:
//
//   std::size_t n = co_await s.read_some(buf, {.timeout = 5s});   // 0 = end of stream
//   std::size_t m = co_await s.write_some(data, {});              // at least 1 byte unless data is empty
//   co_await s.close();
//
// Each call returns something co_await-able: an awaiter (a socket's one-SQE
// operation) or a task<> (a TLS stream's coroutine) — both satisfy it.
//
// Optional extras a stream may offer, used when present:
//   s.write_all(data, opts)             all of `data`, one operation
//   s.lends_buffers(), s.read_lent(opts) a read into a buffer the stream lends
//                                        (listener-accepted sockets: io_uring
//                                        provided buffers), so that an idle
//                                        reader pins no memory of its own.

#include <chrono>
#include <concepts>
#include <cstddef>
#include <span>
#include <type_traits>
#include <utility>

namespace coring::net {

/// Settings of one stream operation.
struct io_options {
  /// The operation ends with coring::timeout_error when this has passed
  /// since it started (for socket operations: an IORING_OP_LINK_TIMEOUT linked
  /// to its SQE; an operation that resubmits itself restarts it, so it bounds
  /// each wait for progress). max() (the default) means no limit.
  std::chrono::nanoseconds timeout = std::chrono::nanoseconds::max();
};

namespace detail {
template <class A>
decltype(auto) awaiter_of(A&& a) noexcept {
  if constexpr (requires { std::forward<A>(a).operator co_await(); }) {
    return std::forward<A>(a).operator co_await();
  } else {
    return std::forward<A>(a);
  }
}
/// What `co_await a` gives, for an expression of type A.
template <class A>
using await_result_t = decltype(awaiter_of(std::declval<A>()).await_resume());
}  // namespace detail

/// Something `co_await`-able whose result converts to T.
template <class A, class T>
concept awaitable_of = requires { typename detail::await_result_t<A>; } &&
                       std::convertible_to<detail::await_result_t<A>, T>;

/// A connection that moves bytes both ways (see the top of this header).
template <class S>
concept byte_stream = requires(S& s, std::span<std::byte> in, std::span<const std::byte> out, const io_options& o) {
  { s.read_some(in, o) } -> awaitable_of<std::size_t>;
  { s.write_some(out, o) } -> awaitable_of<std::size_t>;
  { s.close() } -> awaitable_of<void>;
};

}  // namespace coring::net
