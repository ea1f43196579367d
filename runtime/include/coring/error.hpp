#pragma once
// The error types of coring. Every failure a caller is expected to handle is
// an exception derived from coring::error, so one catch serves all:
//
//   try { co_await coring::wait_for(fetch(), 2s); }
//   catch (const coring::timeout_error& e) { ... }
//   catch (const coring::error& e) { ... }      // any other coring failure
//
// coring::cancelled is deliberately *not* a std::exception: a broad
// `catch (const std::exception&)` must not swallow a cancellation.

#include <stdexcept>
#include <string>
#include <system_error>

namespace coring {

/// Base of every exception coring throws for a failure the caller handles.
class error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// An operation did not finish before its deadline (`wait_for`, `wait_until`).
class timeout_error : public error {
 public:
  using error::error;
};

/// A system call made on the caller's behalf failed; carries the errno.
/// The message names the operation and its target: "read from fd 7: Connection reset by peer".
class io_error : public error {
 public:
  /// Builds "<what>: <strerror(err)>" and keeps `err` as code().
  io_error(int err, const std::string& what)
      : error(what + ": " + std::system_category().message(err)), code_(err, std::system_category()) {}
  /// The errno of the failed call, as a std::error_code.
  [[nodiscard]] const std::error_code& code() const noexcept { return code_; }

 private:
  std::error_code code_;
};

/// What a cancelled task ends with. Not derived from std::exception (see above);
/// catch it by name, clean up, and rethrow.
class cancelled {
 public:
  /// Why the task was cancelled, for diagnostics ("cancelled").
  [[nodiscard]] const char* what() const noexcept { return "coring::cancelled"; }
};

/// What coring::run throws when SIGINT cancelled its main task (Python's
/// KeyboardInterrupt; see <coring/signal.hpp>). A coring::cancelled, so not a
/// std::exception either.
class interrupted : public cancelled {
 public:
  explicit interrupted(int signo) noexcept : signo_(signo) {}
  /// "coring::interrupted".
  [[nodiscard]] const char* what() const noexcept { return "coring::interrupted"; }
  /// The signal that interrupted the run (SIGINT).
  [[nodiscard]] int signal_number() const noexcept { return signo_; }

 private:
  int signo_;  // what interrupted the run
};

}  // namespace coring
