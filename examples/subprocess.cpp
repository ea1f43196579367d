// subprocess: three programs at once through pipes — ls, sort and gzip — and
// their outputs gathered (asyncio.create_subprocess_exec + gather).
//
//   build/release/examples/subprocess [directory]      (default: the current one)
//
// `ls -l` lists the directory, `sort` sorts a few words fed to its stdin,
// `gzip -c` compresses 4 MiB of text fed to its stdin; all three run
// concurrently (none waits for another, and no pipe fills up and blocks a
// child), each is waited for through its pidfd in the ring, and the three
// results print together: the listing's first lines, the sorted words, the
// compressed size. Then a fourth, `sleep 10`, is given 100 ms under
// coring::timeout: it is killed and reaped, and the timeout reported. It ends
// by itself; Ctrl-C kills and reaps the children and exits with status 130.

#include <coring/coring.hpp>

#include <chrono>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

using namespace std::chrono_literals;

namespace {

// The first `n` lines of `text`.
std::string head(std::string_view text, int n) {
  std::size_t end = 0;
  for (int i = 0; i < n; ++i) {
    const std::size_t newline = text.find('\n', end);
    if (newline == std::string_view::npos) return std::string(text);
    end = newline + 1;
  }
  return std::string(text.substr(0, end));
}

coring::task<std::string> list(std::string directory) {
  auto ls = co_await coring::subprocess::exec({"ls", "-l", directory}, {.stdout = coring::stdio::pipe});
  auto out = co_await ls.communicate();
  if (out.returncode != 0) co_return "ls failed with status " + std::to_string(out.returncode) + "\n";
  co_return out.out;
}

coring::task<std::string> sort_words() {
  auto sort = co_await coring::subprocess::exec(
      {"sort"}, {.stdin = coring::stdio::pipe, .stdout = coring::stdio::pipe});
  auto out = co_await sort.communicate("pear\nfig\napple\nquince\nbanana\n");
  co_return out.out;
}

coring::task<std::size_t> compressed_size(std::size_t bytes) {
  std::string text;
  while (text.size() < bytes) text += "the quick brown fox jumps over the lazy dog, again and again\n";
  auto gzip = co_await coring::subprocess::exec(
      {"gzip", "-c"}, {.stdin = coring::stdio::pipe, .stdout = coring::stdio::pipe});
  auto out = co_await gzip.communicate(std::move(text));
  co_return out.out.size();
}

coring::task<> run_all(std::string directory) {
  const auto start = std::chrono::steady_clock::now();
  auto [listing, sorted, gz] =
      co_await coring::gather(list(directory), sort_words(), compressed_size(4u << 20));
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  std::printf("ls -l %s (first lines):\n%s", directory.c_str(), head(listing, 4).c_str());
  std::printf("sort:\n%s", sorted.c_str());
  std::printf("gzip -c: 4 MiB of text -> %zu bytes\n", gz);
  std::printf("all three together in %.0f ms\n", ms);

  try {
    co_await coring::timeout(100ms, []() -> coring::task<> {
      auto sleeper = co_await coring::subprocess::exec({"sleep", "10"});
      (void)co_await sleeper.wait();  // cancelled at the deadline: the child is killed and reaped
    });
  } catch (const coring::timeout_error& e) {
    std::printf("sleep 10: %s (killed and reaped)\n", e.what());
  }
}

}  // namespace

int main(int argc, char** argv) {
  try {
    coring::run(run_all(argc > 1 ? argv[1] : "."));
  } catch (const coring::interrupted&) {
    std::printf("interrupted: the children were killed and reaped\n");
    return 130;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "subprocess: %s\n", e.what());
    return 1;
  }
}
