#pragma once
// Where task frames come from. Internal.
//
// Frames up to 512 bytes come from per-thread free lists, one per 16-byte
// size class, carved from 64 KiB chunks: no malloc header per frame and no
// lock. A frame freed on another thread joins that thread's list. Chunks are
// kept for the life of the process (like most allocators, memory freed by a
// burst of tasks is reused, not returned). Under AddressSanitizer every
// frame is a plain operator new, so that a use after free stays visible.

#include <cstddef>

namespace coring::detail {

void* allocate_frame(std::size_t size);
void free_frame(void* p, std::size_t size) noexcept;

}  // namespace coring::detail
