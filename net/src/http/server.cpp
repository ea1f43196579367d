#include <liburing.h>
#include <pthread.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <coring/detail/loop_access.hpp>
#include <coring/http/server.hpp>
#include <coring/loop_thread.hpp>
#include <coring/sleep.hpp>
#include <coring/task_group.hpp>
#include <coring/wait_for.hpp>
#include <cstdio>
#include <thread>
#include <vector>

#include "connection.hpp"
#include "server_state.hpp"

namespace coring::http {

server_stats& server_stats::operator+=(const server_stats& o) noexcept {
  connections += o.connections;
  open_connections += o.open_connections;
  requests += o.requests;
  bytes_received += o.bytes_received;
  bytes_sent += o.bytes_sent;
  responses_2xx += o.responses_2xx;
  responses_3xx += o.responses_3xx;
  responses_4xx += o.responses_4xx;
  responses_5xx += o.responses_5xx;
  malformed += o.malformed;
  head_too_large += o.head_too_large;
  body_too_large += o.body_too_large;
  header_timeouts += o.header_timeouts;
  body_timeouts += o.body_timeouts;
  idle_timeouts += o.idle_timeouts;
  write_timeouts += o.write_timeouts;
  handler_errors += o.handler_errors;
  client_errors += o.client_errors;
  return *this;
}

namespace detail {

// ---------------------------------------------------------------- per-thread caches

std::int64_t coarse_now_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

std::string_view date_field() noexcept {
  // One per thread: every loop formats its own (nothing shared between loops).
  thread_local struct {
    std::int64_t second = -1;
    char text[6 + date_length + 2] = {'D', 'a', 't', 'e', ':', ' '};
  } cache;
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  if (ts.tv_sec != cache.second) {
    cache.second = ts.tv_sec;
    format_date(std::chrono::system_clock::time_point(std::chrono::seconds(ts.tv_sec)), cache.text + 6);
    cache.text[6 + date_length] = '\r';
    cache.text[6 + date_length + 1] = '\n';
  }
  return {cache.text, sizeof cache.text};
}

namespace {
constexpr std::size_t max_cached_buffers = 256;
constexpr std::size_t max_cached_capacity = 64 * 1024;
constexpr std::size_t buffer_reserve = 2048;
std::vector<std::string>& buffer_cache() noexcept {
  thread_local std::vector<std::string> cache;
  return cache;
}
}  // namespace

std::string take_buffer() noexcept {
  std::vector<std::string>& cache = buffer_cache();
  if (!cache.empty()) {
    std::string s = std::move(cache.back());
    cache.pop_back();
    return s;
  }
  std::string s;
  try {
    s.reserve(buffer_reserve);
  } catch (...) {
  }
  return s;
}

void give_back_buffer(std::string& s) noexcept {
  if (!holds_buffer(s)) return;  // nothing on the heap
  std::vector<std::string>& cache = buffer_cache();
  if (s.capacity() <= max_cached_capacity && cache.size() < max_cached_buffers) {
    try {
      s.clear();
      cache.push_back(std::move(s));
    } catch (...) {
    }
  }
  std::string().swap(s);
}

namespace {
constexpr std::size_t max_cached_parsers = 256;
struct cached_parser {
  parser_limits limits;
  std::unique_ptr<message_parser> parser;
};
std::vector<cached_parser>& parser_cache() noexcept {
  thread_local std::vector<cached_parser> cache;
  return cache;
}
bool same(const parser_limits& a, const parser_limits& b) noexcept {
  return a.max_head_bytes == b.max_head_bytes && a.max_headers == b.max_headers;
}
}  // namespace

std::unique_ptr<message_parser> take_parser(parser_limits limits) {
  std::vector<cached_parser>& cache = parser_cache();
  for (std::size_t i = cache.size(); i-- > 0;) {
    if (!same(cache[i].limits, limits)) continue;
    std::unique_ptr<message_parser> p = std::move(cache[i].parser);
    cache[i] = std::move(cache.back());
    cache.pop_back();
    return p;
  }
  return std::make_unique<message_parser>(message_parser::kind::request, limits);
}

void give_back_parser(std::unique_ptr<message_parser>& p, parser_limits limits) noexcept {
  // Only a parser between two messages of a connection that goes on is
  // reusable: one that failed or saw "Connection: close" ends with its connection.
  std::vector<cached_parser>& cache = parser_cache();
  if (!p->in_message() && cache.size() < max_cached_parsers) {
    try {
      cache.push_back({limits, std::move(p)});
    } catch (...) {
    }
  }
  p.reset();
}

// ---------------------------------------------------------------- server_state

server_state::server_state(const router& a, server_options o) : app(&a), options(std::move(o)) {
  // The sweeper runs often enough that a deadline is enforced within an
  // eighth of the shortest timeout (and at most a second late).
  auto shortest = std::min({options.header_timeout, options.body_timeout, options.idle_timeout,
                            options.write_timeout, options.linger_timeout});
  tick = std::clamp<std::chrono::nanoseconds>(shortest / 8, std::chrono::milliseconds(5),
                                              std::chrono::seconds(1));
  ok_head = "HTTP/1.1 200 OK\r\n";
  if (!options.server_name.empty()) ok_head += "Server: " + options.server_name + "\r\n";
}

void server_state::link(connection_link& c) noexcept {
  c.prev = nullptr;
  c.next = connections;
  if (connections) connections->prev = &c;
  connections = &c;
}

void server_state::unlink(connection_link& c) noexcept {
  (c.prev ? c.prev->next : connections) = c.next;
  if (c.next) c.next->prev = c.prev;
  c.prev = c.next = nullptr;
}

void server_state::sweep() noexcept {
  const std::int64_t now = coarse_now_ns();
  for (connection_link* c = connections; c; c = c->next) {
    if (c->current == phase::none || c->expired != phase::none || now < c->deadline_ns) continue;
    c->expired = c->current;
    // Wakes the read (end of stream) or the write (EPIPE) in flight; the
    // connection sees `expired` and answers as its phase requires. A
    // response can still be written after SHUT_RD.
    ::shutdown(c->fd, c->current == phase::writing ? SHUT_RDWR : SHUT_RD);
  }
}

void server_state::close_idle() noexcept {
  for (connection_link* c = connections; c; c = c->next) {
    if (c->current == phase::idle) ::shutdown(c->fd, SHUT_RD);
  }
}

// ---------------------------------------------------------------- ring operations for files

open_file_operation::open_file_operation(int dir, const std::string& path, bool beneath) noexcept
    : socket_operation(&prep, std::chrono::nanoseconds::max()), dir_(dir), path_(path.c_str()) {
  how_.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY;
  how_.resolve = beneath ? (RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS) : 0;
}

void open_file_operation::prep(io_uring_sqe* sqe, net::detail::socket_operation& op) noexcept {
  auto& self = static_cast<open_file_operation&>(op);
  io_uring_prep_openat2(sqe, self.dir_, self.path_, &self.how_);
}

stat_file_operation::stat_file_operation(int fd) noexcept
    : socket_operation(&prep, std::chrono::nanoseconds::max()), fd_(fd) {}

void stat_file_operation::prep(io_uring_sqe* sqe, net::detail::socket_operation& op) noexcept {
  auto& self = static_cast<stat_file_operation&>(op);
  io_uring_prep_statx(sqe, self.fd_, "", AT_EMPTY_PATH, STATX_TYPE | STATX_SIZE | STATX_MTIME, &self.stx_);
}

// ---------------------------------------------------------------- helpers of the connection

namespace {
std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}
bool read_number(std::string_view s, std::uint64_t& v) noexcept {
  if (s.empty() || s.size() > 19) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && p == s.data() + s.size();
}
}  // namespace

std::optional<byte_range> parse_range(std::string_view field, std::uint64_t size) noexcept {
  field = trim(field);
  if (field.size() < 6 || !iequals(field.substr(0, 6), "bytes=")) return std::nullopt;
  std::string_view spec = trim(field.substr(6));
  if (spec.find(',') != std::string_view::npos) return std::nullopt;  // several ranges: the whole file
  const std::size_t dash = spec.find('-');
  if (dash == std::string_view::npos) return std::nullopt;
  const std::string_view a = trim(spec.substr(0, dash)), b = trim(spec.substr(dash + 1));
  const byte_range unsatisfiable{size, 0};
  if (a.empty()) {  // the last n bytes
    std::uint64_t n = 0;
    if (!read_number(b, n)) return std::nullopt;
    if (n == 0 || size == 0) return unsatisfiable;
    const std::uint64_t first = n >= size ? 0 : size - n;
    return byte_range{first, size - first};
  }
  std::uint64_t first = 0;
  if (!read_number(a, first)) return std::nullopt;
  std::uint64_t last = size == 0 ? 0 : size - 1;
  if (!b.empty()) {
    std::uint64_t l = 0;
    if (!read_number(b, l) || l < first) return std::nullopt;
    last = std::min(last, l);
  }
  if (first >= size) return unsatisfiable;
  return byte_range{first, last - first + 1};
}

bool etag_matches(std::string_view list, std::string_view etag) noexcept {
  list = trim(list);
  if (list == "*") return true;
  auto weak = [](std::string_view t) {
    if (t.starts_with("W/")) t.remove_prefix(2);
    return t;
  };
  etag = weak(etag);
  while (!list.empty()) {
    const std::size_t comma = list.find(',');
    if (weak(trim(list.substr(0, comma))) == etag) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

void log_access(const server_state& st, const request& req, int status, std::uint64_t bytes,
                std::chrono::steady_clock::duration took) {
  char tail[96];
  const double ms = std::chrono::duration<double, std::milli>(took).count();
  std::snprintf(tail, sizeof tail, "\" %d %llu %.3fms", status, static_cast<unsigned long long>(bytes), ms);
  std::string line;
  line.reserve(128);
  line += req.peer() ? req.peer()->to_string() : std::string("-");
  line += " \"";
  line += req.method();
  line += ' ';
  // Control characters cannot reach here (llhttp refuses them in a target).
  line += req.target();
  line += req.version_minor() == 0 ? " HTTP/1.0" : " HTTP/1.1";
  line += tail;
  if (st.options.log) {
    st.options.log(line);
  } else {
    line += '\n';
    std::fwrite(line.data(), 1, line.size(), stderr);
  }
}

void report_handler_failure(std::exception_ptr e) noexcept {
  if (event_loop* loop = event_loop::current()) coring::detail::loop_access::report(*loop, e, "http handler");
}

namespace {
task<> sweeper(server_state& st) {
  for (;;) {
    co_await sleep_for(st.tick);
    st.sweep();
  }
}

task<> wait_drained(server_state& st) { co_await st.drained.wait(); }
}  // namespace

}  // namespace detail

// ---------------------------------------------------------------- server

server::server(const router& app, server_options o)
    : state_(std::make_unique<detail::server_state>(app, std::move(o))) {}

server::~server() = default;

task<> server::serve(std::string address, std::uint16_t port) {
  std::optional<net::address> where = net::address::ip(address, port);
  if (!where) throw io_error(EINVAL, "http::server: '" + address + "' is not an IP address to listen on");
  co_await serve(net::tcp_listener::bind(*where, state_->options.listen));
}

task<> server::serve(net::tcp_listener listener) {
  detail::server_state& st = *state_;
  CORING_ASSERT(!st.serving, "http::server::serve while it serves already");
  if (st.stopping) co_return;
  st.serving = true;
  st.listener = &listener;
  st.port = listener.local_address().port();
  struct reset {
    detail::server_state& st;
    ~reset() {
      st.serving = false;
      st.listener = nullptr;
      st.port = 0;
    }
  } on_exit{st};
  co_await task_group::run([&](task_group& g) -> task<> {
    g.spawn(detail::sweeper(st));
    for (;;) {
      net::tcp_stream conn;
      bool closed = false;
      try {
        conn = co_await listener.accept();
      } catch (const io_error&) {
        if (!st.stopping) throw;
        closed = true;
      }
      if (closed) break;
      g.spawn(detail::serve_connection(st, std::move(conn)));
    }
    // stop(): the connections finish what they are doing, for at most the grace period.
    if (st.stats.open_connections > 0) {
      try {
        co_await wait_for(detail::wait_drained(st), st.stop_with.grace);
      } catch (const timeout_error&) {
      }
    }
    g.cancel();
  });
}

void server::stop(stop_options o) {
  detail::server_state& st = *state_;
  st.stop_with = o;
  if (st.stopping) return;
  st.stopping = true;
  if (st.listener) st.listener->close();
  st.close_idle();
  if (st.stats.open_connections == 0) st.drained.set();
}

std::uint16_t server::port() const noexcept { return state_->port; }

server_stats server::stats() const noexcept { return state_->stats; }

// ---------------------------------------------------------------- serve: one loop per thread

server_stats serve(const router& app, std::uint16_t port, const serve_options& o) {
  const unsigned threads = o.threads ? o.threads : std::max(1u, std::thread::hardware_concurrency());
  std::optional<net::address> where = net::address::ip(o.address, port);
  if (!where) throw io_error(EINVAL, "http::serve: '" + o.address + "' is not an IP address to listen on");

  // The signals are read from a signalfd by this thread; blocked here, they
  // stay blocked in the loop threads started below (they inherit the mask).
  sigset_t stop_signals, previous;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  ::pthread_sigmask(SIG_BLOCK, &stop_signals, &previous);
  const int sfd = ::signalfd(-1, &stop_signals, SFD_CLOEXEC);
  struct restore {
    int fd;
    sigset_t mask;
    ~restore() {
      if (fd >= 0) ::close(fd);
      ::pthread_sigmask(SIG_SETMASK, &mask, nullptr);
    }
  } restore_on_exit{sfd, previous};
  if (sfd < 0) throw io_error(errno, "http::serve: signalfd");

  // Every listener is bound here, so that port 0 picks one port for all.
  net::listen_options lo = o.server.listen;
  lo.reuse_port = true;
  std::vector<net::tcp_listener> listeners;
  listeners.push_back(net::tcp_listener::bind(*where, lo));
  const std::uint16_t bound = listeners.front().local_address().port();
  for (unsigned i = 1; i < threads; ++i)
    listeners.push_back(net::tcp_listener::bind(where->with_port(bound), lo));

  std::vector<std::unique_ptr<server>> servers;
  for (unsigned i = 0; i < threads; ++i) servers.push_back(std::make_unique<server>(app, o.server));
  server_stats total;
  {
    std::vector<std::unique_ptr<loop_thread>> loops;
    std::vector<future<void>> done;
    for (unsigned i = 0; i < threads; ++i) {
      loops.push_back(std::make_unique<loop_thread>());
      done.push_back(loops[i]->submit(servers[i]->serve(std::move(listeners[i]))));
    }
    if (o.on_listening) o.on_listening(bound);
    signalfd_siginfo info{};
    while (::read(sfd, &info, sizeof info) < 0 && errno == EINTR) {
    }
    for (unsigned i = 0; i < threads; ++i) {
      server* s = servers[i].get();
      loops[i]->post([s, grace = o.grace] { s->stop({.grace = grace}); });
    }
    std::exception_ptr first;
    for (unsigned i = 0; i < threads; ++i) {
      try {
        done[i].get();
      } catch (...) {
        if (!first) first = std::current_exception();
      }
      // serve() has ended on that loop (the future's end orders it before us).
      total += servers[i]->stats();
    }
    if (first) std::rethrow_exception(first);
  }
  return total;
}

}  // namespace coring::http
