#include <coring/net/send_file.hpp>

#include "sockets.hpp"

#include <coring/error.hpp>

#include <fcntl.h>
#include <liburing.h>
#include <unistd.h>

#include <string>

namespace coring::net {

namespace {
// One IORING_OP_SPLICE: up to `len` bytes from `in` (at `in_off`, or -1 for a
// pipe) to `out`. Gives the bytes moved (0: `in` ended).
class splice_operation : public detail::socket_operation {
 public:
  splice_operation(int in, std::int64_t in_off, int out, unsigned len, std::chrono::nanoseconds timeout) noexcept
      : socket_operation(&prep, timeout), in_(in), out_(out), len_(len), in_off_(in_off) {}
  /// Bytes moved, or -errno (-ECANCELED: the deadline passed; our own
  /// cancellation is thrown as coring::cancelled).
  int await_resume() { return result(); }

 private:
  static void prep(io_uring_sqe* sqe, detail::socket_operation& op) noexcept {
    auto& self = static_cast<splice_operation&>(op);
    io_uring_prep_splice(sqe, self.in_, self.in_off_, self.out_, -1, self.len_, SPLICE_F_MOVE);
  }
  int in_, out_;
  unsigned len_;
  std::int64_t in_off_;
};

constexpr unsigned chunk = 65536;  // a pipe's default capacity

[[noreturn]] void throw_failed(int res, const std::string& what, std::chrono::nanoseconds timeout) {
  if (res == -ECANCELED) {
    throw timeout_error(what + ": timed out after " +
                        std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count()) + " ms");
  }
  throw io_error(-res, what);
}
}  // namespace

task<std::size_t> send_file(socket_stream& to, int file_fd, std::uint64_t offset, std::size_t count, io_options o) {
  // Splicing into a socket whose peer has gone raises SIGPIPE (no MSG_NOSIGNAL there).
  detail::ignore_sigpipe_once();
  const std::string what = "send file fd " + std::to_string(file_fd) + " to " + to.peer().to_string();
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) throw io_error(errno, what + ": pipe");
  detail::fd_guard read_end{p[0]}, write_end{p[1]};
  std::size_t sent = 0;
  while (sent < count) {
    const auto want = static_cast<unsigned>(std::min<std::size_t>(chunk, count - sent));
    int in = co_await splice_operation(file_fd, static_cast<std::int64_t>(offset + sent), write_end.fd, want, o.timeout);
    if (in < 0) throw_failed(in, what, o.timeout);
    if (in == 0) break;  // the file is shorter than asked
    auto in_pipe = static_cast<unsigned>(in);
    while (in_pipe > 0) {
      int out = co_await splice_operation(read_end.fd, -1, to.native_handle(), in_pipe, o.timeout);
      if (out < 0) throw_failed(out, what, o.timeout);
      in_pipe -= static_cast<unsigned>(out);
      sent += static_cast<std::size_t>(out);
    }
  }
  co_return sent;
}

}  // namespace coring::net
