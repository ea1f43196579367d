#pragma once
// The process pool's manager: one thread per pool that owns the workers. It
// takes submitted jobs, gives them to ready workers, reads the replies, sees
// workers die (their pidfds, through its ring), replaces them, and completes
// every job's future exactly once.
//
// An idle worker gets one job, started (its future says running()) as it is
// written, since the worker runs it at once. While more jobs wait than idle
// workers could take, a busy worker also gets a few look-ahead jobs behind
// its running one: those are handed over, not started, each with a claim
// slot (process_pool_claims.hpp) that the worker claims before it begins the
// job. A cancel or the manager may claim a look-ahead job first: the worker
// then skips it. So a job cancelled before it starts never runs, running()
// says true only once the worker has claimed the job, and before killing a
// worker to cancel its running job the manager claims back every look-ahead
// job behind it (and kills only if none had begun), so that no other job is
// touched.

#include <coring/process_pool.hpp>

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "process_pool_ring.hpp"
#include "process_pool_wire.hpp"

namespace coring::detail {

/// One job as the manager holds it.
struct process_job {
  process_job_spec spec;                    // what to run, and the future's state (one reference)
  const registered_job* named = nullptr;    // its function's registration: it travels by name
  bool chunk = false;                       // named: a chunk of process_pool::map

  /// The job's function as messages name it: its registered name, else its symbol.
  std::string function() const;
};

/// A job written to a worker; the worker answers each, in order.
struct sent_job {
  std::unique_ptr<process_job> job;  // null once the manager claimed it back (the worker skips it)
  std::uint64_t id = 0;              // its id in messages, unique in the process (a claim id)
  std::uint32_t slot = 0;            // a look-ahead job's claim slot + 1; 0: started when sent
  bool cancel_target = false;        // the worker was killed to cancel this job
};

/// Why the manager SIGKILLed a worker.
enum class kill_reason : std::uint8_t { none, cancel, shutdown, broken };

/// One worker process as the manager sees it.
struct process_worker {
  pid_t pid = 0;                               // its pid
  int pidfd = -1;                              // polls readable when it exits; reaps it
  int sock = -1;                               // our end of its socket (-1 once closed)
  bool ready = false;                          // sent k_ready: the initializer ran
  bool retiring = false;                       // max_tasks_per_child reached: close when idle
  kill_reason killed = kill_reason::none;      // why we SIGKILLed it, if we did
  unsigned sent = 0;                           // jobs given to it (counted by the parent)
  std::deque<sent_job> jobs;                   // written to it and not answered, oldest first
  bool unsent = false;                         // jobs' only one waits for room in the socket (POLLOUT armed)
};

class process_pool_impl;

/// How a job's cancel hook reaches its pool. Reference-counted: the pool
/// holds one reference, each job's state another (process_job_link), so the
/// hook, which a consumer may run just as the job ends and the pool is
/// destroyed, always finds the link alive, and finds out under its mutex
/// whether the pool still is.
class process_pool_link {
 public:
  explicit process_pool_link(process_pool_impl* pool) noexcept : pool_(pool) {}

  /// Takes one more reference.
  void add_ref() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  /// Drops one; the last one deletes the link.
  void release() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
  /// The hook of every job's state (`job`: its process_job_link): asks the
  /// pool, if it is still there, to stop the running job of state `s`.
  static void on_cancel_running(future_state_base* s, void* job) noexcept;
  /// The claim hook of every job's state: reads (and if `stop`, claims for
  /// a cancel) the claim word of the look-ahead job `job` (a process_job_link).
  /// Touches only the claim table, which outlives every pool.
  static future_state_base::claim on_handed(const future_state_base* s, void* job, bool stop) noexcept;
  /// The pool is going away: later hooks do nothing (their jobs have ended).
  void detach() noexcept;

 private:
  std::atomic<int> refs_{1};  // the pool's, plus one per job state
  std::mutex m_;              // held while a hook uses pool_, and to clear it
  process_pool_impl* pool_;   // the pool, until it detaches
};

/// The state behind a process_pool: shared with submitting threads under m_,
/// the rest owned by the manager thread.
class process_pool_impl {
 public:
  /// Starts the fork server if needed and the manager thread.
  /// **Errors:** as process_pool's constructor.
  explicit process_pool_impl(const process_pool_options& opts);
  ~process_pool_impl();
  process_pool_impl(const process_pool_impl&) = delete;
  process_pool_impl& operator=(const process_pool_impl&) = delete;

  /// The number of workers kept.
  unsigned size() const noexcept { return target_; }
  /// True once the pool is broken.
  bool broken() const noexcept { return broken_.load(std::memory_order_acquire); }
  /// The live workers' pids.
  std::vector<int> pids() const;
  /// Queues a job, or fails it at once if the pool is shut down or broken.
  void submit(process_job_spec spec);
  /// Starts (or escalates) the shutdown; `waiter` completes when it is over.
  void request_shutdown(const process_pool_shutdown_options& o, future_state<void>* waiter);
  /// Joins the manager thread (once it has finished).
  void join();
  /// Asks the manager to stop the running job of state `s` (from the cancel hook).
  void request_cancel(future_state_base* s) noexcept;

 private:
  using job_ptr = std::unique_ptr<process_job>;

  static void complete_waiter(future_state<void>* w) noexcept;
  static void fail_unstarted(process_job& j, std::exception_ptr e) noexcept;
  static void fail_started(process_job& j, std::exception_ptr e) noexcept;
  static void complete(process_job& j, std::string_view bytes) noexcept;
  void wake_locked() noexcept;

  // ---- manager thread ----
  void run() noexcept;
  void take_requests() noexcept;
  void maintain() noexcept;
  void update_pids();
  enum class reclaimed : std::uint8_t { taken, cancelled, started };
  static bool can_take(const process_worker& w) noexcept;
  std::size_t idle_workers() const noexcept;
  bool give(process_worker& w) noexcept;
  void dispatch(process_worker& w) noexcept;
  bool send_job(process_worker& w) noexcept;
  reclaimed reclaim(sent_job& e) noexcept;
  void free_slot(std::uint32_t slot) noexcept;
  bool steal_for_idle() noexcept;
  static bool answers(const process_worker& w, std::uint64_t id) noexcept;
  void read_replies(process_worker& w) noexcept;
  void finish_reply(process_worker& w, const msg_header& h, std::string_view payload) noexcept;
  void kill(process_worker& w, kill_reason why) noexcept;
  void handle_exit(process_worker& w) noexcept;
  void cancel_running(future_state_base* s) noexcept;
  void begin_shutdown(const process_pool_shutdown_options& o) noexcept;
  void fail_queued(int err, const std::string& what) noexcept;
  std::string broken_text();
  void break_pool(const std::string& why) noexcept;
  void fail_all_pending() noexcept;
  void close_watched(int& fd) noexcept;
  void watch_fork_server() noexcept;

  process_pool_options opts_;     // as given
  unsigned target_ = 1;           // workers to keep
  process_pool_link* link_;       // our reference; each job's state holds another

  // Shared with submitting threads, under m_.
  mutable std::mutex m_;
  std::deque<job_ptr> incoming_;                   // submitted, not yet seen by the manager
  std::vector<future_state_base*> cancels_;        // running jobs to cancel (one reference each)
  std::vector<future_state<void>*> waiters_;       // shutdown futures
  process_pool_shutdown_options shutdown_opts_{};  // merged options of the shutdown calls
  bool shutdown_requested_ = false;                // a shutdown call was made
  bool accepting_ = true;                          // false once shutdown was called
  bool manager_done_ = false;                      // the manager thread has finished
  std::string broken_message_;                     // why the pool is broken
  std::vector<int> pids_;                          // live workers' pids, for worker_pids()
  std::atomic<bool> broken_{false};                // written under m_, read lock-free
  std::atomic<bool> wake_pending_{false};          // an eventfd write is pending: no need for another
  int wake_fd_ = -1;                               // eventfd the manager polls; closed by it at its end

  // Manager thread only.
  std::optional<ring_waiter> waiter_;                    // its ring (made on that thread)
  std::deque<job_ptr> pending_;                          // accepted, not started: ours to drop or run
  std::deque<job_ptr> requeued_;                         // started, but their worker died before reading them
  std::vector<std::unique_ptr<process_worker>> workers_;  // live (unreaped) workers
  receiver rx_;                                          // receive buffer for replies
  unsigned startup_failures_ = 0;                        // workers in a row that died before ready
  std::vector<std::uint32_t> free_slots_;                // claim slots we hold, free (all returned at the end)
  int spawn_errno_ = 0;                                  // why the last start of a worker failed, or 0
  std::string spawn_error_;                              // what failed then
  std::chrono::steady_clock::time_point spawn_retry_at_;  // no new try before, while others run
  bool shutting_ = false;                                // shutdown has begun
  std::vector<int> server_fds_;                          // dups of the fork server processes' pidfds
  std::uint64_t server_generation_ = ~std::uint64_t{0};  // theirs (see fork_server_generation)

  std::mutex join_m_;   // serialises joins of thread_
  std::thread thread_;  // the manager
};

}  // namespace coring::detail
