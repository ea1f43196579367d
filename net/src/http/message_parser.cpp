#include <coring/http/detail/message_parser.hpp>

#include <llhttp.h>

namespace coring::http::detail {

// llhttp's callbacks only record what they see into the owner and return a
// code: nothing here throws (std::string appends that run out of memory are
// the exception, and then the process is in no state to parse anything).
struct message_parser::impl {
  llhttp_t parser{};
  message_parser* owner = nullptr;  // kept current across moves
  // What the current feed() found.
  const char* body_at = nullptr;
  std::size_t body_size = 0;
  bool headers_now = false;
  bool message_now = false;

  static message_parser& of(llhttp_t* p) noexcept { return *static_cast<impl*>(p->data)->owner; }
  static impl& self(llhttp_t* p) noexcept { return *static_cast<impl*>(p->data); }

  // Counts head bytes; an error code once the head is too large.
  static int grow_head(message_parser& m, std::size_t n) noexcept {
    m.head_bytes_ += n;
    if (m.head_bytes_ > m.limits_.max_head_bytes) {
      m.pending_error_ = parse_error::head_too_large;
      return HPE_USER;
    }
    return HPE_OK;
  }

  static int on_message_begin(llhttp_t* p) noexcept {
    of(p).begin_message();
    return HPE_OK;
  }
  static int on_method(llhttp_t* p, const char* at, std::size_t n) noexcept {
    message_parser& m = of(p);
    m.method_.append(at, n);
    return grow_head(m, n);
  }
  static int on_url(llhttp_t* p, const char* at, std::size_t n) noexcept {
    message_parser& m = of(p);
    m.target_.append(at, n);
    return grow_head(m, n);
  }
  static int on_status(llhttp_t* p, const char* at, std::size_t n) noexcept {
    message_parser& m = of(p);
    m.reason_.append(at, n);
    return grow_head(m, n);
  }
  static int on_header_field(llhttp_t* p, const char* at, std::size_t n) noexcept {
    message_parser& m = of(p);
    m.field_.append(at, n);
    return grow_head(m, n + 4);  // ": " and CRLF
  }
  // RFC 9112 section 5.1: whitespace between a field name and its colon is a
  // request smuggling shape that a server must refuse with 400; llhttp 8
  // lets it through, so the name is checked here.
  static int on_header_field_complete(llhttp_t* p) noexcept {
    message_parser& m = of(p);
    if (!m.field_.empty() && (m.field_.back() == ' ' || m.field_.back() == '\t')) {
      m.pending_error_ = parse_error::malformed;
      m.error_reason_ = "whitespace between a header field name and its colon";
      return HPE_USER;
    }
    return HPE_OK;
  }
  static int on_header_value(llhttp_t* p, const char* at, std::size_t n) noexcept {
    message_parser& m = of(p);
    m.value_.append(at, n);
    return grow_head(m, n);
  }
  static int on_header_value_complete(llhttp_t* p) noexcept {
    message_parser& m = of(p);
    headers& target = m.head_done_ ? m.trailers_ : m.headers_;
    if (target.size() >= m.limits_.max_headers) {
      m.pending_error_ = parse_error::too_many_headers;
      return HPE_USER;
    }
    target.add(std::move(m.field_), std::move(m.value_));
    m.field_.clear();
    m.value_.clear();
    return HPE_OK;
  }
  static int on_headers_complete(llhttp_t* p) noexcept {
    message_parser& m = of(p);
    m.status_ = p->status_code;
    m.major_ = p->http_major;
    m.minor_ = p->http_minor;
    if (p->flags & F_CONTENT_LENGTH) m.content_length_ = p->content_length;
    m.chunked_ = (p->flags & F_CHUNKED) != 0;
    m.keep_alive_ = llhttp_should_keep_alive(p) != 0;
    m.upgrade_ = p->upgrade != 0;
    m.head_done_ = true;
    self(p).headers_now = true;
    // 1: llhttp's "this message has no body"; otherwise stop here, so that
    // the caller sees the head before any byte of the body.
    return m.skip_body_ ? 1 : HPE_PAUSED;
  }
  static int on_body(llhttp_t* p, const char* at, std::size_t n) noexcept {
    impl& s = self(p);
    s.body_at = at;
    s.body_size = n;
    return HPE_PAUSED;  // one piece of body per feed
  }
  static int on_message_complete(llhttp_t* p) noexcept {
    message_parser& m = of(p);
    m.keep_alive_ = llhttp_should_keep_alive(p) != 0;
    m.in_message_ = false;
    self(p).message_now = true;
    return HPE_PAUSED;  // one message per feed: pipelined ones wait their turn
  }

  static const llhttp_settings_t& settings() noexcept {
    static const llhttp_settings_t s = [] {
      llhttp_settings_t s;
      llhttp_settings_init(&s);
      s.on_message_begin = &on_message_begin;
      s.on_method = &on_method;
      s.on_url = &on_url;
      s.on_status = &on_status;
      s.on_header_field = &on_header_field;
      s.on_header_field_complete = &on_header_field_complete;
      s.on_header_value = &on_header_value;
      s.on_header_value_complete = &on_header_value_complete;
      s.on_headers_complete = &on_headers_complete;
      s.on_body = &on_body;
      s.on_message_complete = &on_message_complete;
      return s;
    }();
    return s;
  }
};

message_parser::message_parser(kind k, parser_limits limits) : impl_(std::make_unique<impl>()), limits_(limits) {
  // Strict: no lenient flag is ever set (bare LF, conflicting lengths,
  // Transfer-Encoding with Content-Length, ... are errors).
  llhttp_init(&impl_->parser, k == kind::request ? HTTP_REQUEST : HTTP_RESPONSE, &impl::settings());
  impl_->parser.data = impl_.get();
  impl_->owner = this;
}

message_parser::~message_parser() = default;

message_parser::message_parser(message_parser&& o) noexcept = default;
message_parser& message_parser::operator=(message_parser&& o) noexcept = default;

void message_parser::begin_message() noexcept {
  method_.clear();
  target_.clear();
  reason_.clear();
  headers_.clear();
  trailers_.clear();
  field_.clear();
  value_.clear();
  content_length_.reset();
  head_bytes_ = 0;
  status_ = 0;
  chunked_ = false;
  keep_alive_ = false;
  upgrade_ = false;
  head_done_ = false;
  in_message_ = true;
}

void message_parser::skip_body() noexcept { skip_body_ = true; }

std::string message_parser::describe_error(int err) const {
  switch (pending_error_) {
    case parse_error::head_too_large:
      return "the head is larger than " + std::to_string(limits_.max_head_bytes) + " bytes";
    case parse_error::too_many_headers:
      return "more than " + std::to_string(limits_.max_headers) + " header fields";
    default:
      break;
  }
  if (const char* reason = llhttp_get_error_reason(&impl_->parser)) return reason;
  return llhttp_errno_name(static_cast<llhttp_errno_t>(err));
}

message_parser::step message_parser::feed(std::string_view data) {
  step s;
  if (failed_) {
    s.error = pending_error_;
    return s;
  }
  impl& st = *impl_;
  st.owner = this;
  st.body_at = nullptr;
  st.body_size = 0;
  st.headers_now = false;
  st.message_now = false;
  static constexpr char nothing[1] = {0};
  const char* begin = data.empty() ? nothing : data.data();
  const llhttp_errno_t err = llhttp_execute(&st.parser, begin, data.size());
  if (err == HPE_OK) {
    s.consumed = data.size();
  } else if (err == HPE_PAUSED) {
    s.consumed = static_cast<std::size_t>(llhttp_get_error_pos(&st.parser) - begin);
    llhttp_resume(&st.parser);
  } else if (err == HPE_PAUSED_UPGRADE) {
    // The rest of the connection is another protocol, which we do not speak:
    // the head is reported and the parser takes nothing more.
    s.consumed = static_cast<std::size_t>(llhttp_get_error_pos(&st.parser) - begin);
    upgrade_ = true;
    failed_ = true;
    pending_error_ = parse_error::none;
  } else {
    failed_ = true;
    if (pending_error_ == parse_error::none) pending_error_ = parse_error::malformed;
    if (error_reason_.empty()) error_reason_ = describe_error(err);
    const char* pos = llhttp_get_error_pos(&st.parser);
    s.consumed = pos ? static_cast<std::size_t>(pos - begin) : 0;
    s.error = pending_error_;
  }
  s.headers_complete = st.headers_now;
  s.message_complete = st.message_now;
  if (st.body_at) s.body = std::string_view(st.body_at, st.body_size);
  if (s.message_complete) skip_body_ = false;
  return s;
}

message_parser::step message_parser::finish() {
  step s;
  if (failed_) {
    s.error = pending_error_;
    return s;
  }
  impl& st = *impl_;
  st.owner = this;
  st.message_now = false;
  const llhttp_errno_t err = llhttp_finish(&st.parser);
  if (err == HPE_OK || err == HPE_PAUSED) {
    s.message_complete = st.message_now;
    if (err == HPE_PAUSED) llhttp_resume(&st.parser);
    return s;
  }
  failed_ = true;
  pending_error_ = parse_error::ended_early;
  error_reason_ = "the connection closed in the middle of a message";
  s.error = pending_error_;
  return s;
}

}  // namespace coring::http::detail
