#pragma once
// gather: run tasks concurrently and collect every result (asyncio.gather).
//
//   auto [a, b] = co_await coring::gather(fetch("a"), fetch("b"));   // tuple
//   std::vector<int> all = co_await coring::gather(std::move(tasks)); // vector, input order
//   auto outcomes = co_await coring::gather_settled(std::move(tasks)); // return_exceptions=True
//
// A task<void> contributes std::monostate to the tuple form; gathering a
// vector of task<void> gives void. The tasks start on the next loop step and
// run concurrently; gather ends when all of them have ended.

#include <coring/detail/child_result.hpp>
#include <coring/detail/child_set.hpp>
#include <coring/outcome.hpp>
#include <coring/task.hpp>

#include <coroutine>
#include <exception>
#include <tuple>
#include <type_traits>
#include <vector>

namespace coring {

/// What gather(std::vector<task<T>>) gives: std::vector<T>, or void.
template <class T>
using gather_vector_t = std::conditional_t<std::is_void_v<T>, void, std::vector<T>>;

/// Runs the tasks concurrently; gives their values in argument order.
/// **Errors:** the first failure cancels the others, waits for them to end,
/// then is rethrown (later failures go to the loop's exception handler).
/// **Cancellation:** cancelling the awaiter cancels every task and waits for
/// them before coring::cancelled is thrown.
template <class... Ts>
[[nodiscard]] task<std::tuple<detail::result_t<Ts>...>> gather(task<Ts>... tasks) {
  using policy = detail::child_set::policy;
  detail::child_set set(policy::fail_fast);
  std::tuple<std::coroutine_handle<detail::promise<Ts>>...> children{set.add(std::move(tasks))...};
  co_await set.wait_all();
  if (set.decisive() != detail::child_set::npos) {
    detail::promise_base& failed = set.child(set.decisive());
    failed.own_node_.retrieved = true;
    std::rethrow_exception(failed.error_);
  }
  co_return std::apply([](auto... h) { return std::tuple<detail::result_t<Ts>...>{detail::take_child(h)...}; },
                       children);
}

/// Runs every task of `tasks` concurrently; gives their values in input order.
/// **Errors/Cancellation:** as the tuple form.
template <class T>
[[nodiscard]] task<gather_vector_t<T>> gather(std::vector<task<T>> tasks) {
  using policy = detail::child_set::policy;
  detail::child_set set(policy::fail_fast);
  std::vector<std::coroutine_handle<detail::promise<T>>> children;
  children.reserve(tasks.size());
  for (auto& t : tasks) children.push_back(set.add(std::move(t)));
  std::vector<task<T>>().swap(tasks);  // the moved-from shells are not needed while we wait
  co_await set.wait_all();
  if (set.decisive() != detail::child_set::npos) detail::take_child(children[set.decisive()]);  // rethrows
  if constexpr (std::is_void_v<T>) {
    for (auto h : children) detail::take_child(h);
    co_return;
  } else {
    std::vector<T> values;
    values.reserve(children.size());
    for (auto h : children) values.push_back(detail::take_child(h));
    co_return values;
  }
}

/// Runs the tasks concurrently and lets every one end; gives one outcome per
/// task (value or exception) in argument order. Never throws a task's error.
/// **Cancellation:** as gather.
template <class... Ts>
[[nodiscard]] task<std::tuple<outcome<Ts>...>> gather_settled(task<Ts>... tasks) {
  using policy = detail::child_set::policy;
  detail::child_set set(policy::settle_all);
  std::tuple<std::coroutine_handle<detail::promise<Ts>>...> children{set.add(std::move(tasks))...};
  co_await set.wait_all();
  co_return std::apply([](auto... h) { return std::tuple<outcome<Ts>...>{detail::settle_child(h)...}; }, children);
}

/// Vector form of gather_settled: one outcome per task, in input order.
template <class T>
[[nodiscard]] task<std::vector<outcome<T>>> gather_settled(std::vector<task<T>> tasks) {
  using policy = detail::child_set::policy;
  detail::child_set set(policy::settle_all);
  std::vector<std::coroutine_handle<detail::promise<T>>> children;
  children.reserve(tasks.size());
  for (auto& t : tasks) children.push_back(set.add(std::move(t)));
  std::vector<task<T>>().swap(tasks);  // the moved-from shells are not needed while we wait
  co_await set.wait_all();
  std::vector<outcome<T>> outcomes;
  outcomes.reserve(children.size());
  for (auto h : children) outcomes.push_back(detail::settle_child(h));
  co_return outcomes;
}

}  // namespace coring
