// The benches' CPU-wait reading (bench/peers/cpu_wait.h): what it parses, what it refuses, and
// that a thread sharing its CPU with a busy one does show a wait.
#include <gtest/gtest.h>
#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>

#include "cpu_wait.h"

namespace evring::bench {
namespace {

TEST(CpuWait, ParsesTheSecondFieldOfSchedstat) {
  EXPECT_EQ(parse_schedstat_wait("5758029 123 2\n"), 123u);
  EXPECT_EQ(parse_schedstat_wait("1 0 1"), 0u);
  EXPECT_EQ(parse_schedstat_wait("18446744073709551615 18446744073709551615 7\n"),
            UINT64_MAX);
}

TEST(CpuWait, RefusesTextThatIsNotThreeNumbers) {
  EXPECT_EQ(parse_schedstat_wait(""), std::nullopt);
  EXPECT_EQ(parse_schedstat_wait("5758029 123\n"), std::nullopt) << "two fields";
  EXPECT_EQ(parse_schedstat_wait("5758029 123 2 9\n"), std::nullopt) << "four fields";
  EXPECT_EQ(parse_schedstat_wait("5758029 -123 2\n"), std::nullopt);
  EXPECT_EQ(parse_schedstat_wait("5758029 12x 2\n"), std::nullopt);
  EXPECT_EQ(parse_schedstat_wait("1 18446744073709551616 2\n"), std::nullopt) << "overflow";
}

TEST(CpuWait, AShareOfTheRunAboveTheThresholdIsNoted) {
  const double run_s = 0.5;
  EXPECT_EQ(disturbed_note(0, run_s), nullptr);
  EXPECT_EQ(disturbed_note(static_cast<uint64_t>(0.049 * run_s * 1e9), run_s), nullptr);
  EXPECT_NE(disturbed_note(static_cast<uint64_t>(0.051 * run_s * 1e9), run_s), nullptr);
}

// Two threads pinned to one CPU, both always runnable: each waits while the other runs. The
// reading must see that (a scheduler fact, not a speed: it holds on any machine, loaded or not).
TEST(CpuWait, AThreadSharingItsCpuWithABusyOneWaits) {
  if (!cpu_wait_ns()) GTEST_SKIP() << "this kernel has no /proc/thread-self/schedstat";
  cpu_set_t mine;
  ASSERT_EQ(sched_getaffinity(0, sizeof(mine), &mine), 0);
  int cpu = 0;
  while (cpu < CPU_SETSIZE && !CPU_ISSET(cpu, &mine)) ++cpu;
  ASSERT_LT(cpu, CPU_SETSIZE);
  auto pin = [cpu] {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    return pthread_setaffinity_np(pthread_self(), sizeof(one), &one) == 0;
  };
  std::atomic<bool> stop{false}, rival_pinned{false};
  std::thread rival([&] {
    rival_pinned = pin();
    while (!stop.load(std::memory_order_relaxed)) {
    }
  });
  uint64_t waited = 0;
  bool measured_pinned = false;
  std::thread measured([&] {
    if (!(measured_pinned = pin())) return;
    while (!rival_pinned.load()) {
    }
    const CpuWait w;
    const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(300);
    while (std::chrono::steady_clock::now() < end) {
    }
    waited = w.elapsed_ns();
  });
  measured.join();
  stop = true;
  rival.join();
  ASSERT_TRUE(rival_pinned.load() && measured_pinned) << "could not pin both to CPU " << cpu;
  // Sharing the CPU evenly would be 150 ms of waiting in 300 ms; 30 ms leaves room for any
  // scheduler's slice lengths.
  EXPECT_GT(waited, 30'000'000u) << "waited " << waited << " ns";
}

TEST(CpuWait, AThreadThatSleepsDoesNotWait) {
  if (!cpu_wait_ns()) GTEST_SKIP() << "this kernel has no /proc/thread-self/schedstat";
  const CpuWait w;
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  // Sleeping is not waiting for a CPU: only the wake-up's queueing counts, microseconds on an
  // idle machine; a reading that counted the sleep would be 100 ms or more.
  EXPECT_LT(w.elapsed_ns(), 100'000'000u);
}

}  // namespace
}  // namespace evring::bench
