#include <coring/task.hpp>

#include <coring/event_loop.hpp>
#include <coring/spawn.hpp>

#include <cstdio>
#include <unordered_map>

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
    loop->report(p.error_, task_name(n));
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
  if (event_loop* loop = event_loop::current()) loop->forget(n);
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
