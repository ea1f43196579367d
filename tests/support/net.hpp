#pragma once
// Fixtures for net tests: a loopback listener on port 0, byte helpers, and a
// run that checks no descriptor leaked.
//
//   coring_test::run_net([]() -> coring::task<> { ... });   // coring::run + fd check

#include "support/fds.hpp"

#include <coring/event_loop.hpp>
#include <coring/net/address.hpp>
#include <coring/net/tcp.hpp>
#include <coring/task.hpp>

#include <doctest/doctest.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace coring_test {

/// A TCP listener on 127.0.0.1 with a port the kernel picked.
inline coring::net::tcp_listener loopback_listener(coring::net::listen_options o = {}) {
  return coring::net::tcp_listener::bind(coring::net::address::loopback_v4(0), o);
}

inline std::span<const std::byte> bytes_of(std::string_view s) noexcept {
  return std::as_bytes(std::span(s.data(), s.size()));
}
inline std::string_view text_of(std::span<const std::byte> b) noexcept {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

/// `n` bytes of a pattern that does not repeat every power of two (so a
/// misplaced chunk shows), starting at `seed`.
inline std::vector<std::byte> pattern(std::size_t n, std::uint32_t seed = 1) {
  std::vector<std::byte> v(n);
  std::uint32_t x = seed;
  for (std::size_t i = 0; i < n; ++i) {
    x = x * 1664525u + 1013904223u;
    v[i] = static_cast<std::byte>(x >> 24);
  }
  return v;
}

/// coring::run(t), then checks that the descriptor count is what it was.
template <class T>
T run_net(coring::task<T> t) {
  const int before = settled_fd_count();
  struct check {
    int before;
    ~check() { CHECK(fd_count_returns_to(before)); }
  } c{before};
  return coring::run(std::move(t));
}

}  // namespace coring_test
