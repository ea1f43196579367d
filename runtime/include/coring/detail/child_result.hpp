#pragma once
// Taking results out of a child_set's children. Internal.

#include <coring/outcome.hpp>
#include <coring/task.hpp>

#include <coroutine>
#include <type_traits>
#include <variant>

namespace coring::detail {

/// What a combinator yields for a task<T>: T, or std::monostate for void.
template <class T>
using result_t = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

/// The child's value (monostate for void), or its exception rethrown; marks it retrieved.
template <class T>
result_t<T> take_child(std::coroutine_handle<promise<T>> h) {
  h.promise().own_node_.retrieved = true;
  if constexpr (std::is_void_v<T>) {
    h.promise().take();
    return {};
  } else {
    return h.promise().take();
  }
}

/// The child's result as an outcome; marks it retrieved.
template <class T>
outcome<T> settle_child(std::coroutine_handle<promise<T>> h) {
  auto& p = h.promise();
  p.own_node_.retrieved = true;
  if (p.error_) return outcome<T>(p.error_);
  if constexpr (std::is_void_v<T>) {
    return outcome<void>();
  } else {
    return outcome<T>(std::move(*p.value_));
  }
}

}  // namespace coring::detail
