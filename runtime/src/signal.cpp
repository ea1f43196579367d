#include <coring/signal.hpp>

#include <coring/detail/loop_access.hpp>
#include <coring/error.hpp>
#include <coring/event_loop.hpp>
#include <coring/io.hpp>

#include <pthread.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace coring {

namespace detail {

// One watched signal on one loop: the signal is blocked on the loop's thread
// and read from a signalfd through the ring by a task of the loop (the
// watcher), whose frame owns this object. Loop thread only.
class signal_watch {
 public:
  /// The watch of `signo` on `loop`, made (and its watcher started) if there is none.
  /// **Errors:** coring::error for a signal that cannot be watched; io_error from signalfd.
  static signal_watch& of(event_loop& loop, int signo);
  /// The watch of `signo` on `loop`, or null.
  static signal_watch* find(event_loop* loop, int signo) noexcept;

  signal_watch(event_loop& loop, int signo);
  ~signal_watch();
  signal_watch(const signal_watch&) = delete;
  signal_watch& operator=(const signal_watch&) = delete;

  /// Takes a signal that came while nobody waited; false if none.
  bool take_pending() noexcept {
    if (!pending_) return false;
    pending_ = false;
    return true;
  }
  void add(signal_operation& w) noexcept;
  void remove(signal_operation& w) noexcept;
  /// Called (on the loop thread) for a signal that arrives while no task awaits it.
  void set_fallback(void (*fn)(void*) noexcept, void* ctx) noexcept {
    fallback_ = fn;
    fallback_ctx_ = ctx;
  }
  [[nodiscard]] void* fallback_ctx() const noexcept { return fallback_ctx_; }
  /// Ends the watch: the watcher is cancelled, the signal gets its old mask back.
  void stop() noexcept {
    if (watcher_) request_cancel(*watcher_);
  }
  /// A signal was read: wake every waiter, else call the fallback, else keep it.
  void deliver() noexcept;

  [[nodiscard]] int fd() const noexcept { return fd_; }
  [[nodiscard]] int signo() const noexcept { return signo_; }
  void set_watcher(task_node& n) noexcept { watcher_ = &n; }

 private:
  static std::vector<signal_watch*>& registry() {
    thread_local std::vector<signal_watch*> watches;  // loops and their watched signals, on this thread
    return watches;
  }

  event_loop* loop_;                  // whose ring reads the signalfd
  int signo_;                         // the signal
  int fd_ = -1;                       // its signalfd (CLOEXEC, NONBLOCK)
  bool we_blocked_ = false;           // it was unblocked on this thread before us
  bool pending_ = false;              // it came while nobody waited
  signal_operation* head_ = nullptr;  // waiting tasks, oldest first
  signal_operation* tail_ = nullptr;
  task_node* watcher_ = nullptr;                // the watcher task's node
  void (*fallback_)(void*) noexcept = nullptr;  // told when nobody waits (coring::run's SIGINT)
  void* fallback_ctx_ = nullptr;
};

namespace {

std::string signal_name(int signo) {
  const char* abbrev = ::sigabbrev_np(signo);
  return abbrev ? std::string("SIG") + abbrev : "signal " + std::to_string(signo);
}

// "coring: SIGINT watcher": task names need static storage.
const char* watcher_name(int signo) {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> all;
    for (int s = 0; s < NSIG; ++s) all.push_back("coring: " + signal_name(s) + " watcher");
    return all;
  }();
  return names[static_cast<std::size_t>(signo)].c_str();
}

// The watcher: reads the signalfd through the ring until the loop ends (its
// shutdown cancels us) or stop() is called. Owns the watch.
task<> watch_signal(std::unique_ptr<signal_watch> watch) {
  signalfd_siginfo info{};
  for (;;) {
    std::size_t n = co_await read_some(watch->fd(), std::as_writable_bytes(std::span(&info, 1)));
    if (n == sizeof info) watch->deliver();
  }
}

}  // namespace

signal_watch* signal_watch::find(event_loop* loop, int signo) noexcept {
  for (signal_watch* w : registry()) {
    if (w->loop_ == loop && w->signo_ == signo) return w;
  }
  return nullptr;
}

signal_watch& signal_watch::of(event_loop& loop, int signo) {
  if (signal_watch* w = find(&loop, signo)) return *w;
  auto watch = std::make_unique<signal_watch>(loop, signo);
  signal_watch& w = *watch;
  registry().reserve(registry().size() +
                     1);  // so that the destructor's erase and this push cannot fail half-way
  auto t = watch_signal(std::move(watch));  // the frame owns the watch from here on
  auto h = start_spawned(loop, t, watcher_name(signo));
  w.set_watcher(h.promise().own_node_);
  release_spawned(h.promise(), h.address());  // detached: it ends with the loop
  registry().push_back(&w);
  return w;
}

signal_watch::signal_watch(event_loop& loop, int signo) : loop_(&loop), signo_(signo) {
  if (signo <= 0 || signo >= NSIG || signo == SIGKILL || signo == SIGSTOP || signo == SIGSEGV ||
      signo == SIGBUS || signo == SIGFPE || signo == SIGILL) {
    throw error("coring::signal: " + signal_name(signo) + " cannot be waited for");
  }
  sigset_t set, old;
  sigemptyset(&set);
  sigaddset(&set, signo);
  // Blocked first, so that from now on it stays pending for the signalfd
  // instead of taking its default action on this thread.
  pthread_sigmask(SIG_BLOCK, &set, &old);
  we_blocked_ = !sigismember(&old, signo);
  fd_ = ::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (fd_ < 0) {
    const int err = errno;
    if (we_blocked_) pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
    throw io_error(err, "coring::signal: signalfd for " + signal_name(signo));
  }
}

signal_watch::~signal_watch() {
  auto& r = registry();
  std::erase(r, this);
  while (head_) {  // the loop is ending: whoever still waits is told so
    signal_operation& w = *head_;
    remove(w);
    w.state_ = signal_operation::state::closed;
    if (w.node_ && w.node_->leaf == &w) w.node_->leaf = nullptr;
    loop_access::schedule(*loop_, w.handle_);
  }
  ::close(fd_);
  if (we_blocked_) {
    // A signal that came after our last read is delivered now, with the
    // action it has without us (the default: SIGINT ends the process).
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, signo_);
    pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
  }
}

void signal_watch::add(signal_operation& w) noexcept {
  w.prev_ = tail_;
  w.next_ = nullptr;
  (tail_ ? tail_->next_ : head_) = &w;
  tail_ = &w;
  w.watch_ = this;
}

void signal_watch::remove(signal_operation& w) noexcept {
  (w.prev_ ? w.prev_->next_ : head_) = w.next_;
  (w.next_ ? w.next_->prev_ : tail_) = w.prev_;
  w.prev_ = w.next_ = nullptr;
  w.watch_ = nullptr;
}

void signal_watch::deliver() noexcept {
  if (head_) {
    while (head_) {
      signal_operation& w = *head_;
      remove(w);
      w.state_ = signal_operation::state::granted;
      if (w.node_ && w.node_->leaf == &w) w.node_->leaf = nullptr;
      loop_access::schedule(*loop_, w.handle_);
    }
  } else if (fallback_) {
    fallback_(fallback_ctx_);
  } else {
    pending_ = true;
  }
}

// ---------------------------------------------------------------- coring::run's SIGINT

sigint_handling::~sigint_handling() {
  if (!loop_) return;
  if (signal_watch* w = signal_watch::find(loop_, SIGINT); w && w->fallback_ctx() == this) {
    w->set_fallback(nullptr, nullptr);
  }
}

void sigint_handling::start(task_node& main) noexcept {
  if (::gettid() != ::getpid()) return;  // only the main thread, as asyncio.run
  struct sigaction current {};
  if (::sigaction(SIGINT, nullptr, &current) != 0) return;
  if ((current.sa_flags & SA_SIGINFO) || current.sa_handler != SIG_DFL)
    return;  // the program has its own plans
  sigset_t mask;
  pthread_sigmask(SIG_BLOCK, nullptr, &mask);
  if (sigismember(&mask, SIGINT)) return;
  event_loop* loop = event_loop::current();
  if (!loop) return;
  try {
    signal_watch& w = signal_watch::of(*loop, SIGINT);
    w.set_fallback(&on_sigint, this);
  } catch (...) {
    return;  // no signalfd: SIGINT keeps its default action
  }
  loop_ = loop;
  main_ = &main;
}

void sigint_handling::on_sigint(void* ctx) noexcept {
  auto* self = static_cast<sigint_handling*>(ctx);
  if (self->fired_) return;
  self->fired_ = true;
  request_cancel(*self->main_);
  // Stop watching: the next SIGINT gets the default action, as asyncio.run's second Ctrl-C.
  if (signal_watch* w = signal_watch::find(self->loop_, SIGINT)) {
    w->set_fallback(nullptr, nullptr);
    w->stop();
  }
}

}  // namespace detail

// ---------------------------------------------------------------- signal_operation

signal_operation::~signal_operation() {
  if (watch_) watch_->remove(*this);  // a frame destroyed while it waits (a leaked task)
}

bool signal_operation::suspend(std::coroutine_handle<> h) {
  if (node_ && node_->cancel_requested) {
    state_ = state::interrupted;
    return false;
  }
  event_loop* loop = event_loop::current();
  CORING_ASSERT(loop, "coring::signal needs an event loop on this thread");
  detail::signal_watch& w = detail::signal_watch::of(*loop, signo_);
  if (w.take_pending()) {
    state_ = state::granted;
    return false;
  }
  handle_ = h;
  w.add(*this);
  if (node_) node_->leaf = this;
  return true;
}

void signal_operation::on_cancel(detail::cancel_hook* c) noexcept {
  auto* self = static_cast<signal_operation*>(c);
  if (self->watch_) self->watch_->remove(*self);
  self->state_ = state::interrupted;
  detail::loop_access::schedule(*event_loop::current(), self->handle_);
}

void signal_operation::describe(const detail::cancel_hook& c, detail::leaf_report& out) {
  const auto& self = static_cast<const signal_operation&>(c);
  out.what = "signal " + detail::signal_name(self.signo_);
  out.frame = self.handle_;
}

const bool signal_operation::described_ = detail::register_leaf(&on_cancel, &describe);

task<> dump_tasks_on(int signo, std::FILE* out) {
  for (;;) {
    (void)co_await signal(signo);
    event_loop::current()->dump_tasks(out);
  }
}

int signal_operation::await_resume() {
  switch (state_) {
    case state::granted:
      return signo_;
    case state::interrupted:
      detail::consume_cancel(node_);
      throw cancelled{};
    case state::closed:
    case state::pending:
      break;
  }
  detail::throw_if_cancel_requested(node_);  // the loop's shutdown cancelled us
  throw error("coring::signal: the event loop ended while waiting for " + detail::signal_name(signo_));
}

}  // namespace coring
