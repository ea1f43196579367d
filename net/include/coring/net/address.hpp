#pragma once
// net::address: where a socket is — an IPv4 or IPv6 address with a port, or
// a Unix socket path (a leading '@' names one in the abstract namespace).
//
//   auto a = net::address::parse("127.0.0.1:8080");        // std::optional<address>
//   auto b = net::address::ip("::1", 443);                  // literal + port
//   auto c = net::address::unix_path("/run/app.sock");
//   std::string s = a->to_string();                         // "127.0.0.1:8080", "[::1]:443", "unix:/run/app.sock"
//   std::unordered_set<net::address> seen;                  // hashable, comparable
//
// A value type holding the socket address as the kernel wants it (at most
// 112 bytes); nothing here resolves names (see resolve.hpp).

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

struct sockaddr;

namespace coring::net {

class address {
 public:
  /// What kind of address this is.
  enum class family : std::uint8_t { none, ipv4, ipv6, unix_socket };

  /// No address (family::none); to_string() gives "none".
  address() noexcept = default;

  /// An IP literal ("127.0.0.1", "::1", "fe80::1%lo" with a scope) and a port;
  /// nullopt if `literal` is not one. Never looks anything up.
  [[nodiscard]] static std::optional<address> ip(std::string_view literal, std::uint16_t port) noexcept;
  /// "1.2.3.4:80", "[::1]:80", "unix:/path" or "unix:@abstract"; nullopt if malformed.
  [[nodiscard]] static std::optional<address> parse(std::string_view text) noexcept;
  /// A Unix socket path; a leading '@' makes it abstract (no file).
  /// **Errors:** std::invalid_argument if it is empty or longer than 107 bytes.
  [[nodiscard]] static address unix_path(std::string_view path);
  /// 127.0.0.1:port.
  [[nodiscard]] static address loopback_v4(std::uint16_t port) noexcept;
  /// [::1]:port.
  [[nodiscard]] static address loopback_v6(std::uint16_t port) noexcept;
  /// From a kernel socket address (accept, getpeername); family::none if unknown.
  [[nodiscard]] static address from_native(const ::sockaddr* sa, std::size_t len) noexcept;

  [[nodiscard]] family kind() const noexcept { return family_; }
  [[nodiscard]] bool is_ip() const noexcept { return family_ == family::ipv4 || family_ == family::ipv6; }
  /// The port (0 for Unix and none).
  [[nodiscard]] std::uint16_t port() const noexcept;
  /// The same address with another port (IP only; others are returned as they are).
  [[nodiscard]] address with_port(std::uint16_t port) const noexcept;
  /// True for 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104.
  [[nodiscard]] bool is_loopback() const noexcept;
  /// The host part: "127.0.0.1", "::1", "/run/app.sock", "@name".
  [[nodiscard]] std::string host() const;
  /// "127.0.0.1:8080", "[::1]:8080", "unix:/run/app.sock", "unix:@name", "none".
  [[nodiscard]] std::string to_string() const;

  /// For the socket calls: the sockaddr and its length.
  [[nodiscard]] const ::sockaddr* native() const noexcept { return reinterpret_cast<const ::sockaddr*>(storage_.data()); }
  [[nodiscard]] std::size_t native_size() const noexcept { return size_; }
  /// AF_INET, AF_INET6, AF_UNIX or AF_UNSPEC.
  [[nodiscard]] int native_family() const noexcept;

  friend bool operator==(const address& a, const address& b) noexcept;
  /// A hash consistent with ==.
  [[nodiscard]] std::size_t hash() const noexcept;

 private:
  alignas(8) std::array<std::byte, 110> storage_{};  // sockaddr_in / sockaddr_in6 / sockaddr_un, as the kernel reads it
  std::uint8_t size_ = 0;                // bytes of storage_ in use
  family family_ = family::none;         // which of them
};

}  // namespace coring::net

template <>
struct std::hash<coring::net::address> {
  std::size_t operator()(const coring::net::address& a) const noexcept { return a.hash(); }
};
