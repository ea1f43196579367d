#pragma once
// The process pool's fork server: a small process forked from the main
// process while it is still single-threaded, which clones every worker
// (clone3 with CLONE_PARENT | CLONE_PIDFD, so the main process is the
// workers' parent and holds a pidfd for each). One per process, shared by
// every pool; requests from all pools are serialised under its mutex.

#include <sys/types.h>

#include <cstddef>
#include <string>

namespace coring::detail {

/// Starts the fork server unless this process already has one.
/// **Errors:** coring::error if `check_threads` and the process has other
/// threads (fork would be unsafe); io_error if the socket or the fork fails.
void ensure_fork_server(bool check_threads);

/// A new worker as the fork server reports it: its pid, a pidfd and our end of its socket.
struct spawned {
  pid_t pid = 0;
  int pidfd = -1;
  int sock = -1;
};

/// A worker could not be started for a reason of the moment or of this
/// process (no descriptor, memory or process slot free): the pool is fine.
struct spawn_failure {
  int err = 0;          // the errno
  std::string context;  // what failed, for io_error(err, context)
};

/// Asks the fork server for a worker (starting the server if needed).
/// **Errors:** spawn_failure (see there); coring::error if there is no fork
/// server to ask.
spawned spawn_worker(void (*initializer)(), std::size_t memory_limit);

}  // namespace coring::detail
