#pragma once
// current_task: the task the calling coroutine runs in (asyncio.current_task()).
//
//   coring::task_ref me = co_await coring::current_task();
//   std::printf("running in %s\n", me.name());     // the name given to spawn(), or "unnamed task"
//
// One await chain is one task: a coroutine that is simply awaited runs in
// the task of its awaiter, so current_task() gives the spawned task (or the
// combinator child, or "main") at the root of the chain. Awaiting it never
// suspends.

#include <coring/detail/task_node.hpp>
#include <coring/task.hpp>

#include <coroutine>

namespace coring {

/// A reference to a running task: its name, its cancellation state.
/// Valid while the task runs (inside it, or while you hold its join_handle
/// and it has not ended): it does not keep the task alive.
class task_ref {
 public:
  /// A reference to no task (valid() is false).
  task_ref() noexcept = default;
  explicit task_ref(detail::task_node* n) noexcept : node_(n) {}

  /// False when awaited from a coroutine that is not a coring task.
  [[nodiscard]] bool valid() const noexcept { return node_ != nullptr; }
  /// The name given at spawn (or set_name()), else "unnamed task". **Requires:** valid().
  [[nodiscard]] const char* name() const noexcept { return detail::task_name(*node_); }
  /// Names the task, for error reports and dump_tasks() (asyncio's set_name).
  /// **Requires:** valid(); `name` has static storage (a literal); called on the task's loop thread.
  void set_name(const char* name) { detail::set_task_name(*node_, name); }
  /// Asks the task to stop at its next suspension point, as join_handle::cancel().
  /// **Requires:** valid(); called on the task's loop thread.
  void cancel() noexcept { detail::request_cancel(*node_); }
  /// True if a cancellation was requested and has not been delivered yet (asyncio's cancelling()).
  [[nodiscard]] bool cancelling() const noexcept { return node_ && node_->cancel_requested; }
  /// The task's cancellation state (for coring's own machinery).
  [[nodiscard]] detail::task_node* node() const noexcept { return node_; }

  friend bool operator==(const task_ref&, const task_ref&) noexcept = default;

 private:
  detail::task_node* node_ = nullptr;  // the task's node (a spawned frame's own), or null
};

/// Awaiter of current_task(): never suspends.
class current_task_operation {
 public:
  bool await_ready() const noexcept { return false; }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) noexcept {
    node_ = detail::node_of(h);
    return false;  // resume at once: we only wanted to see whose frame this is
  }
  task_ref await_resume() const noexcept { return task_ref(node_); }

 private:
  detail::task_node* node_ = nullptr;  // the awaiting task's node
};

/// The task the calling coroutine runs in (asyncio.current_task()).
/// **Cancellation:** not a suspension point: a pending cancellation stays pending.
[[nodiscard]] inline current_task_operation current_task() noexcept { return {}; }

}  // namespace coring
