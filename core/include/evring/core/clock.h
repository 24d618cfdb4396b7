#pragma once
// UnixClock: wall-clock nanoseconds for event timestamps at a fraction of clock_gettime's cost.
//
// clock_gettime(CLOCK_REALTIME) costs ~24 ns on the machines we measure (vDSO, TSC clocksource):
// a fifth of a publish. UnixClock reads the TSC (~8 ns) and extrapolates from an anchor taken
// with clock_gettime, re-anchoring about every millisecond or every 64 calls (whichever comes
// first) and after every gap of 50 us between calls, so its error stays within what a 1 ms
// linear extrapolation drifts (well under a microsecond) and NTP steps reach it within a
// millisecond. Where the TSC does not track real time (seen on a KVM guest across vCPU sleeps
// and descheduling), at most 64 calls or 1 ms are behind before an anchor corrects it, and an
// anchor that finds the extrapolation more than 5 us off drops the calibration until a clean
// millisecond recalibrates. Where it is used is a per-process choice (ClockMode, EVRING_CLOCK):
// by default only where the CPU promises an invariant TSC and the kernel itself keeps time with
// it (clocksource "tsc"); otherwise every call is clock_gettime.
//
// Values returned by one UnixClock never go backwards. One instance per thread (it is not
// synchronized): RingProducer owns one.
#include <cstdint>
#include <string>
#include <string_view>

#include "evring/codec/ids.h"  // unix_now_ns
#include "evring/codec/status.h"

namespace evring::core {

// Where a UnixClock reads its two clocks. Tests drive a clock with simulated ones (a TSC that
// stalls while real time runs, a realtime clock stepped back) to check what it returns.
struct ClockSources {
  std::uint64_t (*tsc)(void* context);
  std::uint64_t (*realtime_ns)(void* context);
  void* context;
};

// Which clock stamps events, chosen per process by the environment variable EVRING_CLOCK:
//  - auto (unset or empty too): the TSC path where the kernel's clocksource is "tsc";
//  - tsc: the TSC path wherever the CPU promises an invariant TSC, whatever the clocksource. For
//    KVM guests on kvm-clock: its vDSO reads the same TSC and scales it with the host's pvclock
//    parameters, at 26 ns a call against 11 ns for the TSC alone (AMD Zen 5 guest). The TSC path
//    re-anchors on clock_gettime at least every 64 calls and after every 50 us gap, and drops its
//    calibration when an anchor finds it 5 us off; a stall that the TSC does not count (some
//    hosts stop a descheduled vCPU's TSC) leaves at most 64 timestamps behind by the stall;
//  - realtime: clock_gettime on every call.
enum class ClockMode : std::uint8_t { kAuto, kTsc, kRealtime };
Result<ClockMode> parse_clock_mode(std::string_view text);
// EVRING_CLOCK's mode; an error naming the variable and its value when it is none of the three.
// Read on every call (Bus::producer refuses a bad value; UnixClock() then takes kAuto).
Result<ClockMode> clock_mode_from_env();
const char* clock_mode_name(ClockMode mode);

class UnixClock {
 public:
  // The process's mode (clock_mode_from_env, kAuto when it is invalid).
  UnixClock();
  explicit UnixClock(ClockMode mode);
  // With the TSC path forced on and both readings taken from `sources` (which must outlive
  // the clock).
  explicit UnixClock(const ClockSources* sources);
  // Inline: a publish reads the clock once per event, and a call's return address and saved
  // register are stores that wait in the store buffer behind the previous event's slot stores
  // (core/src/producer.cpp, EVRING_PUBLISH_PATH). reanchor() stays out of line.
  std::uint64_t now_ns() {
    if (!tsc_usable_) return unix_now_ns();
    const std::uint64_t tsc = tsc_now();
    const std::uint64_t ticks = tsc - tsc_anchor_;
    const std::uint64_t since_last = tsc - last_tsc_;
    last_tsc_ = tsc;
    // Re-anchor every ~1 ms or 64 calls, and after every gap between calls (the thread slept or
    // was descheduled): on some VMs the TSC advances less than real time while a vCPU is off its
    // host CPU (seen: 360 us of ticks over an 860 us sleep), so no extrapolation across a gap.
    const bool gap = gap_ticks_ != 0 && since_last >= gap_ticks_;  // 0: not calibrated yet
    if (ticks >= reanchor_ticks_ || gap || ++calls_since_anchor_ >= kAnchorEveryCalls)
        [[unlikely]]
      return reanchor(gap);
    // ticks < ~1 ms worth (< 2^32 at any real TSC rate) and scale < 2^34: the product fits.
    std::uint64_t v = ns_anchor_ + ((ticks * scale_q32_) >> 32);
    v = v > last_ ? v : last_;
    last_ = v;
    return v;
  }
  // Whether the TSC path is in use (false: every call is clock_gettime).
  bool uses_tsc() const { return tsc_usable_; }

 private:
  // Calls between anchors at most, however close together: a stall in which the TSC fell behind
  // real time but that was too short to be a gap (or a descheduling the TSC did not see at all)
  // leaves the extrapolation behind until the next anchor; for a thread publishing millions of
  // events a second the 1 ms anchor is thousands of events away, this one a few microseconds.
  // A realtime read per 64 calls costs ~0.5 ns a call. (A CI run under load saw 447 calls in a
  // row up to 0.5 ms behind.)
  static constexpr std::uint32_t kAnchorEveryCalls = 64;

  std::uint64_t reanchor(bool after_gap);
  // A predictable branch on the hot path: sources_ is null outside tests.
  std::uint64_t tsc_now() const {
#if defined(__x86_64__)
    return sources_ ? sources_->tsc(sources_->context) : __builtin_ia32_rdtsc();
#else
    return sources_ ? sources_->tsc(sources_->context) : 0;
#endif
  }
  std::uint64_t realtime_now() const;

  bool tsc_usable_;
  const ClockSources* sources_ = nullptr;  // null: the CPU's TSC and CLOCK_REALTIME
  std::uint64_t tsc_anchor_ = 0;     // TSC at the last anchor
  std::uint64_t ns_anchor_ = 0;      // CLOCK_REALTIME at the last anchor
  std::uint64_t scale_q32_ = 0;      // nanoseconds per tick, 32.32 fixed point (0: uncalibrated)
  std::uint64_t reanchor_ticks_ = 0; // ticks after an anchor before the next one (0: always)
  std::uint64_t gap_ticks_ = 0;      // ticks between two calls that count as a gap (0: always)
  std::uint64_t last_tsc_ = 0;       // TSC at the previous call
  std::uint64_t cal_tsc_ = 0, cal_ns_ = 0;  // start of the current calibration interval
  std::uint64_t last_ = 0;           // last value returned (monotonic guard)
  std::uint32_t calls_since_anchor_ = 0;  // anchors at least every kAnchorEveryCalls calls
};

// Whether a clock in `mode` takes the TSC path: an invariant TSC (CPUID 0x80000007 EDX bit 8)
// always, and for kAuto the kernel's clocksource "tsc". The platform facts are read once per
// process. Without an argument: the process's mode, as UnixClock() takes it.
bool tsc_clock_usable(ClockMode mode);
bool tsc_clock_usable();

// The kernel's current clocksource ("tsc", "kvm-clock", ...) without its newline; empty when
// sysfs does not say. Read on every call (benches report it; tsc_clock_usable caches).
std::string kernel_clocksource();

}  // namespace evring::core
