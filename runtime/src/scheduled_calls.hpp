#pragma once
// What the loop does with call_later / call_at functions still queued when it
// is destroyed. Internal.

namespace coring::detail {

class loop_core;

/// Drops the heap's reference to every scheduled_call still queued (they
/// never run; a handle that outlives the loop sees them as inert).
void drop_scheduled_calls(loop_core& core) noexcept;

}  // namespace coring::detail
