#pragma once
// The DNS lane: the threads that run getaddrinfo for net::resolve. Internal,
// visible for tests, which replace the blocking lookup to make it slow or
// make it fail on purpose.

#include <coring/net/address.hpp>
#include <coring/thread_pool.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace coring::net::detail {

/// What one blocking lookup found: addresses, or getaddrinfo's reason for none.
struct lookup_result {
  std::vector<address> addresses;
  std::string error;  // gai_strerror(...) when addresses is empty
};

/// A blocking lookup (getaddrinfo by default), run on a lane thread.
using blocking_lookup = lookup_result (*)(const std::string& host, std::uint16_t port);

/// The lane: a thread_pool of at most `lane_threads` workers, made on first
/// use and never destroyed (so that exit never waits for a stuck lookup).
inline constexpr std::size_t lane_threads = 4;
thread_pool& dns_lane();

/// Replaces the blocking lookup (null restores getaddrinfo). Tests only;
/// call while no lookup runs.
void set_blocking_lookup(blocking_lookup fn) noexcept;
/// Lookups sent to the lane so far (names that did not resolve on the loop).
std::uint64_t lane_lookups() noexcept;

}  // namespace coring::net::detail
