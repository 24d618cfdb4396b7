// Publishing beyond one event: batches (runs per partition, stopping at the first refusal) and
// every refusal a publish can meet (too large, unknown type, foreign domain).
// (Split from ring_test.cpp, which keeps the allocation-counting operator new.)
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/ring_fixture.h"
#include "evring/core/ring.h"

namespace evring::core {
namespace {

using testing::as_payload;
using testing::Collected;
using testing::commit_claim;
using testing::drain;
using testing::key_in_partition;
using testing::make_producer;
using testing::RingTest;
using testing::permissive_policy;
using testing::Req;
using testing::small_config;
using testing::tag;
using testing::TestRing;
using Start = RingConsumer::Start;

// ------------------------------------------------------------------------- batches

TEST_F(RingTest, BatchPublishDeliversAllInOrder) {
  TestRing ring(small_config(3, 16));
  RingConsumer consumer(ring.region(), 0, Start::kEarliest);
  auto producer = make_producer(ring.region(), 1, policy_.get());
  std::vector<std::unique_ptr<Req>> reqs;
  std::vector<PublishRequest> batch;
  std::map<std::uint32_t, std::vector<std::string>> expected;
  for (int i = 0; i < 12; ++i) {
    // Runs of equal keys and changes of partition.
    reqs.push_back(std::make_unique<Req>(1, "entity-" + std::to_string(i / 3 % 4),
                                         tag("b", i)));
    batch.push_back(reqs.back()->request);
    expected[ring.region().partition_of(entity_key_hash(reqs.back()->key))].push_back(
        reqs.back()->payload);
  }
  std::size_t published = 0;
  ASSERT_EQ(producer->try_publish_batch(batch, &published), PublishResult::kOk);
  EXPECT_EQ(published, 12u);
  Collected got = drain(consumer);
  std::map<std::uint32_t, std::vector<std::string>> by_partition;
  for (std::size_t i = 0; i < got.payloads.size(); ++i)
    by_partition[got.partitions[i]].push_back(got.payloads[i]);
  EXPECT_EQ(by_partition, expected);
}

// Demoting a published slot's lines for a waiting consumer (set_demote_after_idle_ns) is a
// cache hint: it changes nothing a consumer sees. What is pinned here is when it happens: after
// an idle gap of the threshold per event of the previous call, on every publish path.
TEST_F(RingTest, OnlyPublishesAfterAnIdleGapDemoteTheirSlots) {
  TestRing ring(small_config(1, 64));
  RingConsumer consumer(ring.region(), 0, Start::kEarliest);
  auto producer = make_producer(ring.region(), 1, policy_.get());
  std::vector<std::string> sent;
  int n = 0;
  auto publish = [&] {
    Req r(1, "k", tag("e", n++));
    sent.push_back(r.payload);
    return producer->try_publish(r.request);
  };
  auto publish_batch = [&](int count) {
    std::vector<std::unique_ptr<Req>> reqs;
    std::vector<PublishRequest> batch;
    for (int i = 0; i < count; ++i) {
      reqs.push_back(std::make_unique<Req>(1, "k", tag("e", n++)));
      sent.push_back(reqs.back()->payload);
      batch.push_back(reqs.back()->request);
    }
    std::size_t published = 0;
    const PublishResult r = producer->try_publish_batch(batch, &published);
    return r == PublishResult::kOk && published == batch.size();
  };
  auto claim_commit = [&] {
    Req r(1, "k", "");
    const std::string text = tag("e", n++);
    sent.push_back(text);
    Claim claim;
    if (producer->try_claim(r.request, text.size(), &claim) != PublishResult::kOk) return false;
    std::memcpy(claim.payload.data(), text.data(), text.size());
    return producer->commit(claim) == PublishResult::kOk;
  };

  producer->set_demote_after_idle_ns(1'000'000'000);  // 1 s: only the first call is "idle"
  ASSERT_EQ(publish(), PublishResult::kOk);
  EXPECT_EQ(producer->demoted_slots(), 1u) << "the first publish follows no other";
  ASSERT_EQ(publish(), PublishResult::kOk);
  ASSERT_TRUE(publish_batch(4));
  ASSERT_TRUE(claim_commit());
  EXPECT_EQ(producer->demoted_slots(), 1u) << "back to back: nothing demoted";

  producer->set_demote_after_idle_ns(0);  // every slot
  ASSERT_EQ(publish(), PublishResult::kOk);
  ASSERT_TRUE(publish_batch(4));
  ASSERT_TRUE(claim_commit());
  EXPECT_EQ(producer->demoted_slots(), 7u);

  producer->set_demote_after_idle_ns(~std::uint64_t{0});  // never
  std::this_thread::sleep_for(std::chrono::milliseconds(2));
  ASSERT_EQ(publish(), PublishResult::kOk);
  EXPECT_EQ(producer->demoted_slots(), 7u);

  // 100 ms per event: a single publish 150 ms later is idle; a publish 150 ms after a batch of
  // 8 is not (that call's gap is 800 ms).
  producer->set_demote_after_idle_ns(100'000'000);
  ASSERT_EQ(publish(), PublishResult::kOk);
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  ASSERT_EQ(publish(), PublishResult::kOk);
  EXPECT_EQ(producer->demoted_slots(), 8u);
  ASSERT_TRUE(publish_batch(8));
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  ASSERT_EQ(publish(), PublishResult::kOk);
  EXPECT_EQ(producer->demoted_slots(), 8u) << "the gap after a batch scales with its events";

  EXPECT_EQ(drain(consumer).payloads, sent);
}

TEST_F(RingTest, BatchStopsAtFullWithTheSentPrefixCounted) {
  TestRing ring(small_config(1, 4));
  RingConsumer consumer(ring.region(), 0, Start::kEarliest);
  auto producer = make_producer(ring.region(), 1, policy_.get());
  Req first(1, "k", "first");
  ASSERT_EQ(producer->try_publish(first.request), PublishResult::kOk);
  std::vector<std::unique_ptr<Req>> reqs;
  std::vector<PublishRequest> batch;
  for (int i = 0; i < 6; ++i) {
    reqs.push_back(std::make_unique<Req>(1, "k", tag("b", i)));
    batch.push_back(reqs.back()->request);
  }
  std::size_t published = 0;
  EXPECT_EQ(producer->try_publish_batch(batch, &published), PublishResult::kFull);
  EXPECT_EQ(published, 3u);
  EXPECT_EQ(ring.head(0), 4u);
  Collected got = drain(consumer);
  EXPECT_EQ(got.payloads, (std::vector<std::string>{"first", "b0", "b1", "b2"}));
  // The caller resends the rest.
  ASSERT_EQ(producer->try_publish_batch(std::span(batch).subspan(published), &published),
            PublishResult::kOk);
  EXPECT_EQ(published, 3u);
  EXPECT_EQ(drain(consumer).payloads, (std::vector<std::string>{"b3", "b4", "b5"}));
}

TEST_F(RingTest, BatchAcrossPartitionsStopsAtTheFirstRefusal) {
  TestRing ring(small_config(2, 4));
  RingConsumer consumer(ring.region(), 0, Start::kEarliest);
  auto producer = make_producer(ring.region(), 1, policy_.get());
  const std::string k0 = key_in_partition(ring.region(), 0);
  const std::string k1 = key_in_partition(ring.region(), 1);
  Req pre(1, k1, "pre");
  for (int i = 0; i < 2; ++i) ASSERT_EQ(producer->try_publish(pre.request), PublishResult::kOk);
  // p0, p0, p1 x5 (only 2 fit), p0
  std::vector<std::unique_ptr<Req>> reqs;
  std::vector<PublishRequest> batch;
  const char* keys[] = {"0", "0", "1", "1", "1", "1", "1", "0"};
  for (int i = 0; i < 8; ++i) {
    reqs.push_back(std::make_unique<Req>(1, keys[i][0] == '0' ? k0 : k1, tag("b", i)));
    batch.push_back(reqs.back()->request);
  }
  std::size_t published = 0;
  EXPECT_EQ(producer->try_publish_batch(batch, &published), PublishResult::kFull);
  EXPECT_EQ(published, 4u) << "b0 b1 (p0) and b2 b3 (p1): a prefix";
  EXPECT_EQ(ring.head(0), 2u) << "b7 was after the refusal: not sent";
  EXPECT_EQ(ring.head(1), 4u);
  Collected got = drain(consumer);
  std::vector<std::string> sorted = got.payloads;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted, (std::vector<std::string>{"b0", "b1", "b2", "b3", "pre", "pre"}));
}

TEST_F(RingTest, BatchStopsAtAnInvalidRequest) {
  TestRing ring(small_config(1, 8));
  RingConsumer consumer(ring.region(), 0, Start::kEarliest);
  auto producer = make_producer(ring.region(), 1, policy_.get());
  Req a(1, "k", "a"), b(1, "k", "b"), bad(200, "k", "bad"), c(1, "k", "c");
  std::vector<PublishRequest> batch = {a.request, b.request, bad.request, c.request};
  std::size_t published = 0;
  EXPECT_EQ(producer->try_publish_batch(batch, &published), PublishResult::kUnknownType);
  EXPECT_EQ(published, 2u);
  EXPECT_EQ(drain(consumer).payloads, (std::vector<std::string>{"a", "b"}));
}

// ------------------------------------------------------------------------- refusals

TEST_F(RingTest, TooLargeExactlyBeyondMaxBodyBytes) {
  for (std::uint32_t slot_bytes : {256u, 512u}) {
    TestRing ring(small_config(1, 8, Overflow::kReject, slot_bytes));
    RingConsumer consumer(ring.region(), 0, Start::kEarliest);
    auto producer = make_producer(ring.region(), 1, policy_.get());
    const std::size_t max = max_body_bytes(slot_bytes);
    ASSERT_EQ(max, slot_bytes - 16u - 128u);
    const std::string key = "key";
    Req fits(1, key, std::string(max - key.size(), 'a'));
    Req over(1, key, std::string(max - key.size() + 1, 'b'));
    EXPECT_EQ(producer->try_publish(over.request), PublishResult::kTooLarge) << slot_bytes;
    EXPECT_EQ(ring.head(0), 0u);
    ASSERT_EQ(producer->try_publish(fits.request), PublishResult::kOk) << slot_bytes;
    Claim claim;
    EXPECT_EQ(producer->try_claim(fits.request, max - key.size() + 1, &claim),
              PublishResult::kTooLarge);
    ASSERT_EQ(producer->try_claim(fits.request, max - key.size(), &claim), PublishResult::kOk);
    std::memset(claim.payload.data(), 'c', claim.payload.size());
    EXPECT_TRUE(commit_claim(*producer, claim));
    Collected got = drain(consumer);
    ASSERT_EQ(got.payloads.size(), 2u);
    EXPECT_EQ(got.payloads[0], fits.payload);
    EXPECT_EQ(got.payloads[1], std::string(max - key.size(), 'c'));
  }
}

TEST_F(RingTest, TypePolicyRefusesUnknownTypesAndForeignDomains) {
  TestRing ring(small_config(1, 8));
  RingConsumer consumer(ring.region(), 0, Start::kEarliest);
  TypePolicy policy;
  policy.known.set(0);  // even if set, type 0 is never valid
  policy.allowed.set(0);
  policy.known.set(1);
  policy.allowed.set(1);
  policy.known.set(2);  // resolved, but of a domain this producer does not own
  auto producer = make_producer(ring.region(), 1, &policy);
  Req t0(0, "k", "x"), t1(1, "k", "x"), t2(2, "k", "x"), t3(3, "k", "x");
  EXPECT_EQ(producer->try_publish(t0.request), PublishResult::kUnknownType);
  EXPECT_EQ(producer->try_publish(t3.request), PublishResult::kUnknownType);
  EXPECT_EQ(producer->try_publish(t2.request), PublishResult::kDomainNotOwned);
  Claim claim;
  EXPECT_EQ(producer->try_claim(t3.request, 1, &claim), PublishResult::kUnknownType);
  EXPECT_EQ(producer->try_claim(t2.request, 1, &claim), PublishResult::kDomainNotOwned);
  EXPECT_EQ(ring.head(0), 0u) << "refusals claim nothing";
  EXPECT_EQ(producer->try_publish(t1.request), PublishResult::kOk);
  EXPECT_EQ(drain(consumer).payloads.size(), 1u);
}

TEST(PublishResultTest, EveryResultIsDescribed) {
  for (int r = 0; r <= static_cast<int>(kLastPublishResult); ++r)
    EXPECT_NE(describe(static_cast<PublishResult>(r)), "invalid result") << r;
}

// Leaves non-zero bytes where the next call's locals will live (a header field nobody sets
// would pick them up).
[[gnu::noinline]] void dirty_the_stack() {
  volatile unsigned char junk[4096];
  for (auto& b : junk) b = 0xAB;
}

// Every header byte of a zero-copy claim is defined: its reserved field was left as whatever
// the stack held (the checksum covered it, so no reader noticed).
TEST_F(RingTest, ZeroCopyClaimsWriteEveryHeaderField) {
  TestRing ring(small_config(1, 16));
  RingConsumer consumer(ring.region(), 0, Start::kEarliest);
  auto producer = make_producer(ring.region(), 1, policy_.get());
  Req r(1, "key", "");
  for (int i = 0; i < 4; ++i) {
    Claim claim;
    dirty_the_stack();
    ASSERT_EQ(producer->try_claim(r.request, 3, &claim), PublishResult::kOk);
    std::memcpy(claim.payload.data(), "abc", 3);
    const std::byte* env = RingRegion::envelope_of(*claim.slot);
    EnvelopeHeader h;
    std::memcpy(&h, env, sizeof h);
    EXPECT_EQ(h.reserved, 0u) << i;
    EXPECT_EQ(h.format_version, kEnvelopeFormatVersion);
    EXPECT_EQ(h.payload_bytes, 3u);
    EXPECT_EQ(h.entity_key_bytes, 3u);
    ASSERT_TRUE(commit_claim(*producer, claim));
  }
  EXPECT_EQ(drain(consumer).payloads, (std::vector<std::string>(4, "abc")));
}

}  // namespace
}  // namespace evring::core
