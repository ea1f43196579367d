// coring-get: a command-line downloader on http::client, installed with coring.
// It fetches many URLs at once over one session (keep-alive connections
// pooled per origin), streams each body to DIR/NAME.part through the ring and
// renames it to DIR/NAME once complete; a failed or interrupted download
// leaves neither file behind.
//
//   coring-get https://example.com/a.iso https://example.com/b.iso
//   coring-get -i urls.txt --out downloads --concurrency 16 --per-host 4 --retries 3
//   coring-get --help
//
// On a terminal it redraws one progress line (files done, bytes, rate);
// otherwise it prints one line per finished file. Either way a summary ends
// the run. Exit status: 0 all downloaded, 1 some failed, 2 usage error,
// 130 interrupted by Ctrl-C (SIGINT), 143 stopped by SIGTERM (kill PID,
// timeout(1), a service manager): either way the downloads in flight are
// cancelled and their .part files removed.

#include <coring/error.hpp>
#include <coring/event_loop.hpp>
#include <coring/file.hpp>
#include <coring/http/client.hpp>
#include <coring/http/client_error.hpp>
#include <coring/http/date.hpp>
#include <coring/http/error.hpp>
#include <coring/http/url.hpp>
#include <coring/semaphore.hpp>
#include <coring/signal.hpp>
#include <coring/sleep.hpp>
#include <coring/task.hpp>
#include <coring/task_group.hpp>
#include <coring/when_any.hpp>

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#ifndef CORING_GET_VERSION
#define CORING_GET_VERSION "unknown"
#endif

namespace http = coring::http;
using clock_type = std::chrono::steady_clock;

namespace {

constexpr const char* usage_text =
    "usage: coring-get [OPTIONS] URL...\n"
    "       coring-get [OPTIONS] -i FILE\n"
    "Downloads each URL (http or https) into DIR/NAME, NAME being the last segment\n"
    "of the URL's path, percent-decoded ('index.html' when it is empty); a name\n"
    "given twice becomes NAME.1, NAME.2, ... A body is written to NAME.part and\n"
    "renamed to NAME when complete; a failed download leaves neither.\n"
    "\n"
    "  -i, --input-file FILE  read URLs from FILE, one per line ('-': stdin);\n"
    "                         blank lines and lines starting with '#' are skipped\n"
    "  --out DIR              save into DIR, created if missing (default: .)\n"
    "  --concurrency N        downloads at once, in total (default: 8)\n"
    "  --per-host N           connections at once to one host:port (default: 0, no limit)\n"
    "  --retries N            retries of a download that failed for a reason that may\n"
    "                         pass: no connection, a timeout, a body cut short, a status\n"
    "                         of 408, 429 or 5xx (default: 2). Other 4xx statuses and\n"
    "                         bad URLs are not retried\n"
    "  --retry-delay SECONDS  the first wait before a retry; each further one doubles,\n"
    "                         and each is shortened by a random part of up to a half;\n"
    "                         a wait is at most 60 s, and at least the Retry-After of\n"
    "                         a 429 or 503 (seconds, or an HTTP date: the time until\n"
    "                         then), up to 60 s (default: 0.5)\n"
    "  --timeout SECONDS      the connect timeout (resolving, connecting and the TLS\n"
    "                         handshake, together) and the read timeout (the longest\n"
    "                         wait for the next bytes of the response); a download may\n"
    "                         take as long as it keeps receiving (default: 30)\n"
    "  --cacert FILE          trust the certificate authorities in FILE (PEM) instead\n"
    "                         of the system's\n"
    "  -k, --insecure         do not verify https certificates or host names\n"
    "  -q, --quiet            print nothing but failures\n"
    "  -h, --help             print this help and exit\n"
    "  -V, --version          print the version and exit\n"
    "\n"
    "Output goes to stderr: on a terminal one progress line redrawn in place, else\n"
    "'ok URL -> PATH (N bytes, X s)' or 'FAILED URL: reason' per file; then\n"
    "'N downloaded, M failed, BYTES bytes in S s (RATE)'.\n"
    "Exit status: 0 all downloaded, 1 some failed, 2 usage error, 130 interrupted by\n"
    "Ctrl-C (SIGINT), 143 stopped by SIGTERM; either way the downloads in flight are\n"
    "cancelled and their .part files removed.\n";

/// A command line that cannot be run: the message, then exit status 2.
class usage_error : public coring::error {
 public:
  using error::error;
};

/// Writing a body to disk failed (open, write, close, rename): never retried,
/// the next attempt would meet the same disk.
class save_error : public coring::error {
 public:
  using error::error;
};

struct settings {
  std::vector<std::string> urls;
  std::string out = ".";
  std::size_t concurrency = 8;
  std::size_t per_host = 0;
  int retries = 2;
  double retry_delay = 0.5;  // seconds
  double timeout = 30;       // seconds
  std::string cacert;
  bool insecure = false;
  bool quiet = false;
};

/// One URL to fetch and where it goes.
struct job {
  std::string url;
  std::string path;     // DIR/NAME
  std::string bad_url;  // why the URL cannot be fetched; empty if it can
};

// ---------------------------------------------------------------- the command line

double parse_seconds(const std::string& option, const std::string& text) {
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || errno != 0 || !std::isfinite(v) || v < 0 || v > 1e6) {
    throw usage_error(option + " wants seconds (a number from 0 to 1000000), not '" + text + "'");
  }
  return v;
}

std::size_t parse_count(const std::string& option, const std::string& text, std::size_t least) {
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(text.c_str(), &end, 10);
  if (text.empty() || text[0] == '-' || *end != '\0' || errno != 0 || v < least || v > 1000000) {
    throw usage_error(option + " wants a whole number from " + std::to_string(least) + " to 1000000, not '" +
                      text + "'");
  }
  return static_cast<std::size_t>(v);
}

void read_list(std::istream& in, std::vector<std::string>& urls) {
  std::string line;
  while (std::getline(in, line)) {
    const auto first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos || line[first] == '#') continue;
    const auto last = line.find_last_not_of(" \t\r");
    urls.push_back(line.substr(first, last - first + 1));
  }
}

/// What the command line asks for; std::nullopt when it was --help or --version (printed).
std::optional<settings> parse_command_line(int argc, char** argv) {
  settings s;
  std::vector<std::string> lists;
  bool only_urls = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    // Flags bundled as curl and wget allow: -kq is -k -q.
    if (!only_urls && arg.size() > 2 && arg[0] == '-' && arg[1] != '-' &&
        arg.find_first_not_of("kq", 1) == std::string::npos) {
      for (char c : arg.substr(1)) (c == 'k' ? s.insecure : s.quiet) = true;
      continue;
    }
    if (only_urls || arg == "-" || !arg.starts_with("-")) {
      s.urls.push_back(arg);
      continue;
    }
    if (arg == "--") {
      only_urls = true;
      continue;
    }
    std::optional<std::string> inline_value;
    if (arg.starts_with("--")) {
      if (const auto eq = arg.find('='); eq != std::string::npos) {
        inline_value = arg.substr(eq + 1);
        arg.resize(eq);
      }
    }
    auto value = [&]() -> std::string {
      if (inline_value) return *inline_value;
      if (i + 1 >= argc) throw usage_error(arg + " needs a value");
      return argv[++i];
    };
    auto flag = [&] {
      if (inline_value) throw usage_error(arg + " takes no value");
    };
    if (arg == "-h" || arg == "--help") {
      std::fputs(usage_text, stdout);
      return std::nullopt;
    } else if (arg == "-V" || arg == "--version") {
      std::printf("coring-get %s (installed with coring; HTTP/1.1 and TLS on io_uring)\n",
                  CORING_GET_VERSION);
      return std::nullopt;
    } else if (arg == "-i" || arg == "--input-file") {
      lists.push_back(value());
    } else if (arg == "--out") {
      s.out = value();
      if (s.out.empty()) throw usage_error("--out wants a directory");
    } else if (arg == "--concurrency") {
      s.concurrency = parse_count(arg, value(), 1);
    } else if (arg == "--per-host") {
      s.per_host = parse_count(arg, value(), 0);
    } else if (arg == "--retries") {
      s.retries = static_cast<int>(parse_count(arg, value(), 0));
    } else if (arg == "--retry-delay") {
      s.retry_delay = parse_seconds(arg, value());
    } else if (arg == "--timeout") {
      s.timeout = parse_seconds(arg, value());
      if (s.timeout == 0) throw usage_error("--timeout wants more than 0 seconds");
    } else if (arg == "--cacert") {
      s.cacert = value();
    } else if (arg == "-k" || arg == "--insecure") {
      flag();
      s.insecure = true;
    } else if (arg == "-q" || arg == "--quiet") {
      flag();
      s.quiet = true;
    } else {
      throw usage_error("unknown option '" + arg + "'");
    }
  }
  for (const std::string& list : lists) {
    if (list == "-") {
      read_list(std::cin, s.urls);
      continue;
    }
    std::ifstream in(list);
    if (!in) {
      const int e = errno;
      throw usage_error("cannot read the URL list '" + list + "': " + std::strerror(e));
    }
    read_list(in, s.urls);
  }
  if (s.urls.empty()) throw usage_error("no URL given");
  if (!s.cacert.empty() && ::access(s.cacert.c_str(), R_OK) != 0) {
    const int e = errno;
    throw usage_error("cannot read the --cacert file '" + s.cacert + "': " + std::strerror(e));
  }
  return s;
}

// ---------------------------------------------------------------- file names

/// The last segment of the URL's path, percent-decoded and made safe as a
/// file name: no '/', no NUL or control characters, not "." or "..".
std::string file_name_of(const http::url& u) {
  const std::string& path = u.path();
  std::string name = http::percent_decode(path.substr(path.rfind('/') + 1));
  for (char& c : name) {
    const auto b = static_cast<unsigned char>(c);
    if (c == '/' || b < 0x20 || b == 0x7f) c = '_';
  }
  if (name.size() > 200) name.resize(200);  // room for ".part" and ".N" within NAME_MAX
  if (name.empty() || name == "." || name == "..") name = "index.html";
  return name;
}

/// One job per URL, in order, each with a path of its own under `out`.
std::vector<job> plan(const settings& s) {
  std::vector<job> jobs;
  std::set<std::string> taken;
  for (const std::string& text : s.urls) {
    job j{.url = text, .path = {}, .bad_url = {}};
    std::string name;
    try {
      const http::url u = http::url::parse(text);
      if (u.scheme() != "http" && u.scheme() != "https") throw http::url_error(text, "not http or https");
      name = file_name_of(u);
    } catch (const http::url_error& e) {
      j.bad_url = e.what();
      jobs.push_back(std::move(j));
      continue;
    }
    std::string unique = name;
    for (int n = 1; taken.contains(unique); ++n) unique = name + "." + std::to_string(n);
    taken.insert(unique);
    j.path = (std::filesystem::path(s.out) / unique).string();
    jobs.push_back(std::move(j));
  }
  return jobs;
}

// ---------------------------------------------------------------- output

std::string human_bytes(double n) {
  static constexpr const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (n >= 1024 && u < 4) {
    n /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", n, units[u]);
  return buf;
}

double seconds_since(clock_type::time_point start) {
  return std::chrono::duration<double>(clock_type::now() - start).count();
}

/// What the user sees: per-file lines or a redrawn progress line, and the summary.
class reporter {
 public:
  reporter(std::size_t total, bool quiet) : total_(total), quiet_(quiet), tty_(::isatty(2) == 1) {}

  [[nodiscard]] bool live() const noexcept { return tty_ && !quiet_; }

  void received(std::size_t n) noexcept { received_ += n; }
  void started() noexcept { ++active_; }
  void stopped() noexcept { --active_; }

  void succeeded(const job& j, std::uint64_t bytes, double seconds) {
    ++done_;
    saved_ += bytes;
    if (quiet_ || tty_) return;
    std::fprintf(stderr, "ok %s -> %s (%llu bytes, %.2f s)\n", j.url.c_str(), j.path.c_str(),
                 static_cast<unsigned long long>(bytes), seconds);
  }
  void failed(const job& j, const std::string& reason) {
    ++failed_;
    print_line("FAILED " + j.url + ": " + reason);
  }
  void retrying(const job& j, const std::string& reason, double delay, int attempt, int attempts) {
    if (quiet_) return;
    char buf[96];
    std::snprintf(buf, sizeof buf, " (attempt %d of %d failed; again in %.2f s)", attempt, attempts, delay);
    print_line("retry " + j.url + ": " + reason + buf);
  }

  /// The progress line, redrawn in place (only on a terminal).
  void redraw() {
    if (!live()) return;
    const double secs = seconds_since(start_);
    std::fprintf(stderr, "\r[%zu/%zu] %zu failed, %zu active, %s, %s/s\x1b[K", done_ + failed_, total_,
                 failed_, active_, human_bytes(static_cast<double>(received_)).c_str(),
                 human_bytes(secs > 0 ? static_cast<double>(received_) / secs : 0).c_str());
    std::fflush(stderr);
  }

  /// The summary line (also after an interruption); ends the progress line.
  void summary(bool interrupted) {
    if (live()) std::fputs("\r\x1b[K", stderr);
    if (quiet_) return;
    const double secs = seconds_since(start_);
    std::fprintf(stderr, "%s%zu downloaded, %zu failed, %llu bytes in %.2f s (%s/s)\n",
                 interrupted ? "interrupted: " : "", done_, failed_, static_cast<unsigned long long>(saved_),
                 secs, human_bytes(secs > 0 ? static_cast<double>(saved_) / secs : 0).c_str());
  }

  [[nodiscard]] std::size_t failures() const noexcept { return failed_; }

 private:
  void print_line(const std::string& line) {
    if (live()) std::fputs("\r\x1b[K", stderr);
    std::fprintf(stderr, "%s\n", line.c_str());
    if (live()) redraw();
  }

  std::size_t total_;
  bool quiet_;
  bool tty_;
  clock_type::time_point start_ = clock_type::now();
  std::size_t done_ = 0;
  std::size_t failed_ = 0;
  std::size_t active_ = 0;
  std::uint64_t received_ = 0;  // body bytes read, retries and failures included (the rate)
  std::uint64_t saved_ = 0;     // bytes of the files downloaded (the summary)
};

// ---------------------------------------------------------------- downloading

/// Whether another attempt may succeed after `e`.
bool retryable(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const http::status_error& s) {
    const int st = s.status();
    return st == 408 || st == 429 || st >= 500;
  } catch (const save_error&) {
    return false;
  } catch (const http::url_error&) {
    return false;
  } catch (const http::redirect_error&) {
    return false;
  } catch (const http::limit_error&) {
    return false;
  } catch (const http::connect_error&) {
    return true;
  } catch (const coring::timeout_error&) {
    return true;
  } catch (const http::protocol_error&) {
    return true;  // a body cut short, a connection reset mid-response
  } catch (const coring::error&) {
    return true;  // another failure of the connection
  } catch (...) {
    return false;
  }
}

std::string reason_of(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  } catch (...) {
    return "unknown failure";
  }
}

/// The wait, in seconds, a 429 or 503 asks for with Retry-After (RFC 9110
/// section 10.2.3), if it does: whole seconds ("120"), or an HTTP date, whose
/// wait is the time until then (0 once it has passed). Anything else is
/// ignored: the backoff alone applies.
std::optional<double> retry_after(const http::client_response& resp) {
  if (resp.status() != 429 && resp.status() != 503) return std::nullopt;
  const auto field = resp.headers().get("Retry-After");
  if (!field || field->empty()) return std::nullopt;
  if (std::all_of(field->begin(), field->end(), [](char c) { return c >= '0' && c <= '9'; })) {
    if (field->size() > 9) return std::nullopt;
    return std::stod(std::string(*field));
  }
  const auto when = http::parse_date(*field);
  if (!when) return std::nullopt;
  // In double seconds: a date far off (year 9999, year 0) must not overflow.
  using seconds = std::chrono::duration<double>;
  const seconds then(when->time_since_epoch());
  const seconds now(std::chrono::system_clock::now().time_since_epoch());
  return std::max(0.0, (then - now).count());
}

/// One attempt: GET the URL and stream its body into PATH.part, renamed to
/// PATH when complete. Gives the bytes written. On any failure, cancellation
/// included, PATH.part is removed. `asked_wait` gets a 429's or 503's Retry-After.
coring::task<std::uint64_t> fetch_once(http::client& session, const job& j, reporter& out,
                                       std::optional<double>& asked_wait) {
  http::client_response resp = co_await session.get(j.url);
  asked_wait = retry_after(resp);
  resp.raise_for_status();

  const std::string part = j.path + ".part";
  coring::file f;
  try {
    f = co_await coring::file::open(part, coring::open_mode::write);
  } catch (const coring::io_error& e) {
    throw save_error(e.what());
  } catch (...) {
    ::unlink(part.c_str());  // cancelled: the kernel may have made the file all the same
    throw;
  }
  std::uint64_t written = 0;
  try {
    http::body_stream body = resp.body();
    for (auto piece = co_await body.next(); !piece.empty(); piece = co_await body.next()) {
      try {
        co_await f.write_all(piece, written);
      } catch (const coring::io_error& e) {
        throw save_error(e.what());
      }
      written += piece.size();
      out.received(piece.size());
    }
    try {
      co_await f.close();
    } catch (const coring::io_error& e) {
      throw save_error(e.what());
    }
    if (std::rename(part.c_str(), j.path.c_str()) != 0) {
      const int e = errno;
      throw save_error("rename " + part + " to " + j.path + ": " + std::strerror(e));
    }
  } catch (...) {
    // No co_await in a handler: the file's destructor closes it with close(2).
    ::unlink(part.c_str());
    throw;
  }
  co_return written;
}

/// A job with its retries; its outcome goes to `out` (a cancellation goes up).
coring::task<> fetch(http::client& session, coring::semaphore& slots, const job& j, const settings& s,
                     reporter& out) {
  if (!j.bad_url.empty()) {
    out.failed(j, j.bad_url);
    co_return;
  }
  std::mt19937 random(std::random_device{}());
  const int attempts = s.retries + 1;
  for (int attempt = 1;; ++attempt) {
    std::exception_ptr failure;
    std::optional<double> asked_wait;
    const auto start = clock_type::now();
    {
      auto slot = co_await slots.acquire_guard();
      out.started();
      try {
        const std::uint64_t bytes = co_await fetch_once(session, j, out, asked_wait);
        out.stopped();
        out.succeeded(j, bytes, seconds_since(start));
        co_return;
      } catch (const coring::error&) {
        failure = std::current_exception();
      } catch (...) {
        out.stopped();
        throw;  // cancelled
      }
      out.stopped();
    }
    const std::string reason = reason_of(failure);
    if (attempt >= attempts || !retryable(failure)) {
      out.failed(j, reason + (attempt > 1 ? " (after " + std::to_string(attempt) + " attempts)" : ""));
      co_return;
    }
    // Exponential backoff with jitter: the k-th wait is in [d/2, d], d = delay * 2^(k-1), at most 60 s;
    // longer if the server asked for longer (Retry-After), up to the same 60 s.
    const double full = std::min(s.retry_delay * std::ldexp(1.0, attempt - 1), 60.0);
    double wait = full * std::uniform_real_distribution<double>(0.5, 1.0)(random);
    if (asked_wait) wait = std::max(wait, std::min(*asked_wait, 60.0));
    out.retrying(j, reason, wait, attempt, attempts);
    co_await coring::sleep_for(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(wait)));
  }
}

coring::task<> download_all(const settings& s, const std::vector<job>& jobs, reporter& out) {
  http::client_options o;
  o.limit = s.concurrency;
  o.limit_per_host = s.per_host;
  const auto limit =
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(s.timeout));
  o.timeout.total = std::chrono::nanoseconds::max();  // a big file may take as long as it keeps coming
  o.timeout.connect = limit;
  o.timeout.read = limit;
  o.user_agent = std::string("coring-get/") + CORING_GET_VERSION;
  o.tls.ca_file = s.cacert;
  o.tls.verify = !s.insecure;
  http::client session(std::move(o));
  coring::semaphore slots(s.concurrency);
  bool finished = false;
  co_await coring::task_group::run([&](coring::task_group& group) -> coring::task<> {
    // A lambda without captures: its arguments live in the coroutine's frame.
    group.spawn([](http::client& session, coring::semaphore& slots, const settings& s,
                   const std::vector<job>& jobs, reporter& out, bool& finished) -> coring::task<> {
      co_await coring::task_group::run([&](coring::task_group& downloads) -> coring::task<> {
        for (const job& j : jobs) downloads.spawn(fetch(session, slots, j, s, out));
        co_return;
      });
      finished = true;
    }(session, slots, s, jobs, out, finished));
    // The progress line, redrawn at most ten times a second.
    while (out.live() && !finished) {
      out.redraw();
      co_await coring::sleep_for(std::chrono::milliseconds(100));
    }
  });
  co_await session.close();
}

/// Returns once SIGTERM arrives. From its first await SIGTERM is blocked and
/// read through the ring, so it no longer ends the process at once.
coring::task<> sigterm() { co_await coring::signal(SIGTERM); }

/// download_all, unless SIGTERM comes first: then the downloads are cancelled
/// (each removes its .part) and awaited. True if SIGTERM stopped them.
coring::task<bool> download_all_until_sigterm(const settings& s, const std::vector<job>& jobs,
                                              reporter& out) {
  // SIGTERM's watch first, so that it is in place before any .part exists.
  const auto first = co_await coring::when_any(sigterm(), download_all(s, jobs, out));
  co_return first.index() == 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::optional<settings> parsed;
  try {
    parsed = parse_command_line(argc, argv);
  } catch (const usage_error& e) {
    std::fprintf(stderr, "coring-get: %s\nTry 'coring-get --help'.\n", e.what());
    return 2;
  }
  if (!parsed) return 0;
  const settings& s = *parsed;

  std::error_code ec;
  std::filesystem::create_directories(s.out, ec);
  if (ec || !std::filesystem::is_directory(s.out)) {
    std::fprintf(stderr, "coring-get: cannot make the directory '%s': %s\n", s.out.c_str(),
                 ec ? ec.message().c_str() : "a file of that name is in the way");
    return 1;
  }

  const std::vector<job> jobs = plan(s);
  reporter out(jobs.size(), s.quiet);
  try {
    if (coring::run(download_all_until_sigterm(s, jobs, out))) {
      out.summary(true);
      return 128 + SIGTERM;
    }
  } catch (const coring::interrupted&) {
    out.summary(true);
    return 130;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "coring-get: %s\n", e.what());
    return 1;
  }
  out.summary(false);
  return out.failures() == 0 ? 0 : 1;
}
