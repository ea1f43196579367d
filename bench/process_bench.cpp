// process_bench: coring::process_pool's round trip, throughput and scaling,
// beside the floor under them.
//
// Measures, on the same machine and in the same run as
// bench/process_bench_python.py (Python's concurrent.futures.ProcessPoolExecutor):
//   floor        a bare SOCK_SEQPACKET ping-pong of 64 bytes between this
//                process and a forked child: the least a round trip to another
//                process costs here, in microseconds
//   round_trip   one trivial job at a time (submit, then get) on 2 workers, in microseconds
//   batch        BATCH trivial jobs submitted at once, then all collected, in jobs per second
//   speedup      JOBS CPU-bound jobs (fib(FIB_N), ~100 ms each) on 2 workers vs on 1:
//                wall-time ratio (x)
// The machine is shared and noisy, so every figure is the median of SAMPLES
// samples, and the samples of figures compared with each other are
// interleaved: floor and round trip alternate, and so do the 1-worker and
// 2-worker batches of CPU-bound jobs (the speed-up is the median of the
// ratios of each pair).
//
// usage: process_bench [samples=5] [round_trips=2000] [batch=20000] [jobs=12] [fib_n=39]
// Prints one line: coring floor_us=<f> round_trip_us=<f> round_trip_per_s=<f> batch_per_s=<f>
//                  cpu1_s=<f> cpu2_s=<f> speedup=<f>
// bench/run_process_bench runs this and the Python program and prints the ratios.

#include <coring/process_pool.hpp>

#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {

int trivial(int x) { return x + 1; }
long fib(int n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// The floor: a child process that echoes every 64-byte message back.
struct echo_child {
  int sock = -1;
  pid_t pid = -1;

  echo_child() {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) std::exit(1);
    pid = ::fork();
    if (pid == 0) {
      // Nothing of the parent's but stdio and its end of the pair (the fork
      // server's socket among them: it must see end of stream when we end).
      if (sv[1] > 3) ::close_range(3, static_cast<unsigned>(sv[1]) - 1, 0);
      ::close_range(static_cast<unsigned>(sv[1]) + 1, ~0U, 0);
      char buf[64];
      for (;;) {
        ssize_t n = ::recv(sv[1], buf, sizeof buf, 0);
        if (n <= 0 || ::send(sv[1], buf, static_cast<std::size_t>(n), MSG_NOSIGNAL) != n) ::_exit(0);
      }
    }
    ::close(sv[1]);
    sock = sv[0];
  }
  ~echo_child() {
    ::close(sock);  // the child reads end of stream and exits
    ::waitpid(pid, nullptr, 0);
  }

  // Microseconds per round trip, over n of them.
  double sample(int n) const {
    char buf[64] = {1};
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < n; ++i) {
      if (::send(sock, buf, sizeof buf, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof buf) ||
          ::recv(sock, buf, sizeof buf, 0) != static_cast<ssize_t>(sizeof buf)) {
        std::exit(1);
      }
    }
    return seconds_since(t0) * 1e6 / n;
  }
};

// Microseconds per job, one at a time, over n of them.
double round_trip_sample(coring::process_pool& pool, int n) {
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) {
    if (pool.submit(trivial, i).get() != i + 1) std::exit(1);
  }
  return seconds_since(t0) * 1e6 / n;
}

// Jobs per second, n in flight at once.
double batch_sample(coring::process_pool& pool, int n) {
  auto t0 = std::chrono::steady_clock::now();
  std::vector<coring::future<int>> fs;
  fs.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) fs.push_back(pool.submit(trivial, i));
  for (int i = 0; i < n; ++i) {
    if (fs[static_cast<std::size_t>(i)].get() != i + 1) std::exit(1);
  }
  return n / seconds_since(t0);
}

// Seconds for `jobs` fib(fib_n) jobs.
double cpu_sample(coring::process_pool& pool, int jobs, int fib_n) {
  auto t0 = std::chrono::steady_clock::now();
  std::vector<coring::future<long>> fs;
  for (int i = 0; i < jobs; ++i) fs.push_back(pool.submit(fib, fib_n));
  long sum = 0;
  for (auto& f : fs) sum += f.get();
  if (sum == 42) std::puts("");  // keep the work
  return seconds_since(t0);
}

void warm_up(coring::process_pool& pool) {
  std::vector<coring::future<long>> warm;  // every worker started and warm
  for (unsigned i = 0; i < 2 * pool.size(); ++i) warm.push_back(pool.submit(fib, 25));
  for (auto& f : warm) (void)f.get();
}

}  // namespace

int main(int argc, char** argv) {
  coring::process_pool::start_fork_server();
  const int samples = argc > 1 ? std::atoi(argv[1]) : 5;
  const int round_trips = argc > 2 ? std::atoi(argv[2]) : 2000;
  const int batch = argc > 3 ? std::atoi(argv[3]) : 20000;
  const int jobs = argc > 4 ? std::atoi(argv[4]) : 12;
  const int fib_n = argc > 5 ? std::atoi(argv[5]) : 39;
  if (samples < 1 || round_trips < 1 || batch < 1 || jobs < 1) {
    std::fprintf(stderr, "usage: process_bench [samples] [round_trips] [batch] [jobs] [fib_n]\n");
    return 2;
  }

  std::vector<double> floor_us, rt_us, batch_rate, cpu1, cpu2, ratio;
  {
    echo_child echo;  // forked before the pool's manager thread exists
    coring::process_pool pool({.workers = 2});
    warm_up(pool);
    (void)echo.sample(100);
    for (int s = 0; s < samples; ++s) {
      floor_us.push_back(echo.sample(round_trips));
      rt_us.push_back(round_trip_sample(pool, round_trips));
    }
    for (int s = 0; s < samples; ++s) batch_rate.push_back(batch_sample(pool, batch));
  }
  {
    coring::process_pool one({.workers = 1});
    coring::process_pool two({.workers = 2});
    warm_up(one);
    warm_up(two);
    for (int s = 0; s < samples; ++s) {
      cpu1.push_back(cpu_sample(one, jobs, fib_n));
      cpu2.push_back(cpu_sample(two, jobs, fib_n));
      ratio.push_back(cpu1.back() / cpu2.back());
    }
  }
  const double rt = median(rt_us);
  std::printf(
      "coring floor_us=%.2f round_trip_us=%.2f round_trip_per_s=%.0f batch_per_s=%.0f cpu1_s=%.3f cpu2_s=%.3f "
      "speedup=%.2f\n",
      median(floor_us), rt, 1e6 / rt, median(batch_rate), median(cpu1), median(cpu2), median(ratio));
}
