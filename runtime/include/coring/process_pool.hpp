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
//
// A job names its function by address, valid in the workers because they
// are forked from this program's image: that covers the program and every
// library loaded before the fork server started, and nothing loaded later
// (no dlopen() after start: such a job fails with remote_error, "not loaded
// in the worker"). A function registered with CORING_REGISTER_JOB travels by
// name instead, which a process not forked from this image can resolve.

#include <coring/error.hpp>
#include <coring/future.hpp>
#include <coring/serialize.hpp>
#include <coring/task.hpp>

#include <cstddef>
#include <memory>
#include <string>
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
/// dying during start-up, or no fork server is left (the server and its
/// standby both died). Every pending and later job fails with it; the
/// message says why.
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
struct process_job_spec;
/// The fork server's pid in this process, or 0 if none was started (for tests).
[[nodiscard]] int fork_server_pid() noexcept;
/// The pid of the fork server's standby (it takes over if the server dies), or 0 (for tests).
[[nodiscard]] int fork_server_standby_pid() noexcept;
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
  /// thread cannot be created. A worker that fails to start shows later, on
  /// the jobs: io_error (with the errno) when it failed for want of a
  /// descriptor, memory or a process slot and no other worker is left to run
  /// them; broken_pool when its initializer failed, when workers keep dying
  /// as they start, or when no fork server is left.
  explicit process_pool(const options& opts = {});
  /// shutdown() with the default options (waits for every queued job).
  ~process_pool();
  process_pool(const process_pool&) = delete;
  process_pool& operator=(const process_pool&) = delete;

  /// Forks the fork server now, while the process is single-threaded. Call
  /// it first in main (or from a global constructor). Idempotent; in a child
  /// process made by fork() it starts a fresh server for the child. The
  /// server keeps only stdin, stdout and stderr of this process's
  /// descriptors, resets every signal disposition and the signal mask, and
  /// ignores SIGINT (the terminal's Ctrl-C is for this process to handle);
  /// its workers inherit that. It also clones a standby of itself, which
  /// takes over if it dies (it is then reaped); pools break only if both die.
  /// **Errors:** io_error if the socket or the fork fails.
  /// **Thread safety:** any thread, but it must be the only thread for the fork to be safe.
  static void start_fork_server();

  /// Runs `fn(args...)` in a worker. `fn` must be a function pointer or a
  /// lambda without captures; arguments are converted to fn's parameter
  /// types (decayed) and encoded now, so the caller may drop them at once.
  /// Messages name the function by its registered name (CORING_REGISTER_JOB),
  /// else its demangled symbol (from the dynamic symbol table, else the
  /// binary's own .symtab), else "job at 0x...".
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
  /// broken_worker if its worker died (status_lost() if something else
  /// reaped it); broken_pool if the pool is broken; io_error with the errno
  /// when this process failed to pass the job or its result (EMFILE, ENOMEM:
  /// the worker lives on); coring::error "process pool is shut down" after
  /// shutdown; decode_error for a malformed reply (a bug). Encoding errors
  /// throw from submit itself.
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

/// Registers the plain function `fn` as a process-pool job under its name
/// as written: `CORING_REGISTER_JOB(geometry::area);` registers
/// "geometry::area". Write it at namespace scope, in one .cpp file (it
/// registers during static initialisation). Jobs of a registered function
/// travel by that name instead of by address, so that a process not forked
/// from this program's image can run them (it registers the same function
/// under the same name), and messages use the name. The function's argument
/// and result types must be serializable: checked here, at compile time.
/// **Requires:** no other function registered under the same name (checked
/// by CORING_ASSERT; in release builds the first registration stays).
#define CORING_REGISTER_JOB(fn) CORING_REGISTER_JOB_AS(fn, #fn)

/// Registers `fn` under `name`, a string: for an overloaded function (pass
/// `static_cast<long (*)(int)>(fib)`), a lambda without captures, or a name
/// of your choosing. See CORING_REGISTER_JOB.
#define CORING_REGISTER_JOB_AS(fn, name)                                                                      \
  [[maybe_unused]] static const ::coring::detail::job_registration CORING_DETAIL_JOB_CONCAT(coring_job_, \
                                                                                            __COUNTER__)(fn, name)

}  // namespace coring

#include <coring/detail/process_pool_impl.hpp>  // template bodies and job machinery
