#include <coring/detail/frame_allocator.hpp>

#include <atomic>
#include <cstdint>
#include <cstdlib>
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

#else

namespace {
constexpr std::size_t granule = 16;
constexpr std::size_t classes = 32;  // frames up to 512 bytes
constexpr std::size_t chunk_bytes = 64 * 1024;

struct free_block {
  free_block* next;
};

// Every chunk ever made, so that they stay reachable (no leak reports) and
// are never freed under a live frame.
std::atomic<void*> all_chunks{nullptr};

struct thread_cache {
  free_block* lists[classes] = {};  // free blocks per size class
  char* bump = nullptr;             // unused tail of the current chunk
  char* bump_end = nullptr;
};

thread_local thread_cache cache;

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
  if (free_block* b = cache.lists[cls]) {
    cache.lists[cls] = b->next;
    return b;
  }
  return carve(cls * granule);
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
}

#endif

}  // namespace coring::detail
