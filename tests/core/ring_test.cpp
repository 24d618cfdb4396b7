// Unit tests for evring/core/ring.h in one process, over a heap region (no shared memory):
// delivery, wrap-around, reject and overwrite modes, claims, and the hot path's zero allocations
// (this file replaces operator new to count them). Deterministic: every test drives producers
// and consumers from the test thread. The rest of the ring's tests: ring_publish_test.cpp
// (batches, refusals), ring_consumer_test.cpp (config, filters, cursors, corruption),
// ring_liveness_test.cpp (dead writers, lanes, waiting).
#include "evring/core/ring.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <map>
#include <new>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/ring_fixture.h"
#include "evring/core/wait.h"

// ------------------------------------------------------------------ allocation counting
// Replaced global allocation functions: they count calls made by a thread while its
// g_count_allocations flag is set (only inside the measured sections below). GCC cannot see
// that every replaced operator new uses malloc, hence the mismatched-new-delete suppression.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
namespace {
thread_local bool g_count_allocations = false;
std::atomic<std::size_t> g_allocations{0};

void* counted_alloc(std::size_t n) {
  if (g_count_allocations) g_allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(n == 0 ? 1 : n);
}
void* counted_aligned_alloc(std::size_t n, std::align_val_t al) {
  if (g_count_allocations) g_allocations.fetch_add(1, std::memory_order_relaxed);
  const std::size_t a = static_cast<std::size_t>(al);
  return std::aligned_alloc(a, (n + a - 1) / a * a == 0 ? a : (n + a - 1) / a * a);
}
}  // namespace

void* operator new(std::size_t n) {
  if (void* p = counted_alloc(n)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
  if (void* p = counted_alloc(n)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return counted_alloc(n); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return counted_alloc(n); }
void* operator new(std::size_t n, std::align_val_t al) {
  if (void* p = counted_aligned_alloc(n, al)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n, std::align_val_t al) {
  if (void* p = counted_aligned_alloc(n, al)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

namespace evring::core {
namespace {

using testing::as_payload;
using testing::Collected;
using testing::commit_claim;
using testing::drain;
using testing::key_in_partition;
using testing::make_producer;
using testing::RingTest;
using testing::numbered;
using testing::permissive_policy;
using testing::Req;
using testing::small_config;
using testing::tag;
using testing::TestRing;
using Start = RingConsumer::Start;

// ------------------------------------------------------------------------- basic delivery

// The partition of a key is its hash modulo the partition count (part of the layout's meaning:
// every process must agree); power-of-two counts take a mask for it, which must give the same.
TEST(RingRegionTest, PartitionOfIsTheKeyHashModuloThePartitionCount) {
  for (std::uint32_t partitions : {1u, 2u, 3u, 4u, 5u, 7u, 8u, 12u, 16u, 64u}) {
    TestRing ring(small_config(partitions, 8));
    std::uint64_t h = 0x9E3779B97F4A7C15ull;
    for (std::uint64_t v : {std::uint64_t{0}, ~std::uint64_t{0}, std::uint64_t{partitions}}) {
      EXPECT_EQ(ring.region().partition_of(v), v % partitions) << partitions << " " << v;
    }
    for (int i = 0; i < 1000; ++i) {
      h ^= h << 13, h ^= h >> 7, h ^= h << 17;
      ASSERT_EQ(ring.region().partition_of(h), h % partitions) << partitions << " " << h;
    }
  }
}

TEST_F(RingTest, PublishedEventIsPolledWithKeyAndPayload) {
  TestRing ring(small_config(2, 8));
  RingConsumer consumer(ring.region(), 0, Start::kEarliest);
  auto producer = make_producer(ring.region(), 1, policy_.get());
  Req r(3, "order-1", "hello");
  PublishReceipt receipt;
  ASSERT_EQ(producer->try_publish(r.request, &receipt), PublishResult::kOk);
  EXPECT_EQ(receipt.partition, ring.region().partition_of(entity_key_hash("order-1")));
  EXPECT_EQ(receipt.sequence, 0u);
  EXPECT_FALSE(receipt.event_id.is_zero());

  int calls = 0;
  PollResult pr = consumer.poll([&](const Event& e) {
    ++calls;
    EXPECT_EQ(e.view.key_text(), "order-1");
    EXPECT_EQ(e.view.payload_text(), "hello");
    EXPECT_EQ(e.partition, receipt.partition);
    EXPECT_EQ(e.sequence, 0u);
  });
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(pr.delivered, 1u);
  EXPECT_EQ(pr.gaps, 0u);
  EXPECT_EQ(pr.skipped, 0u);
  EXPECT_EQ(consumer.poll([](const Event&) {}).delivered, 0u) << "delivered once only";
}

TEST_F(RingTest, DeliversEveryHeaderField) {
  TestRing ring(small_config(2, 8));
  RingConsumer consumer(ring.region(), 0, Start::kEarliest);
  auto producer = make_producer(ring.region(), 0x0102, policy_.get());
  Req r(7, "patient-9", "{\"x\":1}");
  r.request.schema_version = 3;
  r.request.classification = Classification::kRestricted;
  r.request.content_type = ContentType::kJson;
  r.request.flags = kEncrypted | kHasRevision;
  r.request.key_id = 44;
  r.request.idempotency_key = Id128::parse("11111111222233334444555555555555").value();
  r.request.correlation_id = Id128::parse("4bf92f3577b34da6a3ce929d0e0e4736").value();
  r.request.causation_id = Id128::parse("0189abcdef0172348567000000000001").value();
  r.request.entity_revision = 12;
  r.request.timestamp_ns = 1'704'067'200'123'456'789ull;
  r.request.origin_host = 0xABCD;
  PublishReceipt receipt;
  ASSERT_EQ(producer->try_publish(r.request, &receipt), PublishResult::kOk);

  int calls = 0;
  (void)consumer.poll([&](const Event& e) {
    ++calls;
    const EnvelopeHeader& h = e.view.header;
    EXPECT_EQ(h.format_version, kEnvelopeFormatVersion);
    EXPECT_EQ(h.header_bytes, kEnvelopeHeaderBytes);
    EXPECT_EQ(h.type_id, 7);
    EXPECT_EQ(h.schema_version, 3);
    EXPECT_EQ(h.producer_id, 0x0102);
    EXPECT_EQ(h.classification, static_cast<std::uint8_t>(Classification::kRestricted));
    EXPECT_EQ(h.content_type, static_cast<std::uint8_t>(ContentType::kJson));
    EXPECT_EQ(h.flags, kEncrypted | kHasRevision);
    EXPECT_EQ(h.key_id, 44);
    EXPECT_EQ(h.timestamp_ns, 1'704'067'200'123'456'789ull);
    EXPECT_EQ(h.sequence, receipt.sequence);
    EXPECT_EQ(h.event_id, receipt.event_id);
    EXPECT_EQ(h.event_id.uuid7_unix_ms(), 1'704'067'200'123ull) << "event id from the timestamp";
    EXPECT_EQ(h.idempotency_key, r.request.idempotency_key);
    EXPECT_EQ(h.correlation_id, r.request.correlation_id);
    EXPECT_EQ(h.causation_id, r.request.causation_id);
    EXPECT_EQ(h.entity_key_hash, entity_key_hash("patient-9"));
    EXPECT_EQ(h.entity_revision, 12u);
    EXPECT_EQ(h.payload_bytes, 7u);
    EXPECT_EQ(h.entity_key_bytes, 9u);
    EXPECT_EQ(h.origin_host, 0xABCDu);
    EXPECT_EQ(e.partition, ring.region().partition_of(h.entity_key_hash));
  });
  EXPECT_EQ(calls, 1);
}

TEST_F(RingTest, ZeroFieldsAreFilledWithEventIdTraceIdAndNow) {
  TestRing ring(small_config(1, 8));
  RingConsumer consumer(ring.region(), 0, Start::kEarliest);
  auto producer = make_producer(ring.region(), 1, policy_.get());
  Req r(1, "k", "p");
  const std::uint64_t before = unix_now_ns();
  ASSERT_EQ(producer->try_publish(r.request), PublishResult::kOk);
  ASSERT_EQ(producer->try_publish(r.request), PublishResult::kOk);
  const std::uint64_t after = unix_now_ns();
  std::vector<EnvelopeHeader> got;
  (void)consumer.poll([&](const Event& e) { got.push_back(e.view.header); });
  ASSERT_EQ(got.size(), 2u);
  for (const auto& h : got) {
    EXPECT_EQ(h.idempotency_key, h.event_id);
    EXPECT_FALSE(h.correlation_id.is_zero());
    EXPECT_TRUE(h.causation_id.is_zero());
    EXPECT_GE(h.timestamp_ns, before);
    EXPECT_LE(h.timestamp_ns, after);
    EXPECT_EQ(h.event_id.bytes[6] >> 4, 7) << "UUIDv7";
  }
  EXPECT_LT(got[0].event_id, got[1].event_id);
  EXPECT_NE(got[0].correlation_id, got[1].correlation_id) << "a new trace per event";
}

// ------------------------------------------------------------------------- wrap-around

class RingWrapTest : public RingTest,
                     public ::testing::WithParamInterface<std::tuple<std::uint32_t, std::uint32_t>> {};

TEST_P(RingWrapTest, WrapsAroundManyTimesInOrder) {
  const auto [slots, partitions] = GetParam();
  TestRing ring(small_config(partitions, slots));
  RingConsumer consumer(ring.region(), 0, Start::kEarliest);
  auto producer = make_producer(ring.region(), 1, policy_.get());
  std::map<std::uint32_t, std::vector<std::string>> expected;  // per partition, in order
  std::map<std::uint32_t, std::vector<std::string>> got;
  std::map<std::uint32_t, std::uint64_t> last_seq;
  int n = 0;
  const int laps = 60;
  for (int burst = 0; burst < laps * 4; ++burst) {
    const int size = burst % static_cast<int>(slots) + 1;  // 1..slots: never more than a lap
    for (int i = 0; i < size; ++i, ++n) {
      Req r(1, "entity-" + std::to_string(n % 5), "event-" + std::to_string(n));
      PublishReceipt receipt;
      ASSERT_EQ(producer->try_publish(r.request, &receipt), PublishResult::kOk) << n;
      expected[receipt.partition].push_back(r.payload);
    }
    (void)consumer.poll([&](const Event& e) {
      got[e.partition].emplace_back(e.view.payload_text());
      if (last_seq.count(e.partition)) {
        EXPECT_EQ(e.sequence, last_seq[e.partition] + 1);
      }
      last_seq[e.partition] = e.sequence;
    });
  }
  EXPECT_EQ(got, expected);
  std::uint64_t heads = 0;
  for (std::uint32_t p = 0; p < partitions; ++p) heads += ring.head(p);
  EXPECT_EQ(heads, static_cast<std::uint64_t>(n));
  std::uint64_t busiest = 0;
  for (std::uint32_t p = 0; p < partitions; ++p) busiest = std::max(busiest, ring.head(p));
  EXPECT_GT(busiest, 20u * slots) << "the ring must have wrapped many times";
}

INSTANTIATE_TEST_SUITE_P(SmallRings, RingWrapTest,
                         ::testing::Values(std::make_tuple(4u, 1u), std::make_tuple(8u, 1u),
                                           std::make_tuple(4u, 2u), std::make_tuple(8u, 3u)));

// ------------------------------------------------------------------------- reject mode

TEST_F(RingTest, RejectsPublishWhenSlowestConsumerIsALapBehind) {
  TestRing ring(small_config(1, 4));
  RingConsumer consumer(ring.region(), 0, Start::kEarliest);
  auto producer = make_producer(ring.region(), 1, policy_.get());
  for (int i = 0; i < 4; ++i) {
    Req r(1, "k", tag("e", i));
    ASSERT_EQ(producer->try_publish(r.request), PublishResult::kOk) << i;
  }
  Req extra(1, "k", "extra");
  EXPECT_EQ(producer->try_publish(extra.request), PublishResult::kFull);
  EXPECT_EQ(ring.head(0), 4u) << "a refused publish claims nothing";
  EXPECT_EQ(ring.rejected(0), 1u);
  EXPECT_EQ(producer->try_publish(extra.request), PublishResult::kFull);
  EXPECT_EQ(ring.rejected(0), 2u);
  Claim claim;
  EXPECT_EQ(producer->try_claim(extra.request, 5, &claim), PublishResult::kFull);
  std::size_t published = 99;
  EXPECT_EQ(producer->try_publish_batch(std::span(&extra.request, 1), &published),
            PublishResult::kFull);
  EXPECT_EQ(published, 0u);
  EXPECT_EQ(ring.head(0), 4u);

  // Nothing was written over the unread lap.
  Collected c = drain(consumer);
  EXPECT_EQ(c.payloads, numbered("e", 0, 4));
  // Publishing resumes once the consumer has polled (auto-commit).
  EXPECT_EQ(producer->try_publish(extra.request), PublishResult::kOk);
  EXPECT_EQ(drain(consumer).payloads, std::vector<std::string>{"extra"});
}

TEST_F(RingTest, SlowestOfSeveralConsumersGatesPublishing) {
  TestRing ring(small_config(1, 4));
  RingConsumer fast(ring.region(), 0, Start::kEarliest);
  RingConsumer slow(ring.region(), 3, Start::kEarliest);
  auto producer = make_producer(ring.region(), 1, policy_.get());
  Req r(1, "k", "x");
  for (int i = 0; i < 4; ++i) ASSERT_EQ(producer->try_publish(r.request), PublishResult::kOk);
  EXPECT_EQ(drain(fast).payloads.size(), 4u);
  EXPECT_EQ(producer->try_publish(r.request), PublishResult::kFull) << "slow is a lap behind";
  EXPECT_EQ(slow.poll([](const Event&) {}, 1).delivered, 1u);
  EXPECT_EQ(producer->try_publish(r.request), PublishResult::kOk) << "one slot freed";
  EXPECT_EQ(producer->try_publish(r.request), PublishResult::kFull);
  EXPECT_EQ(ring.head(0), 5u);
}

TEST_F(RingTest, RejectModeNeverRefusesWithoutAnAttachedConsumer) {
  TestRing ring(small_config(2, 4));
  auto producer = make_producer(ring.region(), 1, policy_.get());
  for (int i = 0; i < 200; ++i) {
    Req r(1, "entity-" + std::to_string(i % 7), "x");
    ASSERT_EQ(producer->try_publish(r.request), PublishResult::kOk) << i;
  }
  EXPECT_EQ(ring.head(0) + ring.head(1), 200u);
  EXPECT_EQ(ring.rejected(0) + ring.rejected(1), 0u);
}

TEST_F(RingTest, DetachedConsumerStopsGatingPublishing) {
  TestRing ring(small_config(1, 4));
  auto producer = make_producer(ring.region(), 1, policy_.get());
  Req r(1, "k", "x");
  {
    RingConsumer consumer(ring.region(), 0, Start::kEarliest);
    for (int i = 0; i < 4; ++i) ASSERT_EQ(producer->try_publish(r.request), PublishResult::kOk);
    ASSERT_EQ(producer->try_publish(r.request), PublishResult::kFull);
  }
  for (int i = 0; i < 12; ++i) ASSERT_EQ(producer->try_publish(r.request), PublishResult::kOk) << i;
}

TEST_F(RingTest, ConsumerAttachingBehindTheProducersCachedMinimumIsStillProtected) {
  TestRing ring(small_config(1, 4));
  auto producer = make_producer(ring.region(), 1, policy_.get());
  Req r(1, "k", "x");
  RingConsumer first(ring.region(), 0, Start::kEarliest);
  for (int i = 0; i < 4; ++i) ASSERT_EQ(producer->try_publish(r.request), PublishResult::kOk);
  EXPECT_EQ(drain(first).payloads.size(), 4u);
  // The producer refreshes its cached minimum to 4: it may now claim up to sequence 7.
  ASSERT_EQ(producer->try_publish(r.request), PublishResult::kOk);  // sequence 4
  // A consumer joins at the earliest event still in the ring (sequence 1), below that cache:
  // the producer must not overwrite sequence 1's slot.
  RingConsumer late(ring.region(), 1, Start::kEarliest);
  ASSERT_EQ(late.read_position(0), 1u);
  EXPECT_EQ(producer->try_publish(r.request), PublishResult::kFull);
  EXPECT_EQ(ring.head(0), 5u);
  Collected got = drain(late);
  EXPECT_EQ(got.sequences, (std::vector<std::uint64_t>{1, 2, 3, 4}));
  EXPECT_EQ(ring.region().cursor(1, 0).corrupt.load(), 0u);
}

// ------------------------------------------------------------------------- overwrite mode

TEST_F(RingTest, OverwriteNeverRefusesAndLappedConsumerCountsGaps) {
  TestRing ring(small_config(1, 4, Overflow::kOverwrite));
  RingConsumer consumer(ring.region(), 0, Start::kEarliest);
  auto producer = make_producer(ring.region(), 1, policy_.get());
  for (int i = 0; i < 13; ++i) {
    Req r(1, "k", tag("e", i));
    ASSERT_EQ(producer->try_publish(r.request), PublishResult::kOk) << i;
  }
  EXPECT_EQ(ring.rejected(0), 0u);
  Collected c = drain(consumer);
  EXPECT_EQ(c.payloads, numbered("e", 9, 13)) << "the last lap survives";
  EXPECT_EQ(c.gaps, 9u);
  EXPECT_EQ(c.payloads.size() + c.gaps, 13u);
  const CursorLine& line = ring.region().cursor(0, 0);
  EXPECT_EQ(line.gaps.load(), 9u);
  EXPECT_EQ(line.delivered.load(), 4u);
  EXPECT_EQ(line.committed.load(), 13u);
}

TEST_F(RingTest, OverwriteDeliveredPlusGapsEqualsPublishedUnderRandomInterleaving) {
  TestRing ring(small_config(2, 4, Overflow::kOverwrite));
  RingConsumer consumer(ring.region(), 1, Start::kEarliest);
  auto producer = make_producer(ring.region(), 1, policy_.get());
  std::mt19937 rng(12345);
  std::uint64_t published = 0, delivered = 0, gaps = 0;
  std::map<std::uint32_t, std::int64_t> last_seq;
  std::map<std::string, int> last_n;  // per entity: payload numbers must increase
  auto on_event = [&](const Event& e) {
    ++delivered;
    auto it = last_seq.find(e.partition);
    if (it != last_seq.end()) {
      EXPECT_GT(static_cast<std::int64_t>(e.sequence), it->second);
    }
    last_seq[e.partition] = static_cast<std::int64_t>(e.sequence);
    const int n = std::stoi(std::string(e.view.payload_text()));
    std::string key(e.view.key_text());
    if (last_n.count(key)) {
      EXPECT_GT(n, last_n[key]) << key;
    }
    last_n[key] = n;
  };
  for (int round = 0; round < 3000; ++round) {
    const int burst = static_cast<int>(rng() % 11);
    for (int i = 0; i < burst; ++i) {
      Req r(1, "entity-" + std::to_string(rng() % 6), std::to_string(published));
      ASSERT_EQ(producer->try_publish(r.request), PublishResult::kOk);
      ++published;
    }
    if (rng() % 3 == 0) {
      PollResult pr = consumer.poll(on_event, rng() % 7);
      gaps += pr.gaps;
      EXPECT_EQ(pr.skipped, 0u);
    }
  }
  for (int i = 0; i < 100; ++i) {
    PollResult pr = consumer.poll(on_event);
    gaps += pr.gaps;
  }
  EXPECT_GT(gaps, 0u) << "the scenario must lap the consumer";
  EXPECT_GT(delivered, 0u);
  EXPECT_EQ(delivered + gaps, published);
  EXPECT_EQ(ring.head(0) + ring.head(1), published);
}

// ------------------------------------------------------------------------- claims

TEST_F(RingTest, HalfWrittenSlotStaysInvisibleAndHoldsBackItsPartition) {
  TestRing ring(small_config(2, 8));
  RingConsumer consumer(ring.region(), 0, Start::kEarliest);
  auto producer = make_producer(ring.region(), 1, policy_.get());
  const std::string key = key_in_partition(ring.region(), 0);
  const std::string other = key_in_partition(ring.region(), 1);

  Req e0(1, key, "e0");
  ASSERT_EQ(producer->try_publish(e0.request), PublishResult::kOk);
  Req e1(1, key, "");
  Claim claim;
  ASSERT_EQ(producer->try_claim(e1.request, 2, &claim), PublishResult::kOk);
  ASSERT_EQ(claim.partition, 0u);
  ASSERT_EQ(claim.sequence, 1u);
  claim.payload[0] = std::byte{'e'};  // half written: one byte of two
  Req e2(1, key, "e2"), e3(1, key, "e3"), x(1, other, "x");
  ASSERT_EQ(producer->try_publish(e2.request), PublishResult::kOk);
  ASSERT_EQ(producer->try_publish(e3.request), PublishResult::kOk);
  ASSERT_EQ(producer->try_publish(x.request), PublishResult::kOk);
  EXPECT_EQ(ring.head(0), 4u);

  Collected before = drain(consumer);
  std::vector<std::string> visible = before.payloads;
  std::sort(visible.begin(), visible.end());
  EXPECT_EQ(visible, (std::vector<std::string>{"e0", "x"}))
      << "the claimed slot and the events behind it in its partition stay invisible";
  EXPECT_EQ(before.skipped, 0u);
  EXPECT_FALSE(consumer.any_ready());
  EXPECT_EQ(consumer.read_position(0), 1u);
  EXPECT_EQ(ring.region().cursor(0, 0).committed.load(), 1u);

  claim.payload[1] = std::byte{'1'};
  EXPECT_TRUE(commit_claim(*producer, claim));
  EXPECT_EQ(claim.slot, nullptr) << "commit resets the claim";
  EXPECT_TRUE(consumer.any_ready());
  Collected after = drain(consumer);
  EXPECT_EQ(after.payloads, (std::vector<std::string>{"e1", "e2", "e3"}));
  EXPECT_EQ(after.sequences, (std::vector<std::uint64_t>{1, 2, 3}));
}

TEST_F(RingTest, ZeroCopyClaimDeliversThePayloadWrittenIntoIt) {
  TestRing ring(small_config(1, 8));
  RingConsumer consumer(ring.region(), 0, Start::kEarliest);
  auto producer = make_producer(ring.region(), 9, policy_.get());
  Req r(4, "sensor-1", "ignored");
  r.request.content_type = ContentType::kJson;
  r.request.entity_revision = 5;
  const std::string body = "{\"t\":21.5}";
  Claim claim;
  ASSERT_EQ(producer->try_claim(r.request, body.size(), &claim), PublishResult::kOk);
  ASSERT_EQ(claim.payload.size(), body.size());
  std::memcpy(claim.payload.data(), body.data(), body.size());
  EXPECT_TRUE(commit_claim(*producer, claim));
  int calls = 0;
  (void)consumer.poll([&](const Event& e) {
    ++calls;
    EXPECT_EQ(e.view.payload_text(), body);
    EXPECT_EQ(e.view.key_text(), "sensor-1");
    EXPECT_EQ(e.view.header.type_id, 4);
    EXPECT_EQ(e.view.header.producer_id, 9);
    EXPECT_EQ(e.view.header.content_type, static_cast<std::uint8_t>(ContentType::kJson));
    EXPECT_EQ(e.view.header.entity_revision, 5u);
    EXPECT_EQ(e.view.header.sequence, 0u);
  });
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(ring.region().cursor(0, 0).corrupt.load(), 0u) << "commit sealed a valid checksum";
}

TEST_F(RingTest, AbortedClaimIsSkippedAndCounted) {
  TestRing ring(small_config(1, 8));
  RingConsumer consumer(ring.region(), 0, Start::kEarliest);
  auto producer = make_producer(ring.region(), 1, policy_.get());
  Req a(1, "k", "a"), c(1, "k", "c"), b(1, "k", "");
  ASSERT_EQ(producer->try_publish(a.request), PublishResult::kOk);
  Claim claim;
  ASSERT_EQ(producer->try_claim(b.request, 3, &claim), PublishResult::kOk);
  std::memcpy(claim.payload.data(), "bbb", 3);
  producer->abort(claim);
  EXPECT_EQ(claim.slot, nullptr);
  ASSERT_EQ(producer->try_publish(c.request), PublishResult::kOk);
  Collected got = drain(consumer);
  EXPECT_EQ(got.payloads, (std::vector<std::string>{"a", "c"}));
  EXPECT_EQ(got.sequences, (std::vector<std::uint64_t>{0, 2}));
  EXPECT_EQ(got.skipped, 1u);
  EXPECT_EQ(ring.region().cursor(0, 0).abandoned.load(), 1u);
  EXPECT_EQ(ring.region().partition(0).abandoned.load(), 1u);
  EXPECT_EQ(ring.region().cursor(0, 0).corrupt.load(), 0u);
}

// Reject mode with no consumer attached lets producers claim a whole lap ahead of the head.
// A slot still claimed by a slow producer (claimed, not committed) must not be handed to
// another producer: that would overwrite it, and the late commit would put the slot word back
// to the older sequence, hiding the newer event and wedging the partition for every consumer.
TEST_F(RingTest, LateCommitOfAClaimLappedWithoutConsumersLosesNothingAndDoesNotWedge) {
  
  TestRing ring(small_config(1, 4));
  auto slow = make_producer(ring.region(), 1, policy_.get());
  auto fast = make_producer(ring.region(), 2, policy_.get());
  std::map<std::uint64_t, std::string> accepted;  // sequence -> payload of every kOk publish
  auto publish = [&](int n) {
    Req r(1, "k", tag("e", n));
    PublishReceipt receipt;
    if (fast->try_publish(r.request, &receipt) == PublishResult::kOk)
      accepted[receipt.sequence] = r.payload;
  };
  Req slow_req(1, "k", "");
  Claim claim;
  ASSERT_EQ(slow->try_claim(slow_req.request, 2, &claim), PublishResult::kOk);  // sequence 0
  for (int n = 1; n <= 4; ++n) publish(n);
  std::memcpy(claim.payload.data(), "e0", 2);
  const std::uint64_t claimed = claim.sequence;
  EXPECT_TRUE(commit_claim(*slow, claim));
  accepted[claimed] = "e0";

  RingConsumer consumer(ring.region(), 0, Start::kEarliest);
  const std::uint64_t start = consumer.read_position(0);
  std::map<std::uint64_t, std::string> delivered;
  auto take = [&] {
    Collected c = drain(consumer);
    for (std::size_t i = 0; i < c.payloads.size(); ++i) delivered[c.sequences[i]] = c.payloads[i];
  };
  take();
  for (int n = 5; n <= 12; ++n) {
    publish(n);
    take();
  }
  std::map<std::uint64_t, std::string> expected;
  for (const auto& [seq, payload] : accepted)
    if (seq >= start) expected[seq] = payload;
  EXPECT_EQ(delivered, expected) << "every accepted event still in the ring, with its payload";
  EXPECT_GE(accepted.size(), 12u) << "publishing keeps flowing while the consumer keeps up";
}

// ------------------------------------------------------------------------- hot path

TEST_F(RingTest, PublishAndPollAllocateNothingAfterWarmUp) {
  TestRing ring(small_config(4, 64));
  RingConsumer consumer(ring.region(), 0, Start::kEarliest);
  auto producer = make_producer(ring.region(), 1, policy_.get());
  std::vector<std::unique_ptr<Req>> reqs;
  for (int i = 0; i < 16; ++i)
    reqs.push_back(std::make_unique<Req>(1, "entity-" + std::to_string(i), std::string(100, 'p')));
  std::vector<PublishRequest> batch;
  for (const auto& r : reqs) batch.push_back(r->request);
  std::size_t sink = 0;
  auto handler = [&](const Event& e) { sink += e.view.payload.size(); };
  auto round = [&](std::size_t* bad_results) {
    for (const auto& r : reqs)
      if (producer->try_publish(r->request) != PublishResult::kOk) ++*bad_results;
    (void)consumer.poll(handler);
    std::size_t published = 0;
    if (producer->try_publish_batch(batch, &published) != PublishResult::kOk) ++*bad_results;
    (void)consumer.poll(handler);
    Claim claim;
    if (producer->try_claim(reqs[0]->request, 8, &claim) == PublishResult::kOk) {
      std::memset(claim.payload.data(), 'z', 8);
      if (!commit_claim(*producer, claim)) ++*bad_results;
    } else {
      ++*bad_results;
    }
    (void)consumer.poll(handler);
    (void)consumer.any_ready();
  };
  std::size_t bad = 0;
  for (int i = 0; i < 10; ++i) round(&bad);  // warm-up
  g_allocations.store(0);
  g_count_allocations = true;
  for (int i = 0; i < 500; ++i) round(&bad);
  g_count_allocations = false;
  EXPECT_EQ(g_allocations.load(), 0u) << "allocations on the hot path";
  EXPECT_EQ(bad, 0u);
  EXPECT_GT(sink, 0u);
  // The counter itself works (a test that cannot fail is a defect).
  g_count_allocations = true;
  auto* probe = new std::vector<int>(1000);
  g_count_allocations = false;
  delete probe;
  EXPECT_GE(g_allocations.load(), 1u);
}

}  // namespace
}  // namespace evring::core
