// The test binaries' global operator new/delete: malloc and free, plus the
// per-thread counter and fault injection of allocations.hpp. ThreadSanitizer's
// runtime defines these operators itself (strongly), so under it nothing is
// replaced: counts stay 0 and no failure is injected (the tsan preset runs
// only the threaded suites, which do not use them).

#include "support/allocations.hpp"

#include <cstdlib>
#include <new>

namespace {
thread_local std::size_t tl_count = 0;
thread_local long tl_fail_after = -1;

[[maybe_unused]] void* counted_new(std::size_t size) {
  if (tl_fail_after == 0) throw std::bad_alloc();
  if (tl_fail_after > 0) --tl_fail_after;
  ++tl_count;
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
}  // namespace

namespace coring_test {
std::size_t allocations_on_this_thread() noexcept { return tl_count; }
void fail_allocations_after(long n) noexcept { tl_fail_after = n; }
}  // namespace coring_test

#if defined(__SANITIZE_THREAD__)
#define CORING_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CORING_TEST_TSAN 1
#endif
#endif

#if !defined(CORING_TEST_TSAN)
void* operator new(std::size_t size) { return counted_new(size); }
void* operator new[](std::size_t size) { return counted_new(size); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  try {
    return counted_new(size);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  try {
    return counted_new(size);
  } catch (...) {
    return nullptr;
  }
}
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
#endif
