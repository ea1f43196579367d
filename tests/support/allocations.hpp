#pragma once
// Counting and failing allocations made through the global operator new of
// the test binary (replaced in allocations.cpp), per thread:
//
//   coring_test::allocation_scope counting;            // counts this thread's news
//   co_await coring::gather(a(), b());
//   CHECK(counting.count() == 0);
//
//   coring_test::fail_allocations_after(3);            // the 4th new on this thread throws
//   ...
//   coring_test::fail_allocations_after(-1);           // back to normal
//
// Frames of coroutine tasks come from coring's frame allocator (malloc'd
// chunks), not from operator new, so they are not counted.

#include <cstddef>

namespace coring_test {

/// operator new calls made by this thread so far.
std::size_t allocations_on_this_thread() noexcept;

/// After `n` more operator new calls on this thread succeed, the next ones
/// throw std::bad_alloc; n < 0 turns the failures off.
void fail_allocations_after(long n) noexcept;

/// Counts the operator new calls this thread makes while it lives.
class allocation_scope {
 public:
  allocation_scope() noexcept : start_(allocations_on_this_thread()) {}
  [[nodiscard]] std::size_t count() const noexcept { return allocations_on_this_thread() - start_; }

 private:
  std::size_t start_;
};

}  // namespace coring_test
