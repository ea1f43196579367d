#pragma once
// test_pipe: a pipe2(O_CLOEXEC) whose ends are closed when the test ends,
// also when an assertion throws.
//
//   coring_test::test_pipe p;
//   p.write_now("abc");                      // plain write(2), not through the ring
//   co_await coring::read_some(p.read_fd(), buf);

#include <doctest/doctest.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <string_view>

namespace coring_test {

class test_pipe {
 public:
  test_pipe() {
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    read_ = fds[0];
    write_ = fds[1];
  }
  test_pipe(const test_pipe&) = delete;
  test_pipe& operator=(const test_pipe&) = delete;
  ~test_pipe() {
    close_read();
    close_write();
  }

  [[nodiscard]] int read_fd() const noexcept { return read_; }
  [[nodiscard]] int write_fd() const noexcept { return write_; }

  /// Writes all of `text` with write(2) (a pipe takes up to 64 KiB without blocking).
  void write_now(std::string_view text) const {
    REQUIRE(::write(write_, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
  }
  /// Closes the write end: readers then see end of stream.
  void close_write() noexcept {
    if (write_ >= 0) ::close(write_);
    write_ = -1;
  }
  /// Closes the read end.
  void close_read() noexcept {
    if (read_ >= 0) ::close(read_);
    read_ = -1;
  }

 private:
  int read_ = -1;
  int write_ = -1;
};

}  // namespace coring_test
