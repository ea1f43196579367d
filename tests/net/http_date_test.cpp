#include <coring/http/date.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <string_view>
#include <type_traits>

namespace http = coring::http;
using std::chrono::seconds;
using std::chrono::system_clock;

TEST_SUITE("net/http_date") {
  TEST_CASE("dates are formatted as IMF-fixdate in UTC") {
    struct row {
      long long secs;
      std::string_view text;
    };
    const row rows[] = {
        {0, "Thu, 01 Jan 1970 00:00:00 GMT"},
        {784111777, "Sun, 06 Nov 1994 08:49:37 GMT"},
        {951782400, "Tue, 29 Feb 2000 00:00:00 GMT"},
        {1700000000, "Tue, 14 Nov 2023 22:13:20 GMT"},
        {-86400, "Wed, 31 Dec 1969 00:00:00 GMT"},
        {4102444799, "Thu, 31 Dec 2099 23:59:59 GMT"},
    };
    for (const row& r : rows) {
      CAPTURE(r.secs);
      CHECK(http::format_date(system_clock::time_point(seconds(r.secs))) == r.text);
      CHECK(http::parse_date(r.text) == system_clock::time_point(seconds(r.secs)));
    }
  }

  TEST_CASE("the obsolete RFC 850 and asctime forms are parsed too") {
    const auto t = system_clock::time_point(seconds(784111777));
    CHECK(http::parse_date("Sunday, 06-Nov-94 08:49:37 GMT") == t);
    CHECK(http::parse_date("Sun Nov  6 08:49:37 1994") == t);
    CHECK(http::parse_date("  Sun, 06 Nov 1994 08:49:37 GMT ") == t);
  }

  TEST_CASE("the three forms of one date name the same time") {
    const auto t = system_clock::time_point(seconds(946684799));
    CHECK(http::parse_date("Fri, 31 Dec 1999 23:59:59 GMT") == t);
    CHECK(http::parse_date("Friday, 31-Dec-99 23:59:59 GMT") == t);
    CHECK(http::parse_date("Fri Dec 31 23:59:59 1999") == t);
  }

  TEST_CASE("dates beyond what system_clock holds saturate instead of overflowing") {
    const auto far = http::parse_date("Fri, 31 Dec 9999 23:59:59 GMT");
    const auto early = http::parse_date("Mon, 01 Jan 0001 00:00:00 GMT");
    REQUIRE(far.has_value());
    REQUIRE(early.has_value());
    CHECK(*far > *http::parse_date("Thu, 31 Dec 2099 23:59:59 GMT"));
    CHECK(*early < *http::parse_date("Thu, 01 Jan 1970 00:00:00 GMT"));
    if constexpr (std::is_same_v<system_clock::duration, std::chrono::nanoseconds>) {
      CHECK(*far == system_clock::time_point::max());
      CHECK(*early == system_clock::time_point::min());
      // The last second that fits is still exact.
      CHECK(http::parse_date("Fri, 11 Apr 2262 23:47:16 GMT") ==
            system_clock::time_point(seconds(9223372036)));
    }
  }

  TEST_CASE("text that is not an HTTP date gives nullopt") {
    const std::string_view bad[] = {
        "",
        "yesterday",
        "Sun, 06 Nov 1994 08:49:37 UTC",
        "Sun, 6 Nov 1994 08:49:37 GMT",
        "Sun, 31 Feb 1994 08:49:37 GMT",
        "Sun, 06 Foo 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 25:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37 GMT trailing",
        "Sun, 06 Nov 94 08:49:37 GMT",
    };
    for (std::string_view b : bad) {
      CAPTURE(b);
      CHECK_FALSE(http::parse_date(b).has_value());
    }
  }
}
