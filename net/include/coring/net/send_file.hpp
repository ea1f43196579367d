#pragma once
// net::send_file: copy part of a file to a socket without bringing it into
// user space — splice from the file into a pipe and from the pipe into the
// socket, both through the ring (IORING_OP_SPLICE), 64 KiB at a time.
//
//   std::size_t sent = co_await net::send_file(conn, file.native_handle(), 0, file_size);
//
// The pipe (CLOEXEC) is made per call and closed at its end.

#include <coring/net/byte_stream.hpp>
#include <coring/net/socket_stream.hpp>
#include <coring/task.hpp>

#include <cstddef>
#include <cstdint>

namespace coring::net {

/// Sends `count` bytes of the file `file_fd` from `offset` to `to`; returns
/// the bytes sent (fewer only if the file ended first).
/// **Cancellation:** the splice in flight is cancelled in the ring; the task
/// gets coring::cancelled (part of the range may have been sent).
/// **Errors:** io_error "send file fd 7 to 127.0.0.1:80: ..." (EPIPE, never SIGPIPE);
/// timeout_error with `{.timeout}` (per splice).
[[nodiscard]] task<std::size_t> send_file(socket_stream& to, int file_fd, std::uint64_t offset, std::size_t count,
                                          io_options o = {});

}  // namespace coring::net
