#pragma once
// The process pool's fork server: a small process forked from the main
// process while it is still single-threaded, which clones every worker
// (clone3 with CLONE_PARENT | CLONE_PIDFD, so the main process is the
// workers' parent and holds a pidfd for each). One per process, shared by
// every pool; requests from all pools are serialised under its mutex.
//
// The server keeps a standby: an idle clone of itself, made while it was
// healthy. If the server dies, it is reaped and the standby takes over (and
// gets a standby of its own); only when both are gone is there no server,
// and the pools that need a new worker break.

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

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

/// Asks the fork server for a worker (starting the server if needed, and
/// replacing it with its standby if it died).
/// **Errors:** spawn_failure (see there); coring::error if no fork server is
/// left, or one would have to be forked now that the process has threads.
spawned spawn_worker(void (*initializer)(), std::size_t memory_limit);

/// Counts changes of the fork server processes: pidfds from an older
/// generation may belong to processes already reaped.
std::uint64_t fork_server_generation() noexcept;

/// Duplicates of the pidfds of the fork server and its standby, for the
/// caller to poll and close: one polls readable when its process exits,
/// and then check_fork_server() reaps it. `generation` is set to theirs.
std::vector<int> dup_fork_server_pidfds(std::uint64_t& generation);

/// Reaps a fork server process that has exited (promoting the standby if the
/// server did) and makes a new standby if there is none. No server left is
/// reported by the next spawn_worker.
void check_fork_server() noexcept;

/// How a child process ended, in words: "exited with code 3" (sig == 0),
/// "was killed by signal 9 (SIGKILL)", or, for sig == 0 and code == -1 (it
/// was reaped by someone else), that its exit status was lost.
std::string exit_text(int sig, int code);

}  // namespace coring::detail
