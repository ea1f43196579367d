#include <doctest/doctest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <coring/http/server.hpp>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "support/fds.hpp"
#include "support/http.hpp"
#include "support/stopwatch.hpp"

// The server against clients no one here wrote (curl, Python's http.client,
// aiohttp, wrk), each started by the test; and 10,000 keep-alive
// connections open at once. A client that is not installed skips its case
// with a message (scripts/install-deps installs them all).

namespace http = coring::http;
using namespace std::chrono_literals;
using coring_test::http_fixture;
using coring_test::program_result;
using coring_test::run_program;

namespace {

const char* const python = "/usr/bin/python3";
const char* const curl = "/usr/bin/curl";
const char* const wrk = "/usr/bin/wrk";

http::router make_app() {
  http::router app;
  app.get("/",
          [](http::request&) -> coring::task<http::response> { co_return http::response::text("hello"); });
  app.get("/items/{id}", [](http::request& req) -> coring::task<http::response> {
    co_return http::response::text("item " + std::to_string(req.param<std::int64_t>("id")));
  });
  app.post("/echo", [](http::request& req) -> coring::task<http::response> {
    co_return http::response::bytes(co_await req.body(), "application/octet-stream");
  });
  app.get("/json", [](http::request&) -> coring::task<http::response> {
    co_return http::response::json({{"a", 1}, {"b", "two"}});
  });
  app.get("/stream/{n}", [](http::request& req) -> coring::task<http::response> {
    const int n = req.param<int>("n");
    co_return http::response::stream(
        [n](http::body_writer& w) -> coring::task<> {
          for (int i = 0; i < n; ++i) co_await w.write("line " + std::to_string(i) + "\n");
        },
        "text/plain");
  });
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

bool python_has(const char* module) {
  return coring_test::have_program(python) &&
         run_program({python, "-c", std::string("import ") + module}, 20s).exit_code == 0;
}

const char* const http_client_script = R"(
import http.client, json, sys
port = int(sys.argv[1])
c = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
for i in range(20):
    c.request('GET', '/items/%d' % i)
    r = c.getresponse()
    assert r.status == 200, r.status
    assert r.read() == b'item %d' % i
c.request('POST', '/echo', body=iter([b'abc', b'def', b'g']), encode_chunked=True)
r = c.getresponse()
assert r.read() == b'abcdefg'
c.request('POST', '/echo', body=b'x' * 100000)
r = c.getresponse()
assert r.read() == b'x' * 100000
c.request('GET', '/stream/5')
r = c.getresponse()
assert r.getheader('Transfer-Encoding') == 'chunked'
assert r.read() == b''.join(b'line %d\n' % i for i in range(5))
c.request('HEAD', '/')
r = c.getresponse()
assert r.read() == b''
assert r.getheader('Content-Length') == '5'
c.request('GET', '/json')
r = c.getresponse()
assert json.loads(r.read()) == {'a': 1, 'b': 'two'}
c.request('GET', '/nothing')
r = c.getresponse()
r.read()
assert r.status == 404
c.request('DELETE', '/json')
r = c.getresponse()
r.read()
assert r.status == 405 and r.getheader('Allow') == 'GET, HEAD'
c.close()
print('ok')
)";

const char* const aiohttp_script = R"(
import asyncio, aiohttp, sys
port = int(sys.argv[1])
base = 'http://127.0.0.1:%d' % port
async def main():
    async with aiohttp.ClientSession() as s:
        async def one(i):
            async with s.get(base + '/items/%d' % i) as r:
                assert r.status == 200
                assert await r.text() == 'item %d' % i
        await asyncio.gather(*(one(i) for i in range(300)))
        async with s.post(base + '/echo', data=b'y' * 50000) as r:
            assert await r.read() == b'y' * 50000
        async def pieces():
            for p in (b'one ', b'two ', b'three'):
                yield p
        async with s.post(base + '/echo', data=pieces()) as r:
            assert await r.read() == b'one two three'
        async with s.get(base + '/stream/3') as r:
            assert await r.text() == 'line 0\nline 1\nline 2\n'
        async with s.get(base + '/json') as r:
            assert await r.json() == {'a': 1, 'b': 'two'}
    print('ok')
asyncio.run(main())
)";

// Opens argv[2] connections, sends a request on each and reads its answer,
// twice, then asks the server (on the last one) how many are open.
const char* const many_connections_script = R"(
import socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
socks = [socket.create_connection(('127.0.0.1', port), timeout=20) for _ in range(n)]
def answer(s, tail):
    got = b''
    while tail not in got:
        d = s.recv(4096)
        if not d:
            break
        got += d
    return got
answered = 0
for _ in range(2):
    for s in socks:
        s.sendall(b'GET / HTTP/1.1\r\nHost: t\r\n\r\n')
    for s in socks:
        got = answer(s, b'\r\n\r\nhello')
        answered += got.startswith(b'HTTP/1.1 200 ') and got.endswith(b'\r\n\r\nhello')
socks[-1].sendall(b'GET /open HTTP/1.1\r\nHost: t\r\n\r\n')
head, _, body = answer(socks[-1], b'\r\n\r\n').partition(b'\r\n\r\n')
length = int([l for l in head.split(b'\r\n') if l.lower().startswith(b'content-length:')][0].split(b':')[1])
while len(body) < length:
    body += socks[-1].recv(4096)
print('answered', answered, 'open', body.decode())
)";

// Raises the soft (and, when it may, the hard) limit on descriptors to
// `wanted` for the scope; gives back the limit it got.
class fd_limit {
 public:
  explicit fd_limit(rlim_t wanted) {
    ::getrlimit(RLIMIT_NOFILE, &saved_);
    rlimit r = saved_;
    if (r.rlim_cur < wanted) {
      r.rlim_cur = wanted;
      if (r.rlim_max < wanted) r.rlim_max = wanted;  // needs CAP_SYS_RESOURCE
      if (::setrlimit(RLIMIT_NOFILE, &r) != 0) {
        r = saved_;
        r.rlim_cur = saved_.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &r);
      }
    }
    rlimit now{};
    ::getrlimit(RLIMIT_NOFILE, &now);
    got_ = now.rlim_cur;
  }
  ~fd_limit() { ::setrlimit(RLIMIT_NOFILE, &saved_); }
  fd_limit(const fd_limit&) = delete;
  fd_limit& operator=(const fd_limit&) = delete;
  [[nodiscard]] rlim_t got() const noexcept { return got_; }

 private:
  rlimit saved_{};
  rlim_t got_ = 0;
};

}  // namespace

TEST_SUITE("net/http_clients") {
  TEST_CASE("curl: keep-alive across URLs, HEAD, a POST with Expect: 100-continue, chunked, 404" *
            doctest::timeout(60)) {
    if (!coring_test::have_program(curl)) {
      MESSAGE("curl is not installed: skipped");
      return;
    }
    http::router app = make_app();
    with_server(app, {}, [](http_fixture& f) {
      const std::string base = "http://127.0.0.1:" + std::to_string(f.port());
      // Three URLs on one connection: curl reports how many it opened for each.
      program_result three = run_program({curl, "-sS", "-w", "[%{http_code} %{num_connects}]",
                                          base + "/items/1", base + "/items/2", base + "/items/3"},
                                         20s);
      CHECK(three.exit_code == 0);
      CHECK(three.output == "item 1[200 1]item 2[200 0]item 3[200 0]");
      CHECK(f.stats().connections == 1);

      program_result head = run_program({curl, "-sS", "-I", base + "/"}, 20s);
      CHECK(head.exit_code == 0);
      CHECK(head.output.find("HTTP/1.1 200 OK") == 0);
      CHECK(head.output.find("Content-Length: 5") != std::string::npos);

      const std::string body(100000, 'z');  // one argument: under MAX_ARG_STRLEN (128 KiB)
      program_result post = run_program({curl, "-sS", "-H", "Expect: 100-continue", "--data-binary", body,
                                         "-w", "[%{http_code}]", "-o", "/dev/null", base + "/echo"},
                                        20s);
      CHECK(post.exit_code == 0);
      CHECK(post.output == "[200]");

      program_result chunked = run_program({curl, "-sS", "-H", "Transfer-Encoding: chunked", "--data-binary",
                                            "sent in chunks", base + "/echo"},
                                           20s);
      CHECK(chunked.output == "sent in chunks");
      CHECK(run_program({curl, "-sS", base + "/stream/2"}, 20s).output == "line 0\nline 1\n");

      program_result missing =
          run_program({curl, "-sS", "-w", "[%{http_code}]", "-o", "/dev/null", base + "/nothing"}, 20s);
      CHECK(missing.output == "[404]");
    });
  }

  TEST_CASE("Python's http.client: one keep-alive connection for every request" * doctest::timeout(60)) {
    if (!coring_test::have_program(python)) {
      MESSAGE("python3 is not installed: skipped");
      return;
    }
    http::router app = make_app();
    with_server(app, {}, [](http_fixture& f) {
      program_result r = run_program({python, "-c", http_client_script, std::to_string(f.port())}, 40s);
      CHECK(r.exit_code == 0);
      CHECK(r.output == "ok\n");
      http::server_stats s = f.stats();
      CHECK(s.connections == 1);
      CHECK(s.requests == 27);
      CHECK(s.responses_2xx == 25);
      CHECK(s.responses_4xx == 2);
    });
  }

  TEST_CASE("aiohttp: 300 concurrent requests on its pool, a streamed upload, chunked and JSON answers" *
            doctest::timeout(60)) {
    if (!python_has("aiohttp")) {
      MESSAGE("python3-aiohttp is not installed: skipped");
      return;
    }
    http::router app = make_app();
    with_server(app, {}, [](http_fixture& f) {
      program_result r = run_program({python, "-c", aiohttp_script, std::to_string(f.port())}, 40s);
      CHECK(r.exit_code == 0);
      CHECK(r.output == "ok\n");
      http::server_stats s = f.stats();
      CHECK(s.requests == 304);
      CHECK(s.responses_2xx == 304);
      CHECK(s.connections <= 100);  // aiohttp's pool (100) reused its connections
    });
  }

  TEST_CASE("wrk: a second of load on 50 connections, every response a 200" * doctest::timeout(60)) {
    if (!coring_test::have_program(wrk)) {
      MESSAGE("wrk is not installed: skipped");
      return;
    }
    http::router app = make_app();
    with_server(app, {}, [](http_fixture& f) {
      program_result r = run_program(
          {wrk, "-t1", "-c50", "-d1s", "http://127.0.0.1:" + std::to_string(f.port()) + "/"}, 30s);
      CHECK(r.exit_code == 0);
      CHECK(r.output.find("Requests/sec") != std::string::npos);
      CHECK(r.output.find("Non-2xx") == std::string::npos);
      CHECK(r.output.find("Socket errors") == std::string::npos);
      http::server_stats s = f.stats();
      CHECK(s.connections >= 50);  // wrk may open one more to start
      CHECK(s.requests > 50);
      CHECK(s.responses_2xx == s.requests);
    });
  }

  TEST_CASE("10,000 keep-alive connections open at once, each served twice" * doctest::timeout(120)) {
    if (!coring_test::have_program(python)) {
      MESSAGE("python3 is not installed: skipped");
      return;
    }
    // The clients live in a Python process: both ends of 10,000 connections
    // would not fit this process's descriptor limit (20,000 here), which an
    // unprivileged test cannot raise.
    constexpr int n = 10000;
    fd_limit limit(n + 512);
    REQUIRE(limit.got() >= n + 512);
    http::router app = make_app();
    http::server* srv =
        nullptr;  // set below; the handler runs on the server's loop, where stats() may be read
    app.get("/open", [&srv](http::request&) -> coring::task<http::response> {
      co_return http::response::text(std::to_string(srv->stats().open_connections));
    });
    with_server(app, {}, [&srv](http_fixture& f) {
      srv = &f.server();
      program_result r = run_program(
          {python, "-c", many_connections_script, std::to_string(f.port()), std::to_string(n)}, 100s);
      CHECK(r.exit_code == 0);
      CHECK(r.output == "answered 20000 open 10000\n");
      http::server_stats s = f.stats();
      CHECK(s.connections == static_cast<std::uint64_t>(n));
      CHECK(s.requests == static_cast<std::uint64_t>(2 * n + 1));
      CHECK(s.responses_2xx == s.requests);
      coring_test::stopwatch w;
      while (f.stats().open_connections != 0 && w.elapsed() < 30s) std::this_thread::sleep_for(5ms);
      CHECK(f.stats().open_connections == 0);
    });
  }
}
