#pragma once
// wait_for / wait_until: give a task, or a future, a deadline (asyncio.wait_for).
//
//   try {
//     auto body = co_await coring::wait_for(fetch(url), 2s);
//     int rows = co_await coring::wait_for(pool.submit(count_rows, db), 5s);   // a future<int>
//   } catch (const coring::timeout_error& e) { ... }
//
// At the deadline the task is cancelled — cancellation reaches what it is
// blocked in (a sleep, an operation in the ring) and ends it at once — and
// once it has ended, timeout_error is thrown. wait_for(t, d) is
// timeout(d, body) with `t` as the body (<coring/timeout.hpp>): the same
// deadline scope, nestable, its ring operations limited by linked kernel
// timeouts. For a future, the job is cancelled at the deadline as
// future::cancel() does it: a job that has not started never runs, a process
// pool kills the worker running it, a thread-pool job runs on (a thread
// cannot be interrupted).

#include <coring/detail/duration.hpp>
#include <coring/error.hpp>
#include <coring/future.hpp>
#include <coring/sleep.hpp>
#include <coring/task.hpp>
#include <coring/timeout.hpp>

#include <chrono>
#include <cstdint>
#include <exception>
#include <string>
#include <type_traits>
#include <utility>

namespace coring {

namespace detail {

/// Gives `t` to run_timeout as its body.
template <class T>
struct task_as_body {
  task<T> t;
  task<T> operator()(timeout_scope&) noexcept { return std::move(t); }
};

/// A task that awaits the caller's future (which outlives it: the task is
/// awaited by the caller, in the same expression).
template <class T>
task<T> await_future(future<T>& f) {
  if constexpr (std::is_void_v<T>) {
    co_await f;
  } else {
    co_return co_await f;
  }
}

/// A task that owns the future it awaits.
template <class T>
task<T> await_owned_future(future<T> f) {
  if constexpr (std::is_void_v<T>) {
    co_await f;
  } else {
    co_return co_await f;
  }
}

}  // namespace detail

/// Runs `t` with a deadline; gives its value if it ends in time.
/// **Errors:** timeout_error "coring::wait_until: the task did not finish
/// before its deadline" once the deadline passed and the task, cancelled,
/// has ended; otherwise whatever `t` throws.
/// **Cancellation:** cancelling the awaiter cancels `t` (and waits for it);
/// it then ends with coring::cancelled, never with timeout_error.
template <class T>
[[nodiscard]] task<T> wait_until(task<T> t, clock::time_point deadline) {
  return detail::run_timeout<T>(detail::deadline_ns_of(deadline), detail::no_deadline,
                                "coring::wait_until: the task", detail::task_as_body<T>{std::move(t)});
}

/// Runs `t` for at most `timeout` (asyncio.wait_for). max() and infinite
/// durations never expire; zero, negative and NaN ones expire at once.
/// **Errors:** timeout_error "coring::wait_for: the task did not finish within N ms";
/// otherwise as wait_until. **Cancellation:** as wait_until.
template <class T, class Rep, class Period>
[[nodiscard]] task<T> wait_for(task<T> t, std::chrono::duration<Rep, Period> timeout) {
  const std::int64_t ns = detail::timeout_ns(timeout);
  return detail::run_timeout<T>(detail::deadline_ns_after(ns), ns, "coring::wait_for: the task",
                                detail::task_as_body<T>{std::move(t)});
}

/// Awaits `f` for at most `timeout`; gives the job's value if it ends in time.
/// The future stays with the caller: after a timeout it is cancelled (if the
/// job had not started, or a process pool killed its worker) or still
/// running (a thread-pool job), and can be looked at or awaited again.
/// **Errors:** timeout_error "coring::wait_for: the job did not finish within
/// N ms"; otherwise the job's exception.
/// **Cancellation:** cancelling the awaiter cancels the job as
/// future::cancel() does and throws coring::cancelled.
/// **Requires:** `f` is valid and outlives the await.
template <class T, class Rep, class Period>
[[nodiscard]] task<T> wait_for(future<T>& f, std::chrono::duration<Rep, Period> timeout) {
  const std::int64_t ns = detail::timeout_ns(timeout);
  return detail::run_timeout<T>(detail::deadline_ns_after(ns), ns, "coring::wait_for: the job",
                                detail::task_as_body<T>{detail::await_future(f)});
}
/// As wait_for(future&, timeout), owning the future (a temporary from submit()).
template <class T, class Rep, class Period>
[[nodiscard]] task<T> wait_for(future<T>&& f, std::chrono::duration<Rep, Period> timeout) {
  const std::int64_t ns = detail::timeout_ns(timeout);
  return detail::run_timeout<T>(detail::deadline_ns_after(ns), ns, "coring::wait_for: the job",
                                detail::task_as_body<T>{detail::await_owned_future(std::move(f))});
}
/// As wait_for(future&, timeout), with a deadline.
template <class T>
[[nodiscard]] task<T> wait_until(future<T>& f, clock::time_point deadline) {
  return detail::run_timeout<T>(detail::deadline_ns_of(deadline), detail::no_deadline,
                                "coring::wait_until: the job",
                                detail::task_as_body<T>{detail::await_future(f)});
}
/// As wait_until(future&, deadline), owning the future.
template <class T>
[[nodiscard]] task<T> wait_until(future<T>&& f, clock::time_point deadline) {
  return detail::run_timeout<T>(detail::deadline_ns_of(deadline), detail::no_deadline,
                                "coring::wait_until: the job",
                                detail::task_as_body<T>{detail::await_owned_future(std::move(f))});
}

}  // namespace coring
