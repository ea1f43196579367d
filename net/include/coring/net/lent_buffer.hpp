#pragma once
// net::lent_buffer: bytes a stream read into a buffer it lends, and gives
// back when the buffer dies.
//
//   net::lent_buffer b = co_await conn.read_lent();   // empty = end of stream
//   co_await conn.write_all(b.bytes());               // echo without a copy
//   // b's destructor returns the buffer to the listener's pool
//
// Streams accepted by a listener read into io_uring provided buffers (a
// buffer ring registered once per listener): the kernel picks a buffer only
// when data arrives, so a connection waiting for data pins no buffer at all.
// Holding a lent_buffer holds one pool buffer: give it back (destroy it or
// reset()) before the next wait on the network.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <utility>

namespace coring::net {

namespace detail {
class buffer_pool;
/// Returns buffer `id` to its pool's ring and drops the reference the lent buffer held.
void give_back(buffer_pool* pool, std::uint16_t id) noexcept;
}  // namespace detail

class lent_buffer {
 public:
  /// No bytes (what a read at end of stream gives).
  lent_buffer() noexcept = default;
  lent_buffer(lent_buffer&& o) noexcept
      : pool_(std::exchange(o.pool_, nullptr)), data_(std::exchange(o.data_, nullptr)),
        size_(std::exchange(o.size_, 0)), id_(std::exchange(o.id_, -1)) {}
  lent_buffer& operator=(lent_buffer&& o) noexcept {
    if (this != &o) {
      reset();
      pool_ = std::exchange(o.pool_, nullptr);
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
      id_ = std::exchange(o.id_, -1);
    }
    return *this;
  }
  lent_buffer(const lent_buffer&) = delete;
  lent_buffer& operator=(const lent_buffer&) = delete;
  /// Gives the buffer back.
  ~lent_buffer() { reset(); }

  /// The bytes read (valid while this lives).
  [[nodiscard]] std::span<std::byte> bytes() const noexcept { return {data_, size_}; }
  [[nodiscard]] std::string_view text() const noexcept { return {reinterpret_cast<const char*>(data_), size_}; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
  [[nodiscard]] std::byte* data() const noexcept { return data_; }
  /// Gives the buffer back now; leaves this empty.
  /// **Thread safety:** on the loop thread of the stream that lent it.
  void reset() noexcept {
    if (pool_) {
      detail::give_back(pool_, static_cast<std::uint16_t>(id_));
    } else if (id_ == heap_id) {
      delete[] data_;
    }
    pool_ = nullptr;
    data_ = nullptr;
    size_ = 0;
    id_ = -1;
  }

  /// Internal: adopts pool buffer `id` holding `size` bytes at `data`.
  lent_buffer(detail::buffer_pool* pool, std::uint16_t id, std::byte* data, std::size_t size) noexcept
      : pool_(pool), data_(data), size_(static_cast<std::uint32_t>(size)), id_(id) {}
  /// Internal: adopts a buffer made with new[] (the pool was exhausted).
  lent_buffer(std::byte* heap, std::size_t size) noexcept
      : data_(heap), size_(static_cast<std::uint32_t>(size)), id_(heap_id) {}

 private:
  static constexpr std::int32_t heap_id = -2;
  detail::buffer_pool* pool_ = nullptr;  // whose buffer this is (null: none, or heap)
  std::byte* data_ = nullptr;            // the bytes
  std::uint32_t size_ = 0;               // how many
  std::int32_t id_ = -1;                 // buffer id in the pool's ring; heap_id: data_ is new[]'d
};

}  // namespace coring::net
