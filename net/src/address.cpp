#include <coring/net/address.hpp>

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <charconv>
#include <cstring>
#include <stdexcept>

namespace coring::net {

static_assert(sizeof(sockaddr_un) <= 110 && sizeof(sockaddr_in6) <= 110);

namespace {
std::optional<std::uint16_t> parse_port(std::string_view s) noexcept {
  unsigned v = 0;
  if (s.empty() || s.size() > 5) return std::nullopt;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || p != s.data() + s.size() || v > 65535) return std::nullopt;
  return static_cast<std::uint16_t>(v);
}
}  // namespace

std::optional<address> address::ip(std::string_view literal, std::uint16_t port) noexcept {
  char text[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
  if (literal.empty() || literal.size() >= sizeof text) return std::nullopt;
  std::memcpy(text, literal.data(), literal.size());
  text[literal.size()] = '\0';
  address a;
  sockaddr_in v4{};
  if (::inet_pton(AF_INET, text, &v4.sin_addr) == 1) {
    v4.sin_family = AF_INET;
    v4.sin_port = htons(port);
    std::memcpy(a.storage_.data(), &v4, sizeof v4);
    a.size_ = sizeof v4;
    a.family_ = family::ipv4;
    return a;
  }
  sockaddr_in6 v6{};
  char* scope = std::strchr(text, '%');
  if (scope) *scope++ = '\0';
  if (::inet_pton(AF_INET6, text, &v6.sin6_addr) != 1) return std::nullopt;
  if (scope) {
    unsigned index = ::if_nametoindex(scope);
    if (index == 0) {
      auto [p, ec] = std::from_chars(scope, scope + std::strlen(scope), index);
      if (ec != std::errc{} || *p != '\0') return std::nullopt;
    }
    v6.sin6_scope_id = index;
  }
  v6.sin6_family = AF_INET6;
  v6.sin6_port = htons(port);
  std::memcpy(a.storage_.data(), &v6, sizeof v6);
  a.size_ = sizeof v6;
  a.family_ = family::ipv6;
  return a;
}

std::optional<address> address::parse(std::string_view text) noexcept {
  if (text.starts_with("unix:")) {
    std::string_view path = text.substr(5);
    if (path.empty() || path.size() > 107) return std::nullopt;
    return unix_path(path);
  }
  if (text.starts_with('[')) {
    auto close = text.find("]:");
    if (close == std::string_view::npos) return std::nullopt;
    auto port = parse_port(text.substr(close + 2));
    if (!port) return std::nullopt;
    auto a = ip(text.substr(1, close - 1), *port);
    if (!a || a->family_ != family::ipv6) return std::nullopt;
    return a;
  }
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  auto port = parse_port(text.substr(colon + 1));
  if (!port) return std::nullopt;
  auto a = ip(text.substr(0, colon), *port);
  if (!a || a->family_ != family::ipv4) return std::nullopt;
  return a;
}

address address::unix_path(std::string_view path) {
  sockaddr_un un{};
  if (path.empty() || path.size() >= sizeof un.sun_path)
    throw std::invalid_argument("net::address: a Unix socket path must have 1 to 107 bytes: \"" + std::string(path) +
                                "\"");
  un.sun_family = AF_UNIX;
  std::memcpy(un.sun_path, path.data(), path.size());
  std::size_t len = offsetof(sockaddr_un, sun_path) + path.size();
  if (path[0] == '@') {
    un.sun_path[0] = '\0';  // abstract: the name is the bytes after the NUL, not NUL-terminated
  } else {
    ++len;  // the terminating NUL
  }
  address a;
  std::memcpy(a.storage_.data(), &un, sizeof un);
  a.size_ = static_cast<std::uint8_t>(len);
  a.family_ = family::unix_socket;
  return a;
}

address address::loopback_v4(std::uint16_t port) noexcept { return *ip("127.0.0.1", port); }
address address::loopback_v6(std::uint16_t port) noexcept { return *ip("::1", port); }

address address::from_native(const ::sockaddr* sa, std::size_t len) noexcept {
  address a;
  if (!sa || len > a.storage_.size() || len < sizeof(sa_family_t)) return a;
  switch (sa->sa_family) {
    case AF_INET:
      if (len < sizeof(sockaddr_in)) return a;
      a.family_ = family::ipv4;
      len = sizeof(sockaddr_in);
      break;
    case AF_INET6:
      if (len < sizeof(sockaddr_in6)) return a;
      a.family_ = family::ipv6;
      len = sizeof(sockaddr_in6);
      break;
    case AF_UNIX: {
      a.family_ = family::unix_socket;
      // A pathname address may come with trailing NULs; keep it canonical
      // (path + one NUL) so that == compares paths.
      const auto* un = reinterpret_cast<const sockaddr_un*>(sa);
      std::size_t path_len = len - offsetof(sockaddr_un, sun_path);
      if (path_len > 0 && un->sun_path[0] != '\0') {
        path_len = ::strnlen(un->sun_path, path_len);
        len = offsetof(sockaddr_un, sun_path) + path_len + 1;
      }
      break;
    }
    default:
      return a;
  }
  std::memcpy(a.storage_.data(), sa, std::min(len, a.storage_.size()));
  a.size_ = static_cast<std::uint8_t>(len);
  return a;
}

int address::native_family() const noexcept {
  switch (family_) {
    case family::ipv4: return AF_INET;
    case family::ipv6: return AF_INET6;
    case family::unix_socket: return AF_UNIX;
    default: return AF_UNSPEC;
  }
}

std::uint16_t address::port() const noexcept {
  if (family_ == family::ipv4) return ntohs(reinterpret_cast<const sockaddr_in*>(storage_.data())->sin_port);
  if (family_ == family::ipv6) return ntohs(reinterpret_cast<const sockaddr_in6*>(storage_.data())->sin6_port);
  return 0;
}

address address::with_port(std::uint16_t port) const noexcept {
  address a = *this;
  if (family_ == family::ipv4) reinterpret_cast<sockaddr_in*>(a.storage_.data())->sin_port = htons(port);
  if (family_ == family::ipv6) reinterpret_cast<sockaddr_in6*>(a.storage_.data())->sin6_port = htons(port);
  return a;
}

bool address::is_loopback() const noexcept {
  if (family_ == family::ipv4) {
    return (ntohl(reinterpret_cast<const sockaddr_in*>(storage_.data())->sin_addr.s_addr) >> 24) == 127;
  }
  if (family_ == family::ipv6) {
    const in6_addr& a = reinterpret_cast<const sockaddr_in6*>(storage_.data())->sin6_addr;
    if (IN6_IS_ADDR_LOOPBACK(&a)) return true;
    return IN6_IS_ADDR_V4MAPPED(&a) && a.s6_addr[12] == 127;
  }
  return false;
}

std::string address::host() const {
  char text[INET6_ADDRSTRLEN + IF_NAMESIZE + 2] = {};
  switch (family_) {
    case family::ipv4:
      ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(storage_.data())->sin_addr, text, sizeof text);
      return text;
    case family::ipv6: {
      const auto* v6 = reinterpret_cast<const sockaddr_in6*>(storage_.data());
      ::inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof text);
      std::string s = text;
      if (v6->sin6_scope_id != 0) {
        char name[IF_NAMESIZE];
        s += '%';
        s += ::if_indextoname(v6->sin6_scope_id, name) ? std::string(name) : std::to_string(v6->sin6_scope_id);
      }
      return s;
    }
    case family::unix_socket: {
      const auto* un = reinterpret_cast<const sockaddr_un*>(storage_.data());
      std::size_t len = size_ - offsetof(sockaddr_un, sun_path);
      if (len == 0) return "";  // unnamed
      if (un->sun_path[0] == '\0') return "@" + std::string(un->sun_path + 1, len - 1);
      return std::string(un->sun_path, ::strnlen(un->sun_path, len));
    }
    default:
      return "none";
  }
}

std::string address::to_string() const {
  switch (family_) {
    case family::ipv4: return host() + ":" + std::to_string(port());
    case family::ipv6: return "[" + host() + "]:" + std::to_string(port());
    case family::unix_socket: return "unix:" + host();
    default: return "none";
  }
}

bool operator==(const address& a, const address& b) noexcept {
  return a.family_ == b.family_ && a.size_ == b.size_ && std::memcmp(a.storage_.data(), b.storage_.data(), a.size_) == 0;
}

std::size_t address::hash() const noexcept {
  // FNV-1a over the bytes that == compares.
  std::size_t h = 1469598103934665603ull ^ static_cast<std::size_t>(family_);
  for (std::size_t i = 0; i < size_; ++i) {
    h ^= static_cast<std::size_t>(storage_[i]);
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace coring::net
