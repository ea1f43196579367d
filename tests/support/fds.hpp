#pragma once
// Counting this process's descriptors, to prove a test leaks none:
//
//   const int before = coring_test::settled_fd_count();
//   ... the test ...
//   CHECK(coring_test::fd_count_returns_to(before));
//
// Counts every open descriptor except pipes and /dev/null: the sanitizers
// start a symbolizer process mid-run and talk to it over pipes, and those are
// not ours. (Tests of code that makes pipes check them by other means.)

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <string>
#include <string_view>
#include <thread>

namespace coring_test {

inline int count_fds() {
  int n = 0;
  DIR* d = ::opendir("/proc/self/fd");
  if (!d) return -1;
  const int own = ::dirfd(d);
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.' || std::atoi(e->d_name) == own) continue;
    char target[256];
    std::string path = std::string("/proc/self/fd/") + e->d_name;
    ssize_t len = ::readlink(path.c_str(), target, sizeof target - 1);
    if (len < 0) continue;
    std::string_view what(target, static_cast<std::size_t>(len));
    if (what.starts_with("pipe:") || what == "/dev/null") continue;
    ++n;
  }
  ::closedir(d);
  return n;
}

/// The count without a sanitizer's transient descriptor: the least of a few looks.
inline int settled_fd_count() {
  int least = count_fds();
  for (int i = 0; i < 3; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    least = std::min(least, count_fds());
  }
  return least;
}

/// True once the count is back to `expected` (looks a few times: a sanitizer's
/// background thread may hold one for an instant; a leak never goes away).
inline bool fd_count_returns_to(int expected) {
  for (int i = 0; i < 50; ++i) {
    if (count_fds() == expected) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

}  // namespace coring_test
