#pragma once
// connection<Stream>: one HTTP/1.1 connection served by a server: reads
// requests (llhttp via message_parser), runs their handlers one at a time,
// writes the responses in order. Written against net::byte_stream (plus
// native_handle() for the sweeper's shutdown(2)), so that TLS streams can be
// served by the same code. Private to coring::net.

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <charconv>
#include <chrono>
#include <coring/detail/loop_access.hpp>
#include <coring/error.hpp>
#include <coring/event_loop.hpp>
#include <coring/http/date.hpp>
#include <coring/http/detail/message_parser.hpp>
#include <coring/http/status.hpp>
#include <coring/net/lent_buffer.hpp>
#include <coring/net/send_file.hpp>
#include <coring/net/socket_stream.hpp>
#include <cstdio>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

#include "server_state.hpp"

namespace coring::http::detail {

/// Serves one connection until it closes. Never throws (a cancellation included).
template <class Stream>
[[nodiscard]] task<> serve_connection(server_state& st, Stream stream);

inline std::span<const std::byte> as_bytes_of(std::string_view s) noexcept {
  return std::as_bytes(std::span(s.data(), s.size()));
}

inline void append_number(std::string& out, std::uint64_t v) {
  char buf[24];
  auto [p, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, p);
}

/// A byte range of a file response.
struct byte_range {
  std::uint64_t first = 0;
  std::uint64_t length = 0;
};
/// Parses a Range field against a file of `size` bytes: a single range
/// ("bytes=a-b", "bytes=a-", "bytes=-n"). nullopt: ignore it (malformed, or
/// several ranges); a range with length 0 and first == size: unsatisfiable (416).
std::optional<byte_range> parse_range(std::string_view field, std::uint64_t size) noexcept;
/// True if an If-None-Match list names `etag` (weak comparison) or is "*".
bool etag_matches(std::string_view list, std::string_view etag) noexcept;
/// Writes an access log line.
void log_access(const server_state& st, const request& req, int status, std::uint64_t bytes,
                std::chrono::steady_clock::duration took);
/// Reports a handler's exception to the loop's handler.
void report_handler_failure(std::exception_ptr e) noexcept;

template <class Stream>
class connection final : public body_source {
 public:
  connection(server_state& st, Stream& s) noexcept
      : st_(st), s_(s), limits_{st.options.max_head_bytes, st.options.max_headers} {
    link_.fd = s.native_handle();
    st_.link(link_);
  }
  ~connection() {
    give_back_buffer(out_);
    st_.unlink(link_);
  }
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  task<> run();

  task<std::string_view> read_body() override;
  [[nodiscard]] std::size_t max_body() const noexcept override { return st_.options.max_body_bytes; }

 private:
  static constexpr bool lends = requires(Stream & s) { s.read_lent(net::io_options{}); };
  static constexpr bool is_socket = std::is_base_of_v<net::socket_stream, Stream>;
  static constexpr std::size_t own_buffer_size = 16384;
  static constexpr std::size_t drain_limit =
      256 * 1024;  // unread body we read and drop to keep the connection

  class chunk_sink;

  void set_phase(phase p, std::chrono::nanoseconds timeout) noexcept {
    link_.current = p;
    link_.deadline_ns = coarse_now_ns() + static_cast<std::int64_t>(timeout.count());
  }
  void clear_phase() noexcept { link_.current = phase::none; }

  // The stream's read: into a lent buffer, or into one of our own.
  auto read_op() {
    if constexpr (lends) {
      in_.reset();
      return s_.read_lent();
    } else {
      if (!own_) own_ = std::make_unique<char[]>(own_buffer_size);
      return s_.read_some(std::as_writable_bytes(std::span(own_.get(), own_buffer_size)));
    }
  }
  // Takes what read_op gave; false at end of stream.
  bool took(net::lent_buffer b) noexcept {
    in_ = std::move(b);
    pending_ = in_.text();
    return took_some(pending_.size());
  }
  bool took(std::size_t n) noexcept {
    pending_ = std::string_view(own_.get(), n);
    return took_some(n);
  }
  bool took_some(std::size_t n) noexcept {
    st_.stats.bytes_received += n;
    if (n == 0) return false;
    if (link_.expired != phase::none) {
      // Data raced the sweeper's shutdown: serve it, then close.
      link_.expired = phase::none;
      close_after_ = true;
    }
    return true;
  }
  // Reads more input; false at end of stream or on a failed read (reset).
  task<bool> read_more(phase p, std::chrono::nanoseconds timeout) {
    set_phase(p, timeout);
    try {
      co_return took(co_await read_op());
    } catch (const io_error&) {
      co_return false;
    }
  }
  void release_input() noexcept {
    if constexpr (lends) in_.reset();
    pending_ = {};
  }

  // Sends out_ (and empties it); false if the client has gone or stalled.
  task<bool> flush() {
    if (out_.empty()) co_return true;
    set_phase(phase::writing, st_.options.write_timeout);
    try {
      co_await s_.write_all(as_bytes_of(out_));
    } catch (const io_error&) {
      note_write_failure();
      co_return false;
    }
    clear_phase();
    st_.stats.bytes_sent += out_.size();
    out_.clear();
    co_return true;
  }
  void note_write_failure() noexcept {
    if (link_.expired == phase::writing) {
      ++st_.stats.write_timeouts;
    } else {
      ++st_.stats.client_errors;
    }
  }

  void begin_out() {
    if (!holds_buffer(out_)) out_ = take_buffer();
  }
  void append_status_line(int status) {
    begin_out();
    if (status == 200) {
      out_ += st_.ok_head;
      out_ += date_field();
      return;
    }
    out_ += "HTTP/1.1 ";
    append_number(out_, static_cast<std::uint64_t>(status));
    out_ += ' ';
    out_ += reason_phrase(status);
    out_ += "\r\n";
    if (!st_.options.server_name.empty()) {
      out_ += "Server: ";
      out_ += st_.options.server_name;
      out_ += "\r\n";
    }
    out_ += date_field();
  }
  // The head of `r`: framing by `length` (Content-Length) or `chunked`.
  void append_head(int status, const response& r, std::optional<std::uint64_t> length, bool chunked) {
    append_status_line(status);
    if (!r.content_type().empty() && !r.headers().contains("Content-Type")) {
      out_ += "Content-Type: ";
      out_ += r.content_type();
      out_ += "\r\n";
    }
    if (length) {
      out_ += "Content-Length: ";
      append_number(out_, *length);
      out_ += "\r\n";
    }
    if (chunked) out_ += "Transfer-Encoding: chunked\r\n";
    if (close_after_) {
      out_ += "Connection: close\r\n";
    } else if (minor_ == 0) {
      out_ += "Connection: keep-alive\r\n";
    }
    for (const auto& [name, value] : r.headers()) {
      // The framing is ours alone.
      if (iequals(name, "Content-Length") || iequals(name, "Transfer-Encoding") ||
          iequals(name, "Connection"))
        continue;
      out_ += name;
      out_ += ": ";
      out_ += value;
      out_ += "\r\n";
    }
    out_ += "\r\n";
  }
  static bool bodiless(int status) noexcept { return status < 200 || status == 204 || status == 304; }
  void count_status(int status) noexcept {
    if (status >= 500) {
      ++st_.stats.responses_5xx;
    } else if (status >= 400) {
      ++st_.stats.responses_4xx;
    } else if (status >= 300) {
      ++st_.stats.responses_3xx;
    } else if (status >= 200) {
      ++st_.stats.responses_2xx;
    }
  }

  // Answers with an error status and a short body, then closes the way
  // that lets the client read it: our side first, then what it still sends.
  task<> fail_with(int status, std::string_view why, std::string_view allow = {}) {
    close_after_ = true;
    response r = response::text(std::string(reason_phrase(status)) + ": " + std::string(why) + "\n", status);
    if (!allow.empty()) r.header("Allow", std::string(allow));
    append_head(status, r, r.body().size(), false);
    out_ += r.body();
    count_status(status);
    if (!co_await flush()) co_return;
    co_await linger();
  }
  task<> linger() {
    if constexpr (requires(Stream & s) { s.shutdown_write(); }) {
      try {
        co_await s_.shutdown_write();
      } catch (const io_error&) {
        co_return;
      }
    }
    std::size_t drained = 0;
    while (drained < drain_limit) {
      if (pending_.empty() && !co_await read_more(phase::linger, st_.options.linger_timeout)) break;
      drained += pending_.size();
      release_input();
    }
  }

  task<response> dispatch(request& req);
  // Appends a response to out_, or sends it (files, streams); false if the client has gone.
  task<bool> send_response(request& req, response& r);
  // A response whose body is in memory: appended to out_ without a coroutine.
  void append_buffer_response(const response& r);
  task<bool> send_file_response(request& req, response& r);
  task<bool> send_stream_response(response& r);

  server_state& st_;
  Stream& s_;
  connection_link link_;
  parser_limits limits_;  // the server's limits on a head
  std::unique_ptr<message_parser>
      parser_;                   // from the thread's cache while a request is read and served; none when idle
  net::lent_buffer in_;          // input borrowed from the listener's pool (lending streams)
  std::unique_ptr<char[]> own_;  // input buffer of our own (other streams)
  std::string_view pending_;     // input not parsed yet (into in_ or own_)
  std::string out_;              // responses not sent yet (pipelined ones gather here)
  std::uint64_t body_seen_ = 0;  // body bytes of the current request
  int minor_ = 1;                // the current request's HTTP/1.x
  int body_error_ = 0;           // status a failed body read answered (400, 408, 413)
  bool head_only_ = false;       // the current request is a HEAD
  bool body_done_ = true;        // the current request's body has been read to its end
  bool expect_continue_ = false;  // it asked for 100-continue
  bool continue_sent_ = false;    // and we sent it
  bool client_gone_ = false;      // the client closed or reset mid-request
  bool close_after_ = false;      // close after the current response
};

// ---------------------------------------------------------------- reading a body

template <class Stream>
task<std::string_view> connection<Stream>::read_body() {
  if (body_error_ != 0) throw request_error(body_error_, "the request body could not be read");
  if (client_gone_) throw io_error(ECONNRESET, "read the request body: the client has gone");
  if (body_done_) co_return std::string_view();
  if (expect_continue_ && !continue_sent_) {
    continue_sent_ = true;
    begin_out();
    out_ += "HTTP/1.1 100 Continue\r\n\r\n";
    if (!co_await flush()) {
      client_gone_ = true;
      throw io_error(ECONNRESET, "send 100 Continue: the client has gone");
    }
  }
  bool need_input = false;
  for (;;) {
    // The parser is fed before any read, even with nothing: after the last
    // piece of a Content-Length body it ends the message without another byte.
    if (need_input) {
      if (!co_await read_more(phase::body, st_.options.body_timeout)) {
        close_after_ = true;
        if (link_.expired == phase::body) {
          ++st_.stats.body_timeouts;
          body_error_ = 408;
          throw request_error(408, "the request body did not arrive in time");
        }
        ++st_.stats.client_errors;
        client_gone_ = true;
        throw io_error(ECONNRESET, "read the request body: the client closed the connection");
      }
      clear_phase();
    }
    message_parser::step s = parser_->feed(pending_);
    pending_.remove_prefix(s.consumed);
    if (s.error != parse_error::none) {
      close_after_ = true;
      ++st_.stats.malformed;
      body_error_ = 400;
      throw request_error(400, "malformed body: " + parser_->error_reason());
    }
    if (!s.body.empty()) {
      body_seen_ += s.body.size();
      if (body_seen_ > st_.options.max_body_bytes) {
        close_after_ = true;
        ++st_.stats.body_too_large;
        body_error_ = 413;
        throw request_error(
            413, "the request body is larger than " + std::to_string(st_.options.max_body_bytes) + " bytes");
      }
      co_return s.body;
    }
    if (s.message_complete) {
      body_done_ = true;
      co_return std::string_view();
    }
    // No event: the parser took all of it (see message_parser::feed).
    need_input = true;
  }
}

// ---------------------------------------------------------------- the request loop

template <class Stream>
task<> connection<Stream>::run() {
  for (;;) {
    // ---- the next request's head
    bool started = false;
    std::int64_t head_deadline = 0;
    for (;;) {
      if (pending_.empty()) {
        release_input();
        if (!out_.empty() && !co_await flush()) co_return;
        if (close_after_ || (!started && st_.stopping)) co_return;
        if (started) {
          link_.current = phase::head;
          link_.deadline_ns = head_deadline;
        } else {
          // Idle: hold no buffer of any kind while waiting, nor a parser.
          if (holds_buffer(out_)) give_back_buffer(out_);
          if (parser_) give_back_parser(parser_, limits_);
          set_phase(phase::idle, st_.options.idle_timeout);
        }
        bool got = false;
        try {
          got = took(co_await read_op());
        } catch (const io_error&) {
          ++st_.stats.client_errors;
          co_return;
        }
        if (!got) {
          if (link_.expired == phase::head) {
            ++st_.stats.header_timeouts;
            co_await fail_with(408, "the request head did not arrive in time");
          } else if (link_.expired == phase::idle) {
            ++st_.stats.idle_timeouts;
          } else if (started) {
            ++st_.stats.client_errors;
          }
          co_return;
        }
      }
      if (!parser_) parser_ = take_parser(limits_);
      message_parser::step s = parser_->feed(pending_);
      pending_.remove_prefix(s.consumed);
      if (!started && parser_->in_message()) {
        started = true;
        set_phase(phase::head, st_.options.header_timeout);
        head_deadline = link_.deadline_ns;
      }
      if (s.error != parse_error::none) {
        if (s.error == parse_error::head_too_large || s.error == parse_error::too_many_headers) {
          ++st_.stats.head_too_large;
          co_await fail_with(431, parser_->error_reason());
        } else {
          ++st_.stats.malformed;
          co_await fail_with(400, parser_->error_reason());
        }
        co_return;
      }
      if (s.headers_complete) break;
    }
    clear_phase();

    // ---- the head is complete
    ++st_.stats.requests;
    const auto started_at =
        st_.options.access_log ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point();
    minor_ = parser_->version_minor();
    head_only_ = parser_->method() == "HEAD";
    const std::uint64_t length = parser_->content_length().value_or(0);
    const bool has_body = parser_->chunked() || length > 0;
    body_done_ = !has_body;
    body_seen_ = 0;
    body_error_ = 0;
    expect_continue_ = continue_sent_ = client_gone_ = false;
    if (!parser_->keep_alive() || parser_->upgrade() || st_.stopping) close_after_ = true;
    const headers& fields = parser_->header_fields();
    if (!parser_->upgrade()) {
      // The parser paused at the end of the head. What llhttp checks after
      // it (a Transfer-Encoding that does not end in chunked) shows now, and
      // a message without a body ends here without another byte.
      message_parser::step s = parser_->feed({});
      if (s.error != parse_error::none) {
        ++st_.stats.malformed;
        co_await fail_with(400, parser_->error_reason());
        co_return;
      }
      CORING_ASSERT(s.message_complete || has_body, "a request without a body ends with its head");
    }
    if (parser_->version_major() != 1) {
      co_await fail_with(505, "only HTTP/1.x is served");
      co_return;
    }
    if (minor_ >= 1 && !fields.contains("Host")) {
      ++st_.stats.malformed;
      co_await fail_with(400, "an HTTP/1.1 request without a Host field");
      co_return;
    }
    if (length > st_.options.max_body_bytes) {
      ++st_.stats.body_too_large;
      co_await fail_with(
          413, "the request body is larger than " + std::to_string(st_.options.max_body_bytes) + " bytes");
      co_return;
    }
    if (std::optional<std::string_view> expect = fields.get("Expect")) {
      if (!iequals(*expect, "100-continue")) {
        co_await fail_with(417, "only 100-continue is understood");
        co_return;
      }
      expect_continue_ = has_body && minor_ >= 1;
    }

    const net::address* peer = nullptr;
    if constexpr (requires(Stream & s) { s.peer(); }) peer = &s_.peer();
    request req(parser_->method(), parser_->target(), minor_, fields, peer, this, has_body);
    response r = co_await dispatch(req);
    if (client_gone_) co_return;

    // ---- what the handler left of the body
    if (!body_done_ && body_error_ == 0) {
      if (expect_continue_ && !continue_sent_) {
        close_after_ = true;  // never asked for: the client may or may not send it
      } else {
        std::size_t dropped = 0;
        try {
          while (!body_done_ && dropped <= drain_limit) {
            std::string_view piece = co_await read_body();
            dropped += piece.size();
          }
        } catch (const request_error&) {
        } catch (const io_error&) {
        }
        if (client_gone_) co_return;
        if (!body_done_) close_after_ = true;
      }
    }
    if (body_error_ != 0 || st_.stopping) close_after_ = true;  // stop() may have come while the handler ran

    // ---- the response
    const std::uint64_t sent_before = st_.stats.bytes_sent + out_.size();
    if (r.kind() == response::body_kind::buffer) {
      append_buffer_response(r);
    } else if (!co_await send_response(req, r)) {
      co_return;
    }
    count_status(r.status());
    if (st_.options.access_log)
      log_access(st_, req, r.status(), st_.stats.bytes_sent + out_.size() - sent_before,
                 std::chrono::steady_clock::now() - started_at);
    if (close_after_) {
      if (co_await flush()) co_await linger();
      co_return;
    }
    // Pipelined requests already here are answered before anything is sent,
    // unless a lot has gathered.
    if (out_.size() >= 64 * 1024 && !co_await flush()) co_return;
  }
}

template <class Stream>
task<response> connection<Stream>::dispatch(request& req) {
  router::match m = st_.app->find(req);
  if (!m.target) {
    response r = response::text(std::string(reason_phrase(m.status)) + "\n", m.status);
    if (!m.allow.empty()) r.header("Allow", m.allow);
    co_return r;
  }
  std::exception_ptr failure;
  try {
    co_return co_await (*m.target)(req);
  } catch (const request_error& e) {
    co_return response::text(std::string(reason_phrase(e.status())) + ": " + e.what() + "\n", e.status());
  } catch (...) {
    failure = std::current_exception();
  }
  // coring::cancelled is not a std::exception: it goes on up.
  try {
    std::rethrow_exception(failure);
  } catch (const cancelled&) {
    throw;
  } catch (...) {
  }
  if (client_gone_) co_return response(500);
  ++st_.stats.handler_errors;
  report_handler_failure(failure);
  close_after_ = close_after_ || !body_done_;
  co_return response::text("Internal Server Error\n", 500);
}

template <class Stream>
task<bool> connection<Stream>::send_response(request& req, response& r) {
  switch (r.kind()) {
    case response::body_kind::file:
      co_return co_await send_file_response(req, r);
    case response::body_kind::stream:
      co_return co_await send_stream_response(r);
    case response::body_kind::buffer:
    default:
      break;
  }
  append_buffer_response(r);
  co_return true;
}

template <class Stream>
void connection<Stream>::append_buffer_response(const response& r) {
  const int status = r.status();
  if (bodiless(status)) {
    // RFC 9110 section 8.6: no Content-Length in a 1xx or 204; a 304's would describe the file it stands for.
    append_head(status, r, std::nullopt, false);
  } else {
    append_head(status, r, r.body().size(), false);
    if (!head_only_) out_ += r.body();
  }
}

// ---------------------------------------------------------------- streamed bodies

template <class Stream>
class connection<Stream>::chunk_sink final : public body_writer {
 public:
  chunk_sink(connection& c, bool chunked) noexcept : c_(c), chunked_(chunked) {}
  task<> write(std::string_view data) override {
    if (data.empty()) co_return;
    std::string& out = c_.out_;
    c_.begin_out();
    if (chunked_) {
      char hex[20];
      auto [p, ec] = std::to_chars(hex, hex + sizeof hex, data.size(), 16);
      out.append(hex, p);
      out += "\r\n";
    }
    out += data;
    if (chunked_) out += "\r\n";
    if (!co_await c_.flush()) {
      c_.client_gone_ = true;
      throw io_error(EPIPE, "write a streamed response body: the client has gone");
    }
  }

 private:
  connection& c_;
  bool chunked_;
};

template <class Stream>
task<bool> connection<Stream>::send_stream_response(response& r) {
  const bool chunked = minor_ >= 1;
  if (!chunked) close_after_ = true;  // HTTP/1.0: the close ends the body
  append_head(r.status(), r, std::nullopt, chunked && !head_only_);
  if (head_only_) co_return true;
  std::exception_ptr failure;
  if (r.stream_producer()) {
    // The head goes at once: a stream may take its time.
    if (!co_await flush()) co_return false;
    chunk_sink sink(*this, chunked);
    try {
      co_await r.stream_producer()(sink);
    } catch (...) {
      failure = std::current_exception();
    }
  }
  if (failure) {
    try {
      std::rethrow_exception(failure);
    } catch (const cancelled&) {
      throw;
    } catch (...) {
    }
    if (!client_gone_) {
      // The status has gone: the only way left to say "failed" is to close
      // without the last chunk.
      ++st_.stats.handler_errors;
      report_handler_failure(failure);
    }
    co_return false;
  }
  if (chunked) {
    begin_out();
    out_ += "0\r\n\r\n";
  }
  co_return true;
}

// ---------------------------------------------------------------- files

template <class Stream>
task<bool> connection<Stream>::send_file_response(request& req, response& r) {
  struct fd_owner {
    int fd = -1;
    ~fd_owner() {
      if (fd >= 0) ::close(fd);
    }
  } file;
  const bool beneath = r.file_root() >= 0;
  const int opened = co_await open_file_operation(beneath ? r.file_root() : AT_FDCWD, r.file_path(), beneath);
  auto refuse = [&](int status, std::string_view why) {
    response e = response::text(std::string(reason_phrase(status)) + ": " + std::string(why) + "\n", status);
    r = std::move(e);
    return send_response(req, r);
  };
  if (opened < 0) {
    const int err = -opened;
    if (err == EACCES || err == EPERM) co_return co_await refuse(403, "not permitted");
    // ENOENT, ENOTDIR, ELOOP, EXDEV (RESOLVE_BENEATH: the path leads out of the root), ...
    co_return co_await refuse(404, "no such file");
  }
  file.fd = opened;
  stat_file_operation stat_op(file.fd);
  const int stat_res = co_await stat_op;
  if (stat_res < 0 || !S_ISREG(stat_op.info().stx_mode)) co_return co_await refuse(404, "no such file");
  const std::uint64_t size = stat_op.info().stx_size;
  const auto mtime_s = static_cast<std::int64_t>(stat_op.info().stx_mtime.tv_sec);
  const auto mtime_ns = static_cast<std::int64_t>(stat_op.info().stx_mtime.tv_nsec);

  char etag_buf[48];
  int etag_len =
      std::snprintf(etag_buf, sizeof etag_buf, "\"%llx-%llx\"", static_cast<unsigned long long>(size),
                    static_cast<unsigned long long>(mtime_s * 1'000'000'000LL + mtime_ns));
  const std::string_view etag(etag_buf, static_cast<std::size_t>(etag_len));
  const auto modified = std::chrono::system_clock::time_point(std::chrono::seconds(mtime_s));
  char last_modified[date_length];
  format_date(modified, last_modified);

  r.headers().set("ETag", std::string(etag));
  r.headers().set("Last-Modified", std::string(last_modified, date_length));
  r.headers().set("Accept-Ranges", "bytes");
  if (r.content_type().empty()) r.set_content_type(std::string(mime_type(r.file_path())));

  // Conditional requests (RFC 9110 section 13.2.2): If-None-Match wins over If-Modified-Since.
  const headers& fields = req.headers();
  bool not_modified = false;
  if (auto inm = fields.get("If-None-Match")) {
    not_modified = etag_matches(*inm, etag);
  } else if (auto ims = fields.get("If-Modified-Since")) {
    auto since = parse_date(*ims);
    not_modified = since && modified <= *since;
  }
  if (not_modified) {
    r.set_status(304);
    append_head(304, r, std::nullopt, false);
    co_return true;
  }

  std::uint64_t first = 0, length = size;
  int status = r.status();
  if (auto range = fields.get("Range"); range && status == 200) {
    bool honour = true;
    if (auto if_range = fields.get("If-Range")) {
      // A strong validator or the exact date; anything else: the whole file.
      auto when = parse_date(*if_range);
      honour = *if_range == etag || (when && *when == modified);
    }
    std::optional<byte_range> br = honour ? parse_range(*range, size) : std::nullopt;
    if (br && br->length == 0) {
      r.set_status(416);
      r.headers().set("Content-Range", "bytes */" + std::to_string(size));
      r.set_content_type("");
      append_head(416, r, 0, false);
      co_return true;
    }
    if (br) {
      status = 206;
      first = br->first;
      length = br->length;
      r.set_status(206);
      r.headers().set("Content-Range", "bytes " + std::to_string(first) + "-" +
                                           std::to_string(first + length - 1) + "/" + std::to_string(size));
    }
  }
  append_head(status, r, length, false);
  if (head_only_ || length == 0) co_return true;
  if (!co_await flush()) co_return false;
  set_phase(phase::none, {});
  try {
    if constexpr (is_socket) {
      std::size_t sent =
          co_await net::send_file(s_, file.fd, first, length, {.timeout = st_.options.write_timeout});
      st_.stats.bytes_sent += sent;
      if (sent < length) co_return false;  // the file shrank: the framing is broken, close
    } else {
      // Not a socket (TLS): through user space.
      std::string chunk(64 * 1024, '\0');
      std::uint64_t done = 0;
      while (done < length) {
        const ssize_t n = ::pread(file.fd, chunk.data(), std::min<std::uint64_t>(chunk.size(), length - done),
                                  static_cast<off_t>(first + done));
        if (n <= 0) co_return false;
        co_await s_.write_all(as_bytes_of(std::string_view(chunk.data(), static_cast<std::size_t>(n))),
                              {.timeout = st_.options.write_timeout});
        done += static_cast<std::uint64_t>(n);
        st_.stats.bytes_sent += static_cast<std::uint64_t>(n);
      }
    }
  } catch (const io_error&) {
    ++st_.stats.client_errors;
    co_return false;
  }
  co_return true;
}

// ---------------------------------------------------------------- the connection's task

template <class Stream>
task<> serve_connection(server_state& st, Stream stream) {
  ++st.stats.connections;
  ++st.stats.open_connections;
  try {
    connection<Stream> c(st, stream);
    co_await c.run();
  } catch (...) {
    // A cancellation (stop's grace period is over, or serve() was cancelled)
    // or no memory: the connection ends here either way.
  }
  --st.stats.open_connections;
  if (st.stopping && st.stats.open_connections == 0) st.drained.set();
  co_await stream.close();
}

}  // namespace coring::http::detail
