#include "http/inflater.hpp"

namespace coring::http::detail {

void inflater_deleter::operator()(inflater* p) const noexcept { delete p; }

inflater::inflater(format f) : out_(new std::byte[buffer_size]), format_(f) {}

inflater::~inflater() {
  if (started_) inflateEnd(&z_);
}

void inflater::input(std::span<const std::byte> in) noexcept {
  z_.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(in.data()));
  z_.avail_in = static_cast<uInt>(in.size());
}

std::span<const std::byte> inflater::output() noexcept {
  if (!error_.empty() || !has_input()) return {};
  full_ = false;
  if (!started_) {
    // gzip: the gzip wrapper (15 + 16). deflate: RFC 9110 means the zlib
    // wrapper, but some servers send raw deflate; a zlib header is two bytes
    // whose big-endian value is a multiple of 31 with method 8.
    int window = 15 + 16;
    if (format_ == format::deflate) {
      window = 15;
      if (z_.avail_in >= 2) {
        const unsigned b0 = z_.next_in[0], b1 = z_.next_in[1];
        if ((b0 & 0x0f) != 8 || ((b0 << 8) | b1) % 31 != 0) window = -15;
      }
    }
    if (inflateInit2(&z_, window) != Z_OK) {
      error_ = "zlib could not start (out of memory)";
      return {};
    }
    started_ = true;
  }
  if (ended_) {
    if (z_.avail_in == 0) return {};
    // More bytes after the end: a gzip body may be several members.
    if (format_ == format::gzip && z_.next_in[0] == 0x1f) {
      inflateReset(&z_);
      ended_ = false;
    } else {
      z_.avail_in = 0;  // padding after the end, as some servers send: ignored (as zlib's unused_data)
      return {};
    }
  }
  z_.next_out = reinterpret_cast<Bytef*>(out_.get());
  z_.avail_out = static_cast<uInt>(buffer_size);
  const int r = inflate(&z_, Z_NO_FLUSH);
  const std::size_t produced = buffer_size - z_.avail_out;
  full_ = z_.avail_out == 0;
  if (r == Z_STREAM_END) {
    ended_ = true;
  } else if (r != Z_OK && !(r == Z_BUF_ERROR && produced == 0)) {
    error_ = z_.msg ? z_.msg : (r == Z_MEM_ERROR ? "out of memory" : "invalid compressed data");
    return {};
  }
  return {out_.get(), produced};
}

}  // namespace coring::http::detail
