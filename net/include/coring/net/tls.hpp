#pragma once
// TLS on OpenSSL 3: net::tls_context (the settings many connections share:
// trust, certificate, ALPN, versions, the client's session cache) and
// net::tls_stream (one encrypted connection over a tcp_stream; a
// net::byte_stream, so buffered_reader/writer and HTTP use it unchanged).
//
//   auto ctx = net::tls_context::client();                        // system CAs, verify on
//   auto s = co_await net::tls_stream::connect(ctx, "example.com", 443, {.timeout = 5s});
//   co_await s.write_all(request);
//   std::size_t n = co_await s.read_some(buf);                    // 0: end of stream
//   co_await s.close();                                           // sends close_notify
//
//   auto server = net::tls_context::server({.cert_file = "cert.pem", .key_file = "key.pem"});
//   auto conn = co_await net::tls_stream::accept(server, co_await listener.accept(), {.timeout = 5s});
//
// OpenSSL never touches the socket: it works on a BIO pair whose buffers
// the stream owns, and the ciphertext moves through the ring by the
// tcp_stream's own reads and writes, at most one in flight per direction.
// Reads and writes allocate nothing beyond OpenSSL's own (its buffers are
// kept for the life of the connection).
//
// Thread safety: a tls_context may be shared by connections on any threads
// (its session cache takes a lock); a tls_stream is used on the loop thread
// that runs its operations, with at most one read and one write in flight.

#include <coring/net/address.hpp>
#include <coring/net/byte_stream.hpp>
#include <coring/net/error.hpp>
#include <coring/net/tcp.hpp>
#include <coring/task.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace coring::net {

namespace detail {
struct tls_context_state;
class tls_connection;
}  // namespace detail

/// A protocol version, for tls_options' bounds.
enum class tls_version { tls1_2, tls1_3 };

/// What a server asks of its clients' certificates.
enum class client_certificate {
  none,     ///< asks for none
  request,  ///< asks; a client without one is let in, one with a bad one is refused
  require,  ///< asks, and refuses a client without a valid one
};

/// Settings of a tls_context. Paths are PEM files.
struct tls_options {
  /// Certificates to trust (a PEM file of one or more). Empty with an empty
  /// ca_dir: the system store (Debian's ca-certificates).
  std::string ca_file{};
  /// A directory of trusted certificates in OpenSSL's hashed layout (c_rehash).
  std::string ca_dir{};
  /// Check the peer's certificate: chain, dates and, for clients, the host
  /// name. Off only for tests against peers nobody can vouch for.
  bool verify = true;
  /// Our certificate chain (leaf first), for servers and for client certificates.
  std::string cert_file{};
  /// The private key of cert_file.
  std::string key_file{};
  /// Application protocols offered (client) or accepted (server), in order of
  /// preference: {"h2", "http/1.1"}. Empty: no ALPN.
  std::vector<std::string> alpn{};
  /// The oldest protocol version allowed.
  tls_version min_version = tls_version::tls1_2;
  /// The newest protocol version allowed.
  tls_version max_version = tls_version::tls1_3;
  /// Clients: keep sessions per host and port and offer them again, so that
  /// a later connection to the same server resumes (a shorter handshake).
  bool session_cache = true;
  /// Servers: whether to ask clients for a certificate (verified against
  /// ca_file / ca_dir).
  client_certificate client_certificates = client_certificate::none;
};

/// Shared settings of TLS connections (an OpenSSL SSL_CTX). Cheap to copy:
/// copies share one context and one session cache.
class tls_context {
 public:
  /// The settings of a client. **Errors:** net::tls_error naming the file
  /// and OpenSSL's reason ("load CA file /x.pem: No such file or directory").
  [[nodiscard]] static tls_context client(const tls_options& o = {});
  /// The settings of a server. **Errors:** net::tls_error as client(), and
  /// when cert_file or key_file is missing or they do not match.
  [[nodiscard]] static tls_context server(const tls_options& o);

  /// True for a server context.
  [[nodiscard]] bool is_server() const noexcept;
  /// Sessions the client cache holds now.
  [[nodiscard]] std::size_t cached_sessions() const;
  /// The OpenSSL SSL_CTX* (as void*), for settings this class does not offer.
  [[nodiscard]] void* native_handle() const noexcept;

 private:
  explicit tls_context(std::shared_ptr<detail::tls_context_state> s) noexcept : state_(std::move(s)) {}
  friend class tls_stream;
  std::shared_ptr<detail::tls_context_state> state_;  // the SSL_CTX and the session cache
};

/// Settings of tls_stream::connect.
struct tls_connect_options {
  /// The whole connect — resolving, the TCP connect and the handshake — ends
  /// with coring::timeout_error after this long. max(): no limit.
  std::chrono::nanoseconds timeout = std::chrono::nanoseconds::max();
  /// The name sent as SNI and checked against the certificate, when it is
  /// not the host connected to. Empty: the host. Copied by connect() before
  /// it returns. (A view, not a std::string: g++ 12 moves a temporary
  /// aggregate holding a std::string bytewise into a coroutine frame when it
  /// appears in a co_await expression, breaking the string.)
  std::string_view server_name{};
};

/// One TLS connection over a tcp_stream (see the top of this header).
///
/// End of stream: read_some returns 0 both when the peer sent close_notify
/// and when it closed the TCP connection without one; truncated() tells
/// them apart, for callers to whom it matters (an HTTP body read to the end
/// of the connection).
///
/// **Cancellation:** every operation's ring read or write is cancelled and
/// the task gets coring::cancelled. A cancelled (or timed-out) read has
/// consumed nothing: the stream stays usable. A write, a close or a
/// handshake that is cancelled or fails may have sent part of a record, so
/// the stream can no longer write: later writes throw io_error, and close()
/// only closes the socket. A stream whose handshake failed is closed.
class tls_stream {
 public:
  /// A closed stream.
  tls_stream() noexcept;
  tls_stream(tls_stream&&) noexcept;
  tls_stream& operator=(tls_stream&&) noexcept;
  tls_stream(const tls_stream&) = delete;
  tls_stream& operator=(const tls_stream&) = delete;
  /// Closes the socket without close_notify (call close() for a clean end).
  /// **Requires:** no operation in flight.
  ~tls_stream();

  /// Connects to `host`:`port` (as tcp_stream::connect) and runs the client
  /// handshake: SNI and the name checked against the certificate are `host`
  /// (or o.server_name); a session cached for host:port is offered.
  /// **Cancellation:** the TCP connect or the handshake's read or write is
  /// cancelled in the ring and the socket closed. **Errors:** those of
  /// tcp_stream::connect; net::tls_error "TLS handshake with example.com:443:
  /// certificate verify failed: certificate has expired" (the check that
  /// failed, as OpenSSL's verify result says it), or OpenSSL's reason for
  /// other failures (an alert from the peer, no common version); io_error
  /// for a reset; coring::timeout_error "TLS connect to example.com:443:
  /// timed out after 5000 ms".
  [[nodiscard]] static task<tls_stream> connect(const tls_context& ctx, std::string host, std::uint16_t port,
                                                tls_connect_options o = {});
  /// Runs the client handshake over an open connection, checking the
  /// certificate against `server_name` (also sent as SNI unless it is an IP
  /// address; empty: no name check). `o.timeout` bounds the whole handshake.
  /// **Cancellation/Errors:** as above.
  [[nodiscard]] static task<tls_stream> connect(const tls_context& ctx, tcp_stream tcp, std::string server_name,
                                                io_options o = {});
  /// Runs the server handshake over an accepted connection. `o.timeout`
  /// bounds the whole handshake. **Cancellation:** as connect. **Errors:**
  /// net::tls_error "TLS handshake with 127.0.0.1:50312: ..." (a client
  /// certificate required and missing or invalid, no shared protocol or
  /// cipher, not TLS at all); io_error; coring::timeout_error.
  [[nodiscard]] static task<tls_stream> accept(const tls_context& ctx, tcp_stream tcp, io_options o = {});

  /// Decrypts at most buffer.size() bytes into `buffer`, reading ciphertext
  /// as needed; 0 at end of stream (see truncated()) or if `buffer` is empty.
  /// `{.timeout}` bounds each wait for the peer. **Cancellation:** the ring
  /// read is cancelled; nothing is lost and the stream stays usable.
  /// **Errors:** net::tls_error "read from 127.0.0.1:443: <OpenSSL's reason>"
  /// (a corrupt record, an alert); io_error; coring::timeout_error.
  /// **Requires:** no other read in flight.
  [[nodiscard]] task<std::size_t> read_some(std::span<std::byte> buffer, io_options o = {});
  /// Encrypts at least one byte of `data` (unless it is empty) and sends the
  /// records before returning how many bytes they held. **Cancellation:**
  /// the ring write is cancelled; the stream can no longer write.
  /// **Errors:** io_error "write to ...: Broken pipe"; net::tls_error;
  /// coring::timeout_error. **Requires:** no other write in flight.
  [[nodiscard]] task<std::size_t> write_some(std::span<const std::byte> data, io_options o = {});
  /// Encrypts and sends all of `data`. `{.timeout}` bounds each wait for
  /// progress. **Cancellation/Errors:** as write_some.
  [[nodiscard]] task<std::size_t> write_all(std::span<const std::byte> data, io_options o = {});
  /// Sends close_notify (when the stream can still write, and with
  /// `{.timeout}` bounding the send), then closes the socket. Does not wait
  /// for the peer's close_notify. A peer that is already gone is not an
  /// error. Idempotent. **Cancellation:** the socket is closed anyway.
  /// **Requires:** no read or write in flight.
  [[nodiscard]] task<> close(io_options o = {});

  /// True until close() (or a failed handshake).
  [[nodiscard]] bool is_open() const noexcept;
  /// True once a read saw the connection end without the peer's
  /// close_notify: what came before may have been cut short by an attacker
  /// or a crash.
  [[nodiscard]] bool truncated() const noexcept;
  /// The application protocol agreed with ALPN; empty if none.
  [[nodiscard]] std::string_view alpn() const noexcept;
  /// The protocol version in use: "TLSv1.3", "TLSv1.2".
  [[nodiscard]] std::string_view version() const noexcept;
  /// The cipher suite in use ("TLS_AES_256_GCM_SHA384").
  [[nodiscard]] std::string_view cipher() const noexcept;
  /// True if the handshake resumed a cached session.
  [[nodiscard]] bool session_reused() const noexcept;
  /// The subject of the peer's certificate, one line ("CN=client"); empty
  /// when the peer sent none (a client that was not asked).
  [[nodiscard]] std::string peer_subject() const;
  /// Who is at the other end.
  [[nodiscard]] const address& peer() const noexcept;
  /// The OpenSSL SSL* (as void*), for what this class does not offer.
  [[nodiscard]] void* native_handle() const noexcept;

 private:
  explicit tls_stream(std::unique_ptr<detail::tls_connection> c) noexcept;
  static task<tls_stream> connect_to(std::unique_ptr<detail::tls_connection> c, std::uint16_t port,
                                     std::chrono::nanoseconds timeout);
  static task<tls_stream> handshake_over(std::unique_ptr<detail::tls_connection> c, std::chrono::nanoseconds timeout);
  std::unique_ptr<detail::tls_connection> c_;  // the connection's state, on the heap so that it never moves
};

static_assert(byte_stream<tls_stream>);

}  // namespace coring::net
