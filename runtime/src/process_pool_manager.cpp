#include "process_pool_manager.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "process_pool_claims.hpp"
#include "process_pool_fork_server.hpp"
#include "symbol_names.hpp"
#include "thread_signals.hpp"

namespace coring::detail {

namespace {

std::exception_ptr cancelled_ptr() { return std::make_exception_ptr(cancelled{}); }

// sendmsg errors that mean the worker's end is closed: it is gone, and its pidfd will say how.
bool peer_gone(int err) noexcept { return err == EPIPE || err == ECONNRESET || err == ENOTCONN; }

// Look-ahead jobs written behind a worker's running job, at most. They hide
// the manager's turnaround between a worker's jobs (8, as many as the old
// pipelining wrote, ran a batch of trivial jobs a little faster than 4); an
// idle worker claims them back one at a time when nothing else is queued.
constexpr std::size_t look_ahead = 8;

}  // namespace

void process_pool_link::on_cancel_running(future_state_base* s, void* job) noexcept {
  auto* self = static_cast<process_job_link*>(job)->link;
  std::lock_guard lock(self->m_);
  if (self->pool_) self->pool_->request_cancel(s);
}

future_state_base::claim process_pool_link::on_handed(const future_state_base*, void* job, bool stop) noexcept {
  using claim = future_state_base::claim;
  // The stage's acquire load (in the caller) shows the ticket written before
  // hand_over(), or a later one.
  std::uint64_t t = static_cast<process_job_link*>(job)->ticket.load(std::memory_order_acquire);
  if (t == 0) return claim::moved;  // being taken back
  const std::uint64_t id = t >> 16;
  std::atomic<std::uint64_t>& word = claim_word(static_cast<std::uint32_t>(t & 0xffff));
  std::uint64_t w = word.load(std::memory_order_acquire);
  for (;;) {
    // Another id: the slot went to another job since, after the manager had
    // moved this job's stage on.
    if (claim_id_of(w) != id) return claim::moved;
    switch (claim_state_of(w)) {
      case claim_queued:
        if (!stop) return claim::queued;
        if (word.compare_exchange_weak(w, claim_word_of(id, claim_cancelled), std::memory_order_acq_rel,
                                       std::memory_order_acquire)) {
          return claim::stopped;
        }
        continue;  // w reloaded: the worker or the manager claimed it, or a spurious failure
      case claim_running:
        return claim::started;
      case claim_cancelled:
        // Stopped by a cancel: ours (peeking) or another's, which ends it.
        return stop ? claim::moved : claim::stopped;
      default:
        return claim::moved;  // taken back: its stage turns pending
    }
  }
}

void process_pool_link::detach() noexcept {
  std::lock_guard lock(m_);
  pool_ = nullptr;
}

process_job_link::~process_job_link() {
  if (link) link->release();
}

std::string process_job::function() const { return named ? named->name : function_name(spec.fn); }

process_pool_impl::process_pool_impl(const process_pool_options& opts)
    : opts_(opts), link_(new process_pool_link(this)) {
  target_ = opts.workers ? opts.workers : std::max(1u, std::thread::hardware_concurrency());
  try {
    ensure_fork_server(true);
    wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd_ < 0) throw io_error(errno, "process_pool: eventfd");
    // Born with asynchronous signals blocked, like every thread coring makes:
    // a Ctrl-C is the application's (signalfd, coring::run), never ours.
    detail::new_threads_block_signals no_signals;
    thread_ = std::thread([this] { run(); });
  } catch (...) {
    close_fd(wake_fd_);
    link_->detach();
    link_->release();
    throw;
  }
}

process_pool_impl::~process_pool_impl() {
  join();
  // A hook running now holds the link's mutex: wait for it, then let later
  // ones find no pool. (Their jobs have all ended: the manager is done.)
  link_->detach();
  link_->release();
}

std::vector<int> process_pool_impl::pids() const {
  std::lock_guard lock(m_);
  return pids_;
}

void process_pool_impl::submit(process_job_spec spec) {
  auto j = std::make_unique<process_job>();
  j->spec = std::move(spec);
  link_->add_ref();  // dropped with the job's state
  j->spec.link->link = link_;
  j->spec.state->on_cancel_running(&process_pool_link::on_cancel_running, j->spec.link);
  j->spec.state->on_handed(&process_pool_link::on_handed);
  if (const registered_job* r = find_registered_job(j->spec.fn)) {
    // Registered by name: it travels by name (map's chunks have their own invoker).
    if (j->spec.invoke == r->invoke_one || j->spec.invoke == r->invoke_chunk) {
      j->named = r;
      j->chunk = j->spec.invoke != r->invoke_one;
    }
  }
  std::exception_ptr refuse;
  {
    std::lock_guard lock(m_);
    if (!accepting_) {
      refuse = std::make_exception_ptr(error("process pool is shut down: job " + j->function() + " refused"));
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

void process_pool_impl::request_shutdown(const process_pool_shutdown_options& o, future_state<void>* waiter) {
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

void process_pool_impl::join() {
  std::lock_guard lock(join_m_);
  if (thread_.joinable()) thread_.join();
}

void process_pool_impl::complete_waiter(future_state<void>* w) noexcept {
  if (w->start()) {
    w->set_value();
    w->finish();
  }
  w->release();
}

// A job never started: it fails unless its consumer cancelled it first (then it simply never runs).
void process_pool_impl::fail_unstarted(process_job& j, std::exception_ptr e) noexcept {
  if (j.spec.state->start()) j.spec.state->fail(std::move(e));
  j.spec.state->release();
  j.spec.state = nullptr;
}

void process_pool_impl::fail_started(process_job& j, std::exception_ptr e) noexcept {
  j.spec.state->fail(std::move(e));
  j.spec.state->release();
  j.spec.state = nullptr;
}

void process_pool_impl::complete(process_job& j, std::string_view bytes) noexcept {
  future_state_base* s = j.spec.state;
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
  s->release();
  j.spec.state = nullptr;
}

// The future's cancel() found the job running: ask the manager to stop it.
void process_pool_impl::request_cancel(future_state_base* s) noexcept {
  s->add_ref();  // so that the address cannot be reused before the manager looks at it
  {
    std::lock_guard lock(m_);
    if (!manager_done_) {
      cancels_.push_back(s);
      wake_locked();
      return;
    }
  }
  s->release();
}

void process_pool_impl::wake_locked() noexcept {
  // One eventfd write per manager sleep at most.
  if (!wake_pending_.exchange(true, std::memory_order_acq_rel)) {
    std::uint64_t one = 1;
    ssize_t r = ::write(wake_fd_, &one, sizeof one);
    (void)r;
  }
}

// ---- manager thread ----

void process_pool_impl::close_watched(int& fd) noexcept {
  if (waiter_) {
    waiter_->close(fd);
  } else {
    close_fd(fd);
  }
}

void process_pool_impl::run() noexcept {
  try {
    waiter_.emplace();
  } catch (const std::exception& e) {
    break_pool(std::string("process pool manager: ") + e.what());
  }
  for (;;) {
    maintain();
    if (shutting_ && pending_.empty() && requeued_.empty() && workers_.empty()) break;

    if (waiter_) {
      watch_fork_server();
      waiter_->watch(wake_fd_);
      for (int fd : server_fds_) waiter_->watch(fd);
      for (auto& w : workers_) {
        waiter_->watch(w->sock);
        if (w->unsent) waiter_->watch(w->sock, true);
        waiter_->watch(w->pidfd);
      }
      waiter_->wait();
    } else {
      // No ring could be made: a broken pool only needs its wake-ups.
      pollfd pfd{wake_fd_, POLLIN, 0};
      ::poll(&pfd, 1, -1);
    }

    if (!waiter_ || waiter_->take_ready(wake_fd_)) take_requests();
    bool server_exited = false;
    for (int fd : server_fds_) server_exited = (waiter_ && waiter_->take_ready(fd)) || server_exited;
    if (server_exited) check_fork_server();  // reaped and replaced now, not at the next spawn
    // Collect first: handle_exit() removes from workers_.
    std::vector<process_worker*> exited;
    for (auto& wp : workers_) {
      process_worker& w = *wp;
      if (!waiter_) continue;
      if (w.sock >= 0 && waiter_->take_ready(w.sock)) read_replies(w);
      if (w.sock >= 0 && w.unsent && waiter_->take_ready(w.sock, true)) send_job(w);
      if (waiter_->take_ready(w.pidfd)) exited.push_back(&w);
    }
    for (process_worker* w : exited) handle_exit(*w);
    if (broken()) fail_all_pending();
  }
  std::vector<future_state<void>*> waiters;
  std::vector<future_state_base*> cancels;
  std::deque<job_ptr> taken;
  {
    std::lock_guard lock(m_);
    manager_done_ = true;
    accepting_ = false;
    waiters.swap(waiters_);
    cancels.swap(cancels_);
    taken.swap(incoming_);  // jobs that raced with the shutdown request
    close_watched(wake_fd_);
    pids_.clear();
  }
  for (int& fd : server_fds_) close_watched(fd);
  return_claim_slots(free_slots_);  // every worker is reaped: none touches them again
  // Close the ring before anyone learns that the shutdown is complete: a
  // caller counting its descriptors then must not find ours.
  waiter_.reset();
  for (auto& j : taken) fail_unstarted(*j, std::make_exception_ptr(error("process pool is shut down")));
  for (future_state_base* s : cancels) s->release();
  for (auto* w : waiters) complete_waiter(w);
}

// Keeps server_fds_ to the current fork server processes, so that the ring
// sees one of them exit (a zombie until check_fork_server() reaps it).
void process_pool_impl::watch_fork_server() noexcept {
  if (server_generation_ == fork_server_generation()) return;
  for (int& fd : server_fds_) close_watched(fd);
  try {
    server_fds_ = dup_fork_server_pidfds(server_generation_);
  } catch (...) {
    server_fds_.clear();  // no memory: the next spawn still reaps and replaces
  }
}

// Takes what submitting threads handed over: jobs, cancels, a shutdown request.
void process_pool_impl::take_requests() noexcept {
  // Read first, then clear the flag: a producer that saw the flag set
  // before the clear has pushed under m_, which we take below; one that
  // sets it after the clear writes the eventfd again. (Clearing before
  // the read could swallow that write and leave a job in incoming_.)
  std::uint64_t v;
  ssize_t r = ::read(wake_fd_, &v, sizeof v);
  (void)r;
  wake_pending_.store(false, std::memory_order_seq_cst);
  std::deque<job_ptr> jobs;
  std::vector<future_state_base*> cancels;
  bool shut = false;
  process_pool_shutdown_options so;
  {
    std::lock_guard lock(m_);
    jobs.swap(incoming_);
    cancels.swap(cancels_);
    if (shutdown_requested_) {
      shut = true;
      so = shutdown_opts_;
    }
  }
  if (pending_.empty()) {
    pending_.swap(jobs);
  } else {
    for (job_ptr& j : jobs) pending_.push_back(std::move(j));
  }
  for (future_state_base* s : cancels) {
    cancel_running(s);
    s->release();
  }
  if (shut) begin_shutdown(so);
}

// Spawns workers as needed, gives idle ones a job, retires the idle ones that are done.
void process_pool_impl::maintain() noexcept {
  if (broken()) {
    for (auto& w : workers_) kill(*w, kill_reason::broken);
  }
  const bool no_work = pending_.empty() && requeued_.empty();
  std::size_t want = 0;
  if (!broken()) {
    want = target_;
    if (shutting_ && no_work) want = 0;
  }
  std::size_t live = 0;
  for (auto& w : workers_) live += w->retiring || w->killed != kill_reason::none ? 0 : 1;
  bool spawned_one = false;
  // After a failed start, with other workers running, wait a little before
  // the next try instead of paying for one after every reply.
  const bool hold_off = live > 0 && spawn_errno_ != 0 && std::chrono::steady_clock::now() < spawn_retry_at_;
  while (live < want && !hold_off) {
    try {
      spawned s = spawn_worker(opts_.initializer, opts_.memory_limit);
      auto w = std::make_unique<process_worker>();
      w->pid = s.pid;
      w->pidfd = s.pidfd;
      w->sock = s.sock;
      workers_.push_back(std::move(w));
      ++live;
      spawned_one = true;
      spawn_errno_ = 0;
    } catch (const spawn_failure& e) {
      // A failure of ours or of the moment (EMFILE, ENOMEM, EAGAIN): the pool is not broken.
      spawn_errno_ = e.err;
      spawn_error_ = e.context;
      spawn_retry_at_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(100);
      break;
    } catch (const std::exception& e) {
      break_pool(std::string("cannot start a worker: ") + e.what());
      return;
    }
  }
  if (spawned_one) update_pids();
  if (live == 0 && spawn_errno_ != 0) {
    // No worker to run what is queued, and none can be started now: those
    // jobs fail with the reason instead of waiting for ever; later ones try again.
    fail_queued(spawn_errno_, spawn_error_);
  }
  for (auto& w : workers_) dispatch(*w);
  while (steal_for_idle()) {
  }
  const bool idle_ends = shutting_ && pending_.empty() && requeued_.empty();
  for (auto& w : workers_) {
    if (w->sock >= 0 && w->jobs.empty() && (w->retiring || idle_ends)) {
      close_watched(w->sock);  // the worker reads end of stream and exits
    }
  }
}

void process_pool_impl::update_pids() {
  std::vector<int> p;
  p.reserve(workers_.size());
  for (auto& w : workers_) p.push_back(w->pid);
  std::lock_guard lock(m_);
  pids_ = std::move(p);
}

bool process_pool_impl::can_take(const process_worker& w) noexcept {
  return w.ready && w.sock >= 0 && !w.retiring && w.killed == kill_reason::none;
}

std::size_t process_pool_impl::idle_workers() const noexcept {
  std::size_t n = 0;
  for (auto& w : workers_) n += can_take(*w) && w->jobs.empty() ? 1 : 0;
  return n;
}

// Writes the next job to `w`: to an idle worker a started job (one requeued
// first, else the oldest pending one that can still start), behind a busy
// one a pending job handed over with a claim slot. A job cancelled while
// queued is dropped here: it never runs. False if `w` can take no more now.
bool process_pool_impl::give(process_worker& w) noexcept {
  const bool ahead = !w.jobs.empty();
  if (ahead && free_slots_.empty()) {
    try {
      take_claim_slots(free_slots_, 16);
    } catch (...) {
    }
    if (free_slots_.empty()) return false;  // the table is used up: no look-ahead for now
  }
  job_ptr j;
  std::uint64_t id = 0;
  if (!ahead && !requeued_.empty()) {
    j = std::move(requeued_.front());
    requeued_.pop_front();
    id = next_claim_id();
  }
  while (!j && !pending_.empty()) {
    job_ptr c = std::move(pending_.front());
    pending_.pop_front();
    id = next_claim_id();
    bool ok;
    if (ahead) {
      // Set up before hand_over(), whose release publishes them to cancel().
      c->spec.link->ticket.store(id << 16 | free_slots_.back(), std::memory_order_relaxed);
      claim_word(free_slots_.back()).store(claim_word_of(id, claim_queued), std::memory_order_relaxed);
      ok = c->spec.state->hand_over();
    } else {
      ok = c->spec.state->start();
    }
    if (ok) {
      j = std::move(c);
    } else {
      c->spec.state->release();
    }
  }
  if (!j) return false;
  std::uint32_t slot = 0;
  if (ahead) {
    slot = free_slots_.back() + 1;
    free_slots_.pop_back();
  }
  w.jobs.push_back(sent_job{std::move(j), id, slot, false});
  return send_job(w);
}

// Gives `w` a job if it is idle, and look-ahead jobs behind it while the
// queue is long: more pending jobs than idle workers could take, and none
// requeued (those go to idle workers only). With max_tasks_per_child, none:
// a look-ahead job claimed back would count against a worker that never ran it.
void process_pool_impl::dispatch(process_worker& w) noexcept {
  while (can_take(w)) {
    if (!w.jobs.empty() && (w.unsent || w.jobs.size() > look_ahead || opts_.max_tasks_per_child != 0 ||
                            !requeued_.empty() || pending_.size() <= idle_workers())) {
      return;
    }
    if (!give(w)) return;
  }
}

// Writes w.jobs.back() to the worker without blocking. False if the worker
// can take no more now.
bool process_pool_impl::send_job(process_worker& w) noexcept {
  sent_job& e = w.jobs.back();
  process_job& j = *e.job;
  msg_header h{k_job, 0, e.id, reinterpret_cast<std::uintptr_t>(j.spec.invoke),
               reinterpret_cast<std::uintptr_t>(j.spec.fn), 0, e.slot};
  std::string_view name;
  if (j.named) {
    name = j.named->name;
    h.flags = f_named | (j.chunk ? f_chunk : 0);
    h.name_size = static_cast<std::uint32_t>(name.size());
  }
  send_result r = send_message(w.sock, h, name, j.spec.args, true);
  if (r.err == 0) {
    w.unsent = false;
    // A started job is not sent again; a look-ahead job may be claimed back and sent elsewhere.
    if (e.slot == 0) std::string().swap(j.spec.args);
    ++w.sent;
    if (opts_.max_tasks_per_child != 0 && w.sent >= opts_.max_tasks_per_child) w.retiring = true;
    return true;
  }
  const bool no_room = !r.local && (r.err == EAGAIN || r.err == EWOULDBLOCK);
  if (no_room && e.slot == 0) {
    w.unsent = true;  // no room in its socket: sent when it polls writable
    return false;
  }
  sent_job back = std::move(w.jobs.back());
  w.jobs.pop_back();
  w.unsent = false;
  if (back.slot != 0) {
    // A look-ahead job the worker never saw: claimed back (unless a cancel
    // claimed it: then it simply ends), its slot free again.
    reclaimed got = reclaim(back);
    free_slot(back.slot);
    if (got != reclaimed::taken) {
      back.job->spec.state->release();
    } else if (no_room || (!r.local && peer_gone(r.err))) {
      pending_.push_front(std::move(back.job));
    } else {
      fail_unstarted(*back.job, std::make_exception_ptr(io_error(
                                    r.err, "process_pool: sending job " + back.job->function() + " to worker " +
                                               std::to_string(w.pid))));
    }
    // Gone: its pidfd will say how. Its socket stays open: replies it sent
    // before dying are still queued there, and handle_exit() reads them.
    if (!r.local && peer_gone(r.err)) w.retiring = true;
    return false;
  }
  if (!r.local && peer_gone(r.err)) {
    // The worker is gone (as above) and never saw the job: it runs elsewhere.
    requeued_.push_front(std::move(back.job));
    w.retiring = true;
    return false;
  }
  // Our own failure (no descriptor or memory for the memfd, no buffer for the
  // message): the job fails with the errno; the worker did nothing wrong.
  fail_started(*back.job, std::make_exception_ptr(io_error(
                              r.err, "process_pool: sending job " + back.job->function() + " to worker " +
                                         std::to_string(w.pid))));
  return true;
}

// The manager's claim on look-ahead job e (e.job not null): taken back (its
// stage is pending again; the caller queues or fails it), or what claimed it
// first: a cancel (the job is over: its future says cancelled) or the worker.
process_pool_impl::reclaimed process_pool_impl::reclaim(sent_job& e) noexcept {
  std::uint64_t w = claim_word_of(e.id, claim_queued);
  if (claim_word(e.slot - 1).compare_exchange_strong(w, claim_word_of(e.id, claim_taken_back),
                                                     std::memory_order_acq_rel, std::memory_order_acquire)) {
    e.job->spec.link->ticket.store(0, std::memory_order_relaxed);
    e.job->spec.state->take_back();
    return reclaimed::taken;
  }
  return claim_state_of(w) == claim_running ? reclaimed::started : reclaimed::cancelled;
}

// Slot `slot` (+ 1) is free again: its job's worker has answered it or is reaped.
void process_pool_impl::free_slot(std::uint32_t slot) noexcept {
  if (slot == 0) return;
  try {
    free_slots_.push_back(slot - 1);
  } catch (...) {
    std::vector<std::uint32_t> one{slot - 1};  // cannot fail: return_claim_slots swallows
    return_claim_slots(one);
  }
}

// With nothing queued, an idle worker takes the newest look-ahead job not yet
// begun from the busiest worker. True if a job moved.
bool process_pool_impl::steal_for_idle() noexcept {
  if (!pending_.empty() || !requeued_.empty()) return false;
  process_worker* idle = nullptr;
  process_worker* busiest = nullptr;
  for (auto& w : workers_) {
    if (can_take(*w) && w->jobs.empty() && !idle) idle = w.get();
    if (w->jobs.size() >= 2 && (!busiest || w->jobs.size() > busiest->jobs.size())) busiest = w.get();
  }
  if (!idle || !busiest) return false;
  for (std::size_t i = busiest->jobs.size(); i-- > 1;) {
    sent_job& e = busiest->jobs[i];
    if (!e.job || e.slot == 0) continue;
    reclaimed got = reclaim(e);
    if (got == reclaimed::started) return false;  // the worker has reached it: nothing before it waits
    if (got == reclaimed::taken) {
      pending_.push_back(std::move(e.job));  // the worker skips it and says so: its entry stays till then
      dispatch(*idle);
      return true;
    }
  }
  return false;
}

void process_pool_impl::read_replies(process_worker& w) noexcept {
  while (w.sock >= 0) {
    msg_header h{};
    std::string_view payload;
    int r = recv_message(w.sock, rx_, h, payload, true);
    if (r == -EAGAIN) return;
    if (r == -EMFILE) {
      // The reply came, but we had no descriptor free for its memfd: our
      // failure, not the worker's. The job fails with the errno; the worker lives.
      if ((h.kind == k_result || h.kind == k_raised) && answers(w, h.id)) {
        sent_job e = std::move(w.jobs.front());
        w.jobs.pop_front();
        dispatch(w);
        fail_started(*e.job, std::make_exception_ptr(io_error(
                                 EMFILE, "process_pool: receiving the result of job " + e.job->function() +
                                             " from worker " + std::to_string(w.pid))));
        free_slot(e.slot);
      } else if (h.kind == k_init_failed) {
        break_pool("the initializer raised an exception (in worker " + std::to_string(w.pid) +
                   "), whose description could not be received: no descriptor free");
      }
      continue;
    }
    if (r <= 0) {  // end of stream or error: the pidfd reports the exit
      close_watched(w.sock);
      return;
    }
    switch (h.kind) {
      case k_ready:
        w.ready = true;
        startup_failures_ = 0;
        dispatch(w);
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
      case k_raised:
        if (!answers(w, h.id)) {
          kill(w, kill_reason::broken);  // protocol confusion: a bug; do not trust this worker
          return;
        }
        finish_reply(w, h, payload);
        break;
      case k_skipped: {
        if (w.jobs.empty() || w.jobs.front().id != h.id || w.jobs.front().slot == 0) {
          kill(w, kill_reason::broken);
          return;
        }
        // A look-ahead job the worker could not claim: taken back by us (its
        // entry is empty) or cancelled (its future is already over).
        sent_job e = std::move(w.jobs.front());
        w.jobs.pop_front();
        if (e.job) e.job->spec.state->release();
        free_slot(e.slot);
        dispatch(w);
        break;
      }
      default:
        kill(w, kill_reason::broken);
        return;
    }
  }
}

// True if a result with `id` answers w's oldest job, which it began.
bool process_pool_impl::answers(const process_worker& w, std::uint64_t id) noexcept {
  if (w.jobs.empty()) return false;
  const sent_job& e = w.jobs.front();
  return e.id == id && e.job && !(w.unsent && w.jobs.size() == 1);
}

// The reply to w's oldest job arrived: the worker gets its next job first (it
// idles until then, if it has no look-ahead), then the reply completes the
// job, and only then is its claim slot free (a cancel that finds the slot
// given to another job reads the stage again, which must have moved on).
void process_pool_impl::finish_reply(process_worker& w, const msg_header& h, std::string_view payload) noexcept {
  sent_job j = std::move(w.jobs.front());
  w.jobs.pop_front();
  dispatch(w);
  if (h.kind == k_result) {
    complete(*j.job, payload);
  } else {
    std::exception_ptr e;
    try {
      auto [type, message] = decode_all<std::string, std::string>(payload);
      e = std::make_exception_ptr(remote_error(std::move(type), std::move(message), j.job->function()));
    } catch (...) {
      e = std::current_exception();
    }
    fail_started(*j.job, std::move(e));
  }
  free_slot(j.slot);
}

void process_pool_impl::kill(process_worker& w, kill_reason why) noexcept {
  if (w.killed != kill_reason::none) return;
  w.killed = why;
  ::syscall(SYS_pidfd_send_signal, w.pidfd, SIGKILL, nullptr, 0);
}

void process_pool_impl::handle_exit(process_worker& w) noexcept {
  // Replies it sent before dying still count; it takes no new job.
  if (w.killed == kill_reason::none) w.retiring = true;
  if (w.sock >= 0) read_replies(w);
  siginfo_t si{};
  int r;
  do {
    r = ::waitid(P_PIDFD, static_cast<id_t>(w.pidfd), &si, WEXITED);
  } while (r < 0 && errno == EINTR);
  // ECHILD: something else in this process reaped it (a waitpid(-1), or
  // SIGCHLD ignored). Its pidfd polled readable all the same: the job fails
  // now, with sig 0 and code -1, "status lost".
  int sig = 0, code = -1;
  if (r == 0) {
    if (si.si_code == CLD_EXITED) {
      code = si.si_status;
    } else {
      sig = si.si_status;
    }
  }

  if (!w.ready && w.killed == kill_reason::none && !shutting_ && !broken()) {
    if (++startup_failures_ >= 3) {
      break_pool("workers keep dying during start-up (" + std::string(broken_worker(w.pid, sig, code, "no job").what()) +
                 ")");
    }
  }
  // What it held and did not answer. A job it began (sent started, or a
  // look-ahead job it claimed) fails; one it never began runs elsewhere.
  std::deque<job_ptr> again;
  for (sent_job& e : w.jobs) {
    if (!e.job) {  // claimed back earlier: already queued elsewhere
      free_slot(e.slot);
      continue;
    }
    bool began = true;
    if (e.slot != 0) {
      // The worker is reaped, so the claim is between a cancel and us.
      reclaimed got = reclaim(e);
      free_slot(e.slot);
      if (got == reclaimed::cancelled) {
        e.job->spec.state->release();
        continue;
      }
      began = got == reclaimed::started;
    } else if (w.unsent) {
      began = false;  // it never reached the worker (and was started: requeued)
    }
    job_ptr j = std::move(e.job);
    if (!began) {
      if (w.killed == kill_reason::shutdown) {
        if (e.slot != 0) {
          fail_unstarted(*j, cancelled_ptr());
        } else {
          fail_started(*j, cancelled_ptr());
        }
      } else if (e.slot != 0) {
        again.push_back(std::move(j));
      } else {
        requeued_.push_front(std::move(j));
      }
      continue;
    }
    std::exception_ptr err;
    if (e.cancel_target || w.killed == kill_reason::shutdown) {
      err = cancelled_ptr();
    } else if (w.killed == kill_reason::broken) {
      err = std::make_exception_ptr(broken_pool(broken_text()));
    } else {
      // Died (or was killed to cancel another job, which the claims before
      // that kill rule out) while running it: never run twice.
      err = std::make_exception_ptr(broken_worker(w.pid, sig, code, j->function()));
    }
    fail_started(*j, std::move(err));
  }
  w.jobs.clear();
  w.unsent = false;
  // First in line again, in their order.
  for (auto it = again.rbegin(); it != again.rend(); ++it) pending_.push_front(std::move(*it));
  close_watched(w.pidfd);
  close_watched(w.sock);
  auto it = std::find_if(workers_.begin(), workers_.end(), [&](auto& p) { return p.get() == &w; });
  workers_.erase(it);
  update_pids();
}

// A running job's future was cancelled: kill the worker running it. First
// every look-ahead job behind it is claimed back: if one of them had already
// begun, the job is over (its reply is on the way) and the worker lives;
// else the worker can begin nothing after it, and dies. So no other job is
// touched; a job that finished just before keeps its result.
void process_pool_impl::cancel_running(future_state_base* s) noexcept {
  for (auto& wp : workers_) {
    process_worker& w = *wp;
    auto at = std::find_if(w.jobs.begin(), w.jobs.end(),
                           [&](const sent_job& e) { return e.job && e.job->spec.state == s; });
    if (at == w.jobs.end()) continue;
    if (w.unsent && w.jobs.size() == 1) {  // it never reached the worker
      sent_job e = std::move(w.jobs.front());
      w.jobs.pop_front();
      w.unsent = false;
      fail_started(*e.job, cancelled_ptr());
      dispatch(w);
      return;
    }
    if (at->slot != 0 &&
        claim_state_of(claim_word(at->slot - 1).load(std::memory_order_acquire)) != claim_running) {
      return;  // not begun: the cancel claimed it, and it never runs
    }
    const std::size_t target = static_cast<std::size_t>(at - w.jobs.begin());
    std::deque<job_ptr> back;
    bool later_began = false;
    for (std::size_t i = target + 1; i < w.jobs.size() && !later_began; ++i) {
      sent_job& e = w.jobs[i];
      if (!e.job) continue;
      switch (reclaim(e)) {
        case reclaimed::taken:
          back.push_back(std::move(e.job));
          break;
        case reclaimed::started:
          later_began = true;
          break;
        case reclaimed::cancelled:
          break;
      }
    }
    for (auto it = back.rbegin(); it != back.rend(); ++it) pending_.push_front(std::move(*it));
    if (!later_began) {
      w.jobs[target].cancel_target = true;
      kill(w, kill_reason::cancel);
    }
    return;
  }
  for (auto it = requeued_.begin(); it != requeued_.end(); ++it) {
    if ((*it)->spec.state == s) {
      fail_started(**it, cancelled_ptr());
      requeued_.erase(it);
      return;
    }
  }
}

void process_pool_impl::begin_shutdown(const process_pool_shutdown_options& o) noexcept {
  shutting_ = true;
  if (o.cancel_pending || o.kill) {
    // Look-ahead jobs not begun are pending too: claimed back, they end cancelled.
    for (auto& w : workers_) {
      for (sent_job& e : w->jobs) {
        if (e.job && e.slot != 0 && reclaim(e) == reclaimed::taken) {
          job_ptr j = std::move(e.job);
          fail_unstarted(*j, cancelled_ptr());
        }
      }
    }
    while (!pending_.empty()) {
      job_ptr j = std::move(pending_.front());
      pending_.pop_front();
      fail_unstarted(*j, cancelled_ptr());
    }
    while (!requeued_.empty()) {
      job_ptr j = std::move(requeued_.front());
      requeued_.pop_front();
      fail_started(*j, cancelled_ptr());
    }
  }
  if (o.kill) {
    for (auto& w : workers_) kill(*w, kill_reason::shutdown);
  }
}

// Fails every queued job (started or not) with io_error(err, what), each its own object.
void process_pool_impl::fail_queued(int err, const std::string& what) noexcept {
  while (!pending_.empty()) {
    job_ptr j = std::move(pending_.front());
    pending_.pop_front();
    fail_unstarted(*j, std::make_exception_ptr(io_error(err, what)));
  }
  while (!requeued_.empty()) {
    job_ptr j = std::move(requeued_.front());
    requeued_.pop_front();
    fail_started(*j, std::make_exception_ptr(io_error(err, what)));
  }
}

std::string process_pool_impl::broken_text() {
  std::lock_guard lock(m_);
  return broken_message_;
}

void process_pool_impl::break_pool(const std::string& why) noexcept {
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
void process_pool_impl::fail_all_pending() noexcept {
  if (pending_.empty() && requeued_.empty()) return;
  std::string why = broken_text();
  while (!pending_.empty()) {
    job_ptr j = std::move(pending_.front());
    pending_.pop_front();
    fail_unstarted(*j, std::make_exception_ptr(broken_pool(why)));
  }
  while (!requeued_.empty()) {
    job_ptr j = std::move(requeued_.front());
    requeued_.pop_front();
    fail_started(*j, std::make_exception_ptr(broken_pool(why)));
  }
}

}  // namespace coring::detail
