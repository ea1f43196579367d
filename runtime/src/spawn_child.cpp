#include "spawn_child.hpp"

#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>

namespace coring::detail {

namespace {

// The kernel's struct sigaction on x86_64 and aarch64 (not glibc's): handler,
// flags, restorer, then a mask of _NSIG bits.
struct kernel_sigaction {
  void* handler;
  unsigned long flags;
  void* restorer;
  unsigned long mask;
};

// A raw system call: returns -errno on failure, touching no errno and no
// library state (glibc's syscall() would set errno; harmless, but this is plainer).
[[gnu::always_inline]] inline long raw(long nr, long a = 0, long b = 0, long c = 0, long d = 0,
                                       long e = 0) noexcept {
  long r = ::syscall(nr, a, b, c, d, e);
  return r < 0 ? -errno : r;
}

[[noreturn]] void fail(child_plan& p, int stage, long err) noexcept {
  p.stage = stage;
  p.error = static_cast<int>(-err);
  ::syscall(SYS_exit_group, 127);
  __builtin_unreachable();
}

}  // namespace

int run_child(void* arg) noexcept {
  child_plan& p = *static_cast<child_plan*>(arg);

  // Signals: the parent blocked them all around clone(), so no handler of
  // the parent can run here. Dispositions with a handler go back to the
  // default (a handler would be meaningless after exec anyway, and must not
  // run in our shared memory before it); then the program starts with an
  // empty mask (not the loop thread's, which blocks SIGINT or SIGPIPE).
  for (int i = 0; i < p.reset_count; ++i) {
    kernel_sigaction dfl{};  // SIG_DFL
    long r =
        raw(SYS_rt_sigaction, p.reset_signals[i], reinterpret_cast<long>(&dfl), 0, sizeof(unsigned long));
    if (r < 0) fail(p, stage_signals, r);
  }
  unsigned long empty = 0;
  if (long r = raw(SYS_rt_sigprocmask, SIG_SETMASK, reinterpret_cast<long>(&empty), 0, sizeof empty); r < 0) {
    fail(p, stage_signals, r);
  }

  // Standard streams. Every source is >= 3 (the parent saw to it), so no
  // dup3 overwrites a source still needed; dup3 leaves the target open
  // across exec (no O_CLOEXEC).
  for (int target = 0; target < 3; ++target) {
    if (p.sources[target] < 0) continue;
    if (long r = raw(SYS_dup3, p.sources[target], target, 0); r < 0) fail(p, stage_fds, r);
  }
  if (p.stderr_to_stdout) {
    if (long r = raw(SYS_dup3, 1, 2, 0); r < 0) fail(p, stage_fds, r);
  }
  // Nothing else crosses exec: ours are close-on-exec already, and this
  // catches what other code opened without it (Python's close_fds=True).
  // Kernels before 5.9 lack close_range: then close-on-exec alone applies.
  (void)raw(SYS_close_range, 3, static_cast<long>(UINT_MAX), 0);

  if (p.cwd) {
    if (long r = raw(SYS_chdir, reinterpret_cast<long>(p.cwd)); r < 0) fail(p, stage_chdir, r);
  }

  // Like execvp: try every candidate; report EACCES if one was found but
  // not executable, else the last error.
  long err = -ENOENT;
  bool denied = false;
  for (const char* const* c = p.candidates; *c; ++c) {
    err = raw(SYS_execve, reinterpret_cast<long>(*c), reinterpret_cast<long>(p.argv),
              reinterpret_cast<long>(p.envp));
    if (err == -EACCES) denied = true;
    if (err != -ENOENT && err != -ENOTDIR && err != -EACCES) break;  // found, but it cannot run
  }
  fail(p, stage_exec, denied && (err == -ENOENT || err == -ENOTDIR) ? -EACCES : err);
}

}  // namespace coring::detail
