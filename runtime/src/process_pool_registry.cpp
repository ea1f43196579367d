// process_pool's jobs registered by name (CORING_REGISTER_JOB): a table
// filled during static initialisation (and by libraries loaded later), read
// by submit() to send such jobs by name and by workers to run them.

#include <coring/detail/assert.hpp>
#include <coring/process_pool.hpp>

#include <atomic>
#include <deque>
#include <mutex>
#include <string>
#include <unordered_map>

namespace coring::detail {

namespace {

struct registry {
  std::mutex m;                                                     // guards the rest
  std::deque<registered_job> entries;                               // stable addresses
  std::unordered_map<std::string_view, registered_job*> by_name;    // keys point into entries
  std::unordered_map<void (*)(), registered_job*> by_function;      // first registration of each
  std::atomic<bool> empty{true};                                    // nothing registered: skip the lock
};

// Leaked: registrations run during static initialisation, lookups until the
// last pool is gone (possibly during static destruction).
registry& table() {
  static registry* r = new registry;
  return *r;
}

// "&ns::f " and "ns::f" are the same name.
std::string normalised(std::string_view name) {
  std::string out;
  for (char c : name) {
    if (c != ' ' && c != '\t' && c != '\n') out += c;
  }
  if (!out.empty() && out.front() == '&') out.erase(0, 1);
  return out;
}

}  // namespace

const registered_job* register_job(std::string_view name, void (*fn)(), process_invoker one,
                                   process_invoker chunk) noexcept {
  registry& r = table();
  std::string key = normalised(name);
  std::lock_guard lock(r.m);
  if (auto it = r.by_name.find(key); it != r.by_name.end()) {
    CORING_ASSERT(it->second->fn == fn, "CORING_REGISTER_JOB: this name is already registered for another function");
    return it->second;
  }
  registered_job& e = r.entries.emplace_back(registered_job{std::move(key), fn, one, chunk});
  r.by_name.emplace(e.name, &e);
  r.by_function.emplace(fn, &e);
  r.empty.store(false, std::memory_order_release);
  return &e;
}

const registered_job* find_registered_job(std::string_view name) noexcept {
  registry& r = table();
  if (r.empty.load(std::memory_order_acquire)) return nullptr;
  std::lock_guard lock(r.m);
  auto it = r.by_name.find(name);
  return it == r.by_name.end() ? nullptr : it->second;
}

const registered_job* find_registered_job(void (*fn)()) noexcept {
  registry& r = table();
  if (r.empty.load(std::memory_order_acquire)) return nullptr;
  std::lock_guard lock(r.m);
  auto it = r.by_function.find(fn);
  return it == r.by_function.end() ? nullptr : it->second;
}

void run_registered_job(std::string_view name, bool chunk, std::string_view args, byte_writer& result) {
  const registered_job* job = find_registered_job(name);
  if (!job) throw error("no job named \"" + std::string(name) + "\" is registered in this process");
  process_invoker invoke = chunk ? job->invoke_chunk : job->invoke_one;
  if (!invoke) throw error("job \"" + std::string(name) + "\" cannot run in chunks (process_pool::map)");
  invoke(job->fn, args, result);
}

}  // namespace coring::detail
