// Exclusive producers (RingProducer::set_exclusive): a partition taken by one producer is
// claimed with plain stores; others are refused with kExclusive until it is released, by
// set_exclusive(false), destruction, or the holder's death; the hand-over never lets two
// producers claim one sequence.
#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
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

using testing::drain;
using testing::key_in_partition;
using testing::make_producer;
using testing::numbered;
using testing::Req;
using testing::RingTest;
using testing::small_config;
using testing::tag;
using testing::TestRing;
using Start = RingConsumer::Start;

constexpr std::uint32_t kDeadPid = 0x7FFF'FFF0;  // the liveness stubs below call it dead
bool alive_unless_fake(std::uint32_t pid, std::uint64_t) { return pid != kDeadPid; }

std::uint32_t owner_of(const TestRing& ring, std::uint32_t p) {
  return ring.region().partition(p).exclusive_owner.load(std::memory_order_relaxed);
}

TEST_F(RingTest, ExclusiveProducerHoldsThePartitionAndDeliversInOrder) {
  TestRing ring(small_config(2, 64));
  RingConsumer consumer(ring.region(), 0, Start::kEarliest);
  auto holder = make_producer(ring.region(), 1, policy_.get());
  auto other = make_producer(ring.region(), 2, policy_.get());
  holder->set_exclusive(true);
  const std::string key = key_in_partition(ring.region(), 0);
  for (int i = 0; i < 40; ++i) {
    Req r(1, key, tag("e", i));
    ASSERT_EQ(holder->try_publish(r.request), PublishResult::kOk) << i;
  }
  EXPECT_EQ(owner_of(ring, 0), holder->lane() + 1);
  EXPECT_EQ(owner_of(ring, 1), 0u) << "only partitions it published to are taken";
  EXPECT_EQ(ring.head(0), 40u);

  Req refused(1, key, "from the other producer");
  EXPECT_EQ(other->try_publish(refused.request), PublishResult::kExclusive);
  EXPECT_EQ(ring.region().lane(other->lane()).count.load(), 0u) << "refusal leaves no intent";
  Req elsewhere(1, key_in_partition(ring.region(), 1), "partition 1 is shared");
  EXPECT_EQ(other->try_publish(elsewhere.request), PublishResult::kOk);

  auto got = drain(consumer);
  std::vector<std::string> p0;
  for (std::size_t i = 0; i < got.payloads.size(); ++i)
    if (got.partitions[i] == 0) p0.push_back(got.payloads[i]);
  EXPECT_EQ(p0, numbered("e", 0, 40));
  EXPECT_EQ(got.payloads.size(), 41u);
}

TEST_F(RingTest, ASecondExclusiveProducerIsRefusedWhileTheHolderLives) {
  TestRing ring(small_config(1, 16));
  auto a = make_producer(ring.region(), 1, policy_.get());
  auto b = make_producer(ring.region(), 2, policy_.get());
  a->set_exclusive(true);
  b->set_exclusive(true);
  Req r(1, "k", "x");
  ASSERT_EQ(a->try_publish(r.request), PublishResult::kOk);
  EXPECT_EQ(b->try_publish(r.request), PublishResult::kExclusive);
  EXPECT_EQ(owner_of(ring, 0), a->lane() + 1);
}

TEST_F(RingTest, ReleasingOrDestroyingTheHolderLetsOthersPublish) {
  TestRing ring(small_config(1, 16));
  RingConsumer consumer(ring.region(), 0, Start::kEarliest);
  auto a = make_producer(ring.region(), 1, policy_.get());
  auto b = make_producer(ring.region(), 2, policy_.get());
  Req ra(1, "k", "a"), rb(1, "k", "b");
  a->set_exclusive(true);
  ASSERT_EQ(a->try_publish(ra.request), PublishResult::kOk);
  ASSERT_EQ(b->try_publish(rb.request), PublishResult::kExclusive);
  a->set_exclusive(false);
  EXPECT_EQ(owner_of(ring, 0), 0u);
  EXPECT_EQ(b->try_publish(rb.request), PublishResult::kOk);
  EXPECT_EQ(a->try_publish(ra.request), PublishResult::kOk) << "shared again";

  b->set_exclusive(true);
  ASSERT_EQ(b->try_publish(rb.request), PublishResult::kOk);
  EXPECT_EQ(a->try_publish(ra.request), PublishResult::kExclusive);
  b.reset();  // destruction releases
  EXPECT_EQ(owner_of(ring, 0), 0u);
  EXPECT_EQ(a->try_publish(ra.request), PublishResult::kOk);
  auto got = drain(consumer);
  EXPECT_EQ(got.payloads, (std::vector<std::string>{"a", "b", "a", "b", "a"}));
}

// Publishing never blocks: a take that would wait on another producer's claim that stays open
// (here a zero-copy claim; a stopped process looks the same) gives the partition back after
// kExclusiveTakeWaitNs and says kBusy, having written nothing; once the claim is done it works.
TEST_F(RingTest, ATakeThatWouldWaitOnAnOpenClaimGivesUpWithBusy) {
  TestRing ring(small_config(1, 16));
  RingConsumer consumer(ring.region(), 0, Start::kEarliest);
  auto sharer = make_producer(ring.region(), 1, policy_.get());
  auto taker = make_producer(ring.region(), 2, policy_.get());
  Req open(1, "k", "");
  Claim claim;
  ASSERT_EQ(sharer->try_claim(open.request, 4, &claim), PublishResult::kOk);
  taker->set_exclusive(true);
  Req r(1, "k", "taken");
  EXPECT_EQ(taker->try_publish(r.request), PublishResult::kBusy);
  EXPECT_EQ(owner_of(ring, 0), 0u) << "the mark is given back";
  EXPECT_EQ(ring.head(0), 1u) << "the taker claimed nothing";
  EXPECT_EQ(ring.region().lane(taker->lane()).count.load(), 0u) << "no intent left";

  std::memcpy(claim.payload.data(), "held", 4);
  ASSERT_EQ(sharer->commit(claim), PublishResult::kOk);
  EXPECT_EQ(taker->try_publish(r.request), PublishResult::kOk) << "no open claim: taken now";
  EXPECT_EQ(owner_of(ring, 0), taker->lane() + 1);
  EXPECT_EQ(drain(consumer).payloads, (std::vector<std::string>{"held", "taken"}));
}

TEST_F(RingTest, ADeadHoldersPartitionIsFreedByTheNextProducer) {
  TestRing ring(small_config(1, 16));
  RingConsumer consumer(ring.region(), 0, Start::kEarliest);
  // The holder's lane belongs to a process the liveness stub calls dead.
  auto lane = ring.region().acquire_lane(kDeadPid, 1, 7, &alive_unless_fake);
  ASSERT_TRUE(lane.ok());
  RingProducer dead(ring.region(), 7, lane.value(), policy_.get());
  dead.set_exclusive(true);
  Req r(1, "k", "before death");
  ASSERT_EQ(dead.try_publish(r.request), PublishResult::kOk);

  auto next = make_producer(ring.region(), 2, policy_.get());
  Req n(1, "k", "after");
  // Without a liveness check the holder counts as alive.
  EXPECT_EQ(next->try_publish(n.request), PublishResult::kExclusive);
  next->set_liveness(&alive_unless_fake);
  EXPECT_EQ(next->try_publish(n.request), PublishResult::kOk);
  EXPECT_EQ(owner_of(ring, 0), 0u);
  EXPECT_EQ(drain(consumer).payloads, (std::vector<std::string>{"before death", "after"}));
}

TEST_F(RingTest, TakingOverADeadLaneClearsItsExclusiveMarks) {
  TestRing ring(small_config(2, 16));
  auto lane = ring.region().acquire_lane(kDeadPid, 1, 7, &alive_unless_fake);
  ASSERT_TRUE(lane.ok());
  {
    RingProducer dead(ring.region(), 7, lane.value(), policy_.get());
    dead.set_exclusive(true);
    for (std::uint32_t p = 0; p < 2; ++p) {
      Req r(1, key_in_partition(ring.region(), p), "x");
      ASSERT_EQ(dead.try_publish(r.request), PublishResult::kOk);
    }
    // It "dies" without releasing: put the marks back as a crash would leave them.
    dead.set_exclusive(false);
    for (std::uint32_t p = 0; p < 2; ++p)
      ring.region().partition(p).exclusive_owner.store(lane.value() + 1);
  }
  // Every lane is in use except by dead owners: the new producer gets the dead one's lane.
  RingConfig c = small_config(2, 16);
  ASSERT_EQ(c.producer_lanes, 64u);
  for (std::uint32_t i = 0; i < c.producer_lanes - 1; ++i)
    ASSERT_TRUE(ring.region().acquire_lane(static_cast<std::uint32_t>(::getpid()), 1, 3,
                                           &alive_unless_fake).ok());
  auto taken = ring.region().acquire_lane(static_cast<std::uint32_t>(::getpid()), 1, 4,
                                          &alive_unless_fake);
  ASSERT_TRUE(taken.ok());
  EXPECT_EQ(taken.value(), lane.value());
  EXPECT_EQ(owner_of(ring, 0), 0u);
  EXPECT_EQ(owner_of(ring, 1), 0u);
}

TEST_F(RingTest, ExclusiveBatchesAndClaimsInOverwriteMode) {
  TestRing ring(small_config(1, 8, Overflow::kOverwrite));
  RingConsumer consumer(ring.region(), 0, Start::kEarliest);
  auto p = make_producer(ring.region(), 1, policy_.get());
  p->set_exclusive(true);
  std::vector<std::unique_ptr<Req>> reqs;
  std::vector<PublishRequest> batch;
  for (int i = 0; i < 5; ++i) {
    reqs.push_back(std::make_unique<Req>(1, "k", tag("b", i)));
    batch.push_back(reqs.back()->request);
  }
  std::size_t published = 0;
  ASSERT_EQ(p->try_publish_batch(batch, &published), PublishResult::kOk);
  EXPECT_EQ(published, 5u);
  Claim claim;
  Req z(1, "k", "");
  ASSERT_EQ(p->try_claim(z.request, 2, &claim), PublishResult::kOk);
  std::memcpy(claim.payload.data(), "zc", 2);
  ASSERT_EQ(p->commit(claim), PublishResult::kOk);
  EXPECT_EQ(ring.head(0), 6u);
  auto got = drain(consumer);
  std::vector<std::string> want = numbered("b", 0, 5);
  want.push_back("zc");
  EXPECT_EQ(got.payloads, want);
}

// Three threads publish into one partition for a while, one of them taking and releasing it
// every few events: every event arrives exactly once, in each producer's order, at consecutive
// sequences, so no sequence was ever claimed twice (a CAS and a plain store racing on the head
// would lose one event and leave its slot unwritten, or deliver two at one sequence).
TEST_F(RingTest, TakingAndReleasingUnderContentionNeverClaimsASequenceTwice) {
  TestRing ring(small_config(1, 64));
  const testing::Contention c = testing::contend(
      ring, policy_.get(), 3, std::chrono::milliseconds(400),
      [](RingProducer& p, int t, std::uint64_t i, const PublishRequest& r) {
        if (t == 0 && i % 4 == 0) p.set_exclusive(i % 8 == 0);  // take, release, take...
        const PublishResult res = p.try_publish(r);
        // kBusy: a take met a sharer's claim that a preemption kept open past the bound.
        EXPECT_TRUE(res == PublishResult::kOk || res == PublishResult::kFull ||
                    res == PublishResult::kExclusive || res == PublishResult::kBusy)
            << describe(res);
        return res;
      },
      [](RingProducer& p, int) { p.set_exclusive(false); });
  testing::expect_each_sequence_once(c);
}

}  // namespace
}  // namespace evring::core
