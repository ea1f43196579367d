#pragma once
// message_parser: HTTP/1.1 requests or responses parsed by llhttp in strict
// mode, one event at a time, for the server and the client alike. Internal.
//
//   detail::message_parser p(detail::message_parser::kind::request);
//   for (;;) {
//     auto s = p.feed(input);          // stops at the first event
//     input.remove_prefix(s.consumed);
//     if (s.error != parse_error::none) ...      // 400 / 431, or protocol_error
//     if (s.headers_complete) ...                // p.method(), p.target(), p.headers()
//     if (!s.body.empty()) ...                   // a view into `input`: use it before the next feed
//     if (s.message_complete) ...                // the next feed starts the next message
//     if (s.consumed == 0 && nothing happened) read more
//   }
//
// Pipelined messages are taken one at a time: feeding stops at the end of
// each. Bodies are handed over as they come (chunked ones decoded), never
// buffered here, so the caller decides what to keep. Exceptions never cross
// llhttp's C frames: its callbacks only record, and limits are reported as
// errors. llhttp.h stays out of this header.

#include <coring/http/headers.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace coring::http::detail {

/// What made a message unparseable.
enum class parse_error : unsigned char {
  none,
  malformed,            ///< not HTTP/1.1 as strict parsing allows (400), including smuggling shapes
  head_too_large,       ///< request/status line + headers over max_head_bytes (431)
  too_many_headers,     ///< more than max_headers fields (431)
  ended_early,          ///< the connection closed in the middle of a message
};

/// Limits on one message's head.
struct parser_limits {
  std::size_t max_head_bytes = 64 * 1024;  ///< start line + header fields, in bytes
  std::size_t max_headers = 100;           ///< header fields (and trailer fields) per message
};

class message_parser {
 public:
  enum class kind : unsigned char { request, response };

  /// What one feed() found.
  struct step {
    std::size_t consumed = 0;        ///< bytes of the input taken (feed again with the rest)
    bool headers_complete = false;   ///< the head is complete: method()/target()/status()/headers() are set
    std::string_view body;           ///< body bytes (chunked already decoded); a view into the input
    bool message_complete = false;   ///< the message ended; the next feed starts the next one
    parse_error error = parse_error::none;  ///< the input is not a valid message (the parser stays failed)
  };

  explicit message_parser(kind k, parser_limits limits = {});
  ~message_parser();
  message_parser(message_parser&&) noexcept;
  message_parser& operator=(message_parser&&) noexcept;
  message_parser(const message_parser&) = delete;
  message_parser& operator=(const message_parser&) = delete;

  /// Parses from `data` up to the first event: the head completes, a piece of
  /// body, the message ends, or an error. Consumes everything when none of
  /// these happens (the caller then reads more).
  step feed(std::string_view data);
  /// The peer closed the connection: ends a response delimited by the close
  /// (message_complete), or reports ended_early in the middle of a message.
  /// Nothing happens between messages.
  step finish();

  /// Responses only: the message being parsed has no body whatever its
  /// headers say (the answer to a HEAD, a 1xx/204/304). Call before its head completes.
  void skip_body() noexcept;

  /// llhttp's reason for the error, e.g. "Invalid header value char".
  [[nodiscard]] const std::string& error_reason() const noexcept { return error_reason_; }
  /// True between a message's first byte and its end.
  [[nodiscard]] bool in_message() const noexcept { return in_message_; }

  // ---- the current message's head (valid from headers_complete on) ----
  [[nodiscard]] std::string_view method() const noexcept { return method_; }
  [[nodiscard]] std::string_view target() const noexcept { return target_; }
  [[nodiscard]] int status() const noexcept { return status_; }
  [[nodiscard]] std::string_view reason() const noexcept { return reason_; }
  [[nodiscard]] int version_major() const noexcept { return major_; }
  [[nodiscard]] int version_minor() const noexcept { return minor_; }
  [[nodiscard]] const headers& header_fields() const noexcept { return headers_; }
  [[nodiscard]] headers& header_fields() noexcept { return headers_; }
  /// Trailer fields of a chunked body (valid from message_complete on).
  [[nodiscard]] const headers& trailers() const noexcept { return trailers_; }
  /// The Content-Length, if the message has one.
  [[nodiscard]] std::optional<std::uint64_t> content_length() const noexcept { return content_length_; }
  /// True if the body is chunked.
  [[nodiscard]] bool chunked() const noexcept { return chunked_; }
  /// True if the connection may carry another message after this one
  /// (HTTP/1.1 without "Connection: close", or 1.0 with keep-alive).
  [[nodiscard]] bool keep_alive() const noexcept { return keep_alive_; }
  /// True if the message asks to switch protocols (the parser stops after its head).
  [[nodiscard]] bool upgrade() const noexcept { return upgrade_; }

  struct impl;  // llhttp's state and the callbacks' bookkeeping (message_parser.cpp)

 private:
  friend struct impl;
  void begin_message() noexcept;
  std::string describe_error(int llhttp_errno) const;

  std::unique_ptr<impl> impl_;
  parser_limits limits_;
  std::string method_;
  std::string target_;
  std::string reason_;
  headers headers_;
  headers trailers_;
  std::string field_;      // the header name being received
  std::string value_;      // the header value being received
  std::string error_reason_;
  std::optional<std::uint64_t> content_length_;
  std::size_t head_bytes_ = 0;
  int status_ = 0;
  int major_ = 1;
  int minor_ = 1;
  parse_error pending_error_ = parse_error::none;
  bool chunked_ = false;
  bool keep_alive_ = false;
  bool upgrade_ = false;
  bool in_message_ = false;
  bool head_done_ = false;
  bool skip_body_ = false;
  bool failed_ = false;
};

}  // namespace coring::http::detail
