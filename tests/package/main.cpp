// Proves an installed coring works from another project: find_package, link
// both components, run a task that moves a byte through a socket pair.
#include <coring/coring.hpp>
#include <coring/net.hpp>

#include <array>
#include <cstddef>

coring::task<int> answer() {
  auto [a, b] = coring::net::unix_stream::pair();
  const std::array<std::byte, 1> out{std::byte{42}};
  co_await a.write_all(out);
  std::array<std::byte, 1> in{};
  std::size_t n = co_await b.read_some(in);
  co_return n == 1 ? static_cast<int>(in[0]) : 0;
}

int main() { return coring::run(answer()) == 42 ? 0 : 1; }
