#include "http/fs_operations.hpp"

#include <fcntl.h>
#include <liburing.h>

namespace coring::http::detail {

rename_operation::rename_operation(std::string from, std::string to) noexcept
    : ring_operation(&prep), from_(std::move(from)), to_(std::move(to)) {}

void rename_operation::prep(io_uring_sqe* sqe, const coring::detail::ring_operation& op) noexcept {
  auto& self = static_cast<const rename_operation&>(op);
  io_uring_prep_renameat(sqe, AT_FDCWD, self.from_.c_str(), AT_FDCWD, self.to_.c_str(), 0);
}

void rename_operation::await_resume() {
  const int r = result();
  if (r < 0) fail(r, "rename " + from_ + " to " + to_);
}

unlink_operation::unlink_operation(std::string path) noexcept : ring_operation(&prep), path_(std::move(path)) {}

void unlink_operation::prep(io_uring_sqe* sqe, const coring::detail::ring_operation& op) noexcept {
  auto& self = static_cast<const unlink_operation&>(op);
  io_uring_prep_unlinkat(sqe, AT_FDCWD, self.path_.c_str(), 0);
}

}  // namespace coring::http::detail
