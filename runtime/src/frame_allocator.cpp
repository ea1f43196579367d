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
constexpr std::size_t classes = 64;             // frames up to 1,008 bytes (class 0 is never used)
constexpr std::size_t chunk_bytes = 64 * 1024;
constexpr std::size_t batch = 64;               // blocks moved between a thread and the depot at once
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

// Kept trivially destructible, so that the hot paths reach it without the
// guard that a thread_local with a destructor needs on every access; the
// clean-up at thread exit lives in cache_owner, touched only on slow paths.
struct thread_cache {
  struct bin {
    free_block* head;   // free blocks of this size class
    std::size_t count;  // their number
  };
  bin bins[classes];  // per size class: head and count on one line
  char* bump;         // unused tail of the current chunk
  char* bump_end;
};

thread_local thread_cache cache{};

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
struct cache_owner {
  ~cache_owner() {
    for (std::size_t cls = 0; cls < classes; ++cls) {
      thread_cache::bin& bin = cache.bins[cls];
      while (free_block* first = bin.head) {
        free_block* last = first;
        for (std::size_t k = 1; k < batch && last->next; ++k) last = last->next;
        bin.head = last->next;
        last->next = nullptr;
        give_back(cls, first);
      }
      bin.count = 0;
    }
  }
};
thread_local cache_owner owner;

void* carve(std::size_t bytes) {
  thread_cache& c = cache;
  if (static_cast<std::size_t>(c.bump_end - c.bump) < bytes) {
    (void)&owner;  // a thread that carves registers its clean-up at exit
    char* chunk = static_cast<char*>(std::malloc(chunk_bytes));
    if (!chunk) throw std::bad_alloc();
    // The chunk's first granule links it into all_chunks.
    void* head = all_chunks.load(std::memory_order_relaxed);
    do {
      *reinterpret_cast<void**>(chunk) = head;
    } while (!all_chunks.compare_exchange_weak(head, chunk, std::memory_order_release, std::memory_order_relaxed));
    c.bump = chunk + granule;
    c.bump_end = chunk + chunk_bytes;
  }
  void* p = c.bump;
  c.bump += bytes;
  return p;
}
}  // namespace

namespace {
// The slow paths, out of line so that the fast ones stay a few instructions
// with one thread-local lookup (the library is position-independent, so a
// lookup is a call).
[[gnu::noinline]] void* allocate_slow(thread_cache::bin& bin, std::size_t cls) {
  std::size_t n = 0;
  free_block* b = take_batch(cls, n);
  if (!b) return carve(cls * granule);
  (void)&owner;  // this thread now holds blocks: give them back when it ends
  bin.head = b->next;
  bin.count = n - 1;
  return b;
}

[[gnu::noinline]] void give_batch_back(thread_cache::bin& bin, std::size_t cls) noexcept {
  // Give the newest `batch` blocks back; keep the rest warm here.
  (void)&owner;
  free_block* first = bin.head;
  free_block* last = first;
  for (std::size_t k = 1; k < batch; ++k) last = last->next;
  bin.head = last->next;
  last->next = nullptr;
  bin.count -= batch;
  give_back(cls, first);
}
}  // namespace

void* allocate_frame(std::size_t size) {
  const std::size_t cls = (size + granule - 1) / granule;
  if (cls >= classes) return ::operator new(size);
  thread_cache::bin& bin = cache.bins[cls];
  free_block* b = bin.head;
  if (!b) return allocate_slow(bin, cls);
  bin.head = b->next;
  --bin.count;
  return b;
}

void free_frame(void* p, std::size_t size) noexcept {
  const std::size_t cls = (size + granule - 1) / granule;
  if (cls >= classes) {
    ::operator delete(p);
    return;
  }
  thread_cache::bin& bin = cache.bins[cls];
  auto* b = static_cast<free_block*>(p);
  b->next = bin.head;
  bin.head = b;
  if (++bin.count > local_limit) give_batch_back(bin, cls);
}

frame_cache_stats frame_cache_statistics() noexcept {
  frame_cache_stats s;
  for (std::size_t cls = 0; cls < classes; ++cls) {
    s.thread_cached_bytes += cache.bins[cls].count * cls * granule;
    std::lock_guard lock(depot[cls].m);
    s.depot_bytes += depot[cls].count * batch * cls * granule;
  }
  return s;
}

#endif

}  // namespace coring::detail
