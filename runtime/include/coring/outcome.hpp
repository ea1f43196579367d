#pragma once
// outcome<T>: a value or the exception that replaced it (what gather_settled
// returns per task, like asyncio.gather(..., return_exceptions=True)).
//
//   for (auto& o : co_await coring::gather_settled(std::move(tasks)))
//     if (o.has_value()) use(o.value()); else log(o.error());

#include <exception>
#include <optional>
#include <utility>

namespace coring {

/// A value of type T, or an exception.
template <class T>
class outcome {
 public:
  /// Holds a value.
  explicit outcome(T value) : value_(std::move(value)) {}
  /// Holds an error. **Requires:** `e` is not null.
  explicit outcome(std::exception_ptr e) noexcept : error_(std::move(e)) {}

  [[nodiscard]] bool has_value() const noexcept { return value_.has_value(); }
  explicit operator bool() const noexcept { return has_value(); }
  /// The value; rethrows the error if there is one.
  T& value() & {
    if (error_) std::rethrow_exception(error_);
    return *value_;
  }
  T&& value() && {
    if (error_) std::rethrow_exception(error_);
    return std::move(*value_);
  }
  /// The error, or null.
  [[nodiscard]] const std::exception_ptr& error() const noexcept { return error_; }

 private:
  std::optional<T> value_;    // set when there is no error
  std::exception_ptr error_;  // set when there is no value
};

/// outcome of a task<void>: success, or an exception.
template <>
class outcome<void> {
 public:
  outcome() noexcept = default;
  explicit outcome(std::exception_ptr e) noexcept : error_(std::move(e)) {}
  [[nodiscard]] bool has_value() const noexcept { return !error_; }
  explicit operator bool() const noexcept { return has_value(); }
  /// Rethrows the error if there is one.
  void value() const {
    if (error_) std::rethrow_exception(error_);
  }
  [[nodiscard]] const std::exception_ptr& error() const noexcept { return error_; }

 private:
  std::exception_ptr error_;  // null on success
};

}  // namespace coring
