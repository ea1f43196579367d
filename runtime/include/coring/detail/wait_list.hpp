#pragma once
// wait_list and sync_waiter: the FIFO of tasks suspended on a one-loop
// synchronisation primitive (event, semaphore, queue, mutex). Internal.
//
//   bool await_suspend(std::coroutine_handle<P> h) {
//     if (begin_wait(h)) return false;            // cancellation pending: await_resume throws
//     if (primitive_.try_take()) { grant_inline(); return false; }
//     park(primitive_.waiters_, h);                // woken by grant / close / cancel
//     return true;
//   }
//
// A waiter is the awaiter itself, living in the waiting coroutine's frame and
// linked in place into a circular doubly linked list: no allocation per wait,
// and a cancelled waiter unlinks itself in O(1). A wait ends one of three ways:
// - the primitive *grants* it (a permit, the lock or a value was handed over),
//   unlinks it and schedules it; from then on it is no longer cancellable, so
//   what it was handed is never lost: a cancellation arriving meanwhile is
//   delivered at the task's next suspension point;
// - the primitive is *closed* (queue::close): unlinked and scheduled likewise;
// - its task is *cancelled* while it waits: it unlinks itself and schedules
//   itself, and await_resume throws coring::cancelled.
// Coroutines are only ever scheduled on the loop, never resumed inline from
// set()/release()/push(): no re-entrancy, no stack growth.

#include <coring/detail/assert.hpp>
#include <coring/detail/introspection.hpp>
#include <coring/detail/task_node.hpp>
#include <coring/error.hpp>
#include <coring/detail/loop_access.hpp>
#include <coring/event_loop.hpp>
#include <coring/task.hpp>

#include <coroutine>
#include <cstddef>
#include <string>

namespace coring::detail {

/// The links of a wait_list entry (and of the list's sentinel).
struct wait_link {
  wait_link* prev = nullptr;  // previous entry, or the sentinel
  wait_link* next = nullptr;  // next entry, or the sentinel
};

class wait_list;

/// Base of every awaiter that may suspend on a one-loop primitive.
class sync_waiter : public wait_link, public cancel_hook {
 public:
  /// How the wait ended (pending: not yet, or cancelled).
  enum class outcome : unsigned char { pending, granted, closed };

  sync_waiter() noexcept : cancel_hook{&on_cancel} {}
  sync_waiter(const sync_waiter&) = delete;
  sync_waiter& operator=(const sync_waiter&) = delete;
  /// A frame destroyed while it waits (a leaked task at loop shutdown) must
  /// not leave a dangling entry behind.
  inline ~sync_waiter();

 protected:
  /// Records the awaiting task's node; true if a cancellation is pending, in
  /// which case await_suspend returns false and await_resume throws.
  template <class P>
  bool begin_wait(std::coroutine_handle<P> h) noexcept {
    node_ = node_of(h);
    return node_ && node_->cancel_requested;
  }
  /// Marks the wait satisfied without suspending.
  void grant_inline() noexcept { outcome_ = outcome::granted; }
  /// Ends the wait as closed without suspending.
  void close_inline() noexcept { outcome_ = outcome::closed; }
  /// Suspends in `list` (at its back) until granted, closed or cancelled.
  inline void park(wait_list& list, std::coroutine_handle<> h);
  /// How the wait ended.
  [[nodiscard]] outcome result() const noexcept { return outcome_; }
  /// Throws what a wait that was neither granted nor closed ends with.
  [[noreturn]] void throw_cancelled() const {
    throw_if_cancel_requested(node_);
    // Unreachable in the protocol (only a cancellation ends a wait that way);
    // still never return as if the permit/lock/value had been handed over.
    throw cancelled{};
  }

 private:
  friend class wait_list;

  /// Called by the primitive, after it unlinked us: we are done waiting.
  void wake(outcome o) noexcept {
    CORING_ASSERT(event_loop::current() == loop_,
                  "a coring sync primitive was used from a loop other than its waiters'");
    outcome_ = o;
    if (node_ && node_->leaf == this) node_->leaf = nullptr;
    loop_access::schedule(*loop_, handle_);
  }
  inline static void on_cancel(cancel_hook* hook) noexcept;
  // For dump_tasks(): the primitive's type is not known here, only its queue.
  inline static void describe(const cancel_hook& c, leaf_report& out);
  static inline const bool described_ = register_leaf(&on_cancel, &describe);

  std::coroutine_handle<> handle_;     // the suspended coroutine
  event_loop* loop_ = nullptr;         // whose ready queue resumes it
  task_node* node_ = nullptr;          // cancellation state of the waiter (null: foreign coroutine)
  wait_list* list_ = nullptr;          // the list we are linked in, or null
  outcome outcome_ = outcome::pending; // set once, by whoever ends the wait
};

/// Intrusive FIFO of sync_waiters (circular, with a sentinel). Not movable:
/// the entries point at the sentinel.
class wait_list {
 public:
  wait_list() noexcept { head_.prev = head_.next = &head_; }
  wait_list(const wait_list&) = delete;
  wait_list& operator=(const wait_list&) = delete;

  [[nodiscard]] bool empty() const noexcept { return head_.next == &head_; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  /// The longest-waiting entry. **Requires:** !empty().
  [[nodiscard]] sync_waiter& front() noexcept {
    CORING_ASSERT(!empty(), "wait_list::front on an empty list");
    return *static_cast<sync_waiter*>(head_.next);
  }

  /// Unlinks the front entry and schedules it with outcome `o`.
  void wake_front(sync_waiter::outcome o) noexcept {
    sync_waiter& w = front();
    erase(w);
    w.wake(o);
  }
  /// Wakes every entry, in FIFO order, with outcome `o`.
  void wake_all(sync_waiter::outcome o) noexcept {
    while (!empty()) wake_front(o);
  }

 private:
  friend class sync_waiter;

  void push_back(sync_waiter& w) noexcept {
    w.prev = head_.prev;
    w.next = &head_;
    head_.prev->next = &w;
    head_.prev = &w;
    w.list_ = this;
    ++size_;
  }
  void erase(sync_waiter& w) noexcept {
    w.prev->next = w.next;
    w.next->prev = w.prev;
    w.prev = w.next = nullptr;
    w.list_ = nullptr;
    --size_;
  }

  wait_link head_;        // sentinel: head_.next is the front, head_.prev the back
  std::size_t size_ = 0;  // number of entries
};

inline sync_waiter::~sync_waiter() {
  if (list_) list_->erase(*this);
}

inline void sync_waiter::park(wait_list& list, std::coroutine_handle<> h) {
  handle_ = h;
  loop_ = event_loop::current();
  CORING_ASSERT(loop_, "waiting on a coring sync primitive needs an event loop on this thread");
  list.push_back(*this);
  if (node_) node_->leaf = this;
}

inline void sync_waiter::describe(const cancel_hook& c, leaf_report& out) {
  const auto& self = static_cast<const sync_waiter&>(c);
  out.what = "waiting on an event, semaphore, queue or mutex";
  if (self.list_) out.what += " (" + std::to_string(self.list_->size()) + " waiting)";
  out.frame = self.handle_;
}

inline void sync_waiter::on_cancel(cancel_hook* hook) noexcept {
  // request_cancel already cleared node_->leaf. The primitive never sees us
  // again: a later grant goes to the next waiter.
  auto* self = static_cast<sync_waiter*>(hook);
  if (self->list_) self->list_->erase(*self);
  loop_access::schedule(*self->loop_, self->handle_);
}

}  // namespace coring::detail
