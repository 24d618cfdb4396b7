// The measurement loops shared by every peer case, written once over "try_push"/"try_pop"
// callables so each queue under test only supplies the push and the pop.
//
// Message format (msg_bytes >= 8): bytes [0, 8) hold the sequence number, and when
// msg_bytes >= 16 bytes [msg_bytes - 8, msg_bytes) hold it again, so a torn copy is caught too.
// Every consumer checks every message: sequence numbers must arrive as 0, 1, 2, ... in order.
//
// Thread safety: one producer and one consumer (or initiator and echo) per PeerControl, in two
// threads or two processes sharing it.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>

#include "bench_env.h"
#include "cpu_wait.h"
#include "stats.h"

namespace evring::bench {

inline constexpr uint64_t kStopSeq = UINT64_MAX;  // tells an echo side to stop
inline constexpr uint64_t kNoTotal = UINT64_MAX;  // PeerControl::total before the producer ends

// One measurement's shared state; lives in shared memory for two processes.
struct PeerControl {
  // Set once by the consumer/echo side when it is pinned and attached.
  alignas(128) std::atomic<uint32_t> peer_ready{0};
  // Set by either side on failure so the other stops spinning (threads; processes also get
  // SIGCHLD). Read only on slow paths (ring full/empty, waiting for ready).
  std::atomic<uint32_t> abort{0};
  // Producer: number of messages sent, stored (release) before it pushes the last one, so the
  // consumer that pops message total-1 is sure to see it.
  alignas(128) std::atomic<uint64_t> total{kNoTotal};
  // Consumer results, read by the parent after the consumer ended (after join()/waitpid()).
  alignas(128) std::atomic<uint64_t> end_ns{0};
  std::atomic<uint64_t> received{0};
  // How long each side waited for its CPU during the measurement (cpu_wait.h): [0] the
  // producer/initiator, [1] the consumer/echo. Written by each side as it ends (relaxed, read
  // after join()/waitpid() like the results above).
  std::atomic<uint64_t> cpu_wait_ns[2] = {0, 0};
  char err[256] = {};
};
static_assert(std::atomic<uint64_t>::is_always_lock_free &&
                  std::atomic<uint32_t>::is_always_lock_free,
              "PeerControl is shared between processes");

struct Throughput {
  uint64_t msgs = 0;
  uint64_t elapsed_ns = 0;  // producer start to consumer's copy-out of the last message
};

// A trivially copyable message of N bytes for queues typed on their element.
template <size_t N>
struct FixedMsg {
  std::array<std::byte, N> bytes;
};

inline constexpr size_t kMaxTypedBytes = 4096;

// Calls f.template operator()<N>() with N the smallest power of two >= bytes (8..4096) and
// returns N. Throws std::invalid_argument above kMaxTypedBytes.
template <size_t N = 8, class F>
size_t with_fixed_size(size_t bytes, F&& f) {
  if constexpr (N > kMaxTypedBytes) {
    throw std::invalid_argument("typed queues support at most 4096-byte messages");
  } else {
    if (bytes <= N) {
      f.template operator()<N>();
      return N;
    }
    return with_fixed_size<N * 2>(bytes, f);
  }
}

namespace detail {

inline void stamp(std::byte* msg, size_t msg_bytes, uint64_t seq) {
  std::memcpy(msg, &seq, sizeof(seq));
  if (msg_bytes >= 16) std::memcpy(msg + msg_bytes - 8, &seq, sizeof(seq));
}

// Returns the sequence number; throws if the two stamps disagree (a torn message).
inline uint64_t read_stamp(const std::byte* msg, size_t msg_bytes) {
  uint64_t head = 0;
  uint64_t tail = 0;
  std::memcpy(&head, msg, sizeof(head));
  if (msg_bytes < 16) return head;
  std::memcpy(&tail, msg + msg_bytes - 8, sizeof(tail));
  if (head != tail) {
    throw std::runtime_error("torn message: head seq " + std::to_string(head) + ", tail seq " +
                             std::to_string(tail));
  }
  return head;
}

inline void check_abort(const PeerControl& ctl) {
  // relaxed: a hint to stop; no data is read on its strength.
  if (ctl.abort.load(std::memory_order_relaxed) != 0) throw std::runtime_error("peer failed");
}

inline void wait_ready(const PeerControl& ctl) {
  // SYNC POINT (acquire) pairs with the peer's release store: it is attached and pinned.
  while (ctl.peer_ready.load(std::memory_order_acquire) == 0) check_abort(ctl);
}

}  // namespace detail

// Producer side of a throughput run: pushes stamped messages from `msg` (msg_bytes long) for
// `seconds`, then the last one. Returns the start time (ns). try_push() copies `msg` in.
template <class TryPush>
uint64_t produce_for(PeerControl& ctl, double seconds, std::byte* msg, size_t msg_bytes,
                     TryPush&& try_push) {
  for (size_t i = 8; i < msg_bytes; ++i) msg[i] = static_cast<std::byte>(i * 31);
  detail::wait_ready(ctl);
  const CpuWait waited;
  const uint64_t start = now_ns();
  const uint64_t end = start + static_cast<uint64_t>(seconds * 1e9);
  uint64_t seq = 0;
  while (true) {
    detail::stamp(msg, msg_bytes, seq);
    while (!try_push()) detail::check_abort(ctl);
    ++seq;
    if ((seq & 1023) == 0 && now_ns() >= end) break;
  }
  // SYNC POINT (release): the count is visible before the last message can be popped.
  ctl.total.store(seq + 1, std::memory_order_release);
  detail::stamp(msg, msg_bytes, seq);
  while (!try_push()) detail::check_abort(ctl);
  ctl.cpu_wait_ns[0].store(waited.elapsed_ns(), std::memory_order_relaxed);
  return start;
}

// Consumer side of a throughput run: pops into `msg` until it has every message, checking each.
template <class TryPop>
void consume_all(PeerControl& ctl, std::byte* msg, size_t msg_bytes, TryPop&& try_pop) {
  ctl.peer_ready.store(1, std::memory_order_release);
  const CpuWait waited;
  uint64_t expected = 0;
  while (true) {
    if (!try_pop()) {
      detail::check_abort(ctl);
      continue;
    }
    const uint64_t seq = detail::read_stamp(msg, msg_bytes);
    if (seq != expected) {
      throw std::runtime_error("message out of order: expected seq " + std::to_string(expected) +
                               ", got " + std::to_string(seq));
    }
    ++expected;
    // acquire pairs with produce_for's release store of total.
    if (expected == ctl.total.load(std::memory_order_acquire)) break;
  }
  // relaxed: read by the parent only after join()/waitpid(), which orders them.
  ctl.end_ns.store(now_ns(), std::memory_order_relaxed);
  ctl.received.store(expected, std::memory_order_relaxed);
  ctl.cpu_wait_ns[1].store(waited.elapsed_ns(), std::memory_order_relaxed);
}

namespace detail {
// The longest CPU wait of either side over the measurements since take_cpu_wait_ns().
inline uint64_t g_cpu_wait_ns = 0;
}  // namespace detail

// After a measurement has ended (join()/waitpid()): keeps its sides' CPU waits for
// take_cpu_wait_ns(). throughput_of() calls it; round-trip cases call it themselves.
inline void record_cpu_wait(const PeerControl& ctl) {
  for (const auto& w : ctl.cpu_wait_ns)
    detail::g_cpu_wait_ns = std::max(detail::g_cpu_wait_ns, w.load(std::memory_order_relaxed));
}

// The longest time a process (or thread) of the measurements since the last call waited for
// its CPU; a harness calls it after each case run and notes a disturbed run (cpu_wait.h).
inline uint64_t take_cpu_wait_ns() { return std::exchange(detail::g_cpu_wait_ns, 0); }

// Throughput of a finished run; `start_ns` is what produce_for() returned.
inline Throughput throughput_of(const PeerControl& ctl, uint64_t start_ns) {
  record_cpu_wait(ctl);
  return Throughput{ctl.received.load(std::memory_order_relaxed),
                    ctl.end_ns.load(std::memory_order_relaxed) - start_ns};
}

// Initiator side of a round-trip run: for `seconds`, send(msg) then recv(msg) (each blocks or
// spins until done, both over the `msg` buffer); records each round trip after a warm-up.
template <class Send, class Recv>
void rtt_initiate(PeerControl& ctl, double seconds, std::byte* msg, size_t msg_bytes,
                  LatencyHistogram& hist, Send&& send, Recv&& recv) {
  for (size_t i = 8; i < msg_bytes; ++i) msg[i] = static_cast<std::byte>(i * 31);
  detail::wait_ready(ctl);
  const CpuWait waited;
  uint64_t t = now_ns();
  const RoundTripSchedule schedule(t, seconds);
  for (uint64_t seq = 0; schedule.go_on(t, hist.count()); ++seq) {
    detail::stamp(msg, msg_bytes, seq);
    send();
    recv();
    const uint64_t t1 = now_ns();
    const uint64_t got = detail::read_stamp(msg, msg_bytes);
    if (got != seq) {
      throw std::runtime_error("echo out of order: expected seq " + std::to_string(seq) + ", got " +
                               std::to_string(got));
    }
    if (!schedule.warming_up(seq, t)) hist.record(t1 - t);
    t = t1;
  }
  ctl.cpu_wait_ns[0].store(waited.elapsed_ns(), std::memory_order_relaxed);
  detail::stamp(msg, msg_bytes, kStopSeq);
  send();
}

// Echo side of a round-trip run: recv(msg), check, send(msg) back, until the stop message.
template <class Send, class Recv>
void rtt_echo(PeerControl& ctl, std::byte* msg, size_t msg_bytes, Send&& send, Recv&& recv) {
  ctl.peer_ready.store(1, std::memory_order_release);
  const CpuWait waited;
  for (uint64_t expected = 0;; ++expected) {
    recv();
    const uint64_t seq = detail::read_stamp(msg, msg_bytes);
    if (seq == kStopSeq) {
      ctl.cpu_wait_ns[1].store(waited.elapsed_ns(), std::memory_order_relaxed);
      return;
    }
    if (seq != expected) {
      throw std::runtime_error("message out of order: expected seq " + std::to_string(expected) +
                               ", got " + std::to_string(seq));
    }
    send();
  }
}

}  // namespace evring::bench
