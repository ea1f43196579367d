#pragma once
// http::url: an absolute URL taken apart (RFC 3986), as the client needs it
// to connect and to follow redirects, and as the server's router needs its
// query parameters.
//
//   auto u = http::url::parse("https://user@example.com:8443/a/b?x=1&y=two#top");
//   u.scheme();   // "https"        u.host();  // "example.com"   u.port();  // 8443
//   u.target();   // "/a/b?x=1&y=two" (what a request line carries)
//   u.origin();   // "https://example.com:8443"
//   auto next = u.resolve("../c?z");   // "https://user@example.com:8443/c?z"
//   for (auto& [k, v] : http::parse_query(u.query())) ...
//
// Hosts are lower-cased; an IPv6 literal is given without its brackets by
// host() and with them by authority(). The default port of http is 80, of
// https 443.

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace coring::http {

class url {
 public:
  /// Parses an absolute URL ("scheme://host[:port][/path][?query][#fragment]").
  /// **Errors:** http::url_error naming the text and what is wrong with it
  /// (no scheme, empty host, a port out of range, a space or control character).
  [[nodiscard]] static url parse(std::string_view text);

  /// Lower-case scheme ("http", "https").
  [[nodiscard]] const std::string& scheme() const noexcept { return scheme_; }
  /// Userinfo before '@' (percent-encoded as given), or empty.
  [[nodiscard]] const std::string& userinfo() const noexcept { return userinfo_; }
  /// The host, lower-cased; an IPv6 literal without brackets.
  [[nodiscard]] const std::string& host() const noexcept { return host_; }
  /// The port: the explicit one, else the scheme's default (80, 443; 0 if unknown).
  [[nodiscard]] std::uint16_t port() const noexcept;
  /// True if the URL names a port.
  [[nodiscard]] bool has_port() const noexcept { return has_port_; }
  /// The path, percent-encoded as given; "/" if the URL had none.
  [[nodiscard]] const std::string& path() const noexcept { return path_; }
  /// The query without '?', or empty.
  [[nodiscard]] const std::string& query() const noexcept { return query_; }
  /// True if the URL had a '?' (even with an empty query).
  [[nodiscard]] bool has_query() const noexcept { return has_query_; }
  /// The fragment without '#', or empty.
  [[nodiscard]] const std::string& fragment() const noexcept { return fragment_; }

  /// "host[:port]" as a Host header carries it (the port only when it is not
  /// the scheme's default; IPv6 literals in brackets).
  [[nodiscard]] std::string authority() const;
  /// "scheme://host[:port]": which connections may serve this URL.
  [[nodiscard]] std::string origin() const;
  /// "/path[?query]": the request-target of a request line.
  [[nodiscard]] std::string target() const;
  /// The whole URL, normalised (lower-case scheme and host, no default port).
  [[nodiscard]] std::string to_string() const;

  /// The URL a reference (a redirect's Location, a link) points to, relative
  /// to this one (RFC 3986 section 5.2: "../x", "/y", "?q", "//host/p", "https://...").
  /// **Errors:** http::url_error if the result is not a valid absolute URL.
  [[nodiscard]] url resolve(std::string_view reference) const;

  /// This URL with its query replaced by `params` (encoded as a form would).
  [[nodiscard]] url with_query(const std::vector<std::pair<std::string, std::string>>& params) const;

  friend bool operator==(const url& a, const url& b) noexcept = default;

 private:
  std::string scheme_;
  std::string userinfo_;
  std::string host_;
  std::string path_ = "/";
  std::string query_;
  std::string fragment_;
  std::uint16_t port_ = 0;
  bool has_port_ = false;
  bool has_query_ = false;
};

/// Decodes %XX escapes (and '+' as a space when `plus_as_space`, as HTML
/// forms and query strings use it). Invalid escapes are kept as they are.
[[nodiscard]] std::string percent_decode(std::string_view s, bool plus_as_space = false);

/// Encodes every byte outside RFC 3986's unreserved set (A-Z a-z 0-9 - . _ ~)
/// as %XX; `keep` lists further characters to leave alone (e.g. "/" for paths).
[[nodiscard]] std::string percent_encode(std::string_view s, std::string_view keep = {});

/// "a=1&b=two%20words&c" → {{"a","1"},{"b","two words"},{"c",""}}, decoded,
/// in order, repeated keys kept.
[[nodiscard]] std::vector<std::pair<std::string, std::string>> parse_query(std::string_view query);

/// The inverse of parse_query: encoded "k=v&k2=v2".
[[nodiscard]] std::string build_query(const std::vector<std::pair<std::string, std::string>>& params);

}  // namespace coring::http
