#include "process_pool_worker.hpp"

#include <coring/process_pool.hpp>

#include <cxxabi.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdint>
#include <exception>
#include <typeinfo>

#include "process_pool_wire.hpp"
#include "symbol_names.hpp"

namespace coring::detail {

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
  if (send_message(sock, {k_ready, 0, 0, 0, 0}, {}).err != 0) ::_exit(0);
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
      err = send_message(sock, {k_result, 0, h.id, 0, 0}, out.view()).err;
    } catch (...) {
      describe_current_exception(type, message);
      out.clear();
      std::string bytes;
      try {
        bytes = encode_all(type, message);
      } catch (...) {
        bytes = encode_all(std::string("std::bad_alloc"), std::string());
      }
      err = send_message(sock, {k_raised, 0, h.id, 0, 0}, bytes).err;
    }
    if (r.large.capacity() > inline_limit) std::string().swap(r.large);
    if (err != 0) ::_exit(0);
  }
}

}  // namespace coring::detail
