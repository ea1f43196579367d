#include "tls_record_layer.hpp"

#include <coring/net/error.hpp>

#include <openssl/err.h>
#include <openssl/x509.h>

#include <cstring>
#include <limits>

namespace coring::net::detail {

namespace {
int clamp(std::size_t n) noexcept {
  return n > static_cast<std::size_t>(std::numeric_limits<int>::max()) ? std::numeric_limits<int>::max()
                                                                         : static_cast<int>(n);
}
}  // namespace

std::string openssl_reason(const char* fallback) {
  const unsigned long first = ERR_get_error();
  ERR_clear_error();
  if (first == 0) return fallback;
  if (ERR_SYSTEM_ERROR(first)) return std::strerror(static_cast<int>(ERR_GET_REASON(first)));
  if (const char* r = ERR_reason_error_string(first)) return r;
  char buf[256];
  ERR_error_string_n(first, buf, sizeof buf);
  return buf;
}

tls_record_layer::tls_record_layer(SSL_CTX* ctx, bool server) {
  ssl_ = SSL_new(ctx);
  BIO* inner = nullptr;
  if (!ssl_ || BIO_new_bio_pair(&inner, buffer_size, &network_, buffer_size) != 1) {
    std::string why = openssl_reason("out of memory");
    SSL_free(ssl_);
    throw tls_error("create a TLS connection: " + why);
  }
  SSL_set_bio(ssl_, inner, inner);  // one reference each way, both taken by the SSL
  if (server) {
    SSL_set_accept_state(ssl_);
  } else {
    SSL_set_connect_state(ssl_);
  }
}

tls_record_layer::~tls_record_layer() {
  SSL_free(ssl_);
  BIO_free(network_);
}

tls_record_layer::result tls_record_layer::classify(int ret) noexcept {
  switch (SSL_get_error(ssl_, ret)) {
    case SSL_ERROR_NONE:
      return result::done;
    case SSL_ERROR_WANT_READ:
      return result::want_input;
    case SSL_ERROR_WANT_WRITE:
      return result::want_output;
    case SSL_ERROR_ZERO_RETURN:
      return result::closed;
    default:
      return result::failed;
  }
}

tls_record_layer::result tls_record_layer::handshake() noexcept {
  ERR_clear_error();
  const int r = SSL_do_handshake(ssl_);
  return r == 1 ? result::done : classify(r);
}

tls_record_layer::result tls_record_layer::read(std::span<std::byte> out, std::size_t& n) noexcept {
  ERR_clear_error();
  n = 0;
  const int r = SSL_read_ex(ssl_, out.data(), out.size(), &n);
  return r == 1 ? result::done : classify(r);
}

tls_record_layer::result tls_record_layer::write(std::span<const std::byte> in, std::size_t& n) noexcept {
  ERR_clear_error();
  n = 0;
  const int r = SSL_write_ex(ssl_, in.data(), in.size(), &n);
  return r == 1 ? result::done : classify(r);
}

tls_record_layer::result tls_record_layer::shutdown() noexcept {
  ERR_clear_error();
  const int r = SSL_shutdown(ssl_);
  // 0: our close_notify is queued and the peer's has not come; we do not wait for it.
  return r >= 0 ? result::done : classify(r);
}

std::span<std::byte> tls_record_layer::input_space() noexcept {
  char* p = nullptr;
  const int n = BIO_nwrite0(network_, &p);
  if (n <= 0) return {};
  return {reinterpret_cast<std::byte*>(p), static_cast<std::size_t>(n)};
}

void tls_record_layer::received(std::size_t n) noexcept {
  char* p = nullptr;
  (void)BIO_nwrite(network_, &p, clamp(n));
}

std::span<const std::byte> tls_record_layer::output() noexcept {
  char* p = nullptr;
  const int n = BIO_nread0(network_, &p);
  if (n <= 0) return {};
  return {reinterpret_cast<const std::byte*>(p), static_cast<std::size_t>(n)};
}

void tls_record_layer::sent(std::size_t n) noexcept {
  char* p = nullptr;
  (void)BIO_nread(network_, &p, clamp(n));
}

bool tls_record_layer::has_output() const noexcept { return BIO_ctrl_pending(network_) > 0; }

long tls_record_layer::verify_result() const noexcept { return SSL_get_verify_result(ssl_); }

std::string tls_record_layer::failure() {
  const unsigned long first = ERR_peek_error();
  std::string reason = openssl_reason("the connection failed");
  const long v = verify_result();
  if (v != X509_V_OK && ERR_GET_LIB(first) == ERR_LIB_SSL && ERR_GET_REASON(first) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
    reason += ": ";
    reason += X509_verify_cert_error_string(v);
  }
  return reason;
}

}  // namespace coring::net::detail
