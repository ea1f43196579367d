// process_pool: the fork server, the worker loop, and the manager thread.
//
// Processes:
//   main ──(SEQPACKET, spawn requests)──> fork server   (forked early, single-threaded)
//   fork server ──clone3(CLONE_PARENT|CLONE_PIDFD)──> worker   (main is its parent)
//   fork server ──SCM_RIGHTS{pidfd, socket}──> main
//   main (manager thread) <──(SEQPACKET per worker: jobs, replies)──> worker
//
// The manager thread waits through its own io_uring (ring_waiter: one-shot
// polls on an eventfd for submissions, cancels and shutdown, on each worker's
// socket and on each worker's pidfd, so a worker's death is seen through the
// ring); it does no coroutine work of its own, and futures complete from it
// into their awaiting loops' inboxes (or wake blocked threads).

#include <coring/process_pool.hpp>

#include <liburing.h>

#include <cxxabi.h>
#include <dirent.h>
#include <dlfcn.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <optional>
#include <unordered_map>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <typeinfo>

#include "symbol_names.hpp"

namespace coring {

namespace {

std::string signal_text(int sig) {
  const char* abbrev = ::sigabbrev_np(sig);
  std::string s = "signal " + std::to_string(sig);
  if (abbrev) s += std::string(" (SIG") + abbrev + ")";
  return s;
}

std::string remote_message(const std::string& type, const std::string& message, const std::string& function) {
  std::string s = "job " + function + " raised " + type;
  if (!message.empty()) s += ": " + message;
  return s;
}

std::string broken_message(int pid, int sig, int code, const std::string& function) {
  std::string s = "worker " + std::to_string(pid) + " running " + function;
  if (sig != 0) {
    s += " was killed by " + signal_text(sig);
  } else {
    s += " exited with code " + std::to_string(code);
  }
  return s;
}

}  // namespace

remote_error::remote_error(std::string type_name, std::string message, std::string function)
    : error(remote_message(type_name, message, function)),
      type_name_(std::move(type_name)),
      message_(std::move(message)),
      function_(std::move(function)) {}

broken_worker::broken_worker(int pid, int signal, int exit_code, std::string function)
    : error(broken_message(pid, signal, exit_code, function)),
      pid_(pid),
      signal_(signal),
      exit_code_(exit_code),
      function_(std::move(function)) {}

namespace detail {

namespace {

// ---------------------------------------------------------------------------
// Wire format. Every message is one SEQPACKET datagram: a header, then the
// payload inline, or (when larger than inline_limit) in a sealed memfd passed
// with SCM_RIGHTS. The limit keeps a worker's queue of pipelined jobs
// (max_depth of them: 128 KiB) under the default 208 KiB socket buffer, so that a
// send from the manager never blocks for long.

constexpr std::size_t inline_limit = 16 * 1024;
constexpr std::size_t max_depth = 8;  // jobs queued in one worker's socket at most

enum msg_kind : std::uint32_t {
  k_job = 1,          // main → worker: run invoker(fn, payload)
  k_ready = 2,        // worker → main: the initializer ran, jobs welcome
  k_result = 3,       // worker → main: payload is the encoded result
  k_raised = 4,       // worker → main: payload is encode_all(type name, message)
  k_init_failed = 5,  // worker → main: as k_raised, from the initializer
};
constexpr std::uint32_t f_memfd = 1;  // the payload is in the attached memfd

struct msg_header {
  std::uint32_t kind;
  std::uint32_t flags;
  std::uint64_t id;
  std::uint64_t invoker;
  std::uint64_t fn;
};

void close_fd(int& fd) noexcept {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

// Sends one message; returns 0 or an errno. Blocking unless the socket is not.
int send_message(int sock, msg_header h, std::string_view payload) {
  int memfd = -1;
  iovec iov[2];
  iov[0] = {&h, sizeof h};
  std::size_t iovcnt = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  msghdr msg{};
  if (payload.size() > inline_limit) {
    memfd = ::memfd_create("coring-payload", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (memfd < 0) return errno;
    std::size_t off = 0;
    while (off < payload.size()) {
      ssize_t n = ::write(memfd, payload.data() + off, payload.size() - off);
      if (n < 0) {
        if (errno == EINTR) continue;
        int e = errno;
        ::close(memfd);
        return e;
      }
      off += static_cast<std::size_t>(n);
    }
    // Sealed, so that the receiver may trust the size it reads.
    ::fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
    h.flags |= f_memfd;
    std::memset(control, 0, sizeof control);
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &memfd, sizeof(int));
  } else if (!payload.empty()) {
    iov[1] = {const_cast<char*>(payload.data()), payload.size()};
    iovcnt = 2;
  }
  msg.msg_iov = iov;
  msg.msg_iovlen = iovcnt;
  int err = 0;
  while (::sendmsg(sock, &msg, MSG_NOSIGNAL) < 0) {
    if (errno == EINTR) continue;
    err = errno;
    break;
  }
  if (memfd >= 0) ::close(memfd);
  return err;
}

// A receiving buffer that can hold any inline message, plus the out-of-line payload.
struct receiver {
  std::vector<char> buf = std::vector<char>(sizeof(msg_header) + inline_limit);
  std::string large;  // a memfd payload, read whole
};

// recvmsg() of one message into buf[0, len), keeping the first `max_fds`
// descriptors passed with it (SCM_RIGHTS, close-on-exec) in fds and closing
// any others. Returns the byte count or -errno; `got` counts the fds kept and
// `msg_flags` reports truncation.
ssize_t recv_with_fds(int sock, void* buf, std::size_t len, int flags, int* fds, std::size_t max_fds,
                      std::size_t& got, int& msg_flags) {
  iovec iov{buf, len};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 2)];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do {
    n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | flags);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return -errno;
  got = 0;
  msg_flags = msg.msg_flags;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      if (got < max_fds) {
        fds[got++] = fd;
      } else {
        ::close(fd);
      }
    }
  }
  return n;
}

// Receives one message. Returns 1 (h and payload set), 0 at end of stream,
// -EAGAIN when nonblocking and nothing is there, or another -errno.
int recv_message(int sock, receiver& r, msg_header& h, std::string_view& payload, bool nonblocking) {
  int fd = -1;
  std::size_t got = 0;
  int msg_flags = 0;
  ssize_t n = recv_with_fds(sock, r.buf.data(), r.buf.size(), nonblocking ? MSG_DONTWAIT : 0, &fd, 1, got, msg_flags);
  if (n < 0) return static_cast<int>(n);
  if (n == 0) {
    close_fd(fd);
    return 0;
  }
  if (static_cast<std::size_t>(n) < sizeof h || (msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
    close_fd(fd);
    return -EPROTO;
  }
  std::memcpy(&h, r.buf.data(), sizeof h);
  if (h.flags & f_memfd) {
    if (fd < 0) return -EPROTO;
    struct stat st {};
    if (::fstat(fd, &st) < 0) {
      int e = errno;
      close_fd(fd);
      return -e;
    }
    r.large.resize(static_cast<std::size_t>(st.st_size));
    std::size_t off = 0;
    while (off < r.large.size()) {
      ssize_t got = ::pread(fd, r.large.data() + off, r.large.size() - off, static_cast<off_t>(off));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        close_fd(fd);
        return -EPROTO;
      }
      off += static_cast<std::size_t>(got);
    }
    close_fd(fd);
    payload = r.large;
  } else {
    close_fd(fd);
    payload = std::string_view(r.buf.data() + sizeof h, static_cast<std::size_t>(n) - sizeof h);
  }
  return 1;
}

// ---------------------------------------------------------------------------
// The worker process.

void describe_current_exception(std::string& type, std::string& message) {
  const std::type_info* t = abi::__cxa_current_exception_type();
  type = t ? demangle(t->name()) : std::string("unknown exception");
  try {
    throw;
  } catch (const std::exception& e) {
    message = e.what();
  } catch (...) {
    message.clear();
  }
}

[[noreturn]] void worker_main(int sock, pid_t parent, void (*initializer)(), std::size_t memory_limit) {
  // No worker outlives the main process: PDEATHSIG covers a later death, the
  // getppid() check a death before the prctl.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(1);
  if (memory_limit != 0) {
    rlimit rl{memory_limit, memory_limit};
    ::setrlimit(RLIMIT_AS, &rl);
  }
  std::string type, message;
  if (initializer) {
    try {
      initializer();
    } catch (...) {
      describe_current_exception(type, message);
      (void)send_message(sock, {k_init_failed, 0, 0, 0, 0}, encode_all(type, message));
      ::_exit(0);
    }
  }
  if (send_message(sock, {k_ready, 0, 0, 0, 0}, {}) != 0) ::_exit(0);
  receiver r;
  byte_writer out;
  for (;;) {
    msg_header h{};
    std::string_view payload;
    // End of stream: the pool retires us (or the main process is gone).
    if (recv_message(sock, r, h, payload, false) <= 0 || h.kind != k_job) ::_exit(0);
    out.clear();
    int err;
    try {
      auto invoke = reinterpret_cast<process_invoker>(static_cast<std::uintptr_t>(h.invoker));
      auto fn = reinterpret_cast<void (*)()>(static_cast<std::uintptr_t>(h.fn));
      invoke(fn, payload, out);
      err = send_message(sock, {k_result, 0, h.id, 0, 0}, out.view());
    } catch (...) {
      describe_current_exception(type, message);
      out.clear();
      std::string bytes;
      try {
        bytes = encode_all(type, message);
      } catch (...) {
        bytes = encode_all(std::string("std::bad_alloc"), std::string());
      }
      err = send_message(sock, {k_raised, 0, h.id, 0, 0}, bytes);
    }
    if (r.large.capacity() > inline_limit) std::string().swap(r.large);
    if (err != 0) ::_exit(0);
  }
}

// ---------------------------------------------------------------------------
// The fork server.

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

int send_fds(int sock, const void* data, std::size_t len, const int* fds, std::size_t nfds) {
  iovec iov{const_cast<void*>(data), len};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 2)];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (nfds > 0) {
    std::memset(control, 0, sizeof control);
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    std::memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
  }
  while (::sendmsg(sock, &msg, MSG_NOSIGNAL) < 0) {
    if (errno != EINTR) return errno;
  }
  return 0;
}

[[noreturn]] void fork_server_main(int sock, pid_t parent) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(0);
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
      ::close(sock);
      ::close(sv[0]);
      worker_main(sv[1], parent, reinterpret_cast<void (*)()>(static_cast<std::uintptr_t>(req.initializer)),
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
    ::close(sv[0]);
    fork_server_main(sv[1], me);
  }
  ::close(sv[1]);
  s.sock = sv[0];
  s.pid = pid;
  s.owner = me;
}

struct spawned {
  pid_t pid = 0;
  int pidfd = -1;
  int sock = -1;
};

// Asks the fork server for a worker. Errors: coring::error naming the cause.
spawned spawn_worker(void (*initializer)(), std::size_t memory_limit) {
  fork_server& s = server();
  std::lock_guard lock(s.m);
  if (s.sock < 0 || s.owner != ::getpid()) start_server_locked(s, true);
  spawn_request req{reinterpret_cast<std::uintptr_t>(initializer), memory_limit};
  ssize_t n;
  do {
    n = ::send(s.sock, &req, sizeof req, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n != static_cast<ssize_t>(sizeof req)) throw io_error(n < 0 ? errno : EPROTO, "process_pool: request to the fork server");
  spawn_reply reply{};
  int fds[2] = {-1, -1};
  std::size_t got = 0;
  int msg_flags = 0;
  n = recv_with_fds(s.sock, &reply, sizeof reply, 0, fds, 2, got, msg_flags);
  if (n != static_cast<ssize_t>(sizeof reply) || got != 2 || reply.err != 0) {
    close_fd(fds[0]);
    close_fd(fds[1]);
    if (n == 0) throw error("process_pool: the fork server is gone (pid " + std::to_string(s.pid) + ")");
    int e = n < 0 ? static_cast<int>(-n) : (reply.err != 0 ? reply.err : EPROTO);
    throw io_error(e, "process_pool: the fork server could not start a worker");
  }
  return {reply.pid, fds[0], fds[1]};
}

}  // namespace

int fork_server_pid() noexcept {
  fork_server& s = server();
  std::lock_guard lock(s.m);
  return s.owner == ::getpid() ? s.pid : 0;
}

// ---------------------------------------------------------------------------
// The manager.

namespace {

struct job {
  process_job_spec spec;
  std::uint64_t id = 0;
  bool started = false;    // state->start() succeeded (it stays "running" if requeued)
  bool abandoned = false;  // already completed (cancelled) while queued in a worker: drop its reply
};

enum class kill_reason : std::uint8_t { none, cancel, shutdown, broken };

struct worker {
  pid_t pid = 0;
  int pidfd = -1;
  int sock = -1;
  bool ready = false;       // sent k_ready: the initializer ran
  bool retiring = false;    // max_tasks_per_child reached: no more jobs, close when idle
  kill_reason killed = kill_reason::none;  // why we SIGKILLed it, if we did
  unsigned sent = 0;        // jobs given to it (counted by the parent)
  std::deque<std::unique_ptr<job>> inflight;  // sent, reply not yet read; front is the one running
};

std::exception_ptr cancelled_ptr() { return std::make_exception_ptr(cancelled{}); }

}  // namespace

// The manager's wait, through its own io_uring: one-shot POLL_ADDs on the
// wake eventfd, each worker's socket and each worker's pidfd (a pidfd polls
// readable when the process exits), re-armed after they fire — poll(2)
// semantics, but worker death is seen through the ring (shared/DESIGN.md).
// A poll in the ring holds a reference to its file: a socket we close with a
// poll still armed would stay open for the worker (no end of stream), so
// close() removes the poll and reaps its completion before closing.
class ring_waiter {
 public:
  ring_waiter() {
    int r = io_uring_queue_init(64, &ring_, 0);
    if (r < 0) throw io_error(-r, "process_pool: creating the manager's io_uring");
  }
  ring_waiter(const ring_waiter&) = delete;
  ring_waiter& operator=(const ring_waiter&) = delete;
  ~ring_waiter() { io_uring_queue_exit(&ring_); }

  /// Watches `fd` for POLLIN (arms a poll unless one is armed).
  void watch(int fd) {
    if (fd < 0) return;
    slot& s = slots_[fd];
    if (s.armed) return;
    io_uring_sqe* sqe = sqe_or_flush();
    io_uring_prep_poll_add(sqe, fd, POLLIN);
    io_uring_sqe_set_data64(sqe, static_cast<std::uint64_t>(fd) + 1);
    s.armed = true;
  }
  /// Submits and waits until at least one watched fd is ready.
  void wait() {
    int r = io_uring_submit_and_wait(&ring_, 1);
    if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) return;
    reap();
  }
  /// True (once) if `fd` became readable in the last wait.
  bool take_ready(int fd) {
    auto it = slots_.find(fd);
    if (it == slots_.end() || !it->second.ready) return false;
    it->second.ready = false;
    return true;
  }
  /// Removes `fd`'s poll (waiting for the ring to let go of the file), then closes it.
  void close(int& fd) noexcept {
    if (fd < 0) return;
    auto it = slots_.find(fd);
    if (it != slots_.end() && it->second.armed) {
      if (io_uring_sqe* sqe = sqe_or_flush()) {
        io_uring_prep_poll_remove(sqe, static_cast<std::uint64_t>(fd) + 1);
        io_uring_sqe_set_data64(sqe, 0);
        while (slots_[fd].armed) {
          if (io_uring_submit_and_wait(&ring_, 1) < 0) break;
          reap();
        }
      }
    }
    slots_.erase(fd);
    close_fd(fd);
  }

 private:
  struct slot {
    bool armed = false;  // a POLL_ADD for it is in the ring
    bool ready = false;  // it fired and has not been taken
  };

  io_uring_sqe* sqe_or_flush() noexcept {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (!sqe) {
      io_uring_submit(&ring_);
      sqe = io_uring_get_sqe(&ring_);
    }
    return sqe;
  }
  void reap() noexcept {
    unsigned head, seen = 0;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      ++seen;
      std::uint64_t ud = cqe->user_data;
      if (ud == 0) continue;  // a POLL_REMOVE's own completion
      auto it = slots_.find(static_cast<int>(ud - 1));
      if (it == slots_.end()) continue;
      it->second.armed = false;
      if (cqe->res != -ECANCELED) it->second.ready = true;
    }
    io_uring_cq_advance(&ring_, seen);
  }

  io_uring ring_{};                        // the manager thread's own ring
  std::unordered_map<int, slot> slots_;    // by fd
};

class process_pool_impl {
 public:
  explicit process_pool_impl(const process_pool_options& opts) : opts_(opts) {
    target_ = opts.workers ? opts.workers : std::max(1u, std::thread::hardware_concurrency());
    {
      fork_server& s = server();
      std::lock_guard lock(s.m);
      start_server_locked(s, true);
    }
    wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd_ < 0) throw io_error(errno, "process_pool: eventfd");
    try {
      thread_ = std::thread([this] { run(); });
    } catch (...) {
      close_fd(wake_fd_);
      throw;
    }
  }

  ~process_pool_impl() { join(); }

  unsigned size() const noexcept { return target_; }
  bool broken() const noexcept { return broken_.load(std::memory_order_acquire); }

  std::vector<int> pids() const {
    std::lock_guard lock(m_);
    return pids_;
  }

  void submit(process_job_spec spec) {
    auto j = std::make_unique<job>();
    j->spec = std::move(spec);
    j->spec.state->on_cancel_running(&on_cancel_running, this);
    std::exception_ptr refuse;
    {
      std::lock_guard lock(m_);
      if (!accepting_) {
        refuse = std::make_exception_ptr(error("process pool is shut down: job " + function_name(j->spec.fn) + " refused"));
      } else if (broken()) {
        refuse = std::make_exception_ptr(broken_pool(broken_message_));
      } else {
        incoming_.push_back(std::move(j));
        wake_locked();
        return;
      }
    }
    fail_unstarted(*j, std::move(refuse));
  }

  void request_shutdown(const process_pool_shutdown_options& o, future_state<void>* waiter) {
    {
      std::lock_guard lock(m_);
      accepting_ = false;
      if (!manager_done_) {
        shutdown_requested_ = true;
        shutdown_opts_.cancel_pending = shutdown_opts_.cancel_pending || o.cancel_pending || o.kill;
        shutdown_opts_.kill = shutdown_opts_.kill || o.kill;
        waiters_.push_back(waiter);
        wake_locked();
        return;
      }
    }
    complete_waiter(waiter);
  }

  void join() {
    std::lock_guard lock(join_m_);
    if (thread_.joinable()) thread_.join();
  }

 private:
  static void complete_waiter(future_state<void>* w) noexcept {
    if (w->start()) {
      w->set_value();
      w->finish();
    }
    w->release();
  }

  // Fails a job that may not have started yet (the consumer may be cancelling it concurrently).
  static void fail_unstarted(job& j, std::exception_ptr e) noexcept {
    if (j.started || j.spec.state->start()) j.spec.state->fail(std::move(e));
    j.spec.state->release();
    j.spec.state = nullptr;
  }

  // Fails a started job, unless it was already completed.
  static void fail_started(job& j, std::exception_ptr e) noexcept {
    if (!j.abandoned) j.spec.state->fail(std::move(e));
    j.spec.state->release();
    j.spec.state = nullptr;
  }

  void complete(job& j, std::string_view bytes) noexcept {
    future_state_base* s = j.spec.state;
    if (!j.abandoned) {
      std::exception_ptr e;
      try {
        j.spec.complete(s, bytes);
      } catch (...) {
        e = std::current_exception();
      }
      // Published outside the handler (see fail_all_pending).
      if (e) {
        s->fail(std::move(e));
      } else {
        s->finish();
      }
    }
    s->release();
    j.spec.state = nullptr;
  }

  // The future's cancel() found the job running: ask the manager to stop it.
  static void on_cancel_running(future_state_base* s, void* ctx) noexcept {
    auto* self = static_cast<process_pool_impl*>(ctx);
    s->add_ref();  // so that the address cannot be reused before the manager looks at it
    {
      std::lock_guard lock(self->m_);
      if (!self->manager_done_) {
        self->cancels_.push_back(s);
        self->wake_locked();
        return;
      }
    }
    s->release();
  }

  void wake_locked() noexcept {
    // One eventfd write per manager sleep at most.
    if (!wake_pending_.exchange(true, std::memory_order_acq_rel)) {
      std::uint64_t one = 1;
      ssize_t r = ::write(wake_fd_, &one, sizeof one);
      (void)r;
    }
  }

  // ---- manager thread ----

  // Closes an fd the manager may be watching (see ring_waiter::close).
  void close_watched(int& fd) noexcept {
    if (waiter_) {
      waiter_->close(fd);
    } else {
      close_fd(fd);
    }
  }

  void run() noexcept {
    std::vector<std::unique_ptr<job>> taken;
    std::vector<future_state_base*> cancels;
    try {
      waiter_.emplace();
    } catch (const std::exception& e) {
      break_pool(std::string("process pool manager: ") + e.what());
    }
    for (;;) {
      maintain();
      if (shutting_ && pending_.empty() && workers_.empty()) break;

      if (waiter_) {
        waiter_->watch(wake_fd_);
        for (auto& w : workers_) {
          waiter_->watch(w->sock);
          waiter_->watch(w->pidfd);
        }
        waiter_->wait();
      } else {
        // No ring could be made: a broken pool only needs its wake-ups.
        pollfd pfd{wake_fd_, POLLIN, 0};
        ::poll(&pfd, 1, -1);
      }

      if (!waiter_ || waiter_->take_ready(wake_fd_)) {
        // Read first, then clear the flag: a producer that saw the flag set
        // before the clear has pushed under m_, which we take below; one that
        // sets it after the clear writes the eventfd again. (Clearing before
        // the read could swallow that write and leave a job in incoming_.)
        std::uint64_t v;
        ssize_t r = ::read(wake_fd_, &v, sizeof v);
        (void)r;
        wake_pending_.store(false, std::memory_order_seq_cst);
        bool shut = false;
        process_pool_shutdown_options so;
        {
          std::lock_guard lock(m_);
          while (!incoming_.empty()) {
            pending_.push_back(std::move(incoming_.front()));
            incoming_.pop_front();
          }
          cancels.swap(cancels_);
          if (shutdown_requested_) {
            shut = true;
            so = shutdown_opts_;
          }
        }
        for (future_state_base* s : cancels) {
          cancel_job(s);
          s->release();
        }
        cancels.clear();
        if (shut) begin_shutdown(so);
      }
      // Collect first: handle_exit() removes from workers_.
      std::vector<worker*> exited;
      for (auto& wp : workers_) {
        worker* w = wp.get();
        if (!waiter_) continue;
        if (waiter_->take_ready(w->sock)) read_replies(*w);
        if (waiter_->take_ready(w->pidfd)) exited.push_back(w);
      }
      for (worker* w : exited) handle_exit(*w);
      if (broken() && !pending_.empty()) fail_all_pending();
    }
    std::vector<future_state<void>*> waiters;
    {
      std::lock_guard lock(m_);
      manager_done_ = true;
      accepting_ = false;
      waiters.swap(waiters_);
      cancels.swap(cancels_);
      // Jobs that raced with the shutdown request.
      while (!incoming_.empty()) {
        taken.push_back(std::move(incoming_.front()));
        incoming_.pop_front();
      }
      close_watched(wake_fd_);
      pids_.clear();
    }
    // Close the ring before anyone learns that the shutdown is complete: a
    // caller counting its descriptors then must not find ours.
    waiter_.reset();
    for (auto& j : taken) fail_unstarted(*j, std::make_exception_ptr(error("process pool is shut down")));
    for (future_state_base* s : cancels) s->release();
    for (auto* w : waiters) complete_waiter(w);
  }

  // Spawns workers as needed, dispatches pending jobs, retires idle workers.
  void maintain() noexcept {
    if (broken()) {
      for (auto& w : workers_) kill(*w, kill_reason::broken);
    }
    std::size_t want = 0;
    if (!broken()) {
      want = target_;
      if (shutting_ && pending_.empty()) want = 0;
    }
    std::size_t live = 0;
    for (auto& w : workers_) live += w->retiring || w->killed != kill_reason::none ? 0 : 1;
    while (live < want) {
      try {
        spawned s = spawn_worker(opts_.initializer, opts_.memory_limit);
        auto w = std::make_unique<worker>();
        w->pid = s.pid;
        w->pidfd = s.pidfd;
        w->sock = s.sock;
        workers_.push_back(std::move(w));
        ++live;
      } catch (const std::exception& e) {
        break_pool(std::string("cannot start a worker: ") + e.what());
        return;
      }
    }
    update_pids();
    dispatch();
    for (auto& w : workers_) {
      if (w->sock >= 0 && w->inflight.empty() && (w->retiring || (shutting_ && pending_.empty()))) {
        close_watched(w->sock);  // the worker reads end of stream and exits
      }
    }
  }

  void update_pids() {
    std::vector<int> p;
    for (auto& w : workers_) p.push_back(w->pid);
    std::lock_guard lock(m_);
    pids_ = std::move(p);
  }

  void dispatch() noexcept {
    // First one job per idle worker, then, with a real backlog (two jobs per
    // worker or more), up to max_depth each, so that the next job already
    // waits in the worker's socket and it never idles between jobs. A small
    // backlog is not pipelined: a queued job should go to whichever worker
    // frees first, not wait behind a long one.
    const std::size_t deepest = pending_.size() >= 2 * workers_.size() ? max_depth : 1;
    for (std::size_t depth = 1; depth <= deepest && !pending_.empty(); ++depth) {
      for (auto& wp : workers_) {
        worker& w = *wp;
        if (pending_.empty()) break;
        if (!w.ready || w.sock < 0 || w.retiring || w.killed != kill_reason::none) continue;
        if (w.inflight.size() >= depth) continue;
        std::unique_ptr<job> j;
        while (!pending_.empty() && !j) {
          j = std::move(pending_.front());
          pending_.pop_front();
          if (!j->started) {
            if (!j->spec.state->start()) {  // cancelled while queued
              j->spec.state->release();
              j.reset();
              continue;
            }
            j->started = true;
          }
        }
        if (!j) break;
        if (!j->id) j->id = next_id_++;
        msg_header h{k_job, 0, j->id, reinterpret_cast<std::uintptr_t>(j->spec.invoke),
                     reinterpret_cast<std::uintptr_t>(j->spec.fn)};
        int err = send_message(w.sock, h, j->spec.args);
        if (err != 0) {
          // The worker is going away; its pidfd will tell. Keep the job.
          pending_.push_front(std::move(j));
          close_watched(w.sock);
          continue;
        }
        w.inflight.push_back(std::move(j));
        ++w.sent;
        if (opts_.max_tasks_per_child != 0 && w.sent >= opts_.max_tasks_per_child) w.retiring = true;
      }
    }
  }

  void read_replies(worker& w) noexcept {
    while (w.sock >= 0) {
      msg_header h{};
      std::string_view payload;
      int r = recv_message(w.sock, rx_, h, payload, true);
      if (r == -EAGAIN) return;
      if (r <= 0) {  // end of stream or error: the pidfd reports the exit
        close_watched(w.sock);
        return;
      }
      switch (h.kind) {
        case k_ready:
          w.ready = true;
          startup_failures_ = 0;
          break;
        case k_init_failed: {
          std::string what = "the initializer raised ";
          try {
            auto [type, message] = decode_all<std::string, std::string>(payload);
            what += type;
            if (!message.empty()) what += ": " + message;
          } catch (...) {
            what += "an exception";
          }
          break_pool(what + " (in worker " + std::to_string(w.pid) + ")");
          break;
        }
        case k_result:
        case k_raised: {
          if (w.inflight.empty() || w.inflight.front()->id != h.id) {
            kill(w, kill_reason::broken);  // protocol confusion: a bug; do not trust this worker
            return;
          }
          std::unique_ptr<job> j = std::move(w.inflight.front());
          w.inflight.pop_front();
          if (h.kind == k_result) {
            complete(*j, payload);
          } else {
            std::exception_ptr e;
            try {
              auto [type, message] = decode_all<std::string, std::string>(payload);
              e = std::make_exception_ptr(remote_error(std::move(type), std::move(message), function_name(j->spec.fn)));
            } catch (...) {
              e = std::current_exception();
            }
            fail_started(*j, std::move(e));
          }
          break;
        }
        default:
          kill(w, kill_reason::broken);
          return;
      }
    }
  }

  void kill(worker& w, kill_reason why) noexcept {
    if (w.killed != kill_reason::none) return;
    w.killed = why;
    ::syscall(SYS_pidfd_send_signal, w.pidfd, SIGKILL, nullptr, 0);
  }

  void handle_exit(worker& w) noexcept {
    read_replies(w);  // replies it sent before dying still count
    siginfo_t si{};
    int r;
    do {
      r = ::waitid(P_PIDFD, static_cast<id_t>(w.pidfd), &si, WEXITED);
    } while (r < 0 && errno == EINTR);
    int sig = 0, code = -1;
    if (r == 0) {
      if (si.si_code == CLD_EXITED) {
        code = si.si_status;
      } else {
        sig = si.si_status;
      }
    }  // else ECHILD: someone else reaped it (waitpid(-1) elsewhere); status unknown

    if (!w.ready && w.killed == kill_reason::none && !shutting_ && !broken()) {
      if (++startup_failures_ >= 3) {
        break_pool("workers keep dying during start-up (" + broken_message(w.pid, sig, code, "no job") + ")");
      }
    }
    if (!w.inflight.empty()) {
      std::unique_ptr<job> head = std::move(w.inflight.front());
      w.inflight.pop_front();
      std::exception_ptr e;
      if (w.killed == kill_reason::cancel || w.killed == kill_reason::shutdown) {
        e = cancelled_ptr();
      } else if (w.killed == kill_reason::broken) {
        e = std::make_exception_ptr(broken_pool(broken_text()));
      } else {
        e = std::make_exception_ptr(broken_worker(w.pid, sig, code, function_name(head->spec.fn)));
      }
      fail_started(*head, std::move(e));
      // The others never started: run them elsewhere, in their order.
      while (!w.inflight.empty()) {
        std::unique_ptr<job> j = std::move(w.inflight.back());
        w.inflight.pop_back();
        if (j->abandoned) {
          j->spec.state->release();
        } else if (w.killed == kill_reason::shutdown) {
          fail_started(*j, cancelled_ptr());
        } else {
          pending_.push_front(std::move(j));
        }
      }
    }
    close_watched(w.pidfd);
    close_watched(w.sock);
    auto it = std::find_if(workers_.begin(), workers_.end(), [&](auto& p) { return p.get() == &w; });
    workers_.erase(it);
    update_pids();
  }

  void cancel_job(future_state_base* s) noexcept {
    for (auto& w : workers_) {
      for (std::size_t i = 0; i < w->inflight.size(); ++i) {
        job& j = *w->inflight[i];
        if (j.spec.state != s || j.abandoned) continue;
        if (i == 0) {
          kill(*w, kill_reason::cancel);  // it is running: only killing stops it
        } else {
          // Queued behind the running one: it has not started, complete it now
          // and drop its reply when it comes.
          j.abandoned = true;
          s->fail(cancelled_ptr());
        }
        return;
      }
    }
    for (auto it = pending_.begin(); it != pending_.end(); ++it) {
      if ((*it)->spec.state == s) {  // requeued after its worker died: started, not running
        fail_started(**it, cancelled_ptr());
        pending_.erase(it);
        return;
      }
    }
  }

  void begin_shutdown(const process_pool_shutdown_options& o) noexcept {
    shutting_ = true;
    if (o.cancel_pending || o.kill) {
      while (!pending_.empty()) {
        std::unique_ptr<job> j = std::move(pending_.front());
        pending_.pop_front();
        fail_unstarted(*j, cancelled_ptr());
      }
    }
    if (o.kill) {
      for (auto& w : workers_) kill(*w, kill_reason::shutdown);
    }
  }

  std::string broken_text() {
    std::lock_guard lock(m_);
    return broken_message_;
  }

  void break_pool(const std::string& why) noexcept {
    if (broken()) return;
    {
      std::lock_guard lock(m_);
      broken_message_ = "process pool is broken: " + why;
      broken_.store(true, std::memory_order_release);
      // Jobs queued for us fail below, with the pending ones.
      while (!incoming_.empty()) {
        pending_.push_back(std::move(incoming_.front()));
        incoming_.pop_front();
      }
    }
    for (auto& w : workers_) kill(*w, kill_reason::broken);
    fail_all_pending();
  }

  // Each job gets an exception object of its own, and the manager keeps no
  // reference to it after publishing: exception_ptr's reference count lives in
  // uninstrumented libstdc++ code, so a shared one would look like a race to TSan.
  void fail_all_pending() noexcept {
    std::string why = broken_text();
    while (!pending_.empty()) {
      std::unique_ptr<job> j = std::move(pending_.front());
      pending_.pop_front();
      fail_unstarted(*j, std::make_exception_ptr(broken_pool(why)));
    }
  }

  process_pool_options opts_;  // as given
  unsigned target_ = 1;        // workers to keep

  // Shared with submitting threads, under m_.
  mutable std::mutex m_;
  std::deque<std::unique_ptr<job>> incoming_;          // submitted, not yet seen by the manager
  std::vector<future_state_base*> cancels_;            // running jobs to cancel (one reference each)
  std::vector<future_state<void>*> waiters_;           // shutdown futures
  process_pool_shutdown_options shutdown_opts_{};      // merged options of the shutdown calls
  bool shutdown_requested_ = false;                    // a shutdown call was made
  bool accepting_ = true;                              // false once shutdown was called
  bool manager_done_ = false;                          // the manager thread has finished
  std::string broken_message_;                         // why the pool is broken
  std::vector<int> pids_;                              // live workers' pids, for worker_pids()
  std::atomic<bool> broken_{false};                    // written under m_, read lock-free
  std::atomic<bool> wake_pending_{false};              // an eventfd write is pending: no need for another
  int wake_fd_ = -1;                                   // eventfd the manager polls; closed by it at its end
  std::optional<ring_waiter> waiter_;  // the manager thread's ring (made on that thread)

  // Manager thread only.
  std::deque<std::unique_ptr<job>> pending_;           // accepted, not yet sent to a worker
  std::vector<std::unique_ptr<worker>> workers_;       // live (unreaped) workers
  receiver rx_;                                        // receive buffer for replies
  unsigned startup_failures_ = 0;                      // workers in a row that died before ready
  std::uint64_t next_id_ = 1;                          // job ids, to check reply order
  bool shutting_ = false;                              // shutdown has begun

  std::mutex join_m_;   // serialises joins of thread_
  std::thread thread_;  // the manager
};

}  // namespace detail

process_pool::process_pool(const options& opts) : impl_(std::make_unique<detail::process_pool_impl>(opts)) {}

process_pool::~process_pool() {
  if (impl_) shutdown({.wait = true});
}

void process_pool::start_fork_server() {
  auto& s = detail::server();
  std::lock_guard lock(s.m);
  detail::start_server_locked(s, false);
}

void process_pool::submit_spec(detail::process_job_spec spec) { impl_->submit(std::move(spec)); }

future<void> process_pool::shutdown_async(shutdown_options opts) {
  auto* st = new detail::future_state<void>();
  impl_->request_shutdown(opts, st);
  return future<void>(st);
}

void process_pool::shutdown(shutdown_options opts) {
  future<void> f = shutdown_async(opts);
  if (opts.wait) {
    f.wait();
    impl_->join();
  }
}

std::vector<int> process_pool::worker_pids() const { return impl_->pids(); }

bool process_pool::broken() const noexcept { return impl_->broken(); }

unsigned process_pool::size() const noexcept { return impl_->size(); }

}  // namespace coring
