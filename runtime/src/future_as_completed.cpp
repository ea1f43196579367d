#include <coring/future_as_completed.hpp>

#include <coring/detail/loop_access.hpp>

#include <cerrno>
#include <cstdint>
#include <ctime>

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

namespace coring {

// What the stream and its watchers share. Touched only by the stream's user
// (its thread, or its loop's thread) — watchers run there — except that a
// watcher delivered after the stream is gone (alive == false) only frees itself.
struct future_completions::core {
  std::vector<std::size_t> done;           // indices delivered, in completion order
  std::size_t head = 0;                    // next index of `done` to hand out
  std::vector<watcher*> watching;          // per future: its watcher until delivered, else null
  std::size_t remaining = 0;               // watchers not yet delivered
  std::shared_ptr<detail::inbox> box;      // blocking mode: our own inbox (with its eventfd)
  next_operation* waiter_op = nullptr;     // awaiting mode: the suspended next(), if any
  bool alive = true;                       // false once the stream is destroyed
};

// Registered as a future's waiter; the future's finish() pushes it into `box`.
struct future_completions::watcher : detail::future_state_base::waiter {
  std::shared_ptr<core> c;  // keeps the shared part alive while in flight
  std::size_t index = 0;    // which future

  static void on_run(detail::inbox_item* item, bool alive) noexcept {
    auto* self = static_cast<watcher*>(item);
    core& c = *self->c;
    if (alive && c.alive) {
      c.watching[self->index] = nullptr;
      --c.remaining;
      c.done.push_back(self->index);  // capacity reserved for every index: no allocation
      if (next_operation* op = std::exchange(c.waiter_op, nullptr)) op->suspend(nullptr);
    }
    delete self;
  }
};

future_completions::future_completions(std::vector<detail::future_state_base*> states)
    : states_(std::move(states)) {
  for (auto* s : states_) s->add_ref();
}

future_completions::~future_completions() {
  if (core_) {
    core& c = *core_;
    c.alive = false;
    c.waiter_op = nullptr;
    for (std::size_t i = 0; i < states_.size(); ++i) {
      // A watcher we take back is ours to free; one whose delivery has begun
      // frees itself when its inbox runs or drops it.
      if (watcher* w = c.watching[i]; w && states_[i]->detach(w)) delete w;
    }
    // Our own inbox: run what arrived (the watchers free themselves) and make
    // later pushes fail, so that their producers dispose of them.
    if (c.box) c.box->close();
  }
  for (auto* s : states_) s->release();
}

void future_completions::arm(mode m) {
  if (mode_ != mode::unset) {
    CORING_ASSERT(mode_ == m, "a future_completions stream used both blocking and awaiting");
    return;
  }
  mode_ = m;
  auto c = std::make_shared<core>();
  c->done.reserve(states_.size());
  c->watching.assign(states_.size(), nullptr);
  std::shared_ptr<detail::inbox> target;
  if (m == mode::blocking) {
    int efd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (efd < 0) throw io_error(errno, "as_completed: creating an eventfd");
    c->box = std::make_shared<detail::inbox>(efd);
    target = c->box;
  } else {
    event_loop* loop = event_loop::current();
    CORING_ASSERT(loop, "awaiting as_completed_indices(...).next() needs an event loop on this thread");
    target = detail::loop_access::inbox_of(*loop);
  }
  core_ = c;
  for (std::size_t i = 0; i < states_.size(); ++i) {
    auto* w = new watcher;
    w->run = &watcher::on_run;
    w->box = target;
    w->c = c;
    w->index = i;
    if (states_[i]->attach(w)) {
      c->watching[i] = w;
      ++c->remaining;
    } else {
      c->done.push_back(i);  // already ended
      delete w;
    }
  }
}

std::optional<std::size_t> future_completions::pop() noexcept {
  core& c = *core_;
  if (c.head < c.done.size()) return c.done[c.head++];
  return std::nullopt;
}

std::optional<std::size_t> future_completions::wait_next() {
  return wait_next_until(std::chrono::steady_clock::time_point::max());
}

std::optional<std::size_t> future_completions::wait_next_until(std::chrono::steady_clock::time_point deadline) {
  CORING_ASSERT(!detail::on_loop_thread(), "as_completed: blocking wait on an event loop thread: co_await next()");
  arm(mode::blocking);
  core& c = *core_;
  detail::inbox& box = *c.box;
  for (;;) {
    if (auto i = pop()) return i;
    if (c.remaining == 0) return std::nullopt;
    for (detail::inbox_item* item = box.take_all(); item;) {
      detail::inbox_item* next = item->next;
      item->run(item, true);
      item = next;
    }
    if (c.head < c.done.size()) continue;

    timespec ts{};
    timespec* tsp = nullptr;
    if (deadline != std::chrono::steady_clock::time_point::max()) {
      auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0)
        throw timeout_error("as_completed: no future ended before the deadline (" + std::to_string(c.remaining) +
                            " of " + std::to_string(states_.size()) + " still pending)");
      ts.tv_sec = static_cast<std::time_t>(left.count() / 1'000'000'000);
      ts.tv_nsec = static_cast<long>(left.count() % 1'000'000'000);
      tsp = &ts;
    }
    // The loop's protocol: park, then sleep on the eventfd; a producer that
    // finds us parked writes it once.
    if (box.try_park()) {
      pollfd p{box.fd(), POLLIN, 0};
      int r = ::ppoll(&p, 1, tsp, nullptr);
      if (r > 0) {
        std::uint64_t value;
        [[maybe_unused]] ssize_t n = ::read(box.fd(), &value, sizeof value);
      } else if (r < 0 && errno != EINTR) {
        box.unpark();
        throw io_error(errno, "as_completed: waiting on its eventfd");
      }
      box.unpark();
    }
  }
}

future_completions::next_operation future_completions::next() noexcept { return next_operation(this); }

bool future_completions::next_operation::await_ready() {
  s_->arm(mode::awaiting);
  const core& c = *s_->core_;
  return c.head < c.done.size() || c.remaining == 0;
}

// Called with a handle from await_suspend, with nullptr by a delivered
// watcher (on the loop thread) to wake the suspended coroutine.
void future_completions::next_operation::suspend(std::coroutine_handle<> h) noexcept {
  if (h) {
    handle_ = h;
    s_->core_->waiter_op = this;
    return;
  }
  if (node_ && node_->leaf == this) node_->leaf = nullptr;
  detail::loop_access::schedule(*event_loop::current(), handle_);
}

void future_completions::next_operation::on_cancel(detail::cancel_hook* hook) noexcept {
  auto* self = static_cast<next_operation*>(hook);
  if (self->s_->core_->waiter_op == self) self->s_->core_->waiter_op = nullptr;
  self->interrupted_ = true;
  detail::loop_access::schedule(*event_loop::current(), self->handle_);
}

std::optional<std::size_t> future_completions::next_operation::await_resume() {
  if (interrupted_) {
    detail::throw_if_cancel_requested(node_);
    throw cancelled{};
  }
  return s_->pop();
}

}  // namespace coring
