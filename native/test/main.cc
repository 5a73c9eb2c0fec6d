// Runs every registered core test; prints ctest-friendly totals.
#include <cstdio>

#include "check.hh"

int main() {
  int failed_tests = 0;
  for (const auto& test : sb_test::registry()) {
    const int before = sb_test::failures();
    test.body();
    const bool ok = sb_test::failures() == before;
    if (!ok) ++failed_tests;
    std::printf("%s %s\n", ok ? "ok  " : "FAIL", test.name);
  }
  const int total = static_cast<int>(sb_test::registry().size());
  std::printf("%d passed, %d failed\n", total - failed_tests, failed_tests);
  return failed_tests == 0 ? 0 : 1;
}
