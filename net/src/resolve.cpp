#include <coring/net/resolve.hpp>

#include <coring/future.hpp>
#include <coring/net/detail/dns_lane.hpp>
#include <coring/net/error.hpp>
#include <coring/wait_for.hpp>

#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <string_view>

namespace coring::net {

namespace detail {
namespace {
lookup_result getaddrinfo_lookup(const std::string& host, std::uint16_t port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* list = nullptr;
  lookup_result out;
  int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &list);
  if (rc != 0) {
    out.error = rc == EAI_SYSTEM ? std::string(std::strerror(errno)) : std::string(::gai_strerror(rc));
    return out;
  }
  for (addrinfo* ai = list; ai; ai = ai->ai_next) {
    address a = address::from_native(ai->ai_addr, ai->ai_addrlen).with_port(port);
    if (a.is_ip() && std::find(out.addresses.begin(), out.addresses.end(), a) == out.addresses.end())
      out.addresses.push_back(a);
  }
  ::freeaddrinfo(list);
  if (out.addresses.empty()) out.error = ::gai_strerror(EAI_NODATA);
  return out;
}

std::atomic<blocking_lookup> lookup_fn{&getaddrinfo_lookup};
std::atomic<std::uint64_t> lookups{0};

// True if `name` is `zone` or a name under it ("a.b.localhost"), ignoring case.
bool is_name_under(std::string_view name, std::string_view zone) {
  if (name.size() < zone.size()) return false;
  if (name.size() > zone.size() && name[name.size() - zone.size() - 1] != '.') return false;
  std::string_view tail = name.substr(name.size() - zone.size());
  return std::equal(tail.begin(), tail.end(), zone.begin(),
                    [](char a, char b) { return std::tolower(static_cast<unsigned char>(a)) == b; });
}
}  // namespace

thread_pool& dns_lane() {
  // Never destroyed: a lookup stuck in a resolver timeout must not hold up exit.
  static thread_pool* lane = new thread_pool(thread_pool::options{.max_workers = lane_threads,
                                                                  .keep_alive = std::chrono::seconds(10)});
  return *lane;
}

void set_blocking_lookup(blocking_lookup fn) noexcept { lookup_fn.store(fn ? fn : &getaddrinfo_lookup); }
std::uint64_t lane_lookups() noexcept { return lookups.load(std::memory_order_relaxed); }
}  // namespace detail

namespace {
task<detail::lookup_result> await_lookup(future<detail::lookup_result> f) { co_return co_await f; }
}  // namespace

task<std::vector<address>> resolve(std::string host, std::uint16_t port, resolve_options o) {
  std::string_view name = host;
  if (name.size() > 2 && name.front() == '[' && name.back() == ']') name = name.substr(1, name.size() - 2);
  if (auto a = address::ip(name, port)) co_return std::vector<address>(1, *a);
  std::string_view bare = name.ends_with('.') ? name.substr(0, name.size() - 1) : name;
  if (bare.empty()) throw dns_error(host, "empty host name");
  if (detail::is_name_under(bare, "localhost")) {
    std::vector<address> both(1, address::loopback_v4(port));
    both.push_back(address::loopback_v6(port));
    co_return both;
  }
  if (detail::is_name_under(bare, "invalid")) {
    throw dns_error(host, ::gai_strerror(EAI_NONAME));  // RFC 6761 §6.4: never resolves, no need to ask
  }

  detail::lookups.fetch_add(1, std::memory_order_relaxed);
  detail::blocking_lookup fn = detail::lookup_fn.load();
  future<detail::lookup_result> f = detail::dns_lane().submit(fn, host, port);
  detail::lookup_result r;
  if (coring::detail::timeout_ns(o.timeout) == coring::detail::no_deadline) {
    r = co_await f;
  } else {
    try {
      r = co_await wait_for(await_lookup(std::move(f)), o.timeout);
    } catch (const timeout_error&) {
      throw timeout_error("resolve " + host + ": timed out after " +
                          std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(o.timeout).count()) +
                          " ms");
    }
  }
  if (r.addresses.empty()) throw dns_error(host, r.error);
  co_return std::move(r.addresses);
}

}  // namespace coring::net
