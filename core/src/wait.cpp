#include "evring/core/wait.h"

#include <linux/futex.h>
#include <linux/membarrier.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <climits>
#include <atomic>
#include <ctime>

namespace evring::core {

void cpu_relax(std::uint32_t iteration) {
  if (iteration < 64) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
  } else {
    sched_yield();
  }
}

void futex_wait(std::atomic<std::uint32_t>* word, std::uint32_t expected,
                std::uint64_t timeout_ns) {
  timespec ts{};
  timespec* tsp = nullptr;
  if (timeout_ns) {
    ts.tv_sec = static_cast<time_t>(timeout_ns / 1'000'000'000ull);
    ts.tv_nsec = static_cast<long>(timeout_ns % 1'000'000'000ull);
    tsp = &ts;
  }
  // std::atomic<uint32_t> has the size and address of its value (static_assert in ring_layout.h).
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAIT, expected, tsp, nullptr, 0);
}

void futex_wake_all(std::atomic<std::uint32_t>* word) {
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAKE, INT_MAX, nullptr, nullptr,
          0);
}

std::uint64_t monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

namespace {

long membarrier(int command) { return syscall(SYS_membarrier, command, 0, 0); }

bool global_expedited_supported() {
  static const bool supported = [] {
    long mask = membarrier(MEMBARRIER_CMD_QUERY);
    return mask > 0 && (mask & MEMBARRIER_CMD_GLOBAL_EXPEDITED) &&
           (mask & MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED);
  }();
  return supported;
}

}  // namespace

bool register_light_fence() {
  // Registration belongs to the address space: a forked child must register its own. Relaxed:
  // a racing second registration of the same pid is harmless (the call is idempotent).
  static std::atomic<pid_t> registered_pid{0};
  const pid_t pid = getpid();
  if (registered_pid.load(std::memory_order_relaxed) == pid) return true;
  if (!global_expedited_supported() || membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) != 0)
    return false;
  registered_pid.store(pid, std::memory_order_relaxed);
  return true;
}

bool heavy_fence() {
  return global_expedited_supported() && membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) == 0;
}

}  // namespace evring::core
