#include <coring/detail/deadline.hpp>

#include <coring/detail/loop_access.hpp>
#include <coring/event_loop.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

namespace coring::detail {

namespace {
std::int64_t steady_now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

// Open scopes of this thread by body node: a chained hash table whose links
// live in the scopes themselves, so opening a scope allocates nothing (the
// 64 inline buckets serve until many scopes are open at once; then the
// table grows once to a heap array, and stays grown).
class scope_table {
 public:
  static scope_table& get() noexcept {
    thread_local scope_table table;
    return table;
  }

  void insert(deadline_scope& s) noexcept {
    if (count_ + 1 > 2 * (mask_ + 1)) grow();
    deadline_scope*& head = buckets_[index(s.body_)];
    s.next_in_bucket_ = head;
    head = &s;
    ++count_;
  }

  void erase(deadline_scope& s) noexcept {
    for (deadline_scope** p = &buckets_[index(s.body_)]; *p; p = &(*p)->next_in_bucket_) {
      if (*p == &s) {
        *p = s.next_in_bucket_;
        s.next_in_bucket_ = nullptr;
        --count_;
        return;
      }
    }
  }

  deadline_scope* find(const task_node* body) const noexcept {
    for (deadline_scope* s = buckets_[index(body)]; s; s = s->next_in_bucket_) {
      if (s->body_ == body) return s;
    }
    return nullptr;
  }

 private:
  static constexpr std::size_t inline_buckets = 64;

  std::size_t index(const task_node* n) const noexcept {
    // Nodes sit at least 8 bytes apart; a multiplicative hash spreads them.
    const auto key = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(n) >> 3);
    return static_cast<std::size_t>((key * 0x9E3779B97F4A7C15ull) >> 32) & mask_;
  }

  void grow() noexcept {
    const std::size_t size = 2 * (mask_ + 1);
    std::unique_ptr<deadline_scope*[]> bigger;
    try {
      bigger.reset(new deadline_scope*[size]());
    } catch (...) {
      return;  // out of memory: longer chains, still correct
    }
    deadline_scope** old = buckets_;
    const std::size_t old_size = mask_ + 1;
    buckets_ = bigger.get();
    mask_ = size - 1;
    for (std::size_t i = 0; i < old_size; ++i) {
      for (deadline_scope* s = old[i]; s;) {
        deadline_scope* next = s->next_in_bucket_;
        deadline_scope*& head = buckets_[index(s->body_)];
        s->next_in_bucket_ = head;
        head = s;
        s = next;
      }
    }
    heap_ = std::move(bigger);  // frees the previous heap array, if any
  }

  deadline_scope* inline_[inline_buckets] = {};  // the buckets until the table grows
  std::unique_ptr<deadline_scope*[]> heap_;      // the buckets after it grew
  deadline_scope** buckets_ = inline_;           // inline_ or heap_
  std::size_t mask_ = inline_buckets - 1;        // bucket count - 1
  std::size_t count_ = 0;                        // scopes in the table
};

deadline_scope::deadline_scope(std::int64_t deadline_ns, deadline_scope* parent) noexcept
    : timer_node{}, parent_(parent), loop_(event_loop::current()), deadline_ns_(deadline_ns) {
  fire = &on_fire;
  if (deadline_ns_ != no_deadline) {
    timer_node::deadline_ns = deadline_ns_;
    ts_.tv_sec = deadline_ns_ / 1'000'000'000;
    ts_.tv_nsec = deadline_ns_ % 1'000'000'000;
  }
}

void deadline_scope::open(task_node& body) noexcept {
  body_ = &body;
  scope_table::get().insert(*this);
  ++open_deadline_scopes;
  if (deadline_ns_ != no_deadline && !expired_) {
    try {
      loop_access::add_timer(*loop_, *this);
    } catch (...) {
      // No room in the timer heap: the deadline cannot be kept; say so by
      // expiring now rather than never (the body sees a cancellation).
      expire();
    }
  }
}

void deadline_scope::close() noexcept {
  if (!body_) return;
  if (heap_index != not_queued) loop_access::remove_timer(*loop_, *this);
  scope_table::get().erase(*this);
  --open_deadline_scopes;
  body_ = nullptr;
}

bool deadline_scope::reschedule(std::int64_t deadline_ns) noexcept {
  if (expired_) return false;
  rescheduled_ = rescheduled_ || deadline_ns != deadline_ns_;
  if (heap_index != not_queued) loop_access::remove_timer(*loop_, *this);
  deadline_ns_ = deadline_ns;
  if (deadline_ns_ == no_deadline) {
    ts_ = {};
    return true;
  }
  timer_node::deadline_ns = deadline_ns_;
  fired = false;
  // Operations already in the ring read this when they are submitted, or
  // kept the old value: one cancelled early submits itself again (see
  // scope_deadline_passed).
  ts_.tv_sec = deadline_ns_ / 1'000'000'000;
  ts_.tv_nsec = deadline_ns_ % 1'000'000'000;
  if (body_) {
    try {
      loop_access::add_timer(*loop_, *this);
    } catch (...) {
      expire();
    }
  }
  return true;
}

void deadline_scope::expire() noexcept {
  if (expired_) return;
  expired_ = true;
  if (heap_index != not_queued) loop_access::remove_timer(*loop_, *this);
  if (body_) request_cancel(*body_);
}

void deadline_scope::on_fire(timer_node* t) noexcept { static_cast<deadline_scope*>(t)->expire(); }

deadline_scope* deadline_scope::earliest() noexcept {
  deadline_scope* best = nullptr;
  for (deadline_scope* s = this; s; s = s->parent_) {
    if (s->expired_ || s->deadline_ns_ == no_deadline) continue;
    if (!best || s->deadline_ns_ < best->deadline_ns_) best = s;
  }
  return best;
}

deadline_scope* scope_of(const task_node* n) noexcept {
  if (open_deadline_scopes == 0 || !n) return nullptr;
  return scope_table::get().find(n);
}

const kernel_timespec* scope_deadline_for(const task_node* n, std::int64_t own_ns) noexcept {
  deadline_scope* s = scope_of(n);
  if (!s) return nullptr;
  deadline_scope* e = s->earliest();
  if (!e) return nullptr;
  if (own_ns != no_deadline && e->deadline_ns() - steady_now_ns() >= own_ns) return nullptr;
  return &e->timespec();
}

bool scope_deadline_passed(const task_node* n) noexcept {
  deadline_scope* s = scope_of(n);
  if (!s) return false;
  const std::int64_t now = steady_now_ns();
  deadline_scope* due = nullptr;
  for (deadline_scope* c = s; c; c = c->parent()) {
    if (c->expired() || c->deadline_ns() == no_deadline || c->deadline_ns() > now) continue;
    if (!due || c->deadline_ns() < due->deadline_ns()) due = c;
  }
  if (!due) return false;
  due->expire();
  return true;
}

}  // namespace coring::detail

namespace coring::detail {

std::string describe_deadline(const char* what, std::int64_t timeout_ns, bool rescheduled) {
  std::string message(what);
  if (timeout_ns < 0 || rescheduled) return message + " did not finish before its deadline";
  return message + " did not finish within " + std::to_string(timeout_ns / 1'000'000) + " ms";
}

}  // namespace coring::detail
