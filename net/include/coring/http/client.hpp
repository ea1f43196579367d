#pragma once
// http::client: an HTTP/1.1 client session, aiohttp.ClientSession in C++.
// One session keeps a pool of connections per origin (scheme, host, port),
// reused while they are kept alive, and sends requests over them:
//
//   http::client session({.limit = 100, .limit_per_host = 10});
//   http::client_response resp = co_await session.get("http://example.com/data.json",
//                                                     {.query = {{"page", "2"}}});
//   resp.raise_for_status();                         // http::status_error for 4xx and 5xx
//   nlohmann::json doc = co_await resp.json();       // or text(), bytes(), save(path), body()
//
//   auto created = co_await session.post(url, {.json = nlohmann::json{{"name", "x"}},
//                                              .timeout = http::timeouts{.total = 5s}});
//
// | aiohttp                                   | coring                                               |
// |-------------------------------------------|------------------------------------------------------|
// | `ClientSession(connector=TCPConnector(limit=100, limit_per_host=0))` | `http::client session({.limit = 100, .limit_per_host = 0})` |
// | `session.get(url, params=, headers=)`     | `co_await session.get(url, {.query = ..., .headers = ...})` |
// | `session.post(url, data=, json=)`         | `session.post(url, {.body = ..., .json = ...})`      |
// | `session.request(method, url, ...)`       | `session.request(method, url, {...})`                |
// | `ClientTimeout(total, connect, sock_read)`| `http::timeouts{.total, .connect, .read, .pool}`     |
// | `resp.status`, `resp.reason`, `resp.headers` | `resp.status()`, `resp.reason()`, `resp.headers()` |
// | `await resp.text()`, `read()`, `json()`   | `co_await resp.text()`, `bytes()`, `json()`          |
// | `async for chunk in resp.content.iter_any()` | `auto b = resp.body(); while (auto c = co_await b.next(); !c.empty())` |
// | `resp.raise_for_status()`                 | `resp.raise_for_status()` → http::status_error       |
// | `await session.close()`                   | `co_await session.close()` (the destructor closes too) |
//
// Bodies: Content-Length, chunked (trailers in trailers()) and close-delimited;
// none for HEAD, 1xx, 204 and 304. gzip and deflate are advertised and
// decoded (zlib) unless auto_decompress is off. Redirects (301, 302, 303,
// 307, 308) are followed as browsers and aiohttp do: 303 turns any method
// but HEAD into GET, 301 and 302 turn POST into GET, 307 and 308 keep the
// method and body; at most max_redirects; Authorization is dropped when the
// origin changes. A request on a pooled connection that the server had
// closed meanwhile is sent again once, on a fresh connection, when its
// method is idempotent (GET, HEAD, OPTIONS, TRACE, PUT, DELETE).
//
// Errors (<coring/http/client_error.hpp>, each naming "METHOD url"):
// http::url_error from the call itself for a bad URL; http::connect_error;
// http::timeout_error with its phase; http::protocol_error for a malformed
// or cut-short response (http::limit_error past a limit); http::redirect_error.
//
// Thread safety: a client and its responses belong to the loop of the thread
// that first used it; for plain threads, see <coring/http/blocking_client.hpp>.

#include <coring/http/client_error.hpp>
#include <coring/http/error.hpp>
#include <coring/http/headers.hpp>
#include <coring/http/url.hpp>
#include <coring/task.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace coring::http {

namespace detail {
class client_state;
class connection;
class inflater;
struct inflater_deleter {
  void operator()(inflater* p) const noexcept;
};
}  // namespace detail

/// The deadlines of a request, each its own http::timeout_error phase
/// (aiohttp's ClientTimeout). max() means no limit.
struct timeouts {
  /// The whole request: waiting for a connection, connecting, sending, the
  /// response and reading its body (aiohttp's default: 5 minutes).
  std::chrono::nanoseconds total = std::chrono::seconds(300);
  /// Making a connection: DNS, TCP connect and (https) the TLS handshake.
  std::chrono::nanoseconds connect = std::chrono::nanoseconds::max();
  /// Waiting for the next bytes of the response (aiohttp's sock_read).
  std::chrono::nanoseconds read = std::chrono::nanoseconds::max();
  /// Waiting for a free connection when the pool is at its limits.
  std::chrono::nanoseconds pool = std::chrono::nanoseconds::max();
};

/// How https connections are verified.
struct tls_options {
  /// A PEM file of certificate authorities to trust instead of the system's (curl's --cacert).
  std::string ca_file{};
  /// false: accept any certificate and host name (curl's -k/--insecure).
  bool verify = true;
};

/// Settings of a client session.
struct client_options {
  /// Connections open at once, over all origins (aiohttp's limit); 0: no limit.
  std::size_t limit = 100;
  /// Connections open at once to one origin (aiohttp's limit_per_host); 0: no limit.
  std::size_t limit_per_host = 0;
  /// Deadlines of each request (a request's own timeouts replace these).
  http::timeouts timeout{};
  /// An idle pooled connection is closed after this long (aiohttp's
  /// keepalive_timeout), or sooner if the server's Keep-Alive header says so.
  std::chrono::nanoseconds keepalive_timeout = std::chrono::seconds(15);
  /// Sent with every request, unless the request sets the same field.
  http::headers headers{};
  /// The User-Agent sent unless a header sets one.
  std::string user_agent = "coring-http/1.0";
  /// Advertise gzip and deflate (Accept-Encoding) and decode bodies that use them.
  bool auto_decompress = true;
  /// Follow redirects (a request's allow_redirects overrides it).
  bool allow_redirects = true;
  /// Redirects followed before http::redirect_error (a request may override).
  int max_redirects = 10;
  /// A response's status line and header fields, in bytes, at most.
  std::size_t max_head_bytes = 64 * 1024;
  /// A response's header fields (and trailer fields), at most.
  std::size_t max_headers = 100;
  /// A body's size as sent (before decoding), at most; 0: no cap.
  std::uint64_t max_body_size = 0;
  /// A decoded (gunzipped, inflated) body's size, at most; 0: no cap.
  std::uint64_t max_decompressed_size = std::uint64_t{1} << 30;
  /// https: what to trust.
  tls_options tls{};
};

/// The body of a request: text, bytes, a file streamed from disk, JSON or
/// a form. Each sets a Content-Type unless the request's headers do.
class request_body {
 public:
  enum class kind : unsigned char { none, bytes, file };

  /// No body.
  request_body() = default;
  /// Text, "text/plain; charset=utf-8" (aiohttp's data=str).
  request_body(std::string text) : kind_(kind::bytes), data_(std::move(text)), type_("text/plain; charset=utf-8") {}
  request_body(const char* text) : request_body(std::string(text)) {}
  request_body(std::string_view text) : request_body(std::string(text)) {}
  /// Bytes, "application/octet-stream" (aiohttp's data=bytes).
  request_body(std::span<const std::byte> bytes)
      : kind_(kind::bytes), data_(reinterpret_cast<const char*>(bytes.data()), bytes.size()),
        type_("application/octet-stream") {}
  request_body(const std::vector<std::byte>& bytes) : request_body(std::span<const std::byte>(bytes)) {}
  /// The file at `path`, read through the ring as it is sent, with its size as Content-Length.
  [[nodiscard]] static request_body file(std::string path, std::string content_type = "application/octet-stream");
  /// `value` serialised, "application/json" (aiohttp's json=).
  [[nodiscard]] static request_body json(const nlohmann::json& value);
  /// URL-encoded fields, "application/x-www-form-urlencoded" (aiohttp's data=dict).
  [[nodiscard]] static request_body form(const std::vector<std::pair<std::string, std::string>>& fields);
  /// `data` with the Content-Type `content_type`.
  [[nodiscard]] static request_body with_type(std::string data, std::string content_type);

  [[nodiscard]] kind type() const noexcept { return kind_; }
  [[nodiscard]] bool empty() const noexcept { return kind_ == kind::none; }
  /// The bytes (kind::bytes) or the path (kind::file).
  [[nodiscard]] const std::string& data() const noexcept { return data_; }
  [[nodiscard]] const std::string& content_type() const noexcept { return type_; }

 private:
  kind kind_ = kind::none;
  std::string data_;  // the bytes, or the file's path
  std::string type_;  // Content-Type
};

/// Settings of one request (aiohttp's keyword arguments).
struct request_options {
  /// Header fields; they replace the session's fields of the same name.
  http::headers headers{};
  /// Query parameters appended to the URL's own (aiohttp's params=).
  std::vector<std::pair<std::string, std::string>> query{};
  /// The body (aiohttp's data=).
  request_body body{};
  /// A JSON body (aiohttp's json=); used when set, instead of `body`.
  std::optional<nlohmann::json> json{};
  /// Deadlines replacing the session's.
  std::optional<http::timeouts> timeout{};
  /// Follow redirects (default: the session's allow_redirects).
  std::optional<bool> allow_redirects{};
  /// Redirects followed before http::redirect_error (default: the session's).
  std::optional<int> max_redirects{};
  /// The body cap for this response (default: the session's max_body_size).
  std::optional<std::uint64_t> max_body_size{};
};

class client_response;

/// A response's body as a stream of pieces (aiohttp's resp.content.iter_any()).
///
///   http::body_stream body = resp.body();
///   for (auto piece = co_await body.next(); !piece.empty(); piece = co_await body.next()) ...
class body_stream {
 public:
  /// The next piece of the body (decoded, at most 64 KiB), empty at its end.
  /// The bytes stay valid until the next call. **Cancellation:** the read in
  /// flight is cancelled and the connection closed (it is not returned to the
  /// pool half-read); the task gets coring::cancelled. **Errors:**
  /// http::timeout_error (read, total), http::protocol_error (malformed,
  /// cut short, bad gzip), http::limit_error.
  [[nodiscard]] task<std::span<const std::byte>> next();

 private:
  friend class client_response;
  explicit body_stream(client_response& r) noexcept : response_(&r) {}
  client_response* response_;
};

/// A response whose head has arrived; its body is read by text(), bytes(),
/// json(), save() or body() — once. While the body is unread the response
/// holds its connection: reading it to the end returns the connection to
/// the pool, destroying the response earlier closes it.
/// **Requires:** the client outlives its responses.
class client_response {
 public:
  client_response() noexcept;
  client_response(client_response&&) noexcept;
  client_response& operator=(client_response&&) noexcept;
  client_response(const client_response&) = delete;
  client_response& operator=(const client_response&) = delete;
  /// Closes the connection if the body was not read to its end.
  ~client_response();

  /// The status code (200, 404, ...).
  [[nodiscard]] int status() const noexcept { return status_; }
  /// The reason phrase the server sent ("OK").
  [[nodiscard]] const std::string& reason() const noexcept { return reason_; }
  /// True for a status below 400 (aiohttp's resp.ok).
  [[nodiscard]] bool ok() const noexcept { return status_ < 400; }
  /// The header fields: case-insensitive, multi-valued (get_all("Set-Cookie")).
  [[nodiscard]] const http::headers& headers() const noexcept { return headers_; }
  /// The trailer fields of a chunked body (once the body was read).
  [[nodiscard]] const http::headers& trailers() const noexcept { return trailers_; }
  /// The Content-Length the server sent, if any (the encoded size).
  [[nodiscard]] std::optional<std::uint64_t> content_length() const noexcept { return content_length_; }
  /// The URL this response came from (after redirects).
  [[nodiscard]] const http::url& url() const noexcept { return url_; }
  /// The method of the request that got it (after redirects: GET for a 303).
  [[nodiscard]] const std::string& method() const noexcept { return method_; }
  /// The URLs that redirected here, in order (aiohttp's resp.history).
  [[nodiscard]] const std::vector<http::url>& history() const noexcept { return history_; }

  /// Throws http::status_error (status, method, URL) if status() >= 400.
  void raise_for_status() const;

  /// The whole body as text (the bytes as sent, decoded from gzip/deflate).
  /// **Cancellation/Errors:** as body_stream::next(). **Requires:** the body
  /// was not read yet.
  [[nodiscard]] task<std::string> text();
  /// The whole body as bytes (aiohttp's read()). **Cancellation/Errors/Requires:** as text().
  [[nodiscard]] task<std::vector<std::byte>> bytes();
  /// The body parsed as JSON (nlohmann::json). **Errors:** as text(), and
  /// http::protocol_error "... the body is not JSON: ..." naming the parser's reason.
  [[nodiscard]] task<nlohmann::json> json();
  /// Streams the body to the file `path` through the ring, never holding it
  /// all in memory: it is written to "<path>.part" and renamed to `path`
  /// when complete; on any failure the partial file is removed. Gives the
  /// bytes written. **Cancellation:** as next(); the partial file is removed.
  /// **Errors:** as text(); coring::io_error for the file.
  [[nodiscard]] task<std::uint64_t> save(std::string path);
  /// The body as a stream of pieces. **Requires:** as text().
  [[nodiscard]] body_stream body() noexcept;
  /// Gives up the rest of the body: the connection is closed (returned to the
  /// pool only if the body had been read to its end). Also done by the destructor.
  void release() noexcept;
  /// True once the body was read to its end (or there was none).
  [[nodiscard]] bool body_complete() const noexcept { return complete_; }

 private:
  friend class detail::client_state;
  friend class body_stream;
  void take_body();  // asserts the body is read once
  task<std::span<const std::byte>> next_piece();
  void finish_body(bool reusable) noexcept;
  void fail_body() noexcept;
  [[noreturn]] void throw_read_error(std::exception_ptr e);
  std::string describe() const;

  int status_ = 0;
  std::string reason_;
  http::headers headers_;
  http::headers trailers_;
  std::optional<std::uint64_t> content_length_;
  http::url url_;
  std::string method_;
  std::vector<http::url> history_;
  // The body while it is unread: the connection leased from the pool (owned),
  // its decoder, counts against the caps, and the deadlines that still apply.
  detail::client_state* client_ = nullptr;
  detail::connection* conn_ = nullptr;
  std::unique_ptr<detail::inflater, detail::inflater_deleter> decoder_;
  std::uint64_t received_ = 0;       // body bytes as sent
  std::uint64_t delivered_ = 0;      // body bytes after decoding
  std::uint64_t max_body_ = 0;       // cap on received_ (0: none)
  std::uint64_t max_decoded_ = 0;    // cap on delivered_ when decoding (0: none)
  std::chrono::steady_clock::time_point deadline_ = std::chrono::steady_clock::time_point::max();
  std::chrono::nanoseconds total_limit_ = std::chrono::nanoseconds::max();
  std::chrono::nanoseconds read_limit_ = std::chrono::nanoseconds::max();
  std::exception_ptr failure_;       // what ended the body, rethrown by later reads
  bool complete_ = true;             // the body was read to its end
  bool taken_ = false;               // a reader of the body was started
};

/// Counters of a session's pool, for tests and tuning.
struct client_statistics {
  std::uint64_t connections_opened = 0;  ///< connections made since the session started
  std::uint64_t requests = 0;            ///< requests sent (a retry and each redirect count)
  std::uint64_t reused = 0;              ///< requests sent on a pooled connection
  std::uint64_t retries = 0;             ///< requests sent again after a stale pooled connection
  std::size_t open = 0;                  ///< connections open now (in use, idle, connecting)
  std::size_t idle = 0;                  ///< of which idle in the pool
  std::size_t waiting = 0;               ///< requests waiting for a pool slot
};

/// An HTTP/1.1 client session (see the top of this header).
class client {
 public:
  /// A session; no connection is made until the first request.
  explicit client(client_options o = {});
  /// Closes the idle connections. **Requires:** no request of it is in
  /// flight and no response with an unread body is alive.
  ~client();
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  /// Sends `method` to `url` and gives the response once its head has
  /// arrived (the body is read from the response). Follows redirects.
  /// **Errors:** from the call itself (before any co_await): http::url_error
  /// for a bad URL or a scheme other than http and https, coring::error for
  /// a header field with CR, LF or NUL in it. From the task: connect_error,
  /// timeout_error, protocol_error, redirect_error; coring::io_error reading
  /// a file body. **Cancellation:** a wait for a pool slot is left, a connect
  /// or a read in flight cancelled in the ring, and the connection closed;
  /// the task gets coring::cancelled.
  [[nodiscard]] task<client_response> request(std::string_view method, std::string_view url, request_options o);
  /// As above, with a URL already parsed.
  [[nodiscard]] task<client_response> request(std::string_view method, const http::url& url, request_options o);
  // Without options. (Overloads, not default arguments: g++ 12 relocates a
  // default argument's temporary bitwise inside a coroutine frame when the
  // call is in a co_await expression, which breaks its strings.)
  [[nodiscard]] task<client_response> request(std::string_view method, std::string_view url) {
    return request(method, url, request_options{});
  }

  [[nodiscard]] task<client_response> get(std::string_view url) { return request("GET", url, request_options{}); }
  [[nodiscard]] task<client_response> get(std::string_view url, request_options o) {
    return request("GET", url, std::move(o));
  }
  [[nodiscard]] task<client_response> head(std::string_view url) { return request("HEAD", url, request_options{}); }
  [[nodiscard]] task<client_response> head(std::string_view url, request_options o) {
    return request("HEAD", url, std::move(o));
  }
  [[nodiscard]] task<client_response> post(std::string_view url) { return request("POST", url, request_options{}); }
  [[nodiscard]] task<client_response> post(std::string_view url, request_options o) {
    return request("POST", url, std::move(o));
  }
  [[nodiscard]] task<client_response> put(std::string_view url) { return request("PUT", url, request_options{}); }
  [[nodiscard]] task<client_response> put(std::string_view url, request_options o) {
    return request("PUT", url, std::move(o));
  }
  [[nodiscard]] task<client_response> patch(std::string_view url) { return request("PATCH", url, request_options{}); }
  [[nodiscard]] task<client_response> patch(std::string_view url, request_options o) {
    return request("PATCH", url, std::move(o));
  }
  /// DELETE (`delete` is a keyword).
  [[nodiscard]] task<client_response> del(std::string_view url) { return request("DELETE", url, request_options{}); }
  [[nodiscard]] task<client_response> del(std::string_view url, request_options o) {
    return request("DELETE", url, std::move(o));
  }

  /// Closes every idle connection now (aiohttp's session.close()); the
  /// session stays usable. **Errors:** none.
  [[nodiscard]] task<> close();

  /// The session's settings.
  [[nodiscard]] const client_options& options() const noexcept;
  /// Counters of the pool.
  [[nodiscard]] client_statistics stats() const noexcept;

 private:
  std::unique_ptr<detail::client_state> state_;
};

}  // namespace coring::http
