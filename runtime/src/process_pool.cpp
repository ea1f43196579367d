// process_pool: the public face (its error types and members) and, for now,
// the manager thread.
//
// Processes:
//   main ──(SEQPACKET, spawn requests)──> fork server   (forked early, single-threaded)
//   fork server ──clone3(CLONE_PARENT|CLONE_PIDFD)──> worker   (main is its parent)
//   fork server ──SCM_RIGHTS{pidfd, socket}──> main
//   main (manager thread) <──(SEQPACKET per worker: jobs, replies)──> worker
//
// process_pool_wire.* is the format of those messages, process_pool_worker.*
// the worker, process_pool_fork_server.* the fork server, and
// process_pool_ring.* the manager's wait. The manager thread waits through its
// own io_uring, so a worker's death is seen through the ring; it does no
// coroutine work of its own, and futures complete from it into their awaiting
// loops' inboxes (or wake blocked threads).

#include <coring/process_pool.hpp>

#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "process_pool_fork_server.hpp"
#include "process_pool_ring.hpp"
#include "process_pool_wire.hpp"
#include "symbol_names.hpp"

namespace coring {

namespace {

std::string signal_text(int sig) {
  const char* abbrev = ::sigabbrev_np(sig);
  std::string s = "signal " + std::to_string(sig);
  if (abbrev) s += std::string(" (SIG") + abbrev + ")";
  return s;
}

std::string remote_message(const std::string& type, const std::string& message, const std::string& function) {
  std::string s = "job " + function + " raised " + type;
  if (!message.empty()) s += ": " + message;
  return s;
}

std::string broken_message(int pid, int sig, int code, const std::string& function) {
  std::string s = "worker " + std::to_string(pid) + " running " + function;
  if (sig != 0) {
    s += " was killed by " + signal_text(sig);
  } else {
    s += " exited with code " + std::to_string(code);
  }
  return s;
}

}  // namespace

remote_error::remote_error(std::string type_name, std::string message, std::string function)
    : error(remote_message(type_name, message, function)),
      type_name_(std::move(type_name)),
      message_(std::move(message)),
      function_(std::move(function)) {}

broken_worker::broken_worker(int pid, int signal, int exit_code, std::string function)
    : error(broken_message(pid, signal, exit_code, function)),
      pid_(pid),
      signal_(signal),
      exit_code_(exit_code),
      function_(std::move(function)) {}

namespace detail {

// ---------------------------------------------------------------------------
// The manager.

namespace {

struct job {
  process_job_spec spec;
  std::uint64_t id = 0;
  bool started = false;    // state->start() succeeded (it stays "running" if requeued)
  bool abandoned = false;  // already completed (cancelled) while queued in a worker: drop its reply
};

enum class kill_reason : std::uint8_t { none, cancel, shutdown, broken };

struct worker {
  pid_t pid = 0;
  int pidfd = -1;
  int sock = -1;
  bool ready = false;       // sent k_ready: the initializer ran
  bool retiring = false;    // max_tasks_per_child reached: no more jobs, close when idle
  kill_reason killed = kill_reason::none;  // why we SIGKILLed it, if we did
  unsigned sent = 0;        // jobs given to it (counted by the parent)
  std::deque<std::unique_ptr<job>> inflight;  // sent, reply not yet read; front is the one running
};

std::exception_ptr cancelled_ptr() { return std::make_exception_ptr(cancelled{}); }

}  // namespace

class process_pool_impl {
 public:
  explicit process_pool_impl(const process_pool_options& opts) : opts_(opts) {
    target_ = opts.workers ? opts.workers : std::max(1u, std::thread::hardware_concurrency());
    ensure_fork_server(true);
    wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd_ < 0) throw io_error(errno, "process_pool: eventfd");
    try {
      thread_ = std::thread([this] { run(); });
    } catch (...) {
      close_fd(wake_fd_);
      throw;
    }
  }

  ~process_pool_impl() { join(); }

  unsigned size() const noexcept { return target_; }
  bool broken() const noexcept { return broken_.load(std::memory_order_acquire); }

  std::vector<int> pids() const {
    std::lock_guard lock(m_);
    return pids_;
  }

  void submit(process_job_spec spec) {
    auto j = std::make_unique<job>();
    j->spec = std::move(spec);
    j->spec.state->on_cancel_running(&on_cancel_running, this);
    std::exception_ptr refuse;
    {
      std::lock_guard lock(m_);
      if (!accepting_) {
        refuse = std::make_exception_ptr(error("process pool is shut down: job " + function_name(j->spec.fn) + " refused"));
      } else if (broken()) {
        refuse = std::make_exception_ptr(broken_pool(broken_message_));
      } else {
        incoming_.push_back(std::move(j));
        wake_locked();
        return;
      }
    }
    fail_unstarted(*j, std::move(refuse));
  }

  void request_shutdown(const process_pool_shutdown_options& o, future_state<void>* waiter) {
    {
      std::lock_guard lock(m_);
      accepting_ = false;
      if (!manager_done_) {
        shutdown_requested_ = true;
        shutdown_opts_.cancel_pending = shutdown_opts_.cancel_pending || o.cancel_pending || o.kill;
        shutdown_opts_.kill = shutdown_opts_.kill || o.kill;
        waiters_.push_back(waiter);
        wake_locked();
        return;
      }
    }
    complete_waiter(waiter);
  }

  void join() {
    std::lock_guard lock(join_m_);
    if (thread_.joinable()) thread_.join();
  }

 private:
  static void complete_waiter(future_state<void>* w) noexcept {
    if (w->start()) {
      w->set_value();
      w->finish();
    }
    w->release();
  }

  // Fails a job that may not have started yet (the consumer may be cancelling it concurrently).
  static void fail_unstarted(job& j, std::exception_ptr e) noexcept {
    if (j.started || j.spec.state->start()) j.spec.state->fail(std::move(e));
    j.spec.state->release();
    j.spec.state = nullptr;
  }

  // Fails a started job, unless it was already completed.
  static void fail_started(job& j, std::exception_ptr e) noexcept {
    if (!j.abandoned) j.spec.state->fail(std::move(e));
    j.spec.state->release();
    j.spec.state = nullptr;
  }

  void complete(job& j, std::string_view bytes) noexcept {
    future_state_base* s = j.spec.state;
    if (!j.abandoned) {
      std::exception_ptr e;
      try {
        j.spec.complete(s, bytes);
      } catch (...) {
        e = std::current_exception();
      }
      // Published outside the handler (see fail_all_pending).
      if (e) {
        s->fail(std::move(e));
      } else {
        s->finish();
      }
    }
    s->release();
    j.spec.state = nullptr;
  }

  // The future's cancel() found the job running: ask the manager to stop it.
  static void on_cancel_running(future_state_base* s, void* ctx) noexcept {
    auto* self = static_cast<process_pool_impl*>(ctx);
    s->add_ref();  // so that the address cannot be reused before the manager looks at it
    {
      std::lock_guard lock(self->m_);
      if (!self->manager_done_) {
        self->cancels_.push_back(s);
        self->wake_locked();
        return;
      }
    }
    s->release();
  }

  void wake_locked() noexcept {
    // One eventfd write per manager sleep at most.
    if (!wake_pending_.exchange(true, std::memory_order_acq_rel)) {
      std::uint64_t one = 1;
      ssize_t r = ::write(wake_fd_, &one, sizeof one);
      (void)r;
    }
  }

  // ---- manager thread ----

  // Closes an fd the manager may be watching (see ring_waiter::close).
  void close_watched(int& fd) noexcept {
    if (waiter_) {
      waiter_->close(fd);
    } else {
      close_fd(fd);
    }
  }

  void run() noexcept {
    std::vector<std::unique_ptr<job>> taken;
    std::vector<future_state_base*> cancels;
    try {
      waiter_.emplace();
    } catch (const std::exception& e) {
      break_pool(std::string("process pool manager: ") + e.what());
    }
    for (;;) {
      maintain();
      if (shutting_ && pending_.empty() && workers_.empty()) break;

      if (waiter_) {
        waiter_->watch(wake_fd_);
        for (auto& w : workers_) {
          waiter_->watch(w->sock);
          waiter_->watch(w->pidfd);
        }
        waiter_->wait();
      } else {
        // No ring could be made: a broken pool only needs its wake-ups.
        pollfd pfd{wake_fd_, POLLIN, 0};
        ::poll(&pfd, 1, -1);
      }

      if (!waiter_ || waiter_->take_ready(wake_fd_)) {
        // Read first, then clear the flag: a producer that saw the flag set
        // before the clear has pushed under m_, which we take below; one that
        // sets it after the clear writes the eventfd again. (Clearing before
        // the read could swallow that write and leave a job in incoming_.)
        std::uint64_t v;
        ssize_t r = ::read(wake_fd_, &v, sizeof v);
        (void)r;
        wake_pending_.store(false, std::memory_order_seq_cst);
        bool shut = false;
        process_pool_shutdown_options so;
        {
          std::lock_guard lock(m_);
          while (!incoming_.empty()) {
            pending_.push_back(std::move(incoming_.front()));
            incoming_.pop_front();
          }
          cancels.swap(cancels_);
          if (shutdown_requested_) {
            shut = true;
            so = shutdown_opts_;
          }
        }
        for (future_state_base* s : cancels) {
          cancel_job(s);
          s->release();
        }
        cancels.clear();
        if (shut) begin_shutdown(so);
      }
      // Collect first: handle_exit() removes from workers_.
      std::vector<worker*> exited;
      for (auto& wp : workers_) {
        worker* w = wp.get();
        if (!waiter_) continue;
        if (waiter_->take_ready(w->sock)) read_replies(*w);
        if (waiter_->take_ready(w->pidfd)) exited.push_back(w);
      }
      for (worker* w : exited) handle_exit(*w);
      if (broken() && !pending_.empty()) fail_all_pending();
    }
    std::vector<future_state<void>*> waiters;
    {
      std::lock_guard lock(m_);
      manager_done_ = true;
      accepting_ = false;
      waiters.swap(waiters_);
      cancels.swap(cancels_);
      // Jobs that raced with the shutdown request.
      while (!incoming_.empty()) {
        taken.push_back(std::move(incoming_.front()));
        incoming_.pop_front();
      }
      close_watched(wake_fd_);
      pids_.clear();
    }
    // Close the ring before anyone learns that the shutdown is complete: a
    // caller counting its descriptors then must not find ours.
    waiter_.reset();
    for (auto& j : taken) fail_unstarted(*j, std::make_exception_ptr(error("process pool is shut down")));
    for (future_state_base* s : cancels) s->release();
    for (auto* w : waiters) complete_waiter(w);
  }

  // Spawns workers as needed, dispatches pending jobs, retires idle workers.
  void maintain() noexcept {
    if (broken()) {
      for (auto& w : workers_) kill(*w, kill_reason::broken);
    }
    std::size_t want = 0;
    if (!broken()) {
      want = target_;
      if (shutting_ && pending_.empty()) want = 0;
    }
    std::size_t live = 0;
    for (auto& w : workers_) live += w->retiring || w->killed != kill_reason::none ? 0 : 1;
    while (live < want) {
      try {
        spawned s = spawn_worker(opts_.initializer, opts_.memory_limit);
        auto w = std::make_unique<worker>();
        w->pid = s.pid;
        w->pidfd = s.pidfd;
        w->sock = s.sock;
        workers_.push_back(std::move(w));
        ++live;
      } catch (const std::exception& e) {
        break_pool(std::string("cannot start a worker: ") + e.what());
        return;
      }
    }
    update_pids();
    dispatch();
    for (auto& w : workers_) {
      if (w->sock >= 0 && w->inflight.empty() && (w->retiring || (shutting_ && pending_.empty()))) {
        close_watched(w->sock);  // the worker reads end of stream and exits
      }
    }
  }

  void update_pids() {
    std::vector<int> p;
    for (auto& w : workers_) p.push_back(w->pid);
    std::lock_guard lock(m_);
    pids_ = std::move(p);
  }

  void dispatch() noexcept {
    // First one job per idle worker, then, with a real backlog (two jobs per
    // worker or more), up to max_depth each, so that the next job already
    // waits in the worker's socket and it never idles between jobs. A small
    // backlog is not pipelined: a queued job should go to whichever worker
    // frees first, not wait behind a long one.
    const std::size_t deepest = pending_.size() >= 2 * workers_.size() ? max_depth : 1;
    for (std::size_t depth = 1; depth <= deepest && !pending_.empty(); ++depth) {
      for (auto& wp : workers_) {
        worker& w = *wp;
        if (pending_.empty()) break;
        if (!w.ready || w.sock < 0 || w.retiring || w.killed != kill_reason::none) continue;
        if (w.inflight.size() >= depth) continue;
        std::unique_ptr<job> j;
        while (!pending_.empty() && !j) {
          j = std::move(pending_.front());
          pending_.pop_front();
          if (!j->started) {
            if (!j->spec.state->start()) {  // cancelled while queued
              j->spec.state->release();
              j.reset();
              continue;
            }
            j->started = true;
          }
        }
        if (!j) break;
        if (!j->id) j->id = next_id_++;
        msg_header h{k_job, 0, j->id, reinterpret_cast<std::uintptr_t>(j->spec.invoke),
                     reinterpret_cast<std::uintptr_t>(j->spec.fn)};
        int err = send_message(w.sock, h, j->spec.args);
        if (err != 0) {
          // The worker is going away; its pidfd will tell. Keep the job.
          pending_.push_front(std::move(j));
          close_watched(w.sock);
          continue;
        }
        w.inflight.push_back(std::move(j));
        ++w.sent;
        if (opts_.max_tasks_per_child != 0 && w.sent >= opts_.max_tasks_per_child) w.retiring = true;
      }
    }
  }

  void read_replies(worker& w) noexcept {
    while (w.sock >= 0) {
      msg_header h{};
      std::string_view payload;
      int r = recv_message(w.sock, rx_, h, payload, true);
      if (r == -EAGAIN) return;
      if (r <= 0) {  // end of stream or error: the pidfd reports the exit
        close_watched(w.sock);
        return;
      }
      switch (h.kind) {
        case k_ready:
          w.ready = true;
          startup_failures_ = 0;
          break;
        case k_init_failed: {
          std::string what = "the initializer raised ";
          try {
            auto [type, message] = decode_all<std::string, std::string>(payload);
            what += type;
            if (!message.empty()) what += ": " + message;
          } catch (...) {
            what += "an exception";
          }
          break_pool(what + " (in worker " + std::to_string(w.pid) + ")");
          break;
        }
        case k_result:
        case k_raised: {
          if (w.inflight.empty() || w.inflight.front()->id != h.id) {
            kill(w, kill_reason::broken);  // protocol confusion: a bug; do not trust this worker
            return;
          }
          std::unique_ptr<job> j = std::move(w.inflight.front());
          w.inflight.pop_front();
          if (h.kind == k_result) {
            complete(*j, payload);
          } else {
            std::exception_ptr e;
            try {
              auto [type, message] = decode_all<std::string, std::string>(payload);
              e = std::make_exception_ptr(remote_error(std::move(type), std::move(message), function_name(j->spec.fn)));
            } catch (...) {
              e = std::current_exception();
            }
            fail_started(*j, std::move(e));
          }
          break;
        }
        default:
          kill(w, kill_reason::broken);
          return;
      }
    }
  }

  void kill(worker& w, kill_reason why) noexcept {
    if (w.killed != kill_reason::none) return;
    w.killed = why;
    ::syscall(SYS_pidfd_send_signal, w.pidfd, SIGKILL, nullptr, 0);
  }

  void handle_exit(worker& w) noexcept {
    read_replies(w);  // replies it sent before dying still count
    siginfo_t si{};
    int r;
    do {
      r = ::waitid(P_PIDFD, static_cast<id_t>(w.pidfd), &si, WEXITED);
    } while (r < 0 && errno == EINTR);
    int sig = 0, code = -1;
    if (r == 0) {
      if (si.si_code == CLD_EXITED) {
        code = si.si_status;
      } else {
        sig = si.si_status;
      }
    }  // else ECHILD: someone else reaped it (waitpid(-1) elsewhere); status unknown

    if (!w.ready && w.killed == kill_reason::none && !shutting_ && !broken()) {
      if (++startup_failures_ >= 3) {
        break_pool("workers keep dying during start-up (" + broken_message(w.pid, sig, code, "no job") + ")");
      }
    }
    if (!w.inflight.empty()) {
      std::unique_ptr<job> head = std::move(w.inflight.front());
      w.inflight.pop_front();
      std::exception_ptr e;
      if (w.killed == kill_reason::cancel || w.killed == kill_reason::shutdown) {
        e = cancelled_ptr();
      } else if (w.killed == kill_reason::broken) {
        e = std::make_exception_ptr(broken_pool(broken_text()));
      } else {
        e = std::make_exception_ptr(broken_worker(w.pid, sig, code, function_name(head->spec.fn)));
      }
      fail_started(*head, std::move(e));
      // The others never started: run them elsewhere, in their order.
      while (!w.inflight.empty()) {
        std::unique_ptr<job> j = std::move(w.inflight.back());
        w.inflight.pop_back();
        if (j->abandoned) {
          j->spec.state->release();
        } else if (w.killed == kill_reason::shutdown) {
          fail_started(*j, cancelled_ptr());
        } else {
          pending_.push_front(std::move(j));
        }
      }
    }
    close_watched(w.pidfd);
    close_watched(w.sock);
    auto it = std::find_if(workers_.begin(), workers_.end(), [&](auto& p) { return p.get() == &w; });
    workers_.erase(it);
    update_pids();
  }

  void cancel_job(future_state_base* s) noexcept {
    for (auto& w : workers_) {
      for (std::size_t i = 0; i < w->inflight.size(); ++i) {
        job& j = *w->inflight[i];
        if (j.spec.state != s || j.abandoned) continue;
        if (i == 0) {
          kill(*w, kill_reason::cancel);  // it is running: only killing stops it
        } else {
          // Queued behind the running one: it has not started, complete it now
          // and drop its reply when it comes.
          j.abandoned = true;
          s->fail(cancelled_ptr());
        }
        return;
      }
    }
    for (auto it = pending_.begin(); it != pending_.end(); ++it) {
      if ((*it)->spec.state == s) {  // requeued after its worker died: started, not running
        fail_started(**it, cancelled_ptr());
        pending_.erase(it);
        return;
      }
    }
  }

  void begin_shutdown(const process_pool_shutdown_options& o) noexcept {
    shutting_ = true;
    if (o.cancel_pending || o.kill) {
      while (!pending_.empty()) {
        std::unique_ptr<job> j = std::move(pending_.front());
        pending_.pop_front();
        fail_unstarted(*j, cancelled_ptr());
      }
    }
    if (o.kill) {
      for (auto& w : workers_) kill(*w, kill_reason::shutdown);
    }
  }

  std::string broken_text() {
    std::lock_guard lock(m_);
    return broken_message_;
  }

  void break_pool(const std::string& why) noexcept {
    if (broken()) return;
    {
      std::lock_guard lock(m_);
      broken_message_ = "process pool is broken: " + why;
      broken_.store(true, std::memory_order_release);
      // Jobs queued for us fail below, with the pending ones.
      while (!incoming_.empty()) {
        pending_.push_back(std::move(incoming_.front()));
        incoming_.pop_front();
      }
    }
    for (auto& w : workers_) kill(*w, kill_reason::broken);
    fail_all_pending();
  }

  // Each job gets an exception object of its own, and the manager keeps no
  // reference to it after publishing: exception_ptr's reference count lives in
  // uninstrumented libstdc++ code, so a shared one would look like a race to TSan.
  void fail_all_pending() noexcept {
    std::string why = broken_text();
    while (!pending_.empty()) {
      std::unique_ptr<job> j = std::move(pending_.front());
      pending_.pop_front();
      fail_unstarted(*j, std::make_exception_ptr(broken_pool(why)));
    }
  }

  process_pool_options opts_;  // as given
  unsigned target_ = 1;        // workers to keep

  // Shared with submitting threads, under m_.
  mutable std::mutex m_;
  std::deque<std::unique_ptr<job>> incoming_;          // submitted, not yet seen by the manager
  std::vector<future_state_base*> cancels_;            // running jobs to cancel (one reference each)
  std::vector<future_state<void>*> waiters_;           // shutdown futures
  process_pool_shutdown_options shutdown_opts_{};      // merged options of the shutdown calls
  bool shutdown_requested_ = false;                    // a shutdown call was made
  bool accepting_ = true;                              // false once shutdown was called
  bool manager_done_ = false;                          // the manager thread has finished
  std::string broken_message_;                         // why the pool is broken
  std::vector<int> pids_;                              // live workers' pids, for worker_pids()
  std::atomic<bool> broken_{false};                    // written under m_, read lock-free
  std::atomic<bool> wake_pending_{false};              // an eventfd write is pending: no need for another
  int wake_fd_ = -1;                                   // eventfd the manager polls; closed by it at its end
  std::optional<ring_waiter> waiter_;  // the manager thread's ring (made on that thread)

  // Manager thread only.
  std::deque<std::unique_ptr<job>> pending_;           // accepted, not yet sent to a worker
  std::vector<std::unique_ptr<worker>> workers_;       // live (unreaped) workers
  receiver rx_;                                        // receive buffer for replies
  unsigned startup_failures_ = 0;                      // workers in a row that died before ready
  std::uint64_t next_id_ = 1;                          // job ids, to check reply order
  bool shutting_ = false;                              // shutdown has begun

  std::mutex join_m_;   // serialises joins of thread_
  std::thread thread_;  // the manager
};

}  // namespace detail

process_pool::process_pool(const options& opts) : impl_(std::make_unique<detail::process_pool_impl>(opts)) {}

process_pool::~process_pool() {
  if (impl_) shutdown({.wait = true});
}

void process_pool::start_fork_server() {
  detail::ensure_fork_server(false);
}

void process_pool::submit_spec(detail::process_job_spec spec) { impl_->submit(std::move(spec)); }

future<void> process_pool::shutdown_async(shutdown_options opts) {
  auto* st = new detail::future_state<void>();
  impl_->request_shutdown(opts, st);
  return future<void>(st);
}

void process_pool::shutdown(shutdown_options opts) {
  future<void> f = shutdown_async(opts);
  if (opts.wait) {
    f.wait();
    impl_->join();
  }
}

std::vector<int> process_pool::worker_pids() const { return impl_->pids(); }

bool process_pool::broken() const noexcept { return impl_->broken(); }

unsigned process_pool::size() const noexcept { return impl_->size(); }

}  // namespace coring
