#include <coring/http/date.hpp>

#include <array>
#include <cstdint>

namespace coring::http {

namespace {
constexpr std::array<std::string_view, 7> day_names = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
constexpr std::array<std::string_view, 7> long_day_names = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                                            "Thursday", "Friday", "Saturday"};
constexpr std::array<std::string_view, 12> month_names = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

// Howard Hinnant's days_from_civil / civil_from_days (proleptic Gregorian, UTC).
constexpr std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) noexcept {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

struct civil {
  std::int64_t year;
  unsigned month, day;
};
constexpr civil civil_from_days(std::int64_t z) noexcept {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  return {static_cast<std::int64_t>(yoe) + era * 400 + (m <= 2), m, d};
}

constexpr bool leap(std::int64_t y) noexcept { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }
constexpr unsigned days_in(std::int64_t y, unsigned m) noexcept {
  constexpr unsigned days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && leap(y) ? 29 : days[m - 1];
}

void two(char* out, unsigned v) noexcept {
  out[0] = static_cast<char>('0' + v / 10 % 10);
  out[1] = static_cast<char>('0' + v % 10);
}

// A cursor over the text with the few token readers the three forms need.
struct cursor {
  std::string_view s;
  bool lit(std::string_view l) noexcept {
    if (!s.starts_with(l)) return false;
    s.remove_prefix(l.size());
    return true;
  }
  // Exactly n digits (n == 0: one or more).
  bool digits(unsigned n, unsigned& v) noexcept {
    v = 0;
    unsigned k = 0;
    while (!s.empty() && s[0] >= '0' && s[0] <= '9' && (n == 0 || k < n)) {
      v = v * 10 + static_cast<unsigned>(s[0] - '0');
      s.remove_prefix(1);
      ++k;
      if (k > 9) return false;
    }
    return n == 0 ? k > 0 : k == n;
  }
  bool month(unsigned& m) noexcept {
    for (unsigned i = 0; i < 12; ++i) {
      if (lit(month_names[i])) {
        m = i + 1;
        return true;
      }
    }
    return false;
  }
  bool time(unsigned& h, unsigned& mi, unsigned& se) noexcept {
    return digits(2, h) && lit(":") && digits(2, mi) && lit(":") && digits(2, se);
  }
};

std::optional<std::chrono::system_clock::time_point> make(std::int64_t y, unsigned mo, unsigned d, unsigned h,
                                                          unsigned mi, unsigned se) noexcept {
  // Leap seconds (60) are allowed by the grammar; they fold into the next minute.
  if (mo < 1 || mo > 12 || d < 1 || d > days_in(y, mo) || h > 23 || mi > 59 || se > 60) return std::nullopt;
  const std::int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se;
  // system_clock may count nanoseconds (libstdc++ does): then dates before
  // 21 Sep 1677 or after 11 Apr 2262 do not fit, and converting them would
  // overflow. They saturate instead, which keeps their order against any
  // other time.
  using time_point = std::chrono::system_clock::time_point;
  constexpr std::int64_t most =
      std::chrono::duration_cast<std::chrono::seconds>(time_point::duration::max()).count();
  if (secs > most) return time_point::max();
  if (secs < -most) return time_point::min();
  return time_point(std::chrono::seconds(secs));
}
}  // namespace

void format_date(std::chrono::system_clock::time_point t, char* out) noexcept {
  const std::int64_t secs = std::chrono::floor<std::chrono::seconds>(t.time_since_epoch()).count();
  const std::int64_t days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400;
  const auto in_day = static_cast<unsigned>(secs - days * 86400);
  const civil c = civil_from_days(days);
  const auto weekday = static_cast<unsigned>((days % 7 + 11) % 7);  // 1970-01-01 was a Thursday
  std::string_view wd = day_names[weekday];
  out[0] = wd[0], out[1] = wd[1], out[2] = wd[2], out[3] = ',', out[4] = ' ';
  two(out + 5, c.day);
  out[7] = ' ';
  std::string_view mn = month_names[c.month - 1];
  out[8] = mn[0], out[9] = mn[1], out[10] = mn[2], out[11] = ' ';
  const auto y = static_cast<unsigned>(c.year < 0 ? 0 : c.year > 9999 ? 9999 : c.year);
  two(out + 12, y / 100);
  two(out + 14, y % 100);
  out[16] = ' ';
  two(out + 17, in_day / 3600);
  out[19] = ':';
  two(out + 20, in_day / 60 % 60);
  out[22] = ':';
  two(out + 23, in_day % 60);
  out[25] = ' ', out[26] = 'G', out[27] = 'M', out[28] = 'T';
}

std::string format_date(std::chrono::system_clock::time_point t) {
  std::string s(date_length, ' ');
  format_date(t, s.data());
  return s;
}

std::optional<std::chrono::system_clock::time_point> parse_date(std::string_view text) noexcept {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  unsigned d = 0, mo = 0, y = 0, h = 0, mi = 0, se = 0;
  // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
  for (std::string_view name : day_names) {
    cursor c{text};
    if (c.lit(name) && c.lit(", ") && c.digits(2, d) && c.lit(" ") && c.month(mo) && c.lit(" ") &&
        c.digits(4, y) && c.lit(" ") && c.time(h, mi, se) && c.lit(" GMT") && c.s.empty())
      return make(y, mo, d, h, mi, se);
    // asctime: "Sun Nov  6 08:49:37 1994" (the day padded with a space)
    c = cursor{text};
    if (c.lit(name) && c.lit(" ") && c.month(mo) && c.lit(" ") && (c.lit(" ") || true) && c.digits(0, d) &&
        d < 32 && c.lit(" ") && c.time(h, mi, se) && c.lit(" ") && c.digits(4, y) && c.s.empty())
      return make(y, mo, d, h, mi, se);
  }
  // RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT" (two-digit years: RFC 9110 says
  // a year that looks more than 50 years ahead is in the past).
  for (std::string_view name : long_day_names) {
    cursor c{text};
    if (c.lit(name) && c.lit(", ") && c.digits(2, d) && c.lit("-") && c.month(mo) && c.lit("-") &&
        c.digits(2, y) && c.lit(" ") && c.time(h, mi, se) && c.lit(" GMT") && c.s.empty()) {
      const auto now = std::chrono::floor<std::chrono::days>(std::chrono::system_clock::now());
      const std::int64_t this_year = civil_from_days(now.time_since_epoch().count()).year;
      std::int64_t full = this_year / 100 * 100 + y;
      if (full > this_year + 50) full -= 100;
      return make(full, mo, d, h, mi, se);
    }
  }
  return std::nullopt;
}

}  // namespace coring::http
