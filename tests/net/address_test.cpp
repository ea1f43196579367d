#include <coring/net/address.hpp>

#include <doctest/doctest.h>

#include <optional>
#include <stdexcept>
#include <string>
#include <unordered_set>

using coring::net::address;

TEST_SUITE("net/address") {

TEST_CASE("parse reads IPv4, bracketed IPv6 and unix: forms and prints them back the same") {
  struct row {
    const char* text;
    address::family family;
    const char* host;
    std::uint16_t port;
  };
  const row rows[] = {
      {"127.0.0.1:8080", address::family::ipv4, "127.0.0.1", 8080},
      {"0.0.0.0:0", address::family::ipv4, "0.0.0.0", 0},
      {"255.255.255.255:65535", address::family::ipv4, "255.255.255.255", 65535},
      {"[::1]:443", address::family::ipv6, "::1", 443},
      {"[2001:db8::42]:80", address::family::ipv6, "2001:db8::42", 80},
      {"[::ffff:127.0.0.1]:1", address::family::ipv6, "::ffff:127.0.0.1", 1},
      {"unix:/run/app.sock", address::family::unix_socket, "/run/app.sock", 0},
      {"unix:@coring-test", address::family::unix_socket, "@coring-test", 0},
  };
  for (const row& r : rows) {
    CAPTURE(r.text);
    std::optional<address> a = address::parse(r.text);
    REQUIRE(a.has_value());
    CHECK(a->kind() == r.family);
    CHECK(a->host() == r.host);
    CHECK(a->port() == r.port);
    CHECK(a->to_string() == r.text);
    CHECK(address::parse(a->to_string()) == a);
  }
}

TEST_CASE("parse refuses malformed text") {
  const char* bad[] = {"",           "127.0.0.1",      "127.0.0.1:",   "127.0.0.1:65536", "127.0.0.1:-1",
                       "127.0.0.1:x", "localhost:80",  "::1:80",       "[::1]",           "[::1]80",
                       "[127.0.0.1]:80", "1.2.3:80",   "unix:",        "999.1.1.1:1",     "[::1]:80x"};
  for (const char* text : bad) {
    CAPTURE(text);
    CHECK_FALSE(address::parse(text).has_value());
  }
}

TEST_CASE("ip takes literals only and keeps the port") {
  CHECK(address::ip("10.1.2.3", 7)->to_string() == "10.1.2.3:7");
  CHECK(address::ip("::", 9)->to_string() == "[::]:9");
  CHECK_FALSE(address::ip("localhost", 80).has_value());
  CHECK_FALSE(address::ip("127.1", 80).has_value());  // inet_aton's shorthand is not a literal here
  CHECK(address::ip("::1", 1)->is_loopback());
  CHECK(address::ip("127.9.9.9", 1)->is_loopback());
  CHECK_FALSE(address::ip("10.0.0.1", 1)->is_loopback());
}

TEST_CASE("addresses compare and hash by value") {
  address a = *address::parse("127.0.0.1:80");
  address b = address::loopback_v4(80);
  address c = *address::parse("127.0.0.1:81");
  CHECK(a == b);
  CHECK(a.hash() == b.hash());
  CHECK_FALSE(a == c);
  CHECK(a.with_port(81) == c);
  CHECK_FALSE(address::loopback_v4(80) == address::loopback_v6(80));
  std::unordered_set<address> set{a, b, c, address::loopback_v6(80), address::unix_path("/x"), address::unix_path("/x")};
  CHECK(set.size() == 4);
  CHECK(address().to_string() == "none");
  CHECK(address() == address());
}

TEST_CASE("unix_path refuses empty and over-long paths with invalid_argument") {
  CHECK_THROWS_AS((void)address::unix_path(""), std::invalid_argument);
  CHECK_THROWS_AS((void)address::unix_path(std::string(108, 'a')), std::invalid_argument);
  CHECK(address::unix_path(std::string(107, 'a')).host().size() == 107);
}

}  // TEST_SUITE
