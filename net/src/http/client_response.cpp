#include <coring/http/client.hpp>

#include "http/client_state.hpp"
#include "http/fs_operations.hpp"
#include "http/inflater.hpp"

#include <coring/error.hpp>
#include <coring/file.hpp>

#include <algorithm>
#include <cstring>

namespace coring::http {

namespace {
constexpr std::size_t max_reserve = 8 << 20;  // trust a Content-Length this far when reserving memory
}

client_response::client_response() noexcept = default;

client_response::client_response(client_response&& o) noexcept
    : status_(o.status_),
      reason_(std::move(o.reason_)),
      headers_(std::move(o.headers_)),
      trailers_(std::move(o.trailers_)),
      content_length_(o.content_length_),
      url_(std::move(o.url_)),
      method_(std::move(o.method_)),
      history_(std::move(o.history_)),
      client_(o.client_),
      conn_(std::exchange(o.conn_, nullptr)),
      decoder_(std::move(o.decoder_)),
      received_(o.received_),
      delivered_(o.delivered_),
      max_body_(o.max_body_),
      max_decoded_(o.max_decoded_),
      deadline_(o.deadline_),
      total_limit_(o.total_limit_),
      read_limit_(o.read_limit_),
      failure_(std::move(o.failure_)),
      complete_(std::exchange(o.complete_, true)),
      taken_(o.taken_) {}

client_response& client_response::operator=(client_response&& o) noexcept {
  if (this != &o) {
    release();
    status_ = o.status_;
    reason_ = std::move(o.reason_);
    headers_ = std::move(o.headers_);
    trailers_ = std::move(o.trailers_);
    content_length_ = o.content_length_;
    url_ = std::move(o.url_);
    method_ = std::move(o.method_);
    history_ = std::move(o.history_);
    client_ = o.client_;
    conn_ = std::exchange(o.conn_, nullptr);
    decoder_ = std::move(o.decoder_);
    received_ = o.received_;
    delivered_ = o.delivered_;
    max_body_ = o.max_body_;
    max_decoded_ = o.max_decoded_;
    deadline_ = o.deadline_;
    total_limit_ = o.total_limit_;
    read_limit_ = o.read_limit_;
    failure_ = std::move(o.failure_);
    complete_ = std::exchange(o.complete_, true);
    taken_ = o.taken_;
  }
  return *this;
}

client_response::~client_response() { release(); }

std::string client_response::describe() const { return detail::describe_request(method_, url_); }

void client_response::raise_for_status() const {
  if (status_ >= 400) throw status_error(status_, method_, url_.to_string(), reason_);
}

void client_response::release() noexcept {
  if (conn_) finish_body(false);
}

void client_response::finish_body(bool reusable) noexcept {
  detail::connection* c = std::exchange(conn_, nullptr);
  if (c) client_->pool.release(std::unique_ptr<detail::connection>(c), reusable);
}

void client_response::fail_body() noexcept { finish_body(false); }

void client_response::take_body() {
  CORING_ASSERT(!taken_, "the body of an http::client_response is read once (text, bytes, json, save or body)");
  taken_ = true;
}

body_stream client_response::body() noexcept {
  take_body();
  return body_stream(*this);
}

task<std::span<const std::byte>> body_stream::next() { return response_->next_piece(); }

void client_response::throw_read_error(std::exception_ptr e) {
  fail_body();
  failure_ = e;
  std::rethrow_exception(e);
}

task<std::span<const std::byte>> client_response::next_piece() {
  if (failure_) std::rethrow_exception(failure_);
  using detail::parse_error;
  for (;;) {
    if (decoder_ && decoder_->has_input()) {
      const std::span<const std::byte> out = decoder_->output();
      if (!decoder_->error().empty()) {
        throw_read_error(std::make_exception_ptr(
            protocol_error(describe() + ": the body does not decompress: " + decoder_->error())));
      }
      if (out.empty()) continue;
      delivered_ += out.size();
      if (max_decoded_ != 0 && delivered_ > max_decoded_) {
        throw_read_error(std::make_exception_ptr(limit_error(
            describe() + ": the body decompresses to more than " + std::to_string(max_decoded_) +
            " bytes (max_decompressed_size)")));
      }
      co_return out;
    }
    if (!conn_) co_return std::span<const std::byte>();  // the body has ended
    detail::connection& c = *conn_;
    if (max_body_ != 0 && content_length_ && *content_length_ > max_body_) {
      throw_read_error(std::make_exception_ptr(limit_error(describe() + ": the body is " +
                                                            std::to_string(*content_length_) + " bytes, more than " +
                                                            std::to_string(max_body_) + " (max_body_size)")));
    }
    const detail::message_parser::step s = c.parser.feed(c.buffered());
    c.consume(s.consumed);
    if (s.error != parse_error::none) {
      throw_read_error(
          std::make_exception_ptr(protocol_error(describe() + ": malformed response body: " + c.parser.error_reason())));
    }
    if (!s.body.empty()) {
      received_ += s.body.size();
      if (max_body_ != 0 && received_ > max_body_) {
        throw_read_error(std::make_exception_ptr(
            limit_error(describe() + ": the body is larger than " + std::to_string(max_body_) + " bytes (max_body_size)")));
      }
      const std::span<const std::byte> piece = std::as_bytes(std::span(s.body.data(), s.body.size()));
      if (decoder_) {
        decoder_->input(piece);
        continue;
      }
      delivered_ += piece.size();
      co_return piece;
    }
    if (s.message_complete) {
      trailers_ = c.parser.trailers();
      if (decoder_ && !decoder_->finished() && received_ != 0) {
        throw_read_error(std::make_exception_ptr(
            protocol_error(describe() + ": the compressed body ends before its compressed data does")));
      }
      complete_ = true;
      finish_body(c.parser.keep_alive() && c.buffered().empty());
      co_return std::span<const std::byte>();
    }
    if (s.headers_complete || s.consumed != 0) continue;

    // Needs more bytes.
    auto [limit, phase] = detail::deadlines{deadline_, {.total = total_limit_, .read = read_limit_}}.budget(
        read_limit_, timeout_phase::read);
    std::exception_ptr failed;
    std::size_t n = 0;
    bool timed_out = limit <= std::chrono::nanoseconds::zero();
    if (!timed_out) {
      try {
        if (auto* t = c.tcp()) {
          n = co_await t->read_some(c.free_space(), {.timeout = limit});
        } else {
          n = co_await c.other()->read_some(c.free_space(), {.timeout = limit});
        }
      } catch (const coring::timeout_error&) {
        timed_out = true;
      } catch (const coring::error& e) {
        // io_error, and a TLS stream's tls_error (a bad record, an alert).
        failed = std::make_exception_ptr(protocol_error(describe() + ": the connection failed in the middle of the body (after " +
                                                        std::to_string(received_) + " bytes): " + e.what()));
      } catch (...) {
        // Cancelled: the connection is in the middle of a response; it is
        // closed, never returned to the pool half-read.
        fail_body();
        failure_ = std::make_exception_ptr(coring::error(describe() + ": reading the body was cancelled"));
        throw;
      }
    }
    if (timed_out) {
      failed = std::make_exception_ptr(timeout_error(describe(), phase, phase == timeout_phase::total ? total_limit_ : read_limit_));
    }
    if (failed) throw_read_error(failed);
    if (n == 0) {
      const detail::message_parser::step end = c.parser.finish();
      if (end.message_complete) {  // delimited by the close
        if (decoder_ && !decoder_->finished() && received_ != 0) {
          throw_read_error(std::make_exception_ptr(
              protocol_error(describe() + ": the compressed body ends before its compressed data does")));
        }
        complete_ = true;
        finish_body(false);
        co_return std::span<const std::byte>();
      }
      throw_read_error(std::make_exception_ptr(
          protocol_error(describe() + ": the server closed the connection in the middle of the body (after " +
                         std::to_string(received_) + " bytes)")));
    }
    c.received(n);
  }
}

task<std::string> client_response::text() {
  take_body();
  std::string out;
  if (content_length_ && !decoder_) out.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(*content_length_, max_reserve)));
  for (;;) {
    const std::span<const std::byte> piece = co_await next_piece();
    if (piece.empty()) break;
    out.append(reinterpret_cast<const char*>(piece.data()), piece.size());
  }
  co_return out;
}

task<std::vector<std::byte>> client_response::bytes() {
  take_body();
  std::vector<std::byte> out;
  if (content_length_ && !decoder_) out.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(*content_length_, max_reserve)));
  for (;;) {
    const std::span<const std::byte> piece = co_await next_piece();
    if (piece.empty()) break;
    out.insert(out.end(), piece.begin(), piece.end());
  }
  co_return out;
}

task<nlohmann::json> client_response::json() {
  std::string body = co_await text();
  std::string reason;
  try {
    co_return nlohmann::json::parse(body);
  } catch (const nlohmann::json::exception& e) {
    reason = e.what();
  }
  throw protocol_error(describe() + ": the body is not JSON: " + reason);
}

task<std::uint64_t> client_response::save(std::string path) {
  take_body();
  std::string part = path + ".part";
  coring::file f = co_await coring::file::open(part, coring::open_mode::write);
  std::uint64_t written = 0;
  std::exception_ptr failed;
  try {
    for (;;) {
      const std::span<const std::byte> piece = co_await next_piece();
      if (piece.empty()) break;
      co_await f.write_all(piece, written);
      written += piece.size();
    }
    co_await f.close();
    co_await detail::rename_operation(part, path);
  } catch (...) {
    failed = std::current_exception();
  }
  if (failed) {
    try {
      (void)co_await detail::unlink_operation(part);
    } catch (...) {
      // Cancelled again while cleaning up: the first error is the one to report.
    }
    std::rethrow_exception(failed);
  }
  co_return written;
}

}  // namespace coring::http
