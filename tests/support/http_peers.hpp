#pragma once
// Coring-free HTTP servers for the client's tests, started by the test on
// 127.0.0.1 and stopped (SIGTERM, waited for) when the fixture dies:
//
//   coring_test::python_peer odd;               // tests/support/http_peer.py: scripted odd cases
//   coring_test::nginx_peer nginx;              // nginx (Debian nginx-light), 1 worker, own config
//   odd.url("/echo");  nginx.url("/1k.bin");    // "http://127.0.0.1:<port>/..."
//   nginx.access_log();                         // "<connection serial> <request>" per request
//
// Both are started in plain code, before the test's loop runs.

#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

#ifndef CORING_TEST_SUPPORT_DIR
#error "CORING_TEST_SUPPORT_DIR must name tests/support (set by tests/CMakeLists.txt)"
#endif

namespace coring_test {

/// A child process, killed and waited for by the destructor.
class child_process {
 public:
  child_process() = default;
  /// Starts `argv`; with `capture_stdout`, its stdout is a pipe read by read_line().
  child_process(const std::vector<std::string>& argv, bool capture_stdout) {
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    int fds[2] = {-1, -1};
    if (capture_stdout) {
      REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
      posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
    }
    const int r = ::posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    REQUIRE_MESSAGE(r == 0, "cannot start " << argv[0]);
    if (capture_stdout) {
      ::close(fds[1]);
      out_ = ::fdopen(fds[0], "r");
    }
  }
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;
  ~child_process() {
    if (out_) std::fclose(out_);
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
  }
  /// The next line of its stdout, without the newline ("" at its end).
  std::string read_line() {
    char line[256];
    if (!out_ || !std::fgets(line, sizeof line, out_)) return {};
    std::string s(line);
    if (!s.empty() && s.back() == '\n') s.pop_back();
    return s;
  }

 private:
  pid_t pid_ = -1;
  std::FILE* out_ = nullptr;
};

/// True once a TCP connect to 127.0.0.1:port succeeds (tries for 5 s).
inline bool wait_for_port(std::uint16_t port) {
  for (int i = 0; i < 500; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    if (ok) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

/// A port that was free a moment ago (bound to port 0, then released).
inline std::uint16_t free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

/// tests/support/http_peer.py, listening on a port of the kernel's choice.
class python_peer {
 public:
  python_peer()
      : process_({"/usr/bin/python3", std::string(CORING_TEST_SUPPORT_DIR) + "/http_peer.py"}, true) {
    const std::string line = process_.read_line();
    REQUIRE_MESSAGE(line.starts_with("port "), "http_peer.py did not start: '" << line << "'");
    port_ = static_cast<std::uint16_t>(std::stoi(line.substr(5)));
  }
  [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
  /// "http://127.0.0.1:<port><path>"
  [[nodiscard]] std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }

 private:
  child_process process_;
  std::uint16_t port_ = 0;
};

/// A directory removed with everything in it by the destructor.
class temp_dir {
 public:
  temp_dir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "coring-test-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

 private:
  std::filesystem::path path_;
};

/// nginx with its own configuration and files in a temporary directory: one
/// worker on 127.0.0.1. Serves /1k.bin, /100k.bin, /page.txt (gzipped,
/// chunked, when asked), /r301 .. /r308 (redirects to /page.txt) and logs
/// each request's connection serial number.
class nginx_peer {
 public:
  /// With `cert` and `key` (PEM files), also serves https on https_port().
  explicit nginx_peer(const std::string& cert = {}, const std::string& key = {}) {
    const auto& d = dir_.path();
    std::filesystem::create_directories(d / "www");
    std::filesystem::create_directories(d / "tmp");
    write(d / "www" / "1k.bin", std::string(1024, 'k'));
    write(d / "www" / "100k.bin", pattern_text(100 * 1024));
    write(d / "www" / "page.txt", pattern_text(64 * 1024));
    port_ = free_port();
    std::string tls_listen;
    if (!cert.empty()) {
      tls_port_ = free_port();
      tls_listen = "    listen 127.0.0.1:" + std::to_string(tls_port_) + " ssl;\n    ssl_certificate " + cert +
                   ";\n    ssl_certificate_key " + key + ";\n";
    }
    std::ostringstream conf;
    conf << (::geteuid() == 0 ? "user root;\n" : "") << "worker_processes 1;\n"
         << "pid " << (d / "nginx.pid").string() << ";\n"
         << "error_log " << (d / "error.log").string() << " warn;\n"
         << "events { worker_connections 1024; }\n"
         << "http {\n"
         << "  log_format conn '$connection $request';\n"
         << "  access_log " << (d / "access.log").string() << " conn;\n"
         << "  client_body_temp_path " << (d / "tmp").string() << ";\n"
         << "  proxy_temp_path " << (d / "tmp").string() << ";\n"
         << "  fastcgi_temp_path " << (d / "tmp").string() << ";\n"
         << "  uwsgi_temp_path " << (d / "tmp").string() << ";\n"
         << "  scgi_temp_path " << (d / "tmp").string() << ";\n"
         << "  keepalive_requests 10000;\n"
         << "  default_type application/octet-stream;\n"
         << "  types { text/plain txt; }\n"
         << "  gzip on; gzip_types text/plain; gzip_min_length 1;\n"
         << "  server {\n"
         << "    listen 127.0.0.1:" << port_ << ";\n"
         << tls_listen
         << "    root " << (d / "www").string() << ";\n"
         << "    location = /r301 { return 301 /page.txt; }\n"
         << "    location = /r302 { return 302 /page.txt; }\n"
         << "    location = /r303 { return 303 /page.txt; }\n"
         << "    location = /r307 { return 307 /page.txt; }\n"
         << "    location = /r308 { return 308 /page.txt; }\n"
         << "  }\n"
         << "}\n";
    write(d / "nginx.conf", conf.str());
    process_ = std::make_unique<child_process>(
        std::vector<std::string>{"/usr/sbin/nginx", "-p", d.string(), "-c", (d / "nginx.conf").string(), "-e",
                                 (d / "error.log").string(), "-g", "daemon off;"},
        false);
    REQUIRE_MESSAGE(wait_for_port(port_), "nginx did not start: " << read(d / "error.log"));
  }
  ~nginx_peer() { process_.reset(); }

  [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
  [[nodiscard]] std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  [[nodiscard]] std::uint16_t https_port() const noexcept { return tls_port_; }
  /// "https://127.0.0.1:<https_port><path>"
  [[nodiscard]] std::string https_url(const std::string& path) const {
    return "https://127.0.0.1:" + std::to_string(tls_port_) + path;
  }
  /// The access log: one line per request, "<connection serial> <request line>".
  [[nodiscard]] std::string access_log() const { return read(dir_.path() / "access.log"); }
  /// The content of the file nginx serves at /<name>.
  [[nodiscard]] std::string file(const std::string& name) const { return read(dir_.path() / "www" / name); }

  /// `n` printable bytes that do not repeat every power of two.
  static std::string pattern_text(std::size_t n) {
    std::string s(n, ' ');
    std::uint32_t x = 7;
    for (auto& c : s) {
      x = x * 1664525u + 1013904223u;
      c = static_cast<char>('a' + (x >> 24) % 26);
    }
    return s;
  }

 private:
  static void write(const std::filesystem::path& p, const std::string& s) {
    std::ofstream(p, std::ios::binary) << s;
  }
  static std::string read(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  temp_dir dir_;
  std::uint16_t port_ = 0;
  std::uint16_t tls_port_ = 0;
  std::unique_ptr<child_process> process_;
};

}  // namespace coring_test
