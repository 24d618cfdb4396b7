// pingpong, bare_spsc and bare_spsc_slot: the physical floor and the minimal SPSC ring, each as
// two processes over one POSIX shared-memory region.
#include <atomic>
#include <new>
#include <vector>

#include "bare_ring.h"
#include "fork_peer.h"
#include "peer_cases.h"
#include "pin.h"

namespace evring::bench {
namespace {

constexpr size_t kBlock = 128;  // keeps each part of a region on its own cache-line pair
constexpr size_t round_up(size_t n) { return (n + kBlock - 1) / kBlock * kBlock; }

// One cache line per direction: the initiator writes `ping`, the echo side writes `pong`.
struct PingPongLines {
  alignas(128) std::atomic<uint64_t> ping{0};
  alignas(128) std::atomic<uint64_t> pong{0};
};
static_assert(offsetof(PingPongLines, pong) == 128, "the two directions must not share a line");

}  // namespace

std::vector<Metric> run_pingpong(const CaseConfig& cfg) {
  ShmRegion region(kShmPrefix, "pingpong", round_up(sizeof(PeerControl)) + sizeof(PingPongLines));
  auto* ctl = new (region.data()) PeerControl{};
  auto* lines = new (region.data() + round_up(sizeof(PeerControl))) PingPongLines{};
  LatencyHistogram hist;
  run_forked(
      ctl->err, sizeof(ctl->err),
      [&] {
        pin_current_thread(cfg.consumer_cpu);
        ctl->peer_ready.store(1, std::memory_order_release);
        const CpuWait waited;
        for (uint64_t expected = 1;;) {
          // acquire/release: the value itself is the message, so the pair only needs to order
          // this echo after the ping it answers; kept for symmetry with a payload-carrying ring.
          const uint64_t v = lines->ping.load(std::memory_order_acquire);
          if (v == expected) {
            lines->pong.store(v, std::memory_order_release);
            ++expected;
          } else if (v == kStopSeq) {
            ctl->cpu_wait_ns[1].store(waited.elapsed_ns(), std::memory_order_relaxed);
            return;
          } else if (v != expected - 1) {
            throw std::runtime_error("ping out of order: expected " + std::to_string(expected) +
                                     ", got " + std::to_string(v));
          }
        }
      },
      [&] {
        pin_current_thread(cfg.producer_cpu);
        detail::wait_ready(*ctl);
        const CpuWait waited;
        uint64_t t = now_ns();
        const RoundTripSchedule schedule(t, cfg.seconds);
        for (uint64_t i = 1; schedule.go_on(t, hist.count()); ++i) {
          lines->ping.store(i, std::memory_order_release);
          while (lines->pong.load(std::memory_order_acquire) != i) {
          }
          const uint64_t t1 = now_ns();
          if (!schedule.warming_up(i - 1, t)) hist.record(t1 - t);
          t = t1;
        }
        ctl->cpu_wait_ns[0].store(waited.elapsed_ns(), std::memory_order_relaxed);
        lines->ping.store(kStopSeq, std::memory_order_release);
      });
  record_cpu_wait(*ctl);
  std::vector<Metric> out;
  add_rtt_metrics(out, hist);
  out.push_back({"one_way_p50_ns", hist.percentile(0.50) / 2});
  return out;
}

namespace {

Throughput bare_throughput(const CaseConfig& cfg, size_t msg_bytes) {
  const BareRingGeometry g{kQueueCapacity, msg_bytes};
  g.validate();
  const size_t ring_at = round_up(sizeof(PeerControl));
  ShmRegion region(kShmPrefix, "bare", ring_at + g.region_bytes());
  auto* ctl = new (region.data()) PeerControl{};
  bare_ring_init(region.data() + ring_at, g);
  std::vector<std::byte> msg(msg_bytes);
  uint64_t start = 0;
  run_forked(
      ctl->err, sizeof(ctl->err),
      [&] {
        pin_current_thread(cfg.consumer_cpu);
        BareConsumer c(region.data() + ring_at, g);
        consume_all(*ctl, msg.data(), msg_bytes, [&] { return c.try_pop(msg.data()); });
      },
      [&] {
        pin_current_thread(cfg.producer_cpu);
        BareProducer p(region.data() + ring_at, g);
        start = produce_for(*ctl, cfg.seconds, msg.data(), msg_bytes,
                            [&] { return p.try_push(msg.data()); });
      });
  return throughput_of(*ctl, start);
}

// Round trip over two bare rings: `there` carries initiator -> echo, `back` the reply.
LatencyHistogram bare_rtt(const CaseConfig& cfg, size_t msg_bytes) {
  const BareRingGeometry g{kQueueCapacity, msg_bytes};
  const size_t there_at = round_up(sizeof(PeerControl));
  const size_t back_at = there_at + round_up(g.region_bytes());
  ShmRegion region(kShmPrefix, "bare-rtt", back_at + g.region_bytes());
  auto* ctl = new (region.data()) PeerControl{};
  bare_ring_init(region.data() + there_at, g);
  bare_ring_init(region.data() + back_at, g);
  std::vector<std::byte> msg(msg_bytes);
  LatencyHistogram hist;
  run_forked(
      ctl->err, sizeof(ctl->err),
      [&] {
        pin_current_thread(cfg.consumer_cpu);
        BareConsumer in(region.data() + there_at, g);
        BareProducer out(region.data() + back_at, g);
        rtt_echo(
            *ctl, msg.data(), msg_bytes,
            [&] {
              while (!out.try_push(msg.data())) detail::check_abort(*ctl);
            },
            [&] {
              while (!in.try_pop(msg.data())) detail::check_abort(*ctl);
            });
      },
      [&] {
        pin_current_thread(cfg.producer_cpu);
        BareProducer out(region.data() + there_at, g);
        BareConsumer in(region.data() + back_at, g);
        rtt_initiate(
            *ctl, cfg.seconds, msg.data(), msg_bytes, hist,
            [&] {
              while (!out.try_push(msg.data())) detail::check_abort(*ctl);
            },
            [&] {
              while (!in.try_pop(msg.data())) detail::check_abort(*ctl);
            });
      });
  record_cpu_wait(*ctl);
  return hist;
}

}  // namespace

std::vector<Metric> run_bare_spsc(const CaseConfig& cfg) {
  std::vector<Metric> out =
      throughput_metrics(bare_throughput(cfg, cfg.payload_bytes), cfg.payload_bytes);
  add_rtt_metrics(out, bare_rtt(cfg, cfg.payload_bytes));
  return out;
}

std::vector<Metric> run_bare_spsc_slot(const CaseConfig& cfg) {
  return throughput_metrics(bare_throughput(cfg, cfg.slot_bytes), cfg.slot_bytes);
}

std::vector<Metric> run_bare_spsc_span(const CaseConfig& cfg) {
  return throughput_metrics(bare_throughput(cfg, cfg.span_bytes), cfg.span_bytes);
}

}  // namespace evring::bench
