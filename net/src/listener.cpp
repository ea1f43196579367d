#include <coring/net/listener.hpp>

#include "buffer_pool.hpp"
#include "sockets.hpp"

#include <coring/detail/loop_access.hpp>
#include <coring/error.hpp>

#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <deque>
#include <string>

namespace coring::net::detail {

namespace {
using coring::detail::loop_access;

std::int64_t now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// accept(2)'s errors that concern one connection, not the listener: accept again.
bool per_connection_error(int err) noexcept {
  switch (err) {
    case ECONNABORTED: case EPROTO: case EPERM: case ENETDOWN: case ENOPROTOOPT: case EHOSTDOWN:
    case ENONET: case EHOSTUNREACH: case EOPNOTSUPP: case ENETUNREACH: case EINTR: case EAGAIN: case ETIMEDOUT:
      return true;
    default:
      return false;
  }
}

// Out of descriptors or memory: the situation passes only when something is closed or freed.
bool exhaustion_error(int err) noexcept { return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM; }

constexpr std::size_t high_water = 256;  // queued connections that make us stop accepting
constexpr std::int64_t first_backoff_ns = 10'000'000;
constexpr std::int64_t max_backoff_ns = 1'000'000'000;
}  // namespace

class listener_core : public coring::detail::completion, public coring::detail::timer_node {
 public:
  listener_core(int fd, const address& local, const listen_options& o) noexcept
      : completion{&on_cqe}, timer_node{0, &on_backoff_end}, fd_(fd), local_(local), options_(o) {}

  // ---- used by accept_waiter
  /// Hands a queued connection to a task that just asked; arms the multishot
  /// if the queue runs low. False if none is queued.
  bool take_queued(accept_waiter& w) {
    bind_loop();
    if (ready_.empty()) {
      return false;
    }
    w.fd_ = ready_.front();
    ready_.pop_front();
    w.outcome_ = accept_waiter::outcome::delivered;
    settle(w);
    if (ready_.size() < high_water / 2) arm();
    return true;
  }
  void add_waiter(accept_waiter& w) {
    bind_loop();
    if (fatal_ != 0) {
      w.outcome_ = accept_waiter::outcome::failed;
      w.error_ = fatal_;
      settle(w);
      return;
    }
    w.prev_ = tail_;
    w.next_ = nullptr;
    (tail_ ? tail_->next_ : head_) = &w;
    tail_ = &w;
    arm();
  }
  void unlink(accept_waiter& w) noexcept {
    (w.prev_ ? w.prev_->next_ : head_) = w.next_;
    (w.next_ ? w.next_->prev_ : tail_) = w.prev_;
    w.next_ = w.prev_ = nullptr;
  }
  /// Gives a waiter whose wait has ended what take() needs, so that it never
  /// looks at us again.
  void settle(accept_waiter& w) noexcept {
    w.where_ = local_;
    if (w.outcome_ == accept_waiter::outcome::delivered) w.pool_ = pool_for_stream();
  }
  /// Ends a waiter's wait: takes it off the list and its timer off the heap, resumes it.
  void finish(accept_waiter& w) noexcept {
    settle(w);
    unlink(w);
    if (w.heap_index != timer_node::not_queued) loop_access::remove_timer(*loop_, w);
    if (w.node_ && w.node_->leaf == &w) w.node_->leaf = nullptr;
    loop_access::schedule(*loop_, w.handle_);
  }
  [[nodiscard]] event_loop* loop() const noexcept { return loop_; }
  [[nodiscard]] buffer_pool* pool_for_stream() noexcept {
    if (!pool_) return nullptr;
    pool_->retain();
    return pool_;
  }

  // ---- used by the listener
  void close() noexcept {
    closed_ = true;
    if (backing_off_) {
      loop_access::remove_timer(*loop_, *this);
      backing_off_ = false;
    }
    for (int fd : ready_) ::close(fd);
    ready_.clear();
    while (head_) {
      accept_waiter& w = *head_;
      w.outcome_ = accept_waiter::outcome::failed;
      w.error_ = 0;
      finish(w);
    }
    if (armed_ && !cancel_sent_) {
      loop_access::submit_cancel(*loop_, *this);
      cancel_sent_ = true;
    }
    // The multishot request holds its own reference to the socket; the port
    // is released when the cancel has ended it.
    ::close(fd_);
    fd_ = -1;
    if (local_.kind() == address::family::unix_socket && options_.unlink_existing) {
      std::string path = local_.host();
      if (!path.empty() && path[0] != '@') ::unlink(path.c_str());
    }
    if (pool_) std::exchange(pool_, nullptr)->release();
    if (!armed_) delete this;  // else the final CQE of the multishot deletes us
  }
  [[nodiscard]] const address& local() const noexcept { return local_; }
  [[nodiscard]] int fd() const noexcept { return fd_; }
  [[nodiscard]] listener_stats stats() const noexcept {
    listener_stats s = stats_;
    s.queued = ready_.size();
    s.buffers = pool_ ? pool_->buffers() : 0;
    return s;
  }

 private:
  void bind_loop() {
    if (loop_) {
      CORING_ASSERT(loop_ == event_loop::current(), "a listener is used on one event loop only");
      return;
    }
    loop_ = event_loop::current();
    CORING_ASSERT(loop_, "accept() needs an event loop on this thread");
    if (options_.lend_buffers) {
      try {
        pool_ = buffer_pool::create(*loop_, options_.buffer_size, options_.max_buffers);
      } catch (const std::exception&) {
        // Old kernel (< 5.19) or no memory: streams read into their own buffers.
        pool_ = nullptr;
      }
    }
  }

  /// Submits the multishot accept if it is not in flight and there is a use for it.
  void arm() noexcept {
    if (armed_ || closed_ || backing_off_ || fatal_ != 0 || ready_.size() >= high_water) return;
    try {
      io_uring_sqe* sqe = loop_access::sqe_for(*loop_, *this);
      io_uring_prep_multishot_accept(sqe, fd_, nullptr, nullptr, SOCK_CLOEXEC);
      armed_ = true;
      cancel_sent_ = false;
      ++stats_.rearms;
    } catch (...) {
      start_backoff();  // the submission queue stays full: try again a little later
    }
  }

  void start_backoff() noexcept {
    if (backing_off_ || closed_) return;
    ++stats_.backoffs;
    backing_off_ = true;
    deadline_ns = now_ns() + backoff_ns_;
    backoff_ns_ = std::min(backoff_ns_ * 2, max_backoff_ns);
    try {
      loop_access::add_timer(*loop_, *this);
    } catch (...) {
      backing_off_ = false;  // no memory for a heap slot: accept again at the next accept()
    }
    if (armed_ && !cancel_sent_) {
      loop_access::submit_cancel(*loop_, *this);
      cancel_sent_ = true;
    }
  }

  void deliver(int fd) noexcept {
    backoff_ns_ = first_backoff_ns;
    if (head_) {
      accept_waiter& w = *head_;
      w.fd_ = fd;
      w.outcome_ = accept_waiter::outcome::delivered;
      finish(w);
      return;
    }
    try {
      ready_.push_back(fd);
    } catch (...) {
      ::close(fd);  // no memory to queue it: the client sees the connection closed
      return;
    }
    if (ready_.size() >= high_water && armed_ && !cancel_sent_) {
      loop_access::submit_cancel(*loop_, *this);
      cancel_sent_ = true;
    }
  }

  void fail_waiters(int err) noexcept {
    fatal_ = err;
    while (head_) {
      accept_waiter& w = *head_;
      w.outcome_ = accept_waiter::outcome::failed;
      w.error_ = err;
      finish(w);
    }
  }

  static void on_cqe(coring::detail::completion* c, int res, unsigned flags) noexcept {
    auto* self = static_cast<listener_core*>(c);
    const bool more = (flags & IORING_CQE_F_MORE) != 0;
    if (!more) self->armed_ = false;
    if (res >= 0) {
      ++self->stats_.accepted;
      if (self->closed_) {
        ::close(res);
      } else {
        self->deliver(res);
      }
    } else if (res != -ECANCELED && !self->closed_) {
      if (exhaustion_error(-res)) {
        self->start_backoff();
      } else if (!per_connection_error(-res) && !more) {
        self->fail_waiters(-res);
      }
    }
    if (self->closed_) {
      if (!self->armed_) delete self;
      return;
    }
    if (!self->armed_ && self->head_) self->arm();
  }

  static void on_backoff_end(coring::detail::timer_node* t) noexcept {
    auto* self = static_cast<listener_core*>(t);
    self->backing_off_ = false;
    if (self->head_ || self->ready_.empty()) self->arm();
  }

  int fd_;                            // the listening socket (-1 once closed)
  address local_;                     // where it listens
  listen_options options_;            // as bound
  event_loop* loop_ = nullptr;        // the loop of the first accept(); the ring that carries the multishot
  buffer_pool* pool_ = nullptr;       // provided buffers for the accepted streams (one reference), or null
  std::deque<int> ready_;             // accepted connections no task has taken yet
  accept_waiter* head_ = nullptr;     // tasks waiting in accept(), oldest first
  accept_waiter* tail_ = nullptr;
  std::int64_t backoff_ns_ = first_backoff_ns;  // the next back-off's length
  int fatal_ = 0;                     // errno that ended accepting for good
  bool armed_ = false;                // the multishot SQE is in flight (its final CQE has not come)
  bool cancel_sent_ = false;          // and we asked the kernel to end it
  bool backing_off_ = false;          // the back-off timer is in the heap
  bool closed_ = false;               // close() was called; we die with the final CQE
  listener_stats stats_;              // counters
};

// ---------------------------------------------------------------- accept_waiter

accept_waiter::accept_waiter(listener_core* core, std::chrono::nanoseconds timeout) noexcept
    : cancel_hook{&on_cancel}, timer_node{0, &on_timeout}, core_(core),
      timeout_ns_(coring::detail::timeout_ns(timeout)) {}

accept_waiter::~accept_waiter() {
  if (fd_ >= 0) ::close(fd_);
  if (pool_) pool_->release();
}

bool accept_waiter::await_ready() noexcept {
  try {
    return core_->take_queued(*this);
  } catch (...) {
    return false;
  }
}

bool accept_waiter::suspend(std::coroutine_handle<> h) {
  handle_ = h;
  core_->add_waiter(*this);
  if (outcome_ != outcome::waiting) return false;  // the listener failed for good
  if (timeout_ns_ >= 0) {
    deadline_ns = now_ns() + timeout_ns_;
    try {
      loop_access::add_timer(*core_->loop(), *this);
    } catch (...) {
      core_->unlink(*this);
      throw;
    }
  }
  if (node_) node_->leaf = this;
  return true;
}

void accept_waiter::on_cancel(coring::detail::cancel_hook* h) noexcept {
  auto* self = static_cast<accept_waiter*>(h);
  if (self->outcome_ != outcome::waiting) return;
  self->outcome_ = outcome::cancelled;
  self->core_->finish(*self);
}

void accept_waiter::on_timeout(coring::detail::timer_node* t) noexcept {
  auto* self = static_cast<accept_waiter*>(t);
  if (self->outcome_ != outcome::waiting) return;
  self->outcome_ = outcome::timed_out;
  self->core_->finish(*self);
}

accepted_socket accept_waiter::take() {
  switch (outcome_) {
    case outcome::delivered: {
      const int fd = std::exchange(fd_, -1);
      return {fd, where_.is_ip() ? peer_of(fd) : where_, std::exchange(pool_, nullptr)};
    }
    case outcome::cancelled:
      coring::detail::consume_cancel(node_);
      throw cancelled{};
    case outcome::timed_out:
      throw timeout_error("accept on " + where_.to_string() + ": timed out after " +
                          std::to_string(timeout_ns_ / 1'000'000) + " ms");
    case outcome::failed:
    default:
      if (error_ == 0) throw io_error(ECANCELED, "accept on " + where_.to_string() + ": the listener was closed");
      throw io_error(error_, "accept on " + where_.to_string());
  }
}

// ---------------------------------------------------------------- listener functions

listener_core* listen_on(const address& where, const listen_options& o) {
  ignore_sigpipe_once();
  const int family = where.native_family();
  int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw io_error(errno, "listen on " + where.to_string() + ": socket");
  fd_guard guard{fd};
  const int one = 1;
  if (where.is_ip()) {
    if (o.reuse_address) ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (o.reuse_port && ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
      throw io_error(errno, "listen on " + where.to_string() + ": SO_REUSEPORT");
    // Accepted sockets inherit TCP_NODELAY from the listener (Linux).
    if (o.nodelay) ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  } else if (where.kind() == address::family::unix_socket && o.unlink_existing) {
    std::string path = where.host();
    struct stat st{};
    if (!path.empty() && path[0] != '@' && ::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode))
      ::unlink(path.c_str());
  }
  if (::bind(fd, where.native(), static_cast<socklen_t>(where.native_size())) != 0)
    throw io_error(errno, "listen on " + where.to_string() + ": bind");
  if (::listen(fd, o.backlog) != 0) throw io_error(errno, "listen on " + where.to_string());
  address local = where;
  if (where.is_ip()) local = local_of(fd);
  auto* core = new listener_core(fd, local, o);
  guard.release();
  return core;
}

void close_listener(listener_core* core) noexcept { core->close(); }
const address& listener_address(const listener_core* core) noexcept { return core->local(); }
int listener_fd(const listener_core* core) noexcept { return core->fd(); }
listener_stats listener_statistics(const listener_core* core) noexcept { return core->stats(); }

}  // namespace coring::net::detail
