// process_pool: its public face — the error types and the members, which
// hand everything to the manager (process_pool_manager).
//
// Processes:
//   main ──(SEQPACKET, spawn requests)──> fork server   (forked early, single-threaded)
//   fork server ──clone3(CLONE_PARENT|CLONE_PIDFD)──> worker   (main is its parent)
//   fork server ──SCM_RIGHTS{pidfd, socket}──> main
//   main (manager thread) <──(SEQPACKET per worker: jobs, replies)──> worker
//
// process_pool_wire.* is the format of those messages, process_pool_worker.*
// the worker, process_pool_fork_server.* the fork server, process_pool_ring.*
// the manager's wait and process_pool_manager.* the manager. The manager
// thread waits through its own io_uring, so a worker's death is seen through
// the ring; it does no coroutine work of its own, and futures complete from
// it into their awaiting loops' inboxes (or wake blocked threads).

#include <coring/process_pool.hpp>

#include <string>

#include "process_pool_fork_server.hpp"
#include "process_pool_manager.hpp"

namespace coring {

namespace {

std::string remote_message(const std::string& type, const std::string& message, const std::string& function) {
  std::string s = "job " + function + " raised " + type;
  if (!message.empty()) s += ": " + message;
  return s;
}

std::string broken_message(int pid, int sig, int code, const std::string& function) {
  return "worker " + std::to_string(pid) + " running " + function + " " + detail::exit_text(sig, code);
}

}  // namespace

remote_error::remote_error(std::string type_name, std::string message, std::string function)
    : error(remote_message(type_name, message, function)),
      type_name_(std::move(type_name)),
      message_(std::move(message)),
      function_(std::move(function)) {}

broken_worker::broken_worker(int pid, int signal, int exit_code, std::string function)
    : error(broken_message(pid, signal, exit_code, function)),
      pid_(pid),
      signal_(signal),
      exit_code_(exit_code),
      function_(std::move(function)) {}

process_pool::process_pool(const options& opts) : impl_(std::make_unique<detail::process_pool_impl>(opts)) {}

process_pool::~process_pool() {
  if (impl_) shutdown({.wait = true});
}

void process_pool::start_fork_server() { detail::ensure_fork_server(false); }

void process_pool::submit_spec(detail::process_job_spec spec) { impl_->submit(std::move(spec)); }

future<void> process_pool::shutdown_async(shutdown_options opts) {
  auto* st = new detail::future_state<void>();
  impl_->request_shutdown(opts, st);
  return future<void>(st);
}

void process_pool::shutdown(shutdown_options opts) {
  future<void> f = shutdown_async(opts);
  if (opts.wait) {
    f.wait();
    impl_->join();
  }
}

std::vector<int> process_pool::worker_pids() const { return impl_->pids(); }

bool process_pool::broken() const noexcept { return impl_->broken(); }

unsigned process_pool::size() const noexcept { return impl_->size(); }

}  // namespace coring
