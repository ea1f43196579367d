#include <coring/detail/child_set.hpp>

namespace coring::detail {

child_set::~child_set() {
  // Running children remain only if the owner was destroyed mid-wait (a loop
  // torn down, a task_group dropped without join): stop them and let them
  // free themselves. An ended child's error that no combinator took is
  // reported by release_spawned, never lost.
  cancel_all();
  for (record& r : records_) {
    if (r.promise) release_spawned(*r.promise, r.frame);
  }
}

void child_set::track(promise_base& p, void* frame) {
  std::size_t i;
  if (!free_.empty()) {
    i = free_.back();
    free_.pop_back();
    records_[i] = record{this, &p, frame, i};
  } else {
    i = records_.size();
    records_.push_back(record{this, &p, frame, i});
  }
  task_node& n = p.own_node_;
  n.on_done = &on_child_done;
  n.on_done_ctx = &records_[i];
  ++running_;
  // A child added after the decisive event is cancelled at once (task_group).
  if (policy_ != policy::settle_all && decisive_ != npos) request_cancel(n);
}

void child_set::cancel_all() noexcept {
  for (record& r : records_) {
    if (r.promise && !r.promise->own_node_.done) request_cancel(r.promise->own_node_);
  }
}

std::coroutine_handle<> child_set::on_child_done(void* ctx, promise_base& p) noexcept {
  auto* r = static_cast<record*>(ctx);
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
  if (s.track_order_) s.completed_.push_back(r->index);
  if (s.discard_) {
    // Nobody will take this result: free the frame now (it is suspended at
    // its final point and nothing touches it after this callback).
    if (failed && s.first_error_ != p.error_) {
      if (event_loop* loop = event_loop::current()) loop->report(p.error_, task_name(n));
    }
    n.retrieved = true;
    std::coroutine_handle<>::from_address(r->frame).destroy();
    r->promise = nullptr;
    s.free_.push_back(r->index);
  }
  if (wait_operation* w = s.waiter_; w && w->done()) {
    s.waiter_ = nullptr;
    if (w->node_ && w->node_->leaf == w) w->node_->leaf = nullptr;
    return w->handle_;
  }
  return std::noop_coroutine();
}

}  // namespace coring::detail

#include <coring/wait_for.hpp>

namespace coring::detail {
std::string describe_timeout(std::int64_t timeout_ns) {
  if (timeout_ns < 0) return "coring::wait_until: the task did not finish before its deadline";
  return "coring::wait_for: the task did not finish within " + std::to_string(timeout_ns / 1'000'000) + " ms";
}
}  // namespace coring::detail
