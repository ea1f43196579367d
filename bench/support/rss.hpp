#pragma once
// Memory figures shared by a benchmark and its baseline, so that both sides
// are measured the same way. Header-only: the baselines do not link coring.

#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace bench {

/// Resident set size now, in bytes (from /proc/self/statm). Exits on failure.
inline long current_rss_bytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  long size = 0, resident = 0;
  if (!f || std::fscanf(f, "%ld %ld", &size, &resident) != 2) {
    std::fprintf(stderr, "bench: cannot read /proc/self/statm\n");
    std::exit(1);
  }
  std::fclose(f);
  return resident * sysconf(_SC_PAGESIZE);
}

/// Peak resident set size so far, in KiB.
inline long peak_rss_kib() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;  // KiB on Linux
}

}  // namespace bench
