#include "evring/core/clock.h"

#include <gtest/gtest.h>

#include <chrono>
#include <ctime>
#include <thread>

#include "evring/codec/ids.h"

namespace evring::core {
namespace {

// Over 60 ms of calls (several re-anchors, the first one after calibration), every value lies
// between CLOCK_REALTIME read just before and just after it, within a tolerance far below what a
// wrong tick rate would give (a 10% error drifts 100 us over one 1 ms anchor interval).
TEST(UnixClockTest, TracksRealtimeAndNeverGoesBack) {
  UnixClock clock;
  constexpr std::uint64_t kSlackNs = 20'000;
  std::uint64_t last = 0, calls = 0, violations = 0;
  std::uint64_t worst = 0;
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(60);
  while (std::chrono::steady_clock::now() < end) {
    const std::uint64_t before = unix_now_ns();
    const std::uint64_t v = clock.now_ns();
    const std::uint64_t after = unix_now_ns();
    ++calls;
    EXPECT_GE(v, last) << "call " << calls;
    last = v;
    if (v + kSlackNs < before || v > after + kSlackNs) {
      ++violations;
      worst = std::max(worst, v > after ? v - after : before - v);
    }
    if (calls % 1000 == 0) std::this_thread::sleep_for(std::chrono::microseconds(300));
  }
  EXPECT_GT(calls, 1000u);
  EXPECT_EQ(violations, 0u) << "worst distance from CLOCK_REALTIME " << worst << " ns, tsc path "
                            << clock.uses_tsc();
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

TEST(UnixClockTest, TscPathMatchesThePlatformCheck) {
  UnixClock clock;
  EXPECT_EQ(clock.uses_tsc(), tsc_clock_usable());
}

}  // namespace
}  // namespace evring::core
