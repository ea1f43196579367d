#include "process_pool_fork_server.hpp"

#include <coring/process_pool.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "process_pool_claims.hpp"
#include "process_pool_wire.hpp"
#include "process_pool_worker.hpp"

namespace coring::detail {

std::string exit_text(int sig, int code) {
  if (sig == 0 && code == -1) {
    return "died, and its exit status was lost: something else in this process reaped it first "
           "(a waitpid(-1) or wait() loop, or SIGCHLD ignored)";
  }
  if (sig == 0) return "exited with code " + std::to_string(code);
  std::string s = "was killed by signal " + std::to_string(sig);
  if (const char* abbrev = ::sigabbrev_np(sig)) s += std::string(" (SIG") + abbrev + ")";
  return s;
}

namespace {

// What the main process asks a fork server for.
enum request_kind : std::uint32_t {
  r_worker = 1,   // a worker, running worker_main with the initializer and memory limit
  r_standby = 2,  // a copy of the server itself, to take over if it dies
};

struct spawn_request {
  std::uint32_t kind;    // a request_kind
  std::uint32_t number;  // counts requests, for spawn_trace
  std::uint64_t initializer;
  std::uint64_t memory_limit;
};

struct spawn_reply {
  std::int32_t pid;
  std::int32_t err;  // errno of a failed socketpair/clone3, else 0
};

// clone3's argument, version 0 (64 bytes); spelled out here so that
// <linux/sched.h> need not meet glibc's <sched.h>.
struct clone_args_v0 {
  std::uint64_t flags;
  std::uint64_t pidfd;
  std::uint64_t child_tid;
  std::uint64_t parent_tid;
  std::uint64_t exit_signal;
  std::uint64_t stack;
  std::uint64_t stack_size;
  std::uint64_t tls;
};

// The descriptor number of the one socket a pool process keeps, beside
// stdin, stdout and stderr.
constexpr int own_socket = 3;

// A page shared (MAP_SHARED, mapped before the first fork) by this process,
// its fork servers and their children. A new child writes here, first thing,
// the number of the request it answers and its pid (its server writes the
// same as soon as clone3 returns): if the server dies before telling us
// about the child, the child is still ours to reap, and this is how we learn
// its pid. The request number tells a late write of an earlier child (which
// may run after we have its reply) from the child of the request that failed.
struct spawn_trace {
  std::atomic<std::uint64_t> last_child{0};  // request number << 32 | pid
};
static_assert(std::atomic<std::uint64_t>::is_always_lock_free, "the trace is shared between processes");

std::uint64_t trace_word(std::uint32_t request, pid_t pid) noexcept {
  return std::uint64_t{request} << 32 | static_cast<std::uint32_t>(pid);
}
spawn_trace* trace = nullptr;  // set before the first fork; the same address in every process since

void close_from(int first) noexcept {
  if (::close_range(static_cast<unsigned>(first), ~0U, 0) == 0) return;
  // Kernels before 5.9 have no close_range: close what /proc/self/fd lists.
  // (Allocating is safe here: this process has a single thread.)
  std::vector<int> open;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (dirent* e = ::readdir(d)) {
      int fd = std::atoi(e->d_name);
      if (e->d_name[0] != '.' && fd >= first && fd != ::dirfd(d)) open.push_back(fd);
    }
    ::closedir(d);
  }
  for (int fd : open) ::close(fd);
}

// Makes `sock` descriptor own_socket (close-on-exec) and closes every other
// descriptor but 0, 1 and 2: `peer` (the other end of sock's pair) and all
// that the application had open when we were forked. A pool process must not
// keep them: a listening socket the application closes would stay bound.
void keep_only(int sock, int peer) noexcept {
  if (sock != own_socket) {
    if (::dup3(sock, own_socket, O_CLOEXEC) < 0) ::_exit(1);  // also closes what was there
    ::close(sock);
  } else {
    ::fcntl(sock, F_SETFD, FD_CLOEXEC);
  }
  if (peer != own_socket) ::close(peer);
  close_from(own_socket + 1);
}

// Default signal dispositions and an empty mask, whatever the application
// had set, except SIGINT, which is ignored: the terminal's Ctrl-C reaches the
// whole foreground process group, and the application decides when its
// workers end (its shutdown kills them, PDEATHSIG does if it dies).
void reset_signals() noexcept {
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) ::sigaction(sig, &dfl, nullptr);  // glibc's own signals: EINVAL
  }
  struct sigaction ign {};
  ign.sa_handler = SIG_IGN;
  ::sigaction(SIGINT, &ign, nullptr);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
}

[[noreturn]] void fork_server_main(int sock, pid_t parent);

// Code of a new fork server process: as it starts, whoever made it.
[[noreturn]] void become_fork_server(int sock, int peer, pid_t parent) {
  // PDEATHSIG is not inherited: each server sets it. The getppid() check
  // covers a main process that died before the prctl.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(0);
  keep_only(sock, peer);
  reset_signals();
  fork_server_main(own_socket, parent);
}

// The fork server's life, on the socket `sock` (descriptor own_socket): it
// answers requests until the main process closes its end (or dies).
[[noreturn]] void fork_server_main(int sock, pid_t parent) {
  for (;;) {
    spawn_request req{};
    ssize_t n = ::recv(sock, &req, sizeof req, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n != static_cast<ssize_t>(sizeof req)) ::_exit(0);
    spawn_reply reply{0, 0};
    if (req.kind != r_worker && req.kind != r_standby) {
      reply.err = EINVAL;
      (void)send_fds(sock, &reply, sizeof reply, nullptr, 0);
      continue;
    }
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
      reply.err = errno;
      (void)send_fds(sock, &reply, sizeof reply, nullptr, 0);
      continue;
    }
    int pidfd = -1;
    clone_args_v0 args{};
    // CLONE_PARENT: the main process becomes the child's parent (it reaps
    // it, and the child's getppid() is the main process).
    args.flags = CLONE_PARENT | CLONE_PIDFD;
    args.pidfd = reinterpret_cast<std::uintptr_t>(&pidfd);
    args.exit_signal = 0;  // with CLONE_PARENT the kernel uses our own exit signal (SIGCHLD)
    long pid = ::syscall(SYS_clone3, &args, sizeof args);
    if (pid == 0) {
      trace->last_child.store(trace_word(req.number, ::getpid()), std::memory_order_relaxed);
      if (req.kind == r_standby) become_fork_server(sv[1], sv[0], parent);
      keep_only(sv[1], sv[0]);  // our own socket, at own_socket, is replaced by the worker's
      worker_main(own_socket, parent, reinterpret_cast<void (*)()>(static_cast<std::uintptr_t>(req.initializer)),
                  static_cast<std::size_t>(req.memory_limit));
    }
    if (pid > 0) trace->last_child.store(trace_word(req.number, static_cast<pid_t>(pid)), std::memory_order_relaxed);
    ::close(sv[1]);
    if (pid < 0) {
      reply.err = errno;
      ::close(sv[0]);
      (void)send_fds(sock, &reply, sizeof reply, nullptr, 0);
      continue;
    }
    reply.pid = static_cast<std::int32_t>(pid);
    int fds[2] = {pidfd, sv[0]};
    int err = send_fds(sock, &reply, sizeof reply, fds, 2);
    ::close(pidfd);
    ::close(sv[0]);
    if (err != 0) ::_exit(0);
  }
}

// One fork server process, as the main process sees it.
struct server_process {
  pid_t pid = 0;   // 0: none
  int pidfd = -1;  // polls readable when it exits; reaps it
  int sock = -1;   // our end of its socket
};

// The process-wide fork server, as seen from the main process: the server
// that forks workers, and a standby, an idle copy of it made while the
// server was healthy, which takes over if it dies (the process may have
// threads by then, so forking a new server from it would be unsafe). Leaked
// on purpose: workers may be reaped by pools destroyed during static destruction.
struct fork_server {
  std::mutex m;                            // serialises start, recovery and the requests of all pools
  server_process primary;                  // the server that forks workers
  server_process standby;                  // its spare, if there is one
  pid_t owner = 0;                         // the process that started them (a fork()ed child starts its own)
  std::atomic<std::uint64_t> generation{0};  // bumped whenever primary or standby changes
  std::string lost;                        // why no server is left, once that happened
  std::vector<std::string> ended;          // how server processes ended since the last new standby
};

fork_server& server() {
  static fork_server* s = new fork_server;
  return *s;
}

// The server died (end of stream or EPIPE on its socket): distinct from a
// reply that reports an error.
struct server_gone {};


// Threads of this process other than io_uring's kernel workers (iou-wrk-*, iou-sqp-*).
int count_threads() {
  DIR* d = ::opendir("/proc/self/task");
  if (!d) return 1;
  int count = 0;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::string path = std::string("/proc/self/task/") + e->d_name + "/comm";
    char comm[32] = {};
    if (FILE* f = std::fopen(path.c_str(), "re")) {
      if (!std::fgets(comm, sizeof comm, f)) comm[0] = 0;
      std::fclose(f);
    }
    if (std::strncmp(comm, "iou-", 4) == 0) continue;
    ++count;
  }
  ::closedir(d);
  return count;
}

// Ends and reaps a worker whose descriptors never reached us (`pidfd` is -1
// if its pidfd did not either). Until reaped, its pid cannot be reused, so
// signalling it by pid is safe; if someone else reaped it, waitpid says ECHILD.
void reap_unreceived(pid_t pid, int pidfd) noexcept {
  if (pidfd >= 0) {
    ::syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0);
    siginfo_t si{};
    while (::waitid(P_PIDFD, static_cast<id_t>(pidfd), &si, WEXITED) < 0 && errno == EINTR) {
    }
  } else {
    ::kill(pid, SIGKILL);
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
}

// The server died during a request: if it had already cloned the child, the
// child is ours (CLONE_PARENT) and will exit on its own, its socket's other
// end gone; end and reap it, or it stays a zombie. Its pid cannot have been
// reused: it is unreaped.
void reap_orphan(std::uint32_t request) noexcept {
  std::uint64_t word = trace->last_child.load(std::memory_order_relaxed);
  auto orphan = static_cast<pid_t>(word & 0xffffffffu);
  if (word >> 32 == request && orphan > 0) reap_unreceived(orphan, -1);
}

// True if the server process has exited (its pidfd polls readable).
bool has_exited(const server_process& p) noexcept {
  if (p.pid == 0) return false;
  pollfd pfd{p.pidfd, POLLIN, 0};
  return ::poll(&pfd, 1, 0) == 1;
}

// SIGKILLs a server process (if it still runs), reaps it, closes our
// descriptors and says how it ended ("pid 123 was killed by signal 9 (SIGKILL)").
std::string end_and_reap(server_process& p) noexcept {
  ::syscall(SYS_pidfd_send_signal, p.pidfd, SIGKILL, nullptr, 0);
  siginfo_t si{};
  int r;
  do {
    r = ::waitid(P_PIDFD, static_cast<id_t>(p.pidfd), &si, WEXITED);
  } while (r < 0 && errno == EINTR);
  std::string how = "fork server pid " + std::to_string(p.pid) + " ";
  if (r == 0) {
    how += si.si_code == CLD_EXITED ? exit_text(0, si.si_status) : exit_text(si.si_status, -1);
  } else {
    how += exit_text(0, -1);  // ECHILD: reaped by someone else
  }
  close_fd(p.pidfd);
  close_fd(p.sock);
  p = {};
  return how;
}

// Asks the server `p` for a new process of kind `kind`.
// Errors: server_gone if it is gone; spawn_failure for a failure of the moment.
spawned request(server_process& p, request_kind kind, void (*initializer)(), std::size_t memory_limit) {
  static std::uint32_t requests = 0;  // under the fork server's mutex
  spawn_request req{kind, ++requests, reinterpret_cast<std::uintptr_t>(initializer), memory_limit};
  ssize_t n;
  do {
    n = ::send(p.sock, &req, sizeof req, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n != static_cast<ssize_t>(sizeof req)) throw server_gone{};
  spawn_reply reply{};
  int fds[2] = {-1, -1};
  std::size_t got = 0;
  int msg_flags = 0;
  n = recv_with_fds(p.sock, &reply, sizeof reply, 0, fds, 2, got, msg_flags);
  if (n != static_cast<ssize_t>(sizeof reply)) {
    close_fd(fds[0]);
    close_fd(fds[1]);
    // End of stream, or an error on a socket only it writes to.
    ::syscall(SYS_pidfd_send_signal, p.pidfd, SIGKILL, nullptr, 0);
    reap_orphan(req.number);
    throw server_gone{};
  }
  const char* what = kind == r_worker ? "a worker" : "a standby fork server";
  if (reply.err != 0) {
    throw spawn_failure{reply.err, std::string("process_pool: the fork server could not start ") + what};
  }
  if (got != 2) {
    // MSG_CTRUNC: the process exists, but this process had no descriptor
    // free for its pidfd or its socket. It is our child: end it and reap it
    // here, or it would stay a zombie.
    reap_unreceived(reply.pid, got >= 1 ? fds[0] : -1);
    close_fd(fds[0]);
    close_fd(fds[1]);
    throw spawn_failure{EMFILE, std::string("process_pool: receiving the descriptors of ") + what};
  }
  return {reply.pid, fds[0], fds[1]};
}

// Gives the server a standby if it has none; quietly does without one if
// that fails now (the next recovery or request tries again).
void make_standby_locked(fork_server& s) noexcept {
  if (s.standby.pid != 0 || s.primary.pid == 0) return;
  try {
    spawned p = request(s.primary, r_standby, nullptr, 0);
    s.standby = {p.pid, p.pidfd, p.sock};
    s.ended.clear();
    ++s.generation;
  } catch (...) {
  }
}

// Reaps a server process that ended, and notes how it did.
void note_end_locked(fork_server& s, server_process& p) noexcept {
  s.ended.push_back(end_and_reap(p));
  ++s.generation;
}

// Records and throws that no fork server is left.
[[noreturn]] void lose_locked(fork_server& s) {
  s.lost = "no fork server is left:";
  for (std::size_t i = 0; i < s.ended.size(); ++i) s.lost += (i ? "; " : " ") + s.ended[i];
  if (s.ended.size() < 2) s.lost += ", and there was no standby to take over";
  throw error("process_pool: " + s.lost);
}

// The server is dead or dying: reap it and promote the standby (which gets
// a standby of its own). Errors: coring::error when no server is left.
void replace_primary_locked(fork_server& s) {
  note_end_locked(s, s.primary);
  if (s.standby.pid == 0) lose_locked(s);
  s.primary = std::exchange(s.standby, {});
  if (has_exited(s.primary)) {
    note_end_locked(s, s.primary);
    lose_locked(s);
  }
  make_standby_locked(s);
}

// Reaps whichever server process has exited, promoting the standby if the
// server did. Errors: as replace_primary_locked.
void reap_exited_locked(fork_server& s) {
  if (has_exited(s.standby)) note_end_locked(s, s.standby);
  if (has_exited(s.primary)) replace_primary_locked(s);
  make_standby_locked(s);
}

void start_server_locked(fork_server& s, bool check_threads) {
  pid_t me = ::getpid();
  if (s.owner == me && s.primary.pid != 0) return;
  if (!trace) {
    void* page = ::mmap(nullptr, sizeof(spawn_trace), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) throw io_error(errno, "process_pool: mapping the fork server's shared page");
    trace = new (page) spawn_trace;
  }
  map_claim_table();  // before the fork: workers find it at the same address
  if (s.owner != me) {
    // Inherited through fork(): those servers belong to our parent. Drop our copies.
    for (server_process* p : {&s.primary, &s.standby}) {
      close_fd(p->pidfd);
      close_fd(p->sock);
      *p = {};
    }
    s.lost.clear();
    s.ended.clear();
  }
  if (check_threads) {
    if (!s.lost.empty()) throw error("process_pool: " + s.lost);
    int n = count_threads();
    if (n > 1) {
      throw error("coring::process_pool: cannot start the fork server: this process already has " +
                  std::to_string(n) +
                  " threads, and fork() is unsafe then; call coring::process_pool::start_fork_server() at the "
                  "top of main, before any thread starts");
    }
  }
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
    throw io_error(errno, "process_pool: socketpair for the fork server");
  }
  pid_t pid = ::fork();
  if (pid < 0) {
    int e = errno;
    ::close(sv[0]);
    ::close(sv[1]);
    throw io_error(e, "process_pool: fork of the fork server");
  }
  if (pid == 0) become_fork_server(sv[1], sv[0], me);
  ::close(sv[1]);
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) {
    int e = errno;
    ::close(sv[0]);  // the server reads end of stream and exits
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    throw io_error(e, "process_pool: pidfd_open of the fork server");
  }
  ::fcntl(pidfd, F_SETFD, FD_CLOEXEC);
  s.primary = {pid, pidfd, sv[0]};
  s.owner = me;
  s.lost.clear();
  ++s.generation;
  make_standby_locked(s);
}

}  // namespace

void ensure_fork_server(bool check_threads) {
  fork_server& s = server();
  std::lock_guard lock(s.m);
  start_server_locked(s, check_threads);
}

spawned spawn_worker(void (*initializer)(), std::size_t memory_limit) {
  fork_server& s = server();
  std::lock_guard lock(s.m);
  start_server_locked(s, true);
  reap_exited_locked(s);
  // A server that dies during the request is replaced once by its standby;
  // the request goes to that one, and if it dies too, nothing is left.
  for (;;) {
    try {
      return request(s.primary, r_worker, initializer, memory_limit);
    } catch (const server_gone&) {
      replace_primary_locked(s);
    }
  }
}

std::uint64_t fork_server_generation() noexcept { return server().generation.load(std::memory_order_acquire); }

std::vector<int> dup_fork_server_pidfds(std::uint64_t& generation) {
  fork_server& s = server();
  std::lock_guard lock(s.m);
  generation = s.generation.load(std::memory_order_relaxed);
  std::vector<int> fds;
  if (s.owner != ::getpid()) return fds;
  for (const server_process* p : {&s.primary, &s.standby}) {
    if (p->pid == 0) continue;
    int fd = ::fcntl(p->pidfd, F_DUPFD_CLOEXEC, 0);
    if (fd >= 0) fds.push_back(fd);
  }
  return fds;
}

void check_fork_server() noexcept {
  fork_server& s = server();
  std::lock_guard lock(s.m);
  if (s.owner != ::getpid()) return;
  try {
    reap_exited_locked(s);
  } catch (...) {
    // No server left: the next spawn_worker reports it.
  }
}

int fork_server_pid() noexcept {
  fork_server& s = server();
  std::lock_guard lock(s.m);
  return s.owner == ::getpid() ? s.primary.pid : 0;
}

int fork_server_standby_pid() noexcept {
  fork_server& s = server();
  std::lock_guard lock(s.m);
  return s.owner == ::getpid() ? s.standby.pid : 0;
}

}  // namespace coring::detail
