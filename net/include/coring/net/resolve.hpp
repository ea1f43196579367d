#pragma once
// net::resolve: a host name and a port to the addresses to try, in order.
//
//   std::vector<net::address> addrs = co_await net::resolve("example.com", 443);
//
// IP literals ("127.0.0.1", "::1", "[::1]") and "localhost" (and names under
// .localhost) are answered on the loop at once: 127.0.0.1 then ::1 for
// localhost. Names under .invalid fail at once, as RFC 6761 asks, without a
// lookup. Every other name goes to getaddrinfo on the DNS lane: a small
// dedicated thread pool (4 threads at most, not the default pool and not the
// CPU pool), so a slow resolver never blocks the loop nor starves other work.

#include <coring/task.hpp>
#include <coring/net/address.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace coring::net {

/// Settings of one resolve().
struct resolve_options {
  /// Gives up (coring::timeout_error) after this long; the lookup itself
  /// runs on to its end on the lane and its result is dropped. max(): wait
  /// as long as getaddrinfo does.
  std::chrono::nanoseconds timeout = std::chrono::nanoseconds::max();
};

/// The addresses of `host` with `port`, in the order to try them (no duplicates).
/// **Cancellation:** the task returns at once with coring::cancelled; a lookup
/// not yet started never runs, one running on the lane runs to its end and
/// its result is dropped. **Errors:** net::dns_error "resolve <host>: <gai_strerror>"
/// (also for an empty host); coring::timeout_error "resolve <host>: timed out after N ms".
/// **Thread safety:** any loop thread; lookups of all loops share the lane.
[[nodiscard]] task<std::vector<address>> resolve(std::string host, std::uint16_t port, resolve_options o = {});

}  // namespace coring::net
