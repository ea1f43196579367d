#include <coring/file.hpp>

#include <coring/error.hpp>

#include <fcntl.h>
#include <liburing.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

namespace coring {

static_assert(sizeof(struct statx) <= 256);

namespace {
int open_flags(open_mode m) noexcept {
  switch (m) {
    case open_mode::write: return O_WRONLY | O_CREAT | O_TRUNC;
    case open_mode::append: return O_WRONLY | O_CREAT | O_APPEND;
    case open_mode::read_write: return O_RDWR | O_CREAT;
    case open_mode::read:
    default: return O_RDONLY;
  }
}
constexpr std::size_t max_chunk = std::size_t{8} << 20;  // bytes per SQE in read_all / write_all
}  // namespace

// ---------------------------------------------------------------- open

file_open_operation::file_open_operation(std::string path, open_mode mode, unsigned permissions) noexcept
    : ring_operation(&prep), path_(std::move(path)), flags_(open_flags(mode) | O_CLOEXEC), permissions_(permissions) {}

void file_open_operation::prep(io_uring_sqe* sqe, const detail::ring_operation& op) noexcept {
  auto& self = static_cast<const file_open_operation&>(op);
  io_uring_prep_openat(sqe, AT_FDCWD, self.path_.c_str(), self.flags_, self.permissions_);
}

file file_open_operation::await_resume() {
  int r = result();  // a cancelled open that had opened anyway delivers the file: nothing leaks
  if (r < 0) fail(r, "open " + path_);
  return file(r, std::move(path_));
}

// ---------------------------------------------------------------- read_at / write_at

file_io_operation::file_io_operation(const file& f, std::byte* data, std::size_t size, std::uint64_t offset,
                                     bool write) noexcept
    : ring_operation(&prep), file_(&f), data_(data), size_(size), offset_(offset), write_(write) {}

void file_io_operation::prep(io_uring_sqe* sqe, const detail::ring_operation& op) noexcept {
  auto& self = static_cast<const file_io_operation&>(op);
  const auto len = static_cast<unsigned>(std::min<std::size_t>(self.size_, 0x7ffff000));  // the kernel's MAX_RW_COUNT
  if (self.write_) {
    io_uring_prep_write(sqe, self.file_->native_handle(), self.data_, len, self.offset_);
  } else {
    io_uring_prep_read(sqe, self.file_->native_handle(), self.data_, len, self.offset_);
  }
}

std::size_t file_io_operation::await_resume() {
  int r = result();
  if (r < 0) fail(r, (write_ ? "write to " : "read from ") + file_->path());
  return static_cast<std::size_t>(r);
}

// ---------------------------------------------------------------- fsync, size, close

file_sync_operation::file_sync_operation(const file& f) noexcept : ring_operation(&prep), file_(&f) {}

void file_sync_operation::prep(io_uring_sqe* sqe, const detail::ring_operation& op) noexcept {
  io_uring_prep_fsync(sqe, static_cast<const file_sync_operation&>(op).file_->native_handle(), 0);
}

void file_sync_operation::await_resume() {
  int r = result();
  if (r < 0) fail(r, "fsync " + file_->path());
}

file_size_operation::file_size_operation(const file& f) noexcept : ring_operation(&prep), file_(&f), statx_{} {}

void file_size_operation::prep(io_uring_sqe* sqe, const detail::ring_operation& op) noexcept {
  auto& self = const_cast<file_size_operation&>(static_cast<const file_size_operation&>(op));
  // AT_EMPTY_PATH with "": the descriptor itself.
  io_uring_prep_statx(sqe, self.file_->native_handle(), "", AT_EMPTY_PATH, STATX_SIZE,
                      reinterpret_cast<struct statx*>(self.statx_));
}

std::uint64_t file_size_operation::await_resume() {
  int r = result();
  if (r < 0) fail(r, "statx " + file_->path());
  return reinterpret_cast<const struct statx*>(statx_)->stx_size;
}

file_close_operation::file_close_operation(int fd, std::string path) noexcept
    : ring_operation(&prep), fd_(fd), path_(std::move(path)) {}

void file_close_operation::prep(io_uring_sqe* sqe, const detail::ring_operation& op) noexcept {
  auto& self = static_cast<const file_close_operation&>(op);
  if (self.fd_ < 0) {
    io_uring_prep_nop(sqe);
  } else {
    io_uring_prep_close(sqe, self.fd_);
  }
}

void file_close_operation::await_resume() {
  int r = result();
  if (r < 0 && fd_ >= 0) fail(r, "close " + path_);
}

// ---------------------------------------------------------------- file

task<std::string> file::read_all() const {
  std::string out;
  out.resize(static_cast<std::size_t>(co_await size()));
  std::size_t got = 0;
  for (;;) {
    if (got == out.size()) out.resize(out.size() + 65536);  // the file grew, or we are at its end: look
    std::size_t want = std::min(out.size() - got, max_chunk);
    std::size_t n = co_await read_at(std::as_writable_bytes(std::span(out.data() + got, want)), got);
    if (n == 0) break;
    got += n;
  }
  out.resize(got);
  co_return out;
}

task<> file::write_all(std::span<const std::byte> data, std::uint64_t offset) const {
  while (!data.empty()) {
    std::size_t n = co_await write_at(data.first(std::min(data.size(), max_chunk)), offset);
    if (n == 0) throw io_error(EIO, "write to " + path_ + ": the device took no bytes");
    data = data.subspan(n);
    offset += n;
  }
}

void file::reset() noexcept {
  if (fd_ >= 0) ::close(std::exchange(fd_, -1));
}

}  // namespace coring
