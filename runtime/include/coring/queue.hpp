#pragma once
// queue<T>: a bounded FIFO channel between the tasks of one loop, with
// back-pressure (asyncio.Queue(maxsize), a Go channel).
//
//   coring::queue<job> jobs(100);
//   coring::task<> producer() {
//     for (auto& j : make_jobs()) co_await jobs.push(std::move(j));  // waits while 100 are queued
//     jobs.close();                                                   // no more jobs
//   }
//   coring::task<> consumer() {
//     try {
//       for (;;) handle(co_await jobs.pop());                         // waits while empty
//     } catch (const coring::queue_closed&) {}                        // closed and drained
//   }
//
// Fair on both sides: pushers and poppers are served first come, first
// served, and values come out in the order they went in. A value goes
// straight from a pusher to a waiting popper (or into the slot a pop just
// freed) — a hand-off — so nothing is lost when a task is cancelled around
// it. capacity 0 makes a rendezvous channel: push waits for a pop.
// For one loop's tasks only: it takes no lock.

#include <coring/detail/assert.hpp>
#include <coring/detail/wait_list.hpp>
#include <coring/error.hpp>

#include <concepts>
#include <coroutine>
#include <cstddef>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

namespace coring {

/// Thrown by a push on a closed queue, and by a pop on a closed queue that
/// has been drained.
class queue_closed : public error {
 public:
  using error::error;
};

/// A bounded FIFO of T for the tasks of one loop.
/// **Requires:** T is nothrow move-constructible (so that a hand-off cannot
/// fail half-way and lose or duplicate a value).
/// **Thread safety:** none: use it from the tasks of one loop only (to feed
/// it from another thread, post() to the loop and push there).
template <class T>
class queue {
  static_assert(std::is_nothrow_move_constructible_v<T>, "coring::queue<T> needs a nothrow move-constructible T");

 public:
  class push_operation;
  class pop_operation;

  using value_type = T;

  /// An empty, open queue holding at most `capacity` values (0: every push
  /// waits for a pop, a rendezvous). Allocates its slots once, here.
  explicit queue(std::size_t capacity) : slots_(capacity) {}
  /// Destroys the values still queued.
  /// **Requires:** no task waits on the queue (destroying it under them is a bug).
  ~queue() {
    CORING_ASSERT(pushers_.empty() && poppers_.empty(), "a coring::queue was destroyed while tasks wait on it");
  }
  queue(const queue&) = delete;
  queue& operator=(const queue&) = delete;

  /// Appends `value`, waiting (FIFO) while the queue is full. The value is
  /// moved from only when it is enqueued (or handed to a popper); on every
  /// exception it is left untouched with the caller — never lost, never
  /// enqueued twice.
  /// **Cancellation:** a waiting pusher ends at once with coring::cancelled
  /// and leaves the queue; its value was never enqueued and stays in the
  /// caller's object. A pusher whose value was taken keeps the success:
  /// push() returns normally and the cancellation is seen at the next
  /// suspension point.
  /// **Errors:** queue_closed if the queue is closed, or is closed while this
  /// push waits.
  /// **Requires:** `value` outlives the await (true for `co_await q.push(...)`
  /// in one expression, temporaries included).
  [[nodiscard]] push_operation push(T&& value) noexcept { return push_operation(*this, &value); }
  /// As push(T&&), for a copy of `value` (made now, in this call).
  [[nodiscard]] push_operation push(const T& value)
    requires std::copy_constructible<T>
  {
    return push_operation(*this, value);
  }
  /// Takes the oldest value, waiting (FIFO) while the queue is empty.
  /// **Cancellation:** a waiting popper ends at once with coring::cancelled
  /// and leaves the queue without a value. A popper that was handed a value
  /// gets it: pop() returns it and the cancellation is seen at the next
  /// suspension point — a value is never lost.
  /// **Errors:** queue_closed once the queue is closed and empty (values
  /// queued before close() are still delivered first).
  [[nodiscard]] pop_operation pop() noexcept { return pop_operation(*this); }

  /// Appends `value` if that needs no waiting; moves from it only then.
  /// Returns false (value untouched) if the queue is full.
  /// **Errors:** queue_closed if the queue is closed.
  [[nodiscard]] bool try_push(T&& value) { return give(value); }
  /// As try_push(T&&), copying `value` only if it is enqueued.
  [[nodiscard]] bool try_push(const T& value)
    requires std::copy_constructible<T>
  {
    if (closed_) throw_push_closed();
    if (!has_room()) return false;
    T copy(value);
    return give(copy);
  }
  /// Takes the oldest value if there is one; nullopt if the queue is empty.
  /// **Errors:** queue_closed if the queue is closed and empty.
  [[nodiscard]] std::optional<T> try_pop() {
    std::optional<T> out;
    if (!take(out) && closed_) throw_pop_closed();
    return out;
  }

  /// Closes the queue: waiting pushers (and later ones) get queue_closed;
  /// poppers drain the queued values, then get queue_closed (waiting ones at
  /// once, since they only wait on an empty queue). Idempotent.
  void close() noexcept {
    closed_ = true;
    pushers_.wake_all(detail::sync_waiter::outcome::closed);
    poppers_.wake_all(detail::sync_waiter::outcome::closed);
  }

  /// Values queued (not counting those of pushers still waiting).
  [[nodiscard]] std::size_t size() const noexcept { return count_; }
  /// The most values the queue holds.
  [[nodiscard]] std::size_t capacity() const noexcept { return slots_.size(); }
  /// True if no value is queued.
  [[nodiscard]] bool empty() const noexcept { return count_ == 0; }
  /// True if a push would wait.
  [[nodiscard]] bool full() const noexcept { return count_ == slots_.size(); }
  /// True once close() was called.
  [[nodiscard]] bool closed() const noexcept { return closed_; }
  /// How many tasks are suspended in push().
  [[nodiscard]] std::size_t waiting_pushers() const noexcept { return pushers_.size(); }
  /// How many tasks are suspended in pop().
  [[nodiscard]] std::size_t waiting_poppers() const noexcept { return poppers_.size(); }

 private:
  [[noreturn]] static void throw_push_closed() { throw queue_closed("coring::queue: push on a closed queue"); }
  [[noreturn]] static void throw_pop_closed() {
    throw queue_closed("coring::queue: pop from a closed queue that has been drained");
  }

  // A push would not wait: a popper waits, or a slot is free.
  bool has_room() const noexcept { return !poppers_.empty() || count_ < slots_.size(); }
  // Moves `v` to the longest-waiting popper or into a free slot; false (v
  // untouched) if that would need waiting. Throws if closed.
  bool give(T& v);
  // Moves the oldest value into `out` (refilling the freed slot from the
  // longest-waiting pusher); false if there is none.
  bool take(std::optional<T>& out) noexcept;

  std::vector<std::optional<T>> slots_;  // ring buffer of capacity() slots
  std::size_t head_ = 0;                 // slot of the oldest value
  std::size_t count_ = 0;                // values queued
  detail::wait_list pushers_;            // push_operations waiting for room (only while full())
  detail::wait_list poppers_;            // pop_operations waiting for a value (only while empty())
  bool closed_ = false;                  // close() was called
};

/// Awaiter of queue::push().
template <class T>
class queue<T>::push_operation : detail::sync_waiter {
 public:
  /// Pushes the caller's object (moved from only once enqueued).
  push_operation(queue& q, T* source) noexcept : queue_(q), source_(source) {}
  /// Pushes a copy, made now.
  push_operation(queue& q, const T& value) : queue_(q), copy_(value), source_(&*copy_) {}

  bool await_ready() const noexcept { return false; }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) {
    if (begin_wait(h)) return false;
    if (queue_.closed_) {
      close_inline();
      return false;
    }
    if (queue_.give(*source_)) {
      grant_inline();
      return false;
    }
    park(queue_.pushers_, h);
    return true;
  }
  void await_resume() const {
    switch (result()) {
      case outcome::granted: return;
      case outcome::closed: throw_push_closed();
      case outcome::pending: break;
    }
    throw_cancelled();
  }

 private:
  friend class queue;

  queue& queue_;            // the queue pushed to
  std::optional<T> copy_;   // the copy pushed by push(const T&)
  T* source_;               // the value to move in: the caller's object, or *copy_
};

/// Awaiter of queue::pop().
template <class T>
class queue<T>::pop_operation : detail::sync_waiter {
 public:
  explicit pop_operation(queue& q) noexcept : queue_(q) {}

  bool await_ready() const noexcept { return false; }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) {
    if (begin_wait(h)) return false;
    if (queue_.take(value_)) {
      grant_inline();
      return false;
    }
    if (queue_.closed_) {
      close_inline();
      return false;
    }
    park(queue_.poppers_, h);
    return true;
  }
  T await_resume() {
    switch (result()) {
      case outcome::granted: return std::move(*value_);
      case outcome::closed: throw_pop_closed();
      case outcome::pending: break;
    }
    throw_cancelled();
  }

 private:
  friend class queue;

  queue& queue_;             // the queue popped from
  std::optional<T> value_;   // the value handed over
};

template <class T>
bool queue<T>::give(T& v) {
  if (closed_) throw_push_closed();
  if (!poppers_.empty()) {
    // Only an empty queue has waiting poppers: hand the value over directly.
    auto& popper = static_cast<pop_operation&>(poppers_.front());
    popper.value_.emplace(std::move(v));
    poppers_.wake_front(detail::sync_waiter::outcome::granted);
    return true;
  }
  if (count_ == slots_.size()) return false;
  slots_[(head_ + count_) % slots_.size()].emplace(std::move(v));
  ++count_;
  return true;
}

template <class T>
bool queue<T>::take(std::optional<T>& out) noexcept {
  if (count_ != 0) {
    std::optional<T>& slot = slots_[head_];
    out.emplace(std::move(*slot));
    slot.reset();
    head_ = (head_ + 1) % slots_.size();
    --count_;
    if (!pushers_.empty()) {
      // Pushers wait only on a full queue: the slot just freed goes to the
      // longest-waiting one, behind every value already queued.
      auto& pusher = static_cast<push_operation&>(pushers_.front());
      slots_[(head_ + count_) % slots_.size()].emplace(std::move(*pusher.source_));
      ++count_;
      pushers_.wake_front(detail::sync_waiter::outcome::granted);
    }
    return true;
  }
  if (!pushers_.empty()) {
    // A rendezvous (capacity 0): take the value straight from the pusher.
    auto& pusher = static_cast<push_operation&>(pushers_.front());
    out.emplace(std::move(*pusher.source_));
    pushers_.wake_front(detail::sync_waiter::outcome::granted);
    return true;
  }
  return false;
}

}  // namespace coring
