#include <coring/http/client.hpp>

#include <doctest/doctest.h>

#include <coring/error.hpp>
#include <coring/gather.hpp>
#include <coring/http/blocking_client.hpp>
#include <coring/net/buffered_reader.hpp>
#include <coring/net/tls.hpp>
#include <coring/sleep.hpp>
#include <coring/spawn.hpp>
#include <coring/task.hpp>

#include "support/fds.hpp"
#include "support/http_peers.hpp"
#include "support/net.hpp"
#include "support/tls.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace http = coring::http;
using coring::task;
using coring_test::nginx_peer;
using coring_test::python_peer;
using coring_test::run_net;
using namespace std::chrono_literals;

// Request options are built in named variables before each co_await: g++ 12
// relocates a by-value temporary inside a co_await expression bitwise, which
// breaks the strings in it (see <coring/http/client.hpp>).

// The connection serial numbers nginx logged, one per request, in order.
// nginx writes a request's log line after it has sent the response, so the
// last lines may come a moment after the client has its answer: wait (up to
// 10 s) until `expected` lines are there.
std::vector<std::string> logged_connections(const nginx_peer& nginx, std::size_t expected) {
  std::vector<std::string> out;
  for (int tries = 0; tries < 1000; ++tries) {
    out.clear();
    std::istringstream in(nginx.access_log());
    for (std::string line; std::getline(in, line);) out.push_back(line.substr(0, line.find(' ')));
    if (out.size() >= expected) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return out;
}

// The peer's counters (/stats), asked on a connection of their own.
task<nlohmann::json> peer_stats(const python_peer& peer) {
  http::client probe({.keepalive_timeout = 0s});
  auto r = co_await probe.get(peer.url("/stats"));
  co_return co_await r.json();
}

// A listener whose accept queue is full and never drained: connects to it hang.
struct black_hole {
  int listener = -1;
  std::vector<int> fillers;
  std::uint16_t port = 0;
  black_hole() {
    listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(listener, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(listener, 0) == 0);
    socklen_t len = sizeof a;
    ::getsockname(listener, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
    for (int i = 0; i < 3; ++i) {
      int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
      (void)::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
      fillers.push_back(fd);
    }
    std::this_thread::sleep_for(20ms);
  }
  ~black_hole() {
    for (int fd : fillers) ::close(fd);
    ::close(listener);
  }
};

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

TEST_SUITE("net/http_client") {

TEST_CASE("get from nginx gives status, reason, headers and the body as text, bytes and chunks" *
          doctest::timeout(20)) {
  nginx_peer nginx;
  run_net([&]() -> task<> {
    http::client session;
    auto r = co_await session.get(nginx.url("/1k.bin"));
    CHECK(r.status() == 200);
    CHECK(r.reason() == "OK");
    CHECK(r.ok());
    CHECK(r.headers().get("content-length") == "1024");
    CHECK(r.headers().get("SERVER").value_or("").starts_with("nginx"));
    CHECK(r.content_length() == 1024u);
    CHECK(co_await r.text() == std::string(1024, 'k'));
    CHECK(r.body_complete());

    auto r2 = co_await session.get(nginx.url("/100k.bin"));
    const std::vector<std::byte> b = co_await r2.bytes();
    CHECK(std::string(reinterpret_cast<const char*>(b.data()), b.size()) == nginx.file("100k.bin"));

    auto r3 = co_await session.get(nginx.url("/100k.bin"));
    http::body_stream body = r3.body();
    std::string joined;
    int pieces = 0;
    for (auto piece = co_await body.next(); !piece.empty(); piece = co_await body.next()) {
      joined.append(reinterpret_cast<const char*>(piece.data()), piece.size());
      ++pieces;
    }
    CHECK(pieces >= 1);
    CHECK(joined == nginx.file("100k.bin"));
    CHECK(session.stats().connections_opened == 1);
  }());
}

TEST_CASE("https to nginx with a test CA, reusing its connection, and an unknown CA is a connect_error" *
          doctest::timeout(20)) {
  const coring_test::test_pki& pki = coring_test::pki();
  nginx_peer nginx(pki.server.cert, pki.server.key);
  REQUIRE(coring_test::wait_for_port(nginx.https_port()));
  run_net([&]() -> task<> {
    http::client session({.tls = {.ca_file = pki.ca}});
    for (int i = 0; i < 3; ++i) {
      auto r = co_await session.get(nginx.https_url("/100k.bin"));
      CHECK(r.status() == 200);
      CHECK(co_await r.text() == nginx.file("100k.bin"));
    }
    auto z = co_await session.get(nginx.https_url("/page.txt"));
    CHECK(z.headers().get("Content-Encoding") == "gzip");
    CHECK(co_await z.text() == nginx.file("page.txt"));
    CHECK(session.stats().connections_opened == 1);

    http::client system_trust;  // the system's CAs do not know the test CA
    bool thrown = false;
    try {
      (void)co_await system_trust.get(nginx.https_url("/1k.bin"));
    } catch (const http::connect_error& e) {
      thrown = true;
      CHECK(std::string(e.what()).find(nginx.https_url("/1k.bin")) != std::string::npos);
    }
    CHECK(thrown);
    http::client insecure({.tls = {.verify = false}});
    auto r = co_await insecure.get(nginx.https_url("/1k.bin"));
    CHECK(co_await r.text() == std::string(1024, 'k'));
  }());
}

TEST_CASE("raise_for_status throws status_error with the status, method and URL" * doctest::timeout(20)) {
  nginx_peer nginx;
  run_net([&]() -> task<> {
    http::client session;
    auto r = co_await session.get(nginx.url("/missing"));
    CHECK(r.status() == 404);
    CHECK(!r.ok());
    bool thrown = false;
    try {
      r.raise_for_status();
    } catch (const http::status_error& e) {
      thrown = true;
      CHECK(e.status() == 404);
      CHECK(e.method() == "GET");
      CHECK(e.url() == nginx.url("/missing"));
      CHECK(std::string(e.what()).find("404 Not Found") != std::string::npos);
    }
    CHECK(thrown);
    (void)co_await r.text();
  }());
}

TEST_CASE("100 sequential GETs use one connection, counted by nginx" * doctest::timeout(30)) {
  nginx_peer nginx;
  run_net([&]() -> task<> {
    http::client session;
    for (int i = 0; i < 100; ++i) {
      auto r = co_await session.get(nginx.url("/1k.bin"));
      CHECK((co_await r.text()).size() == 1024);
    }
    CHECK(session.stats().connections_opened == 1);
    CHECK(session.stats().reused == 99);
  }());
  const auto serials = logged_connections(nginx, 100);
  REQUIRE(serials.size() == 100);
  CHECK(std::set<std::string>(serials.begin(), serials.end()).size() == 1);
}

TEST_CASE("gzip from nginx (chunked) is advertised and decoded, and auto_decompress off gives it raw" *
          doctest::timeout(20)) {
  nginx_peer nginx;
  run_net([&]() -> task<> {
    http::client session;
    auto r = co_await session.get(nginx.url("/page.txt"));
    CHECK(r.headers().get("Content-Encoding") == "gzip");
    CHECK(r.headers().get("Transfer-Encoding") == "chunked");
    CHECK(co_await r.text() == nginx.file("page.txt"));
    auto again = co_await session.get(nginx.url("/page.txt"));
    CHECK(co_await again.text() == nginx.file("page.txt"));
    CHECK(session.stats().connections_opened == 1);  // chunked bodies end cleanly: reused

    http::client raw({.auto_decompress = false});
    auto r2 = co_await raw.get(nginx.url("/page.txt"));
    CHECK(!r2.headers().contains("Content-Encoding"));  // not asked for: not sent
    CHECK(co_await r2.text() == nginx.file("page.txt"));
    http::request_options ask_gzip{.headers = {{"Accept-Encoding", "gzip"}}};
    auto r3 = co_await raw.get(nginx.url("/page.txt"), std::move(ask_gzip));
    const std::string zipped = co_await r3.text();
    REQUIRE(zipped.size() > 2);
    CHECK(static_cast<unsigned char>(zipped[0]) == 0x1f);
    CHECK(static_cast<unsigned char>(zipped[1]) == 0x8b);
    CHECK(zipped.size() < nginx.file("page.txt").size());
  }());
}

TEST_CASE("deflate with and without the zlib wrapper is decoded, and bad gzip is a protocol_error" *
          doctest::timeout(20)) {
  python_peer peer;
  run_net([&]() -> task<> {
    http::client session;
    auto r = co_await session.get(peer.url("/deflate"));
    std::string expected;
    for (int i = 0; i < 1000; ++i) expected += "deflated ";
    CHECK(co_await r.text() == expected);
    auto r2 = co_await session.get(peer.url("/raw-deflate"));
    expected.clear();
    for (int i = 0; i < 1000; ++i) expected += "raw deflate ";
    CHECK(co_await r2.text() == expected);
    auto r3 = co_await session.get(peer.url("/bad-gzip"));
    CHECK_THROWS_AS(co_await r3.text(), http::protocol_error);
  }());
}

TEST_CASE("redirects 301, 302, 303, 307 and 308 from nginx are followed, with their history" *
          doctest::timeout(20)) {
  nginx_peer nginx;
  run_net([&]() -> task<> {
    http::client session;
    for (const char* path : {"/r301", "/r302", "/r303", "/r307", "/r308"}) {
      CAPTURE(path);
      auto r = co_await session.get(nginx.url(path));
      CHECK(r.status() == 200);
      CHECK(r.url().to_string() == nginx.url("/page.txt"));
      REQUIRE(r.history().size() == 1);
      CHECK(r.history()[0].to_string() == nginx.url(path));
      CHECK(co_await r.text() == nginx.file("page.txt"));
    }
    http::request_options o1{.allow_redirects = false};
    auto r = co_await session.get(nginx.url("/r301"), std::move(o1));
    CHECK(r.status() == 301);
    CHECK(r.headers().get("Location").value_or("").ends_with("/page.txt"));
    (void)co_await r.text();
    CHECK(session.stats().connections_opened == 1);  // the redirects' bodies were drained
  }());
}

TEST_CASE("redirect method rules: 303 and POST on 301/302 become GET, 307/308 keep method and body" *
          doctest::timeout(20)) {
  python_peer peer;
  run_net([&]() -> task<> {
    http::client session;
    struct rule {
      int code;
      const char* method;
      const char* expected_method;
      bool keeps_body;
    };
    for (const rule& x : {rule{301, "POST", "GET", false}, rule{302, "POST", "GET", false},
                          rule{303, "POST", "GET", false}, rule{303, "PUT", "GET", false},
                          rule{307, "POST", "POST", true}, rule{308, "PUT", "PUT", true},
                          rule{301, "PUT", "PUT", true}}) {
      CAPTURE(x.code);
      CAPTURE(x.method);
      http::request_options o{.query = {{"code", std::to_string(x.code)}, {"to", "/echo"}}, .body = "the body"};
      auto r = co_await session.request(x.method, peer.url("/redirect"), std::move(o));
      auto doc = co_await r.json();
      CHECK(doc["method"] == x.expected_method);
      CHECK(doc["body"] == (x.keeps_body ? "the body" : ""));
      CHECK(r.method() == x.expected_method);
    }
  }());
}

TEST_CASE("more than max_redirects is a redirect_error, and Authorization is dropped when the host changes" *
          doctest::timeout(20)) {
  python_peer peer;
  run_net([&]() -> task<> {
    http::client session;
    bool thrown = false;
    try {
      auto r = co_await session.get(peer.url("/loop"));
    } catch (const http::redirect_error& e) {
      thrown = true;
      CHECK(std::string(e.what()).find("more than 10 redirects") != std::string::npos);
      CHECK(std::string(e.what()).find(peer.url("/loop")) != std::string::npos);
    }
    CHECK(thrown);
    http::request_options three{.max_redirects = 3};
    CHECK_THROWS_AS(co_await session.get(peer.url("/loop"), std::move(three)), http::redirect_error);

    const http::headers auth{{"Authorization", "Bearer secret"}};
    http::request_options to_same{.headers = auth, .query = {{"to", "/echo"}}};
    auto same = co_await session.get(peer.url("/redirect"), std::move(to_same));
    CHECK((co_await same.json())["headers"]["authorization"] == "Bearer secret");
    const std::string elsewhere = "http://localhost:" + std::to_string(peer.port()) + "/echo";
    http::request_options to_other{.headers = auth, .query = {{"to", elsewhere}}};
    auto other = co_await session.get(peer.url("/redirect"), std::move(to_other));
    CHECK(other.url().host() == "localhost");
    CHECK(!(co_await other.json())["headers"].contains("authorization"));
  }());
}

TEST_CASE("requests carry headers, query, and bodies of bytes, text, JSON, a form and a file" *
          doctest::timeout(20)) {
  python_peer peer;
  coring_test::temp_dir dir;
  {
    std::ofstream(dir.path() / "upload.bin", std::ios::binary) << std::string(200 * 1024, 'u');
  }
  run_net([&]() -> task<> {
    http::client session({.headers = {{"X-Session", "s"}, {"X-Both", "session"}}});
    http::request_options o{.headers = {{"X-Both", "request"}, {"X-Request", "r"}},
                            .query = {{"b", "two words"}, {"c", "&="}}};
    auto r = co_await session.get(peer.url("/echo?a=1"), std::move(o));
    auto doc = co_await r.json();
    CHECK(doc["method"] == "GET");
    CHECK(doc["query"] == "a=1&b=two%20words&c=%26%3D");
    CHECK(doc["headers"]["x-session"] == "s");
    CHECK(doc["headers"]["x-both"] == "request");
    CHECK(doc["headers"]["x-request"] == "r");
    CHECK(doc["headers"]["host"] == "127.0.0.1:" + std::to_string(peer.port()));
    CHECK(doc["headers"]["accept-encoding"] == "gzip, deflate");

    http::request_options o2{.body = "plain text"};
    auto t = co_await session.post(peer.url("/echo"), std::move(o2));
    doc = co_await t.json();
    CHECK(doc["body"] == "plain text");
    CHECK(doc["headers"]["content-type"] == "text/plain; charset=utf-8");
    CHECK(doc["headers"]["content-length"] == "10");

    const std::vector<std::byte> raw{std::byte{1}, std::byte{2}, std::byte{3}};
    http::request_options o3{.body = raw};
    auto b = co_await session.put(peer.url("/echo"), std::move(o3));
    doc = co_await b.json();
    CHECK(doc["method"] == "PUT");
    CHECK(doc["body"] == "\x01\x02\x03");
    CHECK(doc["headers"]["content-type"] == "application/octet-stream");

    const nlohmann::json value{{"k", "v"}, {"n", 1}};
    http::request_options o4{.json = value};
    auto j = co_await session.post(peer.url("/echo"), std::move(o4));
    doc = co_await j.json();
    CHECK(nlohmann::json::parse(doc["body"].get<std::string>()) == value);
    CHECK(doc["headers"]["content-type"] == "application/json");

    http::request_body form = http::request_body::form({{"x", "1 2"}, {"y", "é"}});
    http::request_options o5{.body = std::move(form)};
    auto f = co_await session.post(peer.url("/echo"), std::move(o5));
    doc = co_await f.json();
    CHECK(doc["body"] == "x=1%202&y=%C3%A9");
    CHECK(doc["headers"]["content-type"] == "application/x-www-form-urlencoded");

    http::request_options upload{.body = http::request_body::file((dir.path() / "upload.bin").string())};
    auto big = co_await session.post(peer.url("/echo"), std::move(upload));
    doc = co_await big.json();
    CHECK(doc["body"].get<std::string>() == std::string(200 * 1024, 'u'));
    CHECK(doc["headers"]["content-length"] == std::to_string(200 * 1024));

    auto e = co_await session.request("DELETE", peer.url("/echo"));
    CHECK((co_await e.json())["method"] == "DELETE");
    CHECK(session.stats().connections_opened == 1);
  }());
}

TEST_CASE("response headers are case-insensitive and multi-valued, and json() of a non-JSON body is a protocol_error" *
          doctest::timeout(20)) {
  python_peer peer;
  run_net([&]() -> task<> {
    http::client session;
    auto r = co_await session.get(peer.url("/multi"));
    CHECK(r.headers().get_all("SET-COOKIE") == std::vector<std::string_view>{"a=1", "b=2"});
    CHECK(r.headers().get("x-case") == "Value");
    (void)co_await r.text();
    auto j = co_await session.get(peer.url("/json"));
    auto doc = co_await j.json();
    CHECK(doc["name"] == "coring");
    CHECK(doc["list"].size() == 3);
    auto bad = co_await session.get(peer.url("/not-json"));
    bool thrown = false;
    try {
      (void)co_await bad.json();
    } catch (const http::protocol_error& e) {
      thrown = true;
      CHECK(std::string(e.what()).find("not JSON") != std::string::npos);
    }
    CHECK(thrown);
  }());
}

TEST_CASE("close-delimited, HTTP/1.0 and chunked bodies with trailers are read whole" * doctest::timeout(20)) {
  python_peer peer;
  run_net([&]() -> task<> {
    http::client session;
    auto r = co_await session.get(peer.url("/close-delimited"));
    CHECK(!r.content_length());
    std::string expected;
    for (int i = 0; i < 1000; ++i) expected += "until the close ";
    CHECK(co_await r.text() == expected);
    auto old = co_await session.get(peer.url("/http10"));
    CHECK(co_await old.text() == "an HTTP/1.0 body");
    auto c = co_await session.get(peer.url("/chunked-trailers"));
    CHECK(co_await c.text() == "hello world");
    CHECK(c.trailers().get("x-checksum") == "abc123");
    CHECK(session.stats().connections_opened == 3);  // the first two were closed by the server
  }());
}

TEST_CASE("HEAD, 204 and 304 have no body and leave the connection reusable" * doctest::timeout(20)) {
  python_peer peer;
  run_net([&]() -> task<> {
    http::client session;
    auto h = co_await session.head(peer.url("/json"));
    CHECK(h.status() == 200);
    CHECK(h.content_length() > 0u);
    CHECK(h.body_complete());
    CHECK(co_await h.text() == "");
    auto n = co_await session.get(peer.url("/no-content"));
    CHECK(n.status() == 204);
    CHECK(n.body_complete());
    auto m = co_await session.get(peer.url("/not-modified"));
    CHECK(m.status() == 304);
    CHECK(m.body_complete());
    auto after = co_await session.get(peer.url("/json"));
    CHECK((co_await after.json())["name"] == "coring");
    CHECK(session.stats().connections_opened == 1);
    CHECK(session.stats().reused == 3);
  }());
}

TEST_CASE("a GET on a pooled connection the server closed is retried once on a new one, and a POST is not sent on it" *
          doctest::timeout(20)) {
  python_peer peer;
  run_net([&]() -> task<> {
    http::client session;
    auto r = co_await session.get(peer.url("/keepalive-then-close"));
    CHECK(co_await r.text() == "bye");
    CHECK(session.stats().idle == 1);  // the server said nothing of closing
    co_await coring::sleep_for(20ms);  // let its FIN arrive
    auto again = co_await session.get(peer.url("/echo"));
    CHECK((co_await again.json())["method"] == "GET");
    CHECK(session.stats().connections_opened == 2);

    auto r2 = co_await session.get(peer.url("/keepalive-then-close"));
    (void)co_await r2.text();
    co_await coring::sleep_for(20ms);
    http::request_options o6{.body = "once"};
    auto post = co_await session.post(peer.url("/echo"), std::move(o6));
    CHECK((co_await post.json())["body"] == "once");
    // The second /keepalive-then-close went on the retried connection; the
    // POST saw that one closed before sending, and opened a third.
    CHECK(session.stats().connections_opened == 3);
    CHECK(session.stats().retries == 1);
    const auto stats = co_await peer_stats(peer);
    CHECK(stats["requests"] == 4 + 1);  // each request was answered once (+ /stats)
  }());
}

TEST_CASE("the pool keeps to limit_per_host and to the total limit, counted by the server" * doctest::timeout(30)) {
  python_peer peer;
  run_net([&]() -> task<> {
    {
      http::client session({.limit = 100, .limit_per_host = 3});
      std::vector<task<std::string>> jobs;
      for (int i = 0; i < 12; ++i) {
        jobs.push_back([](http::client& s, std::string u) -> task<std::string> {
          auto r = co_await s.get(u);
          co_return co_await r.text();
        }(session, peer.url("/hold?ms=20")));
      }
      for (const auto& body : co_await coring::gather(std::move(jobs))) CHECK(body == "held");
      CHECK(session.stats().connections_opened == 3);
    }
    auto stats = co_await peer_stats(peer);
    CHECK(stats["max_open"] <= 3 + 1);  // + the /stats probe, which comes after
    CHECK(stats["accepted"] == 3 + 1);

    // Two origins (127.0.0.1 and localhost) on one server: the total limit holds across them.
    {
      http::client session({.limit = 4});
      std::vector<task<std::string>> jobs;
      const std::string other = "http://localhost:" + std::to_string(peer.port()) + "/hold?ms=20";
      for (int i = 0; i < 16; ++i) {
        jobs.push_back([](http::client& s, std::string u) -> task<std::string> {
          auto r = co_await s.get(u);
          co_return co_await r.text();
        }(session, i % 2 ? other : peer.url("/hold?ms=20")));
      }
      for (const auto& body : co_await coring::gather(std::move(jobs))) CHECK(body == "held");
      CHECK(session.stats().open <= 4);
    }
    stats = co_await peer_stats(peer);
    CHECK(stats["max_open"] <= 4 + 1);
  }());
}

TEST_CASE("timeouts are typed by phase and name the URL: read, total, connect, pool" * doctest::timeout(30)) {
  python_peer peer;
  black_hole hole;
  run_net([&]() -> task<> {
    http::client session;
    auto expect_timeout = [](auto make, http::timeout_phase phase, std::string url) -> task<> {
      bool thrown = false;
      try {
        co_await make();
      } catch (const http::timeout_error& e) {
        thrown = true;
        CHECK(e.phase() == phase);
        CHECK(std::string(e.what()).find(url) != std::string::npos);
        CHECK(std::string(e.what()).find(http::to_string(phase)) != std::string::npos);
      }
      CHECK(thrown);
    };
    const std::string silent = peer.url("/silent");
    co_await expect_timeout(
        [&]() -> task<> {
          http::request_options o{.timeout = http::timeouts{.read = 100ms}};
          (void)co_await session.get(silent, std::move(o));
        },
                            http::timeout_phase::read, silent);
    const std::string drip = peer.url("/drip");
    co_await expect_timeout(
        [&]() -> task<> {
          http::request_options o7{.timeout = http::timeouts{.total = 150ms, .read = 5s}};
          auto r = co_await session.get(drip, std::move(o7));
          (void)co_await r.text();
        },
        http::timeout_phase::total, drip);
    const std::string stall = peer.url("/stall-body");
    co_await expect_timeout(
        [&]() -> task<> {
          http::request_options o8{.timeout = http::timeouts{.read = 100ms}};
          auto r = co_await session.get(stall, std::move(o8));
          (void)co_await r.text();
        },
        http::timeout_phase::read, stall);
    const std::string unreachable = "http://127.0.0.1:" + std::to_string(hole.port) + "/";
    co_await expect_timeout(
        [&]() -> task<> {
          http::request_options o{.timeout = http::timeouts{.connect = 100ms}};
          (void)co_await session.get(unreachable, std::move(o));
        },
        http::timeout_phase::connect, unreachable);

    http::client one({.limit = 1});
    auto held = co_await one.get(peer.url("/json"));  // its body unread: it keeps the one connection
    const std::string queued = peer.url("/echo");
    co_await expect_timeout(
        [&]() -> task<> {
          http::request_options o{.timeout = http::timeouts{.pool = 50ms}};
          (void)co_await one.get(queued, std::move(o));
        },
        http::timeout_phase::pool, queued);
    CHECK(one.stats().waiting == 0);
    (void)co_await held.text();
    auto next = co_await one.get(queued);  // the slot came back
    CHECK(next.status() == 200);
    (void)co_await next.text();
  }());
}

TEST_CASE("connect errors and bad URLs are typed and named" * doctest::timeout(20)) {
  run_net([]() -> task<> {
    http::client session;
    const std::uint16_t closed_port = coring_test::free_port();
    const std::string refused = "http://127.0.0.1:" + std::to_string(closed_port) + "/x";
    bool thrown = false;
    try {
      (void)co_await session.get(refused);
    } catch (const http::connect_error& e) {
      thrown = true;
      CHECK(std::string(e.what()).find(refused) != std::string::npos);
      CHECK(e.code() == std::errc::connection_refused);
    }
    CHECK(thrown);
    thrown = false;
    try {
      (void)co_await session.get("http://nonexistent.invalid/");
    } catch (const http::connect_error& e) {
      thrown = true;
      CHECK(std::string(e.what()).find("nonexistent.invalid") != std::string::npos);
    }
    CHECK(thrown);
    // At the call, before any co_await.
    CHECK_THROWS_AS((void)session.get("not a url"), http::url_error);
    CHECK_THROWS_AS((void)session.get("ftp://127.0.0.1/file"), http::url_error);
    http::request_options injected{.headers = {{"X-Bad", "a\r\nInjected: 1"}}};
    CHECK_THROWS_AS((void)session.get("http://127.0.0.1/", std::move(injected)), coring::error);
    CHECK(session.stats().open == 0);
  }());
}

TEST_CASE("malformed responses are protocol_errors with llhttp's reason, and head limits hold" *
          doctest::timeout(30)) {
  python_peer peer;
  run_net([&]() -> task<> {
    http::client session({.max_head_bytes = 16 * 1024, .max_headers = 50});
    struct bad_case {
      const char* name;
      const char* says;  // part of the message
    };
    for (const bad_case& c : {bad_case{"bad-content-length", "malformed"}, bad_case{"two-content-lengths", "malformed"},
                              bad_case{"not-http", "malformed"}, bad_case{"header-without-colon", "malformed"},
                              bad_case{"bad-chunk-size", "malformed"}, bad_case{"cl-and-chunked", "malformed"},
                              bad_case{"huge-head", "malformed"}, bad_case{"many-headers", "malformed"},
                              bad_case{"cut-head", "closed the connection"}, bad_case{"cut-body", "closed the connection"},
                              bad_case{"cut-chunked", "closed the connection"}, bad_case{"switching", "switched protocols"}}) {
      CAPTURE(c.name);
      const std::string u = peer.url(std::string("/raw/") + c.name);
      bool thrown = false;
      try {
        auto r = co_await session.get(u);
        (void)co_await r.text();
      } catch (const http::protocol_error& e) {
        thrown = true;
        const std::string what = e.what();
        CAPTURE(what);
        CHECK(what.find(u) != std::string::npos);
        CHECK(what.find(c.says) != std::string::npos);
      }
      CHECK(thrown);
    }
    CHECK(session.stats().open == 0);
  }());
}

TEST_CASE("body caps: a 10 GB body, an endless chunked one and a zip bomb end in limit_error" *
          doctest::timeout(30)) {
  python_peer peer;
  run_net([&]() -> task<> {
    http::client session({.max_body_size = 1 << 20, .max_decompressed_size = 1 << 20});
    for (const char* path : {"/huge", "/huge-chunked", "/bomb"}) {
      CAPTURE(path);
      bool thrown = false;
      try {
        auto r = co_await session.get(peer.url(path));
        (void)co_await r.text();
      } catch (const http::limit_error& e) {
        thrown = true;
        CHECK(std::string(e.what()).find(peer.url(path)) != std::string::npos);
      }
      CHECK(thrown);
    }
    // A request's own cap replaces the session's.
    http::request_options o9{.max_body_size = 100};
    auto r = co_await session.get(peer.url("/close-delimited"), std::move(o9));
    CHECK_THROWS_AS((void)co_await r.text(), http::limit_error);
    CHECK(session.stats().open == 0);  // none of them went back to the pool
  }());
}

TEST_CASE("save streams the body to a file under its name only when complete" * doctest::timeout(20)) {
  nginx_peer nginx;
  python_peer peer;
  coring_test::temp_dir dir;
  const auto target = dir.path() / "saved.bin";
  const auto broken = dir.path() / "broken.bin";
  run_net([&]() -> task<> {
    http::client session;
    auto r = co_await session.get(nginx.url("/100k.bin"));
    CHECK(co_await r.save(target.string()) == 100 * 1024);
    auto cut = co_await session.get(peer.url("/raw/cut-body"));
    CHECK_THROWS_AS((void)co_await cut.save(broken.string()), http::protocol_error);
  }());
  CHECK(read_file(target) == nginx.file("100k.bin"));
  CHECK(!std::filesystem::exists(dir.path() / "saved.bin.part"));
  CHECK(!std::filesystem::exists(broken));
  CHECK(!std::filesystem::exists(dir.path() / "broken.bin.part"));
}

TEST_CASE("a TLS failure in a response's head or body is a protocol_error naming the URL, not a cancellation" *
          doctest::timeout(20)) {
  const coring_test::test_pki& pki = coring_test::pki();
  run_net([&]() -> task<> {
    namespace net = coring::net;
    net::tls_context server_ctx = net::tls_context::server({.cert_file = pki.server.cert, .key_file = pki.server.key});
    auto listener = net::tcp_listener::bind(net::address::loopback_v4(0));
    const std::string url = "https://127.0.0.1:" + std::to_string(listener.local_address().port()) + "/cut";
    // First connection: the head and 100 of the 1,000 bytes it announces
    // through TLS, then bytes that are no TLS record, on the socket itself.
    // Second: those bytes at once, in place of a response.
    auto server = coring::spawn([](net::tcp_listener& l, net::tls_context& ctx) -> task<> {
      for (int round = 0; round < 2; ++round) {
        net::tcp_stream tcp = co_await l.accept();
        const int fd = tcp.native_handle();  // the same socket under the TLS stream
        net::tls_stream conn = co_await net::tls_stream::accept(ctx, std::move(tcp));
        net::buffered_reader in(conn);
        (void)co_await in.read_until("\r\n\r\n", 16384);
        if (round == 0) {
          const std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + std::string(100, 'b');
          co_await conn.write_all(std::as_bytes(std::span(head.data(), head.size())));
        }
        const std::string garbage(64, '\x42');
        CHECK(::write(fd, garbage.data(), garbage.size()) == 64);
        co_await coring::sleep_for(200ms);
      }
    }(listener, server_ctx));

    http::client session({.tls = {.ca_file = pki.ca}});
    auto r = co_await session.get(url);
    CHECK(r.status() == 200);
    std::string what;
    try {
      (void)co_await r.bytes();
    } catch (const http::protocol_error& e) {
      what = e.what();
    }
    CHECK(what.find("GET " + url) != std::string::npos);
    CHECK(what.find("in the middle of the body") != std::string::npos);

    what.clear();
    try {
      (void)co_await session.get(url);
    } catch (const http::protocol_error& e) {
      what = e.what();
    }
    CHECK(what.find("GET " + url + ": the connection failed") != std::string::npos);
    CHECK(session.stats().connections_opened == 2);
    co_await server;
  }());
}

TEST_CASE("a request cancelled in the middle of its body closes its connection instead of pooling it" *
          doctest::timeout(20)) {
  python_peer peer;
  coring_test::temp_dir dir;
  run_net([&]() -> task<> {
    http::client session;
    int pieces = 0;
    auto reader = coring::spawn([](http::client& s, std::string u, int& pieces) -> task<> {
      auto r = co_await s.get(u);
      http::body_stream body = r.body();
      for (;;) {
        auto piece = co_await body.next();
        if (piece.empty()) break;
        ++pieces;
      }
    }(session, peer.url("/drip"), pieces));
    while (pieces < 3) co_await coring::sleep_for(5ms);
    reader.cancel();
    CHECK_THROWS_AS(co_await reader, coring::cancelled);
    CHECK(session.stats().open == 0);
    CHECK(session.stats().idle == 0);

    // A save cancelled the same way leaves no file behind.
    const auto target = dir.path() / "drip.bin";
    auto saver = coring::spawn([](http::client& s, std::string u, std::string path) -> task<> {
      auto r = co_await s.get(u);
      (void)co_await r.save(path);
    }(session, peer.url("/drip"), target.string()));
    while (!std::filesystem::exists(dir.path() / "drip.bin.part")) co_await coring::sleep_for(5ms);
    co_await coring::sleep_for(30ms);
    saver.cancel();
    CHECK_THROWS_AS(co_await saver, coring::cancelled);
    CHECK(!std::filesystem::exists(target));
    CHECK(!std::filesystem::exists(dir.path() / "drip.bin.part"));

    auto after = co_await session.get(peer.url("/json"));
    CHECK((co_await after.json())["name"] == "coring");
    CHECK(session.stats().connections_opened == 3);
  }());
}

TEST_CASE("an idle connection past keepalive_timeout is closed, and the next request opens another" *
          doctest::timeout(20)) {
  python_peer peer;
  run_net([&]() -> task<> {
    http::client session({.keepalive_timeout = 50ms});
    auto r = co_await session.get(peer.url("/json"));
    (void)co_await r.text();
    CHECK(session.stats().idle == 1);
    co_await coring::sleep_for(150ms);
    CHECK(session.stats().idle == 0);
    CHECK(session.stats().open == 0);
    auto again = co_await session.get(peer.url("/json"));
    (void)co_await again.text();
    CHECK(session.stats().connections_opened == 2);
    const auto stats = co_await peer_stats(peer);
    CHECK(stats["open"] <= 2);  // the expired one was closed (the server may not have noticed yet)
  }());
}

TEST_CASE("blocking_client serves plain code and one thread each" * doctest::timeout(30)) {
  nginx_peer nginx;
  python_peer peer;
  coring_test::temp_dir dir;
  const int before = coring_test::settled_fd_count();
  {
    http::blocking_client session;
    auto r = session.get(nginx.url("/1k.bin"));
    CHECK(r.status() == 200);
    CHECK(r.text() == std::string(1024, 'k'));
    auto j = session.post(peer.url("/echo"), {.json = nlohmann::json{{"a", 1}}});
    CHECK(j.json()["method"] == "POST");
    auto missing = session.get(nginx.url("/missing"));
    CHECK_THROWS_AS(missing.raise_for_status(), http::status_error);
    CHECK(session.save(nginx.url("/100k.bin"), (dir.path() / "x.bin").string()) == 100 * 1024);
    CHECK(read_file(dir.path() / "x.bin") == nginx.file("100k.bin"));
    CHECK_THROWS_AS((void)session.get(peer.url("/silent"), {.timeout = http::timeouts{.read = 50ms}}),
                    http::timeout_error);
    CHECK(session.async().stats().connections_opened == 2);  // nginx once, the peer once
  }
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      http::blocking_client session;
      for (int i = 0; i < 10; ++i) {
        if (session.get(nginx.url("/1k.bin")).text().size() == 1024) ++ok;
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(ok == 40);
  CHECK(coring_test::fd_count_returns_to(before));
}

}  // TEST_SUITE
