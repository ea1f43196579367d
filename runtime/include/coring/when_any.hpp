#pragma once
// when_any: the first task to finish wins; the others are cancelled.
//
//   auto [index, value] = co_await coring::when_any(std::move(mirrors));
//   std::variant<int, std::string> v = co_await coring::when_any(by_cache(), by_network());
//
// when_any returns once the losers have ended too (they are cancelled and
// awaited), so nothing of theirs outlives it.

#include <coring/detail/child_set.hpp>
#include <coring/error.hpp>
#include <coring/task.hpp>

#include <array>
#include <cstddef>
#include <exception>
#include <optional>
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
  using set_t = detail::child_set;
  set_t set(set_t::policy::first_wins, tasks.size());
  std::exception_ptr not_started = set.start(tasks);
  co_await set.wait_all();
  if (not_started) std::rethrow_exception(not_started);
  const std::size_t winner = set.decisive();
  if constexpr (std::is_void_v<T>) {
    set.template take<T>(winner);
    co_return when_any_result<void>{winner};
  } else {
    co_return when_any_result<T>{winner, set.template take<T>(winner)};
  }
}

/// Variadic form: gives a variant whose index() is the winner's position
/// (std::monostate for a task<void>). **Errors/Cancellation:** as above.
template <class... Ts>
[[nodiscard]] task<std::variant<detail::result_t<Ts>...>> when_any(task<Ts>... tasks) {
  static_assert(sizeof...(Ts) > 0, "coring::when_any needs at least one task");
  using set_t = detail::child_set;
  using variant_t = std::variant<detail::result_t<Ts>...>;
  std::array<detail::child_record, sizeof...(Ts)> records;
  set_t set(set_t::policy::first_wins, records);
  std::exception_ptr not_started = set.start(std::move(tasks)...);
  co_await set.wait_all();
  if (not_started) std::rethrow_exception(not_started);
  const std::size_t winner = set.decisive();
  std::optional<variant_t> out;
  [&]<std::size_t... I>(std::index_sequence<I...>) {
    ((I == winner ? static_cast<void>(out.emplace(std::in_place_index<I>, set.template take<Ts>(I))) : void()), ...);
  }(std::index_sequence_for<Ts...>{});
  co_return std::move(*out);
}

}  // namespace coring
