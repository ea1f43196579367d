#include "process_pool_fork_server.hpp"

#include <coring/process_pool.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "process_pool_wire.hpp"
#include "process_pool_worker.hpp"

namespace coring::detail {

namespace {

struct spawn_request {
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

// Closes every descriptor from `first` up.
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

// The fork server's life, on the socket `sock` (descriptor own_socket).
[[noreturn]] void fork_server_main(int sock, pid_t parent) {
  for (;;) {
    spawn_request req{};
    ssize_t n = ::recv(sock, &req, sizeof req, 0);
    if (n < 0 && errno == EINTR) continue;
    // End of stream: the main process closed its end (or died): we are done.
    if (n != static_cast<ssize_t>(sizeof req)) ::_exit(0);
    spawn_reply reply{0, 0};
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
      reply.err = errno;
      (void)send_fds(sock, &reply, sizeof reply, nullptr, 0);
      continue;
    }
    int pidfd = -1;
    clone_args_v0 args{};
    // CLONE_PARENT: the main process becomes the worker's parent (it reaps
    // it, and the worker's getppid() is the main process).
    args.flags = CLONE_PARENT | CLONE_PIDFD;
    args.pidfd = reinterpret_cast<std::uintptr_t>(&pidfd);
    args.exit_signal = 0;  // with CLONE_PARENT the kernel uses our own exit signal (SIGCHLD)
    long pid = ::syscall(SYS_clone3, &args, sizeof args);
    if (pid == 0) {
      keep_only(sv[1], sv[0]);  // our own socket, at own_socket, is replaced by the worker's
      worker_main(own_socket, parent, reinterpret_cast<void (*)()>(static_cast<std::uintptr_t>(req.initializer)),
                  static_cast<std::size_t>(req.memory_limit));
    }
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

// The process-wide fork server, as seen from the main process. Leaked on
// purpose: workers may be reaped by pools destroyed during static destruction.
struct fork_server {
  std::mutex m;      // serialises start and the request/reply pairs of all pools
  int sock = -1;     // our end of the server's socket
  pid_t pid = 0;     // the server
  pid_t owner = 0;   // the process that started it (a fork()ed child must start its own)
};

fork_server& server() {
  static fork_server* s = new fork_server;
  return *s;
}

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

void start_server_locked(fork_server& s, bool check_threads) {
  pid_t me = ::getpid();
  if (s.sock >= 0 && s.owner == me) return;
  // Inherited through fork(): that server belongs to our parent. Drop our copy.
  if (s.sock >= 0) close_fd(s.sock);
  if (check_threads) {
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
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != me) ::_exit(0);  // the main process died before the prctl
    keep_only(sv[1], sv[0]);
    reset_signals();
    fork_server_main(own_socket, me);
  }
  ::close(sv[1]);
  s.sock = sv[0];
  s.pid = pid;
  s.owner = me;
}

}  // namespace

spawned spawn_worker(void (*initializer)(), std::size_t memory_limit) {
  fork_server& s = server();
  std::lock_guard lock(s.m);
  if (s.sock < 0 || s.owner != ::getpid()) start_server_locked(s, true);
  spawn_request req{reinterpret_cast<std::uintptr_t>(initializer), memory_limit};
  ssize_t n;
  do {
    n = ::send(s.sock, &req, sizeof req, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n != static_cast<ssize_t>(sizeof req)) {
    throw io_error(n < 0 ? errno : EPROTO, "process_pool: request to the fork server");
  }
  spawn_reply reply{};
  int fds[2] = {-1, -1};
  std::size_t got = 0;
  int msg_flags = 0;
  n = recv_with_fds(s.sock, &reply, sizeof reply, 0, fds, 2, got, msg_flags);
  if (n == 0) throw error("process_pool: the fork server is gone (pid " + std::to_string(s.pid) + ")");
  if (n != static_cast<ssize_t>(sizeof reply)) {
    close_fd(fds[0]);
    close_fd(fds[1]);
    throw io_error(n < 0 ? static_cast<int>(-n) : EPROTO, "process_pool: reply from the fork server");
  }
  if (reply.err != 0) throw spawn_failure{reply.err, "process_pool: the fork server could not start a worker"};
  if (got != 2) {
    // MSG_CTRUNC: the worker exists, but this process had no descriptor free
    // for its pidfd or its socket. It is our child: end it and reap it here,
    // or it would stay a zombie.
    reap_unreceived(reply.pid, got >= 1 ? fds[0] : -1);
    close_fd(fds[0]);
    close_fd(fds[1]);
    throw spawn_failure{EMFILE, "process_pool: receiving a new worker's descriptors"};
  }
  return {reply.pid, fds[0], fds[1]};
}

void ensure_fork_server(bool check_threads) {
  fork_server& s = server();
  std::lock_guard lock(s.m);
  start_server_locked(s, check_threads);
}

int fork_server_pid() noexcept {
  fork_server& s = server();
  std::lock_guard lock(s.m);
  return s.owner == ::getpid() ? s.pid : 0;
}

}  // namespace coring::detail
