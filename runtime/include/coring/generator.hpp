#pragma once
// generator<T>: an async generator — a coroutine that co_yields values and
// may co_await between them (Python's `async def ... yield`, asyncio's async
// iterators).
//
//   coring::generator<std::string> lines(int fd) {
//     while (auto chunk = co_await read_chunk(fd))   // awaits between yields
//       co_yield *chunk;
//   }
//
//   auto g = lines(fd);
//   while (auto line = co_await g.next()) use(*line);          // nullopt at the end
//
//   co_await coring::for_each(lines(fd), [](std::string line) { use(line); });   // `async for`
//
// The generator runs inside the task that consumes it (one await chain, one
// task): cancelling the consumer cancels what the generator is suspended in,
// and an exception or a cancellation inside the generator comes out of
// next(). The other way, close() throws coring::cancelled into the generator
// at its co_yield (asyncio's aclose()), so that clean-up with co_await runs,
// and throw_into() throws any exception there (athrow()). Destroying a
// generator that has not finished destroys its frame at the co_yield where it
// waits: its locals' destructors run (RAII clean-up). A generator cannot hold
// running children across a co_yield (every combinator waits for its
// children before it returns), so nothing it started outlives it.

#include <coring/detail/assert.hpp>
#include <coring/detail/frame_allocator.hpp>
#include <coring/detail/task_node.hpp>
#include <coring/error.hpp>
#include <coring/task.hpp>

#include <coroutine>
#include <exception>
#include <optional>
#include <type_traits>
#include <utility>

namespace coring {

template <class T>
class generator;

namespace detail {

template <class T>
struct generator_promise final : promise_base {
  /// Lazy like a task; on its first resume an exception given to
  /// throw_into() (or close()) is thrown before the body runs, and a
  /// cancellation of the consumer pending there means the body never runs.
  struct initial_awaiter {
    generator_promise* p;
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<>) const noexcept {}
    void await_resume() const {
      if (p->injected_) std::rethrow_exception(std::exchange(p->injected_, nullptr));
      if (p->node_ && p->node_->cancel_requested) throw_if_cancel_requested(p->node_);
    }
  };
  /// At the end: back to the consumer.
  struct final_awaiter {
    bool await_ready() const noexcept { return false; }
    std::coroutine_handle<> await_suspend(std::coroutine_handle<generator_promise> h) noexcept {
      return h.promise().continuation();
    }
    void await_resume() const noexcept {}
  };
  /// At a co_yield: back to the consumer, with the value in view; resumed by
  /// the next next() (or by throw_into/close, which make it throw).
  struct yield_awaiter {
    generator_promise* p;
    T* value;  // the yielded object: lives until the end of the co_yield expression, past our suspension
    bool await_ready() const noexcept { return false; }
    std::coroutine_handle<> await_suspend(std::coroutine_handle<>) noexcept {
      p->value_ = value;
      return p->continuation();
    }
    void await_resume() const {
      p->value_ = nullptr;
      if (p->injected_) std::rethrow_exception(std::exchange(p->injected_, nullptr));
    }
  };
  /// A co_yield of an lvalue: the generator keeps its object, next() gets a copy.
  struct yield_copy_awaiter {
    generator_promise* p;
    std::optional<T> copy;  // made here, in the generator's frame, at the co_yield
    bool await_ready() const noexcept { return false; }
    std::coroutine_handle<> await_suspend(std::coroutine_handle<>) noexcept {
      p->value_ = std::addressof(*copy);
      return p->continuation();
    }
    void await_resume() const {
      p->value_ = nullptr;
      if (p->injected_) std::rethrow_exception(std::exchange(p->injected_, nullptr));
    }
  };

  generator<T> get_return_object() noexcept;
  initial_awaiter initial_suspend() noexcept { return {this}; }
  final_awaiter final_suspend() noexcept { return {}; }
  void return_void() noexcept {}

  yield_awaiter yield_value(T&& v) noexcept { return {this, std::addressof(v)}; }
  yield_copy_awaiter yield_value(const T& v) noexcept(
      std::is_nothrow_copy_constructible_v<T>) requires std::copy_constructible<T> {
    return yield_copy_awaiter{this, std::optional<T>(v)};
  }

  T* value_ = nullptr;           // the value at the co_yield where the generator waits; null elsewhere
  std::exception_ptr injected_;  // to throw at the co_yield when resumed (throw_into, close)
};

}  // namespace detail

/// An async generator of T. Move-only; lazy (nothing runs until next()).
template <class T>
class [[nodiscard]] generator {
 public:
  using promise_type = detail::generator_promise<T>;
  using value_type = T;
  using handle_type = std::coroutine_handle<promise_type>;

  class next_operation;

  generator() noexcept = default;
  generator(generator&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  generator& operator=(generator&& o) noexcept {
    if (this != &o) {
      reset();
      h_ = std::exchange(o.h_, {});
    }
    return *this;
  }
  generator(const generator&) = delete;
  generator& operator=(const generator&) = delete;
  /// Destroys the frame where it waits (its locals' destructors run).
  /// **Requires:** no next(), close() or throw_into() of it is in progress.
  ~generator() { reset(); }

  /// The next value: resumes the generator until its next co_yield (given,
  /// moved out of the yielded object or copied from a yielded lvalue) or its
  /// end (nullopt; every later next() gives nullopt too).
  /// **Errors:** what the generator throws, once; then it has ended.
  /// **Cancellation:** the generator runs in the awaiting task: cancelling
  /// the task cancels what the generator awaits. Unless the generator
  /// catches it, coring::cancelled comes out of next() and the generator has ended.
  /// **Requires:** valid(); one next() at a time, awaited by a coring task.
  [[nodiscard]] next_operation next() noexcept { return next_operation(h_, nullptr); }

  /// Throws `e` into the generator at the co_yield where it waits and gives
  /// what it does next, as next() (Python's athrow()). A generator that has
  /// not started ends at once, without running its body, and `e` comes out
  /// here; one that has ended gives nullopt.
  /// **Errors/Cancellation:** as next(), `e` included.
  [[nodiscard]] next_operation throw_into(std::exception_ptr e) noexcept {
    return next_operation(h_, std::move(e));
  }

  /// Ends the generator, running its clean-up (asyncio's aclose()): throws
  /// coring::cancelled into it at its co_yield; once it has ended — by
  /// letting that propagate, or by returning — close() returns. A generator
  /// that never started is destroyed (its parameters' destructors run); one
  /// that has ended is left as it is. Later next()s give nullopt.
  /// **Errors:** an exception other than cancelled that the clean-up throws;
  /// coring::error if the generator yields again instead of ending.
  /// **Cancellation:** a cancellation of the awaiting task during the
  /// clean-up reaches what the clean-up awaits, as anywhere.
  [[nodiscard]] task<> close();

  /// True if the generator has ended (or was never made).
  [[nodiscard]] bool done() const noexcept { return !h_ || h_.done(); }
  /// True if the generator holds a coroutine.
  [[nodiscard]] bool valid() const noexcept { return static_cast<bool>(h_); }

 private:
  friend struct detail::generator_promise<T>;
  explicit generator(handle_type h) noexcept : h_(h) {}
  void reset() noexcept {
    if (h_) std::exchange(h_, {}).destroy();
  }

  handle_type h_;  // the generator's frame (suspended at its start, a co_yield, or its end)
};

/// Awaiter of generator::next() and throw_into().
template <class T>
class generator<T>::next_operation {
 public:
  next_operation(handle_type h, std::exception_ptr inject) noexcept : h_(h), inject_(std::move(inject)) {}

  bool await_ready() const noexcept { return !h_ || h_.done(); }
  template <class P>
  std::coroutine_handle<> await_suspend(std::coroutine_handle<P> consumer) noexcept {
    auto& p = h_.promise();
    p.set_continuation(consumer);  // the own_node_ slot: a generator frame never uses its own node
    p.node_ = detail::node_of(consumer);
    p.injected_ = std::move(inject_);
    return h_;
  }
  std::optional<T> await_resume() {
    if (!h_) return std::nullopt;
    auto& p = h_.promise();
    if (h_.done()) {
      // What the generator ended with, once (an exception thrown into a
      // generator that had already ended is dropped: nothing to throw into).
      if (p.error_) std::rethrow_exception(std::exchange(p.error_, nullptr));
      return std::nullopt;
    }
    return std::optional<T>(std::move(*p.value_));
  }

 private:
  handle_type h_;              // the generator
  std::exception_ptr inject_;  // what throw_into() throws into it
};

namespace detail {

template <class T>
generator<T> generator_promise<T>::get_return_object() noexcept {
  return generator<T>(std::coroutine_handle<generator_promise>::from_promise(*this));
}

}  // namespace detail

template <class T>
task<> generator<T>::close() {
  if (done()) co_return;
  if (!h_.promise().started()) {
    reset();  // never started: destroying it is its clean-up; it has ended now
    co_return;
  }
  std::exception_ptr failure;
  try {
    auto after = co_await throw_into(std::make_exception_ptr(cancelled{}));
    if (after) failure = std::make_exception_ptr(error("coring::generator: yielded a value after close()"));
  } catch (const cancelled&) {
    // The clean-up let the cancellation through: ended as asked. (If the
    // awaiting task was cancelled during the clean-up, that cancellation is
    // delivered at its next suspension, as usual.)
  } catch (...) {
    failure = std::current_exception();
  }
  if (failure) std::rethrow_exception(failure);
}

/// Consumes `g`: calls `fn(value)` for each value in turn (Python's `async
/// for`), then ends. `fn` may be a plain function or return a task (awaited
/// before the next value), and may return bool (or task<bool>): false stops
/// early. On every way out — the end, `fn` stopping or throwing, the awaiting
/// task cancelled — a generator that has not ended is closed (its clean-up
/// runs, awaits included) before for_each returns or rethrows.
/// **Errors:** what the generator or `fn` throws, after the clean-up.
/// **Cancellation:** as next(); then the generator is closed.
template <class T, class Fn>
[[nodiscard]] task<> for_each(generator<T> g, Fn fn) {
  std::exception_ptr failure;
  try {
    while (auto v = co_await g.next()) {
      using R = std::invoke_result_t<Fn&, T&&>;
      if constexpr (std::is_same_v<R, bool>) {
        if (!fn(std::move(*v))) break;
      } else if constexpr (std::is_same_v<R, task<bool>>) {
        if (!co_await fn(std::move(*v))) break;
      } else if constexpr (std::is_same_v<R, task<>>) {
        co_await fn(std::move(*v));
      } else {
        fn(std::move(*v));
      }
    }
  } catch (...) {
    failure = std::current_exception();
  }
  co_await g.close();
  if (failure) std::rethrow_exception(failure);
}

}  // namespace coring
