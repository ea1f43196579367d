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

#include <coring/detail/child_set.hpp>
#include <coring/outcome.hpp>
#include <coring/task.hpp>

#include <array>
#include <coroutine>
#include <exception>
#include <tuple>
#include <type_traits>
#include <utility>
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
  using set_t = detail::child_set;
  std::array<detail::child_record, sizeof...(Ts)> records;
  set_t set(set_t::policy::fail_fast, records);
  std::exception_ptr not_started = set.start(std::move(tasks)...);
  co_await set.wait_all();
  if (not_started) std::rethrow_exception(not_started);
  if (set.decisive() != set_t::npos) set.rethrow(set.decisive());
  co_return [&]<std::size_t... I>(std::index_sequence<I...>) {
    return std::tuple<detail::result_t<Ts>...>{set.template take<Ts>(I)...};
  }(std::index_sequence_for<Ts...>{});
}

/// Runs every task of `tasks` concurrently; gives their values in input order.
/// **Errors/Cancellation:** as the tuple form.
template <class T>
[[nodiscard]] task<gather_vector_t<T>> gather(std::vector<task<T>> tasks) {
  using set_t = detail::child_set;
  set_t set(set_t::policy::fail_fast, tasks.size());
  std::exception_ptr not_started = set.start(tasks);
  co_await set.wait_all();
  if (not_started) std::rethrow_exception(not_started);
  if (set.decisive() != set_t::npos) set.rethrow(set.decisive());
  if constexpr (std::is_void_v<T>) {
    for (std::size_t i = 0; i < set.size(); ++i) set.template take<T>(i);
    co_return;
  } else {
    std::vector<T> values;
    values.reserve(set.size());
    for (std::size_t i = 0; i < set.size(); ++i) values.push_back(set.template take<T>(i));
    co_return values;
  }
}

/// Runs the tasks concurrently and lets every one end; gives one outcome per
/// task (value or exception) in argument order. Never throws a task's error.
/// **Cancellation:** as gather.
template <class... Ts>
[[nodiscard]] task<std::tuple<outcome<Ts>...>> gather_settled(task<Ts>... tasks) {
  using set_t = detail::child_set;
  std::array<detail::child_record, sizeof...(Ts)> records;
  set_t set(set_t::policy::settle_all, records);
  std::exception_ptr not_started = set.start(std::move(tasks)...);
  co_await set.wait_all();
  if (not_started) std::rethrow_exception(not_started);
  co_return [&]<std::size_t... I>(std::index_sequence<I...>) {
    return std::tuple<outcome<Ts>...>{set.template settle<Ts>(I)...};
  }(std::index_sequence_for<Ts...>{});
}

/// Vector form of gather_settled: one outcome per task, in input order.
template <class T>
[[nodiscard]] task<std::vector<outcome<T>>> gather_settled(std::vector<task<T>> tasks) {
  using set_t = detail::child_set;
  set_t set(set_t::policy::settle_all, tasks.size());
  std::exception_ptr not_started = set.start(tasks);
  co_await set.wait_all();
  if (not_started) std::rethrow_exception(not_started);
  std::vector<outcome<T>> outcomes;
  outcomes.reserve(set.size());
  for (std::size_t i = 0; i < set.size(); ++i) outcomes.push_back(set.template settle<T>(i));
  co_return outcomes;
}

}  // namespace coring
