#pragma once
// The process pool's worker process: it runs the initializer, says it is
// ready, then receives jobs in order, runs each and replies with its result
// or the exception it raised, until its socket reaches end of stream. A
// look-ahead job it runs only if it claims it first (process_pool_claims.hpp);
// one it cannot claim it skips, and says so.

#include <sys/types.h>

#include <cstddef>
#include <string>

namespace coring::detail {

/// The worker's life, on the socket `sock`; never returns. `parent` is the
/// main process (the worker exits at once if it is already gone).
[[noreturn]] void worker_main(int sock, pid_t parent, void (*initializer)(), std::size_t memory_limit);

/// The demangled type and what() of the exception being handled ("" for a
/// type not derived from std::exception). **Requires:** inside a catch block.
void describe_current_exception(std::string& type, std::string& message);

}  // namespace coring::detail
