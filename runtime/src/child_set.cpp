#include <coring/detail/child_set.hpp>

#include <cstdio>

namespace coring::detail {

child_set::~child_set() {
  // Every combinator waits for its children before the set dies, on every
  // path; a running child here would outlive the frame that lent it
  // references. In a build without assertions it is stopped and left to free
  // itself (the best that can be done without awaiting).
  CORING_ASSERT(running_ == 0, "a child_set died while children ran: its owner did not wait for them");
  if (running_ != 0) cancel_all();
  for (std::size_t i = 0; i < size_; ++i) {
    child_record& r = record(i);
    if (r.promise) release_spawned(*r.promise, r.frame);
  }
}

child_record& child_set::new_record() {
  if (storage_) {
    CORING_ASSERT(size_ < capacity_, "child_set: more children than its storage holds");
    child_record& r = storage_[size_];
    r.index = size_++;
    return r;
  }
  if (free_) {
    child_record& r = *free_;
    free_ = r.next_done;
    r.next_done = nullptr;
    return r;
  }
  if (size_ % chunk == 0) chunks_.push_back(std::make_unique<child_record[]>(chunk));
  child_record& r = chunks_.back()[size_ % chunk];
  r.index = size_++;
  return r;
}

void child_set::undo_record(child_record& r) noexcept {
  if (storage_) {
    --size_;  // it was the last one handed out
  } else {
    r.next_done = free_;
    free_ = &r;
  }
}

void child_set::track(child_record& r, promise_base& p, void* frame, bool keep) noexcept {
  r.set = this;
  r.promise = &p;
  r.frame = frame;
  r.keep = keep;
  r.next_done = nullptr;
  task_node& n = p.own_node_;
  n.on_done = &on_child_done;
  n.on_done_ctx = &r;
  ++running_;
  // A child added after the decisive event is cancelled at once (task_group).
  if (policy_ != policy::settle_all && decisive_ != npos) request_cancel(n);
}

void child_set::cancel_all() noexcept {
  for (std::size_t i = 0; i < size_; ++i) {
    child_record& r = record(i);
    if (r.promise && !r.promise->own_node_.done) request_cancel(r.promise->own_node_);
  }
}

std::size_t child_set::pop_completed() noexcept {
  child_record* r = done_head_;
  done_head_ = r->next_done;
  if (!done_head_) done_tail_ = nullptr;
  r->next_done = nullptr;
  return r->index;
}

bool child_set::ended_cancelled(std::size_t i) noexcept { return record(i).promise->own_node_.ended_cancelled; }

void child_set::rethrow(std::size_t i) {
  promise_base& p = *record(i).promise;
  p.own_node_.retrieved = true;
  std::rethrow_exception(p.error_);
}

std::coroutine_handle<> child_set::on_child_done(void* ctx, promise_base& p) noexcept {
  auto* r = static_cast<child_record*>(ctx);
  child_set& s = *r->set;
  --s.running_;
  task_node& n = p.own_node_;
  const bool failed = p.error_ != nullptr && !n.ended_cancelled;
  if (failed && !s.first_error_) s.first_error_ = p.error_;
  if (s.decisive_ == npos &&
      ((s.policy_ == policy::fail_fast && failed) || s.policy_ == policy::first_wins)) {
    s.decisive_ = r->index;
    s.cancel_all();
  }
  if (!r->keep) {
    // Nobody will take this result: free the frame now (it is suspended at
    // its final point and nothing touches it after this callback). A failure
    // other than the first is reported, never dropped.
    if (failed && s.first_error_ != p.error_) {
      if (event_loop* loop = event_loop::current()) loop_access::report(*loop, p.error_, task_name(n));
    }
    n.retrieved = true;
    std::coroutine_handle<>::from_address(r->frame).destroy();
    r->promise = nullptr;
    r->next_done = s.free_;
    s.free_ = r;
  } else if (s.track_order_) {
    if (s.done_tail_) {
      s.done_tail_->next_done = r;
    } else {
      s.done_head_ = r;
    }
    s.done_tail_ = r;
  }
  if (wait_operation* w = s.waiter_; w && w->done()) {
    s.waiter_ = nullptr;
    if (w->node_ && w->node_->leaf == w) w->node_->leaf = nullptr;
    return w->handle_;
  }
  return std::noop_coroutine();
}

}  // namespace coring::detail
