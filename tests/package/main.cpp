// Proves an installed coring works from another project: find_package, link, run.
#include <coring/coring.hpp>

coring::task<int> answer() { co_return 42; }

int main() { return coring::run(answer()) == 42 ? 0 : 1; }
