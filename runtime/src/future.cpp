#include <coring/future.hpp>

namespace coring::detail {

bool on_loop_thread() noexcept {
  event_loop* loop = event_loop::current();
  return loop != nullptr && loop->running();
}

bool future_state_base::start() noexcept {
  std::lock_guard lock(m_);
  if (stage_.load(std::memory_order_relaxed) != stage::pending) return false;
  stage_.store(stage::running, std::memory_order_release);
  return true;
}

namespace {
// After a transition to done under the lock: wake blocked threads and hand
// the awaiting coroutine (if any) to its loop.
void publish(std::condition_variable& cv, bool wake_threads, future_state_base::waiter* w) noexcept {
  if (wake_threads) cv.notify_all();
  if (w) {
    // The push hands the waiter to its loop, which may resume the coroutine
    // and free the waiter at once: keep the inbox alive ourselves and touch
    // nothing of w after the push.
    std::shared_ptr<inbox> box = w->box;
    // A closed inbox (its loop is gone) does not take the item: it is ours
    // to dispose of, as inbox::push documents.
    if (!box->push(w)) w->run(w, false);
  }
}
}  // namespace

void future_state_base::finish() noexcept {
  waiter* w;
  bool wake_threads;
  {
    std::lock_guard lock(m_);
    stage_.store(stage::done, std::memory_order_release);
    w = std::exchange(waiter_, nullptr);
    wake_threads = sleepers_ != 0;
  }
  publish(cv_, wake_threads, w);
}

bool future_state_base::cancel() noexcept {
  waiter* w = nullptr;
  bool wake_threads = false;
  void (*hook)(future_state_base*, void*) noexcept = nullptr;
  {
    std::lock_guard lock(m_);
    stage s = stage_.load(std::memory_order_relaxed);
    if (s == stage::done) return false;
    if (s == stage::running) {
      hook = cancel_running_;
      if (!hook) return false;
    } else {
      // Still pending, and start() takes the same lock: it will never run.
      error_ = std::make_exception_ptr(cancelled{});
      stage_.store(stage::done, std::memory_order_release);
      w = std::exchange(waiter_, nullptr);
      wake_threads = sleepers_ != 0;
    }
  }
  if (hook) {
    hook(this, cancel_ctx_);
    return false;
  }
  publish(cv_, wake_threads, w);
  return true;
}

void future_state_base::wait() {
  std::unique_lock lock(m_);
  ++sleepers_;
  cv_.wait(lock, [&] { return stage_.load(std::memory_order_relaxed) == stage::done; });
  --sleepers_;
}

bool future_state_base::wait_until(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(m_);
  ++sleepers_;
  bool done = cv_.wait_until(lock, deadline, [&] { return stage_.load(std::memory_order_relaxed) == stage::done; });
  --sleepers_;
  return done;
}

bool future_state_base::attach(waiter* w) noexcept {
  std::lock_guard lock(m_);
  if (stage_.load(std::memory_order_relaxed) == stage::done) return false;
  CORING_ASSERT(!waiter_, "a coring::future was awaited twice at once");
  waiter_ = w;
  return true;
}

bool future_state_base::detach(waiter* w) noexcept {
  std::lock_guard lock(m_);
  if (waiter_ != w) return false;
  waiter_ = nullptr;
  return true;
}

}  // namespace coring::detail
