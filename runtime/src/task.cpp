#include <coring/task.hpp>

#include <coring/detail/loop_access.hpp>
#include <coring/event_loop.hpp>

#include <cstdio>
#include <unordered_map>
#include <vector>

namespace coring::detail {

namespace {
// Frames are created and destroyed on their loop's thread, so a per-thread table suffices.
std::unordered_map<const task_node*, const char*>& names() {
  thread_local std::unordered_map<const task_node*, const char*> table;
  return table;
}
}  // namespace

void set_task_name(task_node& n, const char* name) {
  names()[&n] = name;
  n.named = true;
}

const char* task_name(const task_node& n) noexcept {
  if (n.named) {
    auto& table = names();
    if (auto it = table.find(&n); it != table.end()) return it->second;
  }
  return "unnamed task";
}

void drop_task_name(task_node& n) noexcept {
  names().erase(&n);
  n.named = false;
}

namespace {
// Hooks queued by request_cancel calls made while another one runs. Firing
// them from the outermost call keeps the stack flat however deep the tree
// of combinators and joins being cancelled is. Loop thread only, like the
// tasks themselves.
struct cancel_worklist {
  std::vector<cancel_hook*> hooks;  // queued, fired in order from `next`
  std::size_t next = 0;             // first hook not yet fired
  bool active = false;              // an outermost request_cancel is firing hooks
};
thread_local cancel_worklist tl_cancels;
}  // namespace

void request_cancel(task_node& n) noexcept {
  if (n.done) return;
  n.cancel_requested = true;
  cancel_hook* leaf = n.leaf;
  if (!leaf) return;
  n.leaf = nullptr;
  cancel_worklist& w = tl_cancels;
  if (w.active) {
    try {
      w.hooks.push_back(leaf);
      return;
    } catch (...) {
      // Out of memory for the queue: fire it here, at the cost of stack.
      leaf->fire(leaf);
      return;
    }
  }
  w.active = true;
  leaf->fire(leaf);
  while (w.next < w.hooks.size()) {
    cancel_hook* h = w.hooks[w.next++];
    h->fire(h);
  }
  w.hooks.clear();
  w.next = 0;
  if (w.hooks.capacity() > 4096) std::vector<cancel_hook*>().swap(w.hooks);  // a huge cancel left its queue behind
  w.active = false;
}

void launch_spawned(event_loop& loop, promise_base& p, std::coroutine_handle<> h, const char* name) {
  if (name) set_task_name(p.own_node_, name);
  try {
    loop_access::adopt(loop, p.own_node_);
    try {
      loop_access::schedule(loop, h);
    } catch (...) {
      loop_access::forget(loop, p.own_node_);
      throw;
    }
  } catch (...) {
    if (p.own_node_.named) drop_task_name(p.own_node_);
    throw;
  }
  p.node_ = &p.own_node_;
}

void throw_if_cancel_requested(task_node* n) {
  if (n && n->cancel_requested) {
    n->cancel_requested = false;  // delivered once, as in asyncio
    throw cancelled{};
  }
}

void promise_base::unhandled_exception() noexcept {
  error_ = std::current_exception();
  if (spawned()) {
    try {
      throw;
    } catch (const cancelled&) {
      own_node_.ended_cancelled = true;
    } catch (...) {
    }
  }
}

namespace {
void report_unretrieved(promise_base& p) noexcept {
  const task_node& n = p.own_node_;
  if (!p.error_ || n.ended_cancelled || n.retrieved) return;
  if (event_loop* loop = event_loop::current()) {
    loop_access::report(*loop, p.error_, task_name(n));
  } else {
    std::fprintf(stderr, "coring: task '%s' ended with an exception nobody retrieved\n", task_name(n));
  }
}
}  // namespace

std::coroutine_handle<> promise_base::finish_spawned(promise_base& p, void* frame) noexcept {
  task_node& n = p.own_node_;
  n.done = true;
  n.leaf = nullptr;
  n.cancel_requested = false;
  if (event_loop* loop = event_loop::current()) loop_access::forget(*loop, n);
  if (n.on_done) return n.on_done(n.on_done_ctx, p);
  if (n.detached) {
    report_unretrieved(p);
    std::coroutine_handle<>::from_address(frame).destroy();
  }
  return std::noop_coroutine();
}

void release_spawned(promise_base& p, void* frame) noexcept {
  task_node& n = p.own_node_;
  if (n.done) {
    report_unretrieved(p);
    std::coroutine_handle<>::from_address(frame).destroy();
  } else {
    n.detached = true;
    n.on_done = nullptr;
  }
}

}  // namespace coring::detail
