#pragma once
// coring::run's SIGINT handling (see <coring/signal.hpp>). Internal.

#include <coring/current_task.hpp>
#include <coring/detail/task_node.hpp>
#include <coring/task.hpp>

#include <type_traits>
#include <utility>

namespace coring {

class event_loop;

namespace detail {

/// coring::run's watch of SIGINT, for one run. Loop thread only.
class sigint_handling {
 public:
  sigint_handling() noexcept = default;
  sigint_handling(const sigint_handling&) = delete;
  sigint_handling& operator=(const sigint_handling&) = delete;
  /// Stops being told about SIGINT (the watch itself ends with the loop).
  ~sigint_handling();
  /// Starts watching SIGINT for `main` (the main task's node) if this is
  /// the main thread and SIGINT has its default disposition and is not
  /// blocked here; else does nothing.
  void start(task_node& main) noexcept;
  /// True once a SIGINT cancelled the main task.
  [[nodiscard]] bool fired() const noexcept { return fired_; }

 private:
  static void on_sigint(void* self) noexcept;

  event_loop* loop_ = nullptr;  // whose watch we use, once started
  task_node* main_ = nullptr;   // the task to cancel
  bool fired_ = false;          // a SIGINT came
};

/// The main task of coring::run: `t`, run inline (same task), after telling
/// `sigint` which task to cancel.
template <class T>
task<T> with_sigint(task<T> t, sigint_handling& sigint) {
  task_ref self = co_await current_task();
  sigint.start(*self.node());
  if constexpr (std::is_void_v<T>) {
    co_await std::move(t);
  } else {
    co_return co_await std::move(t);
  }
}

}  // namespace detail
}  // namespace coring
