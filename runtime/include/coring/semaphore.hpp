#pragma once
// semaphore: a counter of permits that tasks wait for (asyncio.Semaphore).
// It is the way to bound concurrency, the async world's `max_workers`:
//
//   coring::semaphore slots(10);                      // at most 10 fetches in flight
//   coring::task<page> fetch_bounded(std::string url) {
//     auto permit = co_await slots.acquire_guard();   // waits while 10 are running
//     co_return co_await fetch(url);                  // the permit returns when `permit` dies
//   }
//   // spawn or gather 1000 of them: never more than 10 run fetch() at once.
//
// Fair: waiters are served first come, first served. release() hands its
// permit straight to the longest waiter, so a task arriving meanwhile cannot
// take it first. For one loop's tasks only: it takes no lock.

#include <coring/detail/assert.hpp>
#include <coring/detail/wait_list.hpp>

#include <coroutine>
#include <cstddef>
#include <mutex>  // std::adopt_lock_t
#include <utility>

namespace coring {

class semaphore;

/// Owner of one permit of a semaphore: returns it when destroyed (RAII).
/// Move-only. Made by `co_await sem.acquire_guard()`.
class [[nodiscard]] semaphore_guard {
 public:
  /// A guard that owns no permit.
  semaphore_guard() noexcept = default;
  /// Takes over a permit the caller acquired from `sem`.
  semaphore_guard(semaphore& sem, std::adopt_lock_t) noexcept : sem_(&sem) {}
  semaphore_guard(semaphore_guard&& other) noexcept : sem_(std::exchange(other.sem_, nullptr)) {}
  semaphore_guard& operator=(semaphore_guard&& other) noexcept {
    if (this != &other) {
      reset();
      sem_ = std::exchange(other.sem_, nullptr);
    }
    return *this;
  }
  semaphore_guard(const semaphore_guard&) = delete;
  semaphore_guard& operator=(const semaphore_guard&) = delete;
  /// Returns the permit, if the guard owns one.
  ~semaphore_guard() { reset(); }

  /// Returns the permit now (if owned); the guard then owns none.
  inline void reset() noexcept;
  /// True if the guard owns a permit.
  [[nodiscard]] bool owns_permit() const noexcept { return sem_ != nullptr; }
  explicit operator bool() const noexcept { return owns_permit(); }

 private:
  semaphore* sem_ = nullptr;  // whose permit we hold, or null
};

/// A counting semaphore for the tasks of one loop, with FIFO hand-off.
/// **Thread safety:** none: use it from the tasks of one loop only. (To bound
/// work across threads, size the thread pool instead.)
class semaphore {
 public:
  class acquire_operation;
  class acquire_guard_operation;

  /// A semaphore holding `initial` permits.
  explicit semaphore(std::size_t initial) noexcept : count_(initial) {}
  /// **Requires:** no task waits on the semaphore (destroying it under them is a bug).
  ~semaphore() { CORING_ASSERT(waiters_.empty(), "a coring::semaphore was destroyed while tasks wait on it"); }
  semaphore(const semaphore&) = delete;
  semaphore& operator=(const semaphore&) = delete;

  /// Takes a permit, waiting (FIFO) while none is free. Does not suspend if a
  /// permit is free and nobody waits.
  /// **Cancellation:** a waiting task ends at once with coring::cancelled and
  /// leaves the queue without a permit; a cancellation pending when acquire()
  /// is awaited is delivered there, without taking a permit. A task that was
  /// handed a permit keeps it: acquire() returns normally and the
  /// cancellation is seen at its next suspension point — so a permit is
  /// never lost (hold it in a semaphore_guard so that it is returned then).
  /// **Requires:** awaited from a coroutine of the loop that uses the semaphore.
  [[nodiscard]] acquire_operation acquire() noexcept;
  /// As acquire(), but gives a semaphore_guard that returns the permit when
  /// it is destroyed: `auto permit = co_await sem.acquire_guard();`.
  /// **Cancellation:** as acquire().
  [[nodiscard]] acquire_guard_operation acquire_guard() noexcept;
  /// Takes a permit if one is free and nobody waits for one; never suspends.
  [[nodiscard]] bool try_acquire() noexcept {
    if (count_ == 0) return false;
    CORING_ASSERT(waiters_.empty(), "coring::semaphore: free permits while tasks wait");
    --count_;
    return true;
  }
  /// Returns `n` permits: each goes straight to the longest-waiting task
  /// (which runs on the loop's next step, not inside this call); the rest
  /// become free.
  void release(std::size_t n = 1) noexcept;
  /// Free permits (always 0 while tasks wait).
  [[nodiscard]] std::size_t available() const noexcept { return count_; }
  /// How many tasks are suspended in acquire().
  [[nodiscard]] std::size_t waiting() const noexcept { return waiters_.size(); }

 private:
  detail::wait_list waiters_;  // tasks suspended in acquire(), FIFO; non-empty only while count_ == 0
  std::size_t count_;          // free permits
};

/// Awaiter of semaphore::acquire().
class semaphore::acquire_operation : detail::sync_waiter {
 public:
  explicit acquire_operation(semaphore& s) noexcept : sem_(s) {}

  bool await_ready() const noexcept { return false; }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) {
    if (begin_wait(h)) return false;
    if (sem_.try_acquire()) {
      grant_inline();
      return false;
    }
    park(sem_.waiters_, h);
    return true;
  }
  void await_resume() const {
    if (result() != outcome::granted) throw_cancelled();
  }

 protected:
  semaphore& sem_;  // the semaphore a permit is taken from
};

/// Awaiter of semaphore::acquire_guard().
class semaphore::acquire_guard_operation : public semaphore::acquire_operation {
 public:
  using acquire_operation::acquire_operation;
  semaphore_guard await_resume() const {
    acquire_operation::await_resume();
    return semaphore_guard(sem_, std::adopt_lock);
  }
};

inline void semaphore::release(std::size_t n) noexcept {
  for (; n != 0 && !waiters_.empty(); --n) waiters_.wake_front(detail::sync_waiter::outcome::granted);
  count_ += n;
}

inline semaphore::acquire_operation semaphore::acquire() noexcept { return acquire_operation(*this); }
inline semaphore::acquire_guard_operation semaphore::acquire_guard() noexcept {
  return acquire_guard_operation(*this);
}

inline void semaphore_guard::reset() noexcept {
  if (sem_) std::exchange(sem_, nullptr)->release();
}

}  // namespace coring
