#pragma once
// http::request: one request as a server handler sees it — method, target,
// headers, the path parameters its route matched, the query, and the body,
// read whole or piece by piece as it arrives.
//
//   coring::task<http::response> show(http::request& req) {
//     auto id = req.param<std::int64_t>("id");          // "/items/{id}"; 400 if not a number
//     auto limit = req.query<int>("limit", 10);          // "?limit=5"; 400 if not a number
//     std::string body = co_await req.body();            // whole, up to the server's limit (413 past it)
//     while (auto piece = co_await req.read_body(); !piece.empty()) ...   // or streamed
//   }
//
// The request lives in the connection's frame until the handler returns:
// keep no reference to it in a task that outlives the handler.

#include <coring/error.hpp>
#include <coring/http/headers.hpp>
#include <coring/net/address.hpp>
#include <coring/task.hpp>

#include <charconv>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

namespace coring::http {

/// Thrown (by a handler, or by the request's accessors) to answer with an
/// error status: the server sends `status()` with what() as a short text
/// body, and the connection lives on when it can. what(): the reason
/// ("path parameter 'n': 'abc' is not a valid integer").
class request_error : public coring::error {
 public:
  request_error(int status, const std::string& why) : error(why), status_(status) {}
  /// The status to answer with (400, 404, 413, ...).
  [[nodiscard]] int status() const noexcept { return status_; }

 private:
  int status_;
};

namespace detail {
/// Where a request's body comes from: the connection that read its head. Internal.
class body_source {
 public:
  /// The next piece of the body (valid until the next call), empty at its end.
  virtual task<std::string_view> read_body() = 0;
  /// The server's limit on a request body, in bytes.
  [[nodiscard]] virtual std::size_t max_body() const noexcept = 0;

 protected:
  ~body_source() = default;
};

/// `text` as a T, or request_error(400) naming `what` ("path parameter 'n'").
template <class T>
T convert_parameter(std::string_view text, std::string_view what);
}  // namespace detail

class request {
 public:
  /// A request made by hand (no connection; an empty body), for handlers' unit tests.
  request(std::string method, std::string target, http::headers fields = {});
  /// Internal: a request whose head is owned by the connection's parser.
  request(std::string_view method, std::string_view target, int version_minor, const http::headers& fields,
          const net::address* peer, detail::body_source* body, bool has_body) noexcept;
  request(const request&) = delete;
  request& operator=(const request&) = delete;
  ~request();

  /// "GET", "POST", ... (upper case, as sent).
  [[nodiscard]] std::string_view method() const noexcept { return method_; }
  /// The request-target as sent ("/a/b%20c?x=1").
  [[nodiscard]] std::string_view target() const noexcept { return target_; }
  /// The target's path, percent-encoded as sent ("/a/b%20c").
  [[nodiscard]] std::string_view path() const noexcept;
  /// The target's query without '?' ("x=1"), or empty.
  [[nodiscard]] std::string_view query_string() const noexcept;
  /// 1 for HTTP/1.1, 0 for HTTP/1.0.
  [[nodiscard]] int version_minor() const noexcept { return version_minor_; }
  /// The header fields, in order.
  [[nodiscard]] const http::headers& headers() const noexcept { return *headers_; }
  /// The first value of header `name`, or nullopt.
  [[nodiscard]] std::optional<std::string_view> header(std::string_view name) const noexcept {
    return headers_->get(name);
  }
  /// Who sent it (null for a request made by hand).
  [[nodiscard]] const net::address* peer() const noexcept { return peer_; }

  /// Path parameter `name` of the matched route ("{name}"), percent-decoded.
  /// **Errors:** request_error(500) if the route has no such parameter (a bug in the app).
  [[nodiscard]] std::string_view param(std::string_view name) const;
  /// Path parameter `name` converted to T (an integer or floating-point type,
  /// std::string, std::string_view).
  /// **Errors:** request_error(400) "path parameter 'n': 'abc' is not a valid integer"
  /// (the server answers 400 Bad Request), request_error(500) as above.
  template <class T>
  [[nodiscard]] T param(std::string_view name) const {
    return detail::convert_parameter<T>(param(name), "path parameter '" + std::string(name) + "'");
  }
  /// The first value of query parameter `name`, decoded, or nullopt.
  [[nodiscard]] std::optional<std::string> query(std::string_view name) const;
  /// Query parameter `name` converted to T, or `fallback` when absent.
  /// **Errors:** request_error(400) "query parameter 'limit': 'x' is not a valid integer".
  template <class T>
  [[nodiscard]] T query(std::string_view name, T fallback) const {
    std::optional<std::string> v = query(name);
    if (!v) return fallback;
    return detail::convert_parameter<T>(*v, "query parameter '" + std::string(name) + "'");
  }
  /// Every query parameter, decoded, in order (repeated keys kept).
  [[nodiscard]] const std::vector<std::pair<std::string, std::string>>& query_params() const;

  /// True if the request has a body (a Content-Length above 0, or chunked).
  [[nodiscard]] bool has_body() const noexcept { return has_body_; }
  /// The next piece of the body as it arrives (chunked bodies decoded),
  /// valid until the next call; empty at the end of the body. The first
  /// call answers "Expect: 100-continue".
  /// **Cancellation:** the read in flight is cancelled; the connection is then closed after the response.
  /// **Errors:** request_error(413) past the server's max_body_bytes;
  /// request_error(400) for a malformed chunked body; request_error(408)
  /// when the client stalls longer than the body timeout.
  [[nodiscard]] task<std::string_view> read_body();
  /// The whole body, up to `limit` bytes (0: the server's max_body_bytes).
  /// **Errors:** as read_body (413 past `limit`).
  [[nodiscard]] task<std::string> body(std::size_t limit = 0);

  /// Internal: the router records the matched route's parameters.
  void set_params(std::vector<std::pair<std::string_view, std::string>> params) { params_ = std::move(params); }

 private:
  struct owned;                                   // a hand-made request's own strings
  std::unique_ptr<owned> owned_;
  std::string_view method_;                       // into the parser, or owned_
  std::string_view target_;
  const http::headers* headers_;
  const net::address* peer_ = nullptr;
  detail::body_source* body_ = nullptr;           // null: no body
  std::vector<std::pair<std::string_view, std::string>> params_;  // name (into the route's pattern), decoded value
  mutable std::optional<std::vector<std::pair<std::string, std::string>>> query_;  // parsed when first asked
  int version_minor_ = 1;
  bool has_body_ = false;
};

// ---------------------------------------------------------------- implementation

namespace detail {
template <class T>
T convert_parameter(std::string_view text, std::string_view what) {
  if constexpr (std::is_same_v<T, std::string>) {
    return std::string(text);
  } else if constexpr (std::is_same_v<T, std::string_view>) {
    return text;
  } else if constexpr (std::is_same_v<T, bool>) {
    if (text == "true" || text == "1") return true;
    if (text == "false" || text == "0") return false;
    throw request_error(400, std::string(what) + ": '" + std::string(text) + "' is not true or false");
  } else {
    static_assert(std::is_arithmetic_v<T>, "request::param<T>: T must be arithmetic, std::string or std::string_view");
    T value{};
    const char* end = text.data() + text.size();
    auto [p, ec] = std::from_chars(text.data(), end, value);
    if (ec != std::errc() || p != end || text.empty()) {
      const char* kind = std::is_integral_v<T> ? "a valid integer" : "a valid number";
      if (ec == std::errc::result_out_of_range) kind = "in range";
      throw request_error(400, std::string(what) + ": '" + std::string(text) + "' is not " + kind);
    }
    return value;
  }
}
}  // namespace detail

}  // namespace coring::http
