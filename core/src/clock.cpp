#include "evring/core/clock.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "evring/codec/ids.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <x86intrin.h>
#endif

namespace evring::core {
namespace {

constexpr std::uint64_t kAnchorIntervalNs = 1'000'000;
__extension__ typedef unsigned __int128 u128;  // g++/clang: 64x64 -> 128-bit products

#if defined(__x86_64__)
std::uint64_t read_tsc() { return __rdtsc(); }

bool cpu_has_invariant_tsc() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid(0x80000000u, &a, &b, &c, &d) == 0 || a < 0x80000007u) return false;
  if (__get_cpuid(0x80000007u, &a, &b, &c, &d) == 0) return false;
  return (d & (1u << 8)) != 0;
}

bool kernel_clocksource_is_tsc() {
  std::FILE* f = std::fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "r");
  if (!f) return false;
  char name[32] = {};
  const bool read = std::fgets(name, sizeof name, f) != nullptr;
  std::fclose(f);
  return read && std::strncmp(name, "tsc", 3) == 0 && (name[3] == '\n' || name[3] == '\0');
}
#else
std::uint64_t read_tsc() { return 0; }
#endif

}  // namespace

bool tsc_clock_usable() {
#if defined(__x86_64__)
  static const bool usable = cpu_has_invariant_tsc() && kernel_clocksource_is_tsc();
  return usable;
#else
  return false;
#endif
}

UnixClock::UnixClock() : tsc_usable_(tsc_clock_usable()) {}

std::uint64_t UnixClock::now_ns() {
  if (!tsc_usable_) return unix_now_ns();
  const std::uint64_t tsc = read_tsc();
  const std::uint64_t ticks = tsc - tsc_anchor_;
  if (ticks >= reanchor_ticks_) [[unlikely]]
    return reanchor(tsc);
  // ticks < ~1 ms worth (< 2^32 at any real TSC rate) and scale < 2^34: the product fits.
  std::uint64_t v = ns_anchor_ + ((ticks * scale_q32_) >> 32);
  v = std::max(v, last_);
  last_ = v;
  return v;
}

std::uint64_t UnixClock::reanchor(std::uint64_t tsc) {
  const std::uint64_t ns = unix_now_ns();
  if (cal_ns_ == 0 || tsc <= cal_tsc_ || ns <= cal_ns_) {
    cal_tsc_ = tsc;  // first call, or the clock stepped back: start calibrating afresh
    cal_ns_ = ns;
  } else if (ns - cal_ns_ >= kAnchorIntervalNs) {
    // Ticks per ns over the last interval (>= 1 ms, so the ~24 ns read jitter is < 3e-5).
    const u128 scaled = static_cast<u128>(ns - cal_ns_) << 32;
    const std::uint64_t scale = static_cast<std::uint64_t>(scaled / (tsc - cal_tsc_));
    if (scale > 0 && scale < (std::uint64_t{1} << 34)) {  // a TSC under 250 MHz is not real
      scale_q32_ = scale;
      reanchor_ticks_ = static_cast<std::uint64_t>(
          (static_cast<u128>(kAnchorIntervalNs) << 32) / scale);
    }
    cal_tsc_ = tsc;
    cal_ns_ = ns;
  }
  tsc_anchor_ = tsc;
  ns_anchor_ = ns;
  // Until calibrated, reanchor_ticks_ is 0 and every call comes here (clock_gettime).
  const std::uint64_t v = std::max(ns, last_);
  last_ = v;
  return v;
}

}  // namespace evring::core
