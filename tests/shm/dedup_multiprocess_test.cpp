// Publish-side dedup across processes: forked producers publish overlapping idempotency keys
// concurrently into one dedup bus; forked durable consumers (attached before) must see every
// key exactly once. Plus a false-positive run (1 bloom word: the bloom says "maybe" for
// nearly everything) where no genuine event may be dropped.
//
// Like the other multi-process tests, these check counts; they do not prove the orderings.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <new>
#include <numeric>
#include <random>
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

constexpr int kProducers = 4;
constexpr int kConsumers = 2;
constexpr int kMaxKeys = 4000;
constexpr auto kDeadline = std::chrono::seconds(30);  // liveness bound only

struct Payload {
  std::uint32_t producer;
  std::uint32_t key;
};

struct ConsumerOut {
  std::uint64_t delivered, bad_payloads, skipped, gaps;
  std::uint8_t seen[kMaxKeys];  // times each key was delivered (saturating at 255)
  int finished;
};
struct Shared {
  std::atomic<int> consumers_ready;
  std::atomic<int> producers_done;
  std::atomic<int> producers_ready, go;  // start barrier: producers publish at the same time
  std::uint64_t published[kProducers], duplicates[kProducers];
  int producer_finished[kProducers];
  ConsumerOut consumers[kConsumers];
};

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
  Shared* get() const { return shared_; }

 private:
  Shared* shared_;
};

bool past(std::chrono::steady_clock::time_point deadline) {
  return std::chrono::steady_clock::now() > deadline;
}

std::string key_text(int key) { return tag("idem-", key); }
// Every copy of a key goes to the same partition (dedup is per partition).
std::string entity_of(int key) { return tag("entity-", key % 7); }

// The order producer `index` publishes keys 0..n-1 in: ascending, descending, a stride
// permutation, a seeded shuffle.
std::vector<int> order_for(int index, int n) {
  std::vector<int> keys(n);
  std::iota(keys.begin(), keys.end(), 0);
  if (index == 1) std::reverse(keys.begin(), keys.end());
  if (index == 2)
    for (int i = 0; i < n; ++i) keys[i] = static_cast<int>((std::int64_t{i} * 7919 + 13) % n);
  if (index == 3) std::shuffle(keys.begin(), keys.end(), std::mt19937(12345));
  return keys;
}

int producer_main(const std::string& bus_name, int index, const std::vector<int>& keys,
                  int key_offset, Shared* shared) {
  auto bus = Bus::open(bus_name);
  if (!bus.ok()) return 2;
  auto producer = (*bus)->producer("orders");
  if (!producer.ok()) return 3;
  auto type = (*producer)->resolve("orders.item.added");
  if (!type.ok()) return 4;
  const auto deadline = std::chrono::steady_clock::now() + kDeadline;
  shared->producers_ready.fetch_add(1);
  while (!shared->go.load() && !past(deadline)) std::this_thread::yield();
  for (int k : keys) {
    const int key = k + key_offset;
    Payload p{static_cast<std::uint32_t>(index), static_cast<std::uint32_t>(key)};
    const std::string entity = entity_of(key);
    core::PublishRequest r;
    r.type_id = type.value();
    r.entity_key = entity;
    r.payload = std::as_bytes(std::span(&p, 1));
    r.idempotency_key = Id128::from_key_text(key_text(key));
    while (true) {
      core::PublishResult res = (*producer)->try_publish(r);
      if (res == core::PublishResult::kOk) {
        ++shared->published[index];
        break;
      }
      if (res == core::PublishResult::kDuplicate) {
        ++shared->duplicates[index];
        break;
      }
      if (res != core::PublishResult::kFull || past(deadline)) return 5;
      std::this_thread::yield();
    }
  }
  shared->producer_finished[index] = 1;
  return 0;
}

// Reads until `expected` events arrived and the producers are done and nothing more comes.
int consumer_main(const std::string& bus_name, int index, int expected, Shared* shared) {
  auto bus = Bus::open(bus_name);
  if (!bus.ok()) return 2;
  auto consumer = (*bus)->consumer(tag("reader-", index));
  if (!consumer.ok()) return 3;
  shared->consumers_ready.fetch_add(1);
  ConsumerOut& out = shared->consumers[index];
  auto on_event = [&](const core::Event& e) {
    ++out.delivered;
    Payload p;
    if (e.view.payload.size() != sizeof p) {
      ++out.bad_payloads;
      return;
    }
    std::memcpy(&p, e.view.payload.data(), sizeof p);
    if (p.key >= kMaxKeys || p.producer >= kProducers ||
        e.view.header.idempotency_key != Id128::from_key_text(key_text(static_cast<int>(p.key)))) {
      ++out.bad_payloads;
      return;
    }
    if (out.seen[p.key] < 255) ++out.seen[p.key];
  };
  const auto deadline = std::chrono::steady_clock::now() + kDeadline;
  int idle_after_done = 0;
  while (!past(deadline)) {
    core::PollResult r = (*consumer)->poll(on_event);
    out.gaps += r.gaps;
    out.skipped += r.skipped;
    if (r.delivered || r.gaps || r.skipped) {
      idle_after_done = 0;
      continue;
    }
    if (out.delivered >= static_cast<std::uint64_t>(expected) &&
        shared->producers_done.load() && ++idle_after_done >= 3)
      break;
    (void)(*consumer)->wait(core::WaitStrategy::kBlock, 2'000'000);
  }
  out.finished = 1;
  return 0;
}

struct Totals {
  std::uint64_t heads = 0, deduplicated = 0, rejected = 0, abandoned = 0;
};
Totals totals_of(const Bus& bus) {
  Totals t;
  for (std::uint32_t p = 0; p < bus.ring().config().partitions; ++p) {
    const core::PartitionHeader& ph = bus.ring().partition(p);
    t.heads += ph.head.load();
    t.deduplicated += ph.deduplicated.load();
    t.rejected += ph.rejected.load();
    t.abandoned += ph.abandoned.load();
  }
  return t;
}

// Consumers attach, then producers publish (key sets from keys_for(producer), each key offset by
// key_offset(producer)); returns after everyone exited.
template <typename KeysFor, typename OffsetFor>
void run(const TestBus& bus, Shared* shared, int expected_per_consumer, KeysFor keys_for,
         OffsetFor offset_for) {
  std::vector<pid_t> consumers, producers;
  for (int c = 0; c < kConsumers; ++c)
    consumers.push_back(fork_child(
        [&] { return consumer_main(bus.name(), c, expected_per_consumer, shared); }));
  const auto deadline = std::chrono::steady_clock::now() + kDeadline;
  while (shared->consumers_ready.load() < kConsumers && !past(deadline))
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ASSERT_EQ(shared->consumers_ready.load(), kConsumers) << "consumers attach before producers";
  std::vector<std::vector<int>> orders;
  for (int p = 0; p < kProducers; ++p) orders.push_back(keys_for(p));
  for (int p = 0; p < kProducers; ++p)
    producers.push_back(fork_child(
        [&] { return producer_main(bus.name(), p, orders[p], offset_for(p), shared); }));
  while (shared->producers_ready.load() < kProducers && !past(deadline))
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  shared->go.store(1);
  for (int p = 0; p < kProducers; ++p) EXPECT_EQ(wait_child(producers[p]), 0) << "producer " << p;
  shared->producers_done.store(1);
  for (int c = 0; c < kConsumers; ++c) EXPECT_EQ(wait_child(consumers[c]), 0) << "consumer " << c;
}

void expect_each_key_once(const Shared& shared, int keys) {
  for (int c = 0; c < kConsumers; ++c) {
    const ConsumerOut& out = shared.consumers[c];
    EXPECT_EQ(out.finished, 1) << "consumer " << c;
    EXPECT_EQ(out.bad_payloads, 0u) << "consumer " << c;
    EXPECT_EQ(out.gaps, 0u) << "consumer " << c;
    EXPECT_EQ(out.delivered, static_cast<std::uint64_t>(keys)) << "consumer " << c;
    int missing = 0, repeated = 0, first_bad = -1;
    for (int k = 0; k < keys; ++k) {
      if (out.seen[k] == 1) continue;
      (out.seen[k] == 0 ? missing : repeated)++;
      if (first_bad < 0) first_bad = k;
    }
    EXPECT_EQ(missing, 0) << "consumer " << c << " first bad key " << first_bad;
    EXPECT_EQ(repeated, 0) << "consumer " << c << " first bad key " << first_bad;
  }
}

TEST(DedupMultiprocess, OverlappingKeysFromFourProducersAreDeliveredExactlyOnce) {
  constexpr int kKeys = 400;
  // 2 partitions; every copy of every key, 4 * 400 events, fits in one partition's window.
  BusOptions o = small_options(2, 4096);
  o.ring.slot_bytes = 256;
  o.ring.dedup_window = 2048;
  static_assert(kProducers * kKeys <= 2048);
  TestBus bus(o);
  ASSERT_TRUE(bus.ok());
  SharedArea shared;
  run(bus, shared.get(), kKeys, [](int p) { return order_for(p, kKeys); },
      [](int) { return 0; });
  std::uint64_t published = 0, duplicates = 0;
  for (int p = 0; p < kProducers; ++p) {
    EXPECT_EQ(shared->producer_finished[p], 1) << "producer " << p;
    published += shared->published[p];
    duplicates += shared->duplicates[p];
  }
  EXPECT_EQ(published, std::uint64_t{kKeys}) << "exactly one kOk per key across producers";
  EXPECT_EQ(duplicates, std::uint64_t{3 * kKeys});
  expect_each_key_once(*shared.get(), kKeys);
  Totals t = totals_of(*bus);
  EXPECT_EQ(t.deduplicated, std::uint64_t{3 * kKeys});
  EXPECT_EQ(t.heads, std::uint64_t{4 * kKeys});
  EXPECT_EQ(t.rejected, 0u);
  EXPECT_EQ(t.abandoned, 0u);
}

TEST(DedupMultiprocess, BloomFalsePositivesNeverDropDistinctKeys) {
  constexpr int kPerProducer = 1000;  // disjoint key sets: producer p owns [p*1000, p*1000+1000)
  BusOptions o = small_options(2, 512);
  o.ring.slot_bytes = 256;
  o.ring.dedup_window = 256;
  o.ring.dedup_bits_per_key = 1;
  o.ring.dedup_bloom_words = 1;  // one word per generation: "maybe" for nearly every key
  TestBus bus(o);
  ASSERT_TRUE(bus.ok());
  SharedArea shared;
  run(bus, shared.get(), kProducers * kPerProducer,
      [](int p) { return order_for(p, kPerProducer); }, [](int p) { return p * kPerProducer; });
  for (int p = 0; p < kProducers; ++p) {
    EXPECT_EQ(shared->producer_finished[p], 1) << "producer " << p;
    EXPECT_EQ(shared->published[p], std::uint64_t{kPerProducer}) << "producer " << p;
    EXPECT_EQ(shared->duplicates[p], 0u) << "producer " << p;
  }
  expect_each_key_once(*shared.get(), kProducers * kPerProducer);
  Totals t = totals_of(*bus);
  EXPECT_EQ(t.deduplicated, 0u);
  EXPECT_EQ(t.heads, std::uint64_t{kProducers * kPerProducer});
}

}  // namespace
}  // namespace evring
