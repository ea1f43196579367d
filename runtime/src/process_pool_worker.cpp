#include "process_pool_worker.hpp"

#include <coring/process_pool.hpp>

#include <cxxabi.h>
#include <dlfcn.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <exception>
#include <typeinfo>
#include <unordered_set>

#include "process_pool_claims.hpp"
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

namespace {

// Throws unless `addr` lies in an object loaded in this process. A job sent
// by address names code of the program's image as it was when the fork
// server started: code of a library dlopen()ed after that is not here, and
// calling it would crash the worker. `known` holds the addresses checked.
void check_loaded(std::uintptr_t addr, std::unordered_set<std::uintptr_t>& known) {
  if (known.count(addr) != 0) return;
  Dl_info info{};
  if (::dladdr(reinterpret_cast<void*>(addr), &info) == 0) {
    char hex[32];
    std::snprintf(hex, sizeof hex, "%#llx", static_cast<unsigned long long>(addr));
    throw error(std::string("process_pool: the job's code (at ") + hex +
                ") is not loaded in the worker: was it in a library loaded with dlopen() after the fork "
                "server started? Load such libraries before start_fork_server()");
  }
  known.insert(addr);
}

// Runs the job of message `h`, appending its encoded result to `out`.
void run_job(const msg_header& h, std::string_view payload, byte_writer& out,
             std::unordered_set<std::uintptr_t>& known) {
  if (h.flags & f_named) {
    if (h.name_size > payload.size()) throw error("process_pool: malformed job message (its name overruns it)");
    std::string_view name = payload.substr(0, h.name_size);
    payload.remove_prefix(h.name_size);
    // Its registration ran after this worker's fork server was forked (a
    // server started from a global constructor): the addresses serve.
    if (find_registered_job(name) || h.fn == 0) {
      run_registered_job(name, (h.flags & f_chunk) != 0, payload, out);
      return;
    }
  }
  check_loaded(h.invoker, known);
  check_loaded(h.fn, known);
  auto invoke = reinterpret_cast<process_invoker>(static_cast<std::uintptr_t>(h.invoker));
  auto fn = reinterpret_cast<void (*)()>(static_cast<std::uintptr_t>(h.fn));
  invoke(fn, payload, out);
}

}  // namespace

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
      (void)send_message(sock, {k_init_failed, 0, 0, 0, 0, 0, 0}, encode_all(type, message));
      ::_exit(0);
    }
  }
  if (send_message(sock, {k_ready, 0, 0, 0, 0, 0, 0}, {}).err != 0) ::_exit(0);
  receiver r;
  byte_writer out;
  std::unordered_set<std::uintptr_t> known;  // code addresses found loaded
  for (;;) {
    msg_header h{};
    std::string_view payload;
    // End of stream: the pool retires us (or the main process is gone).
    if (recv_message(sock, r, h, payload, false) <= 0 || h.kind != k_job) ::_exit(0);
    out.clear();
    if (h.slot != 0 && h.slot <= claim_slots) {
      // A look-ahead job: ours only if we claim it before a cancel or the
      // manager does. Either way the manager hears of it, in order.
      std::uint64_t queued = claim_word_of(h.id, claim_queued);
      if (!claim_word(h.slot - 1).compare_exchange_strong(queued, claim_word_of(h.id, claim_running),
                                                          std::memory_order_acq_rel)) {
        if (send_message(sock, {k_skipped, 0, h.id, 0, 0, 0, 0}, {}).err != 0) ::_exit(0);
        continue;
      }
    }
    int err;
    try {
      run_job(h, payload, out, known);
      err = send_message(sock, {k_result, 0, h.id, 0, 0, 0, 0}, out.view()).err;
    } catch (...) {
      describe_current_exception(type, message);
      out.clear();
      std::string bytes;
      try {
        bytes = encode_all(type, message);
      } catch (...) {
        bytes = encode_all(std::string("std::bad_alloc"), std::string());
      }
      err = send_message(sock, {k_raised, 0, h.id, 0, 0, 0, 0}, bytes).err;
    }
    if (r.large.capacity() > inline_limit) std::string().swap(r.large);
    if (err != 0) ::_exit(0);
  }
}

}  // namespace coring::detail
