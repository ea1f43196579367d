#pragma once
// Where task frames come from. Internal.
//
// Frames up to 1,008 bytes come from per-thread free lists, one per 16-byte
// size class, carved from 64 KiB chunks: no malloc header per frame and no
// lock. A thread keeps at most 256 free blocks per class; past that it gives
// a batch of 64 back to a shared depot, where a thread whose list runs dry
// takes a batch before it carves new memory. So a frame made on one thread
// and freed on another (run_coroutine_threadsafe does that for every task)
// is reused, and no cache grows without bound. Chunks are kept for the life
// of the process (memory of a burst of tasks is reused, not returned to the
// system). Under AddressSanitizer every frame is a plain operator new, so
// that a use after free stays visible.

#include <cstddef>

namespace coring::detail {

void* allocate_frame(std::size_t size);
void free_frame(void* p, std::size_t size) noexcept;

/// Free frame memory held now, for tests (zero under AddressSanitizer).
struct frame_cache_stats {
  std::size_t thread_cached_bytes = 0;  ///< in the calling thread's lists
  std::size_t depot_bytes = 0;          ///< in the shared depot (about)
};
frame_cache_stats frame_cache_statistics() noexcept;

}  // namespace coring::detail
