// This file must NOT compile: a process_pool job must be a plain function, so
// a lambda with captures is rejected at compile time with coring's
// static_assert (ctest: runtime.compile_fail.process_pool_capture).

#include <coring/process_pool.hpp>

int main() {
  coring::process_pool pool({.workers = 1});
  int base = 40;
  auto f = pool.submit([base](int x) { return base + x; }, 2);
  return static_cast<int>(f.get());
}
