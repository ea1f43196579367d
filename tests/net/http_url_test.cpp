#include <coring/http/url.hpp>

#include <coring/http/error.hpp>
#include <coring/http/headers.hpp>
#include <coring/http/status.hpp>

#include <doctest/doctest.h>

#include <string>
#include <vector>

using coring::http::url;

TEST_SUITE("net/http_url") {

TEST_CASE("absolute URLs are taken apart") {
  struct row {
    const char* text;
    const char* scheme;
    const char* host;
    int port;
    const char* target;
    const char* normalised;
  };
  const row rows[] = {
      {"http://example.com", "http", "example.com", 80, "/", "http://example.com/"},
      {"HTTP://Example.COM:8080/a/b?x=1#frag", "http", "example.com", 8080, "/a/b?x=1",
       "http://example.com:8080/a/b?x=1#frag"},
      {"https://example.com:443/", "https", "example.com", 443, "/", "https://example.com/"},
      {"http://127.0.0.1:9/x", "http", "127.0.0.1", 9, "/x", "http://127.0.0.1:9/x"},
      {"http://[::1]:8080/v6", "http", "::1", 8080, "/v6", "http://[::1]:8080/v6"},
      {"https://user:pw@host/p?", "https", "host", 443, "/p?", "https://user:pw@host/p?"},
      {"http://h/a%20b?q=%2F", "http", "h", 80, "/a%20b?q=%2F", "http://h/a%20b?q=%2F"},
  };
  for (const row& r : rows) {
    CAPTURE(r.text);
    url u = url::parse(r.text);
    CHECK(u.scheme() == r.scheme);
    CHECK(u.host() == r.host);
    CHECK(u.port() == r.port);
    CHECK(u.target() == r.target);
    CHECK(u.to_string() == r.normalised);
  }
  CHECK(url::parse("http://[::1]:8080/").authority() == "[::1]:8080");
  CHECK(url::parse("https://h:443/x").origin() == "https://h");
}

TEST_CASE("bad URLs are url_errors that say what is wrong") {
  struct row {
    const char* text;
    const char* why;
  };
  const row rows[] = {
      {"example.com/path", "no scheme"},
      {"http:/one-slash", "no host"},
      {"http://", "an empty host"},
      {"http://h:99999/", "a port out of range"},
      {"http://h:12ab/", "a port that is not a number"},
      {"http://h/a b", "a space or control character at position 10"},
      {"http://[::1/", "closing ']'"},
  };
  for (const row& r : rows) {
    CAPTURE(r.text);
    try {
      (void)url::parse(r.text);
      FAIL("parsed");
    } catch (const coring::http::url_error& e) {
      CHECK(std::string(e.what()).find(r.why) != std::string::npos);
      CHECK(std::string(e.what()).find(r.text) != std::string::npos);
    }
  }
}

TEST_CASE("references resolve against a base as RFC 3986 says") {
  // The examples of RFC 3986 section 5.4.
  const url base = url::parse("http://a/b/c/d;p?q");
  struct row {
    const char* ref;
    const char* result;
  };
  const row rows[] = {
      {"g", "http://a/b/c/g"},          {"./g", "http://a/b/c/g"},        {"g/", "http://a/b/c/g/"},
      {"/g", "http://a/g"},             {"//g", "http://g/"},             {"?y", "http://a/b/c/d;p?y"},
      {"g?y", "http://a/b/c/g?y"},      {"#s", "http://a/b/c/d;p?q#s"},   {"g#s", "http://a/b/c/g#s"},
      {"", "http://a/b/c/d;p?q"},       {".", "http://a/b/c/"},           {"./", "http://a/b/c/"},
      {"..", "http://a/b/"},            {"../", "http://a/b/"},           {"../g", "http://a/b/g"},
      {"../..", "http://a/"},           {"../../g", "http://a/g"},        {"../../../g", "http://a/g"},
      {"/./g", "http://a/g"},           {"/../g", "http://a/g"},          {"g.", "http://a/b/c/g."},
      {"g/../h", "http://a/b/c/h"},     {"https://x/y", "https://x/y"},
  };
  for (const row& r : rows) {
    CAPTURE(r.ref);
    CHECK(base.resolve(r.ref).to_string() == r.result);
  }
}

TEST_CASE("query strings are decoded and built") {
  auto q = coring::http::parse_query("a=1&b=two+words&c&d=%2Fx%3D&a=2");
  REQUIRE(q.size() == 5);
  CHECK(q[1] == std::pair<std::string, std::string>{"b", "two words"});
  CHECK(q[2] == std::pair<std::string, std::string>{"c", ""});
  CHECK(q[3].second == "/x=");
  CHECK(q[4].second == "2");
  CHECK(coring::http::build_query({{"k", "a b&c"}, {"x", "/"}}) == "k=a%20b%26c&x=%2F");
  CHECK(url::parse("http://h/p?old").with_query({{"n", "1"}}).target() == "/p?n=1");
  CHECK(coring::http::percent_decode("%41%zz%4") == "A%zz%4");
  CHECK(coring::http::percent_encode("/a b", "/") == "/a%20b");
}

TEST_CASE("header fields keep their order and are found whatever their case") {
  coring::http::headers h;
  h.add("Content-Type", "text/plain");
  h.add("Set-Cookie", "a=1");
  h.add("set-cookie", "b=2");
  h.add("Connection", "keep-alive, Upgrade");
  CHECK(h.get("content-type") == "text/plain");
  CHECK(h.get_all("SET-COOKIE") == std::vector<std::string_view>{"a=1", "b=2"});
  CHECK(h.has_token("connection", "upgrade"));
  CHECK_FALSE(h.has_token("connection", "close"));
  h.set("Set-Cookie", "c=3");
  CHECK(h.get_all("set-cookie") == std::vector<std::string_view>{"c=3"});
  CHECK(h.remove("content-type") == 1);
  CHECK_FALSE(h.contains("Content-Type"));
  std::string out;
  h.serialize_to(out);
  CHECK(out == "Set-Cookie: c=3\r\nConnection: keep-alive, Upgrade\r\n");
}

TEST_CASE("status codes have their reason phrases") {
  CHECK(coring::http::reason_phrase(200) == "OK");
  CHECK(coring::http::reason_phrase(404) == "Not Found");
  CHECK(coring::http::reason_phrase(431) == "Request Header Fields Too Large");
  CHECK(coring::http::reason_phrase(299).empty());
}

}  // TEST_SUITE
