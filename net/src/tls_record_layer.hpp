#pragma once
// detail::tls_record_layer: the TLS protocol of one connection, with the
// socket left out. Internal; the seam where kernel TLS would go.
//
// tls.cpp's coroutines move bytes between the socket and this class only
// through four calls: input_space()/received() for ciphertext read from the
// socket, output()/sent() for ciphertext to write to it. Everything else
// (handshake, read, write, shutdown) is a synchronous call that never
// blocks and says what it needs next. OpenSSL sits on a BIO pair whose two
// fixed buffers (buffer_size each way) belong to this object, so the ring
// reads straight into the incoming one and writes straight out of the
// outgoing one: no copy and no allocation per operation.
//
// A kernel-TLS variant (setsockopt(TCP_ULP, "tls") once the handshake is
// done, keys from OpenSSL) would be a second implementation of this class
// whose input and output carry plaintext after the handshake, passed
// through by read/write; the coroutines above keep their shape.

#include <openssl/ssl.h>

#include <cstddef>
#include <span>
#include <string>

namespace coring::net::detail {

class tls_record_layer {
 public:
  /// What a call needs before it can go on, or how it ended.
  enum class result {
    done,         ///< finished
    want_input,   ///< needs ciphertext from the peer (received())
    want_output,  ///< its outgoing buffer is full: send output() first
    closed,       ///< the peer sent close_notify
    failed,       ///< a protocol or certificate failure: see failure()
  };

  /// Bytes of each of the two ciphertext buffers (incoming, outgoing).
  static constexpr std::size_t buffer_size = 65536;

  /// A connection of `ctx`, client or server. **Errors:** tls_error (no memory).
  tls_record_layer(SSL_CTX* ctx, bool server);
  ~tls_record_layer();
  tls_record_layer(const tls_record_layer&) = delete;
  tls_record_layer& operator=(const tls_record_layer&) = delete;

  /// Advances the handshake.
  result handshake() noexcept;
  /// Decrypts into `out`; `n` is set to the bytes given when done.
  result read(std::span<std::byte> out, std::size_t& n) noexcept;
  /// Encrypts from `in` (at least one record when done; `n` bytes taken).
  /// After want_output, call again with the same bytes (they may have moved).
  result write(std::span<const std::byte> in, std::size_t& n) noexcept;
  /// Queues close_notify.
  result shutdown() noexcept;

  /// Where ciphertext read from the socket goes (contiguous; may be empty when full).
  std::span<std::byte> input_space() noexcept;
  /// `n` bytes were written into input_space().
  void received(std::size_t n) noexcept;
  /// Ciphertext waiting to be sent (a contiguous part of it; empty: none).
  std::span<const std::byte> output() noexcept;
  /// `n` bytes of output() went to the socket.
  void sent(std::size_t n) noexcept;
  /// True if any ciphertext waits to be sent.
  [[nodiscard]] bool has_output() const noexcept;

  /// Why the last call failed, from OpenSSL's error queue (taken off it):
  /// OpenSSL's reason, and for a certificate check the check that failed
  /// ("certificate verify failed: certificate has expired").
  [[nodiscard]] std::string failure();
  /// The certificate check's X509_V_* result (0: passed or not done).
  [[nodiscard]] long verify_result() const noexcept;
  [[nodiscard]] SSL* ssl() const noexcept { return ssl_; }

 private:
  result classify(int ret) noexcept;

  SSL* ssl_ = nullptr;      // the connection; owns the BIO pair's inner half
  BIO* network_ = nullptr;  // the pair's outer half: the ring's side
};

/// OpenSSL's reason for the oldest error on this thread's queue, which is
/// emptied; `fallback` if it holds none.
std::string openssl_reason(const char* fallback = "unknown failure");

}  // namespace coring::net::detail
