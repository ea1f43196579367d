#pragma once
// The process pool's wire format: how the main process, the fork server and
// the workers talk over their SOCK_SEQPACKET sockets. Every message is one
// datagram: a msg_header, then the payload inline, or (when larger than
// inline_limit) in a sealed memfd passed with SCM_RIGHTS. The manager gives an
// idle worker one job, and a busy one a few look-ahead jobs behind it, each
// with a claim slot (process_pool_claims.hpp); it sends without blocking.

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace coring::detail {

constexpr std::size_t inline_limit = 16 * 1024;

enum msg_kind : std::uint32_t {
  k_job = 1,          // main → worker: run invoker(fn, payload)
  k_ready = 2,        // worker → main: the initializer ran, jobs welcome
  k_result = 3,       // worker → main: payload is the encoded result
  k_raised = 4,       // worker → main: payload is encode_all(type name, message)
  k_init_failed = 5,  // worker → main: as k_raised, from the initializer
  k_skipped = 6,      // worker → main: a look-ahead job it could not claim (cancelled or taken back)
};
constexpr std::uint32_t f_memfd = 1;  // the payload is in the attached memfd
constexpr std::uint32_t f_named = 2;  // k_job: the payload starts with a registered job name
constexpr std::uint32_t f_chunk = 4;  // k_job, f_named: a chunk of process_pool::map

// A job names its function by address: invoker and fn are the addresses of
// its process_invoker and function, valid in workers forked from this
// program's image. With f_named it also names the function it was registered
// under (CORING_REGISTER_JOB): the payload is then the name (name_size bytes),
// then the arguments. A worker runs the registered function of that name,
// and only if it has none, the addresses (a process not forked from this
// image sends none: both 0).
struct msg_header {
  std::uint32_t kind;       // a msg_kind
  std::uint32_t flags;      // f_memfd, f_named, f_chunk
  std::uint64_t id;         // the job's id (k_job, k_result, k_raised), else 0
  std::uint64_t invoker;    // k_job: the process_invoker's address, or 0
  std::uint64_t fn;         // k_job: the user's function's address, or 0
  std::uint32_t name_size;  // k_job, f_named: the length of the name that starts the payload
  std::uint32_t slot;       // k_job: a look-ahead job's claim slot + 1 (its claim id is id), or 0
};

/// Closes `fd` if it is open and sets it to -1.
void close_fd(int& fd) noexcept;

/// What became of a send_message().
struct send_result {
  int err = 0;         // 0, or the errno of the step that failed
  bool local = false;  // err is from making the memfd, not from sendmsg: the receiver is not at fault
};

/// Sends one message whose payload is `first` then `second`; blocks for room
/// in the socket unless `nonblocking` (then err may be EAGAIN).
send_result send_message(int sock, msg_header h, std::string_view first, std::string_view second,
                         bool nonblocking) noexcept;

/// Sends one message with `payload`, blocking for room in the socket.
inline send_result send_message(int sock, msg_header h, std::string_view payload) noexcept {
  return send_message(sock, h, {}, payload, false);
}

/// A receiving buffer that can hold any inline message, plus the out-of-line payload.
struct receiver {
  std::vector<char> buf = std::vector<char>(sizeof(msg_header) + inline_limit);
  std::string large;  // a memfd payload, read whole
};

/// recvmsg() of one message into buf[0, len), keeping the first `max_fds`
/// descriptors passed with it (SCM_RIGHTS, close-on-exec) in fds and closing
/// any others. Returns the byte count or -errno; `got` counts the fds kept and
/// `msg_flags` reports truncation. The ECONNRESET that a peer's close with
/// messages unread reports is passed over: what it sent before is still read.
ssize_t recv_with_fds(int sock, void* buf, std::size_t len, int flags, int* fds, std::size_t max_fds,
                      std::size_t& got, int& msg_flags);

/// Receives one message. Returns 1 (h and payload set), 0 at end of stream,
/// -EAGAIN when nonblocking and nothing is there, -EMFILE when h was read but
/// the memfd holding its payload could not be received (this process has no
/// descriptor free: not the sender's fault), or another -errno.
int recv_message(int sock, receiver& r, msg_header& h, std::string_view& payload, bool nonblocking);

/// Sends `len` bytes with up to two descriptors attached; returns 0 or an errno.
int send_fds(int sock, const void* data, std::size_t len, const int* fds, std::size_t nfds);

}  // namespace coring::detail
