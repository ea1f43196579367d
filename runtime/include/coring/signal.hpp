#pragma once
// signal: wait for a POSIX signal in a task (asyncio's loop.add_signal_handler,
// as an awaitable), and what coring::run does with SIGINT.
//
//   co_await coring::signal(SIGTERM);              // returns once SIGTERM arrives
//   shutdown_gracefully();
//
//   for (;;) {                                    // every SIGHUP
//     co_await coring::signal(SIGHUP);
//     reload_config();
//   }
//
// No handler runs in signal context: from the first await of a signal on a
// loop until that loop is destroyed, the signal is blocked on the loop's
// thread and read from a signalfd through the ring, by a small task of the
// loop ("coring: <SIG> watcher"). A signal that arrives while no task awaits
// it is kept (several count as one, as the kernel keeps them) and the next
// await returns at once. Every task awaiting the signal when it arrives is
// woken. Threads coring creates block asynchronous signals; a thread of your
// own that does not block the signal may take it instead (by its default
// action): block it there, or create such threads from the loop's thread
// after the first await.
//
// coring::run and SIGINT (asyncio.run's behaviour): on the main thread, when
// SIGINT has its default disposition and is not blocked, run() watches it:
// the first SIGINT that no task awaits cancels the main task (it sees
// coring::cancelled where it waits, and may clean up), and if the main task
// then ends by that cancellation, run() throws coring::interrupted — an
// example's main() returns 130 for it, as a shell expects. The watch stops at
// the first SIGINT, so a second one has the default action (the process ends
// at once). A task awaiting coring::signal(SIGINT) takes SIGINT instead. Opt
// out with coring::run(t, {.handle_sigint = false}); an event_loop you drive
// yourself (run_until_complete) never watches SIGINT.

#include <coring/detail/introspection.hpp>
#include <coring/detail/sigint.hpp>
#include <coring/detail/task_node.hpp>
#include <coring/error.hpp>
#include <coring/task.hpp>

#include <coroutine>
#include <cstdio>

namespace coring {

namespace detail {
class signal_watch;
}

/// Awaiter of signal(): gives the signal number.
class [[nodiscard]] signal_operation : detail::cancel_hook {
 public:
  explicit signal_operation(int signo) noexcept : cancel_hook{&on_cancel}, signo_(signo) {}
  signal_operation(const signal_operation&) = delete;
  signal_operation& operator=(const signal_operation&) = delete;
  ~signal_operation();

  bool await_ready() const noexcept { return false; }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) {
    node_ = detail::node_of(h);
    return suspend(h);
  }
  int await_resume();

 private:
  friend class detail::signal_watch;
  enum class state : unsigned char { pending, granted, closed, interrupted };
  bool suspend(std::coroutine_handle<> h);
  static void on_cancel(detail::cancel_hook* c) noexcept;
  // For dump_tasks(): "signal SIGUSR1".
  static void describe(const detail::cancel_hook& c, detail::leaf_report& out);
  static const bool described_;

  signal_operation* prev_ = nullptr;  // the watch's list of waiters
  signal_operation* next_ = nullptr;
  detail::signal_watch* watch_ = nullptr;  // while linked in a watch
  std::coroutine_handle<> handle_;         // the waiting coroutine
  detail::task_node* node_ = nullptr;      // its cancellation state
  int signo_;                              // the signal awaited
  state state_ = state::pending;           // how the wait ended
};

/// Prints the loop's tasks (event_loop::dump_tasks) to `out` each time
/// `signo` arrives, until cancelled — for programs that run long:
/// `coring::spawn(coring::dump_tasks_on(SIGUSR1)).detach();` then
/// `kill -USR1 <pid>` shows what every task is waiting for.
/// **Cancellation:** ends with coring::cancelled (the signal stays watched until the loop ends).
[[nodiscard]] task<> dump_tasks_on(int signo, std::FILE* out = stderr);

/// Waits until `signo` arrives (or one that arrived while nobody waited is
/// kept). From the first await on a loop, `signo` is blocked on the loop's
/// thread and read through a signalfd in the ring until the loop is destroyed.
/// **Cancellation:** the wait ends at once with coring::cancelled; the
/// signal stays watched (one that arrives later is kept for the next await).
/// **Errors:** io_error if the signalfd cannot be made; coring::error for a
/// signal that cannot be caught or blocked (SIGKILL, SIGSTOP, a fault) or
/// when the loop shuts down under the wait.
/// **Requires:** an event loop on this thread.
[[nodiscard]] inline signal_operation signal(int signo) noexcept { return signal_operation(signo); }

}  // namespace coring
