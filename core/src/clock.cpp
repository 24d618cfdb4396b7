#include "evring/core/clock.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
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
// A realtime read takes ~25-60 ns (vDSO); bracketing TSC reads further apart than this (10 us at
// a 5 GHz TSC, 50 us at 1 GHz) mean the thread was interrupted in between.
constexpr std::uint64_t kAnchorMaxTicks = 50'000;
constexpr int kAnchorAttempts = 8;
// Calls further apart than this re-anchor (and restart calibration); a publishing thread calls
// every few hundred ns, so only sleeps and preemptions pay a realtime read.
constexpr std::uint64_t kGapNs = 50'000;
// An extrapolation found this far from the realtime clock at the next anchor drops the
// calibration (values already returned were off by up to this much, or by the gap's shortfall).
constexpr std::uint64_t kMaxDriftNs = 5'000;
__extension__ typedef unsigned __int128 u128;  // g++/clang: 64x64 -> 128-bit products

#if defined(__x86_64__)

bool cpu_has_invariant_tsc() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid(0x80000000u, &a, &b, &c, &d) == 0 || a < 0x80000007u) return false;
  if (__get_cpuid(0x80000007u, &a, &b, &c, &d) == 0) return false;
  return (d & (1u << 8)) != 0;
}

#endif

}  // namespace

std::string kernel_clocksource() {
  std::FILE* f = std::fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "r");
  if (!f) return {};
  char name[64] = {};
  const bool read = std::fgets(name, sizeof name, f) != nullptr;
  std::fclose(f);
  if (!read) return {};
  return std::string(name, std::strcspn(name, "\n"));
}

Result<ClockMode> parse_clock_mode(std::string_view text) {
  if (text.empty() || text == "auto") return ClockMode::kAuto;
  if (text == "tsc") return ClockMode::kTsc;
  if (text == "realtime") return ClockMode::kRealtime;
  return Status::invalid_argument("clock mode '" + std::string(text) +
                                  "' is not one of auto, tsc, realtime");
}

Result<ClockMode> clock_mode_from_env() {
  const char* value = std::getenv("EVRING_CLOCK");
  auto mode = parse_clock_mode(value ? value : "");
  if (!mode.ok()) return Status::invalid_argument("EVRING_CLOCK: " + mode.status().message());
  return mode;
}

const char* clock_mode_name(ClockMode mode) {
  switch (mode) {
    case ClockMode::kAuto: return "auto";
    case ClockMode::kTsc: return "tsc";
    case ClockMode::kRealtime: return "realtime";
  }
  return "auto";
}

bool tsc_clock_usable(ClockMode mode) {
#if defined(__x86_64__)
  static const bool invariant = cpu_has_invariant_tsc();
  static const bool kernel_tsc = kernel_clocksource() == "tsc";
  switch (mode) {
    case ClockMode::kAuto: return invariant && kernel_tsc;
    case ClockMode::kTsc: return invariant;
    case ClockMode::kRealtime: return false;
  }
#else
  (void)mode;
#endif
  return false;
}

namespace {
ClockMode process_clock_mode() {
  const Result<ClockMode> mode = clock_mode_from_env();
  return mode.ok() ? mode.value() : ClockMode::kAuto;
}
}  // namespace

bool tsc_clock_usable() { return tsc_clock_usable(process_clock_mode()); }

UnixClock::UnixClock() : UnixClock(process_clock_mode()) {}
UnixClock::UnixClock(ClockMode mode) : tsc_usable_(tsc_clock_usable(mode)) {}
UnixClock::UnixClock(const ClockSources* sources) : tsc_usable_(true), sources_(sources) {}

std::uint64_t UnixClock::realtime_now() const {
  return sources_ ? sources_->realtime_ns(sources_->context) : unix_now_ns();
}

std::uint64_t UnixClock::reanchor(bool after_gap) {
  std::uint64_t tsc = 0;
  // The anchor is a (TSC, CLOCK_REALTIME) pair read as one instant: a thread preempted between
  // the two reads would pair a TSC with a realtime that is late by the preemption, and every
  // value extrapolated from it (and the next calibration) would be off by as much (a CI run saw
  // 0.5 ms). So the realtime read is bracketed by two TSC reads and retried when they lie far
  // apart; the pair uses their midpoint.
  std::uint64_t ns = 0;
  for (int attempt = 0; attempt < kAnchorAttempts; ++attempt) {
    const std::uint64_t t0 = tsc_now();
    ns = realtime_now();
    const std::uint64_t t1 = tsc_now();
    tsc = t0 + (t1 - t0) / 2;
    if (t1 - t0 <= kAnchorMaxTicks) break;
  }
  // Did the extrapolation still agree with the realtime clock? If not, the TSC does not track
  // it here (or the clock was stepped): drop the calibration, so that calls read the realtime
  // clock until a clean interval has calibrated again.
  if (scale_q32_ != 0 && tsc > tsc_anchor_ && tsc - tsc_anchor_ < 4 * reanchor_ticks_) {
    const std::uint64_t predicted = ns_anchor_ + ((tsc - tsc_anchor_) * scale_q32_ >> 32);
    const std::uint64_t drift = predicted > ns ? predicted - ns : ns - predicted;
    if (drift > kMaxDriftNs) {
      scale_q32_ = 0;
      reanchor_ticks_ = 0;
      gap_ticks_ = 0;
      cal_ns_ = 0;
    }
  }
  if (cal_ns_ == 0 || after_gap || tsc <= cal_tsc_ || ns <= cal_ns_) {
    // First call, a gap (its ticks may not be real time), or the clock stepped back: start a
    // calibration interval afresh.
    cal_tsc_ = tsc;
    cal_ns_ = ns;
  } else if (ns - cal_ns_ >= kAnchorIntervalNs) {
    // Ticks per ns over the last interval (>= 1 ms, so the ~24 ns read jitter is < 3e-5).
    const u128 scaled = static_cast<u128>(ns - cal_ns_) << 32;
    const std::uint64_t scale = static_cast<std::uint64_t>(scaled / (tsc - cal_tsc_));
    if (scale > 0 && scale < (std::uint64_t{1} << 34)) {  // a TSC under 250 MHz is not real
      scale_q32_ = scale;
      reanchor_ticks_ = static_cast<std::uint64_t>(
          (static_cast<u128>(kAnchorIntervalNs) << 32) / scale);
      gap_ticks_ = reanchor_ticks_ * kGapNs / kAnchorIntervalNs;
    }
    cal_tsc_ = tsc;
    cal_ns_ = ns;
  }
  tsc_anchor_ = tsc;
  ns_anchor_ = ns;
  calls_since_anchor_ = 0;
  // Until calibrated, reanchor_ticks_ is 0 and every call comes here (clock_gettime).
  const std::uint64_t v = std::max(ns, last_);
  last_ = v;
  return v;
}

}  // namespace evring::core
