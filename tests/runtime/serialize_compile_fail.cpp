// This file must NOT compile. It checks that encoding a type that is not
// serializable (here std::unique_ptr<int>) fails at compile time, and that the
// first error the compiler prints is coring's static_assert:
//
//   error: static assertion failed: coring: type is not serializable: ...
//
// It is not a test binary (the test glob takes *_test.cpp only). Check by hand:
//
//   g++ -std=c++20 -I runtime/include -fsyntax-only tests/runtime/serialize_compile_fail.cpp 2>&1 | grep -m1
//   error:
//
// must print a line containing "not serializable".

#include <coring/serialize.hpp>

#include <memory>

int main() {
  coring::byte_writer out;
  coring::encode(out, std::make_unique<int>(1));
}
