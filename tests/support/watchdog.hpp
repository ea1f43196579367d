#pragma once
// Fixtures that turn a hang of the loop into a test failure instead of a
// stuck test binary (doctest::timeout only reports after a case returns).
//
// loop_watchdog: if not disarmed within `after`, keeps posting no-op
// functions to the loop, which wakes a loop parked in the ring; the test then
// asserts on fired() / elapsed time. Disarm (or destroy) it before the loop.
//
// run_in_child: runs `fn` in a forked child and reports whether it exited 0
// within the time limit (the child is killed otherwise). For code whose hang
// cannot be woken from outside, such as coring::run's shutdown.

#include <coring/event_loop.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace coring_test {

class loop_watchdog {
 public:
  loop_watchdog(coring::event_loop& loop, std::chrono::milliseconds after)
      : thread_([this, &loop, after] {
          std::unique_lock lock(mutex_);
          if (cv_.wait_for(lock, after, [this] { return disarmed_; })) return;
          fired_ = true;
          while (!disarmed_) {
            lock.unlock();
            loop.post([] {});
            lock.lock();
            cv_.wait_for(lock, std::chrono::milliseconds(50), [this] { return disarmed_; });
          }
        }) {}
  loop_watchdog(const loop_watchdog&) = delete;
  loop_watchdog& operator=(const loop_watchdog&) = delete;
  ~loop_watchdog() { disarm(); }

  /// Stops the watchdog; returns true if it had to wake the loop.
  bool disarm() {
    {
      std::lock_guard lock(mutex_);
      disarmed_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    return fired_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool disarmed_ = false;
  bool fired_ = false;
  std::thread thread_;  // last: starts after the fields above exist
};

/// How a run_in_child ended.
enum class child_result { exited_ok, failed, timed_out };

/// Runs `fn` (returning true for success) in a forked child process.
template <class Fn>
child_result run_in_child(Fn fn, std::chrono::milliseconds limit) {
  pid_t pid = ::fork();
  if (pid == 0) ::_exit(fn() ? 0 : 1);
  if (pid < 0) return child_result::failed;
  const auto deadline = std::chrono::steady_clock::now() + limit;
  int status = 0;
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return child_result::timed_out;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? child_result::exited_ok : child_result::failed;
}

}  // namespace coring_test
