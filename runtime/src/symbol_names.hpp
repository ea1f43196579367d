#pragma once
// Names for messages: demangled type names, and a function's name from its
// address. dladdr() only sees exported symbols (programs are rarely linked
// with -rdynamic), so on a miss the object file's own .symtab is searched
// (present unless the binary is stripped); the last resort is "job at 0x...".
// Only the failure paths (remote_error, broken_worker) pay for this, once per
// function: the answers are cached.

#include <cstdint>
#include <string>

namespace coring::detail {

/// The demangled form of a mangled name, or the name itself.
std::string demangle(const char* mangled);

/// The name of the function symbol at `addr` (link-time address for ET_EXEC,
/// offset from the load base otherwise) in the 64-bit ELF file at `path`
/// (demangled), or "" if there is none or the file is not such an ELF file.
std::string elf_symbol_at(const char* path, std::uintptr_t addr);

/// A readable name for a job's function: its demangled symbol, else "job at 0x...".
/// **Thread safety:** any thread (cached under a mutex).
std::string function_name(void (*fn)());

}  // namespace coring::detail
