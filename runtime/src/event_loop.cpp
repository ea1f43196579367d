#include <coring/event_loop.hpp>

#include <coring/detail/inbox.hpp>
#include <coring/detail/loop_access.hpp>
#include <coring/error.hpp>

#include "loop_core.hpp"
#include "scheduled_calls.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <poll.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>

namespace coring {

namespace {
thread_local event_loop* tl_current = nullptr;

std::int64_t now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Creates the ring with the cheapest flags the kernel accepts
// (SINGLE_ISSUER|DEFER_TASKRUN needs Linux 6.1, COOP_TASKRUN 5.19; see
// docs/runtime.md for what each costs). TASKRUN_FLAG makes the kernel set
// IORING_SQ_TASKRUN while deferred completion work waits for us: run_once()
// reads it to know, without a system call, whether entering the kernel would
// reap anything, and before it leaves the loop to its host (docs/runtime.md,
// "Embedding").
unsigned setup_ring(io_uring& ring, unsigned entries, unsigned& features) {
  const unsigned candidates[] = {
      IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
      IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
      IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
      0,
  };
  int err = 0;
  for (unsigned flags : candidates) {
    io_uring_params p{};
    p.flags = flags | IORING_SETUP_CQSIZE;
    p.cq_entries = entries * 4;  // room for bursts of completions beyond the SQ size
    err = io_uring_queue_init_params(entries, &ring, &p);
    if (err == 0) {
      features = p.features;
      return flags;
    }
    if (err != -EINVAL) break;
  }
  throw io_error(-err, "event_loop: creating an io_uring with " + std::to_string(entries) + " entries");
}

#ifndef IORING_FEAT_MIN_TIMEOUT
#define IORING_FEAT_MIN_TIMEOUT (1U << 15)  // Linux 6.12; liburing 2.3's headers predate it
#endif

// The batched wait of options::batch_wait: submits what is queued, then
// lets the kernel hold the wake-up for up to `min_wait_us` until `want`
// completions are there, and after that wake on the first (io_uring's
// min-wait). liburing 2.3 cannot pass min_wait_usec (the field it calls
// `pad`), so this publishes the queued SQEs itself, as io_uring_submit()
// does for a ring without SQPOLL, and enters with the extended argument.
// `wait_ns` < 0: no deadline; a distant one is passed all the same, since
// without one the kernel would return at the end of the min-wait even with
// nothing to reap, and an idle loop would wake every `min_wait_us`.
int wait_batched(io_uring& ring, unsigned want, unsigned min_wait_us, std::int64_t wait_ns) noexcept {
  const unsigned tail = ring.sq.sqe_tail;
  ring.sq.sqe_head = tail;
  io_uring_smp_store_release(ring.sq.ktail, tail);
  // Everything the kernel has not consumed, SQEs an earlier enter left
  // behind (EBUSY, EAGAIN) included, as liburing counts them.
  const unsigned to_submit = tail - io_uring_smp_load_acquire(ring.sq.khead);
  constexpr std::int64_t distant_ns = 3600 * std::int64_t{1'000'000'000};
  if (wait_ns < 0 || wait_ns > distant_ns) wait_ns = distant_ns;
  __kernel_timespec ts{wait_ns / 1'000'000'000, wait_ns % 1'000'000'000};
  io_uring_getevents_arg arg{};
  arg.pad = min_wait_us;  // min_wait_usec
  arg.ts = reinterpret_cast<std::uint64_t>(&ts);
  return io_uring_enter2(static_cast<unsigned>(ring.ring_fd), to_submit, want,
                         IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, reinterpret_cast<sigset_t*>(&arg),
                         sizeof arg);
}

std::string describe(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    return ex.what();
  } catch (const cancelled& c) {
    return c.what();
  } catch (...) {
    return "an exception of a type not derived from std::exception";
  }
}

// Sets the thread's current loop for a scope.
struct current_scope {
  event_loop* saved;
  explicit current_scope(event_loop* l) noexcept : saved(tl_current) { tl_current = l; }
  ~current_scope() { tl_current = saved; }
};
}  // namespace

// ---------------------------------------------------------------- timer heap

void detail::loop_core::heap_push(timer_node& t) {
  heap.push_back({});
  sift_up(heap.size() - 1, {t.deadline_ns, &t});
}

void detail::loop_core::heap_remove(timer_node& t) noexcept {
  std::size_t i = t.heap_index;
  if (i == timer_node::not_queued) return;
  t.heap_index = timer_node::not_queued;
  timer_entry last = heap.back();
  heap.pop_back();
  if (i == heap.size()) return;
  if (i > 0 && last.deadline_ns < heap[(i - 1) / 2].deadline_ns) {
    sift_up(i, last);
  } else {
    sift_down(i, last);
  }
}

detail::timer_node* detail::loop_core::heap_pop() noexcept {
  timer_node* top = heap.front().node;
  top->heap_index = timer_node::not_queued;
  timer_entry last = heap.back();
  heap.pop_back();
  if (!heap.empty()) sift_down(0, last);
  return top;
}

void detail::loop_core::sift_up(std::size_t i, timer_entry e) noexcept {
  while (i > 0) {
    std::size_t parent = (i - 1) / 2;
    if (heap[parent].deadline_ns <= e.deadline_ns) break;
    place(i, heap[parent]);
    i = parent;
  }
  place(i, e);
}

void detail::loop_core::sift_down(std::size_t i, timer_entry e) noexcept {
  const std::size_t n = heap.size();
  for (;;) {
    std::size_t child = 2 * i + 1;
    if (child >= n) break;
    if (child + 1 < n && heap[child + 1].deadline_ns < heap[child].deadline_ns) ++child;
    if (e.deadline_ns <= heap[child].deadline_ns) break;
    place(i, heap[child]);
    i = child;
  }
  place(i, e);
}

// ---------------------------------------------------------------- the loop

event_loop::event_loop() : event_loop(options{}) {}

event_loop::event_loop(const options& opts)
    : core_(std::make_unique<detail::loop_core>()), owner_(std::this_thread::get_id()) {
  unsigned features = 0;
  core_->setup_flags = setup_ring(core_->ring, opts.ring_entries, features);
  core_->slice_ns = std::max<std::int64_t>(0, opts.run_once_slice.count());
  if ((features & IORING_FEAT_MIN_TIMEOUT) && opts.batch_wait.count() > 0)
    core_->batch_wait_us = static_cast<unsigned>(std::min<std::int64_t>(opts.batch_wait.count(), 1'000'000));
  int efd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (efd < 0) {
    int err = errno;
    io_uring_queue_exit(&core_->ring);
    throw io_error(err, "event_loop: creating its wake-up eventfd");
  }
  inbox_ = std::make_shared<detail::inbox>(efd);
  // Room for the cancels that a full submission queue makes us keep, so that
  // keeping one does not allocate.
  core_->pending_cancels.reserve(64);
  core_->efd_completion.complete = [](detail::completion*, int, unsigned) noexcept {
    // The eventfd became readable: empty its counter; the loop re-arms the
    // poll the next time it parks.
    event_loop* self = tl_current;
    std::uint64_t value;
    [[maybe_unused]] ssize_t r = ::read(self->inbox_->fd(), &value, sizeof value);
    self->core_->efd_armed = false;
  };
  previous_current_ = tl_current;
  if (!tl_current) tl_current = this;
}

event_loop::~event_loop() {
  shut_down();
  detail::drop_scheduled_calls(*core_);
  auto& c = *core_;
  if (c.efd_armed) {
    // The poll holds no buffer, but wait for it anyway so that nothing of
    // ours is left in the ring when it closes.
    if (io_uring_sqe* sqe = io_uring_get_sqe(&c.ring)) {
      io_uring_prep_poll_remove(sqe, reinterpret_cast<std::uint64_t>(&c.efd_completion));
      io_uring_sqe_set_data64(sqe, 0);
      io_uring_submit_and_wait(&c.ring, 1);
    }
  }
  inbox_->close();
  io_uring_queue_exit(&c.ring);
  if (tl_current == this) tl_current = previous_current_;
}

void event_loop::shut_down() noexcept {
  current_scope scope(this);
  try {
    cancel_all_and_drain();
  } catch (...) {
    // A ring that fails now cannot finish the drain: the frames still in it
    // are leaked rather than freed under the kernel, and we say so.
    draining_ = false;
    std::string what = describe(std::current_exception());
    std::fprintf(stderr, "coring: the event loop failed while shutting down (%s); %zu task(s) leaked\n", what.c_str(),
                 live_.size());
  }
}

event_loop* event_loop::current() noexcept { return tl_current; }

int event_loop::fd() const noexcept { return inbox_->fd(); }

unsigned event_loop::setup_flags() const noexcept { return core_->setup_flags; }

event_loop::statistics event_loop::stats() const noexcept {
  statistics s = stats_;
  s.wakeups = inbox_->wakeups();  // counted by the producers, in the inbox
  return s;
}

std::chrono::microseconds event_loop::batch_wait() const noexcept {
  return std::chrono::microseconds(core_->batch_wait_us);
}

void event_loop::set_exception_handler(exception_handler handler) { on_error_ = std::move(handler); }

std::optional<std::chrono::nanoseconds> event_loop::next_timeout() {
  CORING_ASSERT(owner_ == std::this_thread::get_id(),
                "event_loop::next_timeout called from a thread other than the loop's (it may arm the ring)");
  // What host code started since the last park (spawn, cancel, posts).
  const auto& c = *core_;
  if (!ready_.empty() || inbox_->has_items() || io_uring_sq_ready(&c.ring) != 0 || !c.pending_cancels.empty())
    return std::chrono::nanoseconds::zero();
  // Not parked for the host yet (a new loop, or one that ran
  // run_until_complete): arm fd() now, unless work turns up meanwhile.
  // Inside a step (a coroutine asking) there is nothing to arm.
  if (!host_parked_ && (running_ || !hand_to_host())) return std::chrono::nanoseconds::zero();
  if (c.heap.empty()) return std::nullopt;
  std::int64_t left = c.heap.front().deadline_ns - now_ns();
  return std::chrono::nanoseconds(left > 0 ? left : 0);
}

void event_loop::post_item(detail::inbox_item* item) noexcept {
  // Hold the inbox ourselves: once the item is in, the loop may run it, end
  // and be destroyed while push() still touches the park word and eventfd.
  std::shared_ptr<detail::inbox> box = inbox_;
  if (!box->push(item)) item->run(item, false);
}

void detail::report_posted_failure(std::exception_ptr error) noexcept {
  if (event_loop* loop = event_loop::current()) {
    loop_access::report(*loop, std::move(error), "posted function");
  } else {
    std::fprintf(stderr, "coring: a posted function threw: %s\n", describe(error).c_str());
  }
}

// ---------------------------------------------------------------- loop_access

namespace {
// An SQE, flushing the queue to the kernel once if it is full; null if it
// stays full (the kernel refuses SQEs while its completion backlog is full).
io_uring_sqe* try_sqe(io_uring& ring) noexcept {
  if (io_uring_sqe* sqe = io_uring_get_sqe(&ring)) return sqe;
  io_uring_submit(&ring);
  return io_uring_get_sqe(&ring);
}

// Submits what is queued and runs the kernel's deferred completion work,
// without waiting.
void enter_for_events(io_uring& ring) {
  int r = io_uring_submit_and_get_events(&ring);
  if (r < 0 && r != -EINTR && r != -EBUSY && r != -EAGAIN) throw io_error(-r, "event_loop: reaping completions");
}

io_uring_sqe* sqe_or_throw(io_uring& ring) {
  io_uring_sqe* sqe = try_sqe(ring);
  if (!sqe) throw io_error(EBUSY, "event_loop: the submission queue stays full");
  return sqe;
}

void prep_cancel(io_uring_sqe* sqe, detail::completion* target) noexcept {
  io_uring_prep_cancel64(sqe, reinterpret_cast<std::uint64_t>(target), 0);
  io_uring_sqe_set_data64(sqe, 0);
}
}  // namespace

namespace detail {

void loop_access::add_timer(event_loop& l, timer_node& t) { l.core_->heap_push(t); }

void loop_access::remove_timer(event_loop& l, timer_node& t) noexcept { l.core_->heap_remove(t); }

io_uring_sqe* loop_access::sqe_for(event_loop& l, completion& c) {
  io_uring_sqe* sqe = sqe_or_throw(l.core_->ring);
  io_uring_sqe_set_data(sqe, &c);
  ++l.core_->in_flight;
  return sqe;
}

io_uring_sqe* loop_access::untracked_sqe(event_loop& l) {
  io_uring_sqe* sqe = sqe_or_throw(l.core_->ring);
  io_uring_sqe_set_data64(sqe, 0);
  return sqe;
}

void loop_access::reserve_sqes(event_loop& l, unsigned n) {
  io_uring& ring = l.core_->ring;
  if (io_uring_sq_space_left(&ring) >= n) return;
  io_uring_submit(&ring);
  if (io_uring_sq_space_left(&ring) < n) throw io_error(EBUSY, "event_loop: the submission queue stays full");
}

void loop_access::submit_cancel(event_loop& l, completion& c) noexcept {
  loop_core& core = *l.core_;
  if (core.pending_cancels.empty()) {
    if (io_uring_sqe* sqe = try_sqe(core.ring)) {
      prep_cancel(sqe, &c);
      return;
    }
  }
  // Kept, in order, until the next step can send it; dropped if the
  // operation completes first (see step()).
  try {
    core.pending_cancels.push_back(&c);
  } catch (...) {
    std::fprintf(stderr, "coring: out of memory keeping a cancel; the operation runs to its end\n");
  }
}

io_uring& loop_access::ring(event_loop& l) noexcept { return l.core_->ring; }

void loop_access::adopt(event_loop& l, task_node& n) {
  n.live_index = static_cast<std::uint32_t>(l.live_.size());
  l.live_.push_back(&n);
  n.live = true;
  if (l.draining_) request_cancel(n);
}

void loop_access::forget(event_loop& l, task_node& n) noexcept {
  if (!n.live) return;
  task_node* last = l.live_.back();
  l.live_[n.live_index] = last;
  last->live_index = n.live_index;
  l.live_.pop_back();
  n.live = false;
}

void loop_access::report(event_loop& l, std::exception_ptr error, const char* task_name) noexcept {
  const char* name = task_name ? task_name : "unnamed task";
  if (l.on_error_) {
    try {
      l.on_error_(error, name);
      return;
    } catch (...) {
      std::fprintf(stderr, "coring: the exception handler threw; reporting to stderr\n");
    }
  }
  try {
    std::string what = describe(error);
    std::fprintf(stderr, "coring: task '%s' ended with an exception nobody retrieved: %s\n", name, what.c_str());
  } catch (...) {  // out of memory for the message: say what we can
    std::fprintf(stderr, "coring: task '%s' ended with an exception nobody retrieved\n", name);
  }
}

}  // namespace detail

// ---------------------------------------------------------------- run steps

void event_loop::drain_inbox() noexcept {
  for (detail::inbox_item* item = inbox_->take_all(); item;) {
    detail::inbox_item* next = item->next;
    item->run(item, true);
    item = next;
  }
}

void event_loop::step(bool may_block, std::int64_t max_wait_ns) {
  CORING_ASSERT(!running_, "an event loop step started while one is running (re-entrant run?)");
  CORING_ASSERT(owner_ == std::this_thread::get_id(),
                "an event loop runs only on the thread that created it (its ring is single-issuer)");
  running_ = true;
  struct running_reset {
    bool& flag;
    ~running_reset() { flag = false; }
  } reset{running_};
  current_scope scope(this);
  ++stats_.steps;
  auto& c = *core_;
  io_uring& ring = c.ring;

  // 0. Cancels that found the submission queue full last time go first.
  if (!c.pending_cancels.empty()) {
    std::size_t sent = 0;
    for (; sent < c.pending_cancels.size(); ++sent) {
      io_uring_sqe* sqe = try_sqe(ring);
      if (!sqe) break;
      prep_cancel(sqe, c.pending_cancels[sent]);
    }
    c.pending_cancels.erase(c.pending_cancels.begin(), c.pending_cancels.begin() + static_cast<std::ptrdiff_t>(sent));
  }

  // 1. Talk to the kernel: submit what the last batch queued and reap
  //    completions. Block only when nothing is ready, so the caller's
  //    condition (checked between steps, right after coroutines ran) is never
  //    stale when we sleep.
  std::int64_t wait_ns = 0;
  if (may_block && ready_.empty() && !stop_requested_ && !inbox_->has_items() && c.pending_cancels.empty()) {
    wait_ns = max_wait_ns;  // -1: no limit
    if (!c.heap.empty()) {
      std::int64_t left = c.heap.front().deadline_ns - now_ns();
      if (left < 0) left = 0;
      if (wait_ns < 0 || left < wait_ns) wait_ns = left;
    }
  }
  if (wait_ns != 0) {
    if (c.kernel_signals) {
      // We are about to block in the ring ourselves, with a poll on the
      // eventfd armed: kernel signals would now only fire that poll after
      // every batch of completions (a wake-up per wake-up). Off until the
      // next hand_to_host().
      io_uring_cq_eventfd_toggle(&ring, false);
      c.kernel_signals = false;
    }
    if (!c.efd_armed) {
      io_uring_sqe* sqe = sqe_or_throw(ring);
      io_uring_prep_poll_add(sqe, inbox_->fd(), POLLIN);
      io_uring_sqe_set_data(sqe, &c.efd_completion);
      c.efd_armed = true;
    }
    if (inbox_->try_park()) {
      ++stats_.blocking_waits;
      int r;
      // A timer due sooner than the batch window shortens it (the kernel
      // would otherwise hold the timer's wake-up to the window's end).
      const std::int64_t window_us =
          wait_ns < 0 ? c.batch_wait_us : std::min<std::int64_t>(c.batch_wait_us, wait_ns / 1000);
      if (window_us > 0 && c.in_flight >= 8) {
        const auto want = static_cast<unsigned>(std::clamp<std::size_t>(c.in_flight / 4, 2, 64));
        r = wait_batched(ring, want, static_cast<unsigned>(window_us), wait_ns);
      } else if (wait_ns < 0) {
        r = io_uring_submit_and_wait(&ring, 1);
      } else {
        io_uring_cqe* cqe = nullptr;
        __kernel_timespec ts{wait_ns / 1'000'000'000, wait_ns % 1'000'000'000};
        r = io_uring_submit_and_wait_timeout(&ring, &cqe, 1, &ts, nullptr);
      }
      inbox_->unpark();
      if (r < 0 && r != -ETIME && r != -EINTR && r != -EBUSY && r != -EAGAIN)
        throw io_error(-r, "event_loop: waiting for completions");
    } else {
      io_uring_submit_and_get_events(&ring);
    }
    c.busy_steps = 0;
  } else if (io_uring_sq_ready(&ring) != 0 || (c.in_flight != 0 && ++c.busy_steps >= 16) ||
             (!may_block && ready_.empty() && c.completions_pending())) {
    // With DEFER_TASKRUN completions are only posted when we enter the
    // kernel; while coroutines keep us busy, do so every 16 steps at least.
    // A step of run_once with nothing to resume enters whenever the kernel
    // says it holds completion work.
    io_uring_submit_and_get_events(&ring);
    c.busy_steps = 0;
  }

  unsigned head, seen = 0;
  io_uring_cqe* cqe;
  io_uring_for_each_cqe(&ring, head, cqe) {
    ++seen;
    std::uint64_t ud = cqe->user_data;
    if (ud == 0 || ud == LIBURING_UDATA_TIMEOUT) continue;
    auto* comp = reinterpret_cast<detail::completion*>(ud);
    if (comp != &c.efd_completion && !(cqe->flags & IORING_CQE_F_MORE)) {
      --c.in_flight;
      // A cancel still kept for an operation that has ended would hit
      // whatever reuses its address: drop it.
      if (!c.pending_cancels.empty()) std::erase(c.pending_cancels, comp);
    }
    comp->complete(comp, cqe->res, cqe->flags);
  }
  io_uring_cq_advance(&ring, seen);
  stats_.completions += seen;

  // 2. Timers and posts from other threads.
  if (!c.heap.empty()) {
    std::int64_t now = now_ns();
    while (!c.heap.empty() && c.heap.front().deadline_ns <= now) {
      detail::timer_node* t = c.heap_pop();
      t->fired = true;
      t->fire(t);
    }
  }
  if (inbox_->has_items()) drain_inbox();

  // 3. Resume what is ready now; what they make ready waits for the next
  //    step, so that I/O and timers are not starved.
  for (std::size_t n = ready_.size(); n != 0; --n) ready_.pop().resume();
}

void event_loop::leave_host_park() noexcept {
  // Back from the host: producers need not write the eventfd while we run.
  host_parked_ = false;
  inbox_->unpark();
}

bool event_loop::run_once(std::chrono::nanoseconds max_wait) {
  auto& c = *core_;
  if (host_parked_) leave_host_park();
  step(max_wait.count() != 0, max_wait.count() < 0 ? -1 : max_wait.count());
  // Then run what is ready, for one slice, so that a host pays its own poll
  // once per slice rather than once per step; the clock is read only every
  // 256 coroutines resumed, which keeps a step of one yield() as cheap as in
  // run_forever().
  const std::int64_t slice_end = now_ns() + c.slice_ns;
  std::size_t since_clock = 0;
  // (ready_ is checked here too, inline: the common case of a busy slice
  // then costs no call per step.)
  while (!ready_.empty() || !hand_to_host()) {
    since_clock += ready_.size() + 1;
    if (since_clock >= 256) {
      since_clock = 0;
      if (now_ns() >= slice_end) break;  // next_timeout() is zero: the host comes back at once
    }
    step(false, 0);
  }
  return !ready_.empty() || !live_.empty() || !c.heap.empty() || c.in_flight != 0;
}

// Leaves the loop idle to its host, with fd() armed so that any new work
// makes it readable; false if there is work to run first (the caller steps
// again). Why each check is enough: docs/runtime.md, "Embedding".
bool event_loop::hand_to_host() {
  auto& c = *core_;
  io_uring& ring = c.ring;
  if (!ready_.empty() || inbox_->has_items() || !c.pending_cancels.empty() || io_uring_sq_ready(&ring) != 0 ||
      io_uring_cq_ready(&ring) != 0)
    return false;
  if (!c.heap.empty() && c.heap.front().deadline_ns <= now_ns()) return false;

  // The kernel signals the eventfd when deferred completion work is queued
  // on an empty list, and when it posts CQEs. If that was off (the loop
  // blocked in the ring since), turn it on; the fence pairs with the
  // kernel's cmpxchg on its work list, so that work queued after our next
  // entry into the kernel sees it on.
  bool just_enabled = false;
  if (!c.kernel_signals) {
    if (!c.eventfd_registered) {
      int r = io_uring_register_eventfd(&ring, inbox_->fd());
      if (r < 0) throw io_error(-r, "event_loop: registering its eventfd with the ring (io_uring_register_eventfd)");
      c.eventfd_registered = true;
    } else {
      io_uring_cq_eventfd_toggle(&ring, true);
    }
    c.kernel_signals = true;
    just_enabled = true;
    std::atomic_thread_fence(std::memory_order_seq_cst);
  }
  const bool taskrun_flag = (c.setup_flags & IORING_SETUP_TASKRUN_FLAG) != 0;
  if (just_enabled && taskrun_flag) {
    // Run what was queued while signals were off.
    enter_for_events(ring);
    if (io_uring_cq_ready(&ring) != 0) return false;
  }

  // Empty the eventfd: it holds the kernel's signals for completions we have
  // reaped, and writes of producers whose items we have run. A signal for
  // work queued after our last entry into the kernel that this read swallows
  // is not lost: the kernel set IORING_SQ_TASKRUN before signalling, and the
  // eventfd's lock makes that visible to us now. Without TASKRUN_FLAG we
  // cannot see that flag, so we enter the kernel after the read instead.
  std::uint64_t count;
  [[maybe_unused]] ssize_t n = ::read(inbox_->fd(), &count, sizeof count);
  if (taskrun_flag) {
    if (c.completions_pending()) return false;
  } else {
    enter_for_events(ring);
  }
  if (io_uring_cq_ready(&ring) != 0) return false;

  // Producers write the eventfd once they see PARKED. A NOTIFIED word left
  // over from a post whose item we already ran makes try_park fail once.
  if (!inbox_->try_park()) return false;
  host_parked_ = true;
  ++stats_.host_parks;
  return true;
}

void event_loop::run_forever() {
  if (host_parked_) leave_host_park();
  stop_requested_ = false;
  while (!stop_requested_) step(true, -1);
  stop_requested_ = false;
}

void event_loop::cancel_all_and_drain() {
  if (host_parked_) leave_host_park();
  draining_ = true;
  for (std::size_t i = 0; i < live_.size(); ++i) detail::request_cancel(*live_[i]);
  while (!live_.empty() || !ready_.empty()) {
    bool progress_possible = !ready_.empty() || core_->in_flight != 0 || !core_->heap.empty() ||
                             inbox_->has_items() || !core_->pending_cancels.empty();
    if (!progress_possible) {
      std::fprintf(stderr, "coring: %zu task(s) could not be cancelled at loop shutdown; their frames are leaked\n",
                   live_.size());
      break;
    }
    step(true, -1);
  }
  // Operations no task waits for (a closed listener's multishot accept,
  // cancelled and not yet reaped) own state that their final CQE frees:
  // reap them before the ring closes, but never wait long for one that does
  // not end (at most 100 steps of 10 ms).
  for (int i = 0; core_->in_flight != 0 && i < 100; ++i) step(true, 10'000'000);
  draining_ = false;
}

// ---------------------------------------------------------------- inbox

namespace detail {

inbox::~inbox() { ::close(efd_); }

bool inbox::push(inbox_item* item) noexcept {
  inbox_item* h = head_.load(std::memory_order_relaxed);
  do {
    if (h == closed_marker()) return false;
    item->next = h;
  } while (!head_.compare_exchange_weak(h, item, std::memory_order_seq_cst, std::memory_order_relaxed));
  // seq_cst with try_park's CAS and re-check (a Dekker pair): either we see
  // PARKED and write, or the loop sees our item and does not block.
  if (park_.load(std::memory_order_seq_cst) != notified &&
      park_.exchange(notified, std::memory_order_seq_cst) == parked) {
    std::uint64_t one = 1;
    [[maybe_unused]] ssize_t r = ::write(efd_, &one, sizeof one);
    wakeups_.fetch_add(1, std::memory_order_relaxed);
  }
  return true;
}

inbox_item* inbox::take_all() noexcept {
  inbox_item* h = head_.load(std::memory_order_relaxed);
  if (h == nullptr || h == closed_marker()) return nullptr;
  h = head_.exchange(nullptr, std::memory_order_acquire);
  if (h == closed_marker()) {  // closed meanwhile: leave the marker in place
    head_.store(closed_marker(), std::memory_order_release);
    return nullptr;
  }
  inbox_item* fifo = nullptr;
  while (h) {
    inbox_item* next = h->next;
    h->next = fifo;
    fifo = h;
    h = next;
  }
  return fifo;
}

bool inbox::try_park() noexcept {
  int expected = empty;
  if (!park_.compare_exchange_strong(expected, parked, std::memory_order_seq_cst)) {
    park_.store(empty, std::memory_order_seq_cst);
    return false;
  }
  inbox_item* h = head_.load(std::memory_order_seq_cst);
  if (h != nullptr && h != closed_marker()) {
    // Back to EMPTY, unless a producer saw PARKED meanwhile: its eventfd
    // write is then made or under way, so sleep anyway (it wakes us at once)
    // and keep exactly one write per sleep, with no stray write left behind.
    int was_parked = parked;
    return !park_.compare_exchange_strong(was_parked, empty, std::memory_order_seq_cst);
  }
  return true;
}

void inbox::close() noexcept {
  inbox_item* h = head_.exchange(closed_marker(), std::memory_order_acq_rel);
  while (h && h != closed_marker()) {
    inbox_item* next = h->next;
    h->run(h, false);
    h = next;
  }
}

}  // namespace detail
}  // namespace coring
