#include <coring/future.hpp>

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <ctime>
#include <thread>

namespace coring::detail {

void report_callback_failure(std::exception_ptr error) noexcept {
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "coring: a future's done callback threw: %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "coring: a future's done callback threw\n");
  }
}

future_state_base::~future_state_base() {
  done_callback_node* c = callbacks_.load(std::memory_order_acquire);
  if (c == callbacks_done()) return;
  while (c) {
    done_callback_node* next = c->next;
    c->run(c, false);
    c = next;
  }
}

bool on_loop_thread() noexcept {
  event_loop* loop = event_loop::current();
  return loop != nullptr && loop->running();
}

namespace {
// The word is a std::atomic<std::uint32_t>, which has the size and layout of
// the futex's u32. Private futexes: the state never crosses processes.
std::uint32_t* futex_word(std::atomic<std::uint32_t>& a) noexcept { return reinterpret_cast<std::uint32_t*>(&a); }

// Sleeps while the word holds `expected`, until `abs` (CLOCK_MONOTONIC, the
// clock of steady_clock on Linux) if given. Spurious returns are fine: callers loop.
void futex_wait(std::atomic<std::uint32_t>& a, std::uint32_t expected, const timespec* abs) noexcept {
  ::syscall(SYS_futex, futex_word(a), FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, expected, abs, nullptr,
            FUTEX_BITSET_MATCH_ANY);
}

void futex_wake_all(std::atomic<std::uint32_t>& a) noexcept {
  ::syscall(SYS_futex, futex_word(a), FUTEX_WAKE | FUTEX_PRIVATE_FLAG, INT_MAX, nullptr, nullptr, 0);
}
}  // namespace

bool future_state_base::start() noexcept {
  std::uint32_t w = word_.load(std::memory_order_relaxed);
  do {
    if (stage_of(w) != stage::pending) return false;
  } while (!word_.compare_exchange_weak(w, (w & ~stage_mask) | static_cast<std::uint32_t>(stage::running),
                                        std::memory_order_acq_rel, std::memory_order_relaxed));
  return true;
}

bool future_state_base::hand_over() noexcept {
  std::uint32_t w = word_.load(std::memory_order_relaxed);
  do {
    if (stage_of(w) != stage::pending) return false;
  } while (!word_.compare_exchange_weak(w, (w & ~stage_mask) | static_cast<std::uint32_t>(stage::handed),
                                        std::memory_order_acq_rel, std::memory_order_relaxed));
  return true;
}

void future_state_base::take_back() noexcept {
  std::uint32_t w = word_.load(std::memory_order_relaxed);
  do {
    CORING_ASSERT(stage_of(w) == stage::handed, "take_back() of a job that is not handed");
  } while (!word_.compare_exchange_weak(w, (w & ~stage_mask) | static_cast<std::uint32_t>(stage::pending),
                                        std::memory_order_acq_rel, std::memory_order_relaxed));
}

// Moves the word to done (with `extra` flags) if its stage is one of
// `from_mask` (bit per stage); then wakes sleepers and hands the awaiting
// coroutine to its loop. False if the stage was not in the mask.
bool future_state_base::end(std::uint32_t from_mask, std::uint32_t extra) noexcept {
  std::uint32_t w = word_.load(std::memory_order_relaxed);
  do {
    if (((1u << (w & stage_mask)) & from_mask) == 0) return false;
  } while (!word_.compare_exchange_weak(w, (w & ~stage_mask) | static_cast<std::uint32_t>(stage::done) | extra,
                                        std::memory_order_acq_rel, std::memory_order_relaxed));
  // After the stage: an attach() that still sees the slot empty is delivered
  // here; one that comes later sees done_marker() and does not suspend.
  waiter* wt = waiter_.exchange(done_marker(), std::memory_order_acq_rel);
  if (wt != nullptr && wt != done_marker()) {
    // The push hands the waiter to its loop, which may resume the coroutine
    // and free the waiter at once: keep the inbox alive ourselves and touch
    // nothing of wt after the push. A closed inbox (its loop is gone) does
    // not take the item: it is ours to dispose of.
    std::shared_ptr<inbox> box = wt->box;
    if (!box->push(wt)) wt->run(wt, false);
  }
  // Blocked threads last: one that this wake sets going (and that finishes
  // a job of its own) is then seen finishing after us by as_completed.
  if (w & sleepers_bit) futex_wake_all(word_);
  run_callbacks();
  return true;
}

// After the stage is done: takes the callbacks (an add_callback that still
// sees the list is served here; a later one sees callbacks_done() and runs
// its callback itself) and runs them oldest first, on this thread.
void future_state_base::run_callbacks() noexcept {
  done_callback_node* c = callbacks_.exchange(callbacks_done(), std::memory_order_acq_rel);
  done_callback_node* fifo = nullptr;
  while (c && c != callbacks_done()) {
    done_callback_node* next = c->next;
    c->next = fifo;
    fifo = c;
    c = next;
  }
  while (fifo) {
    done_callback_node* next = fifo->next;
    fifo->run(fifo, true);
    fifo = next;
  }
}

bool future_state_base::add_callback(done_callback_node* c) noexcept {
  // Ended already (the end's thread may not have taken the list yet): the
  // caller runs it, so that "ready() implies it runs here" holds.
  if (ready()) return false;
  done_callback_node* head = callbacks_.load(std::memory_order_acquire);
  do {
    if (head == callbacks_done()) return false;
    c->next = head;
  } while (!callbacks_.compare_exchange_weak(head, c, std::memory_order_acq_rel, std::memory_order_acquire));
  return true;
}

void future_state_base::finish() noexcept {
  constexpr std::uint32_t from = (1u << static_cast<unsigned>(stage::pending)) |
                                 (1u << static_cast<unsigned>(stage::running)) |
                                 (1u << static_cast<unsigned>(stage::handed));
  end(from, 0);  // false: cancelled before it started, which stays the outcome
}

bool future_state_base::cancel() noexcept {
  for (;;) {
    if (end(1u << static_cast<unsigned>(stage::pending), cancelled_bit)) return true;
    // The acquire load pairs with hand_over(): a handed stage shows the claim
    // word the executor set up before it.
    switch (current_stage()) {
      case stage::pending:  // taken back meanwhile: try again
        continue;
      case stage::done:
        return false;
      case stage::running:
        // Only the executor can stop a running job.
        if (cancel_running_) cancel_running_(this, cancel_ctx_);
        return false;
      case stage::handed:
        switch (claim_(this, cancel_ctx_, true)) {
          case claim::stopped:
            // The claim is ours: the runner skips the job and the executor
            // leaves its stage to us, so this cannot fail.
            end(1u << static_cast<unsigned>(stage::handed), cancelled_bit);
            return true;
          case claim::started:
            if (cancel_running_) cancel_running_(this, cancel_ctx_);
            return false;
          case claim::queued:
          case claim::moved:
            // Being taken back, or another cancel won the claim: its stage
            // change is a few instructions away.
            std::this_thread::yield();
            continue;
        }
    }
  }
}

bool future_state_base::running() const noexcept {
  for (;;) {
    stage st = current_stage();
    if (st != stage::handed) return st == stage::running;
    claim c = claim_(this, cancel_ctx_, false);
    if (c != claim::moved) return c == claim::started;
  }
}

void future_state_base::wait() noexcept {
  std::uint32_t w = word_.load(std::memory_order_acquire);
  while (stage_of(w) != stage::done) {
    if (!(w & sleepers_bit)) {
      if (!word_.compare_exchange_weak(w, w | sleepers_bit, std::memory_order_acq_rel, std::memory_order_acquire))
        continue;
      w |= sleepers_bit;
    }
    futex_wait(word_, w, nullptr);
    w = word_.load(std::memory_order_acquire);
  }
}

bool future_state_base::wait_until(std::chrono::steady_clock::time_point deadline) noexcept {
  const auto since_epoch = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline.time_since_epoch()).count();
  timespec abs{};
  abs.tv_sec = static_cast<std::time_t>(since_epoch / 1'000'000'000);
  abs.tv_nsec = static_cast<long>(since_epoch % 1'000'000'000);
  std::uint32_t w = word_.load(std::memory_order_acquire);
  while (stage_of(w) != stage::done) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    if (!(w & sleepers_bit)) {
      if (!word_.compare_exchange_weak(w, w | sleepers_bit, std::memory_order_acq_rel, std::memory_order_acquire))
        continue;
      w |= sleepers_bit;
    }
    futex_wait(word_, w, &abs);
    w = word_.load(std::memory_order_acquire);
  }
  return true;
}

bool future_state_base::attach(waiter* w) noexcept {
  waiter* expected = nullptr;
  if (waiter_.compare_exchange_strong(expected, w, std::memory_order_acq_rel, std::memory_order_acquire)) return true;
  CORING_ASSERT(expected == done_marker(), "a coring::future was awaited twice at once");
  return false;
}

bool future_state_base::detach(waiter* w) noexcept {
  waiter* expected = w;
  return waiter_.compare_exchange_strong(expected, nullptr, std::memory_order_acq_rel, std::memory_order_relaxed);
}

}  // namespace coring::detail
