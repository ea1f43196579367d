#pragma once
// HTTP dates (RFC 9110 section 5.6.7): the Date, Last-Modified, Expires and
// If-Modified-Since fields, for the server and the client alike.
//
//   std::string d = http::format_date(std::chrono::system_clock::now());
//                                           // "Sun, 06 Nov 1994 08:49:37 GMT"
//   std::optional<std::chrono::system_clock::time_point> t = http::parse_date(d);
//
// Dates are sent in IMF-fixdate only; parsing also accepts the two obsolete
// forms a recipient must understand (RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT",
// asctime: "Sun Nov  6 08:49:37 1994"). Whole seconds, UTC.

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace coring::http {

/// Characters of an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT").
inline constexpr std::size_t date_length = 29;

/// `t` (rounded down to the second) as an IMF-fixdate.
[[nodiscard]] std::string format_date(std::chrono::system_clock::time_point t);
/// Writes the IMF-fixdate of `t` into `out` (exactly date_length characters, no NUL).
void format_date(std::chrono::system_clock::time_point t, char* out) noexcept;

/// The time an HTTP date names, or nullopt if `text` is not one of the three
/// forms (or names an impossible day or time). Leading and trailing
/// whitespace is ignored. A date beyond what system_clock can hold (with
/// libstdc++, before 21 Sep 1677 or after 11 Apr 2262) gives time_point::min()
/// or max().
[[nodiscard]] std::optional<std::chrono::system_clock::time_point> parse_date(std::string_view text) noexcept;

}  // namespace coring::http
