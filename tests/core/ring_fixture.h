#pragma once
// Test scaffolding for the core ring: a zeroed, 64-aligned heap region formatted as a ring (no
// shared memory), a permissive TypePolicy, request builders and payload helpers.
#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <vector>

#include "evring/core/ring.h"

namespace evring::core::testing {

inline std::span<const std::byte> as_payload(std::string_view s) {
  return std::as_bytes(std::span(s.data(), s.size()));
}

// A region owned by the test: std::aligned_alloc'ed, zero-filled, formatted.
class TestRing {
 public:
  explicit TestRing(const RingConfig& config) : config_(config) {
    const Status valid = validate_config(config);
    if (!valid.is_ok()) std::abort();
    bytes_ = ring_region_bytes(config);
    mem_ = static_cast<std::byte*>(std::aligned_alloc(kCacheLine, bytes_));
    std::memset(mem_, 0, bytes_);
    region_ = RingRegion::format(std::span(mem_, bytes_), config);
  }
  ~TestRing() { std::free(mem_); }
  TestRing(const TestRing&) = delete;
  TestRing& operator=(const TestRing&) = delete;

  const RingRegion& region() const { return region_; }
  std::span<std::byte> memory() const { return {mem_, bytes_}; }
  std::uint64_t head(std::uint32_t p) const {
    return region_.partition(p).head.load(std::memory_order_relaxed);
  }
  std::uint64_t rejected(std::uint32_t p) const {
    return region_.partition(p).rejected.load(std::memory_order_relaxed);
  }

 private:
  RingConfig config_;
  std::size_t bytes_ = 0;
  std::byte* mem_ = nullptr;
  RingRegion region_;
};

inline RingConfig small_config(std::uint32_t partitions, std::uint32_t slots,
                               Overflow overflow = Overflow::kReject,
                               std::uint32_t slot_bytes = 512) {
  RingConfig c;
  c.partitions = partitions;
  c.slots_per_partition = slots;
  c.slot_bytes = slot_bytes;
  c.max_consumers = 4;
  c.overflow = overflow;
  return c;
}

// Type ids 1..15 known and allowed.
inline std::unique_ptr<TypePolicy> permissive_policy() {
  auto p = std::make_unique<TypePolicy>();
  for (std::uint16_t t = 1; t < 16; ++t) {
    p->known.set(t);
    p->allowed.set(t);
  }
  return p;
}

inline bool always_alive(std::uint32_t, std::uint64_t) { return true; }

// Builds a RingProducer on a freshly acquired producer lane owned by this process.
inline std::unique_ptr<RingProducer> make_producer(const RingRegion& region,
                                                   std::uint16_t producer_id,
                                                   const TypePolicy* policy) {
  auto lane = region.acquire_lane(static_cast<std::uint32_t>(::getpid()), 1, producer_id,
                                  &always_alive);
  if (!lane.ok()) std::abort();
  return std::make_unique<RingProducer>(region, producer_id, lane.value(), policy);
}

// "<prefix><i>" (written this way because GCC 12 warns, falsely, on "literal" + to_string()).
inline std::string tag(std::string_view prefix, long i) {
  std::string s(prefix);
  s += std::to_string(i);
  return s;
}

// Commits a claim; true when the event was published (not dropped as a duplicate). Absorbs
// commit() returning void (no dedup) or a PublishResult (dedup buses).
template <typename Producer>
bool commit_claim(Producer& producer, Claim& claim) {
  if constexpr (std::is_void_v<decltype(producer.commit(claim))>) {
    producer.commit(claim);
    return true;
  } else {
    return producer.commit(claim) == PublishResult::kOk;
  }
}

// A request whose key and payload strings live in the request holder.
struct Req {
  std::string key;
  std::string payload;
  PublishRequest request;
  Req(std::uint16_t type_id, std::string k, std::string p) : key(std::move(k)), payload(std::move(p)) {
    request.type_id = type_id;
    request.entity_key = key;
    request.payload = as_payload(payload);
  }
  Req(const Req&) = delete;
  Req& operator=(const Req&) = delete;
};

// A key whose partition is `p` (searching "<prefix>-0", "<prefix>-1", ...).
inline std::string key_in_partition(const RingRegion& region, std::uint32_t p,
                                    std::string_view prefix = "k", int skip = 0) {
  for (int i = 0;; ++i) {
    std::string key = std::string(prefix) + "-" + std::to_string(i);
    if (region.partition_of(entity_key_hash(key)) == p && skip-- == 0) return key;
  }
}

// Polls until nothing more is delivered; collects payloads (as text) in order.
struct Collected {
  std::vector<std::string> payloads;
  std::vector<std::uint64_t> sequences;
  std::vector<std::uint32_t> partitions;
  std::uint64_t gaps = 0, skipped = 0;
};
inline Collected drain(RingConsumer& consumer, std::size_t max_events_per_poll = 256) {
  Collected out;
  for (int i = 0; i < 100000; ++i) {
    PollResult r = consumer.poll(
        [&](const Event& e) {
          out.payloads.emplace_back(e.view.payload_text());
          out.sequences.push_back(e.sequence);
          out.partitions.push_back(e.partition);
        },
        max_events_per_poll);
    out.gaps += r.gaps;
    out.skipped += r.skipped;
    if (r.delivered == 0 && r.gaps == 0 && r.skipped == 0) break;
  }
  return out;
}

// "<prefix><from>" .. "<prefix><to - 1>": the payloads a test expects back, in order.
inline std::vector<std::string> numbered(std::string_view prefix, int from, int to) {
  std::vector<std::string> v;
  for (int i = from; i < to; ++i) v.push_back(std::string(prefix) + std::to_string(i));
  return v;
}

// What contend() saw: every event must arrive exactly once, in its producer's order, at
// consecutive sequences (a plain head store racing a CAS would lose an event and leave its slot
// unwritten, or deliver two at one sequence).
struct Contention {
  std::uint64_t published = 0, delivered = 0, skipped = 0, gaps = 0, head = 0;
  bool ordered = true;  // every event in its producer's order, at the next sequence
};

// Runs `producers` threads publishing into partition 0 of `ring` (key "k") for `run`, each with
// its own producer (ids 1..producers), while this thread consumes. Thread t's i-th event has
// payload "t:i"; attempt(producer, t, i, request) publishes it and says how: kOk moves on to
// i + 1, anything else is retried (attempt checks that the refusal is one it allows). finish
// runs on each producer before its thread ends.
inline Contention contend(TestRing& ring, const TypePolicy* policy, int producers,
                          std::chrono::milliseconds run,
                          const std::function<PublishResult(RingProducer&, int, std::uint64_t,
                                                            const PublishRequest&)>& attempt,
                          const std::function<void(RingProducer&, int)>& finish = nullptr) {
  RingConsumer consumer(ring.region(), 0, RingConsumer::Start::kEarliest);
  std::atomic<int> ready{0};
  std::atomic<bool> stop{false};
  std::vector<std::uint64_t> published(static_cast<std::size_t>(producers), 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < producers; ++t) {
    threads.emplace_back([&, t] {
      auto p = make_producer(ring.region(), static_cast<std::uint16_t>(t + 1), policy);
      ready.fetch_add(1);
      while (ready.load() < producers + 1) {
      }
      std::uint64_t i = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        Req r(1, "k", std::to_string(t) + ":" + std::to_string(i));
        if (attempt(*p, t, i, r.request) == PublishResult::kOk)
          ++i;
        else
          std::this_thread::yield();
      }
      if (finish) finish(*p, t);
      published[static_cast<std::size_t>(t)] = i;
    });
  }
  Contention c;
  std::map<int, std::uint64_t> next;
  auto take = [&](const Event& e) {
    const std::string text(e.view.payload_text());
    const int t = std::stoi(text.substr(0, text.find(':')));
    const std::uint64_t i = std::stoull(text.substr(text.find(':') + 1));
    if (next[t] != i || e.sequence != c.delivered) c.ordered = false;
    next[t] = i + 1;
    ++c.delivered;
  };
  auto poll_once = [&] {
    PollResult r = consumer.poll(take);
    c.gaps += r.gaps;
    c.skipped += r.skipped;
    return r.delivered;
  };
  while (ready.load() < producers) {
  }
  ready.fetch_add(1);
  const auto until = std::chrono::steady_clock::now() + run;
  while (std::chrono::steady_clock::now() < until && c.ordered && c.skipped == 0 && c.gaps == 0)
    if (poll_once() == 0) std::this_thread::yield();
  stop.store(true);
  // Producers blocked on a full ring need the consumer to finish; a never-written sequence
  // would keep this drain from ever reaching the head.
  for (int idle = 0; idle < 2000 && c.ordered; ++idle)
    if (poll_once() != 0) idle = 0;
  for (auto& th : threads) th.join();
  while (poll_once() != 0) {
  }
  for (auto n : published) c.published += n;
  c.head = ring.head(0);
  return c;
}

// The assertions every contention test makes on what contend() saw.
inline void expect_each_sequence_once(const Contention& c) {
  EXPECT_TRUE(c.ordered) << "an event out of its producer's order or at a wrong sequence";
  EXPECT_EQ(c.skipped, 0u) << "an abandoned or corrupt slot means a sequence was shared";
  EXPECT_EQ(c.gaps, 0u);
  EXPECT_EQ(c.delivered, c.published)
      << "published " << c.published << ", delivered " << c.delivered;
  EXPECT_EQ(c.head, c.published);
  EXPECT_GT(c.published, 1000u);
}

// Fixture of the ring tests: a policy that knows and allows every type.
class RingTest : public ::testing::Test {
 protected:
  std::unique_ptr<TypePolicy> policy_ = permissive_policy();
};

}  // namespace evring::core::testing
