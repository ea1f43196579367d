#include <coring/net/tcp.hpp>

#include "sockets.hpp"

#include <coring/detail/duration.hpp>
#include <coring/error.hpp>
#include <coring/net/error.hpp>
#include <coring/net/resolve.hpp>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <chrono>
#include <vector>

namespace coring::net {

namespace {
using clock = std::chrono::steady_clock;

std::string target_name(const std::string& host, std::uint16_t port) {
  if (host.find(':') != std::string::npos && !host.starts_with('[')) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

[[noreturn]] void throw_timeout(const std::string& target, std::chrono::nanoseconds timeout) {
  throw timeout_error("connect to " + target + ": timed out after " +
                      std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count()) + " ms");
}

// Tries each address in order until one connects.
task<tcp_stream> connect_any(std::vector<address> addresses, std::string target, clock::time_point deadline,
                             connect_options o) {
  int last_error = 0;
  std::string tried;
  for (const address& a : addresses) {
    std::chrono::nanoseconds left = std::chrono::nanoseconds::max();
    if (deadline != clock::time_point::max()) {
      left = deadline - clock::now();
      if (left <= std::chrono::nanoseconds::zero()) throw_timeout(target, o.timeout);
    }
    detail::fd_guard fd{::socket(a.native_family(), SOCK_STREAM | SOCK_CLOEXEC, 0)};
    int r = fd.fd < 0 ? -errno : co_await detail::connect_operation(fd.fd, a, left);
    if (r == 0) {
      tcp_stream s(fd.release(), a);
      if (o.nodelay) s.set_nodelay(true);
      co_return s;
    }
    if (r == -ECANCELED) throw_timeout(target, o.timeout);  // our own cancellation was thrown as coring::cancelled
    last_error = -r;
    tried += tried.empty() ? " (tried " : ", ";
    tried += a.to_string();
  }
  if (!tried.empty()) tried += ")";
  throw connect_error(last_error ? last_error : EADDRNOTAVAIL, target, tried);
}
}  // namespace

task<tcp_stream> tcp_stream::connect(std::string host, std::uint16_t port, connect_options o) {
  detail::ignore_sigpipe_once();
  const auto deadline = coring::detail::deadline_after(o.timeout);
  std::string target = target_name(host, port);
  std::vector<address> addresses;
  try {
    addresses = co_await resolve(host, port, {.timeout = o.timeout});
  } catch (const timeout_error&) {
    throw_timeout(target, o.timeout);
  }
  co_return co_await connect_any(std::move(addresses), std::move(target), deadline, o);
}

task<tcp_stream> tcp_stream::connect(address to, connect_options o) {
  detail::ignore_sigpipe_once();
  const auto deadline = coring::detail::deadline_after(o.timeout);
  std::string target = to.to_string();
  std::vector<address> one(1, to);  // not a braced list: g++ 12 rejects initializer_list in coroutines here
  co_return co_await connect_any(std::move(one), std::move(target), deadline, o);
}

void tcp_stream::set_nodelay(bool on) {
  const int v = on ? 1 : 0;
  if (::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &v, sizeof v) != 0)
    throw io_error(errno, "TCP_NODELAY on the stream to " + peer_.to_string());
}

bool tcp_stream::nodelay() const {
  int v = 0;
  socklen_t len = sizeof v;
  if (::getsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &v, &len) != 0)
    throw io_error(errno, "TCP_NODELAY of the stream to " + peer_.to_string());
  return v != 0;
}

tcp_listener tcp_listener::bind(const address& where, const listen_options& o) {
  if (!where.is_ip()) throw io_error(EAFNOSUPPORT, "listen on " + where.to_string() + ": not an IP address");
  return tcp_listener(detail::listen_on(where, o));
}

}  // namespace coring::net
