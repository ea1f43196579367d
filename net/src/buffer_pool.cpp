#include "buffer_pool.hpp"

#include <coring/detail/assert.hpp>
#include <coring/detail/loop_access.hpp>
#include <coring/error.hpp>
#include <coring/net/lent_buffer.hpp>

#include <liburing.h>
#include <sys/mman.h>

#include <atomic>
#include <bit>
#include <cstdlib>
#include <new>

namespace coring::net::detail {

namespace {
// Group ids must be unique per ring; one counter for the process keeps them
// apart (a collision, possible only after 65,536 pools, is retried).
std::atomic<std::uint16_t> next_group{1};
}  // namespace

buffer_pool* buffer_pool::create(event_loop& loop, std::size_t buffer_size, unsigned max_buffers) {
  if (max_buffers < per_chunk) max_buffers = per_chunk;
  if (max_buffers > 32768) max_buffers = 32768;
  auto* p = new buffer_pool();
  p->loop_ = &loop;
  p->ring_ = &coring::detail::loop_access::ring(loop);
  p->buffer_size_ = buffer_size;
  p->max_ = max_buffers;
  p->entries_ = std::bit_ceil(max_buffers);
  p->br_bytes_ = p->entries_ * sizeof(io_uring_buf);
  void* mem = ::mmap(nullptr, p->br_bytes_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (mem == MAP_FAILED) {
    int err = errno;
    delete p;
    throw io_error(err, "net: mapping a provided-buffer ring");
  }
  p->br_ = static_cast<io_uring_buf_ring*>(mem);
  io_uring_buf_ring_init(p->br_);
  int r = -EEXIST;
  for (int attempt = 0; attempt < 8 && r == -EEXIST; ++attempt) {
    p->group_ = next_group.fetch_add(1, std::memory_order_relaxed);
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<std::uint64_t>(mem);
    reg.ring_entries = p->entries_;
    reg.bgid = p->group_;
    r = io_uring_register_buf_ring(p->ring_, &reg, 0);
  }
  if (r < 0) {
    ::munmap(mem, p->br_bytes_);
    p->br_ = nullptr;
    delete p;
    throw io_error(-r, "net: registering a provided-buffer ring (IORING_REGISTER_PBUF_RING needs Linux 5.19)");
  }
  if (!p->grow()) {
    p->release();
    throw std::bad_alloc();
  }
  p->depth_ = initial_depth;
  p->post(p->depth_);
  return p;
}

buffer_pool::~buffer_pool() {
  CORING_ASSERT(event_loop::current() == loop_ || br_ == nullptr,
                "a listener's streams and lent buffers must die before its event loop, on its thread");
  if (br_) {
    io_uring_unregister_buf_ring(ring_, group_);
    ::munmap(br_, br_bytes_);
  }
  for (std::byte* c : chunks_) std::free(c);
}

bool buffer_pool::grow() noexcept {
  if (made_ + per_chunk > max_) return false;
  const std::size_t bytes = (per_chunk * buffer_size_ + 4095) / 4096 * 4096;  // aligned_alloc wants a multiple
  auto* chunk = static_cast<std::byte*>(std::aligned_alloc(4096, bytes));
  if (!chunk) return false;
  try {
    chunks_.push_back(chunk);
    spare_.reserve(made_ + per_chunk);  // so that recycle() never allocates
  } catch (...) {
    if (!chunks_.empty() && chunks_.back() == chunk) chunks_.pop_back();
    std::free(chunk);
    return false;
  }
  // The chunk's first buffer ends on top.
  for (unsigned i = per_chunk; i-- > 0;) spare_.push_back(static_cast<std::uint16_t>(made_ + i));
  made_ += per_chunk;
  return true;
}

unsigned buffer_pool::post(unsigned n) noexcept {
  const int mask = io_uring_buf_ring_mask(entries_);
  unsigned k = 0;
  for (; k < n && !spare_.empty(); ++k) {
    const std::uint16_t id = spare_.back();
    spare_.pop_back();
    io_uring_buf_ring_add(br_, data(id), static_cast<unsigned>(buffer_size_), id, mask, static_cast<int>(k));
  }
  if (k) {
    io_uring_buf_ring_advance(br_, static_cast<int>(k));
    posted_ += k;
  }
  return k;
}

void buffer_pool::taken() noexcept {
  if (posted_ > 0) --posted_;
  if (posted_ < depth_) post(depth_ - posted_);
}

void buffer_pool::recycle(std::uint16_t id) noexcept {
  spare_.push_back(id);  // within the capacity reserved when the buffer was made
  if (posted_ < depth_) post(depth_ - posted_);
}

bool buffer_pool::refill() noexcept {
  // Completions are seen in the order the kernel made them, so those that
  // took the ring's last buffers have been seen, and taken() has topped it
  // up since: this read is one more than the ring was deep for. Deepen it
  // by one per such read, so that its depth follows the largest burst.
  // Only a buffer put in now is sure to be there for the resubmitted read
  // (were posted_ ever to overcount, trusting it could resubmit forever).
  if (depth_ < max_) ++depth_;
  if (spare_.empty()) (void)grow();
  return post(depth_ > posted_ ? depth_ - posted_ : 1) > 0;
}

void give_back(buffer_pool* pool, std::uint16_t id) noexcept {
  pool->recycle(id);
  pool->release();
}

}  // namespace coring::net::detail
