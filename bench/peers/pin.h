// CPU affinity helpers for benchmarks: parse "--cpus 0,1" and pin the calling thread.
//
// Thread safety: free functions, no shared state.
#pragma once

#include <sched.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace evring::bench {

// Parses a comma-separated list of CPU numbers ("0,1", "2, 3").
// Throws std::invalid_argument on an empty list, a non-number or a negative number.
inline std::vector<int> parse_cpu_list(std::string_view text) {
  std::vector<int> cpus;
  while (true) {
    const size_t comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    int cpu = -1;
    const auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), cpu);
    if (item.empty() || ec != std::errc{} || end != item.data() + item.size() || cpu < 0 ||
        cpu >= CPU_SETSIZE) {
      throw std::invalid_argument("bad cpu number '" + std::string(item) + "' in cpu list");
    }
    cpus.push_back(cpu);
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return cpus;
}

// True when this process may run on `cpu` (it is in the inherited affinity mask).
inline bool cpu_allowed(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return false;
  return cpu >= 0 && cpu < CPU_SETSIZE && CPU_ISSET(cpu, &set);
}

// Pins the calling thread (pid 0 = caller) to exactly one CPU.
// Throws std::runtime_error with errno text when the kernel refuses.
inline void pin_current_thread(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof(set), &set) != 0) {
    throw std::runtime_error("sched_setaffinity(cpu " + std::to_string(cpu) +
                             "): " + std::strerror(errno));
  }
}

}  // namespace evring::bench
