#pragma once
// as_completed_indices: the indices of a vector of coring::future<T> in the
// order the jobs end (concurrent.futures.as_completed, which yields the
// futures themselves: here you index your vector with what comes out).
//
//   std::vector<coring::future<int>> fs = ...;             // e.g. from pool.submit
//   for (std::size_t i : coring::as_completed_indices(fs))  // plain code: blocks
//     use(fs[i].get());                                     // ready: does not block
//
//   auto done = coring::as_completed_indices(fs);          // in a coroutine
//   while (auto i = co_await done.next())                   // suspends, never blocks the loop
//     use(co_await fs[*i]);                                 // ready: does not suspend
//
// Why indices, when as_completed over *tasks* (<coring/as_completed.hpp>)
// gives values: a future keeps its own result, so the stream only says which
// one is ready; a task's result has nowhere to live but the stream. The jobs
// behind futures are not children of the stream: dropping it early leaves
// them running, as concurrent.futures does.

#include <coring/detail/assert.hpp>
#include <coring/detail/inbox.hpp>
#include <coring/detail/task_node.hpp>
#include <coring/error.hpp>
#include <coring/event_loop.hpp>
#include <coring/future.hpp>

#include <chrono>
#include <coroutine>
#include <cstddef>
#include <iterator>
#include <memory>
#include <optional>
#include <vector>

namespace coring {

/// The futures of a set in completion order, as indices into it. Made by
/// as_completed_indices(); used either blocking (iterate it, or wait_next()) from
/// plain threads, or awaiting (next()) from one coroutine — not both.
/// While it lives it is the futures' only waiter: do not co_await them
/// before their index came out (afterwards awaiting one does not suspend).
/// Destroying it early is safe: the futures are left as they are.
/// **Thread safety:** one thread (or one coroutine) uses a stream.
class future_completions {
 public:
  /// Watches `states` (one reference each is taken).
  explicit future_completions(std::vector<detail::future_state_base*> states);
  /// Takes over `o`'s futures and progress. **Requires:** no next() of `o` is suspended.
  future_completions(future_completions&& o) noexcept = default;
  future_completions& operator=(future_completions&&) = delete;
  future_completions(const future_completions&) = delete;
  /// Stops watching: the futures and their jobs are left as they are.
  ~future_completions();

  /// How many futures are watched.
  [[nodiscard]] std::size_t size() const noexcept { return states_.size(); }

  /// Blocks until another future has ended and returns its index; nullopt
  /// once every index was returned.
  /// **Requires:** not on an event loop thread (use next() there).
  [[nodiscard]] std::optional<std::size_t> wait_next();
  /// As wait_next(), giving up after `d`.
  /// **Errors:** coring::timeout_error if no future ended in time (as
  /// concurrent.futures.as_completed's timeout). **Requires:** as wait_next().
  template <class Rep, class Period>
  [[nodiscard]] std::optional<std::size_t> wait_next_for(std::chrono::duration<Rep, Period> d) {
    return wait_next_until(std::chrono::steady_clock::now() + std::chrono::ceil<std::chrono::nanoseconds>(d));
  }
  /// As wait_next(), giving up at `deadline` with coring::timeout_error.
  [[nodiscard]] std::optional<std::size_t> wait_next_until(std::chrono::steady_clock::time_point deadline);

  class next_operation;
  /// Awaits the index of the next future to end (nullopt once all were
  /// returned); the coroutine resumes on its own loop's thread.
  /// **Cancellation:** stops waiting at once and throws coring::cancelled;
  /// the jobs are not cancelled (cancel the futures for that) and the stream
  /// stays usable.
  /// **Requires:** an event loop runs this coroutine.
  [[nodiscard]] next_operation next() noexcept;

  /// Blocking iteration (wait_next() per step): `for (std::size_t i : as_completed_indices(fs))`.
  class iterator {
   public:
    using value_type = std::size_t;
    using difference_type = std::ptrdiff_t;
    /// The end state.
    iterator() = default;
    /// Blocks for the first index of `s`.
    explicit iterator(future_completions* s) : s_(s) { ++*this; }
    /// The index of a future that has ended.
    std::size_t operator*() const noexcept { return cur_; }
    /// Blocks until the next future ends (or becomes the end).
    iterator& operator++() {
      std::optional<std::size_t> n = s_->wait_next();
      if (n) {
        cur_ = *n;
      } else {
        s_ = nullptr;
      }
      return *this;
    }
    /// As ++it.
    void operator++(int) { ++*this; }
    /// True once every index was given.
    friend bool operator==(const iterator& a, std::default_sentinel_t) noexcept { return a.s_ == nullptr; }

   private:
    future_completions* s_ = nullptr;
    std::size_t cur_ = 0;
  };
  /// Starts blocking iteration. **Requires:** as wait_next().
  [[nodiscard]] iterator begin() { return iterator(this); }
  [[nodiscard]] std::default_sentinel_t end() const noexcept { return {}; }

  // ---- machinery (defined in future_as_completed.cpp) ----
  /// The part shared with the watchers in flight.
  struct core;
  /// The waiter registered in each future.
  struct watcher;

 private:
  enum class mode : unsigned char { unset, blocking, awaiting };
  void arm(mode m);
  std::optional<std::size_t> pop() noexcept;

  std::vector<detail::future_state_base*> states_;  // one reference each
  std::shared_ptr<core> core_;                      // shared with the watchers in flight
  mode mode_ = mode::unset;                         // chosen by the first use
};

/// Awaiter of future_completions::next().
class [[nodiscard]] future_completions::next_operation : detail::cancel_hook {
 public:
  /// Made by next().
  explicit next_operation(future_completions* s) noexcept : detail::cancel_hook{&on_cancel}, s_(s) {}
  bool await_ready();
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) {
    node_ = detail::node_of(h);
    if (node_ && node_->cancel_requested) {
      interrupted_ = true;
      return false;
    }
    suspend(h);
    if (node_) node_->leaf = this;
    return true;
  }
  std::optional<std::size_t> await_resume();

 private:
  void suspend(std::coroutine_handle<> h) noexcept;
  static void on_cancel(detail::cancel_hook* c) noexcept;

  friend struct future_completions::watcher;

  future_completions* s_;               // the stream
  std::coroutine_handle<> handle_;      // the awaiting coroutine while suspended
  detail::task_node* node_ = nullptr;   // cancellation state of the awaiting task
  bool interrupted_ = false;            // resumed by cancellation
};

/// Watches `futures` and yields their indices in completion order: iterate
/// the result (blocking, plain threads) or `co_await result.next()` (coroutines).
/// **Requires:** every future is valid; the vector outlives the stream only
/// if you index it with the results (the stream itself keeps the states alive).
template <class T>
[[nodiscard]] future_completions as_completed_indices(std::vector<future<T>>& futures) {
  std::vector<detail::future_state_base*> states;
  states.reserve(futures.size());
  for (auto& f : futures) {
    CORING_ASSERT(f.valid(), "coring::as_completed_indices given an empty future");
    states.push_back(f.state());
  }
  return future_completions(std::move(states));
}

}  // namespace coring
