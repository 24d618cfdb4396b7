#pragma once
// Process identity and liveness. A pid alone is not an identity (pids are reused), so every
// registry entry stores pid + the process's start time (field 22 of /proc/<pid>/stat, clock
// ticks since boot). A process counts as alive while a process with that pid and that start
// time exists, whatever its state: stopped (SIGSTOP) or descheduled processes are alive.
#include <sys/types.h>

#include <cstdint>

namespace evring::shm {

// 0 when the process does not exist (or /proc is unreadable).
std::uint64_t process_start_time(pid_t pid);
bool process_alive(pid_t pid, std::uint64_t start_time);
// Start time of the calling process (cached).
std::uint64_t self_start_time();

}  // namespace evring::shm
