#pragma once
// spawn: start a task that runs on its own (asyncio.create_task, tokio::spawn).
//
//   auto h = coring::spawn(worker(), "worker");   // starts on the next loop step
//   ...
//   int v = co_await h;                           // join: value or exception
//   h.cancel();                                   // or stop it
//
// A spawned task is scheduled at once and runs concurrently with its spawner.
// Dropping the join_handle detaches the task: it runs to its end, and an
// exception it ends with is reported to the loop's exception handler (printed
// to stderr by default) instead of being lost.

#include <coring/detail/introspection.hpp>
#include <coring/event_loop.hpp>
#include <coring/task.hpp>

#include <coroutine>
#include <string>
#include <utility>

namespace coring {

template <class T>
class join_handle;

/// Starts `t` on the current loop and returns its join handle. `name`
/// (static storage, e.g. a literal) appears in error reports.
/// **Requires:** a loop exists on this thread.
template <class T>
[[nodiscard]] join_handle<T> spawn(task<T> t, const char* name = nullptr);

/// Owner of a spawned task: await it to get its result, cancel() it, or drop
/// it to let the task run detached.
template <class T>
class [[nodiscard]] join_handle {
 public:
  using handle_type = std::coroutine_handle<detail::promise<T>>;

  /// An empty handle.
  join_handle() noexcept = default;
  explicit join_handle(handle_type h) noexcept : h_(h) {}
  join_handle(join_handle&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  join_handle& operator=(join_handle&& o) noexcept {
    if (this != &o) {
      detach();
      h_ = std::exchange(o.h_, {});
    }
    return *this;
  }
  join_handle(const join_handle&) = delete;
  join_handle& operator=(const join_handle&) = delete;
  /// Detaches (see detach()).
  ~join_handle() { detach(); }

  /// Asks the task to stop: it ends with coring::cancelled at its current or
  /// next suspension point (an operation in the ring is cancelled there).
  /// A finished task is left alone. Idempotent.
  void cancel() noexcept {
    if (h_) detail::request_cancel(h_.promise().own_node_);
  }
  /// True once the task has ended.
  [[nodiscard]] bool done() const noexcept { return h_ && h_.promise().own_node_.done; }
  /// True if the handle owns a task.
  [[nodiscard]] bool valid() const noexcept { return static_cast<bool>(h_); }
  /// Lets the task run on without an owner; an exception it ends with goes
  /// to the loop's exception handler.
  void detach() noexcept {
    if (h_) {
      handle_type h = std::exchange(h_, {});
      detail::release_spawned(h.promise(), h.address());
    }
  }

  /// The result of a task that has ended: its value, or its exception rethrown.
  /// **Requires:** done().
  decltype(auto) get() {
    CORING_ASSERT(done(), "join_handle::get() on a task that has not ended");
    return detail::take_spawned(h_);
  }

  /// Waits for the task to end; gives its value or rethrows its exception.
  /// **Cancellation:** cancelling the awaiting task cancels the joined one
  /// (as in asyncio) and still waits for it to end.
  /// **Requires:** awaited at most once.
  auto operator co_await() noexcept { return awaiter{h_}; }

 private:
  struct awaiter : detail::cancel_hook {
    handle_type child;
    std::coroutine_handle<> parent{};
    detail::task_node* parent_node = nullptr;
    bool propagated = false;  // the joiner's cancellation was passed to the child

    explicit awaiter(handle_type c) noexcept : detail::cancel_hook{&on_cancel}, child(c) {}

    bool await_ready() const noexcept {
      CORING_ASSERT(child, "awaiting an empty join_handle");
      return child.promise().own_node_.done;
    }
    template <class P>
    void await_suspend(std::coroutine_handle<P> h) noexcept {
      detail::task_node& cn = child.promise().own_node_;
      CORING_ASSERT(!cn.on_done, "a join_handle was awaited twice at once");
      (void)&described_;  // registers this instantiation with dump_tasks()
      parent = h;
      parent_node = detail::node_of(h);
      cn.on_done = &on_done;
      cn.on_done_ctx = this;
      if (parent_node) {
        if (parent_node->cancel_requested) {
          propagated = true;
          detail::request_cancel(cn);
        }
        parent_node->leaf = this;
      }
    }
    decltype(auto) await_resume() {
      detail::task_node& cn = child.promise().own_node_;
      CORING_ASSERT(!cn.retrieved, "a join_handle was awaited twice");
      cn.on_done = nullptr;
      cn.retrieved = true;
      // The cancellation we passed down came back up: it is delivered now.
      // (If the child was cancelled some other way, ours stays pending.)
      if (cn.ended_cancelled && propagated && parent_node) parent_node->cancel_requested = false;
      return child.promise().take();
    }
    static std::coroutine_handle<> on_done(void* ctx, detail::promise_base&) noexcept {
      auto* self = static_cast<awaiter*>(ctx);
      if (self->parent_node && self->parent_node->leaf == self) self->parent_node->leaf = nullptr;
      return self->parent;
    }
    static void on_cancel(detail::cancel_hook* hook) noexcept {
      auto* self = static_cast<awaiter*>(hook);
      self->propagated = true;
      detail::request_cancel(self->child.promise().own_node_);
    }
    // For dump_tasks(): "join of task 'worker'", and the joined task under it.
    static void describe(const detail::cancel_hook& c, detail::leaf_report& out) {
      const auto& self = static_cast<const awaiter&>(c);
      const detail::task_node& cn = self.child.promise().own_node_;
      out.what = std::string("join of task '") + detail::task_name(cn) + "'";
      out.frame = self.parent;
      out.awaits.push_back(&cn);
    }
    static inline const bool described_ = detail::register_leaf(&on_cancel, &describe);
  };

  handle_type h_;
};

template <class T>
join_handle<T> spawn(task<T> t, const char* name) {
  event_loop* loop = event_loop::current();
  CORING_ASSERT(loop, "coring::spawn needs an event loop on this thread");
  return join_handle<T>(detail::start_spawned(*loop, t, name));
}

}  // namespace coring
