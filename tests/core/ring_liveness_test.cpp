// The ring when writers die or stall, and waiting: consumers abandon the slots of dead claimers
// and never those of live ones (core/ring.h resolve_stuck), producer lanes are handed out and
// taken over, and every wait strategy wakes for a publish and moves past a dead claimer's slot.
// (Split from ring_test.cpp, which keeps the allocation-counting operator new.)
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/ring_fixture.h"
#include "evring/core/ring.h"
#include "evring/core/wait.h"

namespace evring::core {
namespace {

using testing::commit_claim;
using testing::drain;
using testing::make_producer;
using testing::RingTest;
using testing::permissive_policy;
using testing::Req;
using testing::small_config;
using testing::TestRing;
using Start = RingConsumer::Start;

// ------------------------------------------------------------------------- dead writers

// OwnerAlive stand-ins: pid 999999999 plays a dead process, every other pid a live one.
constexpr std::uint32_t kDeadPid = 999'999'999u;
bool claimer_dead(std::uint32_t pid, std::uint64_t) { return pid != kDeadPid; }
bool claimer_alive(std::uint32_t, std::uint64_t) { return true; }

TEST_F(RingTest, ConsumerAbandonsASlotWhoseClaimerIsDeadAndDeliversTheRest) {
  TestRing ring(small_config(1, 8));
  RingConsumer consumer(ring.region(), 0, Start::kEarliest);
  consumer.set_liveness(&claimer_dead);
  // The "dead" producer's lane belongs to a process the liveness check reports gone.
  auto lane = ring.region().acquire_lane(kDeadPid, 7, 2, &claimer_alive);
  ASSERT_TRUE(lane.ok());
  RingProducer dead(ring.region(), 2, lane.value(), policy_.get());
  auto live = make_producer(ring.region(), 1, policy_.get());
  Req a(1, "k", "a"), b(1, "k", "b"), c(1, "k", "c");
  ASSERT_EQ(live->try_publish(a.request), PublishResult::kOk);
  Claim claim;
  ASSERT_EQ(dead.try_claim(b.request, 1, &claim), PublishResult::kOk);  // never committed
  ASSERT_EQ(live->try_publish(c.request), PublishResult::kOk);
  std::vector<std::string> got;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (got.size() < 2 && std::chrono::steady_clock::now() < deadline) {
    (void)consumer.poll([&](const Event& e) { got.emplace_back(e.view.payload_text()); });
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(got, (std::vector<std::string>{"a", "c"}));
  EXPECT_EQ(ring.region().cursor(0, 0).abandoned.load(), 1u);
  EXPECT_EQ(ring.region().partition(0).abandoned.load(), 1u);
  EXPECT_EQ(word_state(ring.region().slot(0, 1).word.load()), SlotState::kAbandoned);
}

// A consumer waiting (spin or yield, not only block) behind the slot of a dead claimer must not
// sit out its whole timeout: wait() looks at stuck slots while it spins.
TEST_F(RingTest, SpinningAndYieldingWaitsMovePastADeadClaimersSlot) {
  for (WaitStrategy strategy : {WaitStrategy::kSpin, WaitStrategy::kYield}) {
    TestRing ring(small_config(1, 8));
    RingConsumer consumer(ring.region(), 0, Start::kEarliest);
    consumer.set_liveness(&claimer_dead);
    auto lane = ring.region().acquire_lane(kDeadPid, 7, 2, &claimer_alive);
    ASSERT_TRUE(lane.ok());
    RingProducer dead(ring.region(), 2, lane.value(), policy_.get());
    auto live = make_producer(ring.region(), 1, policy_.get());
    Req b(1, "k", "b"), c(1, "k", "c");
    Claim claim;
    ASSERT_EQ(dead.try_claim(b.request, 1, &claim), PublishResult::kOk);  // never committed
    ASSERT_EQ(live->try_publish(c.request), PublishResult::kOk);
    std::vector<std::string> got;
    const auto start = std::chrono::steady_clock::now();
    while (got.empty() && std::chrono::steady_clock::now() - start < std::chrono::seconds(30)) {
      (void)consumer.poll([&](const Event& e) { got.emplace_back(e.view.payload_text()); });
      if (got.empty()) (void)consumer.wait(strategy, 20'000'000'000ull);  // 20 s
    }
    const auto elapsed = std::chrono::steady_clock::now() - start;
    EXPECT_EQ(got, std::vector<std::string>{"c"}) << static_cast<int>(strategy);
    // Liveness bound only (the detection itself is ~1-2 ms): far below the 20 s timeout.
    EXPECT_LT(elapsed, std::chrono::seconds(10)) << static_cast<int>(strategy);
    EXPECT_EQ(ring.region().cursor(0, 0).abandoned.load(), 1u);
  }
}

TEST_F(RingTest, ConsumerNeverAbandonsASlotOfALiveClaimer) {
  TestRing ring(small_config(1, 8));
  RingConsumer consumer(ring.region(), 0, Start::kEarliest);
  consumer.set_liveness(&claimer_alive);
  auto producer = make_producer(ring.region(), 1, policy_.get());
  Req b(1, "k", ""), c(1, "k", "c");
  Claim claim;
  ASSERT_EQ(producer->try_claim(b.request, 1, &claim), PublishResult::kOk);
  ASSERT_EQ(producer->try_publish(c.request), PublishResult::kOk);
  // Many liveness checks while the claimer is slow, not dead: a spinning consumer looks every
  // 64 empty reads, at most once per kStuckCheckNs, so 60 ms of polling makes dozens.
  std::size_t delivered = 0, polls = 0;
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(60);
  while (std::chrono::steady_clock::now() < end) {
    delivered += consumer.poll([](const Event&) {}).delivered;
    ++polls;
  }
  ASSERT_GT(polls, 64u * 20) << "too few polls for 20 liveness checks";
  EXPECT_EQ(delivered, 0u) << "nothing overtakes the slow claim";
  EXPECT_EQ(ring.region().cursor(0, 0).abandoned.load(), 0u);
  claim.payload[0] = std::byte{'b'};
  EXPECT_TRUE(commit_claim(*producer, claim));
  EXPECT_EQ(drain(consumer).payloads, (std::vector<std::string>{"b", "c"}));
}

// The liveness look reads the partition head, the line every claim writes: a consumer spinning
// between events must not take it from the producers (RingConsumer::kStuckReadMask). Waits
// shorter than kStuckCheckNs never look; a longer idle wait looks at most once per
// kStuckCheckNs (and does look: that is how a dead claimer's slot is found).
TEST_F(RingTest, ASpinningConsumerLooksAtTheHeadOnlyAfterAMillisecondOfWaiting) {
  TestRing ring(small_config(1, 64));
  RingConsumer consumer(ring.region(), 0, Start::kEarliest);
  consumer.set_liveness(&claimer_alive);
  auto producer = make_producer(ring.region(), 1, policy_.get());
  constexpr int kEvents = 200;
  std::uint64_t empty_polls = 0;
  for (int i = 0; i < kEvents; ++i) {
    Req r(1, "k", "e");
    ASSERT_EQ(producer->try_publish(r.request), PublishResult::kOk);
    ASSERT_EQ(consumer.poll([](const Event&) {}).delivered, 1u);
    // Spin on the empty ring for 200 us (well under kStuckCheckNs), as between two events.
    const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(200);
    while (std::chrono::steady_clock::now() < until) {
      ASSERT_EQ(consumer.poll([](const Event&) {}).delivered, 0u);
      ++empty_polls;
    }
  }
  ASSERT_GT(empty_polls, 64u * kEvents) << "too few empty reads to call check_stuck per event";
  // Reading the head every 64th empty read, as before, made this several per event. A look can
  // still happen when the host stalls this thread for a millisecond: allow a few.
  EXPECT_LE(consumer.liveness_looks(), std::uint64_t{kEvents / 20});

  // An idle ring: at most one look per kStuckCheckNs of waiting, and some.
  const std::uint64_t before = consumer.liveness_looks();
  const auto start = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - start < std::chrono::milliseconds(30))
    ASSERT_EQ(consumer.poll([](const Event&) {}).delivered, 0u);
  const auto waited_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::steady_clock::now() - start).count();
  const std::uint64_t looks = consumer.liveness_looks() - before;
  EXPECT_GE(looks, 1u);
  EXPECT_LE(looks, static_cast<std::uint64_t>(waited_ms) * 1'000'000 / kStuckCheckNs + 1);
}

TEST(ProducerLaneTest, LanesAreHandedOutOnceAndReturned) {
  RingConfig c = small_config(1, 8);
  c.producer_lanes = 2;
  TestRing ring(c);
  auto l0 = ring.region().acquire_lane(100, 1, 1, &claimer_alive);
  auto l1 = ring.region().acquire_lane(101, 1, 2, &claimer_alive);
  ASSERT_TRUE(l0.ok() && l1.ok());
  EXPECT_NE(l0.value(), l1.value());
  auto none = ring.region().acquire_lane(102, 1, 3, &claimer_alive);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), Code::kResourceExhausted);
  EXPECT_NE(none.status().message().find("lanes"), std::string::npos);
  ring.region().release_lane(l1.value());
  auto again = ring.region().acquire_lane(102, 1, 3, &claimer_alive);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again.value(), l1.value());
  EXPECT_EQ(ring.region().lane(again.value()).owner_pid, 102u);
  EXPECT_EQ(ring.region().lane(again.value()).producer_id, 3);
}

TEST_F(RingTest, LaneOfADeadOwnerIsReusedOnlyOnceItsClaimsAreResolved) {
  RingConfig c = small_config(1, 8);
  c.producer_lanes = 1;
  TestRing ring(c);
  auto lane = ring.region().acquire_lane(kDeadPid, 7, 2, &claimer_alive);
  ASSERT_TRUE(lane.ok());
  Claim claim;
  {
    RingProducer dead(ring.region(), 2, lane.value(), policy_.get());
    Req r(1, "k", "");
    ASSERT_EQ(dead.try_claim(r.request, 1, &claim), PublishResult::kOk);
  }  // the owner "dies" with the claim open
  EXPECT_FALSE(ring.region().acquire_lane(200, 1, 3, &claimer_dead).ok())
      << "an unresolved claim keeps the dead owner's lane";
  RingConsumer consumer(ring.region(), 0, Start::kEarliest);
  consumer.set_liveness(&claimer_dead);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (ring.region().cursor(0, 0).abandoned.load() == 0 &&
         std::chrono::steady_clock::now() < deadline) {
    (void)consumer.poll([](const Event&) {});
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_EQ(ring.region().cursor(0, 0).abandoned.load(), 1u);
  auto taken = ring.region().acquire_lane(200, 1, 3, &claimer_dead);
  ASSERT_TRUE(taken.ok()) << "dead owner, claims resolved: the lane is taken over";
  EXPECT_EQ(ring.region().lane(taken.value()).owner_pid, 200u);
}

// ------------------------------------------------------------------------- waiting

TEST_F(RingTest, BlockingWaitWakesWhenAnotherThreadPublishes) {
  for (WaitStrategy strategy : {WaitStrategy::kBlock, WaitStrategy::kYield}) {
    TestRing ring(small_config(2, 8));
    RingConsumer consumer(ring.region(), 0, Start::kEarliest);
    auto producer = make_producer(ring.region(), 1, policy_.get());
    EXPECT_FALSE(consumer.any_ready());
    std::thread publisher([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      Req r(1, "k", "late");
      EXPECT_EQ(producer->try_publish(r.request), PublishResult::kOk);
    });
    // Liveness bound only: generous, never a speed claim.
    const bool woke = consumer.wait(strategy, 20'000'000'000ull);
    publisher.join();
    EXPECT_TRUE(woke);
    EXPECT_EQ(drain(consumer).payloads, std::vector<std::string>{"late"});
  }
}

// The sleeper handshake (sleepers count + asymmetric fence, see notify_consumers): a producer
// that publishes while the consumer is deciding to sleep must never leave it asleep. Thousands of
// hand-offs with the publish landing at random points of the consumer's spin-then-sleep; a lost
// wakeup would show as a wait that runs into its (2 s) timeout.
TEST_F(RingTest, BlockingWaitLosesNoWakeupAcrossThousandsOfHandOffs) {
  TestRing ring(small_config(1, 64));
  RingConsumer consumer(ring.region(), 0, Start::kEarliest);
  auto producer = make_producer(ring.region(), 1, policy_.get());
  constexpr int kHandOffs = 3000;
  std::atomic<int> consumed{0};
  std::thread publisher([&] {
    std::mt19937 rng(7);
    for (int i = 0; i < kHandOffs; ++i) {
      while (consumed.load() < i) std::this_thread::yield();  // one event in flight at a time
      const int delay_us = static_cast<int>(rng() % 60);
      if (delay_us > 5) std::this_thread::sleep_for(std::chrono::microseconds(delay_us));
      Req r(1, "k", "e");
      ASSERT_EQ(producer->try_publish(r.request), PublishResult::kOk);
    }
  });
  int timeouts = 0;
  for (int i = 0; i < kHandOffs; ++i) {
    std::size_t got = 0;
    while (got == 0) {
      got = consumer.poll([](const Event&) {}).delivered;
      if (got == 0 && !consumer.wait(WaitStrategy::kBlock, 2'000'000'000ull)) {
        ++timeouts;
        break;
      }
    }
    if (got == 0) got = consumer.poll([](const Event&) {}).delivered;
    consumed.store(i + 1);
  }
  publisher.join();
  EXPECT_EQ(timeouts, 0) << "a blocked consumer slept through a publish";
  EXPECT_EQ(ring.region().cursor(0, 0).delivered.load(), static_cast<std::uint64_t>(kHandOffs));
}

TEST_F(RingTest, WaitReturnsAtOnceWhenAnEventIsReady) {
  TestRing ring(small_config(1, 8));
  RingConsumer consumer(ring.region(), 0, Start::kEarliest);
  auto producer = make_producer(ring.region(), 1, policy_.get());
  Req r(1, "k", "x");
  ASSERT_EQ(producer->try_publish(r.request), PublishResult::kOk);
  EXPECT_TRUE(consumer.wait(WaitStrategy::kBlock, 20'000'000'000ull));
  EXPECT_TRUE(consumer.wait(WaitStrategy::kSpin, 0));
}

TEST_F(RingTest, WaitTimesOutWithoutAProducer) {
  for (WaitStrategy strategy : {WaitStrategy::kBlock, WaitStrategy::kYield, WaitStrategy::kSpin}) {
    TestRing ring(small_config(1, 8));
    RingConsumer consumer(ring.region(), 0, Start::kEarliest);
    const auto start = std::chrono::steady_clock::now();
    EXPECT_FALSE(consumer.wait(strategy, 50'000'000ull));
    const auto elapsed = std::chrono::steady_clock::now() - start;
    EXPECT_GE(elapsed, std::chrono::milliseconds(50)) << "false means the timeout passed";
    EXPECT_LT(elapsed, std::chrono::seconds(20)) << "liveness: it must return at all";
  }
}

}  // namespace
}  // namespace evring::core
