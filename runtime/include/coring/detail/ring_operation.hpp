#pragma once
// ring_operation: the base of every awaiter that is one io_uring SQE. Internal.
//
// The awaiter lives in the awaiting coroutine's frame; its address is the
// SQE's user_data and the CQE makes it ready: no allocation per operation.
// A derived awaiter supplies a prep function (defined where liburing.h is
// included, so public headers need not include it) that fills the SQE from
// the awaiter's fields, and an await_resume that turns result() into a value.

#include <coring/detail/task_node.hpp>
#include <coring/event_loop.hpp>

#include <cerrno>
#include <coroutine>

struct io_uring_sqe;

namespace coring::detail {

/// Where a CQE goes: the object whose address is the SQE's user_data.
struct completion {
  void (*complete)(completion* self, int res, unsigned cqe_flags) noexcept = nullptr;
};

class ring_operation : public completion, public cancel_hook {
 public:
  using prep_fn = void (*)(::io_uring_sqe* sqe, const ring_operation& op) noexcept;

  explicit ring_operation(prep_fn prep) noexcept
      : completion{&on_complete}, cancel_hook{&on_cancel}, prep_(prep) {}
  ring_operation(const ring_operation&) = delete;
  ring_operation& operator=(const ring_operation&) = delete;

  bool await_ready() const noexcept { return false; }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) {
    node_ = node_of(h);
    if (node_ && node_->cancel_requested) {
      res_ = -ECANCELED;
      return false;
    }
    handle_ = h;
    loop_ = event_loop::current();
    CORING_ASSERT(loop_, "a ring operation needs an event loop on this thread");
    loop_->submit(*this);
    if (node_) node_->leaf = this;
    return true;
  }

  /// Fills `sqe` (everything but user_data).
  void prepare(::io_uring_sqe* sqe) const noexcept { prep_(sqe, *this); }

 protected:
  /// The CQE's res; throws coring::cancelled instead if the task was
  /// cancelled and the operation did not succeed.
  int result() {
    if (res_ < 0 && node_ && node_->cancel_requested) throw_if_cancel_requested(node_);
    return res_;
  }
  /// The CQE's flags.
  unsigned cqe_flags() const noexcept { return cqe_flags_; }

 private:
  static void on_complete(completion* c, int res, unsigned flags) noexcept {
    auto* self = static_cast<ring_operation*>(c);
    self->res_ = res;
    self->cqe_flags_ = flags;
    if (self->node_ && self->node_->leaf == self) self->node_->leaf = nullptr;
    self->loop_->schedule(self->handle_);
  }
  static void on_cancel(cancel_hook* c) noexcept {
    auto* self = static_cast<ring_operation*>(c);
    self->loop_->submit_cancel(*self);
  }

  prep_fn prep_;                      // fills the SQE
  std::coroutine_handle<> handle_;    // the suspended coroutine
  event_loop* loop_ = nullptr;        // whose ring carries the SQE
  task_node* node_ = nullptr;         // cancellation state of the awaiter
  int res_ = 0;                       // the CQE's res
  unsigned cqe_flags_ = 0;            // the CQE's flags
};

}  // namespace coring::detail
