#pragma once
// http::blocking_client: the HTTP client for plain code, requests.Session's
// role. It owns a private event loop and an http::client on it; each call
// runs that loop until the request is done, so it blocks the calling thread
// and nothing else.
//
//   http::blocking_client session;                        // one per thread, like a requests.Session
//   http::blocking_response r = session.get("http://127.0.0.1:8080/page");
//   r.raise_for_status();
//   std::cout << r.text().size();                         // the body was read whole
//   session.save("http://127.0.0.1:8080/big.iso", "big.iso");  // streamed to disk, not held
//
// Thread safety: a blocking_client is used on the thread that created it (its
// loop belongs to that thread), one call at a time; make one per thread, as
// the thread-pool downloaders do. It must not be called from a coroutine
// (that would run a loop inside a loop).

#include <coring/http/client.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace coring {
class event_loop;
}

namespace coring::http {

/// A response whose body was read whole (requests' Response).
class blocking_response {
 public:
  /// The status code (200, 404, ...).
  [[nodiscard]] int status() const noexcept { return status_; }
  /// The reason phrase the server sent.
  [[nodiscard]] const std::string& reason() const noexcept { return reason_; }
  /// True for a status below 400.
  [[nodiscard]] bool ok() const noexcept { return status_ < 400; }
  /// The header fields (case-insensitive, multi-valued).
  [[nodiscard]] const http::headers& headers() const noexcept { return headers_; }
  /// The URL this response came from (after redirects).
  [[nodiscard]] const http::url& url() const noexcept { return url_; }
  /// The method of the request that got it (after redirects).
  [[nodiscard]] const std::string& method() const noexcept { return method_; }
  /// The body, decoded from gzip/deflate.
  [[nodiscard]] const std::string& text() const noexcept { return body_; }
  /// The body parsed as JSON. **Errors:** http::protocol_error if it is not JSON.
  [[nodiscard]] nlohmann::json json() const;
  /// Throws http::status_error (status, method, URL) if status() >= 400.
  void raise_for_status() const;

 private:
  friend class blocking_client;
  int status_ = 0;
  std::string reason_;
  http::headers headers_;
  http::url url_;
  std::string method_;
  std::string body_;
};

/// A blocking HTTP/1.1 session (see the top of this header).
class blocking_client {
 public:
  /// A session with its own loop. **Errors:** coring::io_error if the ring cannot be made.
  explicit blocking_client(client_options o = {});
  ~blocking_client();
  blocking_client(const blocking_client&) = delete;
  blocking_client& operator=(const blocking_client&) = delete;

  /// Sends `method` to `url` and reads the whole response. **Errors:** those
  /// of http::client::request and of reading the body (url_error,
  /// connect_error, timeout_error, protocol_error, limit_error, redirect_error).
  [[nodiscard]] blocking_response request(std::string_view method, std::string_view url, request_options o);
  [[nodiscard]] blocking_response get(std::string_view url) { return request("GET", url, request_options{}); }
  [[nodiscard]] blocking_response get(std::string_view url, request_options o) {
    return request("GET", url, std::move(o));
  }
  [[nodiscard]] blocking_response head(std::string_view url, request_options o) {
    return request("HEAD", url, std::move(o));
  }
  [[nodiscard]] blocking_response post(std::string_view url, request_options o) {
    return request("POST", url, std::move(o));
  }
  [[nodiscard]] blocking_response put(std::string_view url, request_options o) {
    return request("PUT", url, std::move(o));
  }
  /// GETs `url` and streams its body to `path` (client_response::save: no
  /// partial file under `path`); gives the bytes written.
  /// **Errors:** as request(), coring::io_error for the file; a status of 400
  /// or more is http::status_error and writes no file.
  [[nodiscard]] std::uint64_t save(std::string_view url, const std::string& path, request_options o);
  [[nodiscard]] std::uint64_t save(std::string_view url, const std::string& path) {
    return save(url, path, request_options{});
  }

  /// The session underneath (its statistics, its options).
  [[nodiscard]] client& async() noexcept { return *client_; }

 private:
  std::unique_ptr<event_loop> loop_;
  std::unique_ptr<client> client_;
};

}  // namespace coring::http
