#pragma once
// buffer_pool: an io_uring provided-buffer ring (IORING_REGISTER_PBUF_RING)
// for the reads of the streams one listener accepted. Private to coring::net.
//
// A read with IOSQE_BUFFER_SELECT names the pool's group; the kernel takes a
// buffer from the ring only when data arrives, so a connection waiting for
// data pins none. Buffers are made in chunks as demand grows, up to
// max_buffers; past that a read falls back to a buffer of its own. The
// ring's memory is mapped for max_buffers entries at once (16 bytes each);
// the buffers themselves are touched only when data lands in them.
//
// The kernel takes buffers from the ring in the order they were put there,
// so a ring holding every free buffer would hand out the one idle longest,
// whose memory has left the CPU's caches. Instead the ring holds only
// `depth` buffers, and the rest wait on a stack: a buffer given back goes on
// top, and each one the kernel takes is replaced by the top of the stack,
// the most recently used. A read that finds the ring empty (ENOBUFS) deepens
// it by one, making a chunk if no buffer is spare, and is submitted again:
// the depth follows the largest burst of reads completing at once.
//
// Loop thread only; reference-counted by the listener, its streams and the
// buffers they lent; the last reference unregisters the ring.

#include <coring/event_loop.hpp>

#include <cstddef>
#include <cstdint>
#include <vector>

struct io_uring;
struct io_uring_buf_ring;

namespace coring::net::detail {

class buffer_pool {
 public:
  /// A pool of buffers of `buffer_size` bytes on `loop`'s ring, growing up to
  /// `max_buffers`; one reference. **Errors:** io_error if the ring refuses
  /// the registration (kernels before 5.19).
  static buffer_pool* create(event_loop& loop, std::size_t buffer_size, unsigned max_buffers);

  void retain() noexcept { ++refs_; }
  void release() noexcept {
    if (--refs_ == 0) delete this;
  }

  /// The buffer group id reads name in sqe->buf_group.
  [[nodiscard]] std::uint16_t group() const noexcept { return group_; }
  [[nodiscard]] std::size_t buffer_size() const noexcept { return buffer_size_; }
  /// Where buffer `id` lives.
  [[nodiscard]] std::byte* data(std::uint16_t id) const noexcept {
    return chunks_[id / per_chunk] + std::size_t{id % per_chunk} * buffer_size_;
  }
  /// A read's completion carried a buffer: the kernel took one from the
  /// ring, and the most recently given back replaces it.
  void taken() noexcept;
  /// Gives buffer `id` back.
  void recycle(std::uint16_t id) noexcept;
  /// A read found the ring empty: deepens it, making buffers if none is
  /// spare. False if no buffer could be put in it now (none spare at
  /// max_buffers, or out of memory): the read then uses one of its own.
  bool refill() noexcept;
  /// Buffers made so far.
  [[nodiscard]] unsigned buffers() const noexcept { return made_; }
  /// Buffers in the ring as far as the completions seen so far tell, and
  /// how many it is kept at.
  [[nodiscard]] unsigned posted() const noexcept { return posted_; }
  [[nodiscard]] unsigned depth() const noexcept { return depth_; }
  /// The loop whose ring the pool is registered with.
  [[nodiscard]] event_loop* loop() const noexcept { return loop_; }

  static constexpr unsigned per_chunk = 32;  // buffers made at once
  static constexpr unsigned initial_depth = 8;  // buffers in the ring at first

 private:
  buffer_pool() = default;
  ~buffer_pool();
  /// Makes a chunk of buffers, onto the spare stack; false at max_buffers (or out of memory).
  bool grow() noexcept;
  /// Moves up to `n` buffers from the top of the spare stack to the ring.
  unsigned post(unsigned n) noexcept;

  event_loop* loop_ = nullptr;           // whose ring holds the registration
  ::io_uring* ring_ = nullptr;           // that ring
  ::io_uring_buf_ring* br_ = nullptr;    // the shared ring of buffer descriptors (mmap'd)
  std::size_t br_bytes_ = 0;             // its mapping's size
  unsigned entries_ = 0;                 // ring entries (a power of two ≥ max_buffers)
  unsigned max_ = 0;                     // most buffers made
  unsigned made_ = 0;                    // buffers made so far
  std::size_t buffer_size_ = 0;          // bytes per buffer
  std::vector<std::byte*> chunks_;       // per_chunk buffers each
  std::vector<std::uint16_t> spare_;     // free buffers not in the ring, most recently given back on top
  unsigned posted_ = 0;                  // buffers in the ring (put there, not yet seen taken)
  unsigned depth_ = 0;                   // how many the ring is kept at
  std::uint16_t group_ = 0;              // buffer group id
  unsigned refs_ = 1;                    // listener + streams + lent buffers
};

}  // namespace coring::net::detail
