#pragma once
// when_any: the first task to finish wins; the others are cancelled.
//
//   auto [index, value] = co_await coring::when_any(std::move(mirrors));
//   std::variant<int, std::string> v = co_await coring::when_any(by_cache(), by_network());
//
// when_any returns once the losers have ended too (they are cancelled and
// awaited), so nothing of theirs outlives it.

#include <coring/detail/child_result.hpp>
#include <coring/detail/child_set.hpp>
#include <coring/error.hpp>
#include <coring/task.hpp>

#include <cstddef>
#include <optional>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

namespace coring {

/// The winner of when_any over a vector: its index and value.
template <class T>
struct when_any_result {
  std::size_t index;
  T value;
};
template <>
struct when_any_result<void> {
  std::size_t index;
};

/// Runs the tasks concurrently; the first to end wins and the others are
/// cancelled and awaited. Gives the winner's index and value.
/// **Errors:** if the first task to end failed, its exception is rethrown;
/// coring::error if `tasks` is empty.
/// **Cancellation:** cancelling the awaiter cancels every task and waits for them.
template <class T>
[[nodiscard]] task<when_any_result<T>> when_any(std::vector<task<T>> tasks) {
  if (tasks.empty()) throw error("coring::when_any: no tasks to wait for");
  detail::child_set set(detail::child_set::policy::first_wins);
  std::vector<std::coroutine_handle<detail::promise<T>>> children;
  children.reserve(tasks.size());
  for (auto& t : tasks) children.push_back(set.add(std::move(t)));
  std::vector<task<T>>().swap(tasks);  // the moved-from shells are not needed while we wait
  co_await set.wait_all();
  const std::size_t winner = set.decisive();
  if constexpr (std::is_void_v<T>) {
    detail::take_child(children[winner]);
    co_return when_any_result<void>{winner};
  } else {
    co_return when_any_result<T>{winner, detail::take_child(children[winner])};
  }
}

namespace detail {
template <class V, class Tuple, std::size_t... I>
V take_winner(Tuple& children, std::size_t winner, std::index_sequence<I...>) {
  std::optional<V> out;
  ((I == winner ? static_cast<void>(out.emplace(std::in_place_index<I>, take_child(std::get<I>(children))))
                : static_cast<void>(0)),
   ...);
  return std::move(*out);
}
}  // namespace detail

/// Variadic form: gives a variant whose index() is the winner's position
/// (std::monostate for a task<void>). **Errors/Cancellation:** as above.
template <class... Ts>
[[nodiscard]] task<std::variant<detail::result_t<Ts>...>> when_any(task<Ts>... tasks) {
  static_assert(sizeof...(Ts) > 0, "coring::when_any needs at least one task");
  detail::child_set set(detail::child_set::policy::first_wins);
  std::tuple<std::coroutine_handle<detail::promise<Ts>>...> children{set.add(std::move(tasks))...};
  co_await set.wait_all();
  co_return detail::take_winner<std::variant<detail::result_t<Ts>...>>(children, set.decisive(),
                                                                        std::index_sequence_for<Ts...>{});
}

}  // namespace coring
