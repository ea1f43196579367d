#include <coring/net/unix.hpp>

#include "sockets.hpp"

#include <coring/error.hpp>
#include <coring/net/error.hpp>

#include <sys/socket.h>

namespace coring::net {

task<unix_stream> unix_stream::connect(std::string path, std::chrono::nanoseconds timeout) {
  detail::ignore_sigpipe_once();
  const address to = address::unix_path(path);
  detail::fd_guard fd{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
  if (fd.fd < 0) throw connect_error(errno, to.to_string(), "");
  int r = co_await detail::connect_operation(fd.fd, to, timeout);
  if (r == -ECANCELED) {
    throw timeout_error("connect to " + to.to_string() + ": timed out after " +
                        std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count()) +
                        " ms");
  }
  if (r < 0) throw connect_error(-r, to.to_string(), "");
  co_return unix_stream(fd.release(), to);
}

std::pair<unix_stream, unix_stream> unix_stream::pair() {
  detail::ignore_sigpipe_once();
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) throw io_error(errno, "socketpair");
  const address unnamed = address::unix_path("@");
  return {unix_stream(fds[0], unnamed), unix_stream(fds[1], unnamed)};
}

unix_listener unix_listener::bind(std::string_view path, const listen_options& o) {
  return unix_listener(detail::listen_on(address::unix_path(path), o));
}

}  // namespace coring::net
