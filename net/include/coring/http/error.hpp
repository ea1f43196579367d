#pragma once
// The errors of coring::http, each a coring::error (one catch serves all):
//
//   try { auto u = http::url::parse(text); }
//   catch (const http::url_error& e) { ... }        // "bad URL 'htp:/x': unknown scheme 'htp'"
//   try { resp.raise_for_status(); }
//   catch (const http::status_error& e) { e.status(); }
//   catch (const http::protocol_error& e) { ... }   // a malformed message; llhttp's reason

#include <coring/error.hpp>

#include <string>

namespace coring::http {

/// A URL that cannot be used: what(): "bad URL '<text>': <why>".
class url_error : public coring::error {
 public:
  url_error(const std::string& text, const std::string& why) : error("bad URL '" + text + "': " + why) {}
};

/// A peer sent something that is not HTTP/1.1 as it must be (a malformed
/// message, a smuggling-shaped one, a message cut short); what() names the
/// peer or URL and llhttp's reason ("response from http://127.0.0.1:8080/:
/// malformed: Invalid header value char").
class protocol_error : public coring::error {
 public:
  using error::error;
};

/// A response whose status says the request failed (raise_for_status):
/// what(): "GET http://host/path: 404 Not Found".
class status_error : public coring::error {
 public:
  status_error(int status, const std::string& method, const std::string& url, const std::string& reason)
      : error(method + " " + url + ": " + std::to_string(status) + (reason.empty() ? "" : " " + reason)),
        status_(status),
        method_(method),
        url_(url) {}
  /// The response's status code.
  [[nodiscard]] int status() const noexcept { return status_; }
  /// The request's method.
  [[nodiscard]] const std::string& method() const noexcept { return method_; }
  /// The request's URL.
  [[nodiscard]] const std::string& url() const noexcept { return url_; }

 private:
  int status_;
  std::string method_;
  std::string url_;
};

}  // namespace coring::http
