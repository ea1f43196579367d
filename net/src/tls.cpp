#include <coring/net/tls.hpp>

#include "tls_record_layer.hpp"

#include <coring/detail/assert.hpp>
#include <coring/detail/duration.hpp>
#include <coring/error.hpp>
#include <coring/mutex.hpp>

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <cerrno>
#include <chrono>
#include <mutex>
#include <unordered_map>
#include <utility>

namespace coring::net {

namespace detail {

/// What tls_context shares between its copies.
struct tls_context_state {
  tls_context_state() = default;
  tls_context_state(const tls_context_state&) = delete;
  tls_context_state& operator=(const tls_context_state&) = delete;
  ~tls_context_state() {
    for (auto& [key, session] : sessions) SSL_SESSION_free(session);
    SSL_CTX_free(ctx);
  }

  SSL_CTX* ctx = nullptr;  // OpenSSL's context
  bool server = false;     // made by tls_context::server
  std::string alpn_wire;   // a server's ALPN list in wire format (length-prefixed names)
  std::mutex mutex;        // guards sessions: connections of several threads may share the context
  std::unordered_map<std::string, SSL_SESSION*> sessions;  // a client's last session per "host:port" (one reference each)
};

/// The state of one tls_stream, on the heap so that in-flight ring
/// operations (which point at `tcp`) survive moves of the stream.
class tls_connection {
 public:
  tls_connection(std::shared_ptr<tls_context_state> c, tcp_stream t, std::string n)
      : context(std::move(c)), records(context->ctx, context->server), tcp(std::move(t)), name(std::move(n)) {
    SSL_set_app_data(records.ssl(), this);
  }

  std::shared_ptr<tls_context_state> context;  // keeps the SSL_CTX (and the session cache) alive
  tls_record_layer records;                    // the protocol; never touches the socket
  tcp_stream tcp;                              // moves the ciphertext through the ring
  std::string name;                            // "host:port" or the peer address, for messages
  std::string host;                            // what a client connects to (resolved by tcp_stream::connect)
  std::string session_key;                     // a client's cache key ("host:port"); empty: no caching
  coring::mutex write_lock;  // held while ciphertext is being sent: by a write, or by a read that must send
  bool established = false;    // the handshake finished
  bool write_broken = false;   // a send failed or was cancelled part-way: records may be cut, write no more
  bool ended = false;          // a read saw the end of the stream
  bool truncated = false;      // ... without the peer's close_notify
};

}  // namespace detail

namespace {

using detail::tls_connection;
using detail::tls_context_state;
using detail::tls_record_layer;
using result = tls_record_layer::result;
using clock = std::chrono::steady_clock;

std::string target_name(const std::string& host, std::uint16_t port) {
  if (host.find(':') != std::string::npos && !host.starts_with('[')) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

bool is_ip_literal(const std::string& name) {
  unsigned char buf[16];
  std::string bare = name;
  if (bare.size() > 2 && bare.front() == '[' && bare.back() == ']') bare = bare.substr(1, bare.size() - 2);
  return ::inet_pton(AF_INET, bare.c_str(), buf) == 1 || ::inet_pton(AF_INET6, bare.c_str(), buf) == 1;
}

int version_of(tls_version v) { return v == tls_version::tls1_3 ? TLS1_3_VERSION : TLS1_2_VERSION; }

std::string alpn_wire(const std::vector<std::string>& names) {
  std::string wire;
  for (const std::string& n : names) {
    if (n.empty() || n.size() > 255) throw tls_error("ALPN protocol \"" + n + "\": names are 1 to 255 bytes long");
    wire += static_cast<char>(n.size());
    wire += n;
  }
  return wire;
}

// A server picks the first protocol of its own list that the client offers.
int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned int inlen,
                void* arg) {
  auto* state = static_cast<tls_context_state*>(arg);
  unsigned char* chosen = nullptr;
  const auto* ours = reinterpret_cast<const unsigned char*>(state->alpn_wire.data());
  if (SSL_select_next_proto(&chosen, outlen, ours, static_cast<unsigned>(state->alpn_wire.size()), in, inlen) !=
      OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK;
  *out = chosen;
  return SSL_TLSEXT_ERR_OK;
}

// OpenSSL hands a client each session (TLS 1.3: each ticket) it may resume;
// keep the newest per host and port. A C callback: nothing may be thrown out.
int keep_session(SSL* ssl, SSL_SESSION* session) noexcept {
  auto* c = static_cast<tls_connection*>(SSL_get_app_data(ssl));
  if (!c || c->session_key.empty()) return 0;
  tls_context_state& state = *c->context;
  try {
    std::lock_guard lock(state.mutex);
    auto it = state.sessions.find(c->session_key);
    if (it != state.sessions.end()) {
      SSL_SESSION_free(it->second);
      it->second = session;
    } else {
      if (state.sessions.size() >= 1024) {  // bounded: drop one at random
        SSL_SESSION_free(state.sessions.begin()->second);
        state.sessions.erase(state.sessions.begin());
      }
      state.sessions.emplace(c->session_key, session);
    }
    return 1;  // we keep OpenSSL's reference
  } catch (...) {
    return 0;
  }
}

[[noreturn]] void throw_closed(const tls_connection* c, const char* verb) {
  throw io_error(EBADF, std::string(verb) + " " + (c ? c->name : std::string("a TLS stream")) + ": the stream is closed");
}

// What is left of the time before `deadline`, as io_options; throws the
// handshake's timeout_error when nothing is.
io_options left_until(clock::time_point deadline, const std::string& what, std::chrono::nanoseconds timeout) {
  if (deadline == clock::time_point::max()) return {};
  const auto left = deadline - clock::now();
  if (left <= std::chrono::nanoseconds::zero())
    throw timeout_error(what + ": timed out after " +
                        std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count()) + " ms");
  return {.timeout = left};
}

// Sends all queued ciphertext. The caller holds write_lock (or owns the
// stream alone, in the handshake), and marks the stream write_broken if this
// throws (including a cancellation that ends it before it starts): a
// failure part-way may leave a record half sent.
task<> flush(tls_connection& c, io_options o) {
  for (auto out = c.records.output(); !out.empty(); out = c.records.output()) {
    const std::size_t n = co_await c.tcp.write_all(out, o);
    c.records.sent(n);
  }
}

// The handshake's loop: advance, send what it queued, read what it waits for.
task<> handshake(tls_connection& c, clock::time_point deadline, std::chrono::nanoseconds timeout) {
  const std::string what = "TLS handshake with " + c.name;
  try {
    for (;;) {
      const result r = c.records.handshake();
      if (r == result::failed || r == result::closed) {
        const long verify = c.records.verify_result();
        std::string reason = r == result::closed ? std::string("the peer closed the connection") : c.records.failure();
        // Tell the peer why: OpenSSL has queued the alert. If it is already
        // gone there is nobody to tell.
        try {
          co_await flush(c, left_until(deadline, what, timeout));
        } catch (const coring::error&) {
        }
        throw tls_error(what + ": " + reason, verify);
      }
      if (c.records.has_output()) co_await flush(c, left_until(deadline, what, timeout));
      if (r == result::done) break;
      if (r == result::want_input) {
        std::span<std::byte> space = c.records.input_space();
        const std::size_t n = co_await c.tcp.read_some(space, left_until(deadline, what, timeout));
        if (n == 0) throw tls_error(what + ": the peer closed the connection during the handshake");
        c.records.received(n);
      }
    }
  } catch (const timeout_error&) {
    // A socket operation's own message names the read or the write; say it was the handshake.
    throw timeout_error(what + ": timed out after " +
                        std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count()) + " ms");
  }
  c.established = true;
}

task<std::size_t> read_some(tls_connection* c, std::span<std::byte> buffer, io_options o) {
  if (!c || !c->tcp.is_open()) throw_closed(c, "read from");
  if (buffer.empty()) co_return 0;
  for (;;) {
    if (c->ended) co_return 0;
    std::size_t n = 0;
    const result r = c->records.read(buffer, n);
    switch (r) {
      case result::done:
        co_return n;
      case result::closed:  // close_notify
        c->ended = true;
        co_return 0;
      case result::failed:
        throw tls_error("read from " + c->name + ": " + c->records.failure());
      case result::want_output: {  // the outgoing buffer is full: wait for the writer's turn
        auto lock = co_await c->write_lock.scoped_lock();
        try {
          co_await flush(*c, o);
        } catch (...) {
          c->write_broken = true;
          throw;
        }
        continue;
      }
      case result::want_input:
        break;
    }
    // A read that queued output (rare: OpenSSL 3 sends a key update's reply
    // with the next write) sends it now, unless a write is sending, which
    // sends everything queued before it ends.
    if (c->records.has_output() && !c->write_broken && c->write_lock.try_lock()) {
      coring::mutex_guard lock(c->write_lock, std::adopt_lock);
      try {
        co_await flush(*c, o);
      } catch (...) {
        c->write_broken = true;
        throw;
      }
    }
    std::span<std::byte> space = c->records.input_space();
    if (space.empty()) throw tls_error("read from " + c->name + ": the incoming buffer is full");  // cannot happen: a record is < 17 KiB
    const std::size_t got = co_await c->tcp.read_some(space, o);
    if (got == 0) {
      c->ended = true;
      c->truncated = true;
      co_return 0;
    }
    c->records.received(got);
  }
}

task<std::size_t> write(tls_connection* c, std::span<const std::byte> data, io_options o, bool all) {
  if (!c || !c->tcp.is_open()) throw_closed(c, "write to");
  if (data.empty()) co_return 0;
  auto lock = co_await c->write_lock.scoped_lock();
  if (c->write_broken)
    throw io_error(EPIPE, "write to " + c->name + " after a write that failed or was cancelled part-way");
  std::size_t done = 0;
  try {
    while (done < data.size()) {
      std::size_t n = 0;
      const result r = c->records.write(data.subspan(done), n);
      if (r == result::done) {
        done += n;
        if (!all) break;
      } else if (r == result::want_output) {
        co_await flush(*c, o);
      } else {
        // want_input: only a renegotiation would make a write read, and it is off.
        throw tls_error("write to " + c->name + ": " +
                        (r == result::failed ? c->records.failure() : std::string("the connection is shut down")));
      }
    }
    co_await flush(*c, o);
  } catch (...) {
    // Part of a record may be sent, or OpenSSL may hold one half written
    // that only a retry with the same bytes could finish: write no more.
    c->write_broken = true;
    throw;
  }
  co_return done;
}

task<> close(tls_connection* c, io_options o) {
  if (!c || !c->tcp.is_open()) co_return;
  struct closer {
    tls_connection* c;
    ~closer() { (void)c->tcp.close(); }
  } closes{c};
  if (!c->established || c->write_broken) co_return;
  if (c->records.shutdown() != result::done) {
    ERR_clear_error();
    co_return;
  }
  try {
    auto lock = co_await c->write_lock.scoped_lock();
    co_await flush(*c, o);
  } catch (const coring::error&) {
    // The peer is gone or stopped reading: there is nobody to tell.
  }
}

std::shared_ptr<tls_context_state> make_context(const tls_options& o, bool server) {
  auto state = std::make_shared<tls_context_state>();
  state->server = server;
  state->ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  if (!state->ctx) throw tls_error("create a TLS context: " + detail::openssl_reason());
  SSL_CTX* ctx = state->ctx;

  if (SSL_CTX_set_min_proto_version(ctx, version_of(o.min_version)) != 1 ||
      SSL_CTX_set_max_proto_version(ctx, version_of(o.max_version)) != 1)
    throw tls_error("set the TLS versions: " + detail::openssl_reason());
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
  // Partial writes: a write returns once some records are queued, so the
  // stream can send them and come back. Moving buffer: the retry of a write
  // that waited for room passes the same bytes from a new subspan.
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);

  // Trust.
  const bool checks_peer = server ? o.client_certificates != client_certificate::none : o.verify;
  if (!o.ca_file.empty() || !o.ca_dir.empty()) {
    if (SSL_CTX_load_verify_locations(ctx, o.ca_file.empty() ? nullptr : o.ca_file.c_str(),
                                      o.ca_dir.empty() ? nullptr : o.ca_dir.c_str()) != 1) {
      const std::string which = o.ca_file.empty() ? "CA directory " + o.ca_dir : "CA file " + o.ca_file;
      throw tls_error("load " + which + ": " + detail::openssl_reason());
    }
  } else if (checks_peer && SSL_CTX_set_default_verify_paths(ctx) != 1) {
    throw tls_error("load the system's CA certificates: " + detail::openssl_reason());
  }

  // Our own certificate.
  if (server && (o.cert_file.empty() || o.key_file.empty()))
    throw tls_error("a TLS server needs a certificate and its key (cert_file and key_file)");
  if (o.cert_file.empty() != o.key_file.empty())
    throw tls_error("a TLS certificate needs its key and a key its certificate (cert_file and key_file)");
  if (!o.cert_file.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx, o.cert_file.c_str()) != 1)
      throw tls_error("load certificate " + o.cert_file + ": " + detail::openssl_reason());
    if (SSL_CTX_use_PrivateKey_file(ctx, o.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
      const bool mismatch = ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH;
      throw tls_error((mismatch ? "key " + o.key_file + " does not match certificate " + o.cert_file
                                : "load key " + o.key_file) +
                      ": " + detail::openssl_reason());
    }
    if (SSL_CTX_check_private_key(ctx) != 1)
      throw tls_error("key " + o.key_file + " does not match certificate " + o.cert_file + ": " +
                      detail::openssl_reason());
  }

  // Checking the peer.
  if (server) {
    int mode = SSL_VERIFY_NONE;
    if (o.client_certificates == client_certificate::request) mode = SSL_VERIFY_PEER;
    if (o.client_certificates == client_certificate::require) mode = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(ctx, mode, nullptr);
    // Sessions (and tickets) resume only under the same context id; OpenSSL
    // refuses to resume without one once client certificates are asked for.
    static constexpr unsigned char id[] = "coring";
    SSL_CTX_set_session_id_context(ctx, id, sizeof id - 1);
  } else {
    SSL_CTX_set_verify(ctx, o.verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
  }

  // ALPN.
  if (!o.alpn.empty()) {
    std::string wire = alpn_wire(o.alpn);
    if (server) {
      state->alpn_wire = std::move(wire);
      SSL_CTX_set_alpn_select_cb(ctx, &select_alpn, state.get());
    } else if (SSL_CTX_set_alpn_protos(ctx, reinterpret_cast<const unsigned char*>(wire.data()),
                                       static_cast<unsigned>(wire.size())) != 0) {  // 0 is success here
      throw tls_error("set the ALPN protocols: " + detail::openssl_reason());
    }
  }

  // The client's session cache is ours (keyed by host and port, which
  // OpenSSL's internal client cache does not do).
  if (!server) {
    if (o.session_cache) {
      SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
      SSL_CTX_sess_set_new_cb(ctx, &keep_session);
    } else {
      SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    }
  }
  return state;
}

// Sets SNI, the name to check and a cached session on a client connection.
void prepare_client(tls_connection& c, const std::string& server_name, bool cache) {
  SSL* ssl = c.records.ssl();
  const bool ip = is_ip_literal(server_name);
  if (!server_name.empty() && !ip && SSL_set_tlsext_host_name(ssl, server_name.c_str()) != 1)
    throw tls_error("TLS server name " + server_name + ": " + detail::openssl_reason());
  if (SSL_get_verify_mode(ssl) != SSL_VERIFY_NONE && !server_name.empty()) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    std::string bare = server_name;
    if (ip && bare.front() == '[') bare = bare.substr(1, bare.size() - 2);
    const int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, bare.c_str())
                      : X509_VERIFY_PARAM_set1_host(param, bare.c_str(), bare.size());
    if (ok != 1) throw tls_error("TLS server name " + server_name + ": " + detail::openssl_reason());
  }
  if (!cache) return;
  c.session_key = c.name;
  tls_context_state& state = *c.context;
  std::lock_guard lock(state.mutex);
  auto it = state.sessions.find(c.session_key);
  if (it != state.sessions.end() && SSL_SESSION_is_resumable(it->second)) SSL_set_session(ssl, it->second);
}

bool caches_sessions(const tls_context_state& s) {
  return !s.server && (SSL_CTX_get_session_cache_mode(s.ctx) & SSL_SESS_CACHE_CLIENT) != 0;
}

}  // namespace

// ------------------------------------------------------------------ tls_context

tls_context tls_context::client(const tls_options& o) { return tls_context(make_context(o, false)); }
tls_context tls_context::server(const tls_options& o) { return tls_context(make_context(o, true)); }
bool tls_context::is_server() const noexcept { return state_->server; }
void* tls_context::native_handle() const noexcept { return state_->ctx; }
std::size_t tls_context::cached_sessions() const {
  std::lock_guard lock(state_->mutex);
  return state_->sessions.size();
}

// ------------------------------------------------------------------ tls_stream

tls_stream::tls_stream() noexcept = default;
tls_stream::tls_stream(std::unique_ptr<detail::tls_connection> c) noexcept : c_(std::move(c)) {}
tls_stream::tls_stream(tls_stream&&) noexcept = default;
tls_stream& tls_stream::operator=(tls_stream&&) noexcept = default;
tls_stream::~tls_stream() = default;

// The connection is made, and the client's names set, before the coroutine
// starts, so that the coroutines take only a pointer and plain values.
task<tls_stream> tls_stream::connect_to(std::unique_ptr<detail::tls_connection> c, std::uint16_t port,
                                        std::chrono::nanoseconds timeout) {
  const auto deadline = coring::detail::deadline_after(timeout);
  c->tcp = co_await tcp_stream::connect(c->host, port, {.timeout = timeout});
  co_await handshake(*c, deadline, timeout);
  co_return tls_stream(std::move(c));
}

task<tls_stream> tls_stream::handshake_over(std::unique_ptr<detail::tls_connection> c,
                                            std::chrono::nanoseconds timeout) {
  const auto deadline = coring::detail::deadline_after(timeout);
  co_await handshake(*c, deadline, timeout);
  co_return tls_stream(std::move(c));
}

task<tls_stream> tls_stream::connect(const tls_context& ctx, std::string host, std::uint16_t port,
                                     tls_connect_options o) {
  CORING_ASSERT(!ctx.is_server(), "tls_stream::connect needs a client context");
  const std::string checked = o.server_name.empty() ? host : std::string(o.server_name);
  auto c = std::make_unique<tls_connection>(ctx.state_, tcp_stream(), target_name(checked, port));
  prepare_client(*c, checked, caches_sessions(*ctx.state_));
  c->host = std::move(host);
  return connect_to(std::move(c), port, o.timeout);
}

task<tls_stream> tls_stream::connect(const tls_context& ctx, tcp_stream tcp, std::string server_name, io_options o) {
  CORING_ASSERT(!ctx.is_server(), "tls_stream::connect needs a client context");
  std::string name = server_name.empty() ? tcp.peer().to_string() : target_name(server_name, tcp.peer().port());
  auto c = std::make_unique<tls_connection>(ctx.state_, std::move(tcp), std::move(name));
  prepare_client(*c, server_name, caches_sessions(*ctx.state_) && !server_name.empty());
  return handshake_over(std::move(c), o.timeout);
}

task<tls_stream> tls_stream::accept(const tls_context& ctx, tcp_stream tcp, io_options o) {
  CORING_ASSERT(ctx.is_server(), "tls_stream::accept needs a server context");
  std::string name = tcp.peer().to_string();
  auto c = std::make_unique<tls_connection>(ctx.state_, std::move(tcp), std::move(name));
  return handshake_over(std::move(c), o.timeout);
}

task<std::size_t> tls_stream::read_some(std::span<std::byte> buffer, io_options o) {
  return net::read_some(c_.get(), buffer, o);
}
task<std::size_t> tls_stream::write_some(std::span<const std::byte> data, io_options o) {
  return write(c_.get(), data, o, false);
}
task<std::size_t> tls_stream::write_all(std::span<const std::byte> data, io_options o) {
  return write(c_.get(), data, o, true);
}
task<> tls_stream::close(io_options o) { return net::close(c_.get(), o); }

bool tls_stream::is_open() const noexcept { return c_ && c_->tcp.is_open(); }
bool tls_stream::truncated() const noexcept { return c_ && c_->truncated; }
std::string_view tls_stream::alpn() const noexcept {
  if (!c_) return {};
  const unsigned char* p = nullptr;
  unsigned len = 0;
  SSL_get0_alpn_selected(c_->records.ssl(), &p, &len);
  return {reinterpret_cast<const char*>(p), len};
}
std::string_view tls_stream::version() const noexcept { return c_ ? SSL_get_version(c_->records.ssl()) : ""; }
std::string_view tls_stream::cipher() const noexcept {
  if (!c_) return {};
  const char* name = SSL_get_cipher_name(c_->records.ssl());
  return name ? name : "";
}
bool tls_stream::session_reused() const noexcept { return c_ && SSL_session_reused(c_->records.ssl()) == 1; }
std::string tls_stream::peer_subject() const {
  if (!c_) return {};
  X509* cert = SSL_get0_peer_certificate(c_->records.ssl());
  if (!cert) return {};
  BIO* out = BIO_new(BIO_s_mem());
  if (!out) throw std::bad_alloc();
  X509_NAME_print_ex(out, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  const long len = BIO_get_mem_data(out, &data);
  std::string s(data, static_cast<std::size_t>(len > 0 ? len : 0));
  BIO_free(out);
  return s;
}
const address& tls_stream::peer() const noexcept {
  static const address none;
  return c_ ? c_->tcp.peer() : none;
}
void* tls_stream::native_handle() const noexcept { return c_ ? c_->records.ssl() : nullptr; }

}  // namespace coring::net
