#pragma once
// The errors of coring::net, each a coring::error (one catch serves all):
//
//   try { auto s = co_await net::tcp_stream::connect("example.invalid", 80); }
//   catch (const net::dns_error& e) { ... }      // the name did not resolve
//   catch (const net::connect_error& e) { ... }  // every address refused
//   catch (const coring::timeout_error& e) { ... }
//
// Socket operations that fail after a connection exists throw coring::io_error
// ("read from 127.0.0.1:8080: Connection reset by peer"); end of stream is a
// value (a read of 0 bytes), never an exception.

#include <coring/error.hpp>

#include <string>
#include <system_error>

namespace coring::net {

/// A name did not resolve. what(): "resolve nonexistent.invalid: Name or service not known".
class dns_error : public coring::error {
 public:
  /// `host` that failed and getaddrinfo's reason (gai_strerror).
  dns_error(std::string host, std::string reason)
      : error("resolve " + host + ": " + reason), host_(std::move(host)), reason_(std::move(reason)) {}
  /// The name that was looked up.
  [[nodiscard]] const std::string& host() const noexcept { return host_; }
  /// Why it failed, as getaddrinfo said.
  [[nodiscard]] const std::string& reason() const noexcept { return reason_; }

 private:
  std::string host_;
  std::string reason_;
};

/// No address of a host accepted the connection.
/// what(): "connect to localhost:9: Connection refused (tried 127.0.0.1:9, [::1]:9)".
class connect_error : public coring::error {
 public:
  connect_error(int err, const std::string& target, const std::string& detail)
      : error("connect to " + target + ": " + std::system_category().message(err) + detail),
        code_(err, std::system_category()) {}
  /// The errno of the last attempt.
  [[nodiscard]] const std::error_code& code() const noexcept { return code_; }

 private:
  std::error_code code_;
};

/// A TLS operation failed: a context could not load its files, a handshake
/// was refused (a certificate check, an alert from the peer), or a record was
/// bad. what(): "TLS handshake with localhost:8443: certificate verify failed:
/// certificate has expired"; "load certificate /etc/x.pem: no start line".
class tls_error : public coring::error {
 public:
  /// `what` as above; `verify_result`: OpenSSL's X509_V_* code when a
  /// certificate check failed, else 0 (X509_V_OK).
  explicit tls_error(const std::string& what, long verify_result = 0) : error(what), verify_result_(verify_result) {}
  /// The X509_V_* code of the certificate check that failed; 0 if none did.
  [[nodiscard]] long verify_result() const noexcept { return verify_result_; }

 private:
  long verify_result_;
};

/// A buffered read hit its limit before it could finish (read_until past
/// `max`): the peer sent more than the caller allows. The bytes stay buffered.
class limit_error : public coring::error {
 public:
  using error::error;
};

}  // namespace coring::net
