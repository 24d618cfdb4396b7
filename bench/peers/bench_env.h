// What a benchmark prints about where it ran: clock, CPU model, build optimisation.
//
// Thread safety: free functions, no shared state.
#pragma once

#include <time.h>

#include <cstdint>
#include <fstream>
#include <string>

namespace evring::bench {

// CLOCK_MONOTONIC in ns; system-wide, so timestamps compare across forked processes.
inline uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

// Mean cost of one now_ns() call, measured over `calls` back-to-back calls.
inline double timer_overhead_ns(int calls = 200'000) {
  const uint64_t t0 = now_ns();
  uint64_t sink = 0;
  for (int i = 0; i < calls; ++i) sink += now_ns();
  const uint64_t t1 = now_ns();
  asm volatile("" : : "r"(sink));
  return static_cast<double>(t1 - t0) / calls;
}

// "model name" from /proc/cpuinfo, or "unknown".
inline std::string cpu_model_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const size_t colon = line.find(':');
      if (colon != std::string::npos) {
        size_t start = line.find_first_not_of(' ', colon + 1);
        return start == std::string::npos ? "unknown" : line.substr(start);
      }
    }
  }
  return "unknown";
}

// Empty when the including translation unit was built optimised with NDEBUG; otherwise the
// warning to print. Inline on purpose: it reports the flags of the TU that calls it.
inline std::string build_warning() {
#if !defined(__OPTIMIZE__)
  return "WARNING: built without optimisation (-O0); these figures are meaningless";
#elif !defined(NDEBUG)
  return "WARNING: built without NDEBUG; asserts are enabled in the measured code";
#else
  return "";
#endif
}

}  // namespace evring::bench
