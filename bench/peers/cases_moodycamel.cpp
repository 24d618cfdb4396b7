// moodycamel_cq and moodycamel_rwq: moodycamel::ConcurrentQueue (with tokens) and
// ReaderWriterQueue, in one process, producer and consumer threads pinned like the processes of
// the other cases. Both are bounded by try_enqueue, which never allocates.
#include <exception>
#include <mutex>
#include <thread>

#include "peer_cases.h"
#include "pin.h"

#if __has_include(<concurrentqueue/concurrentqueue.h>)
#include <concurrentqueue/concurrentqueue.h>
#define EVRING_PEERS_HAVE_CQ 1
#elif __has_include(<concurrentqueue.h>)
#include <concurrentqueue.h>
#define EVRING_PEERS_HAVE_CQ 1
#else
#define EVRING_PEERS_HAVE_CQ 0
#endif

#if __has_include(<readerwriterqueue/readerwriterqueue.h>)
#include <readerwriterqueue/readerwriterqueue.h>
#define EVRING_PEERS_HAVE_RWQ 1
#elif __has_include(<readerwriterqueue.h>)
#include <readerwriterqueue.h>
#define EVRING_PEERS_HAVE_RWQ 1
#else
#define EVRING_PEERS_HAVE_RWQ 0
#endif

namespace evring::bench {
namespace {

// Runs producer() -> start ns and consumer() on two pinned threads; the first failure wins,
// and sets ctl.abort so the other thread stops spinning.
template <class ProducerFn, class ConsumerFn>
Throughput run_thread_pair(const CaseConfig& cfg, PeerControl& ctl, ProducerFn&& producer,
                           ConsumerFn&& consumer) {
  std::mutex mu;
  std::exception_ptr first_error;
  auto guarded = [&](int cpu, auto&& body) {
    try {
      pin_current_thread(cpu);
      body();
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu);
      if (!first_error) first_error = std::current_exception();
      ctl.abort.store(1, std::memory_order_relaxed);  // relaxed: a stop hint, see PeerControl
    }
  };
  uint64_t start = 0;
  std::thread c([&] { guarded(cfg.consumer_cpu, consumer); });
  std::thread p([&] { guarded(cfg.producer_cpu, [&] { start = producer(); }); });
  p.join();
  c.join();
  if (first_error) std::rethrow_exception(first_error);
  return throughput_of(ctl, start);
}

}  // namespace

std::string moodycamel_cq_unavailable() {
  return EVRING_PEERS_HAVE_CQ ? ""
                              : "no <concurrentqueue/concurrentqueue.h> at build time "
                                "(Debian: apt-get install libconcurrentqueue-dev)";
}

std::string moodycamel_rwq_unavailable() {
  return EVRING_PEERS_HAVE_RWQ ? ""
                               : "no <readerwriterqueue/readerwriterqueue.h> at build time "
                                 "(Debian: apt-get install libreaderwriterqueue-dev)";
}

std::vector<Metric> run_moodycamel_cq(const CaseConfig& cfg) {
  std::vector<Metric> out;
#if EVRING_PEERS_HAVE_CQ
  with_fixed_size(cfg.payload_bytes, [&]<size_t N>() {
    moodycamel::ConcurrentQueue<FixedMsg<N>> queue(kQueueCapacity);
    PeerControl ctl;
    FixedMsg<N> in{};
    FixedMsg<N> out_msg{};
    const Throughput t = run_thread_pair(
        cfg, ctl,
        [&] {
          moodycamel::ProducerToken token(queue);
          return produce_for(ctl, cfg.seconds, in.bytes.data(), N,
                             [&] { return queue.try_enqueue(token, in); });
        },
        [&] {
          moodycamel::ConsumerToken token(queue);
          consume_all(ctl, out_msg.bytes.data(), N,
                      [&] { return queue.try_dequeue(token, out_msg); });
        });
    out = throughput_metrics(t, N);
  });
#else
  (void)cfg;
#endif
  return out;
}

std::vector<Metric> run_moodycamel_rwq(const CaseConfig& cfg) {
  std::vector<Metric> out;
#if EVRING_PEERS_HAVE_RWQ
  with_fixed_size(cfg.payload_bytes, [&]<size_t N>() {
    moodycamel::ReaderWriterQueue<FixedMsg<N>> queue(kQueueCapacity);
    PeerControl ctl;
    FixedMsg<N> in{};
    FixedMsg<N> out_msg{};
    const Throughput t = run_thread_pair(
        cfg, ctl,
        [&] {
          return produce_for(ctl, cfg.seconds, in.bytes.data(), N,
                             [&] { return queue.try_enqueue(in); });
        },
        [&] {
          consume_all(ctl, out_msg.bytes.data(), N, [&] { return queue.try_dequeue(out_msg); });
        });
    out = throughput_metrics(t, N);
  });
#else
  (void)cfg;
#endif
  return out;
}

}  // namespace evring::bench
