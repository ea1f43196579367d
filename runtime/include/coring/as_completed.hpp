#pragma once
// as_completed: task results in the order the tasks finish (asyncio.as_completed),
// consumed inside a scope that always cancels and awaits what is left.
//
//   co_await coring::as_completed(std::move(tasks), [&](auto& results) -> coring::task<> {
//     while (!results.done()) {
//       try {
//         int v = co_await results.next();       // fastest first
//         if (v > 10) break;                      // the rest are cancelled and awaited
//       } catch (const std::exception& e) { ... } // a failed task, at its turn
//     }
//   });
//
// The tasks start when as_completed is awaited and run concurrently on the
// loop. The body consumes results as they come; when it ends — having taken
// every result, by `break`, by an exception, or because the caller was
// cancelled — the tasks still running are cancelled and awaited before
// as_completed returns, so none outlives the frame that started it.
// (For futures of a thread or process pool, as_completed_indices() in
// <coring/future_as_completed.hpp> gives indices instead: the jobs are not
// children of anyone, and each value is taken from its own future.)

#include <coring/detail/child_set.hpp>
#include <coring/task.hpp>

#include <cstddef>
#include <exception>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

namespace coring {

/// The results of as_completed's tasks, in completion order. Lives only
/// inside as_completed's body.
template <class T>
class as_completed_stream {
 public:
  class next_operation;

  as_completed_stream(const as_completed_stream&) = delete;
  as_completed_stream& operator=(const as_completed_stream&) = delete;

  /// Results not yet taken.
  [[nodiscard]] std::size_t remaining() const noexcept { return remaining_; }
  /// True once every result was taken.
  [[nodiscard]] bool done() const noexcept { return remaining_ == 0; }
  /// The input position of the task whose result (or error) next() gave last.
  [[nodiscard]] std::size_t last_index() const noexcept { return last_; }

  /// The result of the next task to finish: its value, or its exception
  /// rethrown (the stream goes on after it).
  /// **Cancellation:** cancelling the awaiter cancels the remaining tasks
  /// and throws coring::cancelled once they have ended.
  /// **Requires:** !done(); one next() awaited at a time.
  [[nodiscard]] next_operation next() noexcept {
    CORING_ASSERT(remaining_ > 0, "as_completed: next() after every result was taken");
    return next_operation(*this);
  }

 private:
  template <class U, class Body>
  friend auto as_completed(std::vector<task<U>> tasks, Body body)
      -> std::invoke_result_t<Body&, as_completed_stream<U>&>;

  explicit as_completed_stream(std::size_t n) : set_(detail::child_set::policy::settle_all, n), remaining_(n) {
    set_.keep_order();
  }

  detail::child_set set_;                    // the running tasks
  std::size_t remaining_;                    // results not yet taken
  std::size_t last_ = detail::child_set::npos;  // see last_index()
};

/// Awaiter of as_completed_stream::next(): no allocation.
template <class T>
class as_completed_stream<T>::next_operation {
 public:
  explicit next_operation(as_completed_stream& s) noexcept : stream_(s), wait_(s.set_.wait_next()) {}
  bool await_ready() const noexcept { return wait_.await_ready(); }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) noexcept {
    return wait_.await_suspend(h);
  }
  T await_resume() {
    wait_.await_resume();  // throws coring::cancelled if we were interrupted
    const std::size_t i = stream_.set_.pop_completed();
    --stream_.remaining_;
    stream_.last_ = i;
    if constexpr (std::is_void_v<T>) {
      stream_.set_.template take<T>(i);
    } else {
      return stream_.set_.template take<T>(i);
    }
  }

 private:
  as_completed_stream& stream_;
  detail::child_set::wait_operation wait_;
};

/// Starts `tasks` and runs `body(stream)` (a coroutine taking
/// `as_completed_stream<T>&`) to consume their results in completion order;
/// when the body ends, cancels the tasks still running and waits for them.
/// Gives the body's value.
/// **Errors:** what the body throws (rethrown after the tasks have ended).
/// A task error the body never took is reported to the loop's exception handler.
/// **Cancellation:** cancelling the awaiter cancels the tasks (a next() in
/// progress throws coring::cancelled into the body) and waits for them.
template <class T, class Body>
[[nodiscard]] auto as_completed(std::vector<task<T>> tasks, Body body)
    -> std::invoke_result_t<Body&, as_completed_stream<T>&> {
  using R = typename std::invoke_result_t<Body&, as_completed_stream<T>&>::value_type;
  as_completed_stream<T> stream(tasks.size());
  std::exception_ptr failure = stream.set_.start(tasks);
  std::optional<detail::result_t<R>> result;
  if (!failure) {
    try {
      if constexpr (std::is_void_v<R>) {
        co_await body(stream);
        result.emplace();
      } else {
        result.emplace(co_await body(stream));
      }
    } catch (...) {
      failure = std::current_exception();
    }
  }
  stream.set_.cancel_all();
  co_await stream.set_.wait_all();  // a cancellation of ours meanwhile wins over `failure`
  if (failure) std::rethrow_exception(failure);
  if constexpr (!std::is_void_v<R>) co_return std::move(*result);
}

}  // namespace coring
