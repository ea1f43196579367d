#include "symbol_names.hpp"

#include <cxxabi.h>
#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>

namespace coring::detail {

std::string demangle(const char* mangled) {
  int status = 0;
  char* out = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  if (status != 0 || !out) return mangled;
  std::string s(out);
  std::free(out);
  return s;
}

std::string elf_symbol_at(const char* path, std::uintptr_t addr) {
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  struct stat st {};
  if (::fstat(fd, &st) < 0 || st.st_size < static_cast<off_t>(sizeof(Elf64_Ehdr))) {
    ::close(fd);
    return {};
  }
  std::size_t size = static_cast<std::size_t>(st.st_size);
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) return {};
  std::string result;
  const auto* base = static_cast<const unsigned char*>(map);
  const auto* eh = reinterpret_cast<const Elf64_Ehdr*>(base);
  // Every offset and count comes from the file: check each against its size.
  auto in_file = [&](std::uint64_t off, std::uint64_t len) { return off <= size && len <= size - off; };
  if (std::memcmp(eh->e_ident, ELFMAG, SELFMAG) == 0 && eh->e_ident[EI_CLASS] == ELFCLASS64 &&
      in_file(eh->e_shoff, std::uint64_t{eh->e_shnum} * sizeof(Elf64_Shdr))) {
    const auto* sh = reinterpret_cast<const Elf64_Shdr*>(base + eh->e_shoff);
    for (unsigned i = 0; i < eh->e_shnum && result.empty(); ++i) {
      if (sh[i].sh_type != SHT_SYMTAB || sh[i].sh_link >= eh->e_shnum) continue;
      const Elf64_Shdr& strs = sh[sh[i].sh_link];
      if (!in_file(sh[i].sh_offset, sh[i].sh_size) || !in_file(strs.sh_offset, strs.sh_size)) continue;
      const auto* syms = reinterpret_cast<const Elf64_Sym*>(base + sh[i].sh_offset);
      std::size_t count = sh[i].sh_size / sizeof(Elf64_Sym);
      for (std::size_t k = 0; k < count; ++k) {
        if (ELF64_ST_TYPE(syms[k].st_info) != STT_FUNC || syms[k].st_value != addr) continue;
        if (syms[k].st_name >= strs.sh_size) continue;
        const char* name = reinterpret_cast<const char*>(base + strs.sh_offset + syms[k].st_name);
        if (std::memchr(name, 0, strs.sh_size - syms[k].st_name) == nullptr) continue;
        result = demangle(name);
        break;
      }
    }
  }
  ::munmap(map, size);
  return result;
}

std::string function_name(void (*fn)()) {
  static std::mutex m;
  static auto* cache = new std::map<void (*)(), std::string>;  // leaked: used during static destruction
  std::lock_guard lock(m);
  if (auto it = cache->find(fn); it != cache->end()) return it->second;
  std::string name;
  Dl_info info{};
  void* addr = reinterpret_cast<void*>(fn);
  if (::dladdr(addr, &info) != 0) {
    if (info.dli_sname && info.dli_saddr == addr) {
      name = demangle(info.dli_sname);
    } else {
      auto a = reinterpret_cast<std::uintptr_t>(addr);
      auto b = reinterpret_cast<std::uintptr_t>(info.dli_fbase);
      // PIE and shared objects: symbol values are offsets from the load base.
      // A position-dependent program (load base 0x400000 or so) uses absolute ones; try both.
      const char* path = (info.dli_fname && info.dli_fname[0] == '/') ? info.dli_fname : "/proc/self/exe";
      name = elf_symbol_at(path, a - b);
      if (name.empty()) name = elf_symbol_at(path, a);
      if (name.empty() && path != std::string("/proc/self/exe")) name = elf_symbol_at("/proc/self/exe", a - b);
    }
  }
  if (name.empty()) {
    char buf[48];
    std::snprintf(buf, sizeof buf, "job at %p", addr);
    name = buf;
  }
  cache->emplace(fn, name);
  return name;
}

}  // namespace coring::detail
