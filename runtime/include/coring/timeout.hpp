#pragma once
// timeout: a deadline over a whole piece of code (asyncio.timeout,
// tokio::time::timeout).
//
//   std::string page = co_await coring::timeout(2s, [&]() -> coring::task<std::string> {
//     auto conn = co_await connect(host);          // everything awaited in here
//     co_return co_await conn.read_all();          // shares the one deadline
//   });                                            // or coring::timeout_error
//
//   co_await coring::timeout(10s, [&](coring::timeout_scope& scope) -> coring::task<> {
//     while (auto chunk = co_await next_chunk())
//       scope.reschedule(1s);                      // an idle timeout: 1 s more after each chunk
//   });
//
// At the deadline, whatever the body is suspended in is cancelled — a sleep,
// a ring operation (through a kernel timeout linked to its SQE: no helper
// task per operation), a sync wait, a future, the children of a gather — and
// the body sees coring::cancelled once, may clean up (awaits included), and
// once it has ended timeout() throws coring::timeout_error. Scopes nest: the
// earliest deadline wins, and the timeout_error comes from the scope whose
// deadline passed. A cancellation of the awaiting task is never mistaken for
// a timeout: it is delivered as coring::cancelled, even if the deadline
// passed too. The body runs as a child task and timeout() returns only after
// it has ended, so it may use references into the awaiting frame.

#include <coring/current_task.hpp>
#include <coring/detail/child_set.hpp>
#include <coring/detail/deadline.hpp>
#include <coring/detail/duration.hpp>
#include <coring/error.hpp>
#include <coring/sleep.hpp>
#include <coring/task.hpp>

#include <chrono>
#include <cstdint>
#include <exception>
#include <string>
#include <type_traits>
#include <utility>

namespace coring {

class timeout_scope;

namespace detail {
template <class R, class Make>
task<R> run_timeout(std::int64_t deadline_ns, std::int64_t timeout_ns, const char* what, Make make);
}  // namespace detail

/// The deadline of a timeout() body; the body may take it as a parameter to
/// read or move its deadline (asyncio.Timeout).
class timeout_scope {
 public:
  timeout_scope(const timeout_scope&) = delete;
  timeout_scope& operator=(const timeout_scope&) = delete;

  /// The deadline; clock::time_point::max() if there is none.
  [[nodiscard]] clock::time_point deadline() const noexcept {
    const std::int64_t ns = scope_.deadline_ns();
    return ns == detail::no_deadline ? clock::time_point::max()
                                     : clock::time_point(std::chrono::nanoseconds(ns));
  }
  /// True once the deadline passed (the body was cancelled on its account).
  [[nodiscard]] bool expired() const noexcept { return scope_.expired(); }

  /// Moves the deadline to `when` (time_point::max(): none), earlier or
  /// later (asyncio's reschedule). Returns false, with no effect, once the
  /// scope has expired. A deadline already past expires the scope on the
  /// loop's next step. **Requires:** called on the loop's thread while the body runs.
  bool reschedule(clock::time_point when) noexcept {
    return scope_.reschedule(
        when == clock::time_point::max()
            ? detail::no_deadline
            : std::chrono::duration_cast<std::chrono::nanoseconds>(when.time_since_epoch()).count());
  }
  /// Moves the deadline to `from_now` after now (max(): none). As reschedule(time_point).
  template <class Rep, class Period>
  bool reschedule(std::chrono::duration<Rep, Period> from_now) noexcept {
    return reschedule(detail::deadline_after(from_now));
  }

 private:
  template <class R, class Make>
  friend task<R> detail::run_timeout(std::int64_t, std::int64_t, const char*, Make);
  timeout_scope(std::int64_t deadline_ns, detail::deadline_scope* parent) noexcept
      : scope_(deadline_ns, parent) {}

  detail::deadline_scope scope_;  // the machinery (detail/deadline.hpp)
};

namespace detail {

/// What a timeout body gives: task<R> from body(scope) or body().
template <class Body>
struct timeout_body {
  static auto make(Body& body, timeout_scope& scope) {
    if constexpr (std::is_invocable_v<Body&, timeout_scope&>) {
      return body(scope);
    } else {
      return body();
    }
  }
  using task_type = decltype(make(std::declval<Body&>(), std::declval<timeout_scope&>()));
  using value_type = typename task_type::value_type;
};

/// The deadline `deadline_ns` (no_deadline: none) for a duration of `timeout_ns` (for the message).
inline std::int64_t deadline_ns_after(std::int64_t timeout_ns) noexcept {
  if (timeout_ns == no_deadline) return no_deadline;
  return std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now().time_since_epoch()).count() +
         timeout_ns;
}
inline std::int64_t deadline_ns_of(clock::time_point when) noexcept {
  if (when == clock::time_point::max()) return no_deadline;
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(when.time_since_epoch()).count();
  return ns > 0 ? ns : 0;
}

/// Runs `make(scope)` — the body, with its scope — as a child under the
/// deadline; see timeout(). `what` names the body in the message.
template <class R, class Make>
task<R> run_timeout(std::int64_t deadline_ns, std::int64_t timeout_ns, const char* what, Make make) {
  task_ref caller = co_await current_task();
  timeout_scope scope(deadline_ns, detail::scope_of(caller.node()));
  task<R> body = make(scope);  // may throw: nothing has started
  detail::child_record record[1];
  detail::child_set set(detail::child_set::policy::settle_all, record);
  std::exception_ptr not_started = set.start(std::move(body));
  if (!not_started) scope.scope_.open(record[0].promise->own_node_);
  co_await set.wait_all();  // a cancellation of ours wins: it is thrown here, after the body ended
  scope.scope_.close();
  if (not_started) std::rethrow_exception(not_started);
  if (scope.expired() && set.ended_cancelled(0)) {
    (void)set.settle<R>(0);  // the body's cancellation was the deadline's: it becomes the timeout
    throw timeout_error(detail::describe_deadline(what, timeout_ns, scope.scope_.rescheduled()));
  }
  // Ended in time, or with a value or an error despite the deadline: that wins.
  if constexpr (std::is_void_v<R>) {
    set.take<R>(0);
  } else {
    co_return set.take<R>(0);
  }
}

}  // namespace detail

/// Runs `body` — a coroutine taking no argument or a `timeout_scope&` — and
/// gives its value, if it ends within `d` (asyncio.timeout). max() and
/// infinite durations never expire; zero, negative and NaN ones expire at
/// once (the body is cancelled before it runs).
/// **Cancellation:** at the deadline the body is cancelled (once); when it
/// has ended, timeout_error is thrown. Cancelling the awaiting task cancels
/// the body, waits for it, and throws coring::cancelled — never timeout_error.
/// **Errors:** timeout_error "coring::timeout: the body did not finish within N ms";
/// otherwise what the body throws (a body that catches the cancellation and
/// returns a value gives that value).
/// **Requires:** an event loop on this thread.
template <class Rep, class Period, class Body>
[[nodiscard]] auto timeout(std::chrono::duration<Rep, Period> d, Body body) ->
    typename detail::timeout_body<Body>::task_type {
  using R = typename detail::timeout_body<Body>::value_type;
  const std::int64_t ns = detail::timeout_ns(d);
  return detail::run_timeout<R>(detail::deadline_ns_after(ns), ns, "coring::timeout: the body",
                                [body = std::move(body)](timeout_scope& scope) mutable {
                                  return detail::timeout_body<Body>::make(body, scope);
                                });
}

/// As timeout(), with a deadline on the steady clock (asyncio.timeout_at).
/// time_point::max() never expires. **Errors/Cancellation:** as timeout().
template <class Body>
[[nodiscard]] auto timeout_at(clock::time_point when, Body body) ->
    typename detail::timeout_body<Body>::task_type {
  using R = typename detail::timeout_body<Body>::value_type;
  return detail::run_timeout<R>(detail::deadline_ns_of(when), detail::no_deadline,
                                "coring::timeout_at: the body",
                                [body = std::move(body)](timeout_scope& scope) mutable {
                                  return detail::timeout_body<Body>::make(body, scope);
                                });
}

}  // namespace coring
