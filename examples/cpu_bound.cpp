// cpu_bound: the classic CPU-bound comparisons of the Python concurrency
// tutorials, run sequentially, on a coring::thread_pool and on a
// coring::process_pool.
//
// What it shows: three CPU-heavy workloads — the sum of squares of
// range(10,000,000) done 20 times, 20 chains of 500,000 SHA-256 hashes
// (OpenSSL's libcrypto) and fib(35) computed 20 times — first one after the
// other, then as 20 jobs each on a thread_pool, then on a process_pool with
// one worker per core. In CPython the thread pool brings nothing for such
// work (the GIL) and only processes help; here threads run truly in parallel
// too, so both speed-ups approach the number of cores.
//
// Run:   ./build/release/examples/cpu_bound            (full size, tens of seconds)
//        ./build/release/examples/cpu_bound --quick    (every size divided by ~20)
//        ./build/release/examples/cpu_bound --help
// You see, per workload, "Duration X seconds" for each mode, the speed-up of
// each pool over sequential, and a check value that must be the same in
// every mode. It ends by itself.
//
// The job functions are plain functions (no captures) taking and returning
// serialisable values, so that the process_pool runs the very same jobs in
// worker processes.

#include <coring/process_pool.hpp>
#include <coring/thread_pool.hpp>

#include <openssl/evp.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

// ---------------------------------------------------------------- the jobs

/// sum(i * i for i in range(n)), modulo 2^64 (Python's is a big integer).
std::uint64_t sum_of_squares(std::uint64_t n) {
  std::uint64_t s = 0;
  for (std::uint64_t i = 0; i < n; ++i) s += i * i;
  return s;
}

/// SHA-256 applied `rounds` times, starting from `seed`; the last digest's first 8 bytes.
/// The digest is fetched once per process and a context kept per thread:
/// OpenSSL 3's one-shot SHA256() fetches the algorithm and takes a shared
/// lock on every call, which made this 3.5x slower and kept two threads from
/// running it in parallel.
std::uint64_t sha256_chain(std::string seed, std::uint64_t rounds) {
  static EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  thread_local const std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  if (md == nullptr || ctx == nullptr) throw std::runtime_error("sha256_chain: OpenSSL has no SHA256");
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  auto hash = [&](const void* data, std::size_t size) {
    EVP_DigestInit_ex2(ctx.get(), md, nullptr);
    EVP_DigestUpdate(ctx.get(), data, size);
    EVP_DigestFinal_ex(ctx.get(), digest, &length);
  };
  hash(seed.data(), seed.size());
  for (std::uint64_t r = 1; r < rounds; ++r) hash(digest, length);
  std::uint64_t head;
  std::memcpy(&head, digest, sizeof head);
  return head;
}

/// The naive recursive Fibonacci.
std::uint64_t fib(std::uint64_t n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }

// ---------------------------------------------------------------- the workloads

constexpr int jobs_per_workload = 20;

struct workload {
  const char* name;
  // Runs job number `i` sequentially, or submits it to `pool` (a plain function
  // plus serialisable arguments in both cases).
  std::function<std::uint64_t(int)> run_one;
  std::function<coring::future<std::uint64_t>(coring::thread_pool&, int)> submit_one;
  std::function<coring::future<std::uint64_t>(coring::process_pool&, int)> submit_one_process;
};

std::vector<workload> make_workloads(bool quick) {
  const std::uint64_t squares_n = quick ? 10'000'000 / 20 : 10'000'000;
  const std::uint64_t sha_rounds = quick ? 500'000 / 20 : 500'000;
  const std::uint64_t fib_n = quick ? 29 : 35;  // fib(29) is ~1/18 of fib(35)
  return {
      {"sum of squares",
       [=](int) { return sum_of_squares(squares_n); },
       [=](coring::thread_pool& p, int) { return p.submit(&sum_of_squares, squares_n); },
       [=](coring::process_pool& p, int) { return p.submit(&sum_of_squares, squares_n); }},
      {"sha256 chains", [=](int i) { return sha256_chain("seed " + std::to_string(i), sha_rounds); },
       [=](coring::thread_pool& p, int i) { return p.submit(&sha256_chain, "seed " + std::to_string(i), sha_rounds); },
       [=](coring::process_pool& p, int i) {
         return p.submit(&sha256_chain, "seed " + std::to_string(i), sha_rounds);
       }},
      {"fib", [=](int) { return fib(fib_n); }, [=](coring::thread_pool& p, int) { return p.submit(&fib, fib_n); },
       [=](coring::process_pool& p, int) { return p.submit(&fib, fib_n); }},
  };
}

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

// ---------------------------------------------------------------- the modes

std::uint64_t run_sequential(const workload& w) {
  std::uint64_t check = 0;
  for (int i = 0; i < jobs_per_workload; ++i) check = check * 31 + w.run_one(i);
  return check;
}

// Submits the 20 jobs with `submit`, then collects them in order.
template <class Submit>
std::uint64_t run_on_pool(Submit submit) {
  std::vector<coring::future<std::uint64_t>> futures;
  for (int i = 0; i < jobs_per_workload; ++i) futures.push_back(submit(i));
  std::uint64_t check = 0;
  for (int i = 0; i < jobs_per_workload; ++i)
    check = check * 31 + futures[static_cast<std::size_t>(i)].get();
  return check;
}

}  // namespace

constexpr const char* usage =
    "usage: cpu_bound [--quick] [--help]\n"
    "  Runs three CPU-bound workloads (sum of squares, SHA-256 chains, fib) of 20 jobs\n"
    "  each: sequentially, on a coring::thread_pool and on a coring::process_pool,\n"
    "  and prints each duration and the speed-up over sequential.\n"
    "  --quick  every size divided by ~20 (a few seconds in all)\n"
    "  --help   this text\n";

int main(int argc, char** argv) {
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--quick") {
      quick = true;
    } else if (arg == "--help" || arg == "-h") {
      std::fputs(usage, stdout);
      return 0;
    } else {
      std::fprintf(stderr, "cpu_bound: unknown argument '%s'\n%s", argv[i], usage);
      return 2;
    }
  }
  // Fork the process pool's fork server while this process is single-threaded.
  coring::process_pool::start_fork_server();
  coring::thread_pool pool;     // min(32, cpus + 4) workers
  coring::process_pool procs;   // one worker process per hardware thread
  std::printf("%d jobs per workload%s; thread_pool of up to %zu workers on %u hardware threads\n",
              jobs_per_workload, quick ? " (--quick: sizes divided by ~20)" : "", pool.max_workers(),
              std::thread::hardware_concurrency());
  bool all_match = true;
  for (const workload& w : make_workloads(quick)) {
    std::printf("%s:\n", w.name);
    auto t0 = clock_type::now();
    std::uint64_t seq_check = run_sequential(w);
    double seq = seconds_since(t0);
    std::printf("  sequential   Duration %.3f seconds  (check %016llx)\n", seq,
                static_cast<unsigned long long>(seq_check));

    t0 = clock_type::now();
    std::uint64_t pool_check = run_on_pool([&](int i) { return w.submit_one(pool, i); });
    double par = seconds_since(t0);
    std::printf("  thread_pool  Duration %.3f seconds  (check %016llx)  speed-up %.2fx\n", par,
                static_cast<unsigned long long>(pool_check), par > 0 ? seq / par : 0.0);

    t0 = clock_type::now();
    std::uint64_t proc_check = run_on_pool([&](int i) { return w.submit_one_process(procs, i); });
    double proc = seconds_since(t0);
    std::printf("  process_pool Duration %.3f seconds  (check %016llx)  speed-up %.2fx\n", proc,
                static_cast<unsigned long long>(proc_check), proc > 0 ? seq / proc : 0.0);
    all_match = all_match && seq_check == pool_check && seq_check == proc_check;
  }
  pool.shutdown();
  procs.shutdown();
  if (!all_match) {
    std::printf("results differ between modes!\n");
    return 1;
  }
  return 0;
}
