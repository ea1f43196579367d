#pragma once
// coring::file: a file whose every operation goes through the loop's ring —
// open (IORING_OP_OPENAT), read_at / write_at (READ / WRITE), fsync (FSYNC),
// size (STATX), close (CLOSE) — so a task reading or writing a file never
// blocks its loop.
//
//   coring::file f = co_await coring::file::open("/tmp/data", coring::open_mode::write);
//   co_await f.write_all(bytes);          // from offset 0
//   co_await f.fsync();
//   co_await f.close();
//
//   coring::file g = co_await coring::file::open("/tmp/data");
//   std::uint64_t n = co_await g.size();
//   std::string all = co_await g.read_all();
//
// Every error is a coring::io_error naming the operation and the path:
// "open /tmp/missing: No such file or directory". Every operation is
// cancellable (the SQE is cancelled in the ring; the task gets
// coring::cancelled once). The descriptor is O_CLOEXEC.
// Thread safety: a file is used by the tasks of one loop; distinct
// operations may be in flight at once (reads and writes at their offsets).

#include <coring/detail/ring_operation.hpp>
#include <coring/task.hpp>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>

namespace coring {

class file;

/// How file::open opens a file.
enum class open_mode : std::uint8_t {
  read,        ///< O_RDONLY; the file must exist
  write,       ///< O_WRONLY | O_CREAT | O_TRUNC
  append,      ///< O_WRONLY | O_CREAT | O_APPEND
  read_write,  ///< O_RDWR | O_CREAT
};

/// Awaiter of file::open(): the open file.
class file_open_operation : public detail::ring_operation {
 public:
  file_open_operation(std::string path, open_mode mode, unsigned permissions) noexcept;
  /// **Errors:** io_error "open <path>: ...".
  file await_resume();

 private:
  static void prep(::io_uring_sqe* sqe, const detail::ring_operation& op) noexcept;
  std::string path_;     // NUL-terminated for the kernel, which reads it when it takes the SQE
  int flags_;            // open(2) flags
  unsigned permissions_; // for a created file (before the umask)
};

/// Awaiter of read_at / write_at: bytes moved (0 from read_at: end of file).
class file_io_operation : public detail::ring_operation {
 public:
  file_io_operation(const file& f, std::byte* data, std::size_t size, std::uint64_t offset, bool write) noexcept;
  /// **Errors:** io_error "read from <path>: ..." / "write to <path>: ...".
  std::size_t await_resume();

 private:
  static void prep(::io_uring_sqe* sqe, const detail::ring_operation& op) noexcept;
  const file* file_;      // whose fd and path
  std::byte* data_;       // the caller's buffer
  std::size_t size_;      // its size
  std::uint64_t offset_;  // where in the file
  bool write_;            // direction
};

/// Awaiter of fsync().
class file_sync_operation : public detail::ring_operation {
 public:
  explicit file_sync_operation(const file& f) noexcept;
  /// **Errors:** io_error "fsync <path>: ...".
  void await_resume();

 private:
  static void prep(::io_uring_sqe* sqe, const detail::ring_operation& op) noexcept;
  const file* file_;
};

/// Awaiter of size(): the file's size in bytes (statx).
class file_size_operation : public detail::ring_operation {
 public:
  explicit file_size_operation(const file& f) noexcept;
  /// **Errors:** io_error "statx <path>: ...".
  std::uint64_t await_resume();

 private:
  static void prep(::io_uring_sqe* sqe, const detail::ring_operation& op) noexcept;
  const file* file_;
  alignas(8) std::byte statx_[256];  // a struct statx, filled by the kernel
};

/// Awaiter of close().
class file_close_operation : public detail::ring_operation {
 public:
  file_close_operation(int fd, std::string path) noexcept;
  /// **Errors:** io_error "close <path>: ..." (a failed write-back surfaces here, as with close(2)).
  void await_resume();

 private:
  static void prep(::io_uring_sqe* sqe, const detail::ring_operation& op) noexcept;
  int fd_;            // -1: the file was not open, nothing to do
  std::string path_;  // for the message
};

class file {
 public:
  /// Not open.
  file() noexcept = default;
  /// Adopts `fd` (which should be O_CLOEXEC) opened at `path`.
  file(int fd, std::string path) noexcept : fd_(fd), path_(std::move(path)) {}
  file(file&& o) noexcept : fd_(std::exchange(o.fd_, -1)), path_(std::move(o.path_)) {}
  file& operator=(file&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
      path_ = std::move(o.path_);
    }
    return *this;
  }
  file(const file&) = delete;
  file& operator=(const file&) = delete;
  /// Closes the file with close(2) if close() was not awaited.
  ~file() { reset(); }

  /// Opens `path` (permissions for a file it creates: `permissions` & ~umask).
  /// **Cancellation:** the open is cancelled in the ring (a file it opened
  /// anyway is closed). **Errors:** io_error "open <path>: No such file or directory".
  [[nodiscard]] static file_open_operation open(std::string path, open_mode mode = open_mode::read,
                                                unsigned permissions = 0644) noexcept {
    return {std::move(path), mode, permissions};
  }

  /// Reads at most buffer.size() bytes at `offset`; 0 at end of file.
  /// **Requires:** open; `buffer` outlives the operation.
  [[nodiscard]] file_io_operation read_at(std::span<std::byte> buffer, std::uint64_t offset) const noexcept {
    return {*this, buffer.data(), buffer.size(), offset, false};
  }
  /// Writes at most data.size() bytes at `offset`. **Requires:** as read_at.
  [[nodiscard]] file_io_operation write_at(std::span<const std::byte> data, std::uint64_t offset) const noexcept {
    return {*this, const_cast<std::byte*>(data.data()), data.size(), offset, true};
  }
  /// The whole file from offset 0 to its end (8 MiB per read).
  /// **Errors:** as read_at. **Cancellation:** the read in flight is cancelled.
  [[nodiscard]] task<std::string> read_all() const;
  /// Writes all of `data` at `offset` (8 MiB per write). **Errors/Cancellation:** as read_all.
  [[nodiscard]] task<> write_all(std::span<const std::byte> data, std::uint64_t offset = 0) const;
  [[nodiscard]] task<> write_all(std::string_view text, std::uint64_t offset = 0) const {
    return write_all(std::as_bytes(std::span(text.data(), text.size())), offset);
  }
  /// Flushes the file's data and metadata to the device (fsync).
  [[nodiscard]] file_sync_operation fsync() const noexcept { return file_sync_operation(*this); }
  /// The file's size now (statx).
  [[nodiscard]] file_size_operation size() const noexcept { return file_size_operation(*this); }
  /// Closes the file through the ring; the file is closed (is_open() false) as soon as this is called.
  [[nodiscard]] file_close_operation close() noexcept { return {std::exchange(fd_, -1), path_}; }

  [[nodiscard]] bool is_open() const noexcept { return fd_ >= 0; }
  [[nodiscard]] int native_handle() const noexcept { return fd_; }
  [[nodiscard]] const std::string& path() const noexcept { return path_; }

 private:
  void reset() noexcept;

  int fd_ = -1;       // the descriptor, or -1
  std::string path_;  // as opened, for messages
};

}  // namespace coring
