#pragma once
// CORING_ASSERT: catches misuse that is a bug (awaiting a task twice, a
// blocking wait on a loop thread, running a loop from another thread).
//
// On in every build without NDEBUG (a user's ordinary Debug build), off
// with NDEBUG (Release), like assert(). -DCORING_DEBUG=1 forces the checks
// on and -DCORING_DEBUG=0 forces them off, whatever NDEBUG says. The checks
// in coring's headers follow the build of the code that includes them; those
// in the compiled library (the loop's own thread and re-entrancy checks)
// follow the build of the library.

#include <cstdio>
#include <cstdlib>

namespace coring::detail {
[[noreturn]] inline void assert_failed(const char* expr, const char* msg, const char* file, int line) noexcept {
  std::fprintf(stderr, "coring: assertion failed: %s (%s) at %s:%d\n", msg, expr, file, line);
  std::abort();
}
}  // namespace coring::detail

#if defined(CORING_DEBUG)
#define CORING_CHECKS (CORING_DEBUG)
#elif defined(NDEBUG)
#define CORING_CHECKS 0
#else
#define CORING_CHECKS 1
#endif

#if CORING_CHECKS
#define CORING_ASSERT(expr, msg) \
  ((expr) ? static_cast<void>(0) : ::coring::detail::assert_failed(#expr, msg, __FILE__, __LINE__))
#else
#define CORING_ASSERT(expr, msg) static_cast<void>(0)
#endif
