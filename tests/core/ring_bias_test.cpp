// Biased partitions (RingProducer::set_bias_policy): a producer that claims a partition alone
// for a run of claims takes it as its biased holder and claims with plain stores; any other
// producer revokes the bias and publishes without being refused; no bias is taken within the
// cool-down after a revocation; zero-copy claims never hold one; and however biases come and
// go, no sequence is ever claimed twice.
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
using testing::make_producer;
using testing::numbered;
using testing::Req;
using testing::RingTest;
using testing::small_config;
using testing::tag;
using testing::TestRing;
using Start = RingConsumer::Start;

constexpr std::uint32_t kRun = 8;  // solo claims before a bias, in these tests
constexpr std::uint32_t kDeadPid = 0x7FFF'FFF0;
bool alive_unless_fake(std::uint32_t pid, std::uint64_t) { return pid != kDeadPid; }

std::uint32_t owner_of(const TestRing& ring, std::uint32_t p = 0) {
  return ring.region().partition(p).exclusive_owner.load(std::memory_order_relaxed);
}
std::uint32_t bias_of(const RingProducer& producer) { return kBiasedOwner | (producer.lane() + 1); }
std::uint64_t revocations(const TestRing& ring, std::uint32_t p = 0) {
  return ring.region().partition(p).bias_revocations.load(std::memory_order_relaxed);
}

// Publishes events `prefix`from .. `prefix`to-1 with key "k" (all in partition 0 of a
// one-partition ring).
void publish(RingProducer& producer, std::string_view prefix, int from, int to) {
  for (int i = from; i < to; ++i) {
    Req r(1, "k", tag(prefix, i));
    ASSERT_EQ(producer.try_publish(r.request), PublishResult::kOk) << prefix << i;
  }
}

// A producer (id 1) that has published h0 .. h<kRun> alone into partition 0 (key "k"), and
// so should hold it biased (the caller asserts it).
std::unique_ptr<RingProducer> make_biased_holder(TestRing& ring, const TypePolicy* policy) {
  auto holder = make_producer(ring.region(), 1, policy);
  holder->set_bias_policy(kRun, RingProducer::kBiasCooldownNs);
  publish(*holder, "h", 0, kRun + 1);
  return holder;
}

TEST_F(RingTest, ALoneProducerTakesTheBiasAfterARunOfSoloClaims) {
  TestRing ring(small_config(1, 64));
  RingConsumer consumer(ring.region(), 0, Start::kEarliest);
  auto holder = make_producer(ring.region(), 1, policy_.get());
  holder->set_bias_policy(kRun, RingProducer::kBiasCooldownNs);
  publish(*holder, "e", 0, kRun);
  EXPECT_EQ(owner_of(ring), 0u) << "a run of " << kRun << " claims, none biased yet";
  EXPECT_FALSE(holder->biased(0));
  publish(*holder, "e", kRun, kRun + 1);
  EXPECT_EQ(owner_of(ring), bias_of(*holder)) << "the claim after the run takes the bias";
  EXPECT_TRUE(holder->biased(0));
  EXPECT_EQ(ring.region().lane(holder->lane()).count.load(), 0u) << "no intent left";
  publish(*holder, "e", kRun + 1, 20);
  EXPECT_EQ(ring.head(0), 20u);
  EXPECT_EQ(drain(consumer).payloads, numbered("e", 0, 20));
  EXPECT_EQ(revocations(ring), 0u);
}

TEST_F(RingTest, TheDefaultPolicyTakesNoBiasBeforeItsRun) {
  TestRing ring(small_config(1, 64));
  RingConsumer consumer(ring.region(), 0, Start::kEarliest);
  auto holder = make_producer(ring.region(), 1, policy_.get());
  ASSERT_GT(RingProducer::kBiasAfterSoloClaims, 40u);
  publish(*holder, "e", 0, 40);
  EXPECT_EQ(owner_of(ring), 0u);
  drain(consumer);
  holder->set_bias_policy(0, 0);  // never
  for (int lap = 0; lap < 40; ++lap) {
    publish(*holder, "e", 0, 40);
    drain(consumer);
  }
  EXPECT_EQ(owner_of(ring), 0u) << "a producer told never to take a bias takes none";
}

TEST_F(RingTest, AnotherProducersClaimBetweenRestartsTheRun) {
  TestRing ring(small_config(1, 64));
  RingConsumer consumer(ring.region(), 0, Start::kEarliest);
  auto a = make_producer(ring.region(), 1, policy_.get());
  auto b = make_producer(ring.region(), 2, policy_.get());
  a->set_bias_policy(kRun, RingProducer::kBiasCooldownNs);
  b->set_bias_policy(0, 0);
  publish(*a, "a", 0, kRun - 1);
  publish(*b, "b", 0, 1);
  publish(*a, "a", kRun - 1, 2 * kRun - 1);  // a run of kRun - 1 since b's claim (the first
                                             // claim after b's starts it at 0)
  EXPECT_EQ(owner_of(ring), 0u) << "b's claim came between: the run started again";
  publish(*a, "a", 2 * kRun - 1, 2 * kRun + 1);
  EXPECT_EQ(owner_of(ring), bias_of(*a));
  std::vector<std::string> want = numbered("a", 0, kRun - 1);
  want.push_back("b0");
  for (const std::string& s : numbered("a", kRun - 1, 2 * kRun + 1)) want.push_back(s);
  EXPECT_EQ(drain(consumer).payloads, want);
}

TEST_F(RingTest, AnotherProducerRevokesTheBiasAndBothPublish) {
  TestRing ring(small_config(1, 64));
  RingConsumer consumer(ring.region(), 0, Start::kEarliest);
  auto holder = make_producer(ring.region(), 1, policy_.get());
  auto other = make_producer(ring.region(), 2, policy_.get());
  holder->set_bias_policy(kRun, RingProducer::kBiasCooldownNs);
  publish(*holder, "h", 0, kRun + 2);
  ASSERT_EQ(owner_of(ring), bias_of(*holder));

  publish(*other, "o", 0, 1);  // not refused: it revokes
  EXPECT_EQ(owner_of(ring), 0u);
  EXPECT_EQ(revocations(ring), 1u);
  EXPECT_NE(ring.region().partition(0).bias_revoked_ns.load(), 0u);
  EXPECT_TRUE(holder->biased(0)) << "the holder learns of it at its next claim";
  publish(*holder, "h", kRun + 2, kRun + 3);
  EXPECT_FALSE(holder->biased(0));
  publish(*other, "o", 1, 2);
  EXPECT_EQ(ring.head(0), kRun + 5u);
  std::vector<std::string> want = numbered("h", 0, kRun + 2);
  want.push_back("o0");
  want.push_back(tag("h", kRun + 2));
  want.push_back("o1");
  EXPECT_EQ(drain(consumer).payloads, want);
}

TEST_F(RingTest, NoBiasIsTakenWithinTheCooldownOfARevocation) {
  TestRing ring(small_config(1, 64));
  RingConsumer consumer(ring.region(), 0, Start::kEarliest);
  auto holder = make_biased_holder(ring, policy_.get());
  ASSERT_EQ(owner_of(ring), bias_of(*holder));
  auto other = make_producer(ring.region(), 2, policy_.get());
  publish(*other, "o", 0, 1);
  ASSERT_EQ(owner_of(ring), 0u);
  publish(*holder, "h", 0, 4 * kRun);
  EXPECT_EQ(owner_of(ring), 0u) << "runs within the cool-down (1 s) take no bias";
  holder->set_bias_policy(kRun, 0);  // no cool-down
  publish(*holder, "h", 0, kRun + 1);
  EXPECT_EQ(owner_of(ring), bias_of(*holder));
  drain(consumer);
}

// A take never waits long for a claim of another producer that stays open (a zero-copy one
// here): it gives the mark back and tries again a run later.
TEST_F(RingTest, ABiasTakeGivesUpOnAnotherProducersOpenClaim) {
  TestRing ring(small_config(1, 64));
  RingConsumer consumer(ring.region(), 0, Start::kEarliest);
  auto holder = make_producer(ring.region(), 1, policy_.get());
  auto other = make_producer(ring.region(), 2, policy_.get());
  holder->set_bias_policy(kRun, RingProducer::kBiasCooldownNs);
  Req open(1, "k", "");
  Claim claim;
  ASSERT_EQ(other->try_claim(open.request, 4, &claim), PublishResult::kOk);
  publish(*holder, "h", 0, kRun + 1);
  EXPECT_EQ(owner_of(ring), 0u) << "the take met the open claim and gave the mark back";
  std::memcpy(claim.payload.data(), "open", 4);
  ASSERT_EQ(other->commit(claim), PublishResult::kOk);
  publish(*holder, "h", kRun + 1, 2 * kRun + 2);
  EXPECT_EQ(owner_of(ring), bias_of(*holder)) << "a run later, nothing open: taken";
  std::vector<std::string> want{"open"};
  for (const std::string& s : numbered("h", 0, 2 * kRun + 2)) want.push_back(s);
  EXPECT_EQ(drain(consumer).payloads, want);
}

TEST_F(RingTest, AZeroCopyClaimGivesTheBiasUp) {
  TestRing ring(small_config(1, 64));
  RingConsumer consumer(ring.region(), 0, Start::kEarliest);
  auto holder = make_producer(ring.region(), 1, policy_.get());
  holder->set_bias_policy(kRun, RingProducer::kBiasCooldownNs);
  publish(*holder, "e", 0, kRun + 1);
  ASSERT_EQ(owner_of(ring), bias_of(*holder));
  Req z(1, "k", "");
  Claim claim;
  ASSERT_EQ(holder->try_claim(z.request, 2, &claim), PublishResult::kOk);
  EXPECT_EQ(owner_of(ring), 0u) << "an open claim may last: it holds no bias";
  EXPECT_FALSE(holder->biased(0));
  EXPECT_EQ(ring.region().lane(holder->lane()).count.load() & kSoleClaim, 0u);
  std::memcpy(claim.payload.data(), "zc", 2);
  ASSERT_EQ(holder->commit(claim), PublishResult::kOk);
  EXPECT_EQ(revocations(ring), 0u) << "giving up one's own bias is not a revocation";
  std::vector<std::string> want = numbered("e", 0, kRun + 1);
  want.push_back("zc");
  EXPECT_EQ(drain(consumer).payloads, want);
}

TEST_F(RingTest, SetExclusiveTurnsItsOwnBiasIntoAHold) {
  TestRing ring(small_config(1, 64));
  RingConsumer consumer(ring.region(), 0, Start::kEarliest);
  auto holder = make_biased_holder(ring, policy_.get());
  ASSERT_EQ(owner_of(ring), bias_of(*holder));
  auto other = make_producer(ring.region(), 2, policy_.get());
  holder->set_exclusive(true);
  publish(*holder, "h", kRun + 1, kRun + 2);
  EXPECT_EQ(owner_of(ring), holder->lane() + 1);
  Req r(1, "k", "refused");
  EXPECT_EQ(other->try_publish(r.request), PublishResult::kExclusive);
  holder.reset();  // destruction releases
  EXPECT_EQ(owner_of(ring), 0u);
  EXPECT_EQ(drain(consumer).payloads, numbered("h", 0, kRun + 2));
}

TEST_F(RingTest, AnExclusiveTakeRevokesAnotherProducersBias) {
  TestRing ring(small_config(1, 64));
  RingConsumer consumer(ring.region(), 0, Start::kEarliest);
  auto holder = make_biased_holder(ring, policy_.get());
  ASSERT_EQ(owner_of(ring), bias_of(*holder));
  auto taker = make_producer(ring.region(), 2, policy_.get());
  taker->set_exclusive(true);
  publish(*taker, "t", 0, 1);
  EXPECT_EQ(owner_of(ring), taker->lane() + 1);
  EXPECT_EQ(revocations(ring), 1u);
  Req r(1, "k", "refused");
  EXPECT_EQ(holder->try_publish(r.request), PublishResult::kExclusive);
  EXPECT_FALSE(holder->biased(0));
  std::vector<std::string> want = numbered("h", 0, kRun + 1);
  want.push_back("t0");
  EXPECT_EQ(drain(consumer).payloads, want);
}

TEST_F(RingTest, DestroyingABiasHolderReleasesIt) {
  TestRing ring(small_config(2, 64));
  RingConsumer consumer(ring.region(), 0, Start::kEarliest);
  auto holder = make_producer(ring.region(), 1, policy_.get());
  holder->set_bias_policy(kRun, RingProducer::kBiasCooldownNs);
  for (std::uint32_t p = 0; p < 2; ++p) {
    const std::string key = testing::key_in_partition(ring.region(), p);
    for (std::uint32_t i = 0; i <= kRun; ++i) {
      Req r(1, key, "x");
      ASSERT_EQ(holder->try_publish(r.request), PublishResult::kOk);
    }
    ASSERT_EQ(owner_of(ring, p), bias_of(*holder)) << "partition " << p;
  }
  holder.reset();
  EXPECT_EQ(owner_of(ring, 0), 0u);
  EXPECT_EQ(owner_of(ring, 1), 0u);
  EXPECT_EQ(drain(consumer).payloads.size(), 2 * (kRun + 1u));
}

// A bias whose holder is in the middle of a claim that may store head plainly (its intent
// marked kSoleClaim) is revoked, but nobody claims by CAS until that claim is over: a revoker
// waits for it at most kExclusiveTakeWaitNs and says kBusy, leaving the revoking mark, which
// the next producer to look finishes once the claim is over. A dead holder is not waited for.
TEST_F(RingTest, ARevokerWaitsForTheHoldersMarkedClaimThenSaysBusyUnlessItsProcessIsDead) {
  for (const bool dead : {false, true}) {
    SCOPED_TRACE(dead ? "dead holder" : "live holder");
    TestRing ring(small_config(1, 64));
    RingConsumer consumer(ring.region(), 0, Start::kEarliest);
    // A holder mid-claim, as its lane and the owner word show it (no thread behind it).
    const std::uint32_t pid = dead ? kDeadPid : static_cast<std::uint32_t>(::getpid());
    auto lane = ring.region().acquire_lane(pid, 1, 7, &alive_unless_fake);
    ASSERT_TRUE(lane.ok());
    ProducerLane& l = ring.region().lane(lane.value());
    l.partition.store(0);
    l.first.store(0);
    l.count.store(kSoleClaim | 1);
    const std::uint32_t bias = kBiasedOwner | (lane.value() + 1);
    ring.region().partition(0).exclusive_owner.store(bias);

    auto revoker = make_producer(ring.region(), 2, policy_.get());
    auto next = make_producer(ring.region(), 3, policy_.get());
    revoker->set_liveness(&alive_unless_fake);
    next->set_liveness(&alive_unless_fake);
    Req r(1, "k", "revoker"), n(1, "k", "next");
    if (dead) {
      EXPECT_EQ(revoker->try_publish(r.request), PublishResult::kOk);
      EXPECT_EQ(owner_of(ring), 0u);
      EXPECT_EQ(ring.head(0), 1u);
      EXPECT_EQ(revocations(ring), 1u);
      continue;
    }
    EXPECT_EQ(revoker->try_publish(r.request), PublishResult::kBusy);
    EXPECT_EQ(owner_of(ring), bias | kRevokingOwner) << "the revocation is left half done";
    EXPECT_EQ(ring.head(0), 0u) << "nothing claimed by CAS while the marked claim is open";
    EXPECT_EQ(ring.region().lane(revoker->lane()).count.load(), 0u) << "no intent left";
    EXPECT_EQ(next->try_publish(n.request), PublishResult::kBusy) << "nor by anyone else";
    EXPECT_EQ(revocations(ring), 1u) << "one revocation, however many look";
    // The holder "claims" sequence 0 with its plain store and finishes its claim.
    ring.region().partition(0).head.store(1);
    l.count.store(0);
    EXPECT_EQ(next->try_publish(n.request), PublishResult::kOk) << "it finishes the revocation";
    EXPECT_EQ(owner_of(ring), 0u);
    EXPECT_EQ(revoker->try_publish(r.request), PublishResult::kOk);
    EXPECT_EQ(ring.head(0), 3u);
    EXPECT_EQ(revocations(ring), 1u);
  }
}

// A holder that finds its own bias being revoked (a revoker gave up waiting for it with kBusy)
// knows its plain claims are over: it clears the mark and claims by CAS.
TEST_F(RingTest, AHolderFindingItsBiasBeingRevokedClearsTheMark) {
  TestRing ring(small_config(1, 64));
  RingConsumer consumer(ring.region(), 0, Start::kEarliest);
  auto holder = make_biased_holder(ring, policy_.get());
  ASSERT_EQ(owner_of(ring), bias_of(*holder));
  ring.region().partition(0).exclusive_owner.store(bias_of(*holder) | kRevokingOwner);
  publish(*holder, "h", kRun + 1, kRun + 2);
  EXPECT_EQ(owner_of(ring), 0u);
  EXPECT_FALSE(holder->biased(0));
  EXPECT_EQ(drain(consumer).payloads, numbered("h", 0, kRun + 2));
}

// A dedup bus: a biased holder sets its bloom bits with plain stores (no other producer can be
// marking there), and duplicates are still caught, its own and across a revocation.
TEST_F(RingTest, DuplicatesAreCaughtUnderABiasAndAcrossItsRevocation) {
  RingConfig c = small_config(1, 64);
  c.dedup_window = 32;
  TestRing ring(normalized(c));
  RingConsumer consumer(ring.region(), 0, Start::kEarliest);
  auto holder = make_biased_holder(ring, policy_.get());
  ASSERT_EQ(owner_of(ring), bias_of(*holder));
  auto other = make_producer(ring.region(), 2, policy_.get());
  Req once(1, "k", "once");
  once.request.idempotency_key.bytes[0] = 0x42;
  once.request.idempotency_key.bytes[15] = 0x01;
  EXPECT_EQ(holder->try_publish(once.request), PublishResult::kOk);
  EXPECT_EQ(holder->try_publish(once.request), PublishResult::kDuplicate) << "under the bias";
  EXPECT_EQ(other->try_publish(once.request), PublishResult::kDuplicate) << "after revoking";
  EXPECT_EQ(owner_of(ring), 0u);
  std::vector<std::string> want = numbered("h", 0, kRun + 1);
  want.push_back("once");
  EXPECT_EQ(drain(consumer).payloads, want);
}

// Producers take turns in bursts with no cool-down, so biases are taken and revoked all the
// time: every event arrives exactly once, in each producer's order, at consecutive sequences
// (a plain head store racing a CAS would lose an event or put two at one sequence).
TEST_F(RingTest, BiasesTakenAndRevokedUnderContentionNeverClaimASequenceTwice) {
  TestRing ring(small_config(1, 64));
  std::vector<std::uint64_t> attempts(3, 0);
  const testing::Contention c = testing::contend(
      ring, policy_.get(), 3, std::chrono::milliseconds(400),
      [&](RingProducer& p, int t, std::uint64_t i, const PublishRequest& r) {
        if (attempts[t]++ == 0) p.set_bias_policy(4, 0);  // a run of 4, no cool-down
        PublishResult res;
        if (t == 2 && i % 16 == 15) {
          // Now and then a zero-copy claim, which gives a bias up.
          Claim claim;
          res = p.try_claim(r, r.payload.size(), &claim);
          if (res == PublishResult::kOk) {
            std::memcpy(claim.payload.data(), r.payload.data(), claim.payload.size());
            res = p.commit(claim);
          }
        } else {
          res = p.try_publish(r);
        }
        // kBusy: a holder descheduled mid-publish for a whole kRevokeWaitNs (a loaded runner).
        EXPECT_TRUE(res == PublishResult::kOk || res == PublishResult::kFull ||
                    res == PublishResult::kBusy)
            << describe(res);
        if (res == PublishResult::kOk && (i + 1) % 32 == 0)
          std::this_thread::yield();  // let the others take turns
        return res;
      });
  testing::expect_each_sequence_once(c);
  EXPECT_GT(revocations(ring), 0u) << "the test never revoked a bias: it tested nothing";
}

}  // namespace
}  // namespace evring::core
