// channel: plain threads feed a task on the loop through a bounded channel.
//
//   build/release/examples/channel
//
// Three threads (a stand-in for a blocking library: a sensor, a file
// watcher) each send readings with blocking_send(); a task on the loop
// receives them as they come, without blocking the loop, and prints a line
// per reading and a total. The channel holds at most 4 readings: a thread
// that gets ahead blocks until the loop catches up. When the last thread has
// sent its readings it closes the channel, and the receiving loop ends. It
// ends by itself.

#include <coring/coring.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

struct reading {
  int sensor;
  int value;
};

coring::task<int> print_readings(coring::channel<reading>& readings) {
  int total = 0;
  while (auto r = co_await readings.receive()) {  // nullopt once closed and drained
    std::printf("sensor %d: %d\n", r->sensor, r->value);
    total += r->value;
  }
  co_return total;
}

}  // namespace

int main() {
  coring::channel<reading> readings(4);  // at most 4 waiting: a fast sensor waits for the loop
  std::atomic<int> running{3};
  std::vector<std::thread> sensors;
  for (int s = 1; s <= 3; ++s) {
    sensors.emplace_back([&readings, &running, s] {
      for (int i = 0; i < 4; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5 * s));
        readings.blocking_send({s, s * 10 + i});  // plain code: blocks while the channel is full
      }
      if (--running == 0) readings.close();  // the last one closes
    });
  }
  const int total = coring::run(print_readings(readings));
  for (auto& t : sensors) t.join();
  std::printf("total: %d\n", total);
}
