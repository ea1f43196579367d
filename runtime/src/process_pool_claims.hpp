#pragma once
// The process pool's claim words: a table shared (MAP_SHARED, mapped before
// the fork server is forked, so at the same address in every worker) by this
// process and its workers. A job written ahead to a busy worker (a
// look-ahead job) gets a slot; the slot's word holds the job's claim id and
// who has claimed it. The worker claims queued → running before it begins the
// job; a cancel claims queued → cancelled, the manager queued → taken_back;
// one compare-exchange decides, and the loser knows it. A worker skips a job
// it could not claim.
//
// The table lives as long as the process, so a future's cancel hook may read
// a slot whatever became of the pool; claim ids are never reused, so a slot
// given to another job since is told apart.

#include <atomic>
#include <cstdint>
#include <vector>

namespace coring::detail {

/// Who holds a look-ahead job (the low 3 bits of its claim word).
enum claim_state : std::uint64_t {
  claim_queued = 1,      // written to the worker, not begun: the first claim wins
  claim_running = 2,     // the worker began it
  claim_cancelled = 3,   // a cancel claimed it: it never runs
  claim_taken_back = 4,  // the manager claimed it back: it runs elsewhere
};

/// A claim word: the job's claim id, then its claim_state.
constexpr std::uint64_t claim_word_of(std::uint64_t id, claim_state st) noexcept { return id << 3 | st; }
constexpr std::uint64_t claim_id_of(std::uint64_t word) noexcept { return word >> 3; }
constexpr claim_state claim_state_of(std::uint64_t word) noexcept { return static_cast<claim_state>(word & 7); }

/// The number of slots in the table (shared by every pool of the process).
constexpr std::uint32_t claim_slots = 4096;

/// Maps the table unless this process has its own already (a process forked
/// from one that had it maps a new one: its parent's is not its own).
/// Called before the fork server is forked. **Errors:** io_error if mmap fails.
void map_claim_table();

/// The word of slot `slot`. **Requires:** the table is mapped, slot < claim_slots.
std::atomic<std::uint64_t>& claim_word(std::uint32_t slot) noexcept;

/// A new claim id, never given before in this process (ids fit in 48 bits for
/// centuries, which leaves 16 for the slot in a job's ticket).
std::uint64_t next_claim_id() noexcept;

/// Moves up to `n` free slots into `out`; fewer (maybe none) when the table
/// is used up. **Thread safety:** any thread.
void take_claim_slots(std::vector<std::uint32_t>& out, std::size_t n);
/// Gives `slots` back (and clears it). **Requires:** no worker will touch them again.
void return_claim_slots(std::vector<std::uint32_t>& slots) noexcept;

}  // namespace coring::detail
