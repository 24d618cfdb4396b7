// How long a thread waited for its CPU: the second field of /proc/thread-self/schedstat, the
// nanoseconds it spent runnable on a run queue while another task ran (kernels with
// CONFIG_SCHED_INFO, which Debian's have).
//
// A benchmark process pinned to its own CPU and spinning should wait little: the kernel's own
// threads (RCU, workqueues) cost it a few milliseconds a second on the development VM. Tens of
// milliseconds mean that something else ran on that CPU during the measurement (a build, a shell pipeline starting an interpreter, `top`), and
// that the run's figure is low for a reason that has nothing to do with the code measured. Time
// the hypervisor takes from the vCPU does not show here (steal time, /proc/stat; the KVM guests
// these benches were measured on report none).
//
// Thread safety: free functions, no shared state.
#pragma once

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string_view>

namespace evring::bench {

// Parses the text of a schedstat file ("<run ns> <wait ns> <timeslices>"): the wait, or nothing
// when the text is not three unsigned numbers.
inline std::optional<uint64_t> parse_schedstat_wait(std::string_view text) {
  uint64_t fields[3] = {0, 0, 0};
  size_t i = 0;
  for (int f = 0; f < 3; ++f) {
    while (i < text.size() && text[i] == ' ') ++i;
    if (i == text.size() || text[i] < '0' || text[i] > '9') return std::nullopt;
    for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) {
      const uint64_t digit = static_cast<uint64_t>(text[i] - '0');
      if (fields[f] > (UINT64_MAX - digit) / 10) return std::nullopt;  // overflow
      fields[f] = fields[f] * 10 + digit;
    }
  }
  while (i < text.size() && (text[i] == ' ' || text[i] == '\n')) ++i;
  if (i != text.size()) return std::nullopt;
  return fields[1];
}

// The calling thread's run-queue wait so far, in ns; nothing where the kernel does not say.
// An open and a read of a small proc file: call it around a measurement, not inside one.
inline std::optional<uint64_t> cpu_wait_ns() {
  std::FILE* f = std::fopen("/proc/thread-self/schedstat", "r");
  if (f == nullptr) return std::nullopt;
  char buf[96];
  const size_t n = std::fread(buf, 1, sizeof(buf), f);
  std::fclose(f);
  return parse_schedstat_wait(std::string_view(buf, n));
}

// The share of a measurement a process may wait for its CPU before its run is called
// disturbed. The kernel's own threads (RCU, workqueues) cost a pinned spinner 0.2-1.2% of a
// half-second run on the 2-vCPU development VM; a shell pipeline starting a Python interpreter
// beside the bench cost 30-50%, as a halved first run.
inline constexpr double kDisturbedShare = 0.05;

// What to say of a process that waited wait_ns for its CPU in a measurement of run_s seconds:
// nothing (nullptr) up to kDisturbedShare of it.
inline const char* disturbed_note(uint64_t wait_ns, double run_s) {
  if (static_cast<double>(wait_ns) <= kDisturbedShare * run_s * 1e9) return nullptr;
  return "another task ran on that CPU during the measurement, so this run's figure is low "
         "for a reason outside the code measured";
}

// A stopwatch of cpu_wait_ns() across a measurement. elapsed_ns() is 0 where the kernel does
// not say, so a report shows no wait rather than failing.
class CpuWait {
 public:
  CpuWait() : start_(cpu_wait_ns()) {}
  uint64_t elapsed_ns() const {
    if (!start_) return 0;
    const std::optional<uint64_t> now = cpu_wait_ns();
    return now && *now >= *start_ ? *now - *start_ : 0;
  }

 private:
  std::optional<uint64_t> start_;
};

}  // namespace evring::bench
