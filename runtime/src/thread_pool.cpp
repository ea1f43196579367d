#include <coring/thread_pool.hpp>

#include "thread_signals.hpp"

#include <algorithm>

namespace coring {

namespace {
// The pool whose worker this thread is, for the self-join assertion.
thread_local const thread_pool* tl_worker_of = nullptr;
}  // namespace

std::size_t thread_pool::default_size() noexcept {
  std::size_t cpus = std::thread::hardware_concurrency();
  if (cpus == 0) cpus = 1;
  return std::min<std::size_t>(32, cpus + 4);
}

thread_pool::thread_pool(std::size_t max_workers) : thread_pool(options{.max_workers = max_workers}) {}

thread_pool::thread_pool(const options& opts)
    : max_workers_(opts.max_workers == 0 ? default_size() : opts.max_workers), keep_alive_(opts.keep_alive) {}

// No loop-thread assertion here: a pool that lives in a coroutine frame may be
// destroyed there (it blocks the loop while its last jobs end, as documented).
thread_pool::~thread_pool() { stop({.wait = true, .cancel_pending = false}); }

std::size_t thread_pool::worker_count() const {
  std::lock_guard lock(m_);
  return live_;
}

std::size_t thread_pool::pending() const {
  std::lock_guard lock(m_);
  return queued_;
}

void thread_pool::enqueue(detail::pool_job_link* job) {
  std::unique_lock lock(m_);
  // Joining retired workers drops the lock: everything decided before it
  // (stopping_, how many workers live or idle) is decided again after.
  for (;;) {
    if (stopping_) throw error("thread_pool: submit after shutdown");
    const bool will_start = idle_ <= signalled_ && live_ < max_workers_;
    if (!will_start || retired_.empty()) break;
    join_retired(lock);
  }
  // Wake an idle worker only if one is not already on its way: while every
  // worker is busy a submit costs no notify, and they find the job when they
  // come back to the queue.
  if (idle_ > signalled_) {
    ++signalled_;
    work_cv_.notify_one();
  } else if (live_ < max_workers_) {
    auto it = threads_.emplace(threads_.end());
    try {
      // Started under the lock: the worker's first act is to take it, and
      // starting a thread happens at most max_workers times per keep-alive.
      // Born with asynchronous signals blocked (see thread_signals.hpp).
      detail::new_threads_block_signals no_signals;
      *it = std::thread([this, it] { worker_main(it); });
      ++live_;
    } catch (...) {
      threads_.erase(it);
      // With a worker alive the job still runs; with none it never would.
      if (live_ == 0) throw;
    }
  }
  job->next = nullptr;
  if (tail_) {
    tail_->next = job;
  } else {
    head_ = job;
  }
  tail_ = job;
  ++queued_;
}

// Joins the workers that retired; they have left worker_main, so the joins
// are short. Called with the lock held; drops it meanwhile.
void thread_pool::join_retired(std::unique_lock<std::mutex>& lock) {
  std::list<std::thread> done;
  done.swap(retired_);
  lock.unlock();
  for (auto& t : done) t.join();
  lock.lock();
}

void thread_pool::worker_main(std::list<std::thread>::iterator self) {
  tl_worker_of = this;
  std::unique_lock lock(m_);
  for (;;) {
    if (detail::pool_job_link* job = head_) {
      head_ = job->next;
      if (!head_) tail_ = nullptr;
      --queued_;
      lock.unlock();
      job->run(job);
      lock.lock();
      continue;
    }
    if (stopping_) break;
    ++idle_;
    bool timed_out = work_cv_.wait_for(lock, keep_alive_) == std::cv_status::timeout;
    --idle_;
    if (signalled_ != 0) --signalled_;
    if (timed_out && !head_ && !stopping_) {
      // Retire. Our std::thread moves to retired_ for someone to join; after
      // shutdown began, shutdown owns every thread object instead.
      retired_.splice(retired_.end(), threads_, self);
      --live_;
      return;
    }
  }
  --live_;
}

void thread_pool::shutdown(shutdown_options opts) {
  CORING_ASSERT(!opts.wait || !detail::on_loop_thread(),
                "thread_pool::shutdown(wait) blocks: do not call it on an event loop thread");
  stop(opts);
}

void thread_pool::stop(shutdown_options opts) {
  CORING_ASSERT(!opts.wait || tl_worker_of != this, "thread_pool shut down with wait by one of its own workers");
  detail::pool_job_link* dropped = nullptr;
  std::list<std::thread> to_join;
  {
    std::unique_lock lock(m_);
    stopping_ = true;
    if (opts.cancel_pending) {
      dropped = std::exchange(head_, nullptr);
      tail_ = nullptr;
      queued_ = 0;
    }
    work_cv_.notify_all();
    if (opts.wait) {
      // Workers see stopping_ and never touch these lists again.
      to_join.splice(to_join.end(), retired_);
      to_join.splice(to_join.end(), threads_);
    }
  }
  while (dropped) {
    detail::pool_job_link* next = dropped->next;
    dropped->drop(dropped);
    dropped = next;
  }
  for (auto& t : to_join) t.join();
}

thread_pool& default_thread_pool() {
  static thread_pool pool;
  return pool;
}

}  // namespace coring
