// boost_mq and boost_spsc_shm: Boost.Interprocess message_queue, and boost::lockfree::spsc_queue
// constructed in a managed_shared_memory segment, each across two processes. The peer opens the
// objects by name, as an unrelated process would.
#include <boost/interprocess/ipc/message_queue.hpp>
#include <boost/interprocess/managed_shared_memory.hpp>
#include <boost/lockfree/spsc_queue.hpp>
#include <new>
#include <vector>

#include "fork_peer.h"
#include "peer_cases.h"
#include "pin.h"

namespace evring::bench {
namespace {

namespace bip = boost::interprocess;

// Receives exactly msg_bytes into `msg`, blocking; a short message is a failure.
void mq_receive(bip::message_queue& q, std::byte* msg, size_t msg_bytes) {
  size_t got = 0;
  unsigned priority = 0;
  q.receive(msg, msg_bytes, got, priority);
  if (got != msg_bytes) {
    throw std::runtime_error("message_queue delivered " + std::to_string(got) +
                             " bytes, expected " + std::to_string(msg_bytes));
  }
}

Throughput mq_throughput(const CaseConfig& cfg) {
  const size_t n = cfg.payload_bytes;
  ShmRegion ctl_region(kShmPrefix, "mq-ctl", sizeof(PeerControl));
  auto* ctl = new (ctl_region.data()) PeerControl{};
  ShmName name(kShmPrefix, "mq");
  bip::message_queue queue(bip::create_only, name.boost(), kQueueCapacity, n);
  std::vector<std::byte> msg(n);
  uint64_t start = 0;
  run_forked(
      ctl->err, sizeof(ctl->err),
      [&] {
        pin_current_thread(cfg.consumer_cpu);
        bip::message_queue q(bip::open_only, name.boost());
        consume_all(*ctl, msg.data(), n, [&] {
          mq_receive(q, msg.data(), n);
          return true;
        });
      },
      [&] {
        pin_current_thread(cfg.producer_cpu);
        start = produce_for(*ctl, cfg.seconds, msg.data(), n, [&] {
          queue.send(msg.data(), n, 0);
          return true;
        });
      });
  return throughput_of(*ctl, start);
}

LatencyHistogram mq_rtt(const CaseConfig& cfg) {
  const size_t n = cfg.payload_bytes;
  ShmRegion ctl_region(kShmPrefix, "mqrtt-ctl", sizeof(PeerControl));
  auto* ctl = new (ctl_region.data()) PeerControl{};
  ShmName there_name(kShmPrefix, "mq-there");
  ShmName back_name(kShmPrefix, "mq-back");
  bip::message_queue there(bip::create_only, there_name.boost(), kQueueCapacity, n);
  bip::message_queue back(bip::create_only, back_name.boost(), kQueueCapacity, n);
  std::vector<std::byte> msg(n);
  LatencyHistogram hist;
  run_forked(
      ctl->err, sizeof(ctl->err),
      [&] {
        pin_current_thread(cfg.consumer_cpu);
        bip::message_queue in(bip::open_only, there_name.boost());
        bip::message_queue out(bip::open_only, back_name.boost());
        rtt_echo(
            *ctl, msg.data(), n, [&] { out.send(msg.data(), n, 0); },
            [&] { mq_receive(in, msg.data(), n); });
      },
      [&] {
        pin_current_thread(cfg.producer_cpu);
        rtt_initiate(
            *ctl, cfg.seconds, msg.data(), n, hist, [&] { there.send(msg.data(), n, 0); },
            [&] { mq_receive(back, msg.data(), n); });
      });
  record_cpu_wait(*ctl);
  return hist;
}

}  // namespace

std::vector<Metric> run_boost_mq(const CaseConfig& cfg) {
  std::vector<Metric> out = throughput_metrics(mq_throughput(cfg), cfg.payload_bytes);
  add_rtt_metrics(out, mq_rtt(cfg));
  return out;
}

std::vector<Metric> run_boost_spsc_shm(const CaseConfig& cfg) {
  std::vector<Metric> out;
  with_fixed_size(cfg.payload_bytes, [&]<size_t N>() {
    // Compile-time capacity keeps the ring storage inline in the object (no pointers), which
    // is what makes it valid at a different address in the peer's mapping.
    using Queue =
        boost::lockfree::spsc_queue<FixedMsg<N>, boost::lockfree::capacity<kQueueCapacity>>;
    ShmRegion ctl_region(kShmPrefix, "spsc-ctl", sizeof(PeerControl));
    auto* ctl = new (ctl_region.data()) PeerControl{};
    ShmName name(kShmPrefix, "spsc");
    bip::managed_shared_memory segment(bip::create_only, name.boost(), sizeof(Queue) + 65536);
    Queue* queue = segment.find_or_construct<Queue>("queue")();
    FixedMsg<N> msg{};
    uint64_t start = 0;
    run_forked(
        ctl->err, sizeof(ctl->err),
        [&] {
          pin_current_thread(cfg.consumer_cpu);
          bip::managed_shared_memory seg(bip::open_only, name.boost());
          Queue* q = seg.find<Queue>("queue").first;
          if (q == nullptr) throw std::runtime_error("spsc_queue not found in the segment");
          consume_all(*ctl, msg.bytes.data(), N, [&] { return q->pop(msg); });
        },
        [&] {
          pin_current_thread(cfg.producer_cpu);
          start =
              produce_for(*ctl, cfg.seconds, msg.bytes.data(), N, [&] { return queue->push(msg); });
        });
    out = throughput_metrics(throughput_of(*ctl, start), N);
  });
  return out;
}

}  // namespace evring::bench
