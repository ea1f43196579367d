#include <coring/http/detail/message_parser.hpp>

#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <vector>

namespace {

using coring::http::detail::message_parser;
using coring::http::detail::parse_error;
using coring::http::detail::parser_limits;

// Everything one message produced, fed `piece` bytes at a time.
struct parsed {
  std::string method, target, reason, body;
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers, trailers;
  bool keep_alive = false;
  bool chunked = false;
  int messages = 0;
  parse_error error = parse_error::none;
  std::string error_reason;
};

std::vector<parsed> parse_all(message_parser::kind k, std::string_view input, std::size_t piece = 1 << 20,
                              parser_limits limits = {}, bool eof = false) {
  message_parser p(k, limits);
  std::vector<parsed> out;
  parsed cur;
  std::string pending;  // unconsumed input, fed again with the next piece
  auto take = [&](message_parser::step s) {
    if (s.headers_complete) {
      cur.method = p.method();
      cur.target = p.target();
      cur.status = p.status();
      cur.reason = p.reason();
      for (const auto& [n, v] : p.header_fields()) cur.headers.emplace_back(n, v);
      cur.chunked = p.chunked();
    }
    cur.body.append(s.body);
    if (s.message_complete) {
      for (const auto& [n, v] : p.trailers()) cur.trailers.emplace_back(n, v);
      cur.keep_alive = p.keep_alive();
      ++cur.messages;
      out.push_back(cur);
      cur = parsed{};
    }
    if (s.error != parse_error::none) {
      cur.error = s.error;
      cur.error_reason = p.error_reason();
      out.push_back(cur);
    }
  };
  for (std::size_t at = 0; at < input.size() || !pending.empty();) {
    if (at < input.size()) {
      pending.append(input.substr(at, piece));
      at += piece;
    }
    for (;;) {
      auto s = p.feed(pending);
      take(s);  // s.body is a view into `pending`: use it before erasing
      pending.erase(0, s.consumed);
      if (s.error != parse_error::none) return out;
      const bool event = s.headers_complete || !s.body.empty() || s.message_complete;
      if (!event) break;  // needs more input
    }
    if (at >= input.size() && !pending.empty()) break;
  }
  if (eof) take(p.finish());
  return out;
}

}  // namespace

TEST_SUITE("net/http_parser") {

TEST_CASE("requests are parsed whole, whatever the pieces they arrive in") {
  const std::string_view raw =
      "POST /submit?x=1 HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\nX-Many: a\r\nx-many: b\r\n\r\nhello";
  for (std::size_t piece : {std::size_t{1}, std::size_t{3}, std::size_t{7}, raw.size()}) {
    CAPTURE(piece);
    auto msgs = parse_all(message_parser::kind::request, raw, piece);
    REQUIRE(msgs.size() == 1);
    CHECK(msgs[0].error == parse_error::none);
    CHECK(msgs[0].method == "POST");
    CHECK(msgs[0].target == "/submit?x=1");
    CHECK(msgs[0].body == "hello");
    CHECK(msgs[0].keep_alive);
    REQUIRE(msgs[0].headers.size() == 4);
    CHECK(msgs[0].headers[3] == std::pair<std::string, std::string>{"x-many", "b"});
  }
}

TEST_CASE("pipelined requests come out one at a time, in order") {
  const std::string_view raw =
      "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
      "GET /b HTTP/1.1\r\nHost: h\r\n\r\n"
      "POST /c HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nok"
      "GET /d HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
  auto msgs = parse_all(message_parser::kind::request, raw);
  REQUIRE(msgs.size() == 4);
  CHECK(msgs[0].target == "/a");
  CHECK(msgs[1].target == "/b");
  CHECK(msgs[2].target == "/c");
  CHECK(msgs[2].body == "ok");
  CHECK(msgs[3].target == "/d");
  CHECK(msgs[2].keep_alive);
  CHECK_FALSE(msgs[3].keep_alive);
}

TEST_CASE("chunked bodies are decoded and their trailers kept") {
  const std::string_view raw =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Checksum: 42\r\n\r\n";
  for (std::size_t piece : {std::size_t{1}, std::size_t{5}, raw.size()}) {
    CAPTURE(piece);
    auto msgs = parse_all(message_parser::kind::response, raw, piece);
    REQUIRE(msgs.size() == 1);
    CHECK(msgs[0].status == 200);
    CHECK(msgs[0].reason == "OK");
    CHECK(msgs[0].chunked);
    CHECK(msgs[0].body == "hello world");
    REQUIRE(msgs[0].trailers.size() == 1);
    CHECK(msgs[0].trailers[0].second == "42");
  }
}

TEST_CASE("a response delimited by the connection's close ends at finish()") {
  auto msgs = parse_all(message_parser::kind::response, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it", 4,
                        {}, /*eof=*/true);
  REQUIRE(msgs.size() == 1);
  CHECK(msgs[0].body == "all of it");
  CHECK(msgs[0].error == parse_error::none);
}

TEST_CASE("a body cut short by the close is an error, not a message") {
  auto msgs = parse_all(message_parser::kind::response, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", 64,
                        {}, /*eof=*/true);
  REQUIRE(msgs.size() == 1);
  CHECK(msgs[0].error == parse_error::ended_early);
  CHECK(msgs[0].body == "short");
}

TEST_CASE("the answer to a HEAD has no body whatever its Content-Length says") {
  message_parser p(message_parser::kind::response);
  p.skip_body();
  std::string_view raw = "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n";
  auto s = p.feed(raw);
  CHECK(s.headers_complete);
  CHECK(s.message_complete);
  CHECK(p.content_length() == 1234u);
  raw.remove_prefix(s.consumed);
  s = p.feed(raw);
  CHECK(s.headers_complete);
  CHECK(p.status() == 204);
}

// Malformed and smuggling-shaped requests: strict llhttp refuses each.
TEST_CASE("malformed and smuggling-shaped requests are refused") {
  struct bad {
    std::string what;
    std::string_view raw;
  };
  const bad cases[] = {
      {"Content-Length with Transfer-Encoding",
       "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
      {"two different Content-Lengths", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde"},
      {"a bad chunk size", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"},
      {"bare LF line endings", "GET / HTTP/1.1\nHost: h\n\n"},
      {"a space before the colon", "GET / HTTP/1.1\r\nHost : h\r\n\r\n"},
      {"a non-numeric Content-Length", "POST / HTTP/1.1\r\nContent-Length: 4x\r\n\r\nabcd"},
      {"Transfer-Encoding not ending in chunked", "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\nabc"},
      {"a control character in a header value", "GET / HTTP/1.1\r\nX: a\x01z\r\n\r\n"},
      {"an unknown HTTP version", "GET / HTTP/2.7\r\n\r\n"},
      {"garbage", "\x16\x03\x01\x02\x00 hello"},
  };
  for (const bad& c : cases) {
    CAPTURE(c.what);
    auto msgs = parse_all(message_parser::kind::request, c.raw);
    REQUIRE_FALSE(msgs.empty());
    CHECK(msgs.back().error == parse_error::malformed);
    CHECK_FALSE(msgs.back().error_reason.empty());
  }
}

TEST_CASE("limits on the head are errors of their own") {
  std::string many = "GET / HTTP/1.1\r\n";
  for (int i = 0; i < 20; ++i) many += "X-" + std::to_string(i) + ": v\r\n";
  many += "\r\n";
  auto msgs = parse_all(message_parser::kind::request, many, 1 << 20, {.max_head_bytes = 1 << 20, .max_headers = 10});
  REQUIRE_FALSE(msgs.empty());
  CHECK(msgs.back().error == parse_error::too_many_headers);

  std::string big = "GET / HTTP/1.1\r\nX-Big: " + std::string(5000, 'a') + "\r\n\r\n";
  msgs = parse_all(message_parser::kind::request, big, 100, {.max_head_bytes = 4096, .max_headers = 100});
  REQUIRE_FALSE(msgs.empty());
  CHECK(msgs.back().error == parse_error::head_too_large);
  CHECK(msgs.back().error_reason == "the head is larger than 4096 bytes");
}

TEST_CASE("HTTP/1.0 keeps the connection only when asked") {
  auto msgs = parse_all(message_parser::kind::request, "GET / HTTP/1.0\r\n\r\n");
  REQUIRE(msgs.size() == 1);
  CHECK_FALSE(msgs[0].keep_alive);
  msgs = parse_all(message_parser::kind::request, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  REQUIRE(msgs.size() == 1);
  CHECK(msgs[0].keep_alive);
}

}  // TEST_SUITE
