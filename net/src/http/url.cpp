#include <coring/http/url.hpp>

#include <coring/http/error.hpp>

#include <charconv>
#include <optional>

namespace coring::http {

namespace {

constexpr char lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }
constexpr bool is_alpha(char c) noexcept { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
constexpr bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }
constexpr bool is_hex(char c) noexcept { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
constexpr int hex_value(char c) noexcept {
  return is_digit(c) ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : c - 'A' + 10;
}

std::string to_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = lower(c);
  return out;
}

std::uint16_t default_port(std::string_view scheme) noexcept {
  if (scheme == "http" || scheme == "ws") return 80;
  if (scheme == "https" || scheme == "wss") return 443;
  return 0;
}

// The five parts of a URI reference (RFC 3986 section 4.1); an absent part
// is nullopt, which differs from an empty one ("?" has an empty query).
struct reference_parts {
  std::optional<std::string_view> scheme;
  std::optional<std::string_view> authority;
  std::string_view path;
  std::optional<std::string_view> query;
  std::optional<std::string_view> fragment;
};

reference_parts split_reference(std::string_view s) {
  reference_parts r;
  if (auto hash = s.find('#'); hash != std::string_view::npos) {
    r.fragment = s.substr(hash + 1);
    s = s.substr(0, hash);
  }
  if (auto q = s.find('?'); q != std::string_view::npos) {
    r.query = s.substr(q + 1);
    s = s.substr(0, q);
  }
  // A scheme is letters, digits, + - . before the first ':' that comes
  // before any '/'.
  if (auto colon = s.find(':'); colon != std::string_view::npos && colon > 0 && is_alpha(s[0])) {
    bool ok = true;
    for (std::size_t i = 0; i < colon; ++i) {
      const char c = s[i];
      if (!(is_alpha(c) || is_digit(c) || c == '+' || c == '-' || c == '.')) ok = false;
    }
    if (ok) {
      r.scheme = s.substr(0, colon);
      s = s.substr(colon + 1);
    }
  }
  if (s.starts_with("//")) {
    s.remove_prefix(2);
    const std::size_t end = s.find('/');
    r.authority = s.substr(0, end);
    s = end == std::string_view::npos ? std::string_view{} : s.substr(end);
  }
  r.path = s;
  return r;
}

// RFC 3986 section 5.2.4.
std::string remove_dot_segments(std::string_view in) {
  std::string out;
  while (!in.empty()) {
    if (in.starts_with("../")) {
      in.remove_prefix(3);
    } else if (in.starts_with("./")) {
      in.remove_prefix(2);
    } else if (in.starts_with("/./")) {
      in.remove_prefix(2);
    } else if (in == "/.") {
      in = "/";
    } else if (in.starts_with("/../") || in == "/..") {
      in = in.size() == 3 ? std::string_view("/") : in.substr(3);
      const std::size_t slash = out.rfind('/');
      out.erase(slash == std::string::npos ? 0 : slash);
    } else if (in == "." || in == "..") {
      in = {};
    } else {
      const std::size_t start = in.front() == '/' ? 1 : 0;
      const std::size_t next = in.find('/', start);
      out.append(in.substr(0, next));
      in = next == std::string_view::npos ? std::string_view{} : in.substr(next);
    }
  }
  return out;
}

}  // namespace

url url::parse(std::string_view text) {
  const std::string shown(text.substr(0, 200));
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c <= 0x20 || c == 0x7f)
      throw url_error(shown, "a space or control character at position " + std::to_string(i) + " (percent-encode it)");
  }
  reference_parts parts = split_reference(text);
  if (!parts.scheme) throw url_error(shown, "no scheme (an absolute URL starts like http://)");
  if (!parts.authority) throw url_error(shown, "no host (expected '//' after '" + std::string(*parts.scheme) + ":')");

  url u;
  u.scheme_ = to_lower(*parts.scheme);
  std::string_view authority = *parts.authority;
  if (auto at = authority.rfind('@'); at != std::string_view::npos) {
    u.userinfo_ = std::string(authority.substr(0, at));
    authority.remove_prefix(at + 1);
  }
  std::string_view host;
  std::string_view port;
  if (authority.starts_with('[')) {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) throw url_error(shown, "an IPv6 host without its closing ']'");
    host = authority.substr(1, close - 1);
    for (char c : host) {
      if (!(is_hex(c) || c == ':' || c == '.')) throw url_error(shown, "an IPv6 host with a '" + std::string(1, c) + "'");
    }
    std::string_view rest = authority.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') throw url_error(shown, "text after the IPv6 host's ']'");
      port = rest.substr(1);
    }
  } else {
    const std::size_t colon = authority.rfind(':');
    host = authority.substr(0, colon);
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
    for (char c : host) {
      if (c == '[' || c == ']' || c == '/' || c == '\\')
        throw url_error(shown, "a host with a '" + std::string(1, c) + "'");
    }
  }
  if (host.empty()) throw url_error(shown, "an empty host");
  u.host_ = to_lower(host);
  if (!port.empty()) {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc() || end != port.data() + port.size())
      throw url_error(shown, "a port that is not a number: '" + std::string(port) + "'");
    if (value == 0 || value > 65535) throw url_error(shown, "a port out of range: " + std::string(port));
    u.port_ = static_cast<std::uint16_t>(value);
    u.has_port_ = true;
  }
  u.path_ = parts.path.empty() ? std::string("/") : std::string(parts.path);
  if (parts.query) {
    u.query_ = std::string(*parts.query);
    u.has_query_ = true;
  }
  if (parts.fragment) u.fragment_ = std::string(*parts.fragment);
  return u;
}

std::uint16_t url::port() const noexcept { return has_port_ ? port_ : default_port(scheme_); }

std::string url::authority() const {
  std::string out = host_.find(':') != std::string::npos ? "[" + host_ + "]" : host_;
  if (has_port_ && port_ != default_port(scheme_)) out += ":" + std::to_string(port_);
  return out;
}

std::string url::origin() const { return scheme_ + "://" + authority(); }

std::string url::target() const {
  std::string out = path_;
  if (has_query_) {
    out += '?';
    out += query_;
  }
  return out;
}

std::string url::to_string() const {
  std::string out = scheme_ + "://";
  if (!userinfo_.empty()) out += userinfo_ + "@";
  out += authority();
  out += target();
  if (!fragment_.empty()) out += "#" + fragment_;
  return out;
}

url url::resolve(std::string_view reference) const {
  reference_parts r = split_reference(reference);
  std::string result;
  auto append_rest = [&](std::string_view path, std::optional<std::string_view> query) {
    result += path.empty() ? std::string("/") : remove_dot_segments(path);
    if (query) {
      result += '?';
      result += *query;
    }
    if (r.fragment) {
      result += '#';
      result += *r.fragment;
    }
  };
  if (r.scheme) {
    result = std::string(*r.scheme) + ":";
    if (r.authority) result += "//" + std::string(*r.authority);
    append_rest(r.path, r.query);
    return parse(result);
  }
  result = scheme_ + "://";
  if (r.authority) {
    result += std::string(*r.authority);
    append_rest(r.path, r.query);
    return parse(result);
  }
  if (!userinfo_.empty()) result += userinfo_ + "@";
  result += authority();
  if (r.path.empty()) {
    std::optional<std::string_view> q = r.query ? r.query : (has_query_ ? std::optional<std::string_view>(query_) : std::nullopt);
    append_rest(path_, q);
  } else if (r.path.front() == '/') {
    append_rest(r.path, r.query);
  } else {
    // Merge (section 5.2.3): the base path up to its last '/', then the reference.
    const std::size_t slash = path_.rfind('/');
    std::string merged = (slash == std::string::npos ? std::string("/") : path_.substr(0, slash + 1)) + std::string(r.path);
    append_rest(merged, r.query);
  }
  return parse(result);
}

url url::with_query(const std::vector<std::pair<std::string, std::string>>& params) const {
  url u = *this;
  u.query_ = build_query(params);
  u.has_query_ = !params.empty();
  return u;
}

std::string percent_decode(std::string_view s, bool plus_as_space) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '%' && i + 2 < s.size() && is_hex(s[i + 1]) && is_hex(s[i + 2])) {
      out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
      i += 2;
    } else if (c == '+' && plus_as_space) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

std::string percent_encode(std::string_view s, std::string_view keep) {
  static constexpr char digits[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (is_alpha(c) || is_digit(c) || c == '-' || c == '.' || c == '_' || c == '~' ||
        keep.find(c) != std::string_view::npos) {
      out += c;
    } else {
      const auto b = static_cast<unsigned char>(c);
      out += '%';
      out += digits[b >> 4];
      out += digits[b & 15];
    }
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> parse_query(std::string_view query) {
  std::vector<std::pair<std::string, std::string>> out;
  while (!query.empty()) {
    const std::size_t amp = query.find('&');
    std::string_view item = query.substr(0, amp);
    if (!item.empty()) {
      const std::size_t eq = item.find('=');
      out.emplace_back(percent_decode(item.substr(0, eq), true),
                       eq == std::string_view::npos ? std::string() : percent_decode(item.substr(eq + 1), true));
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return out;
}

std::string build_query(const std::vector<std::pair<std::string, std::string>>& params) {
  std::string out;
  for (const auto& [k, v] : params) {
    if (!out.empty()) out += '&';
    out += percent_encode(k);
    out += '=';
    out += percent_encode(v);
  }
  return out;
}

}  // namespace coring::http
