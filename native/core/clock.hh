// Monotonic time in nanoseconds; every deadline in the core is measured on this clock.
#pragma once

#include <chrono>
#include <cstdint>

namespace sb {

using Nanos = int64_t;

inline Nanos now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

constexpr Nanos kNanosPerMs = 1000000;

}  // namespace sb
