#pragma once
// process_pool: runs plain functions in worker processes, for CPU-bound work
// on every core (Python's ProcessPoolExecutor, without its failure modes).
//
//   int main() {
//     coring::process_pool::start_fork_server();          // first line of main
//     coring::process_pool pool({.workers = 4});
//     coring::future<long> f = pool.submit(fib, 30);       // fib: long(*)(int)
//     long v = f.get();                                    // or co_await f in a task
//     std::vector<long> all = coring::run(pool.map(fib, std::vector{1, 2, 3}));
//   }
//
// A job is a plain function (no captures) plus arguments that the codec
// (<coring/serialize.hpp>) can encode; its result comes back the same way.
// Workers are forked by a fork server that is started while the process is
// still single-threaded, and are children of this process (clone3 with
// CLONE_PARENT | CLONE_PIDFD). A worker that crashes fails only the job it
// held (coring::broken_worker) and is replaced; a job that throws fails with
// coring::remote_error and the worker lives on.

#include <coring/error.hpp>
#include <coring/future.hpp>
#include <coring/serialize.hpp>
#include <coring/task.hpp>

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace coring {

/// A job raised an exception in its worker. Carries the exception's
/// demangled type name (`throw 42` gives "int"), its what() (empty for types
/// not derived from std::exception) and the job's function name.
class remote_error : public error {
 public:
  /// Builds "job <function> raised <type_name>: <message>".
  remote_error(std::string type_name, std::string message, std::string function);
  /// The demangled type of the exception thrown in the worker ("std::bad_alloc", "int").
  [[nodiscard]] const std::string& type_name() const noexcept { return type_name_; }
  /// Its what(), or "" if it was not a std::exception.
  [[nodiscard]] const std::string& message() const noexcept { return message_; }
  /// The job's function, as named in messages (see process_pool::submit).
  [[nodiscard]] const std::string& function() const noexcept { return function_; }

 private:
  std::string type_name_;  // demangled exception type
  std::string message_;    // its what()
  std::string function_;   // the job's function
};

/// The worker running a job died (killed, crashed, or exited) before replying.
/// The message names the pid, the signal or exit code, and the function:
/// "worker 1234 running crash_job was killed by signal 11 (SIGSEGV)".
///
/// Workers are children of this process, so another part of it can reap one
/// first (a waitpid(-1) or wait() loop, SIGCHLD set to SIG_IGN or
/// SA_NOCLDWAIT): the job then still fails at once, with status_lost() true
/// and a message saying that the exit status was lost.
class broken_worker : public error {
 public:
  /// `signal` is 0 when the worker exited with `exit_code`; `exit_code` is -1
  /// when it was killed; both (0 and -1) when its exit status was lost.
  broken_worker(int pid, int signal, int exit_code, std::string function);
  /// The worker's pid.
  [[nodiscard]] int pid() const noexcept { return pid_; }
  /// The signal that killed it, or 0.
  [[nodiscard]] int signal() const noexcept { return signal_; }
  /// Its exit code, or -1 when killed by a signal or when its status was lost.
  [[nodiscard]] int exit_code() const noexcept { return exit_code_; }
  /// True when something else in this process reaped the worker first, so
  /// that how it ended is unknown.
  [[nodiscard]] bool status_lost() const noexcept { return signal_ == 0 && exit_code_ == -1; }
  /// The job's function.
  [[nodiscard]] const std::string& function() const noexcept { return function_; }

 private:
  int pid_;                // the dead worker
  int signal_;             // killing signal, or 0
  int exit_code_;          // exit status, or -1
  std::string function_;   // the job it held
};

/// The pool cannot run jobs any more: the initializer failed, workers kept
/// dying during start-up, or the fork server is gone. Every pending and later
/// job fails with it; the message says why.
class broken_pool : public error {
 public:
  using error::error;
};

/// Options of a process_pool.
struct process_pool_options {
  unsigned workers = 0;              ///< worker processes; 0 = std::thread::hardware_concurrency()
  unsigned max_tasks_per_child = 0;  ///< a worker is replaced after this many jobs; 0 = never
  void (*initializer)() = nullptr;   ///< runs once in each new worker; if it throws, the pool is broken
  std::size_t memory_limit = 0;      ///< RLIMIT_AS of each worker in bytes; 0 = unlimited
};

/// What shutdown does with the jobs not yet finished.
struct process_pool_shutdown_options {
  bool wait = true;             ///< the blocking form waits until every worker is reaped
  bool cancel_pending = false;  ///< jobs not yet started end with coring::cancelled
  bool kill = false;            ///< running jobs' workers are SIGKILLed; those jobs end with coring::cancelled (implies cancel_pending)
};

/// How process_pool::map splits its input.
struct process_pool_map_options {
  std::size_t chunk_size = 1;     ///< elements per job
  std::size_t max_in_flight = 0;  ///< chunks submitted and not yet collected; 0 = 2 × workers
};

namespace detail {
class process_pool_impl;

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

/// The fork server's pid in this process, or 0 if none was started (for tests).
[[nodiscard]] int fork_server_pid() noexcept;
/// The pid of the fork server's standby (it takes over if the server dies), or 0 (for tests).
[[nodiscard]] int fork_server_standby_pid() noexcept;

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

}  // namespace detail

/// A pool of worker processes that run plain functions.
/// **Thread safety:** every member may be called from any thread, except
/// that the blocking shutdown() and the destructor must not run on an event
/// loop thread (they wait for the workers to be reaped).
class process_pool {
 public:
  /// See process_pool_options.
  using options = process_pool_options;
  /// See process_pool_shutdown_options.
  using shutdown_options = process_pool_shutdown_options;
  /// See process_pool_map_options.
  using map_options = process_pool_map_options;

  /// Starts the pool: a manager thread, then `workers` processes forked by
  /// the fork server (started lazily here if start_fork_server() was not called).
  /// **Errors:** coring::error if the fork server must be started now but the
  /// process already has other threads (fork would be unsafe): call
  /// start_fork_server() at the top of main; io_error if a descriptor or the
  /// thread cannot be created. A worker that fails to start shows later, as
  /// broken_pool on the jobs.
  explicit process_pool(const options& opts = {});
  /// shutdown() with the default options (waits for every queued job).
  ~process_pool();
  process_pool(const process_pool&) = delete;
  process_pool& operator=(const process_pool&) = delete;

  /// Forks the fork server now, while the process is single-threaded. Call
  /// it first in main (or from a global constructor). Idempotent; in a child
  /// process made by fork() it starts a fresh server for the child.
  /// **Errors:** io_error if the socket or the fork fails.
  /// **Thread safety:** any thread, but it must be the only thread for the fork to be safe.
  static void start_fork_server();

  /// Runs `fn(args...)` in a worker. `fn` must be a function pointer or a
  /// lambda without captures; arguments are converted to fn's parameter
  /// types (decayed) and encoded now, so the caller may drop them at once.
  /// Messages name the function by its demangled symbol (from the dynamic
  /// symbol table, else the binary's own .symtab), else "job at 0x...".
  /// Returns a future<R>, R being fn's (decayed) result type.
  /// **Cancellation:** a worker holds one job at a time, so a job starts
  /// (running() turns true) only when it is handed to an idle worker, which
  /// runs it at once. future::cancel() (or cancelling a task awaiting the
  /// future) before that drops the job: it never runs, cancel() returns true
  /// and the future ends with coring::cancelled. Cancelling a running job
  /// returns false and SIGKILLs its worker (which is replaced); the job ends
  /// with coring::cancelled, or with its result if it had finished first. No
  /// other job is touched. This is how a per-job timeout is written:
  /// `if (!f.wait_for(2s)) f.cancel();`.
  /// **Errors (in the future):** remote_error if the job threw;
  /// broken_worker if its worker died; broken_pool if the pool is broken;
  /// coring::error "process pool is shut down" after shutdown; decode_error
  /// for a malformed reply (a bug). Encoding errors throw from submit itself.
  /// **Thread safety:** any thread.
  template <class Fn, class... Args>
  [[nodiscard]] auto submit(Fn fn, Args&&... args);

  /// Applies the one-parameter function `fn` to every element of `range`,
  /// `opts.chunk_size` elements per job, keeping at most `opts.max_in_flight`
  /// jobs submitted at once; results are in input order. Returns a lazy
  /// task<std::vector<R>>; the elements are copied (converted to fn's
  /// parameter type) at the call, so `range` may die before the task runs.
  /// **Cancellation:** cancelling the task cancels its chunks (running ones
  /// kill their worker) and ends with coring::cancelled.
  /// **Errors:** the first failing chunk's error (remote_error, broken_worker, ...);
  /// the chunks still in flight are then cancelled.
  template <class Fn, class Range>
  [[nodiscard]] auto map(Fn fn, Range&& range, map_options opts = {});

  /// Starts shutting the pool down and returns a future that ends once every
  /// worker is reaped and every descriptor closed. No job is accepted afterwards.
  /// **Cancellation:** dropping or cancelling the future does not stop the shutdown.
  /// **Thread safety:** any thread; calls after the first also wait for the end
  /// (their options are merged: cancel/kill can be escalated).
  [[nodiscard]] future<void> shutdown_async(shutdown_options opts = {});
  /// shutdown_async(), then (if opts.wait) blocks until it is complete.
  /// **Requires:** with opts.wait, not on an event loop thread (co_await shutdown_async there).
  void shutdown(shutdown_options opts = {});

  /// The pids of the live workers (for tests and diagnostics). Blocks briefly.
  [[nodiscard]] std::vector<int> worker_pids() const;
  /// True once the pool is broken (see broken_pool).
  [[nodiscard]] bool broken() const noexcept;
  /// The number of worker processes the pool keeps.
  [[nodiscard]] unsigned size() const noexcept;

 private:
  template <class F, class... Args>
  [[nodiscard]] auto submit_pointer(F ptr, Args&&... args);
  template <class F, class Range>
  [[nodiscard]] auto map_pointer(F ptr, Range&& range, map_options opts);
  // Queues a type-erased job; fails its state at once if the pool is shut down or broken.
  void submit_spec(detail::process_job_spec spec);

  std::unique_ptr<detail::process_pool_impl> impl_;  // the manager thread and its state
};

// ---------------------------------------------------------------------------
// Implementation.

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
