#pragma once
// Threads coring creates take no asynchronous signals. Internal.
//
// A process-directed signal (Ctrl-C's SIGINT, kill's SIGTERM) goes to any
// thread that does not block it. coring::signal() and coring::run receive
// signals through a signalfd read in the ring, which works only if no thread
// takes the signal first (by its default action, which for SIGINT ends the
// process). So every thread coring starts is born with the asynchronous
// signals blocked: the creator blocks them around the creation (a new thread
// inherits its creator's mask) and restores its own mask afterwards. Faults
// (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS) and SIGABRT stay
// unblocked: they are synchronous, and must reach their handlers.

#include <pthread.h>
#include <signal.h>

namespace coring::detail {

class new_threads_block_signals {
 public:
  new_threads_block_signals() noexcept {
    sigset_t async;
    sigfillset(&async);
    for (int s : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS, SIGABRT}) sigdelset(&async, s);
    pthread_sigmask(SIG_BLOCK, &async, &saved_);
  }
  ~new_threads_block_signals() { pthread_sigmask(SIG_SETMASK, &saved_, nullptr); }
  new_threads_block_signals(const new_threads_block_signals&) = delete;
  new_threads_block_signals& operator=(const new_threads_block_signals&) = delete;

 private:
  sigset_t saved_;  // the creator's own mask, restored at the end of the scope
};

}  // namespace coring::detail
