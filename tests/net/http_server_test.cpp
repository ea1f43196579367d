#include <doctest/doctest.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <coring/http/date.hpp>
#include <coring/http/server.hpp>
#include <coring/sleep.hpp>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "support/allocations.hpp"
#include "support/fds.hpp"
#include "support/sanitizers.hpp"
#include "support/http.hpp"
#include "support/stopwatch.hpp"

namespace http = coring::http;
using namespace std::chrono_literals;
using coring_test::fetch;
using coring_test::get;
using coring_test::http_fixture;
using coring_test::raw_client;
using coring_test::raw_response;

namespace {

coring::task<http::response> hello(http::request&) { co_return http::response::text("hello"); }

// The routes most tests use.
http::router make_app() {
  http::router app;
  app.get("/", hello);
  app.get("/items/{id}", [](http::request& req) -> coring::task<http::response> {
    co_return http::response::text("item " + std::to_string(req.param<std::int64_t>("id")));
  });
  app.get("/items/special",
          [](http::request&) -> coring::task<http::response> { co_return http::response::text("special"); });
  app.put("/items/{id}", [](http::request& req) -> coring::task<http::response> {
    co_return http::response::text("put " + std::string(req.param("id")));
  });
  app.get("/files/{name}/size", [](http::request& req) -> coring::task<http::response> {
    co_return http::response::text("size of " + req.param<std::string>("name"));
  });
  app.get("/search", [](http::request& req) -> coring::task<http::response> {
    co_return http::response::text("q=" + req.query("q").value_or("-") +
                                   " limit=" + std::to_string(req.query<int>("limit", 10)));
  });
  app.get("/json", [](http::request&) -> coring::task<http::response> {
    co_return http::response::json({{"a", 1}, {"b", "two"}});
  });
  app.post("/echo", [](http::request& req) -> coring::task<http::response> {
    co_return http::response::text(co_await req.body());
  });
  app.post("/count", [](http::request& req) -> coring::task<http::response> {
    std::size_t bytes = 0, pieces = 0;
    for (;;) {
      std::string_view piece = co_await req.read_body();
      if (piece.empty()) break;
      bytes += piece.size();
      ++pieces;
    }
    co_return http::response::text("bytes=" + std::to_string(bytes));
  });
  app.post("/ignore",
           [](http::request&) -> coring::task<http::response> { co_return http::response::text("ok"); });
  app.get("/slow/{ms}", [](http::request& req) -> coring::task<http::response> {
    co_await coring::sleep_for(std::chrono::milliseconds(req.param<int>("ms")));
    co_return http::response::text("slept");
  });
  app.get("/throw", [](http::request&) -> coring::task<http::response> {
    throw std::runtime_error("the handler failed");
    co_return http::response();
  });
  app.get("/teapot", [](http::request&) -> coring::task<http::response> {
    throw http::request_error(418, "short and stout");
    co_return http::response();
  });
  app.get("/stream/{n}", [](http::request& req) -> coring::task<http::response> {
    const int n = req.param<int>("n");
    co_return http::response::stream(
        [n](http::body_writer& w) -> coring::task<> {
          for (int i = 0; i < n; ++i) co_await w.write("line " + std::to_string(i) + "\n");
        },
        "text/plain");
  });
  app.get("/flood", [](http::request&) -> coring::task<http::response> {
    co_return http::response::stream([](http::body_writer& w) -> coring::task<> {
      const std::string chunk(64 * 1024, 'x');
      for (;;) co_await w.write(chunk);
    });
  });
  app.get("/nocontent",
          [](http::request&) -> coring::task<http::response> { co_return http::response(204); });
  return app;
}

// Runs `fn(fixture)` against a server for `app`, then checks no descriptor leaked.
template <class Fn>
void with_server(const http::router& app, http::server_options o, Fn fn) {
  const int before = coring_test::settled_fd_count();
  {
    http_fixture f(app, std::move(o));
    fn(f);
  }
  CHECK(coring_test::fd_count_returns_to(before));
}

const char* const get_root = "GET / HTTP/1.1\r\nHost: test\r\n\r\n";

}  // namespace

TEST_SUITE("net/http_server") {
  TEST_CASE("a GET is answered with its body, Content-Length, Date and Server" * doctest::timeout(20)) {
    http::router app = make_app();
    with_server(app, {}, [](http_fixture& f) {
      raw_response r = get(f.port(), "/");
      CHECK(r.status == 200);
      CHECK(r.body == "hello");
      CHECK(r.field("Content-Length") == "5");
      CHECK(r.field("Content-Type") == "text/plain; charset=utf-8");
      CHECK(r.field("Server") == "coring");
      auto date = r.field("Date");
      REQUIRE(date);
      CHECK(http::parse_date(*date).has_value());
      CHECK_FALSE(r.field("Connection").has_value());
    });
  }

  TEST_CASE("the Server field names options.server_name on every status, and an empty name sends none" *
            doctest::timeout(20)) {
    http::router app = make_app();
    http::server_options named;
    named.server_name = "custom/1.0";
    with_server(app, named, [](http_fixture& f) {
      raw_response ok = get(f.port(), "/");
      CHECK(ok.head.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
      CHECK(ok.field("Server") == "custom/1.0");
      CHECK(ok.field("Date").has_value());
      raw_response missing = get(f.port(), "/nowhere");
      CHECK(missing.status == 404);
      CHECK(missing.field("Server") == "custom/1.0");
    });
    http::server_options anonymous;
    anonymous.server_name = "";
    with_server(app, anonymous, [](http_fixture& f) {
      raw_response ok = get(f.port(), "/");
      CHECK(ok.head.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
      CHECK_FALSE(ok.field("Server").has_value());
      CHECK(ok.field("Date").has_value());
      CHECK(ok.body == "hello");
      raw_response missing = get(f.port(), "/nowhere");
      CHECK(missing.status == 404);
      CHECK_FALSE(missing.field("Server").has_value());
    });
  }

  TEST_CASE("HEAD gets the GET route's fields without its body" * doctest::timeout(20)) {
    http::router app = make_app();
    with_server(app, {}, [](http_fixture& f) {
      raw_client c(f.port());
      c.send("HEAD /items/7 HTTP/1.1\r\nHost: t\r\n\r\n");
      raw_response r = c.response(true);
      CHECK(r.status == 200);
      CHECK(r.field("Content-Length") == "6");
      // The next response on the connection starts right after the head: no body was sent.
      c.send(get_root);
      CHECK(c.response().body == "hello");
    });
  }

  TEST_CASE("the router: typed path parameters, literals first, query parameters, 404, 405 with Allow" *
            doctest::timeout(20)) {
    http::router app = make_app();
    with_server(app, {}, [](http_fixture& f) {
      CHECK(get(f.port(), "/items/42").body == "item 42");
      CHECK(get(f.port(), "/items/special").body == "special");
      CHECK(get(f.port(), "/files/a%20b/size").body == "size of a b");
      CHECK(get(f.port(), "/search?q=cats&limit=5").body == "q=cats limit=5");
      CHECK(get(f.port(), "/search?q=a+b").body == "q=a b limit=10");
      raw_response bad = get(f.port(), "/items/abc");
      CHECK(bad.status == 400);
      CHECK(bad.body.find("path parameter 'id': 'abc' is not a valid integer") != std::string::npos);
      CHECK(get(f.port(), "/items/99999999999999999999").status == 400);
      CHECK(get(f.port(), "/search?limit=x").status == 400);
      CHECK(get(f.port(), "/nothing/here").status == 404);
      CHECK(get(f.port(), "/items/1/2").status == 404);
      raw_response wrong = fetch(f.port(), "DELETE /items/5 HTTP/1.1\r\nHost: t\r\n\r\n");
      CHECK(wrong.status == 405);
      CHECK(wrong.field("Allow") == "GET, HEAD, PUT");
      CHECK(fetch(f.port(), "PUT /items/5 HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n").body == "put 5");
      raw_response j = get(f.port(), "/json");
      CHECK(j.field("Content-Type") == "application/json");
      CHECK(nlohmann::json::parse(j.body) == nlohmann::json{{"a", 1}, {"b", "two"}});
      CHECK(get(f.port(), "/teapot").status == 418);
      raw_response none = get(f.port(), "/nocontent");
      CHECK(none.status == 204);
      CHECK_FALSE(none.field("Content-Length").has_value());
    });
  }

  TEST_CASE("keep-alive serves many requests on one connection, and Connection: close is honoured" *
            doctest::timeout(20)) {
    http::router app = make_app();
    with_server(app, {}, [](http_fixture& f) {
      raw_client c(f.port());
      for (int i = 0; i < 50; ++i) {
        REQUIRE(c.send("GET /items/" + std::to_string(i) + " HTTP/1.1\r\nHost: t\r\n\r\n"));
        CHECK(c.response().body == "item " + std::to_string(i));
      }
      c.send("GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
      raw_response last = c.response();
      CHECK(last.status == 200);
      CHECK(last.field("Connection") == "close");
      CHECK(c.closed_by_server());

      raw_client old(f.port());  // HTTP/1.0: close unless asked
      old.send("GET / HTTP/1.0\r\n\r\n");
      CHECK(old.response().status == 200);
      CHECK(old.closed_by_server());
      raw_client old_ka(f.port());
      old_ka.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
      raw_response r = old_ka.response();
      CHECK(r.field("Connection") == "keep-alive");
      old_ka.send("GET /items/3 HTTP/1.0\r\n\r\n");
      CHECK(old_ka.response().body == "item 3");
      CHECK(f.stats().requests == 54);
    });
  }

  TEST_CASE("pipelined requests are answered in order, also around slow handlers and bodies" *
            doctest::timeout(20)) {
    http::router app = make_app();
    with_server(app, {}, [](http_fixture& f) {
      raw_client c(f.port());
      std::string all;
      for (int i = 0; i < 16; ++i) {
        if (i == 5) {
          all += "GET /slow/30 HTTP/1.1\r\nHost: t\r\n\r\n";
        } else if (i == 9) {
          all +=
              "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: "
              "chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        } else {
          all += "GET /items/" + std::to_string(i) + " HTTP/1.1\r\nHost: t\r\n\r\n";
        }
      }
      REQUIRE(c.send(all));
      for (int i = 0; i < 16; ++i) {
        raw_response r = c.response();
        CAPTURE(i);
        if (i == 5) {
          CHECK(r.body == "slept");
        } else if (i == 9) {
          CHECK(r.body == "abcde");
        } else {
          CHECK(r.body == "item " + std::to_string(i));
        }
      }
    });
  }

  TEST_CASE("a kept-alive or pipelined small response costs the server no heap allocation" *
            doctest::timeout(20)) {
    // The handlers run on the server's thread: /allocations answers how many
    // operator new calls that thread has made so far.
    http::router app;
    app.get("/", hello);
    app.get("/allocations", [](http::request&) -> coring::task<http::response> {
      co_return http::response::text(std::to_string(coring_test::allocations_on_this_thread()));
    });
    with_server(app, {}, [](http_fixture& f) {
      raw_client c(f.port());
      const auto allocations = [&c] {
        REQUIRE(c.send("GET /allocations HTTP/1.1\r\nHost: t\r\n\r\n"));
        return std::stoul(c.response().body);
      };
      std::string sixteen;
      for (int i = 0; i < 16; ++i) sixteen += get_root;
      const auto pipelined = [&] {
        for (int round = 0; round < 10; ++round) {
          REQUIRE(c.send(sixteen));
          for (int i = 0; i < 16; ++i) REQUIRE(c.response().body == "hello");
        }
      };
      const auto one_by_one = [&] {
        for (int i = 0; i < 100; ++i) {
          REQUIRE(c.send(get_root));
          REQUIRE(c.response().body == "hello");
        }
      };
      pipelined();  // warm the thread's caches (parsers, response buffers)
      one_by_one();
      const unsigned long before = allocations();
      one_by_one();
      const unsigned long after_100 = allocations();
      pipelined();
      const unsigned long after_260 = allocations();
      // Only the /allocations requests themselves may allocate (their handler's frame
      // is not counted; the count is taken before its response is built). Under
      // ASan every coroutine frame is an operator new: at most three per
      // request (101 and 161 requests, /allocations' own included).
      const unsigned long frames_per_request = coring_test::under_asan ? 3 : 0;
      CHECK(after_100 - before <= 2 + 101 * frames_per_request);
      CHECK(after_260 - after_100 <= 2 + 161 * frames_per_request);
    });
  }

  TEST_CASE("request bodies: Content-Length and chunked, whole or streamed, and bodies a handler ignores" *
            doctest::timeout(20)) {
    http::router app = make_app();
    with_server(app, {}, [](http_fixture& f) {
      CHECK(fetch(f.port(), "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello").body ==
            "hello");
      CHECK(fetch(f.port(),
                  "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "5\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n")
                .body == "hello world");
      // 300 KiB arriving in pieces, counted as it streams.
      raw_client c(f.port());
      const std::string big(300 * 1024, 'b');
      c.send("POST /count HTTP/1.1\r\nHost: t\r\nContent-Length: " + std::to_string(big.size()) + "\r\n\r\n");
      for (std::size_t at = 0; at < big.size(); at += 10000) c.send(std::string_view(big).substr(at, 10000));
      CHECK(c.response().body == "bytes=307200");
      // A body the handler never reads is drained: the connection goes on.
      c.send("POST /ignore HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nnot wanted!");
      CHECK(c.response().body == "ok");
      c.send(get_root);
      CHECK(c.response().body == "hello");
    });
  }

  TEST_CASE(
      "Expect: 100-continue gets 100 when the handler reads, 413 at once when too large, 417 otherwise" *
      doctest::timeout(20)) {
    http::router app = make_app();
    with_server(app, {.max_body_bytes = 1000}, [](http_fixture& f) {
      raw_client c(f.port());
      c.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
      raw_response interim = c.response();
      CHECK(interim.status == 100);
      c.send("data");
      CHECK(c.response().body == "data");

      raw_client big(f.port());
      big.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n");
      CHECK(big.response().status == 413);

      raw_client odd(f.port());
      odd.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: something-else\r\n\r\n");
      CHECK(odd.response().status == 417);

      // A handler that answers without reading: no 100, and the connection closes after.
      raw_client skip(f.port());
      skip.send("POST /ignore HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
      raw_response r = skip.response();
      CHECK(r.status == 200);
      CHECK(r.field("Connection") == "close");
      CHECK(get(f.port(), "/").status == 200);
    });
  }

  TEST_CASE(
      "malformed and smuggling-shaped requests get 400, oversized heads 431, bodies 413, and the server goes "
      "on" *
      doctest::timeout(60)) {
    struct row {
      std::string what;
      std::string bytes;
      int status;
    };
    const std::vector<row> rows = {
        {"Content-Length with Transfer-Encoding",
         "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
         400},
        {"two different Content-Lengths",
         "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400},
        {"two equal Content-Lengths",
         "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 400},
        {"a Content-Length that is not a number",
         "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5a\r\n\r\nhello", 400},
        {"a negative Content-Length", "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n", 400},
        {"a Transfer-Encoding that does not end in chunked",
         "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\nxyz", 400},
        {"a chunk size that is not hex",
         "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 400},
        {"a chunk size that overflows",
         "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: "
         "chunked\r\n\r\nfffffffffffffffff\r\nhello\r\n0\r\n\r\n",
         400},
        {"a chunk without its CRLF",
         "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", 400},
        {"bare LF line ends", "GET / HTTP/1.1\nHost: t\n\n", 400},
        {"a bare LF after a header", "GET / HTTP/1.1\r\nHost: t\n\r\n", 400},
        {"whitespace before a header's colon", "GET / HTTP/1.1\r\nHost : t\r\n\r\n", 400},
        {"a control character in a header value", "GET / HTTP/1.1\r\nHost: t\r\nX-A: a\x01z\r\n\r\n", 400},
        {"a method with a forbidden character", "G@T / HTTP/1.1\r\nHost: t\r\n\r\n", 400},
        {"a space in the target", "GET /a b HTTP/1.1\r\nHost: t\r\n\r\n", 400},
        {"an HTTP/1.1 request without Host", "GET / HTTP/1.1\r\n\r\n", 400},
        {"not HTTP at all", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400},
        {"a head over max_head_bytes",
         "GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + std::string(5000, 'a') + "\r\n\r\n", 431},
        {"a target over max_head_bytes", "GET /" + std::string(5000, 'a') + " HTTP/1.1\r\nHost: t\r\n\r\n",
         431},
        {"more than max_headers fields",
         [] {
           std::string s = "GET / HTTP/1.1\r\nHost: t\r\n";
           for (int i = 0; i < 30; ++i) s += "X-" + std::to_string(i) + ": v\r\n";
           return s + "\r\n";
         }(),
         431},
        {"a Content-Length over max_body_bytes",
         "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2000\r\n\r\n", 413},
        {"a chunked body over max_body_bytes",
         "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n" +
             std::string(2048, 'c') + "\r\n0\r\n\r\n",
         413},
    };
    http::router app = make_app();
    with_server(app, {.max_head_bytes = 4096, .max_headers = 20, .max_body_bytes = 1024},
                [&](http_fixture& f) {
                  for (const row& r : rows) {
                    CAPTURE(r.what);
                    raw_client c(f.port());
                    c.send(r.bytes);
                    raw_response resp = c.response();
                    CHECK(resp.status == r.status);
                    CHECK(resp.field("Connection") == "close");
                    CHECK(!resp.body.empty());
                    CHECK(c.closed_by_server());
                    CHECK(get(f.port(), "/").status == 200);  // and the server serves the next client
                  }
                  // Each refused connection ends once its client has closed too (the server lingers for its
                  // input).
                  coring_test::stopwatch w;
                  while (f.stats().open_connections != 0 && w.elapsed() < 5s)
                    std::this_thread::sleep_for(5ms);
                  http::server_stats s = f.stats();
                  CHECK(s.malformed == 17);
                  CHECK(s.head_too_large == 3);
                  CHECK(s.body_too_large == 2);
                  CHECK(s.open_connections == 0);
                });
  }

  TEST_CASE("timeouts: a slow head and a slow body get 408, idle keep-alive connections are closed" *
            doctest::timeout(30)) {
    http::router app = make_app();
    http::server_options o{.header_timeout = 200ms,
                           .body_timeout = 200ms,
                           .idle_timeout = 300ms,
                           .write_timeout = 300ms,
                           .linger_timeout = 100ms};
    with_server(app, o, [](http_fixture& f) {
      {
        raw_client c(f.port());
        coring_test::stopwatch w;
        c.send("GET / HTTP/1.1\r\nHost:");
        raw_response r = c.response();
        CHECK(r.status == 408);
        CHECK(w.elapsed() >= 150ms);
        CHECK(c.closed_by_server());
        CHECK(get(f.port(), "/").status == 200);
      }
      {
        raw_client c(f.port());
        coring_test::stopwatch w;
        c.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc");
        raw_response r = c.response();
        CHECK(r.status == 408);
        CHECK(w.elapsed() >= 150ms);
        CHECK(c.closed_by_server());
        CHECK(get(f.port(), "/").status == 200);
      }
      {
        raw_client c(f.port());  // a trickle that keeps each read within the body timeout is fine
        c.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\n");
        for (char ch : std::string("abcd")) {
          std::this_thread::sleep_for(60ms);
          c.send(std::string(1, ch));
        }
        CHECK(c.response().body == "abcd");
      }
      {
        raw_client c(f.port());
        c.send(get_root);
        CHECK(c.response().status == 200);
        coring_test::stopwatch w;
        CHECK(c.closed_by_server());  // quietly: no 408 on an idle connection
        CHECK(w.elapsed() >= 250ms);
        CHECK(w.elapsed() < 3s);
      }
      {
        raw_client never(f.port());  // a connection that never sends a byte
        coring_test::stopwatch w;
        CHECK(never.closed_by_server());
        CHECK(w.elapsed() >= 250ms);
      }
      http::server_stats s = f.stats();
      CHECK(s.header_timeouts == 1);
      CHECK(s.body_timeouts == 1);
      CHECK(s.idle_timeouts >= 2);
      CHECK(get(f.port(), "/").status == 200);
    });
  }

  TEST_CASE("a client that stops reading is cut off after the write timeout" * doctest::timeout(30)) {
    http::router app = make_app();
    with_server(app, {.write_timeout = 200ms}, [](http_fixture& f) {
      raw_client c(f.port());
      c.set_receive_buffer(4096);
      c.send("GET /flood HTTP/1.1\r\nHost: t\r\n\r\n");
      coring_test::stopwatch w;
      while (f.stats().write_timeouts == 0 && w.elapsed() < 10s) std::this_thread::sleep_for(20ms);
      CHECK(f.stats().write_timeouts == 1);
      CHECK(w.elapsed() >= 150ms);
      CHECK(get(f.port(), "/").status == 200);
      c.close();
      while (f.stats().open_connections != 0 && w.elapsed() < 10s) std::this_thread::sleep_for(10ms);
      CHECK(f.stats().open_connections == 0);
    });
  }

  TEST_CASE(
      "a handler that throws gets 500, reported to the loop's exception handler, and the connection goes on" *
      doctest::timeout(20)) {
    http::router app = make_app();
    with_server(app, {}, [](http_fixture& f) {
      std::atomic<int> reported{0};
      std::string what;
      f.loop()
          .submit([](coring::loop_thread& lt, std::atomic<int>& n, std::string& w) -> coring::task<> {
            lt.loop().set_exception_handler([&n, &w](std::exception_ptr e, std::string_view) {
              try {
                std::rethrow_exception(e);
              } catch (const std::exception& x) {
                w = x.what();
              }
              ++n;
            });
            co_return;
          }(f.loop(), reported, what))
          .get();
      raw_client c(f.port());
      c.send("GET /throw HTTP/1.1\r\nHost: t\r\n\r\n");
      raw_response r = c.response();
      CHECK(r.status == 500);
      CHECK(r.body == "Internal Server Error\n");
      c.send(get_root);
      CHECK(c.response().body == "hello");
      CHECK(reported == 1);
      CHECK(what == "the handler failed");
      CHECK(f.stats().handler_errors == 1);
    });
  }

  TEST_CASE("streamed bodies are chunked on HTTP/1.1 and end with the close on HTTP/1.0" *
            doctest::timeout(20)) {
    http::router app = make_app();
    with_server(app, {}, [](http_fixture& f) {
      raw_client c(f.port());
      c.send("GET /stream/3 HTTP/1.1\r\nHost: t\r\n\r\n");
      raw_response r = c.response();
      CHECK(r.field("Transfer-Encoding") == "chunked");
      CHECK(r.body == "line 0\nline 1\nline 2\n");
      c.send("HEAD /stream/3 HTTP/1.1\r\nHost: t\r\n\r\n");
      CHECK(c.response(true).status == 200);
      c.send(get_root);
      CHECK(c.response().body == "hello");

      raw_client old(f.port());
      old.send("GET /stream/2 HTTP/1.0\r\n\r\n");
      raw_response o = old.response();
      CHECK(o.body == "line 0\nline 1\n");
      CHECK_FALSE(o.field("Transfer-Encoding").has_value());
    });
  }

  TEST_CASE(
      "stop: requests in flight finish with Connection: close, idle connections close, serve() returns" *
      doctest::timeout(30)) {
    http::router app = make_app();
    const int before = coring_test::settled_fd_count();
    {
      http_fixture f(app);
      std::vector<raw_client> busy, idle;
      for (int i = 0; i < 4; ++i) {
        idle.emplace_back(f.port());
        idle.back().send(get_root);
        CHECK(idle.back().response().status == 200);
      }
      for (int i = 0; i < 5; ++i) {
        busy.emplace_back(f.port());
        busy.back().send("GET /slow/1500 HTTP/1.1\r\nHost: t\r\n\r\n");
      }
      while (f.stats().requests < 9) std::this_thread::sleep_for(5ms);
      coring_test::stopwatch w;
      f.begin_stop(10s);
      for (raw_client& c : idle) CHECK(c.closed_by_server());
      CHECK(w.elapsed() < 1s);  // at once, not when the slow requests end
      for (raw_client& c : busy) {
        raw_response r = c.response();
        CHECK(r.status == 200);
        CHECK(r.body == "slept");
        CHECK(r.field("Connection") == "close");
        CHECK(c.closed_by_server());
      }
      f.wait();
      CHECK(w.elapsed() < 5s);  // when the last request ends, not at the end of the grace period (10 s)
    }
    CHECK(coring_test::fd_count_returns_to(before));
  }

  TEST_CASE("stop: what is still running after the grace period is cancelled" * doctest::timeout(30)) {
    http::router app = make_app();
    const int before = coring_test::settled_fd_count();
    {
      http_fixture f(app);
      raw_client c(f.port());
      c.send("GET /slow/20000 HTTP/1.1\r\nHost: t\r\n\r\n");
      while (f.stats().requests < 1) std::this_thread::sleep_for(5ms);
      coring_test::stopwatch w;
      f.stop(100ms);
      CHECK(w.elapsed() >= 90ms);
      CHECK(w.elapsed() < 5s);
      CHECK(c.closed_by_server());
      CHECK(f.stats().open_connections == 0);
    }
    CHECK(coring_test::fd_count_returns_to(before));
  }
}

TEST_SUITE("net/http_server") {
  TEST_CASE("the access log has one line per request: peer, request line, status, bytes, time" *
            doctest::timeout(20)) {
    http::router app = make_app();
    std::vector<std::string> lines;  // written on the server's loop, read after serve() has returned
    http::server_options o{.access_log = true,
                           .log = [&lines](std::string_view l) { lines.emplace_back(l); }};
    with_server(app, std::move(o), [](http_fixture& f) {
      raw_client c(f.port());
      c.send("GET /items/3?x=1 HTTP/1.1\r\nHost: t\r\n\r\nGET /nothing HTTP/1.1\r\nHost: t\r\n\r\n");
      CHECK(c.response().status == 200);
      CHECK(c.response().status == 404);
      f.stop();
    });
    REQUIRE(lines.size() == 2);
    CHECK(lines[0].starts_with("127.0.0.1:"));
    CHECK(lines[0].find(" \"GET /items/3?x=1 HTTP/1.1\" 200 ") != std::string::npos);
    CHECK(lines[0].ends_with("ms"));
    CHECK(lines[1].find(" \"GET /nothing HTTP/1.1\" 404 ") != std::string::npos);
  }
}
