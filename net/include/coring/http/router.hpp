#pragma once
// http::router: which handler answers which request — routes by method and
// path pattern, with path parameters, and directories served as static files.
//
//   http::router app;
//   app.get("/health", [](http::request&) -> coring::task<http::response> {
//     co_return http::response::text("ok\n");
//   });
//   app.get("/compute/{n}", compute);                 // req.param<long>("n")
//   app.post("/items", create_item);
//   app.route("DELETE", "/items/{id}", delete_item);
//   app.static_files("/cats", "/srv/cats");           // GET/HEAD /cats/<file>
//
// A pattern is '/'-separated segments, each literal or a whole-segment
// parameter "{name}"; literal segments win over parameters. A request whose
// path matches no route gets 404; one whose path matches only under other
// methods gets 405 with an Allow field. HEAD is answered by the GET route
// (without the body). (`static` is a C++ keyword, hence static_files.)
//
// Thread safety: set the routes up before serving; a router that serves is
// only read, so several loops (http::serve with threads) share one.

#include <coring/http/request.hpp>
#include <coring/http/response.hpp>
#include <coring/task.hpp>

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace coring::http {

/// A request handler: a coroutine answering one request.
using handler = std::function<task<response>(request&)>;

/// Settings of a static directory.
struct static_options {
  std::string index = "index.html";  ///< served for a request naming the directory itself ("" : 404)
  std::string cache_control;         ///< Cache-Control sent with each file, unless empty
};

class router {
 public:
  router();
  ~router();
  router(router&&) noexcept;
  router& operator=(router&&) noexcept;
  router(const router&) = delete;
  router& operator=(const router&) = delete;

  /// Routes `method` requests whose path matches `pattern` to `h`.
  /// **Errors:** coring::error for a malformed pattern ("{" without "}",
  /// not starting with '/') or a route that already exists.
  router& route(std::string_view method, std::string_view pattern, handler h);
  router& get(std::string_view pattern, handler h) { return route("GET", pattern, std::move(h)); }
  router& post(std::string_view pattern, handler h) { return route("POST", pattern, std::move(h)); }
  router& put(std::string_view pattern, handler h) { return route("PUT", pattern, std::move(h)); }
  router& patch(std::string_view pattern, handler h) { return route("PATCH", pattern, std::move(h)); }

  /// Serves the files under `directory` at `prefix` ("/cats/tom.jpg" →
  /// "<directory>/tom.jpg") for GET and HEAD, through response::file (splice,
  /// ETag/Last-Modified and 304, Range and 206, MIME type from the extension).
  /// No request leaves the directory: ".." segments and encoded slashes are
  /// refused with 400, and the file is opened with openat2(RESOLVE_BENEATH),
  /// so a symlink that points out of it gives 404.
  /// **Errors:** io_error if `directory` cannot be opened.
  router& static_files(std::string_view prefix, const std::string& directory, static_options o = {});

  /// What a request matched (internal: the server's dispatch).
  struct match {
    const handler* target = nullptr;  ///< the handler, or null
    int status = 0;                   ///< else: 404, 405 (then `allow` is set) or 400
    std::string allow;                ///< methods the path has, for 405
  };
  /// Finds the handler for `req` and gives it its path parameters.
  [[nodiscard]] match find(request& req) const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace coring::http
