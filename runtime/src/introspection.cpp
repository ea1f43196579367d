#include <coring/detail/introspection.hpp>

#include <chrono>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace coring::detail {

namespace {
struct leaf_registry {
  std::mutex m;  // registration happens at start-up, lookups on loop threads
  std::vector<std::pair<void (*)(cancel_hook*) noexcept, leaf_describer>> kinds;
};
leaf_registry& registry() {
  static leaf_registry r;
  return r;
}
}  // namespace

bool register_leaf(void (*fire)(cancel_hook*) noexcept, leaf_describer describe) noexcept {
  leaf_registry& r = registry();
  std::lock_guard lock(r.m);
  for (auto& [f, d] : r.kinds) {
    if (f == fire) return true;
  }
  try {
    r.kinds.emplace_back(fire, describe);
  } catch (...) {
    // Out of memory at start-up: that kind prints as "an operation".
  }
  return true;
}

void describe_leaf(const cancel_hook& leaf, leaf_report& out) {
  leaf_describer found = nullptr;
  {
    leaf_registry& r = registry();
    std::lock_guard lock(r.m);
    for (auto& [f, d] : r.kinds) {
      if (f == leaf.fire) found = d;
    }
  }
  if (found) {
    found(leaf, out);
  } else {
    out.what = "an operation";
  }
}

std::string describe_deadline_from_now(std::int64_t deadline_ns) {
  const std::int64_t now =
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
  const std::int64_t left = deadline_ns - now;
  if (left <= 0) return "due";
  if (left >= 10'000'000'000) return "+" + std::to_string(left / 1'000'000'000) + " s";
  return "+" + std::to_string(left / 1'000'000) + " ms";
}

}  // namespace coring::detail
