#pragma once
// The state behind an http::client: its settings, its pool and its counters,
// and the request machinery (client.cpp). Private to coring::net.

#include "http/client_pool.hpp"

#include <coring/http/client.hpp>
#include <coring/net/tls.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>

namespace coring::http::detail {

/// A request as it will be sent (after merging the session's settings).
struct prepared_request {
  std::string method;
  http::url url;
  http::headers headers;        // the request's own fields, then the session's it did not set
  request_body body;
  http::timeouts timeout;
  bool allow_redirects = true;
  int max_redirects = 10;
  std::uint64_t max_body_size = 0;
};

/// The deadlines of one request: the total one (fixed when it starts) and the
/// per-phase limits, and which applies to the next wait.
struct deadlines {
  steady::time_point total_deadline = steady::time_point::max();
  http::timeouts limits;

  /// The timeout for a wait limited by `limit` (of `phase`): the limit, or
  /// what is left of the total if that is less (then the phase is total).
  [[nodiscard]] std::pair<std::chrono::nanoseconds, timeout_phase> budget(std::chrono::nanoseconds limit,
                                                                          timeout_phase phase) const noexcept {
    if (total_deadline == steady::time_point::max()) return {limit, phase};
    const auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(total_deadline - steady::now());
    if (left <= std::chrono::nanoseconds::zero()) return {std::chrono::nanoseconds::zero(), timeout_phase::total};
    if (left < limit) return {left, timeout_phase::total};
    return {limit, phase};
  }
  /// The configured limit of `phase`.
  [[nodiscard]] std::chrono::nanoseconds limit_of(timeout_phase p) const noexcept {
    switch (p) {
      case timeout_phase::total: return limits.total;
      case timeout_phase::connect: return limits.connect;
      case timeout_phase::read: return limits.read;
      case timeout_phase::pool: return limits.pool;
    }
    return limits.total;
  }
};

class client_state {
 public:
  explicit client_state(client_options o) : options(std::move(o)), pool(options) {}

  /// The whole request: exchanges, redirects. (client::request's task.)
  task<client_response> run(std::unique_ptr<prepared_request> r);

  client_options options;
  detail::pool pool;
  client_statistics counters;
  std::optional<net::tls_context> tls;  // made by the first https connection (trust, session cache)

 private:
  task<client_response> exchange(prepared_request& r, const deadlines& d);
  task<slot> acquire(host_pool& h, bool fresh, const prepared_request& r, const deadlines& d);
  task<std::unique_ptr<connection>> connect(host_pool& h, const prepared_request& r, const deadlines& d);
  /// Sends the request and reads the response's head. False: the connection
  /// had been closed by the server before any byte of a response came.
  task<bool> send_and_read_head(connection& c, const prepared_request& r, const deadlines& d);
  task<> send_file_body(connection& c, const prepared_request& r, const deadlines& d, std::uint64_t size,
                        bool& file_failed);
  void serialize_head(connection& c, const prepared_request& r, std::uint64_t body_size, bool has_body) const;
};

/// "GET http://host/path" for messages (without userinfo or fragment).
std::string describe_request(std::string_view method, const url& u);

/// Writes to a connection with a timeout; maps errors. (client.cpp)
[[noreturn]] void throw_timeout(std::string_view method, const url& u, timeout_phase phase,
                                std::chrono::nanoseconds limit);

}  // namespace coring::http::detail
