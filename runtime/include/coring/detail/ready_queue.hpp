#pragma once
// FIFO of coroutines ready to resume: a power-of-two ring buffer of frame
// addresses. Internal; single-threaded (the loop's thread only).

#include <coroutine>
#include <cstddef>
#include <cstdlib>
#include <new>

namespace coring::detail {

class ready_queue {
 public:
  ready_queue() = default;
  ready_queue(const ready_queue&) = delete;
  ready_queue& operator=(const ready_queue&) = delete;
  ~ready_queue() { std::free(slots_); }

  bool empty() const noexcept { return head_ == tail_; }
  std::size_t size() const noexcept { return tail_ - head_; }

  void push(std::coroutine_handle<> h) {
    if (tail_ - head_ == capacity_) grow();
    slots_[tail_++ & (capacity_ - 1)] = h.address();
  }
  std::coroutine_handle<> pop() noexcept {
    return std::coroutine_handle<>::from_address(slots_[head_++ & (capacity_ - 1)]);
  }

 private:
  void grow() {
    std::size_t cap = capacity_ ? capacity_ * 2 : 256;
    auto* fresh = static_cast<void**>(std::malloc(cap * sizeof(void*)));
    if (!fresh) throw std::bad_alloc();
    for (std::size_t i = head_; i != tail_; ++i) fresh[i - head_] = slots_[i & (capacity_ - 1)];
    std::free(slots_);
    slots_ = fresh;
    tail_ -= head_;
    head_ = 0;
    capacity_ = cap;
  }

  void** slots_ = nullptr;     // frame addresses, indexed modulo capacity_
  std::size_t capacity_ = 0;   // a power of two, or 0 before the first push
  std::size_t head_ = 0;       // next to pop (monotonic)
  std::size_t tail_ = 0;       // next free slot (monotonic)
};

}  // namespace coring::detail
