#pragma once
// task<T>: a lazy, move-only coroutine that produces a T (or throws).
//
//   coring::task<int> answer() { co_return 42; }
//   coring::task<> main_task() { int v = co_await answer(); ... }
//
// A task does nothing until it is awaited (or spawned). Awaiting transfers
// control to it directly (symmetric transfer), so a chain of a million nested
// awaits does not grow the stack; when it ends, its awaiter resumes the same
// way. An exception escaping the task is rethrown in its awaiter.

#include <coring/detail/assert.hpp>
#include <coring/detail/frame_allocator.hpp>
#include <coring/detail/task_node.hpp>
#include <coring/error.hpp>

#include <coroutine>
#include <cstddef>
#include <exception>
#include <optional>
#include <type_traits>
#include <utility>

namespace coring {

template <class T = void>
class task;
class event_loop;

namespace detail {

/// The node a coroutine runs under, or null for a foreign coroutine type.
template <class P>
task_node* node_of(std::coroutine_handle<P> h) noexcept;

struct promise_base {
  struct initial_awaiter {
    promise_base* p;
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<>) const noexcept {}
    // A task cancelled before it first ran never runs its body.
    void await_resume() const {
      if (p->node_ && p->node_->cancel_requested) throw_if_cancel_requested(p->node_);
    }
  };

  struct final_awaiter {
    bool await_ready() const noexcept { return false; }
    template <class P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) noexcept {
      promise_base& p = h.promise();
      if (p.node_ != &p.own_node_) {
        CORING_ASSERT(p.own_node_.on_done_ctx, "a task ended that nobody awaited");
        return p.continuation();
      }
      return finish_spawned(p, h.address());
    }
    void await_resume() const noexcept {}
  };

  promise_base() noexcept = default;
  promise_base(const promise_base&) = delete;
  promise_base& operator=(const promise_base&) = delete;
  ~promise_base() {
    if (own_node_.named) drop_task_name(own_node_);
  }

  static void* operator new(std::size_t size) { return allocate_frame(size); }
  static void operator delete(void* p, std::size_t size) noexcept { free_frame(p, size); }

  initial_awaiter initial_suspend() noexcept { return {this}; }
  final_awaiter final_suspend() noexcept { return {}; }
  void unhandled_exception() noexcept;

  /// True when this frame is the root of a spawned task (it owns its node).
  bool spawned() const noexcept { return node_ == &own_node_; }
  /// True once the frame was awaited or spawned.
  bool started() const noexcept { return spawned() || own_node_.on_done_ctx != nullptr; }
  /// The coroutine awaiting this one (plain await). A frame that is awaited
  /// never uses its own node, so the node's context slot holds it: a frame
  /// is one pointer smaller.
  std::coroutine_handle<> continuation() const noexcept {
    return std::coroutine_handle<>::from_address(own_node_.on_done_ctx);
  }
  void set_continuation(std::coroutine_handle<> h) noexcept { own_node_.on_done_ctx = h.address(); }
  /// Rethrows the stored exception, if any.
  void rethrow_if_error() const {
    if (error_) std::rethrow_exception(error_);
  }

  /// Called by final_awaiter for spawned frames: marks the node done and
  /// hands over to whoever waits, or frees a detached frame.
  static std::coroutine_handle<> finish_spawned(promise_base& p, void* frame) noexcept;

  task_node* node_ = nullptr;             // cancellation state this frame runs under
  std::exception_ptr error_;              // what the body threw, if anything
  task_node own_node_;                    // used when this frame is spawned; else holds the continuation
};

template <class T>
struct promise final : promise_base {
  task<T> get_return_object() noexcept;
  template <class U>
    requires std::is_convertible_v<U&&, T>
  void return_value(U&& v) noexcept(std::is_nothrow_constructible_v<T, U&&>) {
    value_.emplace(std::forward<U>(v));
  }
  /// The value, moved out, or the exception rethrown.
  T take() {
    rethrow_if_error();
    return std::move(*value_);
  }
  std::optional<T> value_;  // the result, once returned
};

template <class T>
struct promise<T&> final : promise_base {
  task<T&> get_return_object() noexcept;
  void return_value(T& v) noexcept { value_ = std::addressof(v); }
  T& take() {
    rethrow_if_error();
    return *value_;
  }
  T* value_ = nullptr;
};

template <>
struct promise<void> final : promise_base {
  task<void> get_return_object() noexcept;
  void return_void() noexcept {}
  void take() { rethrow_if_error(); }
};

template <class P>
task_node* node_of(std::coroutine_handle<P> h) noexcept {
  if constexpr (std::is_base_of_v<promise_base, P>) {
    return h.promise().node_;
  } else {
    return nullptr;
  }
}


/// Makes the frame of `p` (handle `h`) a spawned root on `loop` and queues
/// it to run: it gets its own node, is tracked by the loop (shutdown cancels
/// it) and named `name` (static storage, or null). Strong guarantee: if it
/// throws (std::bad_alloc), nothing was changed and the caller still owns
/// an unstarted frame.
void launch_spawned(event_loop& loop, promise_base& p, std::coroutine_handle<> h, const char* name);

/// The owner of a spawned frame lets go: frees it if it has ended (reporting
/// an exception nobody looked at), else lets it free itself when it ends.
void release_spawned(promise_base& p, void* frame) noexcept;

}  // namespace detail

/// A lazy coroutine producing T. Move-only; destroying an unstarted task frees it.
template <class T>
class [[nodiscard]] task {
 public:
  using promise_type = detail::promise<T>;
  using value_type = T;
  using handle_type = std::coroutine_handle<promise_type>;

  /// An empty task (valid() is false); only useful as a moved-to target.
  task() noexcept = default;
  task(task&& other) noexcept : h_(std::exchange(other.h_, {})) {}
  task& operator=(task&& other) noexcept {
    if (this != &other) {
      if (h_) h_.destroy();
      h_ = std::exchange(other.h_, {});
    }
    return *this;
  }
  task(const task&) = delete;
  task& operator=(const task&) = delete;
  ~task() {
    if (h_) h_.destroy();
  }

  /// True if the task holds a coroutine.
  [[nodiscard]] bool valid() const noexcept { return static_cast<bool>(h_); }

  /// Runs the task to its end and gives its value or rethrows its exception.
  /// **Cancellation:** the task runs under the awaiter's cancellation state:
  /// cancelling the awaiter cancels it.
  /// **Requires:** the task is valid and has not been awaited before.
  auto operator co_await() && noexcept { return awaiter{h_}; }
  /// Same as awaiting the rvalue; the task object stays owner of the frame.
  auto operator co_await() & noexcept { return awaiter{h_}; }

  /// Gives up ownership of the frame (for spawn and the combinators).
  handle_type release() noexcept { return std::exchange(h_, {}); }
  /// The frame, still owned by this task.
  [[nodiscard]] handle_type handle() const noexcept { return h_; }

 private:
  friend struct detail::promise<T>;
  explicit task(handle_type h) noexcept : h_(h) {}

  struct awaiter {
    handle_type child;
    bool await_ready() const noexcept { return false; }
    template <class P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> parent) noexcept {
      CORING_ASSERT(child, "awaiting an empty task");
      auto& p = child.promise();
      CORING_ASSERT(!p.started(), "a task was awaited twice");
      p.set_continuation(parent);
      p.node_ = detail::node_of(parent);
      return child;
    }
    decltype(auto) await_resume() { return child.promise().take(); }
  };

  handle_type h_;
};

namespace detail {
template <class T>
task<T> promise<T>::get_return_object() noexcept {
  return task<T>(std::coroutine_handle<promise<T>>::from_promise(*this));
}
template <class T>
task<T&> promise<T&>::get_return_object() noexcept {
  return task<T&>(std::coroutine_handle<promise<T&>>::from_promise(*this));
}
inline task<void> promise<void>::get_return_object() noexcept {
  return task<void>(std::coroutine_handle<promise<void>>::from_promise(*this));
}

/// Starts `t` as a spawned root on `loop` (see launch_spawned) and gives its
/// frame to the caller, who must release_spawned() it. If this throws, `t`
/// still owns the frame and frees it.
template <class T>
std::coroutine_handle<promise<T>> start_spawned(event_loop& loop, task<T>& t, const char* name) {
  CORING_ASSERT(t.valid(), "spawning an empty task");
  auto h = t.handle();
  CORING_ASSERT(!h.promise().started(), "spawning a task that was already started");
  launch_spawned(loop, h.promise(), h, name);
  return t.release();
}

/// The result of an ended spawned frame: its value, or its exception
/// rethrown; marks it retrieved (so it is not reported as lost).
template <class T>
decltype(auto) take_spawned(std::coroutine_handle<promise<T>> h) {
  h.promise().own_node_.retrieved = true;
  return h.promise().take();
}
}  // namespace detail

}  // namespace coring
