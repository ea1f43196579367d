#pragma once
// subprocess: run a program and talk to it through pipes, without blocking
// the loop (asyncio.create_subprocess_exec and its Process).
//
//   auto p = co_await coring::subprocess::exec({"sort", "-r"},
//                                              {.stdin = coring::stdio::pipe, .stdout =
//                                              coring::stdio::pipe});
//   auto out = co_await p.communicate("b\na\nc\n");     // out.out == "c\nb\na\n", out.returncode == 0
//
//   auto ls = co_await coring::subprocess::exec({"ls", "-l"}, {.stdout = coring::stdio::pipe, .cwd =
//   "/tmp"}); std::size_t n = co_await ls.stdout().read_some(buf);   // a stream: read_some / write_some /
//   close int status = co_await ls.wait();                        // exit code, or -signal
//
// The child is started with clone(CLONE_VM | CLONE_VFORK | CLONE_PIDFD) —
// what posix_spawn does inside, plus a pidfd — never fork(), so this is safe
// in a process with threads. Every descriptor coring makes is close-on-exec:
// the child gets exactly its three standard streams. It is waited for through
// the pidfd (IORING_OP_WAITID in the ring, or a poll of the pidfd on kernels
// before 6.7), never through SIGCHLD. The child starts with an empty signal
// mask and default dispositions (the loop's blocked SIGINT is not inherited).
//
// No zombie, no leaked descriptor: wait() reaps; cancelling a task in wait()
// or communicate() kills the child (SIGKILL) and reaps it before the
// cancellation is delivered; destroying a subprocess that was not reaped
// kills and reaps it (a short blocking wait). Writes to a child's stdin give
// EPIPE when it has gone (an io_error), never SIGPIPE: making a stdin pipe
// blocks SIGPIPE on the loop's thread (a SIGPIPE raised by our write is
// consumed).

#include <coring/detail/ring_operation.hpp>
#include <coring/error.hpp>
#include <coring/io.hpp>
#include <coring/task.hpp>

#include <sys/types.h>

#include <chrono>
#include <concepts>
#include <coroutine>
#include <csignal>
#include <cstddef>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace coring {

namespace detail {
struct spawn_request;
}

/// How a child's standard stream is set up (asyncio.subprocess's PIPE, DEVNULL, None, STDOUT).
enum class stdio {
  inherit,    ///< the child shares ours (the default)
  pipe,       ///< a pipe to us: subprocess::stdin() / stdout() / stderr()
  devnull,    ///< /dev/null
  to_stdout,  ///< for stderr only: wherever stdout goes (asyncio's STDOUT)
};

/// A file for a child's stream: read for stdin; for stdout and stderr created
/// (mode 0666 less the umask) and truncated, or appended to.
struct stdio_file {
  std::string_view path;  ///< opened by exec() itself (need not outlive the call)
  bool append = false;    ///< stdout/stderr: append instead of truncating
};

/// A descriptor of ours given to the child as one of its streams (it stays ours).
struct stdio_fd {
  int fd;  ///< must stay open until exec() has been awaited
};

/// One standard stream's setting: stdio, stdio_file or stdio_fd. Trivially
/// copyable, like every field of subprocess_options (see there).
class stream_spec {
 public:
  stream_spec(stdio s) noexcept : kind_(static_cast<kind>(s)) {}
  stream_spec(stdio_file f) noexcept : kind_(from_file), path_(f.path), append_(f.append) {}
  stream_spec(stdio_fd f) noexcept : kind_(from_fd), fd_(f.fd) {}

  /// The setting, when it is one of stdio's.
  [[nodiscard]] bool is(stdio s) const noexcept { return kind_ == static_cast<kind>(s); }
  /// The file, for a stdio_file.
  [[nodiscard]] bool is_file() const noexcept { return kind_ == from_file; }
  [[nodiscard]] std::string_view path() const noexcept { return path_; }
  [[nodiscard]] bool append() const noexcept { return append_; }
  /// The descriptor, for a stdio_fd.
  [[nodiscard]] bool is_fd() const noexcept { return kind_ == from_fd; }
  [[nodiscard]] int fd() const noexcept { return fd_; }

 private:
  enum kind : unsigned char {
    inherit_ = static_cast<unsigned char>(stdio::inherit),
    pipe_ = static_cast<unsigned char>(stdio::pipe),
    devnull_ = static_cast<unsigned char>(stdio::devnull),
    to_stdout_ = static_cast<unsigned char>(stdio::to_stdout),
    from_file,
    from_fd,
  };
  kind kind_ = inherit_;
  std::string_view path_;  // stdio_file
  int fd_ = -1;            // stdio_fd
  bool append_ = false;    // stdio_file
};

/// A program and its arguments: subprocess::exec({"sort", "-r"}) or from a
/// std::vector<std::string>. (Not a std::initializer_list: g++ 12 rejects an
/// initializer list's array inside a co_await expression, "array used as
/// initializer"; a variadic constructor makes none.)
class command_args {
 public:
  /// From the words themselves: {"ls", "-l", path}.
  template <class... S>
  requires(sizeof...(S) > 0 && (std::convertible_to<const S&, std::string_view> && ...))
      command_args(const S&... words)
      : words_{std::string(std::string_view(words))...} {}
  /// From a list built at run time.
  command_args(std::vector<std::string> words) noexcept : words_(std::move(words)) {}
  [[nodiscard]] const std::vector<std::string>& words() const noexcept { return words_; }
  [[nodiscard]] std::vector<std::string>&& take() noexcept { return std::move(words_); }

 private:
  std::vector<std::string> words_;  // argv[0] first
};

/// How subprocess::exec starts the child. Every field is a view, read by
/// exec() itself: what it refers to need not outlive the call. (Views, not
/// strings and maps, on purpose: g++ 12 destroys the members of an aggregate
/// written as a temporary in a co_await expression twice, so an aggregate
/// meant for `co_await exec(args, {.stdout = ...})` holds nothing that owns.)
struct subprocess_options {
  stream_spec stdin = stdio::inherit;   ///< the child's standard input
  stream_spec stdout = stdio::inherit;  ///< its standard output
  stream_spec stderr = stdio::inherit;  ///< its standard error (stdio::to_stdout merges it into stdout)
  std::string_view cwd = {};            ///< its working directory; empty: ours
  /// Its whole environment, "NAME=value" entries; nullopt: ours. (Start from
  /// subprocess::environment() to change a few.)
  std::optional<std::span<const std::string>> env = std::nullopt;
};

/// Settings of one pipe_stream operation (the same shape as coring::io_options).
struct pipe_io_options {
  /// The operation ends with coring::timeout_error after this (a linked kernel timeout).
  std::chrono::nanoseconds timeout = std::chrono::nanoseconds::max();
};

/// Awaiter of pipe_stream::write_some: write_some's, with EPIPE never a signal.
class pipe_write_operation : public write_operation {
 public:
  using write_operation::write_operation;
  /// **Errors:** io_error (EPIPE once the child has closed its end).
  std::size_t await_resume();
};

/// An awaitable that is complete already (pipe_stream::close()).
struct ready_operation {
  bool await_ready() const noexcept { return true; }
  void await_suspend(std::coroutine_handle<>) const noexcept {}
  void await_resume() const noexcept {}
};

/// Our end of a pipe to a child: a byte stream (the shape of net::byte_stream,
/// so net's buffered_reader reads it). Move-only; closes its descriptor.
class pipe_stream {
 public:
  pipe_stream() noexcept = default;
  explicit pipe_stream(int fd) noexcept : fd_(fd) {}
  pipe_stream(pipe_stream&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  pipe_stream& operator=(pipe_stream&& o) noexcept {
    if (this != &o) {
      close_now();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  pipe_stream(const pipe_stream&) = delete;
  pipe_stream& operator=(const pipe_stream&) = delete;
  ~pipe_stream() { close_now(); }

  /// Reads at most buffer.size() bytes; 0 at end of stream (the child closed
  /// its end or exited). Options: anything with a `timeout` (pipe_io_options,
  /// coring::io_options, net::io_options).
  /// **Cancellation/Errors:** as coring::read_some. **Requires:** is_open().
  template <class Options = pipe_io_options>
  [[nodiscard]] read_operation read_some(std::span<std::byte> buffer, const Options& opts = {}) noexcept {
    return read_operation(fd_, buffer, ~std::uint64_t{0}, opts.timeout);
  }
  /// Writes at most data.size() bytes.
  /// **Cancellation:** as coring::write_some. **Errors:** io_error; EPIPE
  /// once the child has closed its end (never SIGPIPE). **Requires:** is_open().
  template <class Options = pipe_io_options>
  [[nodiscard]] pipe_write_operation write_some(std::span<const std::byte> data,
                                                const Options& opts = {}) noexcept {
    return pipe_write_operation(fd_, data, ~std::uint64_t{0}, opts.timeout);
  }
  /// Writes all of `data` (several write_some). **Errors/Cancellation:** as
  /// write_some; what was written before an error or a cancellation stays written.
  [[nodiscard]] task<> write_all(std::span<const std::byte> data);
  /// Reads until end of stream, at most `max` bytes in all.
  /// **Errors:** io_error; coring::error past `max`. **Cancellation:** as read_some.
  [[nodiscard]] task<std::string> read_all(std::size_t max = std::size_t(1) << 30);

  /// Closes our end now (the child sees end of stream on its stdin, or EPIPE
  /// writing its stdout). The result may be co_awaited (so the stream fits
  /// net::byte_stream). Idempotent.
  /// **Requires:** no operation of it is in flight.
  ready_operation close() noexcept {
    close_now();
    return {};
  }
  [[nodiscard]] bool is_open() const noexcept { return fd_ >= 0; }
  [[nodiscard]] int fd() const noexcept { return fd_; }

 private:
  void close_now() noexcept;
  int fd_ = -1;  // our end, close-on-exec; -1 once closed
};

/// A running (or finished) child process (asyncio.subprocess.Process). Move-only.
class subprocess {
 public:
  /// What communicate() gives.
  struct output {
    std::string out;     ///< everything the child wrote to its stdout pipe (empty if not piped)
    std::string err;     ///< to its stderr pipe
    int returncode = 0;  ///< exit code, or -signal number
  };

  /// Starts `argv[0]` (searched in PATH — the child's, if opts.env sets it —
  /// unless it contains a '/') with arguments `argv`, as `opts` says
  /// (asyncio.create_subprocess_exec).
  /// **Errors:** io_error naming the program: it cannot be run (ENOENT,
  /// EACCES...), the working directory or a file cannot be opened, no pipe
  /// or pidfd; coring::error for an empty argv. Then no child is left behind.
  /// **Requires:** a loop on this thread.
  [[nodiscard]] static task<subprocess> exec(command_args argv, const subprocess_options& opts = {});
  /// Runs `command` with /bin/sh -c (asyncio.create_subprocess_shell).
  [[nodiscard]] static task<subprocess> shell(std::string_view command, const subprocess_options& opts = {});
  /// This process's environment as "NAME=value" entries, to copy and change for opts.env.
  [[nodiscard]] static std::vector<std::string> environment();

  subprocess(subprocess&& o) noexcept;
  subprocess& operator=(subprocess&& o) noexcept;
  subprocess(const subprocess&) = delete;
  subprocess& operator=(const subprocess&) = delete;
  /// Closes our pipe ends; a child not yet reaped is killed (SIGKILL) and
  /// reaped here (blocking, briefly): no zombie is left.
  ~subprocess();

  /// The child's process id.
  [[nodiscard]] pid_t pid() const noexcept { return pid_; }
  /// Our ends of its pipes. **Requires:** that stream was stdio::pipe.
  [[nodiscard]] pipe_stream& stdin() noexcept { return pipes_[0]; }
  [[nodiscard]] pipe_stream& stdout() noexcept { return pipes_[1]; }
  [[nodiscard]] pipe_stream& stderr() noexcept { return pipes_[2]; }

  /// Waits until the child ends, reaps it, and gives its return code: the
  /// exit code, or -N if signal N ended it (as Python's returncode). At
  /// once if it was reaped before.
  /// **Cancellation:** kills the child (SIGKILL) and reaps it, then throws
  /// coring::cancelled (a second cancellation meanwhile: the destructor reaps).
  /// **Errors:** io_error if the wait itself fails.
  [[nodiscard]] task<int> wait();
  /// Writes `input` to its stdin (then closes it), reads its stdout and
  /// stderr to their end — all at once, so no pipe fills up and blocks the
  /// child — and waits for it (asyncio's communicate()). A child that stops
  /// reading its stdin early is fine (the rest of `input` is dropped).
  /// **Cancellation:** kills and reaps the child, then throws coring::cancelled.
  /// **Errors:** io_error; coring::error if `input` is not empty and stdin
  /// is not a pipe.
  [[nodiscard]] task<output> communicate(std::string input = {});

  /// Sends `signo` (through the pidfd: never to a recycled pid). No effect
  /// once the child has been reaped.
  void send_signal(int signo) noexcept;
  /// SIGTERM.
  void terminate() noexcept { send_signal(SIGTERM); }
  /// SIGKILL.
  void kill() noexcept { send_signal(SIGKILL); }
  /// The return code once reaped (by wait()), else nullopt.
  [[nodiscard]] std::optional<int> returncode() const noexcept { return returncode_; }

 private:
  subprocess() noexcept = default;
  static task<subprocess> spawn(detail::spawn_request request);
  /// Reaps the child through the ring; sets returncode_.
  task<> reap();
  void reap_blocking() noexcept;

  pid_t pid_ = -1;                 // the child's pid (for messages and users)
  int pidfd_ = -1;                 // its pidfd (close-on-exec), until we are destroyed
  std::string program_;            // argv[0], for messages
  std::optional<int> returncode_;  // set once reaped
  pipe_stream pipes_[3];           // our ends for stdin, stdout, stderr (closed if not piped)
};

namespace detail {
/// Tests only: true makes wait() poll the pidfd (the path for kernels
/// without IORING_OP_WAITID) instead of using IORING_OP_WAITID.
void subprocess_force_pidfd_poll(bool on) noexcept;
}  // namespace detail

}  // namespace coring
