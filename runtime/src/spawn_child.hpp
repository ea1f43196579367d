#pragma once
// The child side of coring::subprocess: what runs between clone() and
// execve(). Internal.
//
// The child shares our memory (CLONE_VM) while we are suspended (CLONE_VFORK),
// on a stack of its own: it may call nothing but raw system calls — no
// malloc, no locks, no errno-dependent library code, no sanitizer
// interceptors. spawn_child.cpp is compiled without sanitizer instrumentation
// for that reason (see runtime/CMakeLists.txt).

namespace coring::detail {

/// Everything the child needs, prepared by the parent.
struct child_plan {
  const char* const* argv = nullptr;        // null-terminated
  const char* const* envp = nullptr;        // null-terminated
  const char* const* candidates = nullptr;  // paths to try with execve, in order, null-terminated
  const char* cwd = nullptr;                // chdir here first, unless null
  int sources[3] = {-1, -1, -1};            // what becomes fd 0, 1, 2 (all >= 3); -1: keep ours
  bool stderr_to_stdout = false;            // fd 2 = fd 1, after the above
  const int* reset_signals = nullptr;       // signals to set back to their default disposition
  int reset_count = 0;
  // Written by the child if it cannot exec (we read them once clone() returns):
  int error = 0;  // errno of the step that failed
  int stage = 0;  // which step: one of the child_stage values
};

enum child_stage : int { stage_none = 0, stage_signals = 1, stage_fds = 2, stage_chdir = 3, stage_exec = 4 };

/// The function clone() runs in the child. Never returns on success (it
/// execs); else records the failure in the plan and exits with 127.
int run_child(void* plan) noexcept;

}  // namespace coring::detail
