// Tests for evring/shm/process.h: process identity (pid + start time) and liveness.
#include "evring/shm/process.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <thread>

#include "shm/test_bus.h"

namespace evring::shm {
namespace {

using evring::testing::fork_child;
using evring::testing::wait_child;

// Polls a condition for at most `limit` (a liveness bound, not a speed claim).
template <typename Cond>
bool eventually(Cond cond, std::chrono::seconds limit = std::chrono::seconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return cond();
}

TEST(ProcessTest, ThisProcessIsAliveWithItsOwnStartTimeOnly) {
  const std::uint64_t start = self_start_time();
  EXPECT_NE(start, 0u);
  EXPECT_EQ(start, process_start_time(::getpid()));
  EXPECT_TRUE(process_alive(::getpid(), start));
  EXPECT_FALSE(process_alive(::getpid(), start + 1)) << "same pid, other start: pid reused";
  EXPECT_EQ(process_start_time(0), 0u);
  EXPECT_EQ(process_start_time(-5), 0u);
  EXPECT_FALSE(process_alive(0, 0));
}

TEST(ProcessTest, ForkedChildHasItsOwnIdentity) {
  const std::uint64_t parent_start = self_start_time();
  const pid_t child = fork_child([&] {
    // The cache is per pid: a child must not report the parent's start time as its own.
    const std::uint64_t mine = self_start_time();
    const bool ok = mine == process_start_time(::getpid()) && process_alive(::getpid(), mine);
    return ok ? 0 : 1;
  });
  EXPECT_EQ(wait_child(child), 0);
  EXPECT_EQ(self_start_time(), parent_start);
}

TEST(ProcessTest, StoppedProcessIsAliveZombieAndReapedAreDead) {
  const pid_t child = fork_child([] {
    while (true) ::pause();
    return 0;
  });
  ASSERT_GT(child, 0);
  std::uint64_t start = 0;
  ASSERT_TRUE(eventually([&] { return (start = process_start_time(child)) != 0; }));
  EXPECT_TRUE(process_alive(child, start));

  ASSERT_EQ(::kill(child, SIGSTOP), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, WUNTRACED), child);
  ASSERT_TRUE(WIFSTOPPED(status));
  EXPECT_TRUE(process_alive(child, start)) << "a stopped process will resume: alive";

  ASSERT_EQ(::kill(child, SIGKILL), 0);
  // Not reaped yet: a zombie never finishes a write, so it counts as dead.
  EXPECT_TRUE(eventually([&] { return !process_alive(child, start); }));
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_FALSE(process_alive(child, start));
  EXPECT_EQ(process_start_time(child), 0u);
}

}  // namespace
}  // namespace evring::shm
