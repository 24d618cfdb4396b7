// Stress tests for the ring: several producer threads and consumer threads on one region,
// checking sums and sequences (every event exactly once, per-entity order).
//
// These tests do not prove the memory orderings correct: a passing run only means no violation
// showed up in this interleaving on this machine (and x86 forgives many missing fences). The
// orderings are argued in core/ring.h and ring_layout.h; run this suite under ThreadSanitizer
// too (-fsanitize=thread) to have the races checked rather than sampled.
#include <gtest/gtest.h>
#include <sched.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/ring_fixture.h"
#include "evring/core/ring.h"

namespace evring::core {
namespace {

using testing::make_producer;
using testing::permissive_policy;
using testing::small_config;
using testing::TestRing;
using Start = RingConsumer::Start;

constexpr int kProducers = 4;
constexpr int kEventsPerProducer = 20000;
constexpr int kConsumers = 3;
constexpr int kEntities = 16;
constexpr std::uint64_t kTotal = std::uint64_t{kProducers} * kEventsPerProducer;
// Liveness bound for a whole run: generous, never a speed claim.
constexpr auto kDeadline = std::chrono::seconds(120);

struct Payload {
  std::uint32_t producer;
  std::uint32_t entity;
  std::uint64_t seq;  // per producer, 0..kEventsPerProducer-1
};

std::string entity_key(int e) {
  std::string k = "entity-";
  k += std::to_string(e);
  return k;
}

void run_producer(RingProducer& producer, int index, std::atomic<std::uint64_t>* full_retries) {
  std::vector<std::string> keys;
  for (int e = 0; e < kEntities; ++e) keys.push_back(entity_key(e));
  std::uint64_t retries = 0;
  const auto deadline = std::chrono::steady_clock::now() + kDeadline;
  for (int s = 0; s < kEventsPerProducer; ++s) {
    const int entity = (s * 7 + index) % kEntities;
    Payload p{static_cast<std::uint32_t>(index), static_cast<std::uint32_t>(entity),
              static_cast<std::uint64_t>(s)};
    PublishRequest r;
    r.type_id = 1;
    r.entity_key = keys[entity];
    r.payload = std::as_bytes(std::span(&p, 1));
    while (true) {
      PublishResult res = producer.try_publish(r);
      if (res == PublishResult::kOk) break;
      if (res != PublishResult::kFull || std::chrono::steady_clock::now() > deadline) {
        ADD_FAILURE() << "producer " << index << " got " << describe(res) << " at " << s;
        return;
      }
      ++retries;
      sched_yield();
    }
  }
  full_retries->fetch_add(retries);
}

struct ConsumerReport {
  std::uint64_t delivered = 0, gaps = 0, skipped = 0, duplicates = 0, order_violations = 0, bad_payloads = 0;
  std::vector<std::uint8_t> seen = std::vector<std::uint8_t>(kTotal, 0);
};

// Consumes until `stop()` says so; checks each event against what it has seen.
template <typename Stop>
void run_consumer(RingConsumer& consumer, ConsumerReport* report, Stop stop) {
  // last[producer][entity]: the last per-producer sequence seen for that entity, +1.
  std::vector<std::vector<std::uint64_t>> last(kProducers, std::vector<std::uint64_t>(kEntities, 0));
  auto on_event = [&](const Event& e) {
    ++report->delivered;
    Payload p;
    if (e.view.payload.size() != sizeof p) {
      ++report->bad_payloads;
      return;
    }
    std::memcpy(&p, e.view.payload.data(), sizeof p);
    if (p.producer >= kProducers || p.entity >= kEntities || p.seq >= kEventsPerProducer ||
        e.view.key_text() != entity_key(static_cast<int>(p.entity))) {
      ++report->bad_payloads;
      return;
    }
    std::uint8_t& seen = report->seen[p.producer * kEventsPerProducer + p.seq];
    if (seen) ++report->duplicates;
    seen = 1;
    std::uint64_t& l = last[p.producer][p.entity];
    if (p.seq + 1 <= l) ++report->order_violations;
    l = p.seq + 1;
  };
  while (true) {
    PollResult r = consumer.poll(on_event);
    report->gaps += r.gaps;
    report->skipped += r.skipped;  // corrupt or abandoned: none expected
    if (r.delivered == 0 && r.gaps == 0 && r.skipped == 0) {
      if (stop(*report)) return;
      (void)consumer.wait(WaitStrategy::kYield, 1'000'000);
    }
  }
}

struct StressRun {
  RingConfig config;
  std::vector<ConsumerReport> reports = std::vector<ConsumerReport>(kConsumers);
  std::uint64_t published = 0;
  std::uint64_t full_retries = 0;
};

void run_stress(StressRun* run) {
  TestRing ring(run->config);
  auto policy = permissive_policy();
  // Consumers attach before any producer starts, so that reject mode protects them from the
  // first event on.
  std::vector<std::unique_ptr<RingConsumer>> consumers;
  for (int c = 0; c < kConsumers; ++c)
    consumers.push_back(std::make_unique<RingConsumer>(ring.region(), c, Start::kEarliest));
  std::vector<std::unique_ptr<RingProducer>> producers;
  for (int p = 0; p < kProducers; ++p)
    producers.push_back(make_producer(ring.region(), static_cast<std::uint16_t>(p + 1), policy.get()));

  std::atomic<bool> producers_done{false};
  std::atomic<std::uint64_t> full_retries{0};
  const auto deadline = std::chrono::steady_clock::now() + kDeadline;
  const bool lossless = run->config.overflow == Overflow::kReject;
  std::vector<std::thread> threads;
  for (int c = 0; c < kConsumers; ++c) {
    threads.emplace_back([&, c] {
      int idle_after_done = 0;
      run_consumer(*consumers[c], &run->reports[c], [&](const ConsumerReport& r) {
        if (std::chrono::steady_clock::now() > deadline) return true;
        if (lossless) return r.delivered >= kTotal;
        // Overwrite: stop once the producers are done and a few polls found nothing.
        if (!producers_done.load()) return false;
        return ++idle_after_done >= 3;
      });
    });
  }
  std::vector<std::thread> producer_threads;
  for (int p = 0; p < kProducers; ++p)
    producer_threads.emplace_back([&, p] { run_producer(*producers[p], p, &full_retries); });
  for (auto& t : producer_threads) t.join();
  producers_done.store(true);
  for (auto& t : threads) t.join();
  for (std::uint32_t p = 0; p < run->config.partitions; ++p) run->published += ring.head(p);
  run->full_retries = full_retries.load();
}

TEST(RingStressTest, RejectModeDeliversEveryEventExactlyOnceInEntityOrderToEveryConsumer) {
  StressRun run;
  run.config = small_config(4, 256, Overflow::kReject);
  run_stress(&run);
  EXPECT_EQ(run.published, kTotal);
  for (int c = 0; c < kConsumers; ++c) {
    const ConsumerReport& r = run.reports[c];
    EXPECT_EQ(r.delivered, kTotal) << "consumer " << c;
    EXPECT_EQ(r.gaps, 0u) << "consumer " << c << ": reject mode loses nothing";
    EXPECT_EQ(r.skipped, 0u) << "consumer " << c << ": corrupt slots";
    EXPECT_EQ(r.duplicates, 0u) << "consumer " << c;
    EXPECT_EQ(r.order_violations, 0u) << "consumer " << c;
    EXPECT_EQ(r.bad_payloads, 0u) << "consumer " << c;
    std::uint64_t missing = 0;
    for (auto s : r.seen) missing += !s;
    EXPECT_EQ(missing, 0u) << "consumer " << c;
  }
}

TEST(RingStressTest, OverwriteModeDeliveredPlusGapsEqualsPublishedForEveryConsumer) {
  StressRun run;
  run.config = small_config(4, 64, Overflow::kOverwrite);
  run_stress(&run);
  EXPECT_EQ(run.published, kTotal);
  for (int c = 0; c < kConsumers; ++c) {
    const ConsumerReport& r = run.reports[c];
    EXPECT_EQ(r.delivered + r.gaps, kTotal) << "consumer " << c;
    EXPECT_EQ(r.skipped, 0u) << "consumer " << c << ": corrupt slots";
    EXPECT_EQ(r.duplicates, 0u) << "consumer " << c;
    EXPECT_EQ(r.order_violations, 0u) << "consumer " << c;
    EXPECT_EQ(r.bad_payloads, 0u) << "consumer " << c;
    EXPECT_GT(r.delivered, 0u) << "consumer " << c;
  }
}

}  // namespace
}  // namespace evring::core
