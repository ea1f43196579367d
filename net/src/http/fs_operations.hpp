#pragma once
// Renaming and removing a file through the ring (IORING_OP_RENAMEAT,
// IORING_OP_UNLINKAT, Linux 5.11), for client_response::save(): the body is
// written to "<path>.part", renamed when complete, removed on failure.
// Private to coring::net.

#include <coring/detail/ring_operation.hpp>

#include <string>

namespace coring::http::detail {

/// Awaiter: renames `from` to `to` (replacing `to`).
class rename_operation : public coring::detail::ring_operation {
 public:
  rename_operation(std::string from, std::string to) noexcept;
  /// **Errors:** io_error "rename <from> to <to>: ...".
  void await_resume();

 private:
  static void prep(::io_uring_sqe* sqe, const coring::detail::ring_operation& op) noexcept;
  std::string from_;  // NUL-terminated for the kernel
  std::string to_;
};

/// Awaiter: removes the file `path`; gives 0 or -errno (never throws but for a cancellation).
class unlink_operation : public coring::detail::ring_operation {
 public:
  explicit unlink_operation(std::string path) noexcept;
  int await_resume() { return result(); }

 private:
  static void prep(::io_uring_sqe* sqe, const coring::detail::ring_operation& op) noexcept;
  std::string path_;
};

}  // namespace coring::http::detail
