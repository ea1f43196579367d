#pragma once
// channel<T>: a bounded FIFO that any thread or loop sends into and one task
// on a loop receives from (tokio's mpsc channel; in asyncio, a queue.Queue
// drained through call_soon_threadsafe, here without the plumbing).
//
//   coring::channel<job> jobs(64);
//   std::thread producer([&] {                     // a plain thread
//     for (auto& j : read_jobs()) jobs.blocking_send(std::move(j));   // blocks while 64 are queued
//     jobs.close();
//   });
//   co_await jobs.send(std::move(j));              // from a coroutine on any loop: waits, never blocks
//   while (auto j = co_await jobs.receive()) handle(*j);   // the consumer, on its loop; nullopt once closed
//   and drained
//
// Values come out in the order they went in; senders waiting for room are
// served first come, first served, each value handed straight to the
// receiver or into the slot a receive just freed, under the channel's lock —
// so nothing is lost or duplicated when a waiter is cancelled. A waiting
// coroutine is woken through its loop's inbox (one eventfd write at most per
// loop sleep), a blocked thread through a condition variable.

#include <coring/detail/assert.hpp>
#include <coring/detail/inbox.hpp>
#include <coring/detail/introspection.hpp>
#include <coring/detail/loop_access.hpp>
#include <coring/detail/task_node.hpp>
#include <coring/error.hpp>
#include <coring/event_loop.hpp>
#include <coring/future.hpp>
#include <coring/task.hpp>

#include <concepts>
#include <condition_variable>
#include <coroutine>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace coring {

/// Thrown by a send on a closed channel (or one closed while the send waits).
class channel_closed : public error {
 public:
  using error::error;
};

namespace detail {

/// A sender waiting for room, or the receiver waiting for a value. Its
/// fields are guarded by the channel's mutex.
struct channel_waiter {
  enum class outcome : unsigned char { pending, granted, closed };
  channel_waiter* prev_ = nullptr;  // senders' FIFO links (also the wake list once unlinked)
  channel_waiter* next_ = nullptr;
  void* source = nullptr;  // a sender's value (a T*)
  outcome result = outcome::pending;
  bool linked = false;     // in the senders' list
  bool is_thread = false;  // a blocked thread (woken by the condition variable), else a coroutine
};

/// A waiting coroutine: woken through its loop's inbox.
struct channel_coro_waiter : channel_waiter, inbox_item, cancel_hook {
  explicit channel_coro_waiter(void (*on_cancel)(cancel_hook*) noexcept) noexcept : cancel_hook{on_cancel} {
    run = &on_ready;
  }
  std::coroutine_handle<> handle;  // the suspended coroutine
  std::shared_ptr<inbox> box;      // its loop's inbox
  task_node* node = nullptr;       // its cancellation state
  bool interrupted = false;        // resumed by its cancellation, not by the channel

  static void on_ready(inbox_item* item, bool loop_alive) noexcept {
    auto* self = static_cast<channel_coro_waiter*>(item);
    if (!loop_alive) return;
    if (self->node && self->node->leaf == static_cast<cancel_hook*>(self)) self->node->leaf = nullptr;
    loop_access::schedule(*event_loop::current(), self->handle);
  }
  /// Hands the waiter to its loop. Nothing of it may be touched afterwards
  /// (its coroutine may resume and end at once).
  void wake() noexcept {
    std::shared_ptr<inbox> keep = box;
    if (!keep->push(this)) run(this, false);
  }
};

/// Wakes the coroutine waiters chained by next_ (after the lock is released).
inline void wake_chain(channel_waiter* w) noexcept {
  while (w) {
    channel_waiter* next = w->next_;
    static_cast<channel_coro_waiter*>(w)->wake();
    w = next;
  }
}

}  // namespace detail

/// A bounded multi-producer, single-consumer channel of T.
/// **Requires:** T is nothrow move-constructible.
/// **Thread safety:** send(), blocking_send(), try_send() and close() from
/// any thread or loop, concurrently; receive() and try_receive() from one
/// task at a time, on a loop.
template <class T>
class channel {
  static_assert(std::is_nothrow_move_constructible_v<T>,
                "coring::channel<T> needs a nothrow move-constructible T");

 public:
  class send_operation;
  class receive_operation;
  using value_type = T;

  /// An empty, open channel holding at most `capacity` values (0: every
  /// send waits for a receive). Allocates its slots once, here.
  explicit channel(std::size_t capacity) : slots_(capacity) {}
  /// Destroys the values still queued.
  /// **Requires:** nobody waits on it and every sender has returned (join the threads first).
  ~channel() {
    CORING_ASSERT(!senders_head_ && !receiver_, "a coring::channel was destroyed while someone waits on it");
  }
  channel(const channel&) = delete;
  channel& operator=(const channel&) = delete;

  /// Sends `value` from a coroutine on any loop, waiting (FIFO) while the
  /// channel is full; the loop stays free meanwhile. `value` is moved from
  /// only when it is queued or handed to the receiver.
  /// **Cancellation:** a waiting send ends at once with coring::cancelled;
  /// its value was not queued and stays in the caller's object. A send whose
  /// value was taken returns normally; the cancellation comes at the next
  /// suspension.
  /// **Errors:** channel_closed if the channel is closed, or is closed while this send waits.
  /// **Requires:** `value` outlives the await (true in one co_await expression).
  [[nodiscard]] send_operation send(T&& value) noexcept { return send_operation(*this, &value); }
  /// As send(T&&), for a copy of `value` made now.
  [[nodiscard]] send_operation send(const T& value) requires std::copy_constructible<T> {
    return send_operation(*this, value);
  }
  /// Sends `value` from a plain thread, blocking while the channel is full.
  /// **Errors:** channel_closed (then `value` was not queued).
  /// **Requires:** not called on a thread that runs an event loop step (co_await send() there).
  void blocking_send(T value);
  /// Queues `value` if that needs no waiting (moving from it only then);
  /// false, with `value` untouched, if the channel is full. Any thread.
  /// **Errors:** channel_closed.
  [[nodiscard]] bool try_send(T&& value);

  /// The next value, waiting while the channel is empty; nullopt once it is
  /// closed and every value queued before close() was received.
  /// **Cancellation:** a waiting receive ends at once with coring::cancelled
  /// and takes nothing. One that was handed a value returns it; the
  /// cancellation comes at the next suspension — a value is never lost.
  /// **Requires:** awaited by a task on a loop; one receive at a time.
  [[nodiscard]] receive_operation receive() noexcept { return receive_operation(*this); }
  /// The next value if one is queued (or a sender waits), else nullopt
  /// (see closed() to tell an empty channel from a finished one).
  [[nodiscard]] std::optional<T> try_receive();

  /// Closes the channel: waiting senders (and later ones) get
  /// channel_closed; the receiver gets the values queued, then nullopt.
  /// Idempotent; any thread.
  void close() noexcept;

  /// Values queued (not counting those of senders still waiting).
  [[nodiscard]] std::size_t size() const {
    std::lock_guard lock(m_);
    return count_;
  }
  /// The most values the channel holds.
  [[nodiscard]] std::size_t capacity() const noexcept { return slots_.size(); }
  /// True once close() was called.
  [[nodiscard]] bool closed() const {
    std::lock_guard lock(m_);
    return closed_;
  }

 private:
  using waiter = detail::channel_waiter;

  [[noreturn]] static void throw_closed() {
    throw channel_closed("coring::channel: send on a closed channel");
  }

  // All below: with m_ held. Coroutines to wake are chained into `wake`
  // (woken once the lock is released); blocked threads are notified here.
  bool give(T& v, waiter*& wake);
  bool take(std::optional<T>& out, waiter*& wake) noexcept;
  void grant_sender(waiter& s, waiter*& wake) noexcept;
  void link_sender(waiter& w) noexcept {
    w.prev_ = senders_tail_;
    w.next_ = nullptr;
    if (senders_tail_) {
      senders_tail_->next_ = &w;
    } else {
      senders_head_ = &w;
    }
    senders_tail_ = &w;
    w.linked = true;
  }
  void unlink_sender(waiter& w) noexcept {
    (w.prev_ ? w.prev_->next_ : senders_head_) = w.next_;
    (w.next_ ? w.next_->prev_ : senders_tail_) = w.prev_;
    w.prev_ = w.next_ = nullptr;
    w.linked = false;
  }
  static void push_wake(waiter& w, waiter*& wake) noexcept {
    w.next_ = wake;
    wake = &w;
  }

  mutable std::mutex m_;                       // guards everything below
  std::condition_variable thread_senders_cv_;  // blocked threads wait here for their outcome
  std::vector<std::optional<T>> slots_;        // ring buffer of capacity() slots
  std::size_t head_ = 0;                       // slot of the oldest value
  std::size_t count_ = 0;                      // values queued
  waiter* senders_head_ = nullptr;             // senders waiting for room (only while full), oldest first
  waiter* senders_tail_ = nullptr;
  detail::channel_coro_waiter* receiver_ = nullptr;  // the receive waiting for a value (only while empty)
  std::optional<T>* receiver_slot_ = nullptr;        // where its value goes
  bool closed_ = false;                              // close() was called
};

/// Awaiter of channel::send().
template <class T>
class channel<T>::send_operation : detail::channel_coro_waiter {
 public:
  send_operation(channel& c, T* source) noexcept : channel_coro_waiter(&on_cancel), channel_(c) {
    this->source = source;
  }
  send_operation(channel& c, const T& value) : channel_coro_waiter(&on_cancel), channel_(c), copy_(value) {
    this->source = &*copy_;
  }

  bool await_ready() const noexcept { return false; }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) {
    node = detail::node_of(h);
    if (node && node->cancel_requested) {
      interrupted = true;
      return false;
    }
    event_loop* loop = event_loop::current();
    CORING_ASSERT(loop,
                  "channel::send needs an event loop on this thread (blocking_send from plain threads)");
    (void)&described_;  // registers this instantiation with dump_tasks()
    waiter* wake = nullptr;
    bool suspend = false;  // decided under the lock: once we are linked, `result` is the channel's to write
    {
      std::lock_guard lock(channel_.m_);
      if (channel_.closed_) {
        result = outcome::closed;
        return false;
      }
      if (channel_.give(*static_cast<T*>(source), wake)) {
        result = outcome::granted;
      } else {
        handle = h;
        box = detail::loop_access::inbox_of(*loop);
        channel_.link_sender(*this);
        suspend = true;
      }
    }
    detail::wake_chain(wake);
    // On this thread: our wake-up (queued in our loop's inbox) cannot run before we return.
    if (suspend && node) node->leaf = this;
    return suspend;
  }
  void await_resume() {
    if (interrupted) {
      detail::consume_cancel(node);
      throw cancelled{};
    }
    if (result == outcome::closed) throw_closed();
  }

 private:
  static void on_cancel(detail::cancel_hook* hook) noexcept {
    auto* self = static_cast<send_operation*>(hook);
    {
      std::lock_guard lock(self->channel_.m_);
      if (!self->linked) return;  // already granted or closed: its wake-up is on its way
      self->channel_.unlink_sender(*self);
      self->interrupted = true;
    }
    detail::loop_access::schedule(*event_loop::current(), self->handle);
  }
  static void describe(const detail::cancel_hook& c, detail::leaf_report& out) {
    const auto& self = static_cast<const send_operation&>(c);
    out.what = "send on a channel (full: " + std::to_string(self.channel_.capacity()) + " queued)";
    out.frame = self.handle;
  }
  static inline const bool described_ = detail::register_leaf(&on_cancel, &describe);

  channel& channel_;       // where to
  std::optional<T> copy_;  // the copy sent by send(const T&)
};

/// Awaiter of channel::receive().
template <class T>
class channel<T>::receive_operation : detail::channel_coro_waiter {
 public:
  explicit receive_operation(channel& c) noexcept : channel_coro_waiter(&on_cancel), channel_(c) {}

  bool await_ready() const noexcept { return false; }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) {
    node = detail::node_of(h);
    if (node && node->cancel_requested) {
      interrupted = true;
      return false;
    }
    event_loop* loop = event_loop::current();
    CORING_ASSERT(loop, "channel::receive needs an event loop on this thread");
    (void)&described_;  // registers this instantiation with dump_tasks()
    waiter* wake = nullptr;
    bool suspend = false;
    {
      std::lock_guard lock(channel_.m_);
      CORING_ASSERT(!channel_.receiver_, "coring::channel has one receiver at a time");
      if (channel_.take(value_, wake)) {
        result = outcome::granted;
      } else if (channel_.closed_) {
        result = outcome::closed;
      } else {
        handle = h;
        box = detail::loop_access::inbox_of(*loop);
        channel_.receiver_ = this;
        channel_.receiver_slot_ = &value_;
        suspend = true;
      }
    }
    detail::wake_chain(wake);
    if (suspend && node) node->leaf = this;
    return suspend;
  }
  std::optional<T> await_resume() {
    if (interrupted) {
      detail::consume_cancel(node);
      throw cancelled{};
    }
    if (result == outcome::granted) return std::move(value_);
    return std::nullopt;
  }

 private:
  static void on_cancel(detail::cancel_hook* hook) noexcept {
    auto* self = static_cast<receive_operation*>(hook);
    {
      std::lock_guard lock(self->channel_.m_);
      if (self->channel_.receiver_ != self) return;  // a value or the close is on its way
      self->channel_.receiver_ = nullptr;
      self->channel_.receiver_slot_ = nullptr;
      self->interrupted = true;
    }
    detail::loop_access::schedule(*event_loop::current(), self->handle);
  }
  static void describe(const detail::cancel_hook& c, detail::leaf_report& out) {
    const auto& self = static_cast<const receive_operation&>(c);
    out.what = "receive on a channel (empty)";
    out.frame = self.handle;
  }
  static inline const bool described_ = detail::register_leaf(&on_cancel, &describe);

  channel& channel_;        // where from
  std::optional<T> value_;  // the value handed over
};

// ---------------------------------------------------------------- implementation

template <class T>
void channel<T>::grant_sender(waiter& s, waiter*& wake) noexcept {
  unlink_sender(s);
  s.result = waiter::outcome::granted;
  if (s.is_thread) {
    thread_senders_cv_.notify_all();  // under the lock: the waiting thread re-checks its outcome
  } else {
    push_wake(s, wake);
  }
}

template <class T>
bool channel<T>::give(T& v, waiter*& wake) {
  if (closed_) throw_closed();
  if (receiver_) {
    // Only an empty channel has a waiting receiver: hand the value over.
    receiver_slot_->emplace(std::move(v));
    receiver_->result = waiter::outcome::granted;
    push_wake(*receiver_, wake);
    receiver_ = nullptr;
    receiver_slot_ = nullptr;
    return true;
  }
  if (count_ == slots_.size()) return false;
  slots_[(head_ + count_) % slots_.size()].emplace(std::move(v));
  ++count_;
  return true;
}

template <class T>
bool channel<T>::take(std::optional<T>& out, waiter*& wake) noexcept {
  if (count_ != 0) {
    std::optional<T>& slot = slots_[head_];
    out.emplace(std::move(*slot));
    slot.reset();
    head_ = (head_ + 1) % slots_.size();
    --count_;
    if (senders_head_) {
      // Senders wait only on a full channel: the freed slot goes to the
      // longest-waiting one, behind every value already queued.
      waiter& s = *senders_head_;
      slots_[(head_ + count_) % slots_.size()].emplace(std::move(*static_cast<T*>(s.source)));
      ++count_;
      grant_sender(s, wake);
    }
    return true;
  }
  if (senders_head_) {
    // Capacity 0 (a rendezvous): straight from the sender.
    waiter& s = *senders_head_;
    out.emplace(std::move(*static_cast<T*>(s.source)));
    grant_sender(s, wake);
    return true;
  }
  return false;
}

template <class T>
void channel<T>::blocking_send(T value) {
  CORING_ASSERT(!detail::on_loop_thread(),
                "channel::blocking_send on an event loop thread: co_await send() there");
  waiter* wake = nullptr;
  {
    std::unique_lock lock(m_);
    if (!give(value, wake)) {
      waiter w;
      w.source = &value;
      w.is_thread = true;
      link_sender(w);
      thread_senders_cv_.wait(lock, [&] { return w.result != waiter::outcome::pending; });
      if (w.result == waiter::outcome::closed) throw_closed();
    }
  }
  detail::wake_chain(wake);
}

template <class T>
bool channel<T>::try_send(T&& value) {
  waiter* wake = nullptr;
  bool sent;
  {
    std::lock_guard lock(m_);
    sent = give(value, wake);
  }
  detail::wake_chain(wake);
  return sent;
}

template <class T>
std::optional<T> channel<T>::try_receive() {
  std::optional<T> out;
  waiter* wake = nullptr;
  {
    std::lock_guard lock(m_);
    CORING_ASSERT(!receiver_, "channel::try_receive while a receive waits");
    (void)take(out, wake);
  }
  detail::wake_chain(wake);
  return out;
}

template <class T>
void channel<T>::close() noexcept {
  waiter* wake = nullptr;
  {
    std::lock_guard lock(m_);
    if (closed_) return;
    closed_ = true;
    bool threads = false;
    while (senders_head_) {
      waiter& s = *senders_head_;
      unlink_sender(s);
      s.result = waiter::outcome::closed;
      if (s.is_thread) {
        threads = true;
      } else {
        push_wake(s, wake);
      }
    }
    if (threads) thread_senders_cv_.notify_all();
    if (receiver_) {  // waits only on an empty channel: nothing more will come
      receiver_->result = waiter::outcome::closed;
      push_wake(*receiver_, wake);
      receiver_ = nullptr;
      receiver_slot_ = nullptr;
    }
  }
  detail::wake_chain(wake);
}

}  // namespace coring
