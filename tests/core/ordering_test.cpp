// Ordering helpers (core/ordering.h): StaleFilter and ReorderBuffer, on hand-made envelopes with
// an injected clock, plus two producer threads racing on one entity over a real bus.
#include "evring/core/ordering.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <iostream>
#include <list>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "evring/shm/bus.h"
#include "shm/test_bus.h"

namespace evring::core {
namespace {

// An event of entity `key` at revision `rev` (no revision when has_revision is false). Views
// point into this object: keep it alive and unmoved while a view is in use.
struct Ev {
  Ev(std::string k, std::uint64_t rev, std::string body = "", bool has_revision = true)
      : key(std::move(k)), payload(std::move(body)) {
    header.flags = has_revision ? kHasRevision : 0;
    header.entity_revision = has_revision ? rev : 0;
    header.entity_key_hash = entity_key_hash(key);
    header.entity_key_bytes = static_cast<std::uint16_t>(key.size());
    header.payload_bytes = static_cast<std::uint32_t>(payload.size());
    header.sequence = rev;
  }
  EnvelopeView view() const {
    return EnvelopeView{header, std::as_bytes(std::span(key.data(), key.size())),
                        std::as_bytes(std::span(payload.data(), payload.size()))};
  }
  std::string key, payload;
  EnvelopeHeader header{};
};

struct Out {
  std::string key;
  std::uint64_t rev;
  std::uint64_t gap;
  ReleaseReason reason;
  std::string payload;
  bool operator==(const Out&) const = default;
};
std::ostream& operator<<(std::ostream& os, const Out& o) {
  return os << o.key << "@" << o.rev << " gap " << o.gap << " " << release_reason_name(o.reason);
}

// A ReorderBuffer with a fake clock and a sink that records releases.
struct Harness {
  explicit Harness(ReorderOptions options)
      : rb(options, [this](const Released& r) {
          out.push_back(Out{std::string(r.event.view.key_text()), r.event.view.header.entity_revision,
                            r.gap, r.reason, std::string(r.event.view.payload_text())});
        },
        [this] { return now; }) {}
  void push(const std::string& key, std::uint64_t rev, const std::string& payload = "") {
    Ev e(key, rev, payload);
    const EnvelopeView v = e.view();
    rb.push(Event{v, 0, rev});
  }
  std::vector<std::uint64_t> revs() const {
    std::vector<std::uint64_t> r;
    for (const Out& o : out) r.push_back(o.rev);
    return r;
  }
  std::uint64_t now = 1'000'000'000;
  std::vector<Out> out;
  ReorderBuffer rb;
};

using R = ReleaseReason;
using Revs = std::vector<std::uint64_t>;

// ---- StaleFilter ----

TEST(ordering, StaleFilterDropsRevisionsAtOrBelowTheLastSilently) {
  StaleFilter f;
  std::vector<std::uint64_t> passed;
  auto h = f.wrap([&](const Event& e) { passed.push_back(e.view.header.entity_revision); });
  for (std::uint64_t rev : {1, 2, 2, 1, 5, 3, 6}) {
    Ev ev("order-1", rev);
    const EnvelopeView v = ev.view();
    h(Event{v, 0, 0});
  }
  EXPECT_EQ(passed, (Revs{1, 2, 5, 6}));
  EXPECT_EQ(f.stats().stale, 3u) << "2 (equal: a duplicate), 1 and 3";
  EXPECT_EQ(f.stats().fresh, 4u);
  EXPECT_EQ(f.last_revision(entity_key_hash("order-1")), 6u);
  EXPECT_FALSE(f.last_revision(entity_key_hash("order-2")).has_value());
}

TEST(ordering, StaleFilterReportsStaleEventsThroughTheCallback) {
  std::vector<std::pair<std::uint64_t, std::uint64_t>> reported;  // (revision, last)
  StaleFilter f({}, [&](const EnvelopeView& v, std::uint64_t last) {
    reported.emplace_back(v.header.entity_revision, last);
  });
  for (std::uint64_t rev : {4, 3, 7, 7, 5}) {
    Ev ev("order-1", rev);
    (void)f.check(ev.view());
  }
  EXPECT_EQ(reported, (std::vector<std::pair<std::uint64_t, std::uint64_t>>{{3, 4}, {7, 7}, {5, 7}}));
}

TEST(ordering, StaleFilterEntitiesAreIndependentAndUnrevisionedEventsPass) {
  StaleFilter f;
  Ev a5("a", 5), b1("b", 1), a4("a", 4), b2("b", 2), plain("a", 0, "", false);
  EXPECT_EQ(f.check(a5.view()), StaleFilter::Verdict::kFresh);
  EXPECT_EQ(f.check(b1.view()), StaleFilter::Verdict::kFresh);
  EXPECT_EQ(f.check(a4.view()), StaleFilter::Verdict::kStale);
  EXPECT_EQ(f.check(b2.view()), StaleFilter::Verdict::kFresh);
  EXPECT_EQ(f.check(plain.view()), StaleFilter::Verdict::kUnrevisioned);
  EXPECT_EQ(f.stats().unrevisioned, 1u);
  EXPECT_EQ(f.stats().entities, 2u);
}

TEST(ordering, StaleFilterMemoryIsBoundedAndAnEvictedEntityStartsOver) {
  StaleFilter f({.max_entities = 2});
  Ev a9("a", 9), b1("b", 1), c1("c", 1), a3("a", 3), a2("a", 2);
  (void)f.check(a9.view());
  (void)f.check(b1.view());
  (void)f.check(c1.view());  // evicts a (least recently used)
  EXPECT_EQ(f.stats().entities, 2u);
  EXPECT_EQ(f.stats().evictions, 1u);
  EXPECT_FALSE(f.last_revision(entity_key_hash("a")).has_value());
  EXPECT_EQ(f.check(a3.view()), StaleFilter::Verdict::kFresh)
      << "documented: an evicted entity's next event passes whatever its revision";
  EXPECT_EQ(f.check(a2.view()), StaleFilter::Verdict::kStale);
}

TEST(ordering, StaleFilterFullKeyIdentitySeparatesKeysThatShareAHash) {
  Ev x("x", 5), y("y", 3);
  y.header.entity_key_hash = x.header.entity_key_hash;  // a forced collision
  StaleFilter by_hash({.identity = EntityIdentity::kKeyHash});
  (void)by_hash.check(x.view());
  EXPECT_EQ(by_hash.check(y.view()), StaleFilter::Verdict::kStale) << "same hash, one line";
  StaleFilter by_key({.identity = EntityIdentity::kFullKey});
  (void)by_key.check(x.view());
  EXPECT_EQ(by_key.check(y.view()), StaleFilter::Verdict::kFresh);
  EXPECT_EQ(by_key.last_revision(x.header.entity_key_hash, "y"), 3u);
  EXPECT_EQ(by_key.last_revision(x.header.entity_key_hash, "x"), 5u);
}

// The LRU map against a reference (list + map), with a small capacity and many keys: covers
// eviction order and backward-shift deletion.
TEST(ordering, EntityLruMatchesAReferenceLru) {
  constexpr std::size_t kCap = 37;
  detail::EntityLru lru(kCap, EntityIdentity::kKeyHash);
  std::list<std::uint64_t> order;  // front = most recent
  std::unordered_map<std::uint64_t, std::uint32_t> slot_of;
  std::mt19937_64 rng(7);
  for (int step = 0; step < 50000; ++step) {
    const std::uint64_t h = rng() % 100;  // tiny hashes: the map must spread them itself
    const auto a = lru.acquire(h, {});
    auto it = slot_of.find(h);
    if (it != slot_of.end()) {
      ASSERT_FALSE(a.inserted);
      ASSERT_EQ(a.slot, it->second);
      order.remove(h);
    } else {
      ASSERT_TRUE(a.inserted);
      ASSERT_EQ(a.evicted, slot_of.size() == kCap);
      if (a.evicted) {
        ASSERT_EQ(slot_of[order.back()], a.slot) << "the least recently used is evicted";
        slot_of.erase(order.back());
        order.pop_back();
      }
      slot_of[h] = a.slot;
    }
    order.push_front(h);
    ASSERT_EQ(lru.size(), slot_of.size());
  }
  for (const auto& [h, slot] : slot_of) EXPECT_EQ(lru.find(h, {}), slot);
  EXPECT_EQ(lru.find(1000, {}), detail::EntityLru::kNone);
}

// Two producer threads update one entity, each taking the next revision from a shared counter
// and then publishing: claim order (what the ring keeps) differs from revision order whenever
// they race. After StaleFilter the consumer sees only increasing revisions, ending at the last;
// after a ReorderBuffer (revisions start at 1, a timeout nothing reaches) it sees every revision
// 1..N exactly once, in order.
TEST(ordering, StaleFilterTwoProducersRacingOnOneEntityYieldIncreasingRevisions) {
  BusOptions o = testing::small_options(4, 256);
  testing::TestBus bus(o);
  ASSERT_TRUE(bus.ok());
  auto consumer = bus->consumer("inventory-view").value();
  constexpr std::uint64_t kPerThread = 5000;
  std::atomic<std::uint64_t> next_revision{0};
  std::atomic<int> failures{0};
  auto publisher = [&](std::unique_ptr<Producer> producer, std::uint16_t type, unsigned seed) {
    std::mt19937 rng(seed);
    for (std::uint64_t i = 0; i < kPerThread; ++i) {
      PublishRequest r;
      r.type_id = type;
      r.entity_key = "sku-42";
      r.flags = kHasRevision;
      r.entity_revision = next_revision.fetch_add(1) + 1;
      if (rng() % 4 == 0) std::this_thread::yield();  // widen the race between the two steps
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      PublishResult res;
      while ((res = producer->try_publish(r)) == PublishResult::kFull &&
             std::chrono::steady_clock::now() < deadline)
        std::this_thread::yield();
      if (res != PublishResult::kOk) failures.fetch_add(1);
    }
  };
  auto p1 = bus->producer("inventory").value();
  auto p2 = bus->producer("inventory").value();
  const std::uint16_t type = p1->resolve("inventory.stock.adjusted").value();
  ASSERT_TRUE(p2->resolve("inventory.stock.adjusted").ok());

  StaleFilter filter;
  std::vector<std::uint64_t> raw, passed;
  auto handler = filter.wrap([&](const Event& e) { passed.push_back(e.view.header.entity_revision); });
  std::vector<std::uint64_t> reordered;
  // Caps above anything a descheduled producer can leave outstanding: nothing overflows.
  ReorderBuffer reorder({.max_held_per_entity = 2 * kPerThread,
                         .max_held_total = 2 * kPerThread,
                         .gap_timeout_ns = 60'000'000'000,
                         .revisions_start_at_one = true},
                        [&](const Released& r) {
                          EXPECT_EQ(r.gap, 0u);
                          reordered.push_back(r.event.view.header.entity_revision);
                        });
  auto on_event = [&](const Event& e) {
    raw.push_back(e.view.header.entity_revision);
    handler(e);
    reorder.push(e);
  };
  std::thread t1(publisher, std::move(p1), type, 1u);
  std::thread t2(publisher, std::move(p2), type, 2u);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (raw.size() < 2 * kPerThread && std::chrono::steady_clock::now() < deadline) {
    if (consumer->poll(on_event).delivered == 0)
      (void)consumer->wait(WaitStrategy::kBlock, 1'000'000);
  }
  t1.join();
  t2.join();
  ASSERT_EQ(failures.load(), 0);
  ASSERT_EQ(raw.size(), 2 * kPerThread);

  std::uint64_t inversions = 0, max_so_far = 0;
  for (std::uint64_t r : raw) {
    if (r <= max_so_far) ++inversions;
    max_so_far = std::max(max_so_far, r);
  }
  for (std::size_t i = 1; i < passed.size(); ++i)
    ASSERT_LT(passed[i - 1], passed[i]) << "at " << i;
  EXPECT_EQ(passed.back(), 2 * kPerThread) << "the newest revision always passes";
  EXPECT_EQ(filter.stats().stale, inversions);
  EXPECT_EQ(filter.stats().fresh + filter.stats().stale, 2 * kPerThread);
  EXPECT_EQ(reorder.stats().held, 0u);
  ASSERT_EQ(reordered.size(), 2 * kPerThread);
  for (std::size_t i = 0; i < reordered.size(); ++i) ASSERT_EQ(reordered[i], i + 1);
  std::cout << "[ race     ] " << inversions << " of " << raw.size()
            << " events arrived after a newer revision (dropped as stale)\n";
}

// ---- ReorderBuffer ----

TEST(ordering, ReorderBufferReleasesInOrderWhenTheGapIsFilled) {
  Harness t({});
  t.push("a", 1);  // baseline
  t.push("a", 3);
  t.push("a", 4);
  EXPECT_EQ(t.revs(), (Revs{1}));
  EXPECT_EQ(t.rb.stats().held, 2u);
  t.push("a", 2);
  EXPECT_EQ(t.revs(), (Revs{1, 2, 3, 4}));
  EXPECT_EQ(t.out[1].reason, R::kInOrder);
  EXPECT_EQ(t.out[2].reason, R::kGapFilled);
  EXPECT_EQ(t.out[3].reason, R::kGapFilled);
  for (const Out& o : t.out) EXPECT_EQ(o.gap, 0u);
  EXPECT_EQ(t.rb.stats().held, 0u);
  EXPECT_EQ(t.rb.stats().held_bytes, 0u);
  EXPECT_EQ(t.rb.last_revision(entity_key_hash("a")), 4u);
}

TEST(ordering, ReorderBufferReleasesWithAGapReportWhenTheTimeoutPasses) {
  Harness t({.gap_timeout_ns = 5'000'000});
  t.push("a", 10);  // baseline
  t.push("a", 13);
  t.now += 2'000'000;
  t.push("a", 15);
  t.now += 2'000'000;
  EXPECT_EQ(t.rb.expire(), 0u) << "4 ms < 5 ms";
  t.now += 1'000'000;  // 13 has waited 5 ms
  EXPECT_EQ(t.rb.expire(), 1u);
  ASSERT_EQ(t.out.size(), 2u);
  EXPECT_EQ(t.out[1], (Out{"a", 13, 2, R::kTimeout, ""})) << "11 and 12 skipped";
  t.push("a", 12);  // late: stale now
  EXPECT_EQ(t.rb.stats().stale_dropped, 1u);
  t.now += 2'000'000;  // 15 has waited 5 ms: released by the next push (of any entity)
  t.push("b", 1);
  ASSERT_EQ(t.out.size(), 4u);
  EXPECT_EQ(t.out[2], (Out{"b", 1, 0, R::kInOrder, ""}));
  EXPECT_EQ(t.out[3], (Out{"a", 15, 1, R::kTimeout, ""}));
  EXPECT_EQ(t.rb.stats().gaps, 2u);
  EXPECT_EQ(t.rb.stats().revisions_skipped, 3u);
  EXPECT_EQ(t.rb.stats().timeouts, 2u);
}

TEST(ordering, ReorderBufferTimeoutReleasesEverythingThatHasWaitedLongEnough) {
  Harness t({.gap_timeout_ns = 1000});
  t.push("a", 1);
  t.push("a", 6);
  t.push("a", 3);
  t.push("a", 4);
  t.now += 1000;
  EXPECT_EQ(t.rb.expire(), 3u);
  EXPECT_EQ(t.revs(), (Revs{1, 3, 4, 6}));
  EXPECT_EQ(t.out[1].gap, 1u);
  EXPECT_EQ(t.out[2].gap, 0u);
  EXPECT_EQ(t.out[2].reason, R::kGapFilled);
  EXPECT_EQ(t.out[3].gap, 1u);
}

TEST(ordering, ReorderBufferStartAtOneHoldsUntilTheFirstRevision) {
  Harness t({.revisions_start_at_one = true});
  t.push("a", 2);
  EXPECT_TRUE(t.out.empty());
  t.push("a", 1);
  EXPECT_EQ(t.revs(), (Revs{1, 2}));
  Harness u({});
  u.push("a", 2);
  u.push("a", 1);
  EXPECT_EQ(u.revs(), (Revs{2})) << "default: the first revision seen is the baseline";
  EXPECT_EQ(u.rb.stats().stale_dropped, 1u);
}

TEST(ordering, ReorderBufferDropsStaleAndAlreadyHeldRevisions) {
  Harness t({});
  t.push("a", 5);
  t.push("a", 5);
  t.push("a", 4);
  t.push("a", 7);
  t.push("a", 7);
  EXPECT_EQ(t.revs(), (Revs{5}));
  EXPECT_EQ(t.rb.stats().stale_dropped, 3u);
  EXPECT_EQ(t.rb.stats().held, 1u);
}

TEST(ordering, ReorderBufferPerEntityCapReleasesTheOldestHeld) {
  Harness t({.max_held_per_entity = 3});
  t.push("a", 1);
  t.push("a", 10);
  t.push("a", 8);
  t.push("a", 9);
  EXPECT_EQ(t.rb.stats().held, 3u);
  t.push("a", 5);  // a 4th: the lowest held (5) goes out with its gap, nothing follows it
  EXPECT_EQ(t.rb.stats().held, 3u);
  ASSERT_EQ(t.out.size(), 2u);
  EXPECT_EQ(t.out[1], (Out{"a", 5, 3, R::kOverflow, ""}));
  t.push("a", 6);
  t.push("a", 7);  // fills the gap: releases 7..10
  EXPECT_EQ(t.revs(), (Revs{1, 5, 6, 7, 8, 9, 10}));
  EXPECT_EQ(t.out.back().reason, R::kGapFilled);
  EXPECT_EQ(t.rb.stats().overflows, 1u);
  EXPECT_LE(t.rb.stats().held_peak, 3u);
}

TEST(ordering, ReorderBufferTotalCapReleasesFromTheEntityWaitingLongest) {
  Harness t({.max_held_total = 4});
  for (const char* k : {"a", "b", "c"}) t.push(k, 1);
  t.push("b", 3);
  t.now += 10;
  t.push("a", 3);
  t.push("a", 4);
  t.now += 10;
  t.push("c", 5);
  EXPECT_EQ(t.rb.stats().held, 4u);
  t.now += 10;
  t.push("c", 4);  // 5 held: b has waited longest, its 3 goes
  EXPECT_EQ(t.rb.stats().held, 4u);
  EXPECT_EQ(t.out.back(), (Out{"b", 3, 1, R::kOverflow, ""}));
  t.push("c", 7);  // again: a (now the longest waiting) releases 3, then 4 follows
  EXPECT_EQ(t.rb.stats().held, 3u);
  ASSERT_GE(t.out.size(), 2u);
  EXPECT_EQ(t.out[t.out.size() - 2], (Out{"a", 3, 1, R::kOverflow, ""}));
  EXPECT_EQ(t.out.back(), (Out{"a", 4, 0, R::kGapFilled, ""}));
  EXPECT_EQ(t.rb.stats().held_peak, 4u);
}

TEST(ordering, ReorderBufferAnEvictedEntityReleasesWhatItHolds) {
  Harness t({.max_entities = 2});
  t.push("a", 1);
  t.push("a", 3);
  t.push("a", 4);
  t.push("b", 1);
  t.push("c", 1);  // evicts a, which holds 3 and 4
  EXPECT_EQ(t.rb.stats().evictions, 1u);
  EXPECT_EQ(t.rb.stats().held, 0u);
  EXPECT_EQ(t.out[2], (Out{"a", 3, 1, R::kEvicted, ""}));
  EXPECT_EQ(t.out[3], (Out{"a", 4, 0, R::kEvicted, ""}));
  EXPECT_EQ(t.out[4], (Out{"c", 1, 0, R::kInOrder, ""}));
}

TEST(ordering, ReorderBufferHeldEventsOwnTheirBytes) {
  Harness t({});
  t.push("entity-with-a-long-key", 1, "one");
  {
    Ev e("entity-with-a-long-key", 3, std::string(300, 'x'));
    const EnvelopeView v = e.view();
    t.rb.push(Event{v, 2, 77});
    std::memset(e.key.data(), '?', e.key.size());  // the poll's buffer is reused...
    std::memset(e.payload.data(), '?', e.payload.size());
  }  // ... and gone
  EXPECT_EQ(t.rb.stats().held_bytes, 22u + 300u);
  t.push("entity-with-a-long-key", 2, "two");
  ASSERT_EQ(t.out.size(), 3u);
  EXPECT_EQ(t.out[2], (Out{"entity-with-a-long-key", 3, 0, R::kGapFilled, std::string(300, 'x')}));
}

TEST(ordering, ReorderBufferReleasedEventKeepsPartitionAndSequence) {
  std::vector<std::pair<std::uint32_t, std::uint64_t>> where;
  ReorderBuffer rb({}, [&](const Released& r) { where.emplace_back(r.event.partition, r.event.sequence); });
  Ev a1("a", 1), a3("a", 3), a2("a", 2);
  rb.push(Event{a1.view(), 1, 100});
  rb.push(Event{a3.view(), 1, 101});
  rb.push(Event{a2.view(), 1, 102});
  EXPECT_EQ(where, (std::vector<std::pair<std::uint32_t, std::uint64_t>>{{1, 100}, {1, 102}, {1, 101}}));
}

TEST(ordering, ReorderBufferUnrevisionedEventsPassThrough) {
  Harness t({});
  Ev plain("a", 0, "p", false);
  t.rb.push(Event{plain.view(), 0, 0});
  ASSERT_EQ(t.out.size(), 1u);
  EXPECT_EQ(t.out[0].reason, R::kPassThrough);
}

TEST(ordering, ReorderBufferFlushReleasesEverythingInRevisionOrder) {
  Harness t({});
  t.push("a", 1);
  t.push("a", 5);
  t.push("a", 3);
  t.push("b", 1);
  t.push("b", 4);
  EXPECT_EQ(t.rb.flush(), 3u);
  EXPECT_EQ(t.rb.stats().held, 0u);
  std::map<std::string, Revs> per;
  for (const Out& o : t.out) per[o.key].push_back(o.rev);
  EXPECT_EQ(per["a"], (Revs{1, 3, 5}));
  EXPECT_EQ(per["b"], (Revs{1, 4}));
}

// Revisions 1..N of several entities, each shuffled within a window smaller than the per-entity
// cap, interleaved: with no timeout in play, every entity comes out exactly 1..N.
TEST(ordering, ReorderBufferShuffledRevisionsComeOutInOrder) {
  Harness t({.max_held_per_entity = 16, .max_held_total = 1024, .revisions_start_at_one = true});
  std::mt19937_64 rng(99);
  constexpr int kEntities = 20, kRevs = 500, kWindow = 8;
  std::vector<std::pair<std::string, std::uint64_t>> stream;
  for (int e = 0; e < kEntities; ++e) {
    std::vector<std::uint64_t> revs(kRevs);
    for (int i = 0; i < kRevs; ++i) revs[i] = static_cast<std::uint64_t>(i) + 1;
    for (int i = 0; i + kWindow <= kRevs; i += kWindow)
      std::shuffle(revs.begin() + i, revs.begin() + i + kWindow, rng);
    for (auto r : revs) stream.emplace_back(testing::tag("e", e), r);
  }
  std::stable_sort(stream.begin(), stream.end(), [](const auto& a, const auto& b) {
    return (a.second - 1) / kWindow < (b.second - 1) / kWindow;  // interleave entities window by window
  });
  for (const auto& [k, r] : stream) t.push(k, r);
  std::map<std::string, Revs> per;
  for (const Out& o : t.out) {
    per[o.key].push_back(o.rev);
    EXPECT_EQ(o.gap, 0u);
  }
  Revs expected(kRevs);
  for (int i = 0; i < kRevs; ++i) expected[i] = static_cast<std::uint64_t>(i) + 1;
  for (int e = 0; e < kEntities; ++e) EXPECT_EQ(per[testing::tag("e", e)], expected);
  EXPECT_EQ(t.rb.stats().held, 0u);
  EXPECT_EQ(t.rb.stats().overflows, 0u);
}

// Random revisions, 40 entities (all remembered), small held caps, time moving: held stays
// within the caps, each entity's releases strictly increase, and the accounting adds up.
TEST(ordering, ReorderBufferMemoryStaysBoundedUnderRandomLoad) {
  ReorderOptions opts{.max_entities = 64, .max_held_per_entity = 4, .max_held_total = 24,
                      .gap_timeout_ns = 50};
  Harness t(opts);
  std::mt19937_64 rng(4242);
  std::map<std::string, std::uint64_t> last_out;
  std::size_t checked = 0;
  for (int step = 0; step < 100000; ++step) {
    t.now += rng() % 3;
    const std::string k = testing::tag("k", static_cast<long>(rng() % 40));
    t.push(k, 1 + rng() % 200, std::string(rng() % 64, 'p'));
    ASSERT_LE(t.rb.stats().held, opts.max_held_total);
    ASSERT_LE(t.rb.stats().held_bytes, opts.max_held_total * (8 + 64));
    for (; checked < t.out.size(); ++checked) {
      const Out& o = t.out[checked];
      auto it = last_out.find(o.key);
      if (it != last_out.end()) {
        ASSERT_LT(it->second, o.rev) << o;
      }
      last_out[o.key] = o.rev;
    }
    if (step % 1000 == 0) (void)t.rb.expire();
  }
  t.rb.flush();
  const ReorderStats& s = t.rb.stats();
  EXPECT_EQ(s.pushed, s.released + s.stale_dropped);
  EXPECT_EQ(s.held, 0u);
  EXPECT_GT(s.overflows + s.timeouts, 0u);
  EXPECT_LE(s.held_peak, opts.max_held_total);
}

}  // namespace
}  // namespace evring::core
