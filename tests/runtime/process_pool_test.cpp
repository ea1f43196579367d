#include <coring/process_pool.hpp>

#include <coring/event_loop.hpp>
#include <coring/sleep.hpp>
#include <coring/spawn.hpp>

#include <doctest/doctest.h>

#include "support/cancel_once.hpp"
#include "support/fds.hpp"

#include "../../runtime/src/process_pool_fork_server.hpp"  // a worker of our own, by name, at the end
#include "../../runtime/src/process_pool_wire.hpp"         // the wire format's own tests, at the end

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <tuple>
#include <vector>

extern char** environ;

// The fork server must be forked while this binary is still single-threaded,
// and other suites of the same binary start thread pools. A global
// constructor with init_priority(101) runs before every ordinary global
// constructor (doctest's registrations included) and before main, hence
// before any thread: that is where it is started. The same constructor
// serves the "parent killed" test: when this binary is started with
// CORING_PROCESS_POOL_TEST_CHILD=<fd>, it becomes the victim process
// instead of running the tests.
// Tests that read a caught remote exception keep its future alive until
// after the catch block. Otherwise the pool's manager thread may drop the last
// reference to the exception after the test thread read it, through
// exception_ptr's reference count inside (uninstrumented) libstdc++: correct,
// but a data race to ThreadSanitizer.
namespace {

[[noreturn]] void run_victim(int fd);
[[noreturn]] void run_lazy(const char* mode);
[[noreturn]] void run_servers_lost();

// Registered before the fork server starts (same priority, earlier in this
// file), so that the workers it forks know the name: see "a worker runs a
// job sent by its registered name alone". (CORING_REGISTER_JOB registers at
// the default priority, after the server started: workers then fall back to
// the addresses that come with the name.)
int quadruple(int x) { return 4 * x; }
__attribute__((init_priority(101))) const coring::detail::job_registration early_registration(quadruple,
                                                                                               "tests.quadruple");

struct start_fork_server_first {
  start_fork_server_first() {
    if (const char* child = std::getenv("CORING_PROCESS_POOL_TEST_CHILD")) run_victim(std::atoi(child));
    if (const char* mode = std::getenv("CORING_PROCESS_POOL_TEST_LAZY")) run_lazy(mode);
    if (std::getenv("CORING_PROCESS_POOL_TEST_SERVERS_LOST")) run_servers_lost();
    coring::process_pool::start_fork_server();
  }
};
__attribute__((init_priority(101))) start_fork_server_first fork_server_starter;

using namespace std::chrono_literals;

int square(int x) { return x * x; }
int my_pid() { return static_cast<int>(::getpid()); }
std::string greet(std::string name, int times) {
  std::string s;
  for (int i = 0; i < times; ++i) s += "hi " + name + ";";
  return s;
}
void nothing() {}
int throw_runtime(int) { throw std::runtime_error("boom in worker"); }
int throw_int() { throw 42; }
int kill_self() {
  ::kill(::getpid(), SIGKILL);
  ::pause();
  return 0;
}
int segfault_job() {
  ::signal(SIGSEGV, SIG_DFL);  // a sanitizer's handler would turn the signal into exit(1)
  volatile int* p = nullptr;
  *p = 1;
  return 0;
}
int abort_job() {
  ::signal(SIGABRT, SIG_DFL);
  std::abort();
}
int exit3_job() { ::_exit(3); }
int sleep_ms(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return ms;
}
std::size_t allocate(std::size_t bytes) {
  std::vector<char> v(bytes, 1);
  return v.size() + static_cast<std::size_t>(v[bytes / 2] - 1);
}
std::string reverse_copy(std::string s) { return std::string(s.rbegin(), s.rend()); }
void init_throws() { throw std::invalid_argument("no config file"); }
void init_exits() { ::_exit(7); }
long fib(int n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }
std::string make_string(std::size_t bytes) { return std::string(bytes, 'x'); }

// Leaves a trace that it ran: creates the file at `path`.
int touch(std::string path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd >= 0) ::close(fd);
  return 1;
}

// Appends "<id>\n" to the file at `path` (one write: O_APPEND keeps lines whole
// across processes), then aborts if asked to, else returns 2 * id.
int logged_job(std::string path, int id, bool crash) {
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  std::string line = std::to_string(id) + "\n";
  if (fd >= 0) {
    ssize_t w = ::write(fd, line.data(), line.size());
    (void)w;
    ::close(fd);
  }
  if (crash) {
    ::signal(SIGABRT, SIG_DFL);
    std::abort();
  }
  return 2 * id;
}

// Writes its pid to the file at `path`, then sleeps `ms`.
int announce_and_sleep(std::string path, int ms) {
  std::string text = std::to_string(::getpid());
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd >= 0) {
    ssize_t w = ::write(fd, text.data(), text.size());
    (void)w;
    ::close(fd);
  }
  return sleep_ms(ms);
}

// Registered by name: they travel by name, and messages use it.
int triple(int x) { return 3 * x; }
int throws_registered(int) { throw std::logic_error("registered and thrown"); }
CORING_REGISTER_JOB(triple);
CORING_REGISTER_JOB_AS(&throws_registered, "tests.throws");
CORING_REGISTER_JOB_AS([](std::string s) { return s + s; }, "tests.twice");

// What /proc/<pid>/fd holds apart from stdin, stdout and stderr: the link targets.
std::vector<std::string> descriptors_of(int pid) {
  std::vector<std::string> out;
  std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = ::opendir(dir.c_str());
  if (!d) return out;
  const int own = pid == ::getpid() ? ::dirfd(d) : -1;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    int fd = std::atoi(e->d_name);
    if (fd <= 2 || fd == own) continue;
    char target[256];
    ssize_t len = ::readlink((dir + "/" + e->d_name).c_str(), target, sizeof target - 1);
    out.emplace_back(target, len > 0 ? static_cast<std::size_t>(len) : 0);
  }
  ::closedir(d);
  return out;
}
std::vector<std::string> my_descriptors() { return descriptors_of(::getpid()); }

// The signal masks of /proc/<pid>/status: blocked, ignored, caught.
std::tuple<std::uint64_t, std::uint64_t, std::uint64_t> signal_masks_of(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::uint64_t blk = 0, ign = 0, cgt = 0;
  for (std::string line; std::getline(f, line);) {
    auto value = [&] { return std::stoull(line.substr(line.find(':') + 1), nullptr, 16); };
    if (line.starts_with("SigBlk:")) blk = value();
    if (line.starts_with("SigIgn:")) ign = value();
    if (line.starts_with("SigCgt:")) cgt = value();
  }
  return {blk, ign, cgt};
}
std::tuple<std::uint64_t, std::uint64_t, std::uint64_t> my_signal_masks() { return signal_masks_of(::getpid()); }
constexpr std::uint64_t bit(int sig) { return std::uint64_t{1} << (sig - 1); }

// Descriptor counts (sockets, pidfds, eventfds, memfds, rings: anything but
// pipes and /dev/null) come from support/fds.hpp.
using coring_test::count_fds;
using coring_test::fd_count_returns_to;
using coring_test::settled_fd_count;

// Children of this process that are zombies.
std::vector<int> zombie_children() {
  std::vector<int> out;
  int me = ::getpid();
  DIR* d = ::opendir("/proc");
  while (dirent* e = ::readdir(d)) {
    int pid = std::atoi(e->d_name);
    if (pid <= 0) continue;
    std::ifstream f("/proc/" + std::string(e->d_name) + "/stat");
    std::string line;
    if (!std::getline(f, line)) continue;
    auto close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 2));
    char state = 0;
    int ppid = 0;
    rest >> state >> ppid;
    if (ppid == me && state == 'Z') out.push_back(pid);
  }
  ::closedir(d);
  return out;
}

// True if `pid` is gone or a zombie (it has exited).
bool exited(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(f, line)) return true;
  auto close = line.rfind(')');
  return close != std::string::npos && close + 2 < line.size() && line[close + 2] == 'Z';
}

template <class F>
bool eventually(F f, std::chrono::milliseconds limit = 3000ms) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (f()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return f();
}

std::vector<int> wait_for_workers(coring::process_pool& pool, std::size_t n) {
  std::vector<int> pids;
  eventually([&] { return (pids = pool.worker_pids()).size() == n; });
  return pids;
}

// A fresh directory under /tmp, removed with what it holds.
struct temp_dir {
  std::string path;
  temp_dir() {
    char tmpl[] = "/tmp/coring-pp-test-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~temp_dir() {
    if (DIR* d = ::opendir(path.c_str())) {
      while (dirent* e = ::readdir(d))
        if (e->d_name[0] != '.') ::unlink((path + "/" + e->d_name).c_str());
      ::closedir(d);
    }
    ::rmdir(path.c_str());
  }
  std::string file(const char* name) const { return path + "/" + name; }
};

bool file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

int lowest_free_descriptor() {
  int fd = ::dup(0);
  ::close(fd);
  return fd;
}

// While it lives, this process can open no new descriptor (EMFILE): the soft
// RLIMIT_NOFILE is lowered to `limit`, by default the lowest free descriptor
// number (descriptors above it stay open, but no new one can be made, even
// when they are closed). Under it a test only submits and waits: reading
// /proc, or a sanitizer's check that opens a pipe, would fail too.
struct no_free_descriptors {
  rlimit saved{};
  explicit no_free_descriptors(int limit = lowest_free_descriptor()) {
    // UBSan's vptr check opens a pipe when its type cache misses and, with no
    // descriptor free, reports a valid object as having an invalid vptr. The
    // pool builds an io_error under the limit: check that call once now.
    (void)coring::io_error(EMFILE, "warm-up").what();
    // It also destroys job states there, and the last reference to an earlier
    // job may still be the pool thread's: check a state's destructor now.
    auto* state = new coring::detail::future_state<int>;  // two references
    state->release();
    state->release();
    ::getrlimit(RLIMIT_NOFILE, &saved);
    rlimit r = saved;
    r.rlim_cur = static_cast<rlim_t>(limit);
    ::setrlimit(RLIMIT_NOFILE, &r);
  }
  ~no_free_descriptors() { ::setrlimit(RLIMIT_NOFILE, &saved); }
  no_free_descriptors(const no_free_descriptors&) = delete;
  no_free_descriptors& operator=(const no_free_descriptors&) = delete;
};

// The errno an io_error carries, or 0 for any other outcome.
template <class T>
int io_errno_of(coring::future<T>& f) {
  try {
    (void)f.get();
    MESSAGE("not an io_error: a value");
  } catch (const coring::io_error& e) {
    return e.code().value();
  } catch (const std::exception& e) {
    MESSAGE("not an io_error: " << std::string(e.what()));
  } catch (const coring::cancelled&) {
    MESSAGE("not an io_error: cancelled");
  }
  return 0;
}

// Stress cases run short in CI; CORING_PROCESS_POOL_STRESS=1 runs them long.
bool long_stress() { return std::getenv("CORING_PROCESS_POOL_STRESS") != nullptr; }

[[noreturn]] void run_victim(int fd) {
  coring::process_pool::start_fork_server();
  // Leaked on purpose: this process is SIGKILLed, never shut down.
  auto* pool = new coring::process_pool({.workers = 2});
  (void)pool->submit(square, 3).get();
  std::vector<int> pids = wait_for_workers(*pool, 2);
  pids.push_back(coring::detail::fork_server_pid());
  pids.push_back(coring::detail::fork_server_standby_pid());
  std::string text;
  for (int p : pids) text += std::to_string(p) + " ";
  text += "\n";
  ssize_t w = ::write(fd, text.data(), text.size());
  (void)w;
  for (;;) ::pause();
}

// Opens a TCP listener on 127.0.0.1 (port chosen by the kernel), starts a
// pool lazily, then closes the listener: the port must be free again (no
// process of the pool holds the socket), and the fork server and the worker
// must hold no descriptor but their own socket. Exit 0 if so.
[[noreturn]] void run_lazy_descriptors() {
  int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(listener, 8) != 0 ||
      ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::_exit(10);
  }
  int rc = 0;
  {
    coring::process_pool pool({.workers = 1});
    std::vector<std::string> in_worker = pool.submit(my_descriptors).get();
    std::vector<std::string> in_server = descriptors_of(coring::detail::fork_server_pid());
    for (auto& d : in_worker) std::fprintf(stderr, "worker holds %s\n", d.c_str());
    for (auto& d : in_server) std::fprintf(stderr, "fork server holds %s\n", d.c_str());
    if (in_worker.size() != 1 || !in_worker[0].starts_with("socket:")) rc = 11;
    if (in_server.size() != 1 || !in_server[0].starts_with("socket:")) rc = 12;
    ::close(listener);
    int again = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (::bind(again, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      std::fprintf(stderr, "re-binding port %d: %s\n", ntohs(addr.sin_port), std::strerror(errno));
      rc = 13;
    }
    ::close(again);
  }
  ::_exit(rc);
}

// Catches SIGUSR1, ignores SIGUSR2 and blocks SIGTERM, then starts a pool
// lazily: the fork server and the worker must have none of that, and ignore
// SIGINT. Exit 0 if so.
void on_usr1(int) {}
[[noreturn]] void run_lazy_signals() {
  ::signal(SIGUSR1, on_usr1);
  ::signal(SIGUSR2, SIG_IGN);
  sigset_t block;
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  ::sigprocmask(SIG_BLOCK, &block, nullptr);
  int rc = 0;
  {
    coring::process_pool pool({.workers = 1});
    auto check = [&](const char* who, std::tuple<std::uint64_t, std::uint64_t, std::uint64_t> masks, int code) {
      auto [blk, ign, cgt] = masks;
      std::fprintf(stderr, "%s: blocked %llx ignored %llx caught %llx\n", who, static_cast<unsigned long long>(blk),
                   static_cast<unsigned long long>(ign), static_cast<unsigned long long>(cgt));
      if ((blk & bit(SIGTERM)) || (ign & bit(SIGUSR2)) || (cgt & bit(SIGUSR1)) || !(ign & bit(SIGINT))) rc = code;
    };
    check("worker", pool.submit(my_signal_masks).get(), 21);
    check("fork server", signal_masks_of(coring::detail::fork_server_pid()), 22);
  }
  ::_exit(rc);
}

// Without start_fork_server(): single-threaded, the pool starts the server
// itself ("ok"); with another thread alive it refuses ("refuse"). Exit 0 on
// the expected outcome. "descriptors" and "signals" check what the lazily
// started server inherits.
[[noreturn]] void run_lazy(const char* mode) {
  if (std::strcmp(mode, "descriptors") == 0) run_lazy_descriptors();
  if (std::strcmp(mode, "signals") == 0) run_lazy_signals();
  bool refuse = std::strcmp(mode, "refuse") == 0;
  std::mutex m;
  std::condition_variable cv;
  bool done = false;
  std::thread other;
  if (refuse) {
    other = std::thread([&] {
      std::unique_lock lock(m);
      cv.wait(lock, [&] { return done; });
    });
  }
  int rc = 1;
  try {
    coring::process_pool pool({.workers = 1});
    rc = (!refuse && pool.submit(square, 2).get() == 4) ? 0 : 2;
  } catch (const coring::error& e) {
    rc = (refuse && std::strstr(e.what(), "start_fork_server") != nullptr) ? 0 : 3;
  }
  if (refuse) {
    {
      std::lock_guard lock(m);
      done = true;
    }
    cv.notify_all();
    other.join();
  }
  ::_exit(rc);
}

// Runs this binary with `env_entry` added and returns its exit code (-1 if it
// did not exit normally).
int run_self_with(const std::string& env_entry);

int spawn_self_with(const std::string& env_entry) {
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) env_strings.emplace_back(*e);
  env_strings.push_back(env_entry);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  char exe[] = "/proc/self/exe";
  char* argv[] = {exe, nullptr};
  pid_t pid = 0;
  if (::posix_spawn(&pid, exe, nullptr, nullptr, argv, envp.data()) != 0) return -1;
  return pid;
}

// Kills the fork server and its standby together: a pool that needs a new
// worker must then break with a clear error, and nothing be left a zombie.
// Exit 0 if so.
[[noreturn]] void run_servers_lost() {
  coring::process_pool::start_fork_server();
  int rc = 0;
  {
    coring::process_pool pool({.workers = 1, .max_tasks_per_child = 1});
    if (pool.submit(square, 2).get() != 4) ::_exit(30);
    int server = coring::detail::fork_server_pid();
    int standby = coring::detail::fork_server_standby_pid();
    if (server <= 0 || standby <= 0) ::_exit(31);
    ::kill(standby, SIGSTOP);  // so that it cannot make a standby of its own in between
    ::kill(server, SIGKILL);
    ::kill(standby, SIGKILL);
    eventually([&] { return exited(server) && exited(standby); });
    // The worker started after the first job retired may still run one of
    // these; the other needs a new worker.
    auto first = pool.submit(square, 3);
    auto f = pool.submit(square, 4);
    try {
      if (first.get() != 9) rc = 37;
    } catch (const coring::broken_pool&) {
    }
    try {
      (void)f.get();
      rc = 32;
    } catch (const coring::broken_pool& e) {
      std::string what = e.what();
      std::fprintf(stderr, "%s\n", what.c_str());
      bool names_both = what.find(std::to_string(server)) != std::string::npos &&
                        what.find(std::to_string(standby)) != std::string::npos;
      if (what.find("no fork server is left") == std::string::npos || !names_both) rc = 33;
    } catch (...) {
      rc = 34;
    }
    if (!pool.broken()) rc = 35;
  }
  if (!zombie_children().empty()) rc = 36;
  ::_exit(rc);
}

int run_self_with(const std::string& env_entry) {
  pid_t child = spawn_self_with(env_entry);
  if (child <= 0) return -1;
  int status = -1;
  if (::waitpid(child, &status, 0) != child) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool sanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr bool sanitized = true;
#else
constexpr bool sanitized = false;
#endif
#else
constexpr bool sanitized = false;
#endif

// True while `f`'s job waits in a worker's look-ahead (written to it, not begun by it).
template <class T>
bool handed(const coring::future<T>& f) {
  return f.state()->current_stage() == coring::detail::future_state_base::stage::handed;
}

// Counts the ids that logged_job wrote to the log at `path`.
std::map<int, int> runs_in_log(const std::string& path) {
  std::map<int, int> runs;
  std::istringstream in(read_file(path));
  for (int id; in >> id;) ++runs[id];
  return runs;
}

}  // namespace

TEST_SUITE("runtime/process_pool") {
  TEST_CASE("submit runs plain functions and captureless lambdas in workers" * doctest::timeout(30)) {
    coring::process_pool pool({.workers = 2});
    auto a = pool.submit(square, 7);
    auto b = pool.submit(greet, "bob", 2);
    auto c = pool.submit([](int x, double y) { return x * y; }, 3, 0.5);
    auto d = pool.submit(nothing);
    auto e = pool.submit(my_pid);
    CHECK(a.get() == 49);
    CHECK(b.get() == "hi bob;hi bob;");
    CHECK(c.get() == doctest::Approx(1.5));
    d.get();
    CHECK(e.get() != ::getpid());
  }

  TEST_CASE("a coroutine awaits a job's future on its own loop" * doctest::timeout(30)) {
    coring::process_pool pool({.workers = 2});
    int v = coring::run([](coring::process_pool& p) -> coring::task<int> {
      int sum = 0;
      for (int i = 1; i <= 20; ++i) sum += co_await p.submit(square, i);
      co_return sum;
    }(pool));
    CHECK(v == 2870);
  }

  TEST_CASE("a job that throws gives remote_error with type name and message and the worker lives on" *
            doctest::timeout(30)) {
    coring::process_pool pool({.workers = 1});
    int pid = pool.submit(my_pid).get();
    auto f = pool.submit(throw_runtime, 1);
    try {
      (void)f.get();
      FAIL("no exception");
    } catch (const coring::remote_error& e) {
      CHECK(e.type_name() == "std::runtime_error");
      CHECK(e.message() == "boom in worker");
      CHECK(std::string(e.what()).find("throw_runtime") != std::string::npos);
      CHECK(std::string(e.what()).find("boom in worker") != std::string::npos);
    }
    auto failing = pool.submit(throw_int);  // outlives the catch: see the note at the top
    try {
      (void)failing.get();
      FAIL("no exception");
    } catch (const coring::remote_error& e) {
      CHECK(e.type_name() == "int");
      CHECK(e.message().empty());
      CHECK(std::string(e.what()).find("int") != std::string::npos);
    }
    CHECK(pool.submit(my_pid).get() == pid);
  }

  TEST_CASE("a worker that dies mid-job fails that job with broken_worker, is replaced, queued jobs complete" *
            doctest::timeout(30)) {
    struct fault {
      int (*fn)();
      const char* name;
      int signal;
      int code;
      const char* text;
    };
    const fault faults[] = {
        {kill_self, "kill_self", SIGKILL, -1, "SIGKILL"},
        {segfault_job, "segfault_job", SIGSEGV, -1, "SIGSEGV"},
        {abort_job, "abort_job", SIGABRT, -1, "SIGABRT"},
        {exit3_job, "exit3_job", 0, 3, "exited with code 3"},
    };
    const int fds_before = settled_fd_count();
    {
      coring::process_pool pool({.workers = 1});
      for (const fault& ft : faults) {
        CAPTURE(ft.name);
        int before = pool.submit(my_pid).get();
        auto bad = pool.submit(ft.fn);
        std::vector<coring::future<int>> queued;
        for (int i = 0; i < 5; ++i) queued.push_back(pool.submit(square, i));
        try {
          (void)bad.get();
          FAIL("no exception");
        } catch (const coring::broken_worker& e) {
          std::string what = e.what();
          CHECK(e.pid() == before);
          CHECK(e.signal() == ft.signal);
          CHECK(e.exit_code() == ft.code);
          CHECK(what.find(ft.text) != std::string::npos);
          CHECK(what.find(ft.name) != std::string::npos);
          CHECK(what.find(std::to_string(before)) != std::string::npos);
        }
        for (int i = 0; i < 5; ++i) CHECK(queued[static_cast<std::size_t>(i)].get() == i * i);
        CHECK(pool.submit(my_pid).get() != before);
        CHECK(zombie_children().empty());
      }
      CHECK(!pool.broken());
    }
    CHECK(zombie_children().empty());
    CHECK(fd_count_returns_to(fds_before));
  }

  TEST_CASE("memory_limit: an allocation past it is remote_error of std::bad_alloc, the next job succeeds" *
            doctest::timeout(30)) {
    if (sanitized) return;  // RLIMIT_AS and sanitizer shadow memory do not mix
    coring::process_pool pool({.workers = 1, .memory_limit = std::size_t{512} << 20});
    int pid = pool.submit(my_pid).get();
    auto failing = pool.submit(allocate, std::size_t{1} << 30);  // outlives the catch: see the note at the top
    try {
      (void)failing.get();
      FAIL("no exception");
    } catch (const coring::remote_error& e) {
      CHECK(e.type_name() == "std::bad_alloc");
    }
    CHECK(pool.submit(allocate, std::size_t{16} << 20).get() == (std::size_t{16} << 20));
    CHECK(pool.submit(my_pid).get() == pid);
  }

  TEST_CASE("an initializer that throws breaks the pool: pending and later jobs fail, no hang" *
            doctest::timeout(30)) {
    coring::process_pool pool({.workers = 2, .initializer = init_throws});
    auto f = pool.submit(square, 2);
    CHECK_THROWS_AS((void)f.get(), coring::broken_pool);
    auto failing = pool.submit(square, 3);  // outlives the catch: see the note at the top
    try {
      (void)failing.get();
      FAIL("no exception");
    } catch (const coring::broken_pool& e) {
      std::string what = e.what();
      CHECK(what.find("std::invalid_argument") != std::string::npos);
      CHECK(what.find("no config file") != std::string::npos);
    }
    CHECK(pool.broken());
  }

  TEST_CASE("workers dying during start-up in a loop break the pool" * doctest::timeout(30)) {
    const int fds_before = settled_fd_count();
    {
      coring::process_pool pool({.workers = 2, .initializer = init_exits});
      std::vector<coring::future<int>> fs;
      for (int i = 0; i < 4; ++i) fs.push_back(pool.submit(square, i));
      for (auto& f : fs) CHECK_THROWS_AS((void)f.get(), coring::broken_pool);
      auto failing = pool.submit(square, 3);  // outlives the catch: see the note at the top
      try {
        (void)failing.get();
        FAIL("no exception");
      } catch (const coring::broken_pool& e) {
        CHECK(std::string(e.what()).find("start-up") != std::string::npos);
      }
    }
    CHECK(zombie_children().empty());
    CHECK(fd_count_returns_to(fds_before));
  }

  TEST_CASE("max_tasks_per_child = 2 with 1 worker runs 10 jobs on 5 processes" * doctest::timeout(30)) {
    coring::process_pool pool({.workers = 1, .max_tasks_per_child = 2});
    std::vector<coring::future<int>> fs;
    for (int i = 0; i < 10; ++i) fs.push_back(pool.submit(my_pid));
    std::set<int> pids;
    for (auto& f : fs) pids.insert(f.get());
    CHECK(pids.size() == 5);
    pool.shutdown();
    CHECK(zombie_children().empty());
  }

  TEST_CASE("cancelling a running job (a timeout) kills and replaces its worker" * doctest::timeout(30)) {
    coring::process_pool pool({.workers = 1});
    int pid = pool.submit(my_pid).get();
    auto slow = pool.submit(sleep_ms, 20000);
    CHECK_FALSE(slow.wait_for(50ms));  // the per-job timeout
    CHECK_FALSE(slow.cancel());        // running: the worker is killed
    CHECK_THROWS_AS((void)slow.get(), coring::cancelled);
    int pid2 = pool.submit(my_pid).get();
    CHECK(pid2 != pid);

    // The same from a coroutine: cancelling the awaiting task kills the worker.
    bool was_cancelled = coring::run([](coring::process_pool& p) -> coring::task<bool> {
      auto waiter = [](coring::process_pool& q) -> coring::task<int> { co_return co_await q.submit(sleep_ms, 20000); };
      auto h = coring::spawn(waiter(p));
      co_await coring::sleep_for(50ms);
      h.cancel();
      try {
        (void)co_await h;
      } catch (const coring::cancelled&) {
        co_return true;
      }
      co_return false;
    }(pool));
    CHECK(was_cancelled);
    CHECK(eventually([&] {
      auto p = pool.worker_pids();
      return p.size() == 1 && p[0] != pid2;
    }));
    CHECK(pool.submit(square, 5).get() == 25);
    CHECK(zombie_children().empty());
  }

  TEST_CASE("a pending job cancelled never runs" * doctest::timeout(30)) {
    coring::process_pool pool({.workers = 1});
    auto slow = pool.submit(sleep_ms, 100);
    auto queued = pool.submit(square, 3);
    // The queued job may already be pipelined to the worker; either way it ends cancelled.
    queued.cancel();
    CHECK_THROWS_AS((void)queued.get(), coring::cancelled);
    CHECK(slow.get() == 100);
    CHECK(pool.submit(square, 4).get() == 16);
  }

  TEST_CASE("shutdown with jobs queued: wait runs them all" * doctest::timeout(30)) {
    coring::process_pool pool({.workers = 1});
    std::vector<coring::future<int>> fs;
    for (int i = 0; i < 5; ++i) fs.push_back(pool.submit(sleep_ms, 20));
    pool.shutdown({.wait = true});
    for (auto& f : fs) {
      CHECK(f.ready());
      CHECK(f.get() == 20);
    }
    CHECK(pool.worker_pids().empty());
    CHECK_THROWS_AS((void)pool.submit(square, 1).get(), coring::error);
  }

  TEST_CASE("shutdown with jobs queued: cancel_pending lets the running ones finish" * doctest::timeout(30)) {
    coring::process_pool pool({.workers = 1});
    (void)pool.submit(my_pid).get();
    auto first = pool.submit(sleep_ms, 200);
    // Let it start, so that the others stay in the pool's queue.
    eventually([&] { return first.running(); });
    std::this_thread::sleep_for(20ms);
    std::vector<coring::future<int>> fs;
    for (int i = 0; i < 20; ++i) fs.push_back(pool.submit(square, i));
    pool.shutdown({.wait = true, .cancel_pending = true});
    CHECK(first.get() == 200);
    int cancelled = 0;
    for (auto& f : fs) {
      try {
        (void)f.get();
      } catch (const coring::cancelled&) {
        ++cancelled;
      }
    }
    CHECK(cancelled == 20);  // a worker holds one job at a time: the others were still ours
    CHECK(zombie_children().empty());
  }

  TEST_CASE("shutdown with jobs queued: kill stops the running ones at once" * doctest::timeout(30)) {
    const int fds_before = settled_fd_count();
    auto t0 = std::chrono::steady_clock::now();
    {
      coring::process_pool pool({.workers = 2});
      std::vector<coring::future<int>> fs;
      for (int i = 0; i < 6; ++i) fs.push_back(pool.submit(sleep_ms, 20000));
      eventually([&] { return fs[0].running() && fs[1].running(); });
      pool.shutdown({.kill = true});
      for (auto& f : fs) CHECK_THROWS_AS((void)f.get(), coring::cancelled);
    }
    CHECK(std::chrono::steady_clock::now() - t0 < 10s);
    CHECK(zombie_children().empty());
    CHECK(fd_count_returns_to(fds_before));
  }

  TEST_CASE("a coroutine awaits shutdown_async" * doctest::timeout(30)) {
    coring::process_pool pool({.workers = 2});
    auto f = pool.submit(sleep_ms, 30);
    coring::run([](coring::process_pool& p) -> coring::task<void> { co_await p.shutdown_async(); }(pool));
    CHECK(f.ready());
    CHECK(f.get() == 30);
    CHECK(pool.worker_pids().empty());
  }

  TEST_CASE("parent killed: its workers, fork server and standby exit within a second" * doctest::timeout(30)) {
    int p[2];
    REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
    int child_fd = ::dup(p[1]);  // not CLOEXEC: the victim writes to it
    pid_t victim = spawn_self_with("CORING_PROCESS_POOL_TEST_CHILD=" + std::to_string(child_fd));
    REQUIRE(victim > 0);
    ::close(child_fd);
    ::close(p[1]);
    std::string text;
    char buf[256];
    pollfd pfd{p[0], POLLIN, 0};
    while (text.find('\n') == std::string::npos && ::poll(&pfd, 1, 10000) == 1) {
      ssize_t n = ::read(p[0], buf, sizeof buf);
      if (n <= 0) break;
      text.append(buf, static_cast<std::size_t>(n));
    }
    ::close(p[0]);
    std::istringstream in(text);
    std::vector<int> pids;
    for (int x; in >> x;) pids.push_back(x);
    REQUIRE(pids.size() == 4);  // two workers, the fork server and its standby
    for (int pid : pids) CHECK(!exited(pid));
    ::kill(victim, SIGKILL);
    int status = 0;
    ::waitpid(victim, &status, 0);
    auto t0 = std::chrono::steady_clock::now();
    CHECK(eventually([&] {
      for (int pid : pids)
        if (!exited(pid)) return false;
      return true;
    }, 1000ms));
    CHECK(std::chrono::steady_clock::now() - t0 < 1100ms);
  }

  TEST_CASE("without start_fork_server the pool starts it lazily, and refuses once other threads exist" *
            doctest::timeout(30)) {
    for (const char* mode : {"ok", "refuse"}) {
      CAPTURE(mode);
      pid_t child = spawn_self_with(std::string("CORING_PROCESS_POOL_TEST_LAZY=") + mode);
      REQUIRE(child > 0);
      int status = -1;
      REQUIRE(::waitpid(child, &status, 0) == child);
      CHECK(WIFEXITED(status));
      CHECK(WEXITSTATUS(status) == 0);
    }
  }

  TEST_CASE("8 MiB arguments and results round-trip" * doctest::timeout(30)) {
    coring::process_pool pool({.workers = 1});
    std::string big(8u << 20, '\0');
    for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + (i * 7919) % 26);
    std::string back = pool.submit(reverse_copy, big).get();
    REQUIRE(back.size() == big.size());
    CHECK(std::equal(big.begin(), big.end(), back.rbegin()));
    // and again, so that the worker's reused buffers are exercised
    CHECK(pool.submit(reverse_copy, std::string("abc")).get() == "cba");
    CHECK(pool.submit(reverse_copy, back).get() == big);
  }

  TEST_CASE("map keeps input order with chunks and a bound on jobs in flight" * doctest::timeout(30)) {
    coring::process_pool pool({.workers = 2});
    std::vector<int> in;
    for (int i = 0; i < 100; ++i) in.push_back(i);
    std::vector<int> out = coring::run(pool.map(square, in, {.chunk_size = 7, .max_in_flight = 3}));
    REQUIRE(out.size() == 100);
    for (int i = 0; i < 100; ++i) CHECK(out[static_cast<std::size_t>(i)] == i * i);
    std::vector<long> fibs = coring::run(pool.map(fib, std::vector<int>{10, 20, 25}));
    CHECK(fibs == std::vector<long>{55, 6765, 75025});
    // Caught without reading it: the map task's futures are gone by now (see the note at the top).
    bool threw = false;
    try {
      (void)coring::run(pool.map(throw_runtime, std::vector<int>{1, 2, 3}));
    } catch (const coring::remote_error&) {
      threw = true;
    }
    CHECK(threw);
  }

  TEST_CASE("jobs submitted from many threads all complete" * doctest::timeout(30)) {
    coring::process_pool pool({.workers = 2});
    std::vector<std::thread> ts;
    std::atomic<int> ok{0};
    for (int t = 0; t < 4; ++t) {
      ts.emplace_back([&, t] {
        for (int i = 0; i < 200; ++i)
          if (pool.submit(square, t * 1000 + i).get() == (t * 1000 + i) * (t * 1000 + i)) ++ok;
      });
    }
    for (auto& t : ts) t.join();
    CHECK(ok.load() == 800);
  }

  TEST_CASE("a lazily started fork server and its workers keep no descriptor of the application's" *
            doctest::timeout(30)) {
    // The listener closed by the application must not stay bound in the pool's processes.
    CHECK(run_self_with("CORING_PROCESS_POOL_TEST_LAZY=descriptors") == 0);
  }

  TEST_CASE("the fork server and workers start with default signal dispositions, no blocked signal, "
            "and SIGINT ignored" * doctest::timeout(30)) {
    CHECK(run_self_with("CORING_PROCESS_POOL_TEST_LAZY=signals") == 0);
  }

  TEST_CASE("the terminal's Ctrl-C (SIGINT) kills neither the fork server nor a worker" * doctest::timeout(30)) {
    coring::process_pool pool({.workers = 1, .max_tasks_per_child = 2});
    int pid = pool.submit(my_pid).get();
    int server = coring::detail::fork_server_pid();
    ::kill(pid, SIGINT);
    ::kill(server, SIGINT);
    std::this_thread::sleep_for(50ms);
    CHECK(pool.submit(my_pid).get() == pid);     // the worker lived (its second and last job)
    CHECK(pool.submit(my_pid).get() != pid);     // a new worker, forked by the same server
    CHECK(coring::detail::fork_server_pid() == server);
    CHECK(!exited(server));
  }

  TEST_CASE("a job cancelled before it starts never runs, and running() and cancel() say so" *
            doctest::timeout(30)) {
    temp_dir dir;
    const std::string marker = dir.file("ran");
    coring::process_pool pool({.workers = 1});
    (void)pool.submit(my_pid).get();
    auto a = pool.submit(sleep_ms, 300);
    auto b = pool.submit(touch, marker);
    std::this_thread::sleep_for(100ms);
    CHECK(a.running());
    CHECK_FALSE(b.running());
    CHECK(b.cancel());
    CHECK_THROWS_AS((void)b.get(), coring::cancelled);
    CHECK(a.get() == 300);
    CHECK(pool.submit(square, 2).get() == 4);  // the worker is past where b would have run
    CHECK_FALSE(file_exists(marker));
  }

  TEST_CASE("a task awaiting a process-pool job gets one cancellation, running or queued" *
            doctest::timeout(30)) {
    coring::process_pool pool({.workers = 1});
    (void)pool.submit(my_pid).get();
    // Running: the worker is killed and replaced; the task sees cancelled once.
    coring_test::expect_cancelled_once([&]() -> coring::task<> { (void)co_await pool.submit(sleep_ms, 5000); });
    // Queued behind a running job: dropped from the queue, never run.
    auto blocker = pool.submit(sleep_ms, 200);
    coring_test::expect_cancelled_once([&]() -> coring::task<> { (void)co_await pool.submit(square, 3); });
    CHECK(blocker.get() == 200);
    CHECK(pool.submit(square, 4).get() == 16);
  }

  TEST_CASE("cancelling a running job just as it completes never cancels the job behind it" *
            doctest::timeout(60)) {
    coring::process_pool pool({.workers = 1});
    std::mt19937 rng(12);
    std::uniform_int_distribution<int> jitter_us(0, 6000);
    const int tries = long_stress() ? 2000 : 150;
    int values = 0, cancels = 0;
    for (int i = 0; i < tries; ++i) {
      CAPTURE(i);
      auto x = pool.submit(sleep_ms, 3);
      auto y = pool.submit(square, i);
      std::this_thread::sleep_for(std::chrono::microseconds(jitter_us(rng)));
      (void)x.cancel();
      int x_value = -1;
      try {
        x_value = x.get();
        ++values;
      } catch (const coring::cancelled&) {
        ++cancels;
        x_value = 3;
      }
      CHECK(x_value == 3);
      // y was not cancelled: it ends with its value, whatever became of x.
      int got = -1;
      try {
        got = y.get();
      } catch (const coring::cancelled&) {
        FAIL("the job behind the cancelled one ended cancelled");
      }
      CHECK(got == i * i);
    }
    MESSAGE(values << " ran to the end, " << cancels << " cancelled");
    CHECK(values + cancels == tries);
  }

  TEST_CASE("from a coroutine, cancelling a running job leaves the next job's result intact" *
            doctest::timeout(60)) {
    coring::process_pool pool({.workers = 1});
    int ok = coring::run([](coring::process_pool& p) -> coring::task<int> {
      int good = 0;
      for (int i = 0; i < 60; ++i) {
        auto x = p.submit(sleep_ms, 2);
        auto y = p.submit(square, i);
        co_await coring::sleep_for(std::chrono::microseconds(100 * (i % 40)));
        (void)x.cancel();
        good += (co_await y == i * i) ? 1 : 0;  // a stray cancelled would escape run() here
        try {
          (void)co_await x;
        } catch (const coring::cancelled&) {
        }
      }
      co_return good;
    }(pool));
    CHECK(ok == 60);
  }

  TEST_CASE("under a mix with 1% aborting jobs, each job runs once and ends with its own outcome" *
            doctest::timeout(120)) {
    temp_dir dir;
    const std::string log = dir.file("log");
    const int rounds = long_stress() ? 5 : 1;
    const int jobs = long_stress() ? 10000 : 1500;
    std::mt19937 rng(1234);
    for (int round = 0; round < rounds; ++round) {
      CAPTURE(round);
      ::unlink(log.c_str());
      coring::process_pool pool({.workers = 2});
      std::vector<coring::future<int>> fs;
      std::vector<bool> crash;
      for (int i = 0; i < jobs; ++i) {
        crash.push_back(rng() % 100 == 0);
        fs.push_back(pool.submit(logged_job, log, i, crash.back()));
      }
      int wrong = 0, aborted = 0;
      for (int i = 0; i < jobs; ++i) {
        auto k = static_cast<std::size_t>(i);
        try {
          int v = fs[k].get();
          if (crash[k] || v != 2 * i) ++wrong;
        } catch (const coring::broken_worker& e) {
          if (!crash[k] || e.signal() != SIGABRT) ++wrong;
          ++aborted;
        }
      }
      CHECK(wrong == 0);
      CHECK(aborted == static_cast<int>(std::count(crash.begin(), crash.end(), true)));
      pool.shutdown();
      std::map<int, int> runs;
      std::istringstream in(read_file(log));
      for (int id; in >> id;) ++runs[id];
      int not_once = 0;
      for (int i = 0; i < jobs; ++i) not_once += runs[i] == 1 ? 0 : 1;
      CHECK(not_once == 0);  // no job lost, none run twice (a crashing one is not retried)
    }
    CHECK(zombie_children().empty());
  }

  TEST_CASE("jobs queued behind a stopped worker's job go to the other worker, and cancelling it still works" *
            doctest::timeout(30)) {
    temp_dir dir;
    const std::string pid_file = dir.file("pid");
    coring::process_pool pool({.workers = 2});
    wait_for_workers(pool, 2);
    auto stuck = pool.submit(announce_and_sleep, pid_file, 20000);
    int stopped = 0;
    REQUIRE(eventually([&] { return (stopped = std::atoi(read_file(pid_file).c_str())) > 0; }));
    ::kill(stopped, SIGSTOP);
    std::vector<coring::future<int>> fs;
    for (int i = 0; i < 40; ++i) fs.push_back(pool.submit(square, i));
    auto deadline = std::chrono::steady_clock::now() + 5s;
    int done = 0;
    for (int i = 0; i < 40; ++i) {
      auto& f = fs[static_cast<std::size_t>(i)];
      if (f.wait_for(std::max(deadline - std::chrono::steady_clock::now(), std::chrono::steady_clock::duration{0})) &&
          f.get() == i * i)
        ++done;
    }
    CHECK(done == 40);
    CHECK_FALSE(stuck.cancel());  // running (stopped): its worker is killed
    CHECK_THROWS_AS((void)stuck.get(), coring::cancelled);
    CHECK(pool.submit(square, 9).get() == 81);
  }

  TEST_CASE("cancelling 20,000 queued jobs ends each with cancelled and runs none" * doctest::timeout(60)) {
    temp_dir dir;
    const std::string log = dir.file("log");
    coring::process_pool pool({.workers = 1});
    auto first = pool.submit(sleep_ms, 20000);
    REQUIRE(eventually([&] { return first.running(); }));
    std::vector<coring::future<int>> fs;
    for (int i = 0; i < 20000; ++i) fs.push_back(pool.submit(logged_job, log, i, false));
    int refused = 0;
    for (auto& f : fs) refused += f.cancel() ? 0 : 1;
    CHECK(refused == 0);
    int cancelled = 0;
    for (auto& f : fs) {
      try {
        (void)f.get();
      } catch (const coring::cancelled&) {
        ++cancelled;
      }
    }
    CHECK(cancelled == 20000);
    CHECK_FALSE(first.cancel());
    CHECK_THROWS_AS((void)first.get(), coring::cancelled);
    CHECK(pool.submit(square, 3).get() == 9);
    CHECK_FALSE(file_exists(log));
  }

  TEST_CASE("a cancel racing with the pool's destruction is safe" * doctest::timeout(120)) {
    // The cancel hook runs on the cancelling thread after the future's lock is
    // released: it must not reach a pool destroyed meanwhile (ASan tells).
    std::mt19937 rng(7);
    std::uniform_int_distribution<int> jitter_us(0, 3000);
    const int tries = long_stress() ? 1000 : 40;
    for (int i = 0; i < tries; ++i) {
      CAPTURE(i);
      auto pool = std::make_unique<coring::process_pool>(coring::process_pool_options{.workers = 1});
      auto f = pool->submit(sleep_ms, 2);
      const int delay = jitter_us(rng);
      std::thread canceller([&] {
        std::this_thread::sleep_for(std::chrono::microseconds(delay));
        (void)f.cancel();
      });
      pool.reset();  // waits for the job (or its cancellation), then destroys the pool
      canceller.join();
      REQUIRE(f.ready());
      int v = 2;  // or cancelled
      try {
        v = f.get();
      } catch (const coring::cancelled&) {
      }
      CHECK(v == 2);
    }
  }

  TEST_CASE("a dead fork server is reaped and its standby takes over, pools go on" * doctest::timeout(30)) {
    const int fds_before = settled_fd_count();
    {
      coring::process_pool pool({.workers = 1, .max_tasks_per_child = 1});
      CHECK(pool.submit(square, 2).get() == 4);
      const int server = coring::detail::fork_server_pid();
      const int standby = coring::detail::fork_server_standby_pid();
      REQUIRE(server > 0);
      REQUIRE(standby > 0);
      ::kill(server, SIGKILL);
      // Seen through the pool's ring and reaped at once, with no job asking for a worker.
      CHECK(eventually([&] { return coring::detail::fork_server_pid() == standby; }));
      CHECK(eventually([] { return zombie_children().empty(); }));
      const int spare = coring::detail::fork_server_standby_pid();
      CHECK(spare > 0);
      CHECK(spare != standby);
      for (int i = 0; i < 3; ++i) CHECK(pool.submit(square, i).get() == i * i);  // each on a new worker
      // And again: the new server dies while a worker is being asked for.
      ::kill(standby, SIGKILL);
      for (int i = 0; i < 3; ++i) CHECK(pool.submit(square, i).get() == i * i);
      CHECK(coring::detail::fork_server_pid() == spare);
      CHECK_FALSE(pool.broken());
      CHECK(eventually([] { return zombie_children().empty(); }));
    }
    CHECK(fd_count_returns_to(fds_before));
  }

  TEST_CASE("killing the fork server again and again while workers start loses no job and leaves no zombie" *
            doctest::timeout(120)) {
    const int fds_before = settled_fd_count();
    {
      // A server killed between cloning a worker and telling us about it leaves
      // a child of ours that no one else knows: it must be reaped too.
      coring::process_pool pool({.workers = 2, .max_tasks_per_child = 1});  // every job needs a new worker
      std::mt19937 rng(99);
      std::uniform_int_distribution<int> jitter_us(0, 2000);
      const int rounds = long_stress() ? 200 : 15;
      for (int round = 0; round < rounds; ++round) {
        CAPTURE(round);
        REQUIRE(eventually([] { return coring::detail::fork_server_standby_pid() > 0; }));
        std::vector<coring::future<int>> fs;
        for (int i = 0; i < 6; ++i) fs.push_back(pool.submit(square, i));
        std::this_thread::sleep_for(std::chrono::microseconds(jitter_us(rng)));
        ::kill(coring::detail::fork_server_pid(), SIGKILL);
        for (int i = 0; i < 6; ++i) CHECK(fs[static_cast<std::size_t>(i)].get() == i * i);
      }
      CHECK_FALSE(pool.broken());
      CHECK(eventually([] { return zombie_children().empty(); }));
    }
    CHECK(fd_count_returns_to(fds_before));
  }

  TEST_CASE("when the fork server and its standby die together, a pool needing a worker breaks, naming them" *
            doctest::timeout(30)) {
    CHECK(run_self_with("CORING_PROCESS_POOL_TEST_SERVERS_LOST=1") == 0);
  }

  TEST_CASE("a worker reaped by someone else fails its job at once with its exit status lost" *
            doctest::timeout(30)) {
    const int fds_before = settled_fd_count();
    {
      coring::process_pool pool({.workers = 1});
      int pid = pool.submit(my_pid).get();
      // SIGCHLD ignored: the kernel reaps children itself, before the pool can.
      struct sigaction ignore {}, saved {};
      ignore.sa_handler = SIG_IGN;
      ::sigaction(SIGCHLD, &ignore, &saved);
      auto f = pool.submit(exit3_job);
      f.wait();
      ::sigaction(SIGCHLD, &saved, nullptr);
      try {
        (void)f.get();
        FAIL("no exception");
      } catch (const coring::broken_worker& e) {
        CHECK(e.pid() == pid);
        CHECK(e.status_lost());
        CHECK(std::string(e.what()).find("exit status was lost") != std::string::npos);
        CHECK(std::string(e.what()).find("exit3_job") != std::string::npos);
      }
      CHECK(pool.submit(square, 4).get() == 16);  // replaced; the pool goes on
      CHECK(zombie_children().empty());
    }
    CHECK(fd_count_returns_to(fds_before));
  }

  TEST_CASE("a registered job travels by name: results, errors and map chunks name it so" *
            doctest::timeout(30)) {
    coring::process_pool pool({.workers = 2});
    CHECK(pool.submit(triple, 14).get() == 42);
    auto failing = pool.submit(throws_registered, 1);  // outlives the catch: see the note at the top
    try {
      (void)failing.get();
      FAIL("no exception");
    } catch (const coring::remote_error& e) {
      CHECK(e.function() == "tests.throws");
      CHECK(e.type_name() == "std::logic_error");
      CHECK(e.message() == "registered and thrown");
    }
    std::vector<int> out = coring::run(pool.map(triple, std::vector<int>{1, 2, 3, 4, 5}, {.chunk_size = 2}));
    CHECK(out == std::vector<int>{3, 6, 9, 12, 15});
  }

  TEST_CASE("a process runs a job it receives by name, with no address from the sender" * doctest::timeout(10)) {
    namespace d = coring::detail;
    REQUIRE(d::find_registered_job("triple") != nullptr);
    CHECK((d::find_registered_job("triple")->fn == reinterpret_cast<void (*)()>(&triple)));
    coring::byte_writer out;
    d::run_registered_job("triple", false, coring::encode_all(5), out);
    CHECK(std::get<0>(coring::decode_all<int>(out.view())) == 15);
    out.clear();
    d::run_registered_job("triple", true, coring::encode_all(std::vector<int>{1, 2}), out);  // a map chunk
    CHECK(std::get<0>(coring::decode_all<std::vector<int>>(out.view())) == std::vector<int>{3, 6});
    out.clear();
    d::run_registered_job("tests.twice", false, coring::encode_all(std::string("ab")), out);
    CHECK(std::get<0>(coring::decode_all<std::string>(out.view())) == "abab");
    CHECK(d::find_registered_job("throws_registered") == nullptr);  // registered under its other name
    CHECK_THROWS_WITH_AS(d::run_registered_job("no.such.job", false, {}, out),
                         doctest::Contains("no job named \"no.such.job\""), coring::error);
    CHECK_THROWS_AS(d::run_registered_job("triple", false, "\x01", out), coring::decode_error);
  }

  TEST_CASE("a worker runs a job sent by its registered name alone, with no address" * doctest::timeout(30)) {
    // What a process not forked from this image sends: names, never addresses.
    namespace d = coring::detail;
    d::spawned w = d::spawn_worker(nullptr, 0);
    d::receiver r;
    d::msg_header h{};
    std::string_view payload;
    REQUIRE(d::recv_message(w.sock, r, h, payload, false) == 1);
    CHECK(h.kind == d::k_ready);
    auto send_named = [&](std::uint64_t id, const std::string& name, const std::string& args) {
      d::msg_header job{d::k_job, d::f_named, id, 0, 0, static_cast<std::uint32_t>(name.size()), 0};
      return d::send_message(w.sock, job, name, args, false).err;
    };
    REQUIRE(send_named(7, "tests.quadruple", coring::encode_all(5)) == 0);
    REQUIRE(d::recv_message(w.sock, r, h, payload, false) == 1);
    CHECK(h.kind == d::k_result);
    CHECK(h.id == 7);
    CHECK(std::get<0>(coring::decode_all<int>(payload)) == 20);
    // A name it does not know, and no address to fall back on: the job fails, the worker lives.
    REQUIRE(send_named(8, "tests.unknown", coring::encode_all(5)) == 0);
    REQUIRE(d::recv_message(w.sock, r, h, payload, false) == 1);
    CHECK(h.kind == d::k_raised);
    CHECK(h.id == 8);
    auto [type, message] = coring::decode_all<std::string, std::string>(payload);
    CHECK(type == "coring::error");
    CHECK(message.find("no job named \"tests.unknown\"") != std::string::npos);
    REQUIRE(send_named(9, "tests.quadruple", coring::encode_all(6)) == 0);
    REQUIRE(d::recv_message(w.sock, r, h, payload, false) == 1);
    CHECK(std::get<0>(coring::decode_all<int>(payload)) == 24);
    ::close(w.sock);  // end of stream: the worker exits
    siginfo_t si{};
    CHECK(::waitid(P_PIDFD, static_cast<id_t>(w.pidfd), &si, WEXITED) == 0);
    CHECK(si.si_code == CLD_EXITED);
    CHECK(si.si_status == 0);
    ::close(w.pidfd);
  }

  TEST_CASE("a job whose code is not loaded in the worker fails with remote_error, the worker lives" *
            doctest::timeout(30)) {
    // What a function of a library dlopen()ed after start_fork_server() looks like to a worker.
    auto* not_loaded = reinterpret_cast<int (*)(int)>(std::uintptr_t{0x1000});
    coring::process_pool pool({.workers = 1});
    int pid = pool.submit(my_pid).get();
    auto failing = pool.submit(not_loaded, 1);  // outlives the catch: see the note at the top
    try {
      (void)failing.get();
      FAIL("no exception");
    } catch (const coring::remote_error& e) {
      CHECK(e.message().find("not loaded in the worker") != std::string::npos);
      CHECK(e.function() == "job at 0x1000");
    }
    CHECK(pool.submit(my_pid).get() == pid);
  }

  TEST_CASE("large arguments whose memfd cannot be made fail that job with EMFILE, the worker lives" *
            doctest::timeout(30)) {
    const int fds_before = settled_fd_count();
    {
      coring::process_pool pool({.workers = 1});
      int pid = pool.submit(my_pid).get();
      // A small job of the same type first: UBSan's first check of a dynamic
      // type tests memory through a pipe, which it cannot make out of
      // descriptors (it then reports an "invalid vptr" that is not there).
      CHECK(pool.submit(reverse_copy, std::string("ab")).get() == "ba");
      coring::future<std::string> f;
      {
        no_free_descriptors limit;  // (only wait under it: see no_free_descriptors)
        f = pool.submit(reverse_copy, std::string(100000, 'a'));
        f.wait();
      }
      CHECK(io_errno_of(f) == EMFILE);
      CHECK(pool.submit(my_pid).get() == pid);
      CHECK(pool.submit(reverse_copy, std::string(100000, 'b')).get().size() == 100000);
      CHECK(!pool.broken());
    }
    CHECK(fd_count_returns_to(fds_before));
  }

  TEST_CASE("a large result whose memfd cannot be received fails that job with EMFILE, the worker lives" *
            doctest::timeout(30)) {
    const int fds_before = settled_fd_count();
    {
      coring::process_pool pool({.workers = 1});
      int pid = pool.submit(my_pid).get();
      CHECK(pool.submit(make_string, std::size_t{2}).get().size() == 2);  // UBSan's type check: see above
      coring::future<std::string> f;
      {
        no_free_descriptors limit;
        f = pool.submit(make_string, std::size_t{100000});
        f.wait();
      }
      CHECK(io_errno_of(f) == EMFILE);
      CHECK(pool.submit(my_pid).get() == pid);
      CHECK(pool.submit(make_string, std::size_t{100000}).get().size() == 100000);
    }
    CHECK(fd_count_returns_to(fds_before));
  }

  TEST_CASE("EMFILE while receiving a new worker's descriptors fails the job, leaves no zombie, and the pool "
            "recovers" * doctest::timeout(30)) {
    const int fds_before = settled_fd_count();
    // Below the pool's own descriptors: those its dead worker frees cannot be reused.
    const int below_the_pool = lowest_free_descriptor();
    {
      coring::process_pool pool({.workers = 1});
      int pid = pool.submit(my_pid).get();
      coring::future<int> f;
      {
        no_free_descriptors limit(below_the_pool);
        ::kill(pid, SIGKILL);  // its replacement's descriptors cannot be received
        while (::kill(pid, 0) == 0) std::this_thread::sleep_for(1ms);  // until reaped (/proc is out of reach)
        f = pool.submit(square, 3);
        f.wait();
      }
      CHECK(io_errno_of(f) == EMFILE);
      CHECK(eventually([] { return zombie_children().empty(); }));
      CHECK_FALSE(pool.broken());
      int pid2 = pool.submit(my_pid).get();
      CHECK(pid2 != pid);
      CHECK(zombie_children().empty());
    }
    CHECK(fd_count_returns_to(fds_before));
  }

  TEST_CASE("a look-ahead job cancelled before its worker begins it never runs, and cancel() and running() say so" *
            doctest::timeout(30)) {
    temp_dir dir;
    const std::string marker_b = dir.file("b"), marker_d = dir.file("d");
    coring::process_pool pool({.workers = 1});
    (void)pool.submit(my_pid).get();
    auto a = pool.submit(sleep_ms, 300);
    auto b = pool.submit(touch, marker_b);
    auto c = pool.submit(sleep_ms, 200);
    auto d = pool.submit(touch, marker_d);
    // Written to the busy worker behind a, not begun.
    REQUIRE(eventually([&] { return handed(b) && handed(c) && handed(d); }));
    CHECK(a.running());
    CHECK_FALSE(b.running());
    CHECK_FALSE(c.running());
    CHECK(b.cancel());
    CHECK(d.cancel());
    CHECK_FALSE(b.running());
    CHECK_THROWS_AS((void)b.get(), coring::cancelled);
    CHECK_THROWS_AS((void)d.get(), coring::cancelled);
    CHECK(a.get() == 300);
    // The worker claims c and runs it: running() turns true before any reply.
    REQUIRE(eventually([&] { return c.running(); }));
    CHECK(c.get() == 200);
    CHECK(pool.submit(square, 2).get() == 4);  // the worker is past where b and d would have run
    CHECK_FALSE(file_exists(marker_b));
    CHECK_FALSE(file_exists(marker_d));
  }

  TEST_CASE("a cancel racing with the worker's claim of a look-ahead job: it ran, or it was cancelled and never ran" *
            doctest::timeout(120)) {
    temp_dir dir;
    const std::string log = dir.file("log");
    coring::process_pool pool({.workers = 1});
    (void)pool.submit(my_pid).get();
    std::mt19937 rng(21);
    std::uniform_int_distribution<int> jitter_us(0, 4000);
    const int tries = long_stress() ? 2000 : 200;
    int stopped = 0, ran = 0, killed = 0, were_handed = 0;
    std::vector<int> promised;  // cancel() returned true: these must never run
    for (int i = 0; i < tries; ++i) {
      CAPTURE(i);
      auto x = pool.submit(sleep_ms, 3);
      auto y = pool.submit(logged_job, log, i, false);
      auto z = pool.submit(square, i);
      // As soon as y leaves the pool's queue (eventually() would poll too slowly).
      const auto give_up = std::chrono::steady_clock::now() + 5s;
      while (y.state()->current_stage() == coring::detail::future_state_base::stage::pending &&
             std::chrono::steady_clock::now() < give_up) {
        std::this_thread::yield();
      }
      were_handed += handed(y) ? 1 : 0;
      std::this_thread::sleep_for(std::chrono::microseconds(jitter_us(rng)));
      const bool stop = y.cancel();
      try {
        int v = y.get();
        CHECK_FALSE(stop);
        CHECK(v == 2 * i);
        ++ran;
      } catch (const coring::cancelled&) {
        if (stop) {
          ++stopped;
          promised.push_back(i);
        } else {
          ++killed;  // it had begun: its worker was killed
        }
      }
      // Nobody cancelled x or z: each ends with its value, whatever became of y.
      CHECK(x.get() == 3);
      CHECK(z.get() == i * i);
    }
    pool.shutdown();
    std::map<int, int> runs = runs_in_log(log);
    int broken_promises = 0, twice = 0;
    for (int i : promised) broken_promises += runs[i] == 0 ? 0 : 1;
    for (auto& [id, n] : runs) twice += n > 1 ? 1 : 0;
    MESSAGE(were_handed << " handed; " << stopped << " stopped before they began, " << ran << " ran, " << killed
                        << " killed running");
    CHECK(broken_promises == 0);
    CHECK(twice == 0);
    CHECK(stopped + ran + killed == tries);
    CHECK(were_handed > 0);
    CHECK(stopped > 0);
  }

  TEST_CASE("a worker killed with look-ahead jobs queued behind its job: each of them runs exactly once elsewhere" *
            doctest::timeout(60)) {
    temp_dir dir;
    const std::string log = dir.file("log");
    const std::string pid_file = dir.file("pid");
    coring::process_pool pool({.workers = 1});
    (void)pool.submit(my_pid).get();
    int id = 0;
    for (const bool by_cancel : {false, true}) {
      CAPTURE(by_cancel);
      ::unlink(pid_file.c_str());
      auto stuck = pool.submit(announce_and_sleep, pid_file, 20000);
      int pid = 0;
      REQUIRE(eventually([&] { return (pid = std::atoi(read_file(pid_file).c_str())) > 0; }));
      std::vector<coring::future<int>> fs;
      std::vector<int> ids;
      for (int i = 0; i < 6; ++i) {
        ids.push_back(id);
        fs.push_back(pool.submit(logged_job, log, id++, false));
      }
      // A few are written ahead to the stuck worker (the rest wait in the pool).
      int n_handed = 0;
      REQUIRE(eventually([&] {
        n_handed = 0;
        for (auto& f : fs) n_handed += handed(f) ? 1 : 0;
        return n_handed >= 4;
      }));
      if (by_cancel) {
        CHECK_FALSE(stuck.cancel());  // running: its worker is killed
        CHECK_THROWS_AS((void)stuck.get(), coring::cancelled);
      } else {
        ::kill(pid, SIGKILL);
        CHECK_THROWS_AS((void)stuck.get(), coring::broken_worker);
      }
      for (std::size_t k = 0; k < fs.size(); ++k) CHECK(fs[k].get() == 2 * ids[k]);
    }
    pool.shutdown();
    std::map<int, int> runs = runs_in_log(log);
    for (int i = 0; i < id; ++i) {
      CAPTURE(i);
      CHECK(runs[i] == 1);
    }
    CHECK(zombie_children().empty());
  }

  TEST_CASE("under random cancels with look-ahead, each job ends once, as its cancel() said" * doctest::timeout(120)) {
    temp_dir dir;
    const std::string log = dir.file("log");
    const int jobs = long_stress() ? 20000 : 2000;
    std::mt19937 rng(99);
    coring::process_pool pool({.workers = 2});
    std::vector<coring::future<int>> fs;
    std::vector<int> asked(static_cast<std::size_t>(jobs), -1);  // -1 not cancelled; else cancel()'s answer
    for (int i = 0; i < jobs; ++i) {
      fs.push_back(pool.submit(logged_job, log, i, false));
      if (rng() % 8 == 0) {
        // Cancel one of the last few: queued, handed, running or done.
        auto k = static_cast<std::size_t>(std::max(0, i - static_cast<int>(rng() % 12)));
        if (asked[k] != 1) asked[k] = fs[k].cancel() ? 1 : 0;
      }
      if (rng() % 64 == 0) std::this_thread::sleep_for(std::chrono::microseconds(rng() % 500));
    }
    int wrong = 0, stopped = 0, killed = 0;
    for (int i = 0; i < jobs; ++i) {
      auto k = static_cast<std::size_t>(i);
      try {
        int v = fs[k].get();
        if (v != 2 * i || asked[k] == 1) ++wrong;
      } catch (const coring::cancelled&) {
        if (asked[k] == -1) ++wrong;  // nobody cancelled it
        ++(asked[k] == 1 ? stopped : killed);
      }
    }
    pool.shutdown();
    std::map<int, int> runs = runs_in_log(log);
    int bad_runs = 0;
    for (int i = 0; i < jobs; ++i) {
      auto k = static_cast<std::size_t>(i);
      if (runs[i] > 1 || (asked[k] == 1 && runs[i] != 0) || (asked[k] == -1 && runs[i] != 1)) ++bad_runs;
    }
    MESSAGE(stopped << " stopped before they began, " << killed << " killed running");
    CHECK(wrong == 0);
    CHECK(bad_runs == 0);
    CHECK(zombie_children().empty());
  }

  TEST_CASE("a reply queued before its worker died is read after the ECONNRESET that reports the death" *
            doctest::timeout(10)) {
    // A unix socket closed with data unread makes its peer's next recvmsg fail
    // with ECONNRESET even though replies are still queued for that peer.
    namespace d = coring::detail;
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
    const int manager = sv[0], worker = sv[1];
    CHECK(d::send_message(manager, {d::k_job, 0, 2, 0, 0, 0, 0}, "the next job").err == 0);  // never read
    CHECK(d::send_message(worker, {d::k_result, 0, 1, 0, 0, 0, 0}, "the reply").err == 0);
    ::close(worker);  // the worker dies
    d::receiver r;
    d::msg_header h{};
    std::string_view payload;
    CHECK(d::recv_message(manager, r, h, payload, true) == 1);
    CHECK(h.kind == d::k_result);
    CHECK(h.id == 1);
    CHECK(payload == "the reply");
    CHECK(d::recv_message(manager, r, h, payload, true) == 0);  // then end of stream
    ::close(manager);
  }
}
