#pragma once
// Waiting primitives: a CPU pause/yield back-off, futex wait/wake on a 32-bit word in shared
// memory, and an asymmetric fence (membarrier(2)). These are the platform calls core makes: they
// act on memory handed to core (shared, so FUTEX_WAIT/FUTEX_WAKE without the PRIVATE flag) or on
// the calling process, never on a named object.
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

// Asymmetric fence, for the producer/sleeper handshake (RingProducer::notify_consumers and
// RingConsumer::wait). The producer side publishes on every event, the sleeper side runs only
// when a consumer is about to sleep, so the full barrier is moved to the sleeper:
//  * register_light_fence(): registers the calling process for MEMBARRIER_CMD_GLOBAL_EXPEDITED
//    (once per process; again after fork). true: this process's threads may use a compiler
//    barrier where a full fence would be needed, provided the other side calls heavy_fence().
//  * heavy_fence(): membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED): every running thread of every
//    registered process executes a full memory barrier before it returns (a thread not running
//    passes one when it is scheduled). false when the kernel refuses it; the caller must then
//    not rely on registered processes' light fences (RingConsumer::wait naps in short steps).
bool register_light_fence();
bool heavy_fence();

}  // namespace evring::core
