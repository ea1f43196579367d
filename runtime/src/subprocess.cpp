#include <coring/subprocess.hpp>

#include <coring/detail/loop_access.hpp>
#include <coring/event_loop.hpp>
#include <coring/gather.hpp>

#include "spawn_child.hpp"

#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>

extern char** environ;

// ThreadSanitizer intercepts clone() and runs its fork bookkeeping in the
// child, which shares our memory (CLONE_VM) and so our sanitizer state: clang
// 14's fails its own check there. The child runs only raw system calls in
// uninstrumented code (spawn_child.cpp) while we are suspended (CLONE_VFORK),
// so under TSan we call glibc's clone by its other exported name, which is not
// intercepted, and TSan never sees the child.
#if defined(__SANITIZE_THREAD__)
#define CORING_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CORING_TSAN 1
#endif
#endif
#ifdef CORING_TSAN
extern "C" int __clone(int (*fn)(void*), void* stack, int flags, void* arg, ...);
#endif

namespace coring {

namespace {

// IORING_OP_WAITID (Linux 6.7) is newer than liburing 2.3's headers: its
// opcode comes right after IORING_OP_READ_MULTISHOT, which follows
// IORING_OP_SENDMSG_ZC, the last one those headers know.
constexpr int op_waitid = 50;
static_assert(IORING_OP_SENDMSG_ZC == 48, "IORING_OP_WAITID is 2 past IORING_OP_SENDMSG_ZC");
constexpr int p_pidfd = 3;  // P_PIDFD (Linux 5.4), which glibc 2.36's idtype_t lacks

std::atomic<bool> force_pidfd_poll{false};

// pidfd_send_signal(2) (Linux 5.1). glibc 2.36's <sys/pidfd.h> declares it
// without C linkage for C++, so the system call is made directly.
void send_through_pidfd(int pidfd, int signo) noexcept {
  ::syscall(SYS_pidfd_send_signal, pidfd, signo, nullptr, 0);
}

// Whether the running kernel has IORING_OP_WAITID, probed once per process.
bool waitid_in_ring(event_loop& loop) {
  static std::atomic<int> known{-1};
  int k = known.load(std::memory_order_relaxed);
  if (k < 0) {
    io_uring_probe* probe = io_uring_get_probe_ring(&detail::loop_access::ring(loop));
    k = probe && io_uring_opcode_supported(probe, op_waitid) ? 1 : 0;
    if (probe) io_uring_free_probe(probe);
    known.store(k, std::memory_order_relaxed);
  }
  return k == 1;
}

int decode_status(const siginfo_t& info) noexcept {
  if (info.si_code == CLD_EXITED) return info.si_status;
  return -info.si_status;  // CLD_KILLED, CLD_DUMPED: the signal, negated (Python's returncode)
}

// Awaiter: IORING_OP_WAITID on the pidfd; the kernel fills `info` and reaps.
class waitid_operation : public detail::ring_operation {
 public:
  waitid_operation(int pidfd, pid_t pid, siginfo_t* info) noexcept
      : ring_operation(&prep), pidfd_(pidfd), pid_(pid), info_(info) {}
  int await_resume() { return result(); }

 private:
  static void prep(io_uring_sqe* sqe, const detail::ring_operation& op) noexcept {
    auto& self = static_cast<const waitid_operation&>(op);
    // What liburing 2.5's io_uring_prep_waitid fills: id in fd, idtype in
    // len, the siginfo in addr2, the options in file_index.
    io_uring_prep_rw(op_waitid, sqe, self.pidfd_, nullptr, p_pidfd, 0);
    sqe->addr2 = reinterpret_cast<std::uint64_t>(self.info_);
    sqe->file_index = WEXITED;
  }
  static void describe(const detail::ring_operation& op, std::string& out) {
    out = "wait for process " + std::to_string(static_cast<const waitid_operation&>(op).pid_) + " to end";
  }
  static inline const bool described_ = register_description(&prep, &describe);
  int pidfd_;        // the child
  pid_t pid_;        // its pid, for dump_tasks()
  siginfo_t* info_;  // where its end is written; lives in the awaiting frame
};

// SIGPIPE blocked on this thread (once): a write to a pipe whose reader has
// gone then fails with EPIPE instead of ending the process. A SIGPIPE raised
// by such a write stays pending and is consumed by the writer.
void block_sigpipe_here() noexcept {
  thread_local bool done = false;
  if (done) return;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  done = true;
}

void consume_sigpipe() noexcept {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  timespec zero{};
  while (::sigtimedwait(&set, nullptr, &zero) > 0) {
  }
}

std::string quoted(const std::string& s) { return "'" + s + "'"; }

// Descriptors the parent opened for the child, closed when the spawn is done
// (or fails).
struct owned_fds {
  int fds[6] = {-1, -1, -1, -1, -1, -1};
  int n = 0;
  int add(int fd) {
    fds[n++] = fd;
    return fd;
  }
  ~owned_fds() {
    for (int i = 0; i < n; ++i) {
      if (fds[i] >= 0) ::close(fds[i]);
    }
  }
};

// `fd`, moved to a number >= 3 (so that no dup3 in the child clobbers it),
// close-on-exec. An fd we own at 0..2 is replaced.
int above_standard(int fd, owned_fds& owned, bool ours, const std::string& what) {
  if (fd > 2) return fd;
  int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (moved < 0) throw io_error(errno, what);
  owned.add(moved);
  if (ours) {
    for (int i = 0; i < owned.n; ++i) {
      if (owned.fds[i] == fd) {
        ::close(fd);
        owned.fds[i] = -1;
      }
    }
  }
  return moved;
}

std::vector<std::string> exec_candidates(const std::string& program,
                                         const std::optional<std::vector<std::string>>& env) {
  if (program.find('/') != std::string::npos) return {program};
  std::string path;
  if (env) {
    path = "/usr/local/bin:/usr/bin:/bin";
    for (const auto& e : *env) {
      if (e.starts_with("PATH=")) path = e.substr(5);
    }
  } else if (const char* p = std::getenv("PATH")) {
    path = p;
  } else {
    path = "/usr/local/bin:/usr/bin:/bin";
  }
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    std::size_t end = path.find(':', start);
    std::string dir = path.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (dir.empty()) dir = ".";
    out.push_back(dir + "/" + program);
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out;
}

std::vector<int> signals_to_reset() {
  std::vector<int> out;
  for (int s = 1; s < NSIG; ++s) {
    if (s == SIGKILL || s == SIGSTOP) continue;
    struct sigaction sa {};
    if (::sigaction(s, nullptr, &sa) != 0) continue;  // a signal number the C library reserves
    const bool handled = (sa.sa_flags & SA_SIGINFO) || (sa.sa_handler != SIG_DFL && sa.sa_handler != SIG_IGN);
    // SIGPIPE and SIGXFSZ go back to the default even when ignored, as
    // Python's restore_signals does: programs expect to die of them.
    if (handled || s == SIGPIPE || s == SIGXFSZ) out.push_back(s);
  }
  return out;
}

}  // namespace

namespace detail {

/// What exec() copied out of its arguments, owned by the spawning task.
struct spawn_request {
  std::vector<std::string> argv;
  stream_spec streams[3] = {stdio::inherit, stdio::inherit,
                            stdio::inherit};    // their paths point into `paths`
  std::string paths[3];                         // the files of stdio_file streams
  std::string cwd;                              // empty: ours
  std::optional<std::vector<std::string>> env;  // "NAME=value"; nullopt: ours
};

void subprocess_force_pidfd_poll(bool on) noexcept { force_pidfd_poll.store(on, std::memory_order_relaxed); }
}  // namespace detail

// ---------------------------------------------------------------- pipe_stream

std::size_t pipe_write_operation::await_resume() {
  try {
    return write_operation::await_resume();
  } catch (const io_error& e) {
    if (e.code().value() == EPIPE) consume_sigpipe();
    throw;
  }
}

void pipe_stream::close_now() noexcept {
  if (fd_ >= 0) ::close(std::exchange(fd_, -1));
}

task<> pipe_stream::write_all(std::span<const std::byte> data) {
  while (!data.empty()) {
    std::size_t n = co_await write_some(data);
    data = data.subspan(n);
  }
}

task<std::string> pipe_stream::read_all(std::size_t max) {
  std::string out;
  constexpr std::size_t chunk = 65536;
  for (;;) {
    const std::size_t had = out.size();
    out.resize(had + chunk);
    std::size_t n = co_await read_some(std::as_writable_bytes(std::span(out.data() + had, chunk)));
    out.resize(had + n);
    if (n == 0) break;
    if (out.size() > max) throw error("pipe_stream::read_all: more than " + std::to_string(max) + " bytes");
  }
  co_return out;
}

// ---------------------------------------------------------------- spawning

std::vector<std::string> subprocess::environment() {
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) env.emplace_back(*e);
  return env;
}

task<subprocess> subprocess::shell(std::string_view command, const subprocess_options& opts) {
  return exec(std::vector<std::string>{"/bin/sh", "-c", std::string(command)}, opts);
}

// exec() is a plain function: it copies what the options refer to now, so
// that the views need not outlive the call, and the lazy task owns its copy.
task<subprocess> subprocess::exec(command_args args, const subprocess_options& opts) {
  detail::spawn_request r;
  r.argv = args.take();
  const stream_spec* specs[3] = {&opts.stdin, &opts.stdout, &opts.stderr};
  for (int i = 0; i < 3; ++i) r.streams[i] = *specs[i];
  for (int i = 0; i < 3; ++i) {
    if (specs[i]->is_file()) r.paths[i] = std::string(specs[i]->path());
  }
  r.cwd = std::string(opts.cwd);
  if (opts.env) r.env.emplace(opts.env->begin(), opts.env->end());
  return spawn(std::move(r));
}

task<subprocess> subprocess::spawn(detail::spawn_request r) {
  std::vector<std::string>& argv = r.argv;
  if (argv.empty()) throw error("coring::subprocess::exec: empty argv");
  event_loop* loop = event_loop::current();
  CORING_ASSERT(loop, "coring::subprocess needs an event loop on this thread");
  (void)loop;
  const std::string what = "coring::subprocess: " + quoted(argv[0]);

  subprocess p;
  p.program_ = argv[0];
  owned_fds owned;  // the child's ends and opened files: closed once it has them
  detail::child_plan plan;
  for (int i = 0; i < 3; ++i) {
    const stream_spec& spec = r.streams[i];
    int source = -1;
    bool ours = true;
    if (!spec.is_file() && !spec.is_fd()) {
      const stdio how = spec.is(stdio::pipe)        ? stdio::pipe
                        : spec.is(stdio::devnull)   ? stdio::devnull
                        : spec.is(stdio::to_stdout) ? stdio::to_stdout
                                                    : stdio::inherit;
      switch (how) {
        case stdio::inherit:
          break;
        case stdio::pipe: {
          int fds[2];
          if (::pipe2(fds, O_CLOEXEC) != 0) throw io_error(errno, what + ": making a pipe");
          // stdin: the child reads; stdout/stderr: the child writes.
          const int child_end = i == 0 ? fds[0] : fds[1];
          const int our_end = i == 0 ? fds[1] : fds[0];
          p.pipes_[i] = pipe_stream(our_end);
          source = owned.add(child_end);
          if (i == 0) block_sigpipe_here();
          break;
        }
        case stdio::devnull:
          source = ::open("/dev/null", O_RDWR | O_CLOEXEC);
          if (source < 0) throw io_error(errno, what + ": opening /dev/null");
          owned.add(source);
          break;
        case stdio::to_stdout:
          if (i != 2) throw error(what + ": stdio::to_stdout is for stderr only");
          plan.stderr_to_stdout = true;
          break;
      }
    } else if (spec.is_file()) {
      const int flags = i == 0 ? O_RDONLY : (O_WRONLY | O_CREAT | (spec.append() ? O_APPEND : O_TRUNC));
      source = ::open(r.paths[i].c_str(), flags | O_CLOEXEC, 0666);
      if (source < 0) throw io_error(errno, what + ": opening " + quoted(r.paths[i]));
      owned.add(source);
    } else {
      source = spec.fd();
      ours = false;
    }
    if (source >= 0) source = above_standard(source, owned, ours, what + ": moving a descriptor");
    plan.sources[i] = source;
  }

  // Everything the child reads is built here, in the parent: it may not allocate.
  std::vector<const char*> words;
  for (const auto& a : argv) words.push_back(a.c_str());
  words.push_back(nullptr);
  std::vector<const char*> envp;
  if (r.env) {
    for (const auto& e : *r.env) envp.push_back(e.c_str());
    envp.push_back(nullptr);
  }
  const std::vector<std::string> candidates = exec_candidates(argv[0], r.env);
  std::vector<const char*> cands;
  for (const auto& c : candidates) cands.push_back(c.c_str());
  cands.push_back(nullptr);
  const std::vector<int> reset = signals_to_reset();
  plan.argv = words.data();
  plan.envp = r.env ? envp.data() : const_cast<const char* const*>(environ);
  plan.candidates = cands.data();
  plan.cwd = r.cwd.empty() ? nullptr : r.cwd.c_str();
  plan.reset_signals = reset.data();
  plan.reset_count = static_cast<int>(reset.size());

  // The child's stack; the child leaves it at execve (or exit).
  constexpr std::size_t stack_size = 64 * 1024;
  void* stack =
      ::mmap(nullptr, stack_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) throw io_error(errno, what + ": a stack for the child");

  // No handler of ours may run in the child (it shares our memory until it
  // execs): every signal is blocked around the clone; the child sets its
  // own dispositions and mask.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int pidfd = -1;
#ifdef CORING_TSAN
  const pid_t pid = ::__clone(&detail::run_child, static_cast<char*>(stack) + stack_size,
                              CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD, &plan, &pidfd);
#else
  const pid_t pid = ::clone(&detail::run_child, static_cast<char*>(stack) + stack_size,
                            CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD, &plan, &pidfd);
#endif
  const int clone_errno = errno;
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ::munmap(stack, stack_size);
  if (pid < 0) throw io_error(clone_errno, what + ": clone");

  if (plan.error != 0) {
    // The child has exited already (CLONE_VFORK returned at its exit): reap it.
    siginfo_t info{};
    ::waitid(static_cast<idtype_t>(p_pidfd), static_cast<id_t>(pidfd), &info, WEXITED);
    ::close(pidfd);
    switch (plan.stage) {
      case detail::stage_chdir:
        throw io_error(plan.error, what + ": changing to directory " + quoted(r.cwd));
      case detail::stage_exec:
        throw io_error(plan.error, what + ": cannot run it");
      default:
        throw io_error(plan.error, what + ": setting up the child");
    }
  }
  p.pid_ = pid;
  p.pidfd_ = pidfd;
  co_return std::move(p);
}

// ---------------------------------------------------------------- the running child

subprocess::subprocess(subprocess&& o) noexcept
    : pid_(std::exchange(o.pid_, -1)),
      pidfd_(std::exchange(o.pidfd_, -1)),
      program_(std::move(o.program_)),
      returncode_(std::exchange(o.returncode_, std::nullopt)) {
  for (int i = 0; i < 3; ++i) pipes_[i] = std::move(o.pipes_[i]);
}

subprocess& subprocess::operator=(subprocess&& o) noexcept {
  if (this != &o) {
    subprocess gone(std::move(*this));  // our child, if any: killed and reaped as it goes
    pid_ = std::exchange(o.pid_, -1);
    pidfd_ = std::exchange(o.pidfd_, -1);
    program_ = std::move(o.program_);
    returncode_ = std::exchange(o.returncode_, std::nullopt);
    for (int i = 0; i < 3; ++i) pipes_[i] = std::move(o.pipes_[i]);
  }
  return *this;
}

subprocess::~subprocess() {
  for (auto& pipe : pipes_) (void)pipe.close();
  if (pidfd_ < 0) return;
  if (!returncode_) reap_blocking();
  ::close(pidfd_);
}

void subprocess::reap_blocking() noexcept {
  send_through_pidfd(pidfd_, SIGKILL);
  siginfo_t info{};
  int r;
  do {
    r = ::waitid(static_cast<idtype_t>(p_pidfd), static_cast<id_t>(pidfd_), &info, WEXITED);
  } while (r < 0 && errno == EINTR);
  if (r == 0) returncode_ = decode_status(info);
}

void subprocess::send_signal(int signo) noexcept {
  if (pidfd_ < 0 || returncode_) return;
  send_through_pidfd(pidfd_, signo);
}

task<> subprocess::reap() {
  siginfo_t info{};
  const std::string what =
      "coring::subprocess: waiting for " + quoted(program_) + " (pid " + std::to_string(pid_) + ")";
  event_loop* loop = event_loop::current();
  if (!force_pidfd_poll.load(std::memory_order_relaxed) && waitid_in_ring(*loop)) {
    const int r = co_await waitid_operation(pidfd_, pid_, &info);
    if (r < 0) throw io_error(-r, what);
  } else {
    // Before Linux 6.7: the pidfd becomes readable when the child ends.
    for (;;) {
      (void)co_await wait_readable(pidfd_);
      info = {};
      if (::waitid(static_cast<idtype_t>(p_pidfd), static_cast<id_t>(pidfd_), &info, WEXITED | WNOHANG) !=
          0) {
        throw io_error(errno, what);
      }
      if (info.si_pid != 0) break;
    }
  }
  returncode_ = decode_status(info);
}

task<int> subprocess::wait() {
  if (returncode_) co_return *returncode_;
  std::exception_ptr interrupted;
  try {
    co_await reap();
  } catch (const cancelled&) {
    interrupted = std::current_exception();
  }
  if (interrupted) {
    // Asked to stop waiting: the child is not left behind. (Delivered once:
    // this second wait runs normally; a second cancellation meanwhile leaves
    // the reaping to the destructor.)
    kill();
    try {
      co_await reap();
    } catch (...) {
    }
    std::rethrow_exception(interrupted);
  }
  co_return *returncode_;
}

namespace {

task<> feed(pipe_stream& in, const std::string& data) {
  if (!in.is_open()) co_return;
  bool child_left = false;
  try {
    co_await in.write_all(std::as_bytes(std::span(data.data(), data.size())));
  } catch (const io_error& e) {
    if (e.code().value() != EPIPE) throw;
    child_left = true;  // it stopped reading (or ended): the rest is dropped, as asyncio does
  }
  (void)child_left;
  (void)in.close();
}

task<> drain(pipe_stream& from, std::string& into) {
  if (!from.is_open()) co_return;
  constexpr std::size_t chunk = 65536;
  for (;;) {
    const std::size_t had = into.size();
    into.resize(had + chunk);
    std::size_t n = co_await from.read_some(std::as_writable_bytes(std::span(into.data() + had, chunk)));
    into.resize(had + n);
    if (n == 0) break;
  }
  (void)from.close();
}

}  // namespace

task<subprocess::output> subprocess::communicate(std::string input) {
  if (!input.empty() && !stdin().is_open()) {
    throw error("coring::subprocess::communicate: input given but the stdin of " + quoted(program_) +
                " is not a pipe");
  }
  output out;
  std::exception_ptr failure;
  try {
    // All at once: a child that writes a lot before it reads all its input
    // (or the reverse) never blocks on a full pipe.
    (void)co_await gather(feed(stdin(), input), drain(stdout(), out.out), drain(stderr(), out.err));
  } catch (...) {
    failure = std::current_exception();
  }
  if (failure) {
    kill();
    try {
      co_await reap();
    } catch (...) {
    }
    std::rethrow_exception(failure);
  }
  out.returncode = co_await wait();
  co_return out;
}

}  // namespace coring
