#pragma once
// as_completed: results in the order the tasks finish (asyncio.as_completed).
//
//   auto results = coring::as_completed(std::move(tasks));
//   while (!results.done()) {
//     try { int v = co_await results.next(); ... }      // fastest first
//     catch (const std::exception& e) { ... }            // a failed task, at its turn
//   }
//
// The tasks start when the stream is made. Dropping the stream cancels the
// tasks that have not finished.

#include <coring/detail/child_result.hpp>
#include <coring/detail/child_set.hpp>
#include <coring/task.hpp>

#include <cstddef>
#include <memory>
#include <type_traits>
#include <vector>

namespace coring {

/// A stream of task results in completion order. Move-only.
template <class T>
class as_completed_stream {
 public:
  /// Starts every task on the current loop.
  /// **Requires:** an event loop on this thread.
  explicit as_completed_stream(std::vector<task<T>> tasks)
      : set_(std::make_unique<detail::child_set>(detail::child_set::policy::settle_all)) {
    children_.reserve(tasks.size());
    for (auto& t : tasks) children_.push_back(set_->add(std::move(t)));
    remaining_ = children_.size();
  }

  /// Results not yet taken.
  [[nodiscard]] std::size_t remaining() const noexcept { return remaining_; }
  /// True once every result was taken.
  [[nodiscard]] bool done() const noexcept { return remaining_ == 0; }

  /// The result of the next task to finish: its value, or its exception
  /// rethrown (the stream goes on after it).
  /// **Cancellation:** cancelling the awaiter cancels the remaining tasks.
  /// **Requires:** !done(); one next() awaited at a time.
  [[nodiscard]] task<T> next() {
    CORING_ASSERT(remaining_ > 0, "as_completed: next() after every result was taken");
    co_await set_->wait_next();
    std::size_t i = set_->pop_completed();
    --remaining_;
    if constexpr (std::is_void_v<T>) {
      detail::take_child(children_[i]);
      co_return;
    } else {
      co_return detail::take_child(children_[i]);
    }
  }

 private:
  std::unique_ptr<detail::child_set> set_;                        // owns the running tasks
  std::vector<std::coroutine_handle<detail::promise<T>>> children_;  // by input index
  std::size_t remaining_ = 0;                                      // results not yet taken
};

/// Starts `tasks` and gives a stream of their results in completion order.
template <class T>
[[nodiscard]] as_completed_stream<T> as_completed(std::vector<task<T>> tasks) {
  return as_completed_stream<T>(std::move(tasks));
}

}  // namespace coring
