// hello: two tasks sleeping concurrently — the first example of the asyncio
// tutorial, in C++.
//
//   ./scripts/demo                      (or build/release/examples/hello)
//
// You should see "hello" after ~0.1 s, "world" after ~0.2 s, and a total of
// about 0.2 s, not 0.3 s: the two sleeps overlap on one thread.

#include <coring/coring.hpp>

#include <chrono>
#include <cstdio>
#include <string>

using namespace std::chrono_literals;

namespace {

const auto started = std::chrono::steady_clock::now();

double seconds_since_start() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
}

coring::task<std::string> say_after(std::chrono::milliseconds delay, std::string what) {
  co_await coring::sleep_for(delay);
  std::printf("%5.3f s  %s\n", seconds_since_start(), what.c_str());
  co_return what;
}

coring::task<> hello() {
  std::printf("%5.3f s  started\n", seconds_since_start());
  auto [first, second] = co_await coring::gather(say_after(100ms, "hello"), say_after(200ms, "world"));
  std::printf("%5.3f s  finished: %s %s (concurrently: 0.1 s + 0.2 s took ~0.2 s)\n", seconds_since_start(),
              first.c_str(), second.c_str());
}

}  // namespace

int main() {
  coring::run(hello());
  return 0;
}
