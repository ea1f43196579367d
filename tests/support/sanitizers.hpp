#pragma once
// Which sanitizer this test binary is built with, for the few tests whose
// subject a sanitizer replaces (under ASan every coroutine frame is a plain
// operator new, and freed memory sits in quarantine).

namespace coring_test {

#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool under_asan = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool under_asan = true;
#else
inline constexpr bool under_asan = false;
#endif
#else
inline constexpr bool under_asan = false;
#endif

}  // namespace coring_test
