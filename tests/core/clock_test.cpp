#include "evring/core/clock.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <string>
#include <thread>

#include "evring/codec/ids.h"

namespace evring::core {
namespace {

// Over 60 ms of calls (several re-anchors, the first one after calibration), every value lies
// between CLOCK_REALTIME read just before and just after it, within a tolerance far below what a
// wrong tick rate would give (a 10% error drifts 100 us over one 1 ms anchor interval), except
// for at most 64 calls in a row after a stall of the TSC (a CI run under load saw 447 calls up to
// 0.5 ms behind before the anchor every 64 calls).
void expect_tracks_realtime(UnixClock& clock) {
  constexpr std::uint64_t kSlackNs = 20'000;
  // Off by more than the slack: allowed only for the calls between a stall the TSC did not see
  // (a vCPU descheduled on KVM) and the next anchor, at most 64 in a row (clock.h).
  std::uint64_t last = 0, calls = 0, violations = 0, run = 0, longest_run = 0;
  std::uint64_t worst = 0;
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(60);
  while (std::chrono::steady_clock::now() < end) {
    const std::uint64_t before = unix_now_ns();
    const std::uint64_t v = clock.now_ns();
    const std::uint64_t after = unix_now_ns();
    ++calls;
    ASSERT_GE(v, last) << "call " << calls;
    last = v;
    if (v + kSlackNs < before || v > after + kSlackNs) {
      ++violations;
      longest_run = std::max(longest_run, ++run);
      worst = std::max(worst, v > after ? v - after : before - v);
    } else {
      run = 0;
    }
    if (calls % 1000 == 0) std::this_thread::sleep_for(std::chrono::microseconds(300));
  }
  EXPECT_GT(calls, 1000u);
  EXPECT_LE(longest_run, 64u) << violations << " calls off, worst distance from CLOCK_REALTIME "
                               << worst << " ns, tsc path " << clock.uses_tsc();
}

TEST(UnixClockTest, TracksRealtimeAndNeverGoesBack) {
  UnixClock clock;
  expect_tracks_realtime(clock);
}

// A caller that reads the clock rarely (each call after a long gap) gets a re-anchored value.
TEST(UnixClockTest, RareCallsStayExact) {
  UnixClock clock;
  for (int i = 0; i < 5; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(3));
    const std::uint64_t before = unix_now_ns();
    const std::uint64_t v = clock.now_ns();
    const std::uint64_t after = unix_now_ns();
    EXPECT_GE(v, before);
    EXPECT_LE(v, after);
  }
}

// A simulated machine for the clock's TSC path: a TSC of 3 ticks per ns and CLOCK_REALTIME,
// both moved by the test (reads do not advance them).
struct SimMachine {
  std::uint64_t tsc = 5'000'000'000;
  std::uint64_t ns = 1'750'000'000'000'000'000;
  void run(std::uint64_t real_ns) { advance(real_ns, real_ns); }
  // Real time passes, the TSC sees only tsc_ns of it (a vCPU off its host CPU).
  void advance(std::uint64_t real_ns, std::uint64_t tsc_ns) {
    ns += real_ns;
    tsc += 3 * tsc_ns;
  }
  ClockSources sources() {
    return {[](void* m) { return static_cast<SimMachine*>(m)->tsc; },
            [](void* m) { return static_cast<SimMachine*>(m)->ns; }, this};
  }
};

std::uint64_t distance(std::uint64_t a, std::uint64_t b) { return a > b ? a - b : b - a; }

// Calls every 10 us for `real_ns` with both clocks in step; returns the largest distance of a
// value from realtime.
std::uint64_t run_calls(UnixClock& clock, SimMachine& m, std::uint64_t real_ns) {
  std::uint64_t worst = 0;
  for (std::uint64_t t = 0; t < real_ns; t += 10'000) {
    m.run(10'000);
    worst = std::max(worst, distance(clock.now_ns(), m.ns));
  }
  return worst;
}

// The bug a CI run caught (2554329): on a KVM guest the TSC advanced 360 us over an 860 us
// sleep, and the clock extrapolated across it, half a millisecond behind. A gap between calls
// re-anchors instead.
// The sleep starts at four points of the 1 ms anchor interval, so that in some the periodic
// anchor is not due when the calls resume (only the gap rule re-anchors there).
TEST(UnixClockTest, AGapInWhichTheTscFellBehindReanchors) {
  for (std::uint64_t phase = 0; phase < 1'000'000; phase += 250'000) {
    SimMachine m;
    const ClockSources src = m.sources();
    UnixClock clock(&src);
    EXPECT_LE(run_calls(clock, m, 3'000'000 + phase), 1u) << "calibrated: extrapolation is exact";
    m.advance(860'000, 360'000);
    EXPECT_LE(distance(clock.now_ns(), m.ns), 1u)
        << "phase " << phase << ": the call after the gap reads realtime";
    EXPECT_LE(run_calls(clock, m, 3'000'000), 1u);
  }
}

// Stalls too short to be gaps (five calls 40 us apart in which the TSC sees 10 us each) leave
// the extrapolation 150 us behind until the next anchor. That anchor returns realtime and,
// finding the drift, drops the calibration: the call after it reads realtime too instead of
// extrapolating, and a calibration over clean intervals follows.
TEST(UnixClockTest, DriftFoundAtAnAnchorDropsTheCalibration) {
  SimMachine m;
  const ClockSources src = m.sources();
  UnixClock clock(&src);
  ASSERT_LE(run_calls(clock, m, 3'000'000), 1u);
  ASSERT_LE(run_calls(clock, m, 300'000), 1u);  // into an anchor interval
  for (int i = 0; i < 5; ++i) {
    m.advance(40'000, 10'000);
    (void)clock.now_ns();
  }
  int calls = 0;
  for (; calls < 200; ++calls) {
    m.run(10'000);
    const std::uint64_t v = clock.now_ns();
    if (distance(v, m.ns) <= 1) break;  // the anchor
    ASSERT_LT(v, m.ns);
    EXPECT_LE(m.ns - v, 150'001u) << "behind by the stalls, no more";
  }
  ASSERT_GT(calls, 0) << "the stalls did put the extrapolation behind";
  ASSERT_LT(calls, 200) << "no anchor within 2 ms";
  m.run(10'000);
  EXPECT_EQ(clock.now_ns(), m.ns) << "calibration dropped: realtime, not an extrapolation";
  EXPECT_LE(run_calls(clock, m, 3'000'000), 1u) << "recalibrated over clean intervals";
}

// The same stalls under a thread that calls every 100 ns (a busy publisher): the 1 ms anchor
// would be ~8 000 calls away, every one of them behind; the clock anchors at least every 64
// calls, so no more than 64 are.
TEST(UnixClockTest, ABusyCallerIsBehindForAtMost64CallsAfterAStall) {
  SimMachine m;
  const ClockSources src = m.sources();
  UnixClock clock(&src);
  ASSERT_LE(run_calls(clock, m, 3'000'000), 1u);
  for (int i = 0; i < 20'000; ++i) {  // calibrated and busy, into an anchor interval
    m.run(100);
    ASSERT_LE(distance(clock.now_ns(), m.ns), 1u);
  }
  for (int i = 0; i < 5; ++i) {
    m.advance(40'000, 10'000);
    (void)clock.now_ns();
  }
  int behind = 0;
  for (int i = 0; i < 10'000; ++i) {
    m.run(100);
    if (distance(clock.now_ns(), m.ns) > 1) ++behind;
  }
  EXPECT_GT(behind, 0) << "the stalls did put the extrapolation behind";
  EXPECT_LE(behind, 64) << "calls behind realtime after the stalls";
}

// CLOCK_REALTIME stepped back 1 ms (NTP): values hold still rather than go back, and track it
// again once it has caught up.
TEST(UnixClockTest, ARealtimeStepBackNeverMakesValuesGoBack) {
  SimMachine m;
  const ClockSources src = m.sources();
  UnixClock clock(&src);
  std::uint64_t last = 0;
  for (int i = 0; i < 300; ++i) {
    m.run(10'000);
    last = clock.now_ns();
  }
  m.ns -= 1'000'000;
  for (int i = 0; i < 500; ++i) {
    m.run(10'000);
    const std::uint64_t v = clock.now_ns();
    ASSERT_GE(v, last) << "call " << i;
    last = v;
  }
  EXPECT_LE(distance(last, m.ns), 1u) << "caught up: realtime again";
}

TEST(UnixClockTest, TscPathMatchesThePlatformCheck) {
  UnixClock clock;
  EXPECT_EQ(clock.uses_tsc(), tsc_clock_usable());
}

// The TSC path forced on (EVRING_CLOCK=tsc), as a KVM guest on kvm-clock would run it: the same
// bounds as the default clock. Where the CPU has no invariant TSC it is clock_gettime again.
TEST(UnixClockTest, ForcedTscTracksRealtimeAndNeverGoesBack) {
  UnixClock clock(ClockMode::kTsc);
  EXPECT_EQ(clock.uses_tsc(), tsc_clock_usable(ClockMode::kTsc));
  expect_tracks_realtime(clock);
}

TEST(UnixClockTest, ModesDecideTheTscPath) {
  EXPECT_FALSE(tsc_clock_usable(ClockMode::kRealtime));
  EXPECT_FALSE(UnixClock(ClockMode::kRealtime).uses_tsc());
  // auto asks for everything tsc asks for, and the kernel's clocksource besides.
  if (tsc_clock_usable(ClockMode::kAuto)) {
    EXPECT_TRUE(tsc_clock_usable(ClockMode::kTsc));
  }
  if (kernel_clocksource() == "tsc") {
    EXPECT_EQ(tsc_clock_usable(ClockMode::kAuto), tsc_clock_usable(ClockMode::kTsc));
  } else {
    EXPECT_FALSE(tsc_clock_usable(ClockMode::kAuto));
  }
}

TEST(UnixClockTest, ClockModesParseAndBadOnesAreNamed) {
  for (const char* text : {"", "auto", "tsc", "realtime"}) {
    auto mode = parse_clock_mode(text);
    ASSERT_TRUE(mode.ok()) << text;
    EXPECT_STREQ(clock_mode_name(mode.value()), *text ? text : "auto");
  }
  for (const char* text : {"TSC", "tsc ", "rdtsc", "monotonic"}) {
    auto mode = parse_clock_mode(text);
    ASSERT_FALSE(mode.ok()) << text;
    EXPECT_EQ(mode.status().code(), Code::kInvalidArgument);
    EXPECT_EQ(mode.status().message(),
              "clock mode '" + std::string(text) + "' is not one of auto, tsc, realtime");
  }
}

// EVRING_CLOCK picks the process's mode; a bad value is an error naming the variable, and a
// clock built meanwhile takes auto.
TEST(UnixClockTest, TheEnvironmentPicksTheModeAndABadValueIsNamed) {
  const char* saved = std::getenv("EVRING_CLOCK");
  const std::string restore = saved ? saved : "";
  ::setenv("EVRING_CLOCK", "realtime", 1);
  ASSERT_TRUE(clock_mode_from_env().ok());
  EXPECT_EQ(clock_mode_from_env().value(), ClockMode::kRealtime);
  EXPECT_FALSE(UnixClock().uses_tsc());
  EXPECT_FALSE(tsc_clock_usable());
  ::setenv("EVRING_CLOCK", "tcs", 1);
  auto bad = clock_mode_from_env();
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(),
            "EVRING_CLOCK: clock mode 'tcs' is not one of auto, tsc, realtime");
  EXPECT_EQ(UnixClock().uses_tsc(), tsc_clock_usable(ClockMode::kAuto));
  ::unsetenv("EVRING_CLOCK");
  ASSERT_TRUE(clock_mode_from_env().ok());
  EXPECT_EQ(clock_mode_from_env().value(), ClockMode::kAuto);
  if (saved) ::setenv("EVRING_CLOCK", restore.c_str(), 1);
}

// The name the TSC check and the benches' reports go by: sysfs's line without its newline.
TEST(UnixClockTest, KernelClocksourceIsTheSysfsNameWithoutItsNewline) {
  std::ifstream in("/sys/devices/system/clocksource/clocksource0/current_clocksource");
  std::string line;
  std::getline(in, line);  // empty where sysfs does not say, as kernel_clocksource()
  EXPECT_EQ(kernel_clocksource(), line);
  EXPECT_EQ(kernel_clocksource().find('\n'), std::string::npos);
  if (kernel_clocksource() != "tsc") {
    EXPECT_FALSE(tsc_clock_usable());
  }
}

}  // namespace
}  // namespace evring::core
