#include <coring/http/client.hpp>

#include "http/client_state.hpp"
#include "http/inflater.hpp"

#include <coring/error.hpp>
#include <coring/file.hpp>
#include <coring/http/status.hpp>
#include <coring/net/error.hpp>
#include <coring/wait_for.hpp>

#include <algorithm>
#include <charconv>
#include <cstring>

namespace coring::http {

// ---------------------------------------------------------------- errors

const char* to_string(timeout_phase p) noexcept {
  switch (p) {
    case timeout_phase::total: return "total";
    case timeout_phase::connect: return "connect";
    case timeout_phase::read: return "read";
    case timeout_phase::pool: return "pool";
  }
  return "unknown";
}

namespace {
std::string describe_timeout(timeout_phase phase, std::chrono::nanoseconds limit) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(limit).count();
  const std::string n = std::to_string(ms) + " ms";
  switch (phase) {
    case timeout_phase::total: return "total timeout: the request took more than " + n;
    case timeout_phase::connect: return "connect timeout: no connection within " + n;
    case timeout_phase::read: return "read timeout: no data from the server for " + n;
    case timeout_phase::pool: return "pool timeout: no free connection in the pool within " + n;
  }
  return "timed out";
}
}  // namespace

timeout_error::timeout_error(const std::string& request, timeout_phase phase, std::chrono::nanoseconds limit)
    : coring::timeout_error(request + ": " + describe_timeout(phase, limit)), phase_(phase), limit_(limit) {}

// ---------------------------------------------------------------- request_body

request_body request_body::file(std::string path, std::string content_type) {
  request_body b;
  b.kind_ = kind::file;
  b.data_ = std::move(path);
  b.type_ = std::move(content_type);
  return b;
}

request_body request_body::json(const nlohmann::json& value) { return with_type(value.dump(), "application/json"); }

request_body request_body::form(const std::vector<std::pair<std::string, std::string>>& fields) {
  return with_type(build_query(fields), "application/x-www-form-urlencoded");
}

request_body request_body::with_type(std::string data, std::string content_type) {
  request_body b;
  b.kind_ = kind::bytes;
  b.data_ = std::move(data);
  b.type_ = std::move(content_type);
  return b;
}

namespace detail {

// ---------------------------------------------------------------- helpers

std::string describe_request(std::string_view method, const url& u) {
  std::string s;
  s.reserve(method.size() + u.host().size() + u.path().size() + u.query().size() + 24);
  s.append(method);
  s += ' ';
  s += u.scheme();
  s += "://";
  s += u.authority();
  s += u.path();
  if (u.has_query()) {
    s += '?';
    s += u.query();
  }
  return s;
}

void throw_timeout(std::string_view method, const url& u, timeout_phase phase, std::chrono::nanoseconds limit) {
  throw http::timeout_error(describe_request(method, u), phase, limit);
}

namespace {

constexpr std::string_view crlf = "\r\n";

bool idempotent(std::string_view method) noexcept {
  return method == "GET" || method == "HEAD" || method == "OPTIONS" || method == "TRACE" || method == "PUT" ||
         method == "DELETE";
}

bool is_token(std::string_view s) noexcept {
  if (s.empty()) return false;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
    if (!ok) return false;
  }
  return true;
}

bool safe_value(std::string_view s) noexcept {
  return s.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

std::string base64(std::string_view in) {
  static constexpr char table[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const unsigned v = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8) |
                       static_cast<unsigned char>(in[i + 2]);
    out += table[(v >> 18) & 63];
    out += table[(v >> 12) & 63];
    out += table[(v >> 6) & 63];
    out += table[v & 63];
  }
  if (i < in.size()) {
    unsigned v = static_cast<unsigned char>(in[i]) << 16;
    if (i + 1 < in.size()) v |= static_cast<unsigned char>(in[i + 1]) << 8;
    out += table[(v >> 18) & 63];
    out += table[(v >> 12) & 63];
    out += i + 1 < in.size() ? table[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

/// "timeout=5, max=100" → 5 s; max() when absent or unreadable.
std::chrono::nanoseconds keep_alive_timeout(std::string_view v) noexcept {
  const auto at = v.find("timeout=");
  if (at == std::string_view::npos) return std::chrono::nanoseconds::max();
  v.remove_prefix(at + 8);
  unsigned long seconds = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), seconds);
  if (ec != std::errc{} || seconds > 1'000'000) return std::chrono::nanoseconds::max();
  return std::chrono::seconds(seconds);
}

bool is_redirect(int status) noexcept {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

std::span<const std::byte> as_bytes(std::string_view s) noexcept { return std::as_bytes(std::span(s.data(), s.size())); }

}  // namespace

// ---------------------------------------------------------------- serialising

void client_state::serialize_head(connection& c, const prepared_request& r, std::uint64_t body_size,
                                  bool has_body) const {
  std::string& out = c.out;
  out.clear();
  out += r.method;
  out += ' ';
  out += r.url.path();
  if (r.url.has_query()) {
    out += '?';
    out += r.url.query();
  }
  out += " HTTP/1.1\r\nHost: ";
  out += r.url.authority();
  out += crlf;
  for (const auto& [name, value] : r.headers) {
    out += name;
    out += ": ";
    out += value;
    out += crlf;
  }
  if (!r.headers.contains("User-Agent") && !options.user_agent.empty()) {
    out += "User-Agent: ";
    out += options.user_agent;
    out += crlf;
  }
  if (!r.headers.contains("Accept")) out += "Accept: */*\r\n";
  if (options.auto_decompress && !r.headers.contains("Accept-Encoding")) out += "Accept-Encoding: gzip, deflate\r\n";
  if (!r.url.userinfo().empty() && !r.headers.contains("Authorization")) {
    out += "Authorization: Basic ";
    out += base64(percent_decode(r.url.userinfo()));
    out += crlf;
  }
  if (has_body) {
    if (!r.headers.contains("Content-Type") && !r.body.content_type().empty()) {
      out += "Content-Type: ";
      out += r.body.content_type();
      out += crlf;
    }
  }
  if (!r.headers.contains("Content-Length") && !r.headers.contains("Transfer-Encoding") &&
      (has_body || r.method == "POST" || r.method == "PUT" || r.method == "PATCH")) {
    char digits[24];
    auto [end, ec] = std::to_chars(digits, digits + sizeof digits, body_size);
    out += "Content-Length: ";
    out.append(digits, end);
    out += crlf;
  }
  out += crlf;
}

// ---------------------------------------------------------------- one exchange

task<slot> client_state::acquire(host_pool& h, bool fresh, const prepared_request& r, const deadlines& d) {
  slot s;
  if (pool.try_acquire(h, fresh, s)) co_return s;
  auto [limit, phase] = d.budget(d.limits.pool, timeout_phase::pool);
  if (limit == std::chrono::nanoseconds::max()) co_return co_await pool.wait(h, fresh);
  if (limit <= std::chrono::nanoseconds::zero()) throw_timeout(r.method, r.url, phase, d.limit_of(phase));
  auto waiting = [](detail::pool& p, host_pool& h, bool fresh) -> task<slot> { co_return co_await p.wait(h, fresh); };
  bool timed_out = false;
  try {
    s = co_await coring::wait_for(waiting(pool, h, fresh), limit);
  } catch (const coring::timeout_error&) {
    timed_out = true;
  }
  if (timed_out) throw_timeout(r.method, r.url, phase, d.limit_of(phase));
  co_return s;
}

task<std::unique_ptr<connection>> client_state::connect(host_pool& h, const prepared_request& r, const deadlines& d) {
  auto [limit, phase] = d.budget(d.limits.connect, timeout_phase::connect);
  if (limit <= std::chrono::nanoseconds::zero()) throw_timeout(r.method, r.url, phase, d.limit_of(phase));
  const parser_limits limits{.max_head_bytes = options.max_head_bytes, .max_headers = options.max_headers};
  std::string failure;
  std::error_code code;
  bool timed_out = false;
  try {
    if (h.scheme == "https") {
      if (!tls) tls.emplace(net::tls_context::client({.ca_file = options.tls.ca_file, .verify = options.tls.verify}));
      // The connect deadline covers DNS, TCP and the handshake together.
      net::tls_stream s = co_await net::tls_stream::connect(*tls, h.host, h.port, {.timeout = limit});
      ++counters.connections_opened;
      co_return std::make_unique<connection>(h, std::make_unique<stream_transport<net::tls_stream>>(std::move(s)),
                                             limits);
    }
    net::tcp_stream s = co_await net::tcp_stream::connect(h.host, h.port, {.timeout = limit});
    ++counters.connections_opened;
    co_return std::make_unique<connection>(h, std::move(s), limits);
  } catch (const net::tls_error& e) {
    failure = e.what();
  } catch (const net::dns_error& e) {
    failure = e.what();
  } catch (const net::connect_error& e) {
    failure = e.what();
    code = e.code();
  } catch (const coring::timeout_error&) {
    timed_out = true;
  } catch (const coring::io_error& e) {
    failure = e.what();
    code = e.code();
  }
  if (timed_out) throw_timeout(r.method, r.url, phase, d.limit_of(phase));
  throw http::connect_error(describe_request(r.method, r.url), failure, code);
}

task<> client_state::send_file_body(connection& c, const prepared_request& r, const deadlines& d,
                                    std::uint64_t size, bool& file_failed) {
  file_failed = true;  // until the file's operations are done
  coring::file f = co_await coring::file::open(r.body.data());
  std::unique_ptr<std::byte[]> chunk(new std::byte[connection::buffer_size]);
  std::uint64_t offset = 0;
  while (offset < size) {
    file_failed = true;
    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(connection::buffer_size, size - offset));
    const std::size_t n = co_await f.read_at(std::span(chunk.get(), want), offset);
    if (n == 0) throw coring::io_error(EIO, "read from " + r.body.data() + ": the file shrank while it was sent");
    file_failed = false;
    offset += n;
    auto [limit, phase] = d.budget(std::chrono::nanoseconds::max(), timeout_phase::total);
    const std::span<const std::byte> data(chunk.get(), n);
    if (auto* t = c.tcp()) {
      co_await t->write_all(data, {.timeout = limit});
    } else {
      co_await c.other()->write_all(data, {.timeout = limit});
    }
  }
  file_failed = false;  // a failed close of a file opened to read is of no consequence
  try {
    co_await f.close();
  } catch (const coring::io_error&) {
  }
}

task<bool> client_state::send_and_read_head(connection& c, const prepared_request& r, const deadlines& d) {
  // The head, and a small body with it in one write.
  std::uint64_t body_size = 0;
  const bool has_body = !r.body.empty();
  if (r.body.type() == request_body::kind::bytes) {
    body_size = r.body.data().size();
  } else if (r.body.type() == request_body::kind::file) {
    coring::file f = co_await coring::file::open(r.body.data());
    body_size = co_await f.size();
    co_await f.close();
  }
  serialize_head(c, r, body_size, has_body);
  const bool body_apart = r.body.type() == request_body::kind::bytes && body_size > 16 * 1024;
  if (r.body.type() == request_body::kind::bytes && !body_apart) c.out += r.body.data();

  bool received_any = false;
  bool closed_unanswered = false;
  bool file_failed = false;
  bool timed_out = false;
  timeout_phase timed_out_phase = timeout_phase::total;
  std::exception_ptr io_failure;
  try {
    {
      auto [limit, phase] = d.budget(std::chrono::nanoseconds::max(), timeout_phase::total);
      timed_out_phase = phase;
      if (auto* t = c.tcp()) {
        co_await t->write_all(as_bytes(c.out), {.timeout = limit});
      } else {
        co_await c.other()->write_all(as_bytes(c.out), {.timeout = limit});
      }
      if (body_apart) {
        if (auto* t = c.tcp()) {
          co_await t->write_all(as_bytes(r.body.data()), {.timeout = limit});
        } else {
          co_await c.other()->write_all(as_bytes(r.body.data()), {.timeout = limit});
        }
      } else if (r.body.type() == request_body::kind::file) {
        co_await send_file_body(c, r, d, body_size, file_failed);
      }
    }
    message_parser& p = c.parser;
    if (r.method == "HEAD") p.skip_body();
    for (;;) {
      const message_parser::step s = p.feed(c.buffered());
      c.consume(s.consumed);
      if (s.error != parse_error::none) {
        throw protocol_error(describe_request(r.method, r.url) + ": malformed response: " + p.error_reason());
      }
      if (s.headers_complete) {
        const int status = p.status();
        if (status == 101 || p.upgrade()) {
          throw protocol_error(describe_request(r.method, r.url) +
                               ": the server switched protocols (101), which was not asked for");
        }
        if (status >= 200) co_return true;
        // 1xx (100 Continue, 103 Early Hints): an interim response; the
        // final one follows on the same connection.
        continue;
      }
      if (s.message_complete) {  // the end of an interim response
        if (r.method == "HEAD") p.skip_body();
        continue;
      }
      // Needs more bytes.
      auto [limit, phase] = d.budget(d.limits.read, timeout_phase::read);
      timed_out_phase = phase;
      if (limit <= std::chrono::nanoseconds::zero()) {
        timed_out = true;
        break;
      }
      std::size_t n;
      if (auto* t = c.tcp()) {
        n = co_await t->read_some(c.free_space(), {.timeout = limit});
      } else {
        n = co_await c.other()->read_some(c.free_space(), {.timeout = limit});
      }
      if (n == 0) {
        if (!received_any && !p.in_message()) co_return false;  // closed before answering
        throw protocol_error(describe_request(r.method, r.url) +
                             ": the server closed the connection in the middle of the response's head");
      }
      received_any = true;
      c.received(n);
    }
  } catch (const http::timeout_error&) {
    throw;
  } catch (const coring::timeout_error&) {
    timed_out = true;
  } catch (const coring::io_error& e) {
    if (file_failed) throw;  // the body's file, named in the message
    // A reset before any byte of a response: the server had closed a
    // pooled connection (the caller may send again); otherwise the
    // exchange failed midway.
    if (!received_any && (e.code().value() == ECONNRESET || e.code().value() == EPIPE)) {
      closed_unanswered = true;
    } else {
      io_failure = std::current_exception();
    }
  } catch (const net::tls_error&) {
    io_failure = std::current_exception();  // a bad record or an alert from a TLS stream
  }
  if (closed_unanswered) co_return false;
  if (timed_out) throw_timeout(r.method, r.url, timed_out_phase, d.limit_of(timed_out_phase));
  try {
    std::rethrow_exception(io_failure);
  } catch (const coring::error& e) {
    throw protocol_error(describe_request(r.method, r.url) + ": the connection failed: " + e.what());
  }
}

task<client_response> client_state::exchange(prepared_request& r, const deadlines& d) {
  host_pool& h = pool.host_for(r.url);
  const bool may_repeat = idempotent(r.method);
  bool fresh = false;
  for (;;) {
    slot s = co_await acquire(h, fresh, r, d);
    if (s.conn && !may_repeat && s.conn->looks_closed()) continue;  // never send it twice: check first
    if (!s.conn) s.conn = co_await connect(h, r, d);
    connection& c = *s.conn;
    const bool reused = c.requests++ > 0;
    ++counters.requests;
    if (reused) ++counters.reused;
    const bool answered = co_await send_and_read_head(c, r, d);
    if (!answered) {
      if (reused && may_repeat && !fresh) {
        fresh = true;  // once, on a new connection
        ++counters.retries;
        continue;      // `s` closes the stale one
      }
      throw protocol_error(describe_request(r.method, r.url) +
                           ": the server closed the connection without sending a response");
    }

    message_parser& p = c.parser;
    client_response resp;
    resp.status_ = p.status();
    resp.reason_ = p.reason();
    resp.headers_ = std::move(p.header_fields());
    resp.content_length_ = p.content_length();
    resp.url_ = r.url;
    resp.method_ = r.method;
    resp.client_ = this;
    resp.deadline_ = d.total_deadline;
    resp.total_limit_ = d.limits.total;
    resp.read_limit_ = d.limits.read;
    resp.max_body_ = r.max_body_size;
    resp.max_decoded_ = options.max_decompressed_size;
    if (auto ka = resp.headers_.get("Keep-Alive")) c.keep_alive_limit = keep_alive_timeout(*ka);

    // A body known to be empty ends now, so that the connection goes back
    // at once even if nobody reads it.
    const bool no_body = r.method == "HEAD" || resp.status_ == 204 || resp.status_ == 304 ||
                         (resp.content_length_ && *resp.content_length_ == 0 && !p.chunked());
    if (no_body) {
      const message_parser::step s2 = p.feed(c.buffered());
      c.consume(s2.consumed);
      if (s2.message_complete || r.method == "HEAD") {
        s.release(p.keep_alive() && c.buffered().empty() && s2.error == parse_error::none);
        co_return resp;
      }
    }
    if (options.auto_decompress) {
      if (auto enc = resp.headers_.get("Content-Encoding")) {
        if (iequals(*enc, "gzip") || iequals(*enc, "x-gzip")) {
          resp.decoder_.reset(new inflater(inflater::format::gzip));
        } else if (iequals(*enc, "deflate")) {
          resp.decoder_.reset(new inflater(inflater::format::deflate));
        }
      }
    }
    resp.conn_ = s.take().release();
    resp.complete_ = false;
    co_return resp;
  }
}

// ---------------------------------------------------------------- the request

task<client_response> client_state::run(std::unique_ptr<prepared_request> owned) {
  // The request comes by pointer: g++ 12 has copied a by-value class
  // parameter of a coroutine bitwise when the call sat in a co_await
  // expression of the caller, leaving its strings pointing at the caller's frame.
  prepared_request& r = *owned;
  deadlines d;
  d.limits = r.timeout;
  d.total_deadline = coring::detail::deadline_after(r.timeout.total);
  std::vector<url> history;
  for (int hops = 0;; ++hops) {
    client_response resp = co_await exchange(r, d);
    const auto location = resp.headers().get("Location");
    if (!r.allow_redirects || !is_redirect(resp.status()) || !location) {
      resp.history_ = std::move(history);
      co_return resp;
    }
    url next;
    std::string bad;
    try {
      next = r.url.resolve(*location);
    } catch (const url_error& e) {
      bad = e.what();
    }
    if (!bad.empty()) throw redirect_error(describe_request(r.method, r.url) + ": cannot follow the redirect: " + bad);
    if (next.scheme() != "http" && next.scheme() != "https") {
      throw redirect_error(describe_request(r.method, r.url) + ": cannot follow a redirect to " + next.scheme() +
                           " (" + next.to_string() + "): only http and https");
    }
    if (hops >= r.max_redirects) {
      throw redirect_error(describe_request(r.method, r.url) + ": more than " + std::to_string(r.max_redirects) +
                           " redirects (the last to " + next.to_string() + ")");
    }
    // Read what is left of a small body, so that the connection goes back to the pool.
    std::uint64_t drained = 0;
    std::exception_ptr drain_failed;
    try {
      while (!resp.body_complete() && drained < 64 * 1024) {
        if (!resp.taken_) resp.take_body();
        const auto piece = co_await resp.next_piece();
        if (piece.empty()) break;
        drained += piece.size();
      }
    } catch (const http::timeout_error&) {
      drain_failed = std::current_exception();  // deadlines are the request's: they end it
    } catch (const coring::error&) {
      // The redirect's own body was bad; the next request does not need it.
    }
    if (drain_failed) std::rethrow_exception(drain_failed);
    resp.release();

    const int status = resp.status();
    if ((status == 303 && r.method != "HEAD") || ((status == 301 || status == 302) && r.method == "POST")) {
      r.method = "GET";
      r.body = request_body();
      r.headers.remove("Content-Length");
      r.headers.remove("Content-Type");
      r.headers.remove("Transfer-Encoding");
    }
    if (next.origin() != r.url.origin()) r.headers.remove("Authorization");
    history.push_back(std::move(r.url));
    r.url = std::move(next);
  }
}

}  // namespace detail

// ---------------------------------------------------------------- client

client::client(client_options o) : state_(std::make_unique<detail::client_state>(std::move(o))) {}

client::~client() {
  CORING_ASSERT(state_->pool.open() == state_->pool.idle(),
                "an http::client was destroyed with a request in flight or a response body unread");
}

task<client_response> client::request(std::string_view method, std::string_view text, request_options o) {
  return request(method, url::parse(text), std::move(o));
}

task<client_response> client::request(std::string_view method, const url& u, request_options o) {
  if (u.scheme() != "http" && u.scheme() != "https") {
    throw url_error(u.to_string(), "the scheme must be http or https, not '" + u.scheme() + "'");
  }
  if (u.host().empty()) throw url_error(u.to_string(), "no host");
  if (!detail::is_token(method)) throw coring::error("http::client: '" + std::string(method) + "' is not a method");
  const client_options& so = state_->options;
  detail::prepared_request r;
  r.method = std::string(method);
  r.url = u;
  if (!o.query.empty()) {
    std::string q = u.query();
    if (!q.empty()) q += '&';
    q += build_query(o.query);
    r.url = u.resolve("?" + q);
  }
  for (const auto& [name, value] : o.headers) {
    if (!detail::is_token(name) || !detail::safe_value(value)) {
      throw coring::error(detail::describe_request(method, u) + ": the header field '" + name +
                          "' has a bad name, or CR, LF or NUL in its value");
    }
  }
  r.headers = std::move(o.headers);
  for (const auto& [name, value] : so.headers) {
    if (!r.headers.contains(name)) r.headers.add(name, value);
  }
  if (o.json) {
    r.body = request_body::json(*o.json);
  } else {
    r.body = std::move(o.body);
  }
  r.timeout = o.timeout ? *o.timeout : so.timeout;
  r.allow_redirects = o.allow_redirects.value_or(so.allow_redirects);
  r.max_redirects = o.max_redirects.value_or(so.max_redirects);
  r.max_body_size = o.max_body_size.value_or(so.max_body_size);
  return state_->run(std::make_unique<detail::prepared_request>(std::move(r)));
}

task<> client::close() {
  state_->pool.close_idle();
  co_return;
}

const client_options& client::options() const noexcept { return state_->options; }

client_statistics client::stats() const noexcept {
  client_statistics s = state_->counters;
  s.open = state_->pool.open();
  s.idle = state_->pool.idle();
  s.waiting = state_->pool.waiting();
  return s;
}

}  // namespace coring::http
