#include <coring/file.hpp>

#include <doctest/doctest.h>

#include <coring/error.hpp>
#include <coring/event_loop.hpp>
#include <coring/spawn.hpp>
#include <coring/task.hpp>

#include "support/cancel_once.hpp"
#include "support/fds.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstddef>
#include <cstring>
#include <cstdint>
#include <string>
#include <system_error>
#include <vector>

namespace {
using coring::file;
using coring::open_mode;
using coring::task;

std::string temp_path(const char* name) { return "/tmp/coring-file-test-" + std::to_string(::getpid()) + "-" + name; }

std::vector<std::byte> pattern(std::size_t n) {
  std::vector<std::byte> v(n);
  std::uint32_t x = 12345;
  for (auto& b : v) {
    x = x * 1664525u + 1013904223u;
    b = static_cast<std::byte>(x >> 24);
  }
  return v;
}

struct removed_at_end {
  std::string path;
  ~removed_at_end() { ::unlink(path.c_str()); }
};
}  // namespace

TEST_SUITE("runtime/file") {

TEST_CASE("write then read back 100 MiB through the ring, byte for byte" * doctest::timeout(60)) {
  removed_at_end tmp{temp_path("big")};
  const int before = coring_test::settled_fd_count();
  coring::run([](std::string path) -> task<> {
    auto data = pattern(100 << 20);
    file f = co_await file::open(path, open_mode::write);
    CHECK(f.is_open());
    CHECK((::fcntl(f.native_handle(), F_GETFD) & FD_CLOEXEC) != 0);
    co_await f.write_all(data);
    co_await f.fsync();
    co_await f.close();
    CHECK_FALSE(f.is_open());

    file g = co_await file::open(path);
    CHECK(co_await g.size() == data.size());
    std::string all = co_await g.read_all();
    REQUIRE(all.size() == data.size());
    CHECK(std::memcmp(all.data(), data.data(), data.size()) == 0);
    std::array<std::byte, 16> part;
    CHECK(co_await g.read_at(part, 1000) == 16);
    CHECK(std::equal(part.begin(), part.end(), data.begin() + 1000));
    CHECK(co_await g.read_at(part, data.size()) == 0);  // end of file is a value
  }(tmp.path));
  CHECK(coring_test::fd_count_returns_to(before));
}

TEST_CASE("opening a missing path is an io_error ENOENT naming the path" * doctest::timeout(10)) {
  coring::run([]() -> task<> {
    bool thrown = false;
    try {
      (void)co_await file::open("/tmp/coring-no-such-dir/missing.txt");
    } catch (const coring::io_error& e) {
      thrown = true;
      CHECK(e.code() == std::error_code(ENOENT, std::system_category()));
      CHECK(std::string(e.what()) == "open /tmp/coring-no-such-dir/missing.txt: No such file or directory");
    }
    CHECK(thrown);
  }());
}

TEST_CASE("errors of reads and writes name the path" * doctest::timeout(10)) {
  removed_at_end tmp{temp_path("ro")};
  coring::run([](std::string path) -> task<> {
    {
      file w = co_await file::open(path, open_mode::write);
      co_await w.write_all(std::string_view("text"));
    }
    file r = co_await file::open(path);
    bool thrown = false;
    try {
      co_await r.write_all(std::string_view("no"));
    } catch (const coring::io_error& e) {
      thrown = true;
      CHECK(std::string(e.what()) == "write to " + path + ": Bad file descriptor");
    }
    CHECK(thrown);
  }(tmp.path));
}

TEST_CASE("append mode adds at the end and fsync and size see it" * doctest::timeout(10)) {
  removed_at_end tmp{temp_path("append")};
  coring::run([](std::string path) -> task<> {
    {
      file f = co_await file::open(path, open_mode::write);
      co_await f.write_all(std::string_view("hello"));
      co_await f.fsync();
    }
    file a = co_await file::open(path, open_mode::append);
    co_await a.write_all(std::string_view(", world"));
    co_await a.fsync();
    CHECK(co_await a.size() == 12);
    file r = co_await file::open(path);
    CHECK(co_await r.read_all() == "hello, world");
  }(tmp.path));
}

TEST_CASE("a file operation is cancelled exactly once" * doctest::timeout(10)) {
  // A read of a FIFO with no writer blocks: cancel it in the ring.
  const std::string fifo = temp_path("fifo");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  removed_at_end tmp{fifo};
  int keep_open = ::open(fifo.c_str(), O_RDWR | O_CLOEXEC);  // so that opening it does not block
  coring_test::expect_cancelled_once([&fifo]() -> task<> {
    file f = co_await file::open(fifo);
    std::array<std::byte, 8> buf;
    (void)co_await f.read_at(buf, 0);
  });
  ::close(keep_open);
}

}  // TEST_SUITE
