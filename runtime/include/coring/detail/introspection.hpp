#pragma once
// What event_loop::dump_tasks() can say about the operation a task is
// suspended in. Internal.
//
// A task's node knows only its leaf: a cancel_hook*. Every kind of leaf has
// its own fire function, so that function's address names the kind: each
// leaf type registers, once per program, a describer under it (a static
// member initialised at start-up; class templates register the
// instantiations that are used). Ring operations share one fire function
// and are told apart by their prep function, in a second table. Nothing is
// added to a task_node, a frame or an awaiter: a million sleeping tasks pay
// nothing for being describable.

#include <coring/detail/task_node.hpp>

#include <coroutine>
#include <string>
#include <vector>

namespace coring::detail {

/// One leaf, as dump_tasks() prints it.
struct leaf_report {
  std::string what;                      // "sleep until +85 ms", "read on fd 7", "a child set of 3"
  std::coroutine_handle<> frame;         // the coroutine suspended in it (innermost of its await chain), or null
  std::vector<const task_node*> awaits;  // tasks it waits for: a joined task, the children of a child set
};

/// Fills `out` for a leaf of the kind it was registered for.
using leaf_describer = void (*)(const cancel_hook& leaf, leaf_report& out);

/// Registers the describer of the leaves whose hook fires `fire`. Returns
/// true (so that it can initialise a static member). Thread-safe.
bool register_leaf(void (*fire)(cancel_hook*) noexcept, leaf_describer describe) noexcept;

/// Describes `leaf` ("an operation" for a kind nobody registered).
void describe_leaf(const cancel_hook& leaf, leaf_report& out);

/// "+85 ms", "due", for a deadline in steady-clock nanoseconds.
std::string describe_deadline_from_now(std::int64_t deadline_ns);

}  // namespace coring::detail
