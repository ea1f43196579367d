#pragma once
// child_set: the one mechanism under gather, gather_settled, as_completed,
// when_any, wait_for and task_group. Internal.
//
// Each child is a spawned task whose completion is reported to the set (its
// node's on_done), not to a join_handle. The set counts running children,
// applies its policy on each completion (cancel the rest after the first
// failure, or after the first result), keeps the completion order, and
// resumes the one parent coroutine that waits on it — by symmetric transfer,
// straight from the child's final suspend. Cancelling that parent cancels
// every child and still waits for them.
//
// The owner must wait until no child runs before the set dies (every
// combinator does, on every path: its public form is a coroutine that
// returns only after wait_all()); the destructor asserts it. Records live in
// storage the owner gives (an array in its frame), in one allocation made up
// front, or, for a set that grows (task_group), in chunks that are reused.

#include <coring/detail/assert.hpp>
#include <coring/detail/introspection.hpp>
#include <coring/detail/loop_access.hpp>
#include <coring/detail/task_node.hpp>
#include <coring/event_loop.hpp>
#include <coring/outcome.hpp>
#include <coring/task.hpp>

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <span>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

namespace coring::detail {

class child_set;

/// What a combinator yields for a task<T>: T, or std::monostate for void.
template <class T>
using result_t = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

/// One child of a child_set: how the child's end finds the set, and the
/// child's frame until its result is taken.
struct child_record {
  child_set* set = nullptr;            // the owner
  promise_base* promise = nullptr;     // the child's promise; null once its frame is freed
  void* frame = nullptr;               // the child's frame address
  child_record* next_done = nullptr;   // completion FIFO link, or free-list link
  std::size_t index = 0;               // position in the set
  bool keep = true;                    // false: free the frame as soon as the child ends
};

class child_set {
 public:
  enum class policy : unsigned char {
    settle_all,  // let every child end (gather_settled, as_completed, wait_for)
    fail_fast,   // the first failure cancels the others (gather, task_group)
    first_wins,  // the first child to end cancels the others (when_any)
  };
  static constexpr std::size_t npos = ~std::size_t{0};

  class wait_operation;

  /// At most storage.size() children, recorded in `storage` (owned by the caller).
  child_set(policy p, std::span<child_record> storage) noexcept
      : storage_(storage.data()), capacity_(storage.size()), policy_(p) {}
  /// At most `capacity` children, recorded in one allocation.
  child_set(policy p, std::size_t capacity)
      : owned_(std::make_unique<child_record[]>(capacity)), storage_(owned_.get()), capacity_(capacity), policy_(p) {}
  /// Any number of children (task_group): records come in chunks and are reused.
  explicit child_set(policy p) noexcept : policy_(p) {}
  child_set(const child_set&) = delete;
  child_set& operator=(const child_set&) = delete;
  /// Frees the ended children's frames; an error nobody took goes to the
  /// loop's exception handler. **Requires:** no child is running.
  ~child_set();

  /// Starts `t` as a child on the current loop. With `keep` false its frame
  /// is freed when it ends (only a failure is kept, in first_error()).
  /// Strong guarantee: if this throws, `t` is unchanged and the set too.
  template <class T>
  std::size_t add(task<T>&& t, bool keep = true);

  /// Adds every task, in order. If one cannot be started (std::bad_alloc),
  /// cancels those that were and returns the error: the caller still waits
  /// (wait_all) before it rethrows it, so no child outlives it.
  template <class... Ts>
  [[nodiscard]] std::exception_ptr start(task<Ts>&&... tasks) noexcept;
  template <class T>
  [[nodiscard]] std::exception_ptr start(std::vector<task<T>>& tasks) noexcept;

  /// Asks every running child to stop.
  void cancel_all() noexcept;
  /// Asks child `i` to stop.
  void cancel_child(std::size_t i) noexcept { request_cancel(record(i).promise->own_node_); }
  [[nodiscard]] std::size_t running() const noexcept { return running_; }
  /// Children added so far.
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  /// First failure (fail_fast) or first ended child (first_wins), by index; npos if none.
  [[nodiscard]] std::size_t decisive() const noexcept { return decisive_; }
  /// The first failure that was not a cancellation.
  [[nodiscard]] const std::exception_ptr& first_error() const noexcept { return first_error_; }
  /// True if an ended child is waiting to be popped (wait_next order).
  [[nodiscard]] bool has_completed() const noexcept { return done_head_ != nullptr; }
  /// The index of the oldest ended child not yet popped. **Requires:** has_completed().
  std::size_t pop_completed() noexcept;

  /// Child `i`'s value (monostate for void), or its exception rethrown.
  /// **Requires:** the child has ended and was added with keep.
  template <class T>
  result_t<T> take(std::size_t i);
  /// Child `i`'s result as an outcome. **Requires:** as take().
  template <class T>
  outcome<T> settle(std::size_t i);
  /// True if child `i` ended by coring::cancelled. **Requires:** as take().
  [[nodiscard]] bool ended_cancelled(std::size_t i) noexcept;
  /// True while child `i` runs.
  [[nodiscard]] bool is_running(std::size_t i) noexcept {
    return i < size_ && record(i).promise && !record(i).promise->own_node_.done;
  }
  /// Child `i`'s exception (null if it ended with a value). **Requires:** as take().
  [[nodiscard]] const std::exception_ptr& error_of(std::size_t i) noexcept { return record(i).promise->error_; }
  /// Rethrows child `i`'s exception. **Requires:** as take(), and it failed.
  [[noreturn]] void rethrow(std::size_t i);

  /// Resumes when no child is running.
  [[nodiscard]] wait_operation wait_all() noexcept;
  /// Resumes when an ended child is waiting to be popped. **Requires:** keep_order().
  [[nodiscard]] wait_operation wait_next() noexcept;
  /// Keeps the completion order of the children for wait_next(); call before adding any.
  void keep_order() noexcept { track_order_ = true; }

 private:
  static constexpr std::size_t chunk = 32;  // records per chunk of a growing set

  static std::coroutine_handle<> on_child_done(void* ctx, promise_base& p) noexcept;
  child_record& record(std::size_t i) noexcept {
    return storage_ ? storage_[i] : chunks_[i / chunk][i % chunk];
  }
  child_record& new_record();
  void undo_record(child_record& r) noexcept;
  void track(child_record& r, promise_base& p, void* frame, bool keep) noexcept;

  std::unique_ptr<child_record[]> owned_;               // records of a fixed set we allocated
  child_record* storage_ = nullptr;                     // records of a fixed set, or null for a growing one
  std::size_t capacity_ = 0;                            // size of storage_
  std::vector<std::unique_ptr<child_record[]>> chunks_; // records of a growing set
  child_record* free_ = nullptr;                        // reusable records of a growing set
  std::size_t size_ = 0;                                // records handed out (indices below this exist)
  child_record* done_head_ = nullptr;                   // ended children not yet popped, oldest first
  child_record* done_tail_ = nullptr;
  wait_operation* waiter_ = nullptr;                    // the parent waiting on the set, if any
  std::exception_ptr first_error_;                      // first non-cancellation failure
  std::size_t running_ = 0;                             // children that have not ended
  std::size_t decisive_ = npos;                         // see decisive()
  policy policy_;                                       // when to cancel the rest
  bool track_order_ = false;                            // someone uses wait_next: keep the done list
};

class child_set::wait_operation : cancel_hook {
 public:
  wait_operation(child_set& s, bool next) noexcept : cancel_hook{&on_cancel}, set_(s), next_(next) {}
  bool await_ready() const noexcept { return done(); }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) noexcept {
    handle_ = h;
    node_ = node_of(h);
    if (node_ && node_->cancel_requested) {
      interrupted_ = true;
      set_.cancel_all();
    } else if (node_) {
      node_->leaf = this;
    }
    set_.waiter_ = this;
    return true;
  }
  void await_resume() {
    // The cancellation that interrupted us is delivered here, once; if the
    // set ended meanwhile for another reason, it still is (the children
    // were cancelled on its account).
    if (interrupted_ && consume_cancel(node_)) throw cancelled{};
  }

 private:
  friend class child_set;
  bool done() const noexcept { return next_ ? set_.has_completed() : set_.running_ == 0; }
  static void on_cancel(cancel_hook* c) noexcept {
    auto* self = static_cast<wait_operation*>(c);
    self->interrupted_ = true;
    self->set_.cancel_all();  // the children's ends resume us
  }
  // For dump_tasks(): "a child set of 3", and the children still running under it.
  static void describe(const cancel_hook& c, leaf_report& out) {
    const auto& self = static_cast<const wait_operation&>(c);
    child_set& s = self.set_;
    out.what = "a child set of " + std::to_string(s.running_) +
               " (gather, when_any, as_completed, task_group, timeout or wait_for)";
    for (std::size_t i = 0; i < s.size_; ++i) {
      const child_record& r = s.record(i);
      if (r.promise && !r.promise->own_node_.done) out.awaits.push_back(&r.promise->own_node_);
    }
    out.frame = self.handle_;
  }
  static inline const bool described_ = register_leaf(&on_cancel, &describe);

  child_set& set_;                  // what we wait on
  std::coroutine_handle<> handle_;  // the waiting parent
  task_node* node_ = nullptr;       // its cancellation state
  bool next_;                       // wait for one completion, not for all
  bool interrupted_ = false;        // the parent was cancelled while waiting
};

inline child_set::wait_operation child_set::wait_all() noexcept { return wait_operation(*this, false); }
inline child_set::wait_operation child_set::wait_next() noexcept {
  CORING_ASSERT(track_order_, "child_set::wait_next without keep_order()");
  return wait_operation(*this, true);
}

template <class T>
std::size_t child_set::add(task<T>&& t, bool keep) {
  event_loop* loop = event_loop::current();
  CORING_ASSERT(loop, "coring combinators need an event loop on this thread");
  child_record& r = new_record();
  try {
    auto h = start_spawned(*loop, t, nullptr);
    track(r, h.promise(), h.address(), keep);
  } catch (...) {
    undo_record(r);
    throw;
  }
  return r.index;
}

template <class... Ts>
std::exception_ptr child_set::start(task<Ts>&&... tasks) noexcept {
  try {
    (add(std::move(tasks)), ...);
    return nullptr;
  } catch (...) {
    cancel_all();
    return std::current_exception();
  }
}

template <class T>
std::exception_ptr child_set::start(std::vector<task<T>>& tasks) noexcept {
  try {
    for (auto& t : tasks) add(std::move(t));
    std::vector<task<T>>().swap(tasks);  // the moved-from shells are not needed while we wait
    return nullptr;
  } catch (...) {
    cancel_all();
    return std::current_exception();
  }
}

template <class T>
result_t<T> child_set::take(std::size_t i) {
  child_record& r = record(i);
  CORING_ASSERT(r.promise && r.promise->own_node_.done, "child_set::take of a child that has not ended");
  auto& p = static_cast<promise<T>&>(*r.promise);
  p.own_node_.retrieved = true;
  if constexpr (std::is_void_v<T>) {
    p.take();
    return {};
  } else {
    return p.take();
  }
}

template <class T>
outcome<T> child_set::settle(std::size_t i) {
  child_record& r = record(i);
  CORING_ASSERT(r.promise && r.promise->own_node_.done, "child_set::settle of a child that has not ended");
  auto& p = static_cast<promise<T>&>(*r.promise);
  p.own_node_.retrieved = true;
  if (p.error_) return outcome<T>(p.error_);
  if constexpr (std::is_void_v<T>) {
    return outcome<void>();
  } else {
    return outcome<T>(std::move(*p.value_));
  }
}

}  // namespace coring::detail
