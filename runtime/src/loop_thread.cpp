#include <coring/loop_thread.hpp>

#include <coring/detail/assert.hpp>
#include <coring/detail/inbox.hpp>
#include <coring/detail/loop_access.hpp>

#include "thread_signals.hpp"

#include <cstdio>
#include <exception>
#include <future>

namespace coring {

loop_thread::loop_thread(const event_loop::options& opts) {
  std::promise<void> started;
  std::future<void> ready = started.get_future();
  {
    // Born with asynchronous signals blocked, like every thread coring makes:
    // coring::signal() on this loop reads them from a signalfd all the same.
    detail::new_threads_block_signals no_signals;
    thread_ = std::thread([this, opts, &started] { run(opts, &started); });
  }
  try {
    ready.get();  // loop_ and id_ are set, or the loop could not be created
  } catch (...) {
    thread_.join();
    throw;
  }
}

void loop_thread::run(const event_loop::options& opts, void* started_ptr) noexcept {
  auto& started = *static_cast<std::promise<void>*>(started_ptr);
  try {
    event_loop loop(opts);
    loop_ = &loop;
    inbox_ = detail::loop_access::inbox_of(loop);
    id_ = std::this_thread::get_id();
    started.set_value();  // from here on, `started` may be gone
    for (;;) {
      try {
        loop.run_forever();  // a task's own stop() ends one run, not the thread
      } catch (...) {
        // The ring failed: nothing more can run. Keep the loop (and its inbox)
        // alive until the destructor, whose ~event_loop then ends what is
        // left; say why meanwhile.
        try {
          std::rethrow_exception(std::current_exception());
        } catch (const std::exception& e) {
          std::fprintf(stderr, "coring: loop_thread's event loop failed: %s\n", e.what());
        } catch (...) {
          std::fprintf(stderr, "coring: loop_thread's event loop failed\n");
        }
        stopping_.wait(false, std::memory_order_acquire);
      }
      if (stopping_.load(std::memory_order_acquire)) break;
    }
    // ~event_loop, on this thread as it must be: cancels the tasks still
    // alive and waits for them, then runs or drops the hand-overs still
    // queued, so that every future ends.
  } catch (...) {
    // Only the loop's construction can throw here; ~event_loop never does.
    started.set_exception(std::current_exception());
  }
}

loop_thread::~loop_thread() {
  CORING_ASSERT(std::this_thread::get_id() != id_, "a loop_thread destroyed on its own thread would join itself");
  stopping_.store(true, std::memory_order_release);
  stopping_.notify_all();
  // The stop request is a member pushed into the inbox we share, not a
  // post(): it needs no allocation, so stopping cannot fail, and it does not
  // touch the loop, which may be ending already (a task's stop() after
  // stopping_ was set). An inbox closed by then refuses it: fine.
  stop_request_.run = [](detail::inbox_item*, bool loop_alive) noexcept {
    if (loop_alive) event_loop::current()->stop();
  };
  inbox_->push(&stop_request_);
  thread_.join();
}

}  // namespace coring
