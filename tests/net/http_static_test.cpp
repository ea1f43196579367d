#include <doctest/doctest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <coring/http/date.hpp>
#include <coring/http/router.hpp>
#include <coring/http/server.hpp>
#include <filesystem>
#include <fstream>
#include <string>

#include "support/fds.hpp"
#include "support/http.hpp"

namespace http = coring::http;
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using coring_test::fetch;
using coring_test::get;
using coring_test::http_fixture;
using coring_test::raw_client;
using coring_test::raw_response;

namespace {

// A directory tree made for one test and removed after it:
//   <root>/public/{cat.jpg, notes.txt, index.html, big.bin, sub/page.html, escape -> ../secret.txt}
//   <root>/secret.txt
class site {
 public:
  site() {
    char tmpl[] = "/tmp/coring-static-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    root_ = tmpl;
    fs::create_directories(public_dir() + "/sub");
    write("public/cat.jpg", "\xff\xd8\xff\xe0 not really a jpeg");
    write("public/notes.txt", "0123456789");
    write("public/index.html", "<h1>index</h1>");
    write("public/sub/page.html", "<p>page</p>");
    std::string big(1024 * 1024 + 7, '\0');
    for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 23);
    write("public/big.bin", big);
    big_ = std::move(big);
    write("secret.txt", "the secret");
    fs::create_symlink("../secret.txt", public_dir() + "/escape");
    fs::create_symlink("/etc/passwd", public_dir() + "/absolute");
    fs::create_symlink("notes.txt", public_dir() + "/alias.txt");  // inside: allowed
  }
  ~site() {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  site(const site&) = delete;
  site& operator=(const site&) = delete;

  [[nodiscard]] std::string public_dir() const { return root_ + "/public"; }
  [[nodiscard]] const std::string& big() const noexcept { return big_; }

 private:
  void write(const std::string& rel, const std::string& content) {
    std::ofstream(root_ + "/" + rel, std::ios::binary) << content;
  }
  std::string root_;
  std::string big_;
};

std::string get_with(std::string_view target, std::string_view fields) {
  return "GET " + std::string(target) + " HTTP/1.1\r\nHost: t\r\n" + std::string(fields) + "\r\n";
}

}  // namespace

TEST_SUITE("net/http_static") {
  TEST_CASE("static files: the content with its MIME type, ETag and Last-Modified, index files, HEAD" *
            doctest::timeout(30)) {
    site s;
    http::router app;
    app.static_files("/cats", s.public_dir(), {.cache_control = "max-age=60"});
    const int before = coring_test::settled_fd_count();
    {
      http_fixture f(app);
      raw_response cat = get(f.port(), "/cats/cat.jpg");
      CHECK(cat.status == 200);
      CHECK(cat.body == "\xff\xd8\xff\xe0 not really a jpeg");
      CHECK(cat.field("Content-Type") == "image/jpeg");
      CHECK(cat.field("ETag").has_value());
      CHECK(cat.field("Cache-Control") == "max-age=60");
      CHECK(cat.field("Accept-Ranges") == "bytes");
      auto modified = cat.field("Last-Modified");
      REQUIRE(modified);
      CHECK(http::parse_date(*modified).has_value());

      CHECK(get(f.port(), "/cats/notes.txt").field("Content-Type") == "text/plain; charset=utf-8");
      raw_response index = get(f.port(), "/cats/");
      CHECK(index.body == "<h1>index</h1>");
      CHECK(index.field("Content-Type") == "text/html; charset=utf-8");
      CHECK(get(f.port(), "/cats/sub/page.html").body == "<p>page</p>");
      CHECK(get(f.port(), "/cats/alias.txt").body == "0123456789");  // a symlink that stays inside
      CHECK(get(f.port(), "/cats/missing.png").status == 404);
      CHECK(get(f.port(), "/cats/sub").status == 404);  // a directory is not a file

      // A megabyte spliced from the file, then the connection goes on.
      raw_client c(f.port());
      c.send(get_with("/cats/big.bin", ""));
      raw_response big = c.response();
      CHECK(big.status == 200);
      CHECK(big.field("Content-Type") == "application/octet-stream");
      CHECK(big.body.size() == s.big().size());
      CHECK(big.body == s.big());
      c.send("HEAD /cats/big.bin HTTP/1.1\r\nHost: t\r\n\r\n");
      raw_response head = c.response(true);
      CHECK(head.field("Content-Length") == std::to_string(s.big().size()));
      c.send(get_with("/cats/notes.txt", ""));
      CHECK(c.response().body == "0123456789");
      CHECK(f.stats().bytes_sent > s.big().size());
    }
    CHECK(coring_test::fd_count_returns_to(before));
  }

  TEST_CASE("static files: If-None-Match and If-Modified-Since give 304, Range gives 206 or 416" *
            doctest::timeout(30)) {
    site s;
    http::router app;
    app.static_files("/cats", s.public_dir());
    const int before = coring_test::settled_fd_count();
    {
      http_fixture f(app);
      raw_response first = get(f.port(), "/cats/notes.txt");
      const std::string etag = first.field("ETag").value_or("?");
      const std::string modified = first.field("Last-Modified").value_or("?");

      raw_response same = fetch(f.port(), get_with("/cats/notes.txt", "If-None-Match: " + etag + "\r\n"));
      CHECK(same.status == 304);
      CHECK(same.body.empty());
      CHECK(same.field("ETag") == etag);
      CHECK(
          fetch(f.port(), get_with("/cats/notes.txt", "If-None-Match: \"other\", " + etag + "\r\n")).status ==
          304);
      CHECK(fetch(f.port(), get_with("/cats/notes.txt", "If-None-Match: \"other\"\r\n")).status == 200);
      CHECK(fetch(f.port(), get_with("/cats/notes.txt", "If-Modified-Since: " + modified + "\r\n")).status ==
            304);
      CHECK(
          fetch(f.port(), get_with("/cats/notes.txt", "If-Modified-Since: Sat, 01 Jan 2000 00:00:00 GMT\r\n"))
              .status == 200);

      raw_response part = fetch(f.port(), get_with("/cats/notes.txt", "Range: bytes=2-5\r\n"));
      CHECK(part.status == 206);
      CHECK(part.body == "2345");
      CHECK(part.field("Content-Range") == "bytes 2-5/10");
      CHECK(fetch(f.port(), get_with("/cats/notes.txt", "Range: bytes=-3\r\n")).body == "789");
      CHECK(fetch(f.port(), get_with("/cats/notes.txt", "Range: bytes=7-\r\n")).body == "789");
      CHECK(fetch(f.port(), get_with("/cats/notes.txt", "Range: bytes=8-100\r\n")).body == "89");
      raw_response beyond = fetch(f.port(), get_with("/cats/notes.txt", "Range: bytes=10-\r\n"));
      CHECK(beyond.status == 416);
      CHECK(beyond.field("Content-Range") == "bytes */10");
      // Several ranges, or a malformed one: the whole file.
      CHECK(fetch(f.port(), get_with("/cats/notes.txt", "Range: bytes=0-1,4-5\r\n")).status == 200);
      CHECK(fetch(f.port(), get_with("/cats/notes.txt", "Range: lines=1-2\r\n")).body == "0123456789");
      // If-Range with the current ETag honours the range; with another, the whole file.
      CHECK(fetch(f.port(), get_with("/cats/notes.txt", "Range: bytes=0-0\r\nIf-Range: " + etag + "\r\n"))
                .body == "0");
      CHECK(fetch(f.port(), get_with("/cats/notes.txt", "Range: bytes=0-0\r\nIf-Range: \"old\"\r\n")).body ==
            "0123456789");
      // A range of the megabyte file, from its middle.
      raw_response mid = fetch(f.port(), get_with("/cats/big.bin", "Range: bytes=500000-500099\r\n"));
      CHECK(mid.status == 206);
      CHECK(mid.body == s.big().substr(500000, 100));
    }
    CHECK(coring_test::fd_count_returns_to(before));
  }

  TEST_CASE("static files: no path leaves the directory ('..', encoded slashes, symlinks out)" *
            doctest::timeout(30)) {
    site s;
    http::router app;
    app.static_files("/cats", s.public_dir());
    const int before = coring_test::settled_fd_count();
    {
      http_fixture f(app);
      struct row {
        std::string target;
        int status;
      };
      const std::vector<row> rows = {
          {"/cats/../secret.txt", 400},
          {"/cats/sub/../../secret.txt", 400},
          {"/cats/%2e%2e/secret.txt", 400},
          {"/cats/.%2E/secret.txt", 400},
          {"/cats/..%2fsecret.txt", 400},
          {"/cats/..%2Fsecret.txt", 400},
          {"/cats/sub%2f..%2f..%2fsecret.txt", 400},
          {"/cats/..%5csecret.txt", 400},
          {"/cats/notes.txt%00.jpg", 400},
          {"/cats/./notes.txt", 400},
          {"/cats/escape", 404},    // a symlink to ../secret.txt
          {"/cats/absolute", 404},  // a symlink to /etc/passwd
      };
      for (const row& r : rows) {
        CAPTURE(r.target);
        raw_response resp = get(f.port(), r.target);
        CHECK(resp.status == r.status);
        CHECK(resp.body.find("secret") == std::string::npos);
        CHECK(resp.body.find("root:") == std::string::npos);
      }
      CHECK(get(f.port(), "/cats/notes.txt").status == 200);
    }
    CHECK(coring_test::fd_count_returns_to(before));
  }
}
