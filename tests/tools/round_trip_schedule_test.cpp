// The benches' round-trip schedule: which round trips are warm-up, and when a loop may stop.
#include <gtest/gtest.h>

#include <cstdint>

#include "stats.h"

namespace evring::bench {
namespace {

constexpr uint64_t kStart = 5'000'000'000;  // an arbitrary CLOCK_MONOTONIC reading
constexpr uint64_t kMs = 1'000'000;

TEST(RoundTripSchedule, AFastLoopSkipsExactlyTheFirstThousandRoundTrips) {
  const RoundTripSchedule s(kStart, 0.2);  // warm-up time bound: the first 20 ms
  EXPECT_TRUE(s.warming_up(0, kStart));
  EXPECT_TRUE(s.warming_up(999, kStart + kMs));
  EXPECT_FALSE(s.warming_up(1000, kStart + kMs));
}

TEST(RoundTripSchedule, ASlowLoopStopsWarmingUpAfterATenthOfTheRun) {
  const RoundTripSchedule s(kStart, 0.2);
  EXPECT_TRUE(s.warming_up(10, kStart + 20 * kMs - 1));
  EXPECT_FALSE(s.warming_up(10, kStart + 20 * kMs)) << "only 11 round trips in 20 ms";
}

TEST(RoundTripSchedule, TheLoopEndsAtItsDurationOnceItHasRecordedOne) {
  const RoundTripSchedule s(kStart, 0.2);
  EXPECT_TRUE(s.go_on(kStart + 200 * kMs - 1, 5));
  EXPECT_FALSE(s.go_on(kStart + 200 * kMs, 5));
  EXPECT_TRUE(s.go_on(kStart + 200 * kMs, 0)) << "nothing recorded yet: one more round trip";
  EXPECT_TRUE(s.go_on(kStart + 900 * kMs, 0));
  // The round trip that the loop starts past its end is never warm-up, so it gets recorded.
  EXPECT_FALSE(s.warming_up(3, kStart + 200 * kMs));
}

}  // namespace
}  // namespace evring::bench
