#pragma once
// task_group: spawn children dynamically and wait for all of them
// (asyncio.TaskGroup, a nursery).
//
//   coring::task_group group;
//   for (auto& url : urls) group.spawn(fetch(url));
//   co_await group.join();      // all ended; the first failure is rethrown
//
// The first child to fail cancels the others (and any spawned later); join()
// waits for every child before it rethrows that failure, so no child outlives
// a joined group. A group destroyed without join() cancels what still runs.

#include <coring/detail/child_set.hpp>
#include <coring/task.hpp>

#include <cstddef>
#include <memory>

namespace coring {

class task_group {
 public:
  /// An empty group. **Requires:** an event loop on this thread when spawning.
  task_group() : set_(std::make_unique<detail::child_set>(detail::child_set::policy::fail_fast, true)) {}
  task_group(task_group&&) noexcept = default;
  task_group& operator=(task_group&&) noexcept = default;
  /// Cancels the children still running (join() first to wait for them).
  ~task_group() = default;

  /// Starts `t` as a child; its value is discarded (its frame is freed as
  /// soon as it ends). If the group has already failed, it is cancelled at once.
  template <class T>
  void spawn(task<T> t, const char* name = nullptr) {
    set_->add(std::move(t), name);
  }
  /// Waits until every child has ended.
  /// **Errors:** the first child failure, rethrown (later ones go to the
  /// loop's exception handler).
  /// **Cancellation:** cancelling the awaiter cancels every child and waits for them.
  [[nodiscard]] task<> join();
  /// Cancels every running child.
  void cancel() noexcept { set_->cancel_all(); }
  /// Children still running.
  [[nodiscard]] std::size_t running() const noexcept { return set_->running(); }

 private:
  std::unique_ptr<detail::child_set> set_;  // the children
};

inline task<> task_group::join() {
  co_await set_->wait_all();
  if (const auto& e = set_->first_error()) std::rethrow_exception(e);
}

}  // namespace coring
