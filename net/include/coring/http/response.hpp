#pragma once
// http::response: what a server handler answers — a status, header fields,
// and a body that is a buffer, a file, or a stream a coroutine writes.
//
//   co_return http::response::text("hello\n");                      // text/plain; charset=utf-8
//   co_return http::response::json({{"result", 42}});               // application/json (nlohmann::json)
//   co_return http::response::bytes(png, "image/png");
//   co_return http::response::file("/srv/cats/tom.jpg");            // spliced from the file; ETag, Range, 304
//   co_return http::response::stream([](http::body_writer& w) -> coring::task<> {
//     for (int i = 0; i < 3; ++i) co_await w.write("tick\n");     // chunked on HTTP/1.1
//   });
//   co_return http::response(404).header("X-Why", "gone");
//
// The server adds Date, Server, Content-Length (or Transfer-Encoding:
// chunked), and Connection when it closes; a handler sets the rest.

#include <coring/http/headers.hpp>
#include <coring/task.hpp>

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>

namespace coring::http {

/// The sink of a streamed body (response::stream): each write goes out at
/// once (one chunk on HTTP/1.1).
class body_writer {
 public:
  /// Sends `data` (nothing for an empty one).
  /// **Cancellation:** the send is cancelled; the connection is closed.
  /// **Errors:** coring::io_error when the client has gone (the connection is
  /// then closed and the producer should let the error propagate).
  [[nodiscard]] virtual task<> write(std::string_view data) = 0;

 protected:
  ~body_writer() = default;
};

class response {
 public:
  /// A coroutine that writes a streamed body.
  using producer = std::function<task<>(body_writer&)>;
  /// What the body is.
  enum class body_kind : std::uint8_t { buffer, file, stream };

  /// 200 with no body.
  response() = default;
  /// `status` with no body (204, 404, ...).
  explicit response(int status) : status_(status) {}

  /// `body` as text/plain; charset=utf-8.
  [[nodiscard]] static response text(std::string body, int status = 200);
  /// `value` serialised as application/json.
  [[nodiscard]] static response json(const nlohmann::json& value, int status = 200);
  /// `body` with the given Content-Type.
  [[nodiscard]] static response bytes(std::string body, std::string content_type = "application/octet-stream",
                                      int status = 200);
  /// The file at `path`, spliced from the file to the socket (no copy through
  /// user space), with Content-Type from its extension, ETag and
  /// Last-Modified, answering conditional requests with 304 and Range
  /// requests with 206. A file that cannot be opened gives 404 (403 when not
  /// permitted).
  [[nodiscard]] static response file(std::string path);
  /// A body written by `produce` as it goes: Transfer-Encoding: chunked on
  /// HTTP/1.1, the connection's close on HTTP/1.0. Not called for HEAD.
  [[nodiscard]] static response stream(producer produce, std::string content_type = "application/octet-stream",
                                       int status = 200);

  /// The status code.
  [[nodiscard]] int status() const noexcept { return status_; }
  response& set_status(int status) noexcept {
    status_ = status;
    return *this;
  }
  /// The header fields the handler set.
  [[nodiscard]] http::headers& headers() noexcept { return headers_; }
  [[nodiscard]] const http::headers& headers() const noexcept { return headers_; }
  /// Adds a header field; chainable.
  response& header(std::string name, std::string value) & {
    headers_.add(std::move(name), std::move(value));
    return *this;
  }
  response&& header(std::string name, std::string value) && {
    headers_.add(std::move(name), std::move(value));
    return std::move(*this);
  }
  /// The Content-Type ("" if none).
  [[nodiscard]] std::string_view content_type() const noexcept {
    return fixed_content_type_ ? std::string_view(fixed_content_type_) : std::string_view(content_type_);
  }
  response& set_content_type(std::string type) {
    content_type_ = std::move(type);
    fixed_content_type_ = nullptr;
    return *this;
  }

  [[nodiscard]] body_kind kind() const noexcept { return kind_; }
  /// The body of a buffer response.
  [[nodiscard]] const std::string& body() const noexcept { return body_; }
  /// The path of a file response.
  [[nodiscard]] const std::string& file_path() const noexcept { return body_; }
  /// The producer of a stream response.
  [[nodiscard]] const producer& stream_producer() const noexcept { return produce_; }

  /// Internal (static files): the file is `file_path()` under the directory
  /// `dir_fd`, opened without leaving it (no "..", no symlink out).
  void set_file_root(int dir_fd) noexcept { dir_fd_ = dir_fd; }
  [[nodiscard]] int file_root() const noexcept { return dir_fd_; }

 private:
  std::string body_;          // the bytes, or the file's path
  std::string content_type_;  // sent as Content-Type unless empty
  // text() and json()'s types, longer than a string's inline capacity: a
  // literal, so that building the response allocates nothing for them.
  const char* fixed_content_type_ = nullptr;
  http::headers headers_;     // the handler's own fields
  producer produce_;          // a stream's writer
  int status_ = 200;
  int dir_fd_ = -1;           // a static file's root directory (-1: the path is used as it is)
  body_kind kind_ = body_kind::buffer;
};

/// The MIME type for a file name's extension ("cat.jpg" → "image/jpeg"),
/// "application/octet-stream" when unknown. Case-insensitive.
[[nodiscard]] std::string_view mime_type(std::string_view file_name) noexcept;

}  // namespace coring::http
