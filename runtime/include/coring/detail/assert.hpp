#pragma once
// CORING_ASSERT: catches misuse that is a bug (awaiting a task twice, using a
// loop from another thread). On when CORING_DEBUG is defined (dev, asan and
// tsan presets, and every test build); compiled out otherwise.

#include <cstdio>
#include <cstdlib>

namespace coring::detail {
[[noreturn]] inline void assert_failed(const char* expr, const char* msg, const char* file, int line) noexcept {
  std::fprintf(stderr, "coring: assertion failed: %s (%s) at %s:%d\n", msg, expr, file, line);
  std::abort();
}
}  // namespace coring::detail

#if defined(CORING_DEBUG) && CORING_DEBUG
#define CORING_ASSERT(expr, msg) \
  ((expr) ? static_cast<void>(0) : ::coring::detail::assert_failed(#expr, msg, __FILE__, __LINE__))
#else
#define CORING_ASSERT(expr, msg) static_cast<void>(0)
#endif
