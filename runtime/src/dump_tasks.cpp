// event_loop::dump_tasks(): every live task, what it waits for, its await
// chain (asyncio's print_stack for all tasks, Python 3.14's `asyncio ps`).

#include <coring/event_loop.hpp>

#include <coring/detail/introspection.hpp>
#include <coring/task.hpp>

#include <cxxabi.h>
#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace coring {

namespace {

// ---------------------------------------------------------------- function names
//
// A frame's first word is its resume function. Those functions are local
// symbols (GCC's "<name>.actor", clang's "<name>.resume"), which dladdr()
// never sees, so the object file's .symtab is read instead (once per file,
// on the first dump): present unless the binary was stripped. Failing that,
// "<file>+0x<offset>", which addr2line -f -C -e <file> turns into a name.

struct symbol {
  std::uintptr_t start;
  std::uintptr_t size;
  std::string name;  // mangled
};

struct symbol_table {
  bool relative = true;           // symbol values are offsets from the load base (ET_DYN), not addresses
  std::vector<symbol> functions;  // sorted by start
};

symbol_table read_symbols(const char* path) {
  symbol_table table;
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return table;
  struct stat st {};
  if (::fstat(fd, &st) != 0 || st.st_size < static_cast<off_t>(sizeof(Elf64_Ehdr))) {
    ::close(fd);
    return table;
  }
  const auto size = static_cast<std::size_t>(st.st_size);
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) return table;
  const auto* base = static_cast<const unsigned char*>(map);
  auto fits = [&](std::uint64_t off, std::uint64_t len) { return off <= size && len <= size - off; };
  const auto* eh = reinterpret_cast<const Elf64_Ehdr*>(base);
  if (std::memcmp(eh->e_ident, ELFMAG, SELFMAG) == 0 && eh->e_ident[EI_CLASS] == ELFCLASS64 &&
      fits(eh->e_shoff, std::uint64_t{eh->e_shnum} * sizeof(Elf64_Shdr))) {
    table.relative = eh->e_type == ET_DYN;
    const auto* sh = reinterpret_cast<const Elf64_Shdr*>(base + eh->e_shoff);
    for (unsigned i = 0; i < eh->e_shnum; ++i) {
      if (sh[i].sh_type != SHT_SYMTAB || sh[i].sh_link >= eh->e_shnum) continue;
      const Elf64_Shdr& strings = sh[sh[i].sh_link];
      if (!fits(sh[i].sh_offset, sh[i].sh_size) || !fits(strings.sh_offset, strings.sh_size)) continue;
      const auto* syms = reinterpret_cast<const Elf64_Sym*>(base + sh[i].sh_offset);
      const std::size_t count = sh[i].sh_size / sizeof(Elf64_Sym);
      const char* names = reinterpret_cast<const char*>(base + strings.sh_offset);
      for (std::size_t k = 0; k < count; ++k) {
        if (ELF64_ST_TYPE(syms[k].st_info) != STT_FUNC || syms[k].st_value == 0) continue;
        if (syms[k].st_name >= strings.sh_size) continue;
        const char* name = names + syms[k].st_name;
        table.functions.push_back({syms[k].st_value, syms[k].st_size,
                                   std::string(name, ::strnlen(name, strings.sh_size - syms[k].st_name))});
      }
    }
  }
  ::munmap(map, size);
  std::sort(table.functions.begin(), table.functions.end(),
            [](const symbol& a, const symbol& b) { return a.start < b.start; });
  return table;
}

std::string demangle_one(const std::string& mangled) {
  int status = 0;
  char* out = abi::__cxa_demangle(mangled.c_str(), nullptr, nullptr, &status);
  if (status != 0 || !out) return {};
  std::string s(out);
  std::free(out);
  return s;
}

// The readable name of a coroutine's resume function. GCC 12 names it
// "<f>(<f>::Frame*)" with a frame type that the demangler rejects
// ("_ZN1x1fEPZNS_1fEiE6_ZN1x1fEi"): the original function's own mangled name
// ends the symbol, so the last "_Z..." that demangles is taken. Clang names
// it "<f>.resume"; any ".suffix" (".actor", ".cold") is dropped first.
std::string demangle(const std::string& mangled) {
  std::string core = mangled;
  if (core.starts_with("_Z")) {
    if (auto dot = core.find('.'); dot != std::string::npos) core.resize(dot);
  }
  if (std::string whole = demangle_one(core); !whole.empty()) return whole;
  for (std::size_t at = core.rfind("_Z"); at != std::string::npos && at > 0; at = core.rfind("_Z", at - 1)) {
    if (std::string part = demangle_one(core.substr(at)); !part.empty()) return part;
  }
  return core;
}

std::string hex(std::uintptr_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%zx", static_cast<std::size_t>(v));
  return buf;
}

// The name of the function that contains `pc`.
std::string function_name(const void* pc) {
  Dl_info info{};
  if (::dladdr(pc, &info) == 0 || !info.dli_fname) return hex(reinterpret_cast<std::uintptr_t>(pc));
  static std::mutex m;
  static std::map<std::string, symbol_table> tables;  // by object file, read once
  std::lock_guard lock(m);
  std::string path = info.dli_fname[0] ? info.dli_fname : "/proc/self/exe";
  auto it = tables.find(path);
  if (it == tables.end()) it = tables.emplace(path, read_symbols(path.c_str())).first;
  const symbol_table& t = it->second;
  const auto base = reinterpret_cast<std::uintptr_t>(info.dli_fbase);
  const std::uintptr_t addr = reinterpret_cast<std::uintptr_t>(pc) - (t.relative ? base : 0);
  auto after = std::upper_bound(t.functions.begin(), t.functions.end(), addr,
                                [](std::uintptr_t a, const symbol& s) { return a < s.start; });
  if (after != t.functions.begin()) {
    const symbol& s = *std::prev(after);
    if (addr < s.start + std::max<std::uintptr_t>(s.size, 1)) return demangle(s.name);
  }
  if (info.dli_sname) return demangle(info.dli_sname);
  const char* file = std::strrchr(path.c_str(), '/');
  return std::string(file ? file + 1 : path.c_str()) + "+" + hex(reinterpret_cast<std::uintptr_t>(pc) - base);
}

// ---------------------------------------------------------------- the report

constexpr int max_frames = 40;  // of one task's await chain
constexpr std::size_t max_tasks_listed = 10000;

// The frame of the spawned task that owns `n` (its node is in the promise).
std::coroutine_handle<> root_frame(const detail::task_node& n) {
  const auto* p = reinterpret_cast<const detail::promise_base*>(reinterpret_cast<const char*>(&n) -
                                                                offsetof(detail::promise_base, own_node_));
  return std::coroutine_handle<detail::promise_base>::from_promise(const_cast<detail::promise_base&>(*p));
}

// "at f()" for each frame from `h` up the await chain of `n` to its root.
// Every frame of the chain is a coring promise (a leaf registers only in a
// node that node_of() found, and an awaited coring frame runs in its
// awaiter's node), so its promise_base sits where a promise<T> puts it; a
// frame that does not run in `n` ends the walk.
void append_frames(std::string& out, std::coroutine_handle<> h, const detail::task_node& n,
                   const std::string& indent) {
  for (int depth = 0; h; ++depth) {
    if (depth == max_frames) {
      out += indent + "...\n";
      return;
    }
    out += indent + "at " + function_name(*static_cast<void* const*>(h.address())) + "\n";
    const detail::promise_base& p =
        std::coroutine_handle<detail::promise_base>::from_address(h.address()).promise();
    if (p.node_ != &n || p.spawned()) return;
    h = p.continuation();
  }
}

struct task_entry {
  const detail::task_node* node;
  detail::leaf_report leaf;
  bool awaited = false;  // another live task's leaf waits for it: listed under that one
  bool listed = false;
};

void append_task(std::string& out, std::vector<task_entry>& entries,
                 const std::unordered_map<const detail::task_node*, std::size_t>& index, task_entry& e,
                 int level) {
  e.listed = true;
  const std::string indent(static_cast<std::size_t>(level) * 2, ' ');
  char id[32];
  std::snprintf(id, sizeof id, "%p", static_cast<const void*>(e.node));
  out += indent + "- task '" + detail::task_name(*e.node) + "' (" + id + ")";
  if (e.node->cancel_requested) out += " [cancelling]";
  if (e.node->leaf) {
    out += ": awaits " + e.leaf.what + "\n";
    append_frames(out, e.leaf.frame ? e.leaf.frame : root_frame(*e.node), *e.node, indent + "    ");
  } else {
    out += ": running, or ready to run\n";
    append_frames(out, root_frame(*e.node), *e.node, indent + "    ");
  }
  for (const detail::task_node* child : e.leaf.awaits) {
    auto it = index.find(child);
    if (it == index.end()) continue;
    task_entry& c = entries[it->second];
    if (!c.listed) append_task(out, entries, index, c, level + 1);
  }
}

}  // namespace

std::string event_loop::describe_tasks() const {
  CORING_ASSERT(owner_ == std::this_thread::get_id(),
                "event_loop::dump_tasks on a thread that does not run the loop");
  std::vector<task_entry> entries;
  entries.reserve(std::min(live_.size(), max_tasks_listed));
  std::unordered_map<const detail::task_node*, std::size_t> index;
  for (const detail::task_node* n : live_) {
    if (entries.size() == max_tasks_listed) break;
    index.emplace(n, entries.size());
    entries.push_back({n, {}, false, false});
  }
  for (task_entry& e : entries) {
    if (e.node->leaf) detail::describe_leaf(*e.node->leaf, e.leaf);
  }
  for (task_entry& e : entries) {
    for (const detail::task_node* a : e.leaf.awaits) {
      if (auto it = index.find(a); it != index.end()) entries[it->second].awaited = true;
    }
  }
  std::string out = "coring: " + std::to_string(live_.size()) + " live task(s)";
  if (live_.size() > entries.size()) out += ", the first " + std::to_string(entries.size()) + " listed";
  out += "\n";
  for (task_entry& e : entries) {
    if (!e.awaited && !e.listed) append_task(out, entries, index, e, 0);
  }
  for (task_entry& e : entries) {  // awaited only by one another (a cycle): still listed
    if (!e.listed) append_task(out, entries, index, e, 0);
  }
  return out;
}

void event_loop::dump_tasks(std::FILE* out) const {
  const std::string report = describe_tasks();
  std::fwrite(report.data(), 1, report.size(), out);
  std::fflush(out);
}

}  // namespace coring
