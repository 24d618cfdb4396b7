// Multi-process tests: forked producer and consumer processes on one real bus segment.
// Children report through an anonymous shared mapping and their exit status; they always
// _exit (fork_child), never return into GoogleTest.
//
// Like the thread stress tests, these check sums and sequences; they do not prove the memory
// orderings right.
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "evring/shm/bus.h"
#include "shm/test_bus.h"

namespace evring {
namespace {

using testing::fork_child;
using testing::small_options;
using testing::tag;
using testing::TestBus;
using testing::wait_child;

constexpr int kProducers = 3;
constexpr int kEventsPerProducer = 5000;
constexpr int kConsumers = 3;
constexpr int kEntities = 12;
constexpr std::uint64_t kTotal = std::uint64_t{kProducers} * kEventsPerProducer;
constexpr auto kDeadline = std::chrono::seconds(60);  // liveness bound only

struct Payload {
  std::uint32_t producer;
  std::uint32_t entity;
  std::uint64_t seq;
};

struct ConsumerResult {
  std::uint64_t delivered, gaps, skipped, duplicates, missing, order_violations, bad_payloads;
  std::uint64_t corrupt_counter, gaps_counter;
  int finished;
};
struct ProducerResult {
  std::uint64_t published, full_retries;
  int finished;
};
struct Shared {
  std::atomic<int> consumers_ready;
  std::atomic<int> producers_done;
  // Producers registered so far: each publishes only once all have, so that none exits (and
  // frees its registry entry for reuse) before the last one registered.
  std::atomic<int> producers_registered;
  ConsumerResult consumers[kConsumers];
  ProducerResult producers[kProducers];
  // For the resume test: per event index, who saw it.
  std::uint8_t first_saw[1024];   // 1 = delivered and committed, 2 = delivered, not committed
  std::uint8_t second_saw[1024];  // times delivered to the second process
};
static_assert(std::atomic<int>::is_always_lock_free);

// An anonymous MAP_SHARED area: the same bytes in the parent and every forked child.
class SharedArea {
 public:
  SharedArea() {
    void* p = ::mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                     -1, 0);
    if (p == MAP_FAILED) std::abort();
    shared_ = new (p) Shared{};
  }
  ~SharedArea() { ::munmap(shared_, sizeof(Shared)); }
  Shared* operator->() const { return shared_; }
  Shared& operator*() const { return *shared_; }

 private:
  Shared* shared_;
};

std::string entity_key(std::uint32_t e) {
  std::string k = "entity-";
  k += std::to_string(e);
  return k;
}

bool past(std::chrono::steady_clock::time_point deadline) {
  return std::chrono::steady_clock::now() > deadline;
}

int producer_main(const std::string& bus_name, int index, Shared* shared) {
  auto bus = Bus::open(bus_name);
  if (!bus.ok()) return 2;
  auto producer = (*bus)->producer("orders");
  if (!producer.ok()) return 3;
  auto type = (*producer)->resolve("orders.item.added");
  if (!type.ok()) return 4;
  std::vector<std::string> keys;
  for (std::uint32_t e = 0; e < kEntities; ++e) keys.push_back(entity_key(e));
  ProducerResult& out = shared->producers[index];
  const auto deadline = std::chrono::steady_clock::now() + kDeadline;
  shared->producers_registered.fetch_add(1);
  while (shared->producers_registered.load() < kProducers && !past(deadline))
    std::this_thread::yield();
  for (int s = 0; s < kEventsPerProducer; ++s) {
    const std::uint32_t entity = static_cast<std::uint32_t>((s * 5 + index) % kEntities);
    Payload p{static_cast<std::uint32_t>(index), entity, static_cast<std::uint64_t>(s)};
    core::PublishRequest r;
    r.type_id = type.value();
    r.entity_key = keys[entity];
    r.payload = std::as_bytes(std::span(&p, 1));
    while (true) {
      core::PublishResult res = (*producer)->try_publish(r);
      if (res == core::PublishResult::kOk) break;
      if (res != core::PublishResult::kFull || past(deadline)) return 5;
      ++out.full_retries;
      sched_yield();
    }
    ++out.published;
  }
  out.finished = 1;
  return 0;
}

int consumer_main(const std::string& bus_name, int index, bool lossless, Shared* shared) {
  auto bus = Bus::open(bus_name);
  if (!bus.ok()) return 2;
  auto consumer = (*bus)->consumer(tag("reader-", index));
  if (!consumer.ok()) return 3;
  shared->consumers_ready.fetch_add(1);
  ConsumerResult& out = shared->consumers[index];
  std::vector<std::uint8_t> seen(kTotal, 0);
  std::vector<std::uint64_t> last(kProducers * kEntities, 0);  // last seq + 1
  auto on_event = [&](const core::Event& e) {
    ++out.delivered;
    Payload p;
    if (e.view.payload.size() != sizeof p) {
      ++out.bad_payloads;
      return;
    }
    std::memcpy(&p, e.view.payload.data(), sizeof p);
    if (p.producer >= kProducers || p.entity >= kEntities || p.seq >= kEventsPerProducer ||
        e.view.key_text() != entity_key(p.entity)) {
      ++out.bad_payloads;
      return;
    }
    std::uint8_t& s = seen[p.producer * kEventsPerProducer + p.seq];
    if (s) ++out.duplicates;
    s = 1;
    std::uint64_t& l = last[p.producer * kEntities + p.entity];
    if (p.seq + 1 <= l) ++out.order_violations;
    l = p.seq + 1;
  };
  const auto deadline = std::chrono::steady_clock::now() + kDeadline;
  int idle_after_done = 0;
  while (!past(deadline)) {
    core::PollResult r = (*consumer)->poll(on_event);
    out.gaps += r.gaps;
    out.skipped += r.skipped;
    if (r.delivered || r.gaps || r.skipped) continue;
    if (lossless && out.delivered >= kTotal) break;
    if (!lossless && shared->producers_done.load() && ++idle_after_done >= 3) break;
    (void)(*consumer)->wait(core::WaitStrategy::kBlock, 5'000'000);
  }
  for (auto s : seen) out.missing += !s;
  const core::RingRegion& ring = (*bus)->ring();
  for (std::uint32_t p = 0; p < ring.config().partitions; ++p) {
    out.corrupt_counter += ring.cursor((*consumer)->index(), p).corrupt.load();
    out.gaps_counter += ring.cursor((*consumer)->index(), p).gaps.load();
  }
  out.finished = 1;
  return 0;
}

struct FanOut {
  std::uint64_t rejected = 0;  // partition counters after the run
};

// 3 consumer processes attach (each its own durable name), then 3 producer processes publish
// 5000 events each.
FanOut run_fan_out(const TestBus& bus, bool lossless, Shared* shared) {
  FanOut result;
  std::vector<pid_t> consumers, producers;
  for (int c = 0; c < kConsumers; ++c)
    consumers.push_back(fork_child([&] { return consumer_main(bus.name(), c, lossless, shared); }));
  const auto deadline = std::chrono::steady_clock::now() + kDeadline;
  while (shared->consumers_ready.load() < kConsumers && !past(deadline))
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ(shared->consumers_ready.load(), kConsumers) << "consumers attach before producers";
  for (int p = 0; p < kProducers; ++p)
    producers.push_back(fork_child([&] { return producer_main(bus.name(), p, shared); }));
  for (int p = 0; p < kProducers; ++p) EXPECT_EQ(wait_child(producers[p]), 0) << "producer " << p;
  shared->producers_done.store(1);
  for (int c = 0; c < kConsumers; ++c) EXPECT_EQ(wait_child(consumers[c]), 0) << "consumer " << c;
  for (std::uint32_t p = 0; p < bus->ring().config().partitions; ++p)
    result.rejected += bus->ring().partition(p).rejected.load();
  return result;
}

void expect_producers_finished(const Shared& shared) {
  for (int p = 0; p < kProducers; ++p) {
    EXPECT_EQ(shared.producers[p].finished, 1) << "producer " << p;
    EXPECT_EQ(shared.producers[p].published, std::uint64_t{kEventsPerProducer}) << "producer " << p;
  }
}

void expect_lossless(const Shared& shared) {
  for (int c = 0; c < kConsumers; ++c) {
    const ConsumerResult& r = shared.consumers[c];
    EXPECT_EQ(r.finished, 1) << "consumer " << c;
    EXPECT_EQ(r.delivered, kTotal) << "consumer " << c;
    EXPECT_EQ(r.missing, 0u) << "consumer " << c;
    EXPECT_EQ(r.duplicates, 0u) << "consumer " << c;
    EXPECT_EQ(r.order_violations, 0u) << "consumer " << c << ": per-entity order";
    EXPECT_EQ(r.bad_payloads, 0u) << "consumer " << c;
    EXPECT_EQ(r.gaps, 0u) << "consumer " << c;
    EXPECT_EQ(r.skipped, 0u) << "consumer " << c;
    EXPECT_EQ(r.corrupt_counter, 0u) << "consumer " << c << ": checksums valid";
  }
}

TEST(MultiProcessTest, EveryConsumerProcessReceivesEveryEventOnceInEntityOrder) {
  TestBus bus(small_options(4, 1024));
  ASSERT_TRUE(bus.ok());
  SharedArea shared;
  run_fan_out(bus, /*lossless=*/true, &*shared);
  expect_producers_finished(*shared);
  expect_lossless(*shared);
  EXPECT_EQ(bus->producers().size(), 3u) << "three processes, three registry entries";
  EXPECT_EQ(bus->consumers().size(), 3u);
}

TEST(MultiProcessTest, RejectModeWithASmallRingMakesProducersRetryAndLosesNothing) {
  TestBus bus(small_options(4, 8));
  ASSERT_TRUE(bus.ok());
  SharedArea shared;
  FanOut result = run_fan_out(bus, /*lossless=*/true, &*shared);
  expect_producers_finished(*shared);
  expect_lossless(*shared);
  std::uint64_t retries = 0;
  for (int p = 0; p < kProducers; ++p) retries += shared->producers[p].full_retries;
  EXPECT_GT(retries, 0u) << "a 4 x 8 ring must fill up: the test is about Full";
  EXPECT_EQ(result.rejected, retries) << "every refusal is counted in its partition";
}

TEST(MultiProcessTest, OverwriteModeDeliveredPlusGapsEqualsPublishedPerConsumer) {
  TestBus bus(small_options(4, 16, core::Overflow::kOverwrite));
  ASSERT_TRUE(bus.ok());
  SharedArea shared;
  FanOut result = run_fan_out(bus, /*lossless=*/false, &*shared);
  expect_producers_finished(*shared);
  EXPECT_EQ(result.rejected, 0u) << "overwrite never refuses";
  for (int c = 0; c < kConsumers; ++c) {
    const ConsumerResult& r = shared->consumers[c];
    EXPECT_EQ(r.finished, 1) << "consumer " << c;
    EXPECT_EQ(r.delivered + r.gaps, kTotal) << "consumer " << c;
    EXPECT_EQ(r.gaps_counter, r.gaps) << "consumer " << c;
    EXPECT_EQ(r.duplicates, 0u) << "consumer " << c;
    EXPECT_EQ(r.order_violations, 0u) << "consumer " << c;
    EXPECT_EQ(r.bad_payloads, 0u) << "consumer " << c;
    EXPECT_EQ(r.skipped, 0u) << "consumer " << c;
    EXPECT_EQ(r.corrupt_counter, 0u) << "consumer " << c;
  }
}

TEST(MultiProcessTest, NewProcessResumesADurableConsumerAtItsLastCommit) {
  constexpr int kEvents = 300, kCommitted = 120, kUncommitted = 30;
  TestBus bus(small_options(4, 512));
  ASSERT_TRUE(bus.ok());
  SharedArea shared;
  {
    auto producer = bus->producer("orders");
    ASSERT_TRUE(producer.ok());
    auto type = (*producer)->resolve("orders.item.added");
    ASSERT_TRUE(type.ok());
    for (int i = 0; i < kEvents; ++i) {
      std::uint32_t index = static_cast<std::uint32_t>(i);
      core::PublishRequest r;
      r.type_id = type.value();
      const std::string key = entity_key(index % 7);
      r.entity_key = key;
      r.payload = std::as_bytes(std::span(&index, 1));
      ASSERT_EQ((*producer)->try_publish(r), core::PublishResult::kOk);
    }
  }
  auto index_of = [](const core::Event& e) {
    std::uint32_t i = 0;
    if (e.view.payload.size() == sizeof i) std::memcpy(&i, e.view.payload.data(), sizeof i);
    return i < 1024 ? i : 1023u;
  };
  Bus::ConsumerOptions manual;
  manual.auto_commit = false;
  const pid_t first = fork_child([&] {
    auto b = Bus::open(bus.name());
    if (!b.ok()) return 2;
    auto c = (*b)->consumer("resumer", manual);
    if (!c.ok()) return 3;
    int got = 0;
    for (int i = 0; i < 100 && got < kCommitted; ++i)
      got += static_cast<int>((*c)->poll([&](const core::Event& e) { shared->first_saw[index_of(e)] = 1; },
                                         static_cast<std::size_t>(kCommitted - got))
                                  .delivered);
    if (got != kCommitted) return 4;
    (*c)->commit();
    got = 0;
    for (int i = 0; i < 100 && got < kUncommitted; ++i)
      got += static_cast<int>((*c)->poll([&](const core::Event& e) { shared->first_saw[index_of(e)] = 2; },
                                         static_cast<std::size_t>(kUncommitted - got))
                                  .delivered);
    if (got != kUncommitted) return 5;
    return 0;  // exits with the consumer still attached: the process is gone, not detached
  });
  ASSERT_EQ(wait_child(first), 0);

  const pid_t second = fork_child([&] {
    auto b = Bus::open(bus.name());
    if (!b.ok()) return 2;
    auto c = (*b)->consumer("resumer");
    if (!c.ok()) return 3;
    for (int i = 0; i < 100; ++i)
      (void)(*c)->poll([&](const core::Event& e) { ++shared->second_saw[index_of(e)]; });
    return 0;
  });
  ASSERT_EQ(wait_child(second), 0);

  int committed = 0, uncommitted = 0, second_total = 0;
  for (int i = 0; i < kEvents; ++i) {
    const int a = shared->first_saw[i], b = shared->second_saw[i];
    committed += a == 1;
    uncommitted += a == 2;
    second_total += b;
    if (a == 1) {
      EXPECT_EQ(b, 0) << "event " << i << " was committed: no repeat";
    } else {
      EXPECT_EQ(b, 1) << "event " << i << " was not committed: delivered exactly once more";
    }
  }
  EXPECT_EQ(committed, kCommitted);
  EXPECT_EQ(uncommitted, kUncommitted);
  EXPECT_EQ(second_total, kEvents - kCommitted);
  EXPECT_EQ(shared->second_saw[1023], 0) << "no malformed payloads";
}

// A producer process that dies between claiming a slot and publishing it must not stop the
// bus: consumers move past the dead writer's slot (counted abandoned) and keep receiving.
TEST(MultiProcessTest, ConsumersMovePastASlotWhoseWriterDiedMidEvent) {
  TestBus bus(small_options(1, 8));
  ASSERT_TRUE(bus.ok());
  auto consumer = bus->consumer("reader");
  ASSERT_TRUE(consumer.ok());
  const std::string name = bus.name();
  const pid_t dying = fork_child([&] {
    auto b = Bus::open(name);
    if (!b.ok()) return 2;
    auto p = (*b)->producer("orders");
    if (!p.ok()) return 3;
    auto type = (*p)->resolve("orders.item.added");
    if (!type.ok()) return 4;
    core::PublishRequest r;
    r.type_id = type.value();
    r.entity_key = "k";
    core::Claim claim;
    if ((*p)->try_claim(r, 4, &claim) != core::PublishResult::kOk) return 5;
    std::memcpy(claim.payload.data(), "dead", 4);
    ::_exit(0);  // dies holding the claim: no destructor releases its producer lane
  });
  ASSERT_EQ(wait_child(dying), 0);
  auto producer = bus->producer("orders");
  ASSERT_TRUE(producer.ok());
  auto type = (*producer)->resolve("orders.item.added");
  ASSERT_TRUE(type.ok());
  for (int i = 0; i < 3; ++i)
    ASSERT_EQ((*producer)->publish(type.value(), "k", tag("live", i)),
              core::PublishResult::kOk);
  std::vector<std::string> got;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (got.size() < 3 && !past(deadline)) {
    (void)(*consumer)->poll([&](const core::Event& e) { got.emplace_back(e.view.payload_text()); });
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  EXPECT_EQ(got, (std::vector<std::string>{"live0", "live1", "live2"}));
  EXPECT_EQ(bus->ring().cursor((*consumer)->index(), 0).abandoned.load(), 1u);
}

// Overwrite mode: a producer that laps a slot still marked WRITING waits for its writer (it
// never writes over a live writer). When that writer is dead, the wait must end.
int claim_and_die(const std::string& name) {
  auto b = Bus::open(name);
  if (!b.ok()) return 2;
  auto p = (*b)->producer("orders");
  if (!p.ok()) return 3;
  auto type = (*p)->resolve("orders.item.added");
  if (!type.ok()) return 4;
  core::PublishRequest r;
  r.type_id = type.value();
  r.entity_key = "k";
  core::Claim claim;
  if ((*p)->try_claim(r, 4, &claim) != core::PublishResult::kOk) return 5;
  ::_exit(0);  // dies holding the claim: no destructor releases its producer lane
}

int publish_n(const std::string& name, int n) {
  auto b = Bus::open(name);
  if (!b.ok()) return 2;
  auto p = (*b)->producer("orders");
  if (!p.ok()) return 3;
  auto type = (*p)->resolve("orders.item.added");
  if (!type.ok()) return 4;
  for (int i = 0; i < n; ++i)
    if ((*p)->publish(type.value(), "k", tag("x", i)) != core::PublishResult::kOk) return 5;
  return 0;
}

TEST(MultiProcessTest, OverwriteProducerLappingADeadWritersSlotIsFreedByAConsumer) {
  TestBus bus(small_options(1, 4, core::Overflow::kOverwrite));
  ASSERT_TRUE(bus.ok());
  const std::string name = bus.name();
  // The reader attaches first and keeps polling: it reaches the dead writer's slot, finds its
  // claimer dead and abandons it, which releases the lapping publisher.
  SharedArea shared;
  const pid_t reader = fork_child([&] {
    auto b = Bus::open(name);
    if (!b.ok()) return 2;
    auto c = (*b)->consumer("reader");
    if (!c.ok()) return 3;
    shared->consumers_ready.store(1);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!shared->producers_done.load() && !past(deadline)) {
      (void)(*c)->poll([](const core::Event&) {});
      (void)(*c)->wait(core::WaitStrategy::kBlock, 2'000'000);
    }
    return 0;
  });
  const auto ready_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!shared->consumers_ready.load() && !past(ready_deadline))
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ASSERT_EQ(wait_child(fork_child([&] { return claim_and_die(name); })), 0);
  const pid_t publisher = fork_child([&] { return publish_n(name, 12); });  // laps it twice
  EXPECT_EQ(wait_child(publisher, std::chrono::seconds(10)), 0)
      << "-1: the publisher was still blocked after 10 s and was killed";
  shared->producers_done.store(1);
  EXPECT_EQ(wait_child(reader), 0);
  EXPECT_EQ(bus->ring().partition(0).abandoned.load(), 1u);
}

TEST(MultiProcessTest, OverwriteProducersAreNotBlockedForeverByAWriterThatDied) {
  TestBus bus(small_options(1, 4, core::Overflow::kOverwrite));
  ASSERT_TRUE(bus.ok());
  const std::string name = bus.name();
  ASSERT_EQ(wait_child(fork_child([&] { return claim_and_die(name); })), 0);
  const pid_t publisher = fork_child([&] { return publish_n(name, 12); });  // laps it twice
  EXPECT_EQ(wait_child(publisher, std::chrono::seconds(10)), 0)
      << "-1: the publisher was still blocked after 10 s and was killed";
}

}  // namespace
}  // namespace evring
