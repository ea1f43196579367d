#pragma once
// mutex: mutual exclusion across suspension points (asyncio.Lock).
//
//   coring::mutex m;
//   coring::task<> append(log_file& f, std::string line) {
//     auto lock = co_await m.scoped_lock();   // one writer at a time,
//     co_await f.write(line);                  // even while this one waits for I/O
//   }                                          // unlocked here
//
// Tasks on one loop never run at the same time, so a mutex is only needed
// to keep a section that *suspends* exclusive. Fair: waiters get the lock
// first come, first served; unlock() hands it straight to the longest
// waiter. For one loop's tasks only: it takes no lock itself.

#include <coring/detail/assert.hpp>
#include <coring/detail/wait_list.hpp>

#include <coroutine>
#include <cstddef>
#include <mutex>  // std::adopt_lock_t
#include <utility>

namespace coring {

class mutex;

/// Owner of a locked coring::mutex: unlocks it when destroyed (RAII).
/// Move-only. Made by `co_await m.scoped_lock()`.
class [[nodiscard]] mutex_guard {
 public:
  /// A guard that owns no lock.
  mutex_guard() noexcept = default;
  /// Takes over the lock of `m`, which the caller holds.
  mutex_guard(mutex& m, std::adopt_lock_t) noexcept : mutex_(&m) {}
  mutex_guard(mutex_guard&& other) noexcept : mutex_(std::exchange(other.mutex_, nullptr)) {}
  mutex_guard& operator=(mutex_guard&& other) noexcept {
    if (this != &other) {
      unlock();
      mutex_ = std::exchange(other.mutex_, nullptr);
    }
    return *this;
  }
  mutex_guard(const mutex_guard&) = delete;
  mutex_guard& operator=(const mutex_guard&) = delete;
  /// Unlocks the mutex, if the guard owns it.
  ~mutex_guard() { unlock(); }

  /// Unlocks now (if owned); the guard then owns nothing.
  inline void unlock() noexcept;
  /// True if the guard owns the lock.
  [[nodiscard]] bool owns_lock() const noexcept { return mutex_ != nullptr; }
  explicit operator bool() const noexcept { return owns_lock(); }

 private:
  mutex* mutex_ = nullptr;  // the mutex we hold, or null
};

/// A non-recursive lock for the tasks of one loop, with FIFO hand-off.
/// It has no notion of an owner task: any task may unlock it.
/// **Thread safety:** none: use it from the tasks of one loop only.
class mutex {
 public:
  class lock_operation;
  class scoped_lock_operation;

  /// An unlocked mutex.
  mutex() noexcept = default;
  /// **Requires:** no task waits on the mutex (destroying it under them is a bug).
  ~mutex() { CORING_ASSERT(waiters_.empty(), "a coring::mutex was destroyed while tasks wait on it"); }
  mutex(const mutex&) = delete;
  mutex& operator=(const mutex&) = delete;

  /// Locks, waiting (FIFO) while another task holds the lock. Does not
  /// suspend if the mutex is free.
  /// **Cancellation:** a waiting task ends at once with coring::cancelled and
  /// leaves the queue without the lock; a cancellation pending when lock() is
  /// awaited is delivered there, without locking. A task the lock was handed
  /// to keeps it: lock() returns normally and the cancellation is seen at its
  /// next suspension point — so the lock is never left held by nobody (use
  /// scoped_lock() so that it is unlocked then).
  /// **Requires:** awaited from a coroutine of the loop that uses the mutex;
  /// the caller does not hold the lock already (that would wait forever).
  [[nodiscard]] lock_operation lock() noexcept;
  /// As lock(), but gives a mutex_guard that unlocks when it is destroyed:
  /// `auto lock = co_await m.scoped_lock();`. **Cancellation:** as lock().
  [[nodiscard]] scoped_lock_operation scoped_lock() noexcept;
  /// Locks if the mutex is free; never suspends.
  [[nodiscard]] bool try_lock() noexcept {
    if (locked_) return false;
    locked_ = true;
    return true;
  }
  /// Unlocks: the lock goes straight to the longest-waiting task (which runs
  /// on the loop's next step, not inside this call), or the mutex becomes free.
  /// **Requires:** the mutex is locked (unlocking a free mutex is a bug, caught
  /// by an assertion in debug builds).
  void unlock() noexcept;
  /// True while some task holds the lock.
  [[nodiscard]] bool is_locked() const noexcept { return locked_; }
  /// How many tasks are suspended in lock().
  [[nodiscard]] std::size_t waiting() const noexcept { return waiters_.size(); }

 private:
  detail::wait_list waiters_;  // tasks suspended in lock(), FIFO; non-empty only while locked_
  bool locked_ = false;        // some task holds the lock
};

/// Awaiter of mutex::lock().
class mutex::lock_operation : detail::sync_waiter {
 public:
  explicit lock_operation(mutex& m) noexcept : mutex_(m) {}

  bool await_ready() const noexcept { return false; }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) {
    if (begin_wait(h)) return false;
    if (mutex_.try_lock()) {
      grant_inline();
      return false;
    }
    park(mutex_.waiters_, h);
    return true;
  }
  void await_resume() const {
    if (result() != outcome::granted) throw_cancelled();
  }

 protected:
  mutex& mutex_;  // the mutex to lock
};

/// Awaiter of mutex::scoped_lock().
class mutex::scoped_lock_operation : public mutex::lock_operation {
 public:
  using lock_operation::lock_operation;
  mutex_guard await_resume() const {
    lock_operation::await_resume();
    return mutex_guard(mutex_, std::adopt_lock);
  }
};

inline void mutex::unlock() noexcept {
  CORING_ASSERT(locked_, "coring::mutex::unlock on a mutex that is not locked");
  if (waiters_.empty()) {
    locked_ = false;
  } else {
    waiters_.wake_front(detail::sync_waiter::outcome::granted);  // stays locked: ownership moves
  }
}

inline mutex::lock_operation mutex::lock() noexcept { return lock_operation(*this); }
inline mutex::scoped_lock_operation mutex::scoped_lock() noexcept { return scoped_lock_operation(*this); }

inline void mutex_guard::unlock() noexcept {
  if (mutex_) std::exchange(mutex_, nullptr)->unlock();
}

}  // namespace coring
