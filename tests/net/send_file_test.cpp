#include <coring/net/send_file.hpp>

#include <doctest/doctest.h>

#include <coring/file.hpp>
#include <coring/net/tcp.hpp>
#include <coring/spawn.hpp>
#include <coring/task.hpp>

#include "support/net.hpp"

#include <unistd.h>

#include <string>
#include <vector>

using coring::task;
using coring::net::tcp_stream;

TEST_SUITE("net/send_file") {

TEST_CASE("send_file splices a range of a file into a socket" * doctest::timeout(20)) {
  const std::string path = "/tmp/coring-send-file-" + std::to_string(::getpid());
  coring_test::run_net([](std::string path) -> task<> {
    auto data = coring_test::pattern(3'000'000, 5);
    {
      coring::file f = co_await coring::file::open(path, coring::open_mode::write);
      co_await f.write_all(data);
      co_await f.close();
    }
    auto listener = coring_test::loopback_listener();
    tcp_stream client = co_await tcp_stream::connect(listener.local_address());
    tcp_stream server = co_await listener.accept();
    coring::file f = co_await coring::file::open(path);
    auto sender = coring::spawn([](tcp_stream& s, coring::file& f) -> task<std::size_t> {
      std::size_t n = co_await coring::net::send_file(s, f.native_handle(), 1000, 2'500'000);
      co_await s.shutdown_write();
      co_return n;
    }(server, f));
    std::vector<std::byte> got;
    std::vector<std::byte> buf(65536);
    for (;;) {
      std::size_t n = co_await client.read_some(buf);
      if (n == 0) break;
      got.insert(got.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
    }
    CHECK(co_await sender == 2'500'000);
    REQUIRE(got.size() == 2'500'000);
    CHECK(std::equal(got.begin(), got.end(), data.begin() + 1000));
    // Past the end of the file: what there is.
    tcp_stream c2 = co_await tcp_stream::connect(listener.local_address());
    tcp_stream s2 = co_await listener.accept();
    CHECK(co_await coring::net::send_file(s2, f.native_handle(), 2'999'990, 100) == 10);
    ::unlink(path.c_str());
  }(path));
}

}  // TEST_SUITE
