#pragma once
// The errors of the HTTP client (<coring/http/client.hpp>), beside those of
// <coring/http/error.hpp> (url_error, protocol_error, status_error). Each is
// a coring::error, and each message names the request ("GET <url>: ...").
//
//   try {
//     auto resp = co_await session.get(url);
//     std::string page = co_await resp.text();
//   } catch (const http::timeout_error& e) {     // e.phase(): total, connect, read or pool
//   } catch (const http::connect_error& e) {     // DNS, refused, unreachable, TLS handshake
//   } catch (const http::protocol_error& e) {    // malformed or cut-short response; limit_error
//   } catch (const coring::error& e) {           // any of them
//   }
//
// aiohttp's names, for orientation: ClientConnectorError → connect_error,
// ServerTimeoutError / asyncio.TimeoutError → timeout_error,
// ClientPayloadError / ServerDisconnectedError → protocol_error,
// TooManyRedirects → redirect_error, ClientResponseError → status_error.

#include <coring/error.hpp>
#include <coring/http/error.hpp>

#include <chrono>
#include <string>
#include <system_error>

namespace coring::http {

/// The connection for a request could not be made: the name did not resolve,
/// every address refused, or (https) the TLS handshake failed. what():
/// "GET http://nonexistent.invalid/: cannot connect: resolve nonexistent.invalid:
/// Name or service not known".
class connect_error : public coring::error {
 public:
  /// `request` is "METHOD url"; `cause` says why; `code` is the errno, if any.
  connect_error(const std::string& request, const std::string& cause, std::error_code code = {})
      : error(request + ": cannot connect: " + cause), code_(code) {}
  /// The errno of the last attempt (empty for a DNS or TLS failure).
  [[nodiscard]] const std::error_code& code() const noexcept { return code_; }

 private:
  std::error_code code_;
};

/// Which deadline of a request passed (see http::timeouts).
enum class timeout_phase : unsigned char {
  total,    ///< the whole request, body included
  connect,  ///< resolving the name, connecting, the TLS handshake
  read,     ///< waiting for the next bytes of the response
  pool,     ///< waiting for a free connection in the pool
};

/// The name of a phase ("total", "connect", "read", "pool").
[[nodiscard]] const char* to_string(timeout_phase p) noexcept;

/// A deadline of a request passed. A coring::timeout_error, so a catch of
/// that serves too. what(): "GET http://127.0.0.1:8080/slow: read timeout: no
/// data from the server for 200 ms".
class timeout_error : public coring::timeout_error {
 public:
  timeout_error(const std::string& request, timeout_phase phase, std::chrono::nanoseconds limit);
  /// Which deadline it was.
  [[nodiscard]] timeout_phase phase() const noexcept { return phase_; }
  /// The limit that passed.
  [[nodiscard]] std::chrono::nanoseconds limit() const noexcept { return limit_; }

 private:
  timeout_phase phase_;
  std::chrono::nanoseconds limit_;
};

/// A redirect that cannot be followed: more than max_redirects of them, or
/// to a scheme other than http and https. what(): "GET http://a/: more than
/// 10 redirects (the last to http://a/loop)".
class redirect_error : public coring::error {
 public:
  using error::error;
};

/// A response went past a limit the client sets against hostile servers:
/// the body cap (client_options::max_body_size) or the decompressed-size cap
/// (max_decompressed_size). (Head limits, header bytes and count, are
/// protocol_errors too.) what(): "GET http://host/big: the body is larger
/// than 1048576 bytes (max_body_size)".
class limit_error : public protocol_error {
 public:
  using protocol_error::protocol_error;
};

}  // namespace coring::http
