// countdown: results in the order they finish (as_completed), and a deadline
// on a task that takes too long (wait_for).
//
//   build/release/examples/countdown
//
// Five countdowns of different lengths start together; each line appears as
// soon as its countdown ends — shortest first, not in the order they were
// started. The failing one ("D") is reported at its turn and the rest go on.
// Then a countdown that would take 2 s gets 150 ms: wait_for cancels it
// (its sleep ends at once) and reports coring::timeout_error.

#include <coring/coring.hpp>

#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

using namespace std::chrono_literals;

namespace {

coring::task<std::string> countdown(std::string name, int from, std::chrono::milliseconds tick) {
  for (int i = from; i > 0; --i) co_await coring::sleep_for(tick);
  if (name == "D") throw std::runtime_error("countdown " + name + " lost its way");
  co_return name + " (" + std::to_string(from) + " ticks of " + std::to_string(tick.count()) + " ms)";
}

coring::task<> run_countdowns() {
  std::vector<coring::task<std::string>> countdowns;
  countdowns.push_back(countdown("A", 5, 20ms));
  countdowns.push_back(countdown("B", 2, 20ms));
  countdowns.push_back(countdown("C", 3, 30ms));
  countdowns.push_back(countdown("D", 1, 50ms));
  countdowns.push_back(countdown("E", 1, 10ms));

  co_await coring::as_completed(std::move(countdowns), [](auto& finished) -> coring::task<> {
    while (!finished.done()) {
      try {
        std::string who = co_await finished.next();
        std::printf("done:   %s\n", who.c_str());
      } catch (const std::exception& e) {
        std::printf("failed: %s\n", e.what());
      }
    }
  });

  auto before = coring::clock::now();
  try {
    co_await coring::wait_for(countdown("slow", 20, 100ms), 150ms);
  } catch (const coring::timeout_error& e) {
    auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(coring::clock::now() - before);
    std::printf("timeout after %lld ms: %s\n", static_cast<long long>(waited.count()), e.what());
  }
}

}  // namespace

int main() {
  coring::run(run_countdowns());
  return 0;
}
