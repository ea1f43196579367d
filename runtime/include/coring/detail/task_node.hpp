#pragma once
// The state every task frame carries for cancellation and ownership. Internal.
//
// A *spawned* task (spawn, gather's children, wait_for's child, ...) owns a
// task_node; a task that is simply awaited runs under its awaiter's node, so a
// whole await chain shares one node and one cancellation state, like one
// asyncio Task. Leaf operations (a sleep, a ring read, a semaphore wait)
// register a cancel_hook in the node while they are suspended; cancel() fires it.

#include <coroutine>
#include <cstdint>
#include <exception>

namespace coring {
class event_loop;
}

namespace coring::detail {

/// Something a task is suspended in that can be told to give up at once.
/// `fire` must make the suspended coroutine ready through the loop
/// (schedule it, or let a completion schedule it) and never resume it inline:
/// callers may be iterating over tasks.
struct cancel_hook {
  void (*fire)(cancel_hook* self) noexcept = nullptr;
};

struct promise_base;

/// Told when a spawned task ends; returns the coroutine to transfer to
/// (std::noop_coroutine() for none). Runs on the loop thread inside the
/// task's final suspend: it must not destroy the finished frame.
using done_callback = std::coroutine_handle<> (*)(void* ctx, promise_base& finished) noexcept;

struct task_node {
  cancel_hook* leaf = nullptr;        // the cancellable operation the task is suspended in, if any
  done_callback on_done = nullptr;    // who is told when the task ends (null: nobody waits yet)
  void* on_done_ctx = nullptr;        // argument for on_done (an awaited frame keeps its continuation here)
  std::uint32_t live_index = 0;       // slot in the owning loop's table of live spawned tasks
  bool live : 1 = false;              // that slot is ours
  bool named : 1 = false;             // has an entry in the name table (task_name())
  bool cancel_requested : 1 = false;  // cancel() was called and not yet delivered as coring::cancelled
  bool done : 1 = false;              // the body has ended; a value or an error is stored
  bool detached : 1 = false;          // no owner: the frame frees itself when it ends
  bool ended_cancelled : 1 = false;   // the body ended by coring::cancelled
  bool retrieved : 1 = false;         // the result was taken (or the task was cancelled by its owner)
};

/// Asks the task to stop at its next (or current) suspension point: marks
/// it and fires the hook of the operation it is suspended in, if any.
/// Idempotent; a finished task is left alone. Hooks that cancel further
/// tasks (a combinator's children, a joined task) do not recurse: they are
/// queued and fired by the outermost call, so cancelling a tree a million
/// levels deep uses constant stack.
void request_cancel(task_node& n) noexcept;

/// If cancellation is pending on `n` (may be null), takes it (it is
/// delivered once) and returns true. A leaf whose operation ended *because*
/// of the cancellation calls this before it throws coring::cancelled.
inline bool consume_cancel(task_node* n) noexcept {
  if (n == nullptr || !n->cancel_requested) return false;
  n->cancel_requested = false;
  return true;
}

/// Names are kept aside (most tasks have none, and a million sleeping tasks
/// should not each carry a pointer for it). Loop thread only.
void set_task_name(task_node& n, const char* name);
/// The name given at spawn, or "unnamed task".
const char* task_name(const task_node& n) noexcept;
/// Forgets the name when the frame goes away.
void drop_task_name(task_node& n) noexcept;

/// If cancellation is pending on `n`, consumes it and throws coring::cancelled.
void throw_if_cancel_requested(task_node* n);

}  // namespace coring::detail
