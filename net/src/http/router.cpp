#include <coring/http/router.hpp>

#include <coring/error.hpp>
#include <coring/http/headers.hpp>
#include <coring/http/url.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cerrno>

namespace coring::http {

namespace {
struct segment {
  std::string text;  // the literal, or the parameter's name
  bool param = false;
};

struct route_entry {
  std::string method;
  std::string pattern;
  std::vector<segment> segments;
  handler h;
};

struct mount {
  std::vector<std::string> prefix;  // literal segments
  int dir_fd = -1;                  // O_PATH | O_DIRECTORY
  static_options options;
  handler h;
  ~mount() {
    if (dir_fd >= 0) ::close(dir_fd);
  }
};

// The segments of a path ("/a/b" → {"a", "b"}; "/" → {""}), as views.
template <class Out>
void split_path(std::string_view path, Out& out) {
  if (!path.empty() && path.front() == '/') path.remove_prefix(1);
  for (;;) {
    const std::size_t slash = path.find('/');
    out.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
}

bool is_dot_segment(std::string_view s) noexcept { return s == "." || s == ".."; }

// The static mount's handler: validates the rest of the path and answers with the file.
task<response> serve_static(const mount& m, request& req) {
  std::string_view rest = req.param("*");
  // Encoded slashes, backslashes and NULs could smuggle a separator past the
  // checks below (or into the kernel): refuse them outright.
  for (std::size_t i = 0; i + 2 < rest.size(); ++i) {
    if (rest[i] != '%') continue;
    const char a = rest[i + 1], b = static_cast<char>(rest[i + 2] | 0x20);
    if ((a == '2' && b == 'f') || (a == '5' && b == 'c') || (a == '0' && b == '0'))
      throw request_error(400, "an encoded '/', '\\' or NUL in a file path");
  }
  std::string path = percent_decode(rest);
  if (path.find('\\') != std::string::npos || path.find('\0') != std::string::npos)
    throw request_error(400, "a '\\' or NUL in a file path");
  std::vector<std::string_view> parts;
  split_path(path, parts);
  for (std::string_view p : parts) {
    if (is_dot_segment(p)) throw request_error(400, "a '.' or '..' segment in a file path");
  }
  if (path.empty() || path.back() == '/') {
    if (m.options.index.empty()) throw request_error(404, "no such file");
    path += m.options.index;
  }
  while (!path.empty() && path.front() == '/') path.erase(0, 1);
  response r = response::file(std::move(path));
  r.set_file_root(m.dir_fd);
  if (!m.options.cache_control.empty()) r.header("Cache-Control", m.options.cache_control);
  co_return r;
}
}  // namespace

struct router::impl {
  std::vector<std::unique_ptr<route_entry>> routes;
  std::vector<std::unique_ptr<mount>> mounts;
};

router::router() : impl_(std::make_unique<impl>()) {}
router::~router() = default;
router::router(router&&) noexcept = default;
router& router::operator=(router&&) noexcept = default;

router& router::route(std::string_view method, std::string_view pattern, handler h) {
  if (pattern.empty() || pattern.front() != '/')
    throw coring::error("http::router: the pattern '" + std::string(pattern) + "' does not start with '/'");
  if (method.empty()) throw coring::error("http::router: an empty method for '" + std::string(pattern) + "'");
  auto r = std::make_unique<route_entry>();
  r->method = std::string(method);
  r->pattern = std::string(pattern);
  std::vector<std::string_view> parts;
  split_path(pattern, parts);
  for (std::string_view p : parts) {
    segment s;
    if (!p.empty() && p.front() == '{') {
      if (p.size() < 3 || p.back() != '}' || p.substr(1, p.size() - 2).find_first_of("{}/") != std::string_view::npos)
        throw coring::error("http::router: malformed parameter '" + std::string(p) + "' in '" + std::string(pattern) +
                            "'");
      s.text = std::string(p.substr(1, p.size() - 2));
      s.param = true;
    } else {
      if (p.find_first_of("{}") != std::string_view::npos)
        throw coring::error("http::router: a parameter must be a whole segment in '" + std::string(pattern) + "'");
      s.text = std::string(p);
    }
    r->segments.push_back(std::move(s));
  }
  for (const auto& other : impl_->routes) {
    if (other->method != r->method || other->segments.size() != r->segments.size()) continue;
    bool same = true;
    for (std::size_t i = 0; i < r->segments.size() && same; ++i) {
      const segment &a = other->segments[i], &b = r->segments[i];
      same = a.param == b.param && (a.param || a.text == b.text);
    }
    if (same)
      throw coring::error("http::router: " + r->method + " " + r->pattern + " is already routed (as " +
                          other->pattern + ")");
  }
  r->h = std::move(h);
  impl_->routes.push_back(std::move(r));
  return *this;
}

router& router::static_files(std::string_view prefix, const std::string& directory, static_options o) {
  if (prefix.empty() || prefix.front() != '/')
    throw coring::error("http::router: the prefix '" + std::string(prefix) + "' does not start with '/'");
  auto m = std::make_unique<mount>();
  m->dir_fd = ::open(directory.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (m->dir_fd < 0) throw io_error(errno, "http::router: open the static directory " + directory);
  std::vector<std::string_view> parts;
  split_path(prefix, parts);
  for (std::string_view p : parts) {
    if (!p.empty()) m->prefix.emplace_back(p);
  }
  m->options = std::move(o);
  const mount* raw = m.get();
  m->h = [raw](request& req) { return serve_static(*raw, req); };
  impl_->mounts.push_back(std::move(m));
  return *this;
}

namespace {
// A path's segments without allocating (a request with more is refused).
struct segments_of {
  static constexpr std::size_t max = 64;
  std::array<std::string_view, max> items;
  std::size_t count = 0;
  bool overflow = false;
  void push_back(std::string_view s) noexcept {
    if (count == max) {
      overflow = true;
      return;
    }
    items[count++] = s;
  }
  [[nodiscard]] std::size_t size() const noexcept { return count; }
  std::string_view operator[](std::size_t i) const noexcept { return items[i]; }
};

// How well route `r` matches `raw` (literal segments, the earliest the most
// significant), or -1 when it does not.
std::int64_t rank_of(const route_entry& r, const segments_of& raw) {
  if (r.segments.size() != raw.size()) return -1;
  std::uint64_t rank = 0;
  for (std::size_t i = 0; i < raw.size(); ++i) {
    const segment& s = r.segments[i];
    if (s.param) {
      if (raw[i].empty()) return -1;
      continue;
    }
    if (i < 62) rank |= std::uint64_t{1} << (61 - i);
    const bool same = raw[i].find('%') == std::string_view::npos ? raw[i] == s.text : percent_decode(raw[i]) == s.text;
    if (!same) return -1;
  }
  return static_cast<std::int64_t>(rank);
}
}  // namespace

router::match router::find(request& req) const {
  match out;
  const std::string_view path = req.path();
  if (path.empty() || path.front() != '/') {
    out.status = path == "*" ? 404 : 400;  // "OPTIONS *" and authority-form (CONNECT) are not routed
    return out;
  }
  segments_of raw;
  split_path(path, raw);
  if (raw.overflow) {
    out.status = 404;
    return out;
  }
  const std::string_view method = req.method();
  const bool head = method == "HEAD";

  const route_entry* best = nullptr;
  std::int64_t best_rank = -1;
  for (int pass = 0; pass < (head ? 2 : 1) && !best; ++pass) {
    const std::string_view want = pass == 0 ? method : std::string_view("GET");  // HEAD falls back on GET
    for (const auto& r : impl_->routes) {
      if (r->method != want) continue;
      const std::int64_t rank = rank_of(*r, raw);
      if (rank > best_rank) best = r.get(), best_rank = rank;
    }
  }
  if (best) {
    std::vector<std::pair<std::string_view, std::string>> params;
    for (std::size_t i = 0; i < raw.size(); ++i) {
      if (best->segments[i].param) params.emplace_back(best->segments[i].text, percent_decode(raw[i]));
    }
    if (!params.empty()) req.set_params(std::move(params));
    out.target = &best->h;
    return out;
  }

  std::vector<std::string> allowed;
  for (const auto& m : impl_->mounts) {
    if (raw.size() < m->prefix.size()) continue;
    bool ok = true;
    for (std::size_t i = 0; i < m->prefix.size() && ok; ++i) ok = raw[i] == m->prefix[i];
    if (!ok) continue;
    if (method != "GET" && !head) {
      allowed.emplace_back("GET");
      continue;
    }
    // The rest of the path after the prefix, still encoded.
    std::string_view rest = path.substr(1);
    for (std::size_t i = 0; i < m->prefix.size(); ++i) {
      rest.remove_prefix(std::min(rest.size(), m->prefix[i].size()));
      if (!rest.empty() && rest.front() == '/') rest.remove_prefix(1);
    }
    std::vector<std::pair<std::string_view, std::string>> params;
    params.emplace_back("*", std::string(rest));
    req.set_params(std::move(params));
    out.target = &m->h;
    return out;
  }
  for (const auto& r : impl_->routes) {
    if (rank_of(*r, raw) >= 0 && std::find(allowed.begin(), allowed.end(), r->method) == allowed.end())
      allowed.push_back(r->method);
  }
  if (allowed.empty()) {
    out.status = 404;
    return out;
  }
  if (std::find(allowed.begin(), allowed.end(), "GET") != allowed.end() &&
      std::find(allowed.begin(), allowed.end(), "HEAD") == allowed.end())
    allowed.emplace_back("HEAD");
  std::sort(allowed.begin(), allowed.end());
  allowed.erase(std::unique(allowed.begin(), allowed.end()), allowed.end());
  out.status = 405;
  for (const std::string& a : allowed) {
    if (!out.allow.empty()) out.allow += ", ";
    out.allow += a;
  }
  return out;
}

}  // namespace coring::http
