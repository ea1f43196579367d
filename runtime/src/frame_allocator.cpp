#include <coring/detail/frame_allocator.hpp>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <new>

#if defined(__SANITIZE_ADDRESS__)
#define CORING_PLAIN_FRAMES 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CORING_PLAIN_FRAMES 1
#endif
#endif

namespace coring::detail {

#if defined(CORING_PLAIN_FRAMES)

void* allocate_frame(std::size_t size) { return ::operator new(size); }
void free_frame(void* p, std::size_t) noexcept { ::operator delete(p); }
frame_cache_stats frame_cache_statistics() noexcept { return {}; }

#else

namespace {
constexpr std::size_t granule = 16;
constexpr std::size_t classes = 32;         // frames up to 512 bytes
constexpr std::size_t chunk_bytes = 64 * 1024;
constexpr std::size_t batch = 64;           // blocks moved between a thread and the depot at once
constexpr std::size_t local_limit = 4 * batch;  // blocks a thread keeps per class before it gives a batch back

struct free_block {
  free_block* next;        // next block of the list (or of the batch)
  free_block* next_batch;  // in the depot, on a batch's first block: the next batch
};
static_assert(sizeof(free_block) <= granule, "a free block must fit the smallest size class");

// Every chunk ever made, so that they stay reachable (no leak reports) and
// are never freed under a live frame.
std::atomic<void*> all_chunks{nullptr};

// Blocks that threads gave back, per size class, in batches: a thread that
// frees more frames than it makes (every frame made by a plain thread and
// ended on a loop, as run_coroutine_threadsafe does) returns them here, and
// a thread that makes more than it frees takes them, so no cache grows
// without bound. One lock per batch of 64 frees or allocations.
struct depot_class {
  std::mutex m;
  free_block* batches = nullptr;  // stack of batches linked by next_batch
  std::size_t count = 0;          // batches held
};
depot_class depot[classes];

struct thread_cache {
  free_block* lists[classes] = {};  // free blocks per size class
  std::size_t counts[classes] = {};  // their lengths
  char* bump = nullptr;             // unused tail of the current chunk
  char* bump_end = nullptr;
  ~thread_cache();
};

thread_local thread_cache cache;

void give_back(std::size_t cls, free_block* first) noexcept {
  depot_class& d = depot[cls];
  std::lock_guard lock(d.m);
  first->next_batch = d.batches;
  d.batches = first;
  ++d.count;
}

free_block* take_batch(std::size_t cls, std::size_t& n) noexcept {
  depot_class& d = depot[cls];
  free_block* first;
  {
    std::lock_guard lock(d.m);
    first = d.batches;
    if (!first) return nullptr;
    d.batches = first->next_batch;
    --d.count;
  }
  n = 0;
  for (free_block* b = first; b; b = b->next) ++n;
  return first;
}

// A thread that ends hands its free blocks to the depot for the others.
thread_cache::~thread_cache() {
  for (std::size_t cls = 0; cls < classes; ++cls) {
    while (free_block* first = lists[cls]) {
      free_block* last = first;
      for (std::size_t k = 1; k < batch && last->next; ++k) last = last->next;
      lists[cls] = last->next;
      last->next = nullptr;
      give_back(cls, first);
    }
    counts[cls] = 0;
  }
}

void* carve(std::size_t bytes) {
  if (static_cast<std::size_t>(cache.bump_end - cache.bump) < bytes) {
    char* chunk = static_cast<char*>(std::malloc(chunk_bytes));
    if (!chunk) throw std::bad_alloc();
    // The chunk's first granule links it into all_chunks.
    void* head = all_chunks.load(std::memory_order_relaxed);
    do {
      *reinterpret_cast<void**>(chunk) = head;
    } while (!all_chunks.compare_exchange_weak(head, chunk, std::memory_order_release, std::memory_order_relaxed));
    cache.bump = chunk + granule;
    cache.bump_end = chunk + chunk_bytes;
  }
  void* p = cache.bump;
  cache.bump += bytes;
  return p;
}
}  // namespace

void* allocate_frame(std::size_t size) {
  std::size_t cls = (size + granule - 1) / granule;
  if (cls >= classes) return ::operator new(size);
  free_block* b = cache.lists[cls];
  if (!b) {
    std::size_t n = 0;
    b = take_batch(cls, n);
    if (!b) return carve(cls * granule);
    cache.counts[cls] = n;
  }
  cache.lists[cls] = b->next;
  --cache.counts[cls];
  return b;
}

void free_frame(void* p, std::size_t size) noexcept {
  std::size_t cls = (size + granule - 1) / granule;
  if (cls >= classes) {
    ::operator delete(p);
    return;
  }
  auto* b = static_cast<free_block*>(p);
  b->next = cache.lists[cls];
  cache.lists[cls] = b;
  if (++cache.counts[cls] > local_limit) {
    // Give the newest `batch` blocks back; keep the rest warm here.
    free_block* first = cache.lists[cls];
    free_block* last = first;
    for (std::size_t k = 1; k < batch; ++k) last = last->next;
    cache.lists[cls] = last->next;
    last->next = nullptr;
    cache.counts[cls] -= batch;
    give_back(cls, first);
  }
}

frame_cache_stats frame_cache_statistics() noexcept {
  frame_cache_stats s;
  for (std::size_t cls = 0; cls < classes; ++cls) {
    s.thread_cached_bytes += cache.counts[cls] * cls * granule;
    std::lock_guard lock(depot[cls].m);
    s.depot_bytes += depot[cls].count * batch * cls * granule;
  }
  return s;
}

#endif

}  // namespace coring::detail
