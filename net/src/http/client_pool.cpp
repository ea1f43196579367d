#include "http/client_pool.hpp"

#include <coring/detail/loop_access.hpp>
#include <coring/event_loop.hpp>

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <charconv>

namespace coring::http::detail {

// ---------------------------------------------------------------- connection

connection::connection(host_pool& h, net::tcp_stream s, parser_limits limits)
    : parser(message_parser::kind::response, limits),
      host(&h),
      tcp_(std::move(s)),
      buf_(new std::byte[buffer_size]) {}

connection::connection(host_pool& h, std::unique_ptr<transport> t, parser_limits limits)
    : parser(message_parser::kind::response, limits),
      host(&h),
      other_(std::move(t)),
      buf_(new std::byte[buffer_size]) {}

bool connection::looks_closed() const noexcept {
  const int fd = tcp_ ? tcp_->native_handle() : (other_ ? other_->native_handle() : -1);
  if (fd < 0) return false;
  char b;
  const ssize_t n = ::recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0) return true;                                   // the peer closed
  if (n < 0) return errno != EAGAIN && errno != EWOULDBLOCK;  // reset, or worse
  // Bytes nobody asked for: a plain HTTP server sends none between
  // responses (a 408 before closing, say); under TLS they may be a ticket.
  return !(other_ && other_->may_have_unread_records());
}

// ---------------------------------------------------------------- slot

slot& slot::operator=(slot&& o) noexcept {
  if (this != &o) {
    reset();
    pool_ = std::exchange(o.pool_, nullptr);
    host_ = o.host_;
    conn = std::move(o.conn);
  }
  return *this;
}

void slot::release(bool reusable) noexcept {
  pool* p = std::exchange(pool_, nullptr);
  if (!p) return;
  if (conn) {
    p->release(std::move(conn), reusable);
  } else {
    p->give_back(*host_);
  }
}

// ---------------------------------------------------------------- waiting

void slot_waiter::park_here(std::coroutine_handle<> handle) {
  seq_ = pool_.next_seq_++;
  park(host_.waiters, handle);
  if (!host_.listed) {
    host_.listed = true;
    pool_.waiting_hosts_.push_back(&host_);
  }
}

// ---------------------------------------------------------------- pool

pool::pool(const client_options& o)
    : limit_(o.limit), limit_per_host_(o.limit_per_host), keepalive_(o.keepalive_timeout) {
  timer_.owner = this;
  timer_.fire = &on_timer;
}

pool::~pool() {
  if (loop_ && timer_.heap_index != coring::detail::timer_node::not_queued) {
    coring::detail::loop_access::remove_timer(*loop_, timer_);
  }
  close_idle();
}

host_pool& pool::host_for(const url& u) {
  key_scratch_.clear();
  key_scratch_ += u.scheme();
  key_scratch_ += "://";
  key_scratch_ += u.host();
  key_scratch_ += ':';
  char digits[8];
  auto [end, ec] = std::to_chars(digits, digits + sizeof digits, u.port());
  key_scratch_.append(digits, end);
  auto it = hosts_.find(key_scratch_);
  if (it != hosts_.end()) return *it->second;
  auto h = std::make_unique<host_pool>();
  h->key = key_scratch_;
  h->scheme = u.scheme();
  h->host = u.host();
  h->port = u.port();
  host_pool& ref = *h;
  hosts_.emplace(key_scratch_, std::move(h));
  return ref;
}

std::size_t pool::waiting() const noexcept {
  std::size_t n = 0;
  for (const host_pool* h : waiting_hosts_) n += h->waiters.size();
  return n;
}

std::unique_ptr<connection> pool::pop_idle(host_pool& h, steady::time_point now) noexcept {
  while (!h.idle.empty()) {
    std::unique_ptr<connection> c = std::move(h.idle.back());
    h.idle.pop_back();
    --idle_;
    if (c->expires > now) return c;
    unreserve(h);  // expired: closed as it goes
  }
  return nullptr;
}

bool pool::evict_idle(host_pool* only) noexcept {
  host_pool* victim_host = nullptr;
  std::size_t victim = 0;
  steady::time_point oldest = steady::time_point::max();
  auto consider = [&](host_pool& h) {
    // Each origin's idle list is in release order: its front is its oldest.
    if (!h.idle.empty() && h.idle.front()->expires < oldest) {
      oldest = h.idle.front()->expires;
      victim_host = &h;
      victim = 0;
    }
  };
  if (only) {
    consider(*only);
  } else {
    for (auto& [key, h] : hosts_) consider(*h);
  }
  if (!victim_host) return false;
  victim_host->idle.erase(victim_host->idle.begin() + static_cast<std::ptrdiff_t>(victim));
  --idle_;
  unreserve(*victim_host);
  return true;
}

bool pool::try_acquire(host_pool& h, bool fresh, slot& out) {
  if (!loop_) loop_ = event_loop::current();
  if (!h.waiters.empty()) return false;  // first come, first served
  if (!fresh) {
    const std::size_t before = open_;
    std::unique_ptr<connection> c = pop_idle(h, steady::now());
    if (open_ != before) dispatch();  // expired ones made room that others may wait for
    if (c) {
      out = slot(*this, h, std::move(c));
      return true;
    }
  }
  if (!servable(h, fresh)) return false;
  out = serve(h, fresh);
  return true;
}

bool pool::servable(const host_pool& h, bool fresh) const noexcept {
  if (!fresh && !h.idle.empty()) return true;
  if (per_host_ok(h)) return total_ok() || idle_ > 0;  // a new one, closing an idle one if need be
  return !h.idle.empty();                                // (fresh) close one of ours to open anew
}

slot pool::serve(host_pool& h, bool fresh) noexcept {
  if (!fresh) {
    if (auto c = pop_idle(h, steady::now())) return slot(*this, h, std::move(c));
  }
  if (!per_host_ok(h)) {
    evict_idle(&h);
  } else if (!total_ok()) {
    evict_idle(nullptr);
  }
  reserve(h);
  return slot(*this, h, nullptr);
}

void pool::dispatch() noexcept {
  for (;;) {
    host_pool* best = nullptr;
    std::uint64_t best_seq = ~std::uint64_t{0};
    for (std::size_t i = 0; i < waiting_hosts_.size();) {
      host_pool* h = waiting_hosts_[i];
      if (h->waiters.empty()) {  // its waiters were served or cancelled
        h->listed = false;
        waiting_hosts_[i] = waiting_hosts_.back();
        waiting_hosts_.pop_back();
        continue;
      }
      auto& front = static_cast<slot_waiter&>(h->waiters.front());
      if (front.seq_ < best_seq && servable(*h, front.fresh_)) {
        best = h;
        best_seq = front.seq_;
      }
      ++i;
    }
    if (!best) return;
    auto& w = static_cast<slot_waiter&>(best->waiters.front());
    w.granted_ = serve(*best, w.fresh_);
    best->waiters.wake_front(coring::detail::sync_waiter::outcome::granted);
  }
}

void pool::release(std::unique_ptr<connection> c, bool reusable) noexcept {
  host_pool& h = *c->host;
  if (!reusable || keepalive_ <= std::chrono::nanoseconds::zero()) {
    c.reset();  // closes it
    unreserve(h);
    dispatch();
    return;
  }
  const steady::time_point now = steady::now();
  const std::chrono::nanoseconds life = std::min(keepalive_, c->keep_alive_limit);
  c->expires = life >= std::chrono::hours(24 * 365) ? steady::time_point::max() : now + life;
  // Straight to the longest waiter of this origin, if it takes an idle one.
  if (!h.waiters.empty()) {
    auto& w = static_cast<slot_waiter&>(h.waiters.front());
    if (!w.fresh_) {
      w.granted_ = slot(*this, h, std::move(c));
      h.waiters.wake_front(coring::detail::sync_waiter::outcome::granted);
      return;
    }
  }
  const steady::time_point expires = c->expires;
  h.idle.push_back(std::move(c));
  ++idle_;
  arm_timer(expires);
  dispatch();  // a waiter of another origin may take its place
}

void pool::give_back(host_pool& h) noexcept {
  unreserve(h);
  dispatch();
}

void pool::close_idle() noexcept {
  for (auto& [key, h] : hosts_) {
    for (auto& c : h->idle) {
      c.reset();
      unreserve(*h);
      --idle_;
    }
    h->idle.clear();
  }
  dispatch();
}

void pool::arm_timer(steady::time_point when) noexcept {
  if (!loop_ || when == steady::time_point::max()) return;
  const std::int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(when.time_since_epoch()).count();
  if (timer_.heap_index != coring::detail::timer_node::not_queued) {
    if (timer_.deadline_ns <= ns) return;  // an earlier expiry is armed: it re-arms for the rest
    coring::detail::loop_access::remove_timer(*loop_, timer_);
  }
  timer_.deadline_ns = ns;
  timer_.fired = false;
  try {
    coring::detail::loop_access::add_timer(*loop_, timer_);
  } catch (...) {
    // No memory for the heap: idle connections then expire when next looked
    // at (pop_idle checks each one) instead of on time.
  }
}

void pool::on_timer(coring::detail::timer_node* t) noexcept { static_cast<idle_timer*>(t)->owner->expire_idle(); }

void pool::expire_idle() noexcept {
  const steady::time_point now = steady::now();
  steady::time_point next = steady::time_point::max();
  for (auto& [key, h] : hosts_) {
    auto& idle = h->idle;
    std::size_t kept = 0;
    for (std::size_t i = 0; i < idle.size(); ++i) {
      if (idle[i]->expires <= now) {
        idle[i].reset();
        unreserve(*h);
        --idle_;
      } else {
        next = std::min(next, idle[i]->expires);
        idle[kept++] = std::move(idle[i]);
      }
    }
    idle.resize(kept);
  }
  arm_timer(next);
  dispatch();
}

}  // namespace coring::http::detail
