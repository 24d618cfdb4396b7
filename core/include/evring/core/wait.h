#pragma once
// Waiting primitives: a CPU pause/yield back-off and futex wait/wake on a 32-bit word in shared
// memory. The futex calls are the one platform call core makes: they act on memory handed to
// core (shared, so FUTEX_WAIT/FUTEX_WAKE without the PRIVATE flag), never on a named object.
#include <atomic>
#include <cstdint>

namespace evring::core {

// Spins with the CPU's pause hint for the first iterations, then yields the CPU.
void cpu_relax(std::uint32_t iteration);

// Sleeps while *word == expected, at most timeout_ns (0: no limit). Returns on wake, timeout,
// signal or a changed value; callers re-check their condition.
void futex_wait(std::atomic<std::uint32_t>* word, std::uint32_t expected, std::uint64_t timeout_ns);
void futex_wake_all(std::atomic<std::uint32_t>* word);

std::uint64_t monotonic_ns();

}  // namespace evring::core
