#pragma once
// shield: let a task finish even if the one awaiting it is cancelled
// (asyncio.shield, a trio shielded cancel scope).
//
//   co_await coring::shield(save_state(db));   // runs to its end, cancelled or not
//
// The shielded task runs as a child of the awaiting one. Cancelling the
// awaiter does not reach it: the awaiter keeps waiting until the child has
// ended, and only then sees its cancellation (coring::cancelled). So, unlike
// asyncio's shield, the child never outlives the scope that started it — and
// the awaiter may lend it references. A deadline (timeout, wait_for) around
// a shield is a cancellation like any other: it waits for the child too.

#include <coring/current_task.hpp>
#include <coring/detail/assert.hpp>
#include <coring/detail/introspection.hpp>
#include <coring/detail/loop_access.hpp>
#include <coring/detail/task_node.hpp>
#include <coring/error.hpp>
#include <coring/event_loop.hpp>
#include <coring/task.hpp>

#include <coroutine>
#include <exception>
#include <type_traits>
#include <utility>

namespace coring {

namespace detail {

/// Awaits the end of a spawned frame without passing a cancellation on.
class shielded_join : cancel_hook {
 public:
  explicit shielded_join(promise_base& child) noexcept : cancel_hook{&on_cancel}, child_(child) {}
  bool await_ready() const noexcept { return child_.own_node_.done; }
  template <class P>
  void await_suspend(std::coroutine_handle<P> h) noexcept {
    parent_ = h;
    parent_node_ = node_of(h);
    child_.own_node_.on_done = &on_done;
    child_.own_node_.on_done_ctx = this;
    if (parent_node_) parent_node_->leaf = this;
  }
  void await_resume() noexcept {}

 private:
  static std::coroutine_handle<> on_done(void* ctx, promise_base&) noexcept {
    auto* self = static_cast<shielded_join*>(ctx);
    if (self->parent_node_ && self->parent_node_->leaf == self) self->parent_node_->leaf = nullptr;
    return self->parent_;
  }
  // The awaiter was cancelled: the request stays pending on it (delivered
  // after the child ends); the child is left alone. Its end resumes us.
  static void on_cancel(cancel_hook*) noexcept {}
  // For dump_tasks(): "shield", and the shielded task under it.
  static void describe(const cancel_hook& c, leaf_report& out) {
    const auto& self = static_cast<const shielded_join&>(c);
    out.what = "shield (the task under it runs on if this one is cancelled)";
    out.frame = self.parent_;
    out.awaits.push_back(&self.child_.own_node_);
  }
  static inline const bool described_ = register_leaf(&on_cancel, &describe);

  promise_base& child_;               // the shielded task
  std::coroutine_handle<> parent_;    // the awaiting coroutine
  task_node* parent_node_ = nullptr;  // its cancellation state
};

}  // namespace detail

/// Runs `t` to its end even if the awaiting task is cancelled meanwhile;
/// gives its value or rethrows its exception.
/// **Cancellation:** a cancellation of the awaiter does not reach `t`; it is
/// delivered once `t` has ended: shield then throws coring::cancelled (an
/// error `t` ended with is reported to the loop's exception handler, its
/// value is dropped). A cancellation pending before shield starts means `t`
/// never starts.
/// **Errors:** what `t` throws; std::bad_alloc if it cannot be started.
template <class T>
[[nodiscard]] task<T> shield(task<T> t) {
  event_loop* loop = event_loop::current();
  CORING_ASSERT(loop, "coring::shield needs an event loop on this thread");
  auto h = detail::start_spawned(*loop, t, "shielded task");
  struct owner {
    decltype(h) frame;
    ~owner() { detail::release_spawned(frame.promise(), frame.address()); }
  } own{h};
  co_await detail::shielded_join(h.promise());
  // The cancellation that came while we waited is ours to deliver now.
  task_ref self = co_await current_task();
  detail::throw_if_cancel_requested(self.node());
  if constexpr (std::is_void_v<T>) {
    detail::take_spawned(h);
  } else {
    co_return detail::take_spawned(h);
  }
}

}  // namespace coring
