#include <coring/timer_handle.hpp>

#include <coring/detail/loop_access.hpp>
#include <coring/event_loop.hpp>

#include "loop_core.hpp"
#include "scheduled_calls.hpp"

#include <exception>

namespace coring {

namespace detail {

void schedule_call(event_loop& loop, scheduled_call& c) {
  loop_access::add_timer(loop, c);  // the heap's reference is the one the node was made with
  c.loop = &loop;
}

void scheduled_call::on_fire(timer_node* t) noexcept {
  auto* self = static_cast<scheduled_call*>(t);
  event_loop* loop = self->loop;
  try {
    self->invoke(self);
  } catch (...) {
    loop_access::report(*loop, std::current_exception(), "call_later callback");
  }
  self->release_from_heap();
}

void drop_scheduled_calls(loop_core& core) noexcept {
  for (const loop_core::timer_entry& e : core.heap) {
    if (e.node->fire != &scheduled_call::on_fire) continue;
    auto* c = static_cast<scheduled_call*>(e.node);
    c->heap_index = timer_node::not_queued;
    c->loop = nullptr;
    c->release_from_heap();
  }
}

}  // namespace detail

void timer_handle::cancel() noexcept {
  if (!c_ || c_->fired || c_->cancelled || !c_->loop) return;
  c_->cancelled = true;
  detail::loop_access::remove_timer(*c_->loop, *c_);
  c_->release_from_heap();  // ours keeps the node, for cancelled()
}

}  // namespace coring
