#pragma once
// child_set: the one mechanism under gather, gather_settled, as_completed,
// when_any, wait_for and task_group. Internal.
//
// Each child is a spawned task whose completion is reported to the set (its
// node's on_done), not to a join_handle. The set counts running children,
// applies its policy on each completion (cancel the rest after the first
// failure, or after the first result), queues completion order, and resumes
// the one parent coroutine that waits on it — by symmetric transfer, straight
// from the child's final suspend. Cancelling that parent cancels every child
// and still waits for them: children never outlive the wait.

#include <coring/detail/task_node.hpp>
#include <coring/event_loop.hpp>
#include <coring/spawn.hpp>
#include <coring/task.hpp>

#include <coroutine>
#include <cstddef>
#include <deque>
#include <exception>
#include <vector>

namespace coring::detail {

class child_set {
 public:
  enum class policy : unsigned char {
    settle_all,  // let every child end (gather_settled, as_completed, wait_for)
    fail_fast,   // the first failure cancels the others (gather, task_group)
    first_wins,  // the first child to end cancels the others (when_any)
  };
  static constexpr std::size_t npos = ~std::size_t{0};

  class wait_operation;

  /// `discard`: free each child's frame as soon as it ends, keeping only the
  /// first failure (task_group); otherwise frames live until the set dies so
  /// that their results can be taken.
  explicit child_set(policy p, bool discard = false) noexcept : policy_(p), discard_(discard) {}
  child_set(const child_set&) = delete;
  child_set& operator=(const child_set&) = delete;
  /// Frees ended children; cancels and detaches running ones.
  ~child_set();

  /// Starts `t` as a child on the current loop.
  template <class T>
  std::coroutine_handle<promise<T>> add(task<T>&& t, const char* name = nullptr);

  /// Asks every running child to stop.
  void cancel_all() noexcept;
  [[nodiscard]] std::size_t running() const noexcept { return running_; }
  /// First failure (fail_fast) or first ended child (first_wins), by index; npos if none.
  [[nodiscard]] std::size_t decisive() const noexcept { return decisive_; }
  /// The first failure that was not a cancellation (discard mode keeps it here).
  [[nodiscard]] const std::exception_ptr& first_error() const noexcept { return first_error_; }
  /// Indices of ended children not yet popped, oldest first.
  [[nodiscard]] bool has_completed() const noexcept { return !completed_.empty(); }
  std::size_t pop_completed() noexcept {
    std::size_t i = completed_.front();
    completed_.pop_front();
    return i;
  }
  /// The promise of child `i` (not in discard mode).
  [[nodiscard]] promise_base& child(std::size_t i) noexcept { return *records_[i].promise; }

  /// Resumes when no child is running.
  [[nodiscard]] wait_operation wait_all() noexcept;
  /// Resumes when an ended child is waiting to be popped.
  [[nodiscard]] wait_operation wait_next() noexcept;

 private:
  struct record {
    child_set* set;          // the owner
    promise_base* promise;   // the child's promise; null once its frame is freed
    void* frame;             // the child's frame address
    std::size_t index;       // position in records_
  };

  static std::coroutine_handle<> on_child_done(void* ctx, promise_base& p) noexcept;
  void track(promise_base& p, void* frame);

  std::deque<record> records_;        // one per child, stable addresses (on_done_ctx points here)
  std::vector<std::size_t> free_;     // reusable records (discard mode)
  std::deque<std::size_t> completed_; // ended children not yet popped (wait_next)
  wait_operation* waiter_ = nullptr;  // the parent waiting on the set, if any
  std::exception_ptr first_error_;    // first non-cancellation failure
  std::size_t running_ = 0;           // children that have not ended
  std::size_t decisive_ = npos;       // see decisive()
  policy policy_;                     // when to cancel the rest
  bool discard_;                      // free frames as children end
  bool track_order_ = false;          // someone uses wait_next: keep completed_
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
    if (interrupted_) throw_if_cancel_requested(node_);
  }

 private:
  friend class child_set;
  bool done() const noexcept { return next_ ? set_.has_completed() : set_.running_ == 0; }
  static void on_cancel(cancel_hook* c) noexcept {
    auto* self = static_cast<wait_operation*>(c);
    self->interrupted_ = true;
    self->set_.cancel_all();  // the children's ends resume us
  }

  child_set& set_;                  // what we wait on
  std::coroutine_handle<> handle_;  // the waiting parent
  task_node* node_ = nullptr;       // its cancellation state
  bool next_;                       // wait for one completion, not for all
  bool interrupted_ = false;        // the parent was cancelled while waiting
};

inline child_set::wait_operation child_set::wait_all() noexcept { return wait_operation(*this, false); }
inline child_set::wait_operation child_set::wait_next() noexcept {
  track_order_ = true;
  return wait_operation(*this, true);
}

template <class T>
std::coroutine_handle<promise<T>> child_set::add(task<T>&& t, const char* name) {
  event_loop* loop = event_loop::current();
  CORING_ASSERT(loop, "coring combinators need an event loop on this thread");
  auto h = start_spawned(*loop, std::move(t), name);
  track(h.promise(), h.address());
  return h;
}

}  // namespace coring::detail
