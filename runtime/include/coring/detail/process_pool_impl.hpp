#pragma once
// The machinery behind <coring/process_pool.hpp>: how a job is type-erased
// (an invoker that runs in the worker, a completer that runs in the
// manager), the job's shared state, registration by name, and the template
// bodies of process_pool's members. Included at the bottom of process_pool.hpp.

#include <coring/process_pool.hpp>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace coring {

namespace detail {

/// Runs in the worker: decodes the arguments, calls `fn`, encodes the result.
using process_invoker = void (*)(void (*fn)(), std::string_view args, byte_writer& result);
/// Runs in the parent's manager thread: decodes the result into the state (then finish()).
using process_completer = void (*)(future_state_base* state, std::string_view result);

class process_pool_link;

/// The part of a job's shared state that keeps its pool reachable for the
/// future's cancel hook: a reference to the pool's process_pool_link, which
/// outlives the pool while any job's state does (the hook may run as the
/// pool is destroyed).
class process_job_link {
 public:
  process_job_link() = default;
  process_job_link(const process_job_link&) = delete;
  process_job_link& operator=(const process_job_link&) = delete;
  /// Drops the reference, if the pool took one.
  ~process_job_link();

  process_pool_link* link = nullptr;  // set by the pool when it accepts the job
  /// While the job is a look-ahead job: its claim id << 16 | its claim slot
  /// (written by the pool before the job is handed over; 0 when taken back).
  std::atomic<std::uint64_t> ticket{0};
};

/// A process pool job's shared state.
template <class R>
class process_job_state final : public future_state<R>, public process_job_link {};

/// One job as the manager sees it, type-erased.
struct process_job_spec {
  process_invoker invoke = nullptr;      // worker side
  void (*fn)() = nullptr;                // the user's function, for the invoker and for messages
  process_completer complete = nullptr;  // parent side
  std::string args;                      // encoded arguments
  future_state_base* state = nullptr;    // one reference, the executor's
  process_job_link* link = nullptr;      // the same state, seen as its link to the pool
};

template <class Fn>
concept plain_function_like = requires(Fn f) {
  { +f };
  requires std::is_pointer_v<decltype(+f)>;
  requires std::is_function_v<std::remove_pointer_t<decltype(+f)>>;
};

template <class F>
struct fn_traits;
template <class R, class... P>
struct fn_traits<R (*)(P...)> {
  using result = R;
  using args = std::tuple<std::decay_t<P>...>;
};
template <class R, class... P>
struct fn_traits<R (*)(P...) noexcept> : fn_traits<R (*)(P...)> {};

// An argument as the parameter type A: a reference if it already is one, else converted.
template <class A, class Arg>
decltype(auto) as_param(Arg&& a) {
  if constexpr (std::is_same_v<std::remove_cvref_t<Arg>, A>) {
    return static_cast<const A&>(a);
  } else {
    return A(std::forward<Arg>(a));
  }
}

template <class F, class Tuple, std::size_t... I>
decltype(auto) apply_moved(F f, Tuple& t, std::index_sequence<I...>) {
  return f(std::move(std::get<I>(t))...);
}

template <class F>
void invoke_job(void (*raw)(), std::string_view in, byte_writer& out) {
  using traits = fn_traits<F>;
  using R = typename traits::result;
  auto fn = reinterpret_cast<F>(raw);
  auto args = [&]<class... A>(std::tuple<A...>*) { return decode_all<A...>(in); }(
      static_cast<typename traits::args*>(nullptr));
  constexpr std::size_t n = std::tuple_size_v<typename traits::args>;
  if constexpr (std::is_void_v<R>) {
    apply_moved(fn, args, std::make_index_sequence<n>{});
  } else {
    encode(out, static_cast<std::decay_t<R>>(apply_moved(fn, args, std::make_index_sequence<n>{})));
  }
}

template <class F>
void invoke_chunk(void (*raw)(), std::string_view in, byte_writer& out) {
  using traits = fn_traits<F>;
  using R = std::decay_t<typename traits::result>;
  using A = std::tuple_element_t<0, typename traits::args>;
  auto fn = reinterpret_cast<F>(raw);
  auto [items] = decode_all<std::vector<A>>(in);
  std::vector<R> results;
  results.reserve(items.size());
  for (A& a : items) results.push_back(fn(std::move(a)));
  encode(out, results);
}

template <class R>
void complete_job(future_state_base* s, std::string_view bytes) {
  auto* st = static_cast<future_state<R>*>(s);
  if constexpr (std::is_void_v<R>) {
    (void)decode_all<>(bytes);
    st->set_value();
  } else {
    st->set_value(std::move(std::get<0>(decode_all<R>(bytes))));
  }
}


/// A function registered by name (CORING_REGISTER_JOB): what a worker needs
/// to run a job that names it.
struct registered_job {
  std::string name;                        // as registered
  void (*fn)() = nullptr;                  // the function
  process_invoker invoke_one = nullptr;    // for submit()
  process_invoker invoke_chunk = nullptr;  // for map(); null unless fn takes one argument and returns a value
};

/// Registers `fn` under `name` (blanks and a leading '&' dropped); returns
/// the entry, which lives as long as the process. **Requires:** `name` not
/// registered for another function (asserted; else the first one stays).
/// **Thread safety:** any thread.
const registered_job* register_job(std::string_view name, void (*fn)(), process_invoker one,
                                   process_invoker chunk) noexcept;
/// The function registered under `name`, or null. **Thread safety:** any thread.
const registered_job* find_registered_job(std::string_view name) noexcept;
/// The (first) registration of `fn`, or null. **Thread safety:** any thread.
const registered_job* find_registered_job(void (*fn)()) noexcept;

/// Runs the job registered under `name` on the encoded `args` and appends
/// the encoded result to `result`, as a worker does with a job that names
/// its function (`chunk`: a chunk of process_pool::map).
/// **Errors:** coring::error if no such job is registered here (or it has no
/// chunk form); decode_error for malformed arguments; what the function throws.
void run_registered_job(std::string_view name, bool chunk, std::string_view args, byte_writer& result);

/// What CORING_REGISTER_JOB defines: it registers at construction.
class job_registration {
 public:
  template <class Fn>
  job_registration(Fn fn, std::string_view name) noexcept;
};

#define CORING_DETAIL_JOB_CONCAT(a, b) CORING_DETAIL_JOB_CONCAT2(a, b)
#define CORING_DETAIL_JOB_CONCAT2(a, b) a##b

template <class Fn>
job_registration::job_registration(Fn fn, std::string_view name) noexcept {
  static_assert(plain_function_like<Fn>,
                "CORING_REGISTER_JOB needs a plain function or a lambda without captures");
  if constexpr (plain_function_like<Fn>) {
    using F = decltype(+fn);
    using traits = fn_traits<F>;
    process_invoker chunk = nullptr;
    if constexpr (std::tuple_size_v<typename traits::args> == 1 && !std::is_void_v<typename traits::result>) {
      chunk = &invoke_chunk<F>;
    }
    (void)register_job(name, reinterpret_cast<void (*)()>(+fn), &invoke_job<F>, chunk);
  }
}

}  // namespace detail


template <class Fn, class... Args>
auto process_pool::submit(Fn fn, Args&&... args) {
  static_assert(detail::plain_function_like<Fn>,
                "coring::process_pool::submit needs a plain function or a lambda without captures: "
                "a worker process cannot receive a closure's captured state; pass those values as arguments");
  if constexpr (detail::plain_function_like<Fn>) return submit_pointer(+fn, std::forward<Args>(args)...);
}

template <class F, class... Args>
auto process_pool::submit_pointer(F ptr, Args&&... args) {
  using traits = detail::fn_traits<F>;
  using R = std::decay_t<typename traits::result>;
  using arg_tuple = typename traits::args;
  static_assert(std::tuple_size_v<arg_tuple> == sizeof...(Args),
                "coring::process_pool::submit: wrong number of arguments for the function");
  static_assert(std::is_void_v<R> || serializable<R>,
                "coring::process_pool::submit: the function's result type is not serializable");
  detail::process_job_spec spec;
  spec.invoke = &detail::invoke_job<F>;
  spec.fn = reinterpret_cast<void (*)()>(ptr);
  spec.complete = &detail::complete_job<R>;
  spec.args = [&]<class... A>(std::tuple<A...>*) {
    return encode_all(detail::as_param<A>(std::forward<Args>(args))...);
  }(static_cast<arg_tuple*>(nullptr));
  auto* state = new detail::process_job_state<R>();
  spec.state = state;
  spec.link = state;
  submit_spec(std::move(spec));
  return future<R>(state);
}

template <class Fn, class Range>
auto process_pool::map(Fn fn, Range&& range, map_options opts) {
  static_assert(detail::plain_function_like<Fn>,
                "coring::process_pool::map needs a plain function or a lambda without captures");
  if constexpr (detail::plain_function_like<Fn>) return map_pointer(+fn, std::forward<Range>(range), opts);
}

template <class F, class Range>
auto process_pool::map_pointer(F ptr, Range&& range, map_options opts) {
  using traits = detail::fn_traits<F>;
  using R = std::decay_t<typename traits::result>;
  static_assert(std::tuple_size_v<typename traits::args> == 1,
                "coring::process_pool::map needs a function of exactly one parameter");
  static_assert(!std::is_void_v<R>, "coring::process_pool::map needs a function that returns a value");
  using A = std::tuple_element_t<0, typename traits::args>;
  std::vector<A> items;
  for (auto&& v : range) items.push_back(A(v));
  return [](process_pool* self, F f, std::vector<A> items, map_options opts) -> task<std::vector<R>> {
    const std::size_t chunk = opts.chunk_size ? opts.chunk_size : 1;
    const std::size_t limit = opts.max_in_flight ? opts.max_in_flight : 2 * std::size_t{self->size()};
    std::vector<future<std::vector<R>>> in_flight;  // ring in order of submission
    std::size_t next = 0;                           // first element not yet submitted
    std::size_t head = 0;                           // first future not yet collected
    // Cancels whatever is still in flight when the task ends early.
    struct guard {
      std::vector<future<std::vector<R>>>* fs;
      ~guard() {
        for (auto& fu : *fs)
          if (fu.valid() && !fu.ready()) fu.cancel();
      }
    } g{&in_flight};
    std::vector<R> out;
    out.reserve(items.size());
    auto submit_chunk = [&] {
      std::size_t end = std::min(items.size(), next + chunk);
      std::vector<A> part(std::make_move_iterator(items.begin() + static_cast<std::ptrdiff_t>(next)),
                          std::make_move_iterator(items.begin() + static_cast<std::ptrdiff_t>(end)));
      next = end;
      detail::process_job_spec spec;
      spec.invoke = &detail::invoke_chunk<F>;
      spec.fn = reinterpret_cast<void (*)()>(f);
      spec.complete = &detail::complete_job<std::vector<R>>;
      spec.args = encode_all(part);
      auto* state = new detail::process_job_state<std::vector<R>>();
      spec.state = state;
      spec.link = state;
      self->submit_spec(std::move(spec));
      in_flight.emplace_back(state);
    };
    while (next < items.size() && in_flight.size() - head < limit) submit_chunk();
    while (head < in_flight.size()) {
      std::vector<R> part = co_await in_flight[head];
      in_flight[head] = future<std::vector<R>>();
      ++head;
      for (R& r : part) out.push_back(std::move(r));
      while (next < items.size() && in_flight.size() - head < limit) submit_chunk();
    }
    co_return out;
  }(this, ptr, std::move(items), opts);
}

}  // namespace coring
