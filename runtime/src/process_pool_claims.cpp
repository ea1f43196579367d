#include "process_pool_claims.hpp"

#include <coring/error.hpp>

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <mutex>
#include <new>

namespace coring::detail {

namespace {

static_assert(std::atomic<std::uint64_t>::is_always_lock_free, "claim words are shared between processes");

struct claim_table {
  std::atomic<std::uint64_t> words[claim_slots];
};

claim_table* table = nullptr;  // mapped before the fork server; the same address in workers
pid_t table_owner = 0;         // the process that mapped it

struct slot_list {
  std::mutex m;
  std::vector<std::uint32_t> free;  // slots no pool holds
  pid_t owner = 0;                  // the process they are free in
};

slot_list& slots() {
  static slot_list s;
  return s;
}

std::atomic<std::uint64_t> last_id{0};

}  // namespace

void map_claim_table() {
  pid_t me = ::getpid();
  if (table && table_owner == me) return;
  // A parent's table (inherited through fork) is left mapped: its words are
  // the parent's business, and nothing here uses them any more.
  void* p = ::mmap(nullptr, sizeof(claim_table), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw io_error(errno, "process_pool: mapping the claim table");
  table = new (p) claim_table;
  table_owner = me;
}

std::atomic<std::uint64_t>& claim_word(std::uint32_t slot) noexcept { return table->words[slot]; }

std::uint64_t next_claim_id() noexcept { return last_id.fetch_add(1, std::memory_order_relaxed) + 1; }

void take_claim_slots(std::vector<std::uint32_t>& out, std::size_t n) {
  slot_list& s = slots();
  std::lock_guard lock(s.m);
  pid_t me = ::getpid();
  if (s.owner != me) {
    s.free.clear();
    for (std::uint32_t i = claim_slots; i-- > 0;) s.free.push_back(i);
    s.owner = me;
  }
  while (n-- > 0 && !s.free.empty()) {
    out.push_back(s.free.back());
    s.free.pop_back();
  }
}

void return_claim_slots(std::vector<std::uint32_t>& slots_back) noexcept {
  slot_list& s = slots();
  std::lock_guard lock(s.m);
  if (s.owner == ::getpid()) {
    try {
      s.free.insert(s.free.end(), slots_back.begin(), slots_back.end());
    } catch (...) {
      // No memory: those slots stay unused; pools then look ahead less.
    }
  }
  slots_back.clear();
}

}  // namespace coring::detail
