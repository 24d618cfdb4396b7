// The ring's config and region checks, and the consumer side: filters, cursors, several
// consumers, commits, and slots that fail validation (corrupt lengths, checksums, words).
// (Split from ring_test.cpp, which keeps the allocation-counting operator new.)
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "core/ring_fixture.h"
#include "evring/core/ring.h"
#include "evring/core/wait.h"

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

// ------------------------------------------------------------------------- config, region

TEST(RingConfigTest, ValidateNamesTheFieldOutOfRange) {
  auto expect_bad = [](RingConfig c, const std::string& field) {
    Status s = validate_config(c);
    EXPECT_EQ(s.code(), Code::kInvalidArgument) << field;
    EXPECT_NE(s.message().find(field), std::string::npos) << s.message();
  };
  RingConfig c = small_config(2, 8);
  EXPECT_TRUE(validate_config(c).is_ok());
  c.partitions = 0;
  expect_bad(c, "partitions");
  c = small_config(kMaxPartitions + 1, 8);
  expect_bad(c, "partitions");
  c = small_config(2, 6);
  expect_bad(c, "slots per partition");
  c = small_config(2, 1);
  expect_bad(c, "slots per partition");
  c = small_config(2, 8, Overflow::kReject, 100);
  expect_bad(c, "slot size");
  c = small_config(2, 8, Overflow::kReject, 300);  // not a multiple of 64
  expect_bad(c, "slot size");
  c = small_config(2, 8, Overflow::kReject, 2u << 20);
  expect_bad(c, "slot size");
  c = small_config(2, 8);
  c.max_consumers = 0;
  expect_bad(c, "max consumers");
  c = small_config(2, 8);
  c.overflow = static_cast<Overflow>(7);
  expect_bad(c, "overflow");
}

TEST(RingRegionTest, AttachReadsBackTheFormattedConfig) {
  TestRing ring(small_config(3, 16, Overflow::kOverwrite, 1024));
  auto again = RingRegion::attach(ring.memory());
  ASSERT_TRUE(again.ok()) << again.status().to_string();
  EXPECT_EQ(again->config().partitions, 3u);
  EXPECT_EQ(again->config().slots_per_partition, 16u);
  EXPECT_EQ(again->config().slot_bytes, 1024u);
  EXPECT_EQ(again->config().max_consumers, 4u);
  EXPECT_EQ(again->config().overflow, Overflow::kOverwrite);
  EXPECT_EQ(again->capacity(), 16u);
  EXPECT_EQ(again->max_envelope_bytes(), 1024u - 16u);
  EXPECT_EQ(again->bytes().size(), ring_region_bytes(small_config(3, 16, Overflow::kOverwrite, 1024)));
}

TEST(RingRegionTest, AttachRefusesAnInconsistentHeaderAsCorruption) {
  TestRing ring(small_config(2, 8));
  auto* header = reinterpret_cast<RingHeader*>(ring.memory().data());
  header->slots_per_partition = 6;
  auto r = RingRegion::attach(ring.memory());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kCorruption);
  header->slots_per_partition = 8;
  header->partitions = 0;
  EXPECT_EQ(RingRegion::attach(ring.memory()).status().code(), Code::kCorruption);
  header->partitions = 2;
  EXPECT_TRUE(RingRegion::attach(ring.memory()).ok());
  // A header describing more bytes than the region has.
  EXPECT_EQ(RingRegion::attach(ring.memory().first(ring.memory().size() - 64)).status().code(),
            Code::kCorruption);
  EXPECT_EQ(RingRegion::attach(ring.memory().first(100)).status().code(), Code::kCorruption);
  // Misaligned.
  EXPECT_EQ(RingRegion::attach(ring.memory().subspan(8)).status().code(), Code::kCorruption);
}

TEST(RingRegionTest, NoAttachedConsumerMeansNoMinimumCursor) {
  TestRing ring(small_config(2, 8));
  EXPECT_EQ(ring.region().min_attached_cursor(0), UINT64_MAX);
  {
    RingConsumer c(ring.region(), 2, Start::kEarliest);
    EXPECT_EQ(ring.region().min_attached_cursor(0), 0u);
  }
  EXPECT_EQ(ring.region().min_attached_cursor(0), UINT64_MAX);
}

// ------------------------------------------------------------------------- consumers

TEST_F(RingTest, FilterSkipsAndCountsOtherTypes) {
  TestRing ring(small_config(1, 16));
  RingConsumer consumer(ring.region(), 0, Start::kEarliest);
  std::map<std::uint16_t, int> resolver_calls;
  TypeFilter filter([&](std::uint16_t type) {
    ++resolver_calls[type];
    return type == 1;
  });
  consumer.set_filter(&filter);
  auto producer = make_producer(ring.region(), 1, policy_.get());
  for (int i = 0; i < 8; ++i) {
    Req r(static_cast<std::uint16_t>(1 + i % 2), "k", tag("e", i));
    ASSERT_EQ(producer->try_publish(r.request), PublishResult::kOk);
  }
  Collected got = drain(consumer);
  EXPECT_EQ(got.payloads, (std::vector<std::string>{"e0", "e2", "e4", "e6"}));
  EXPECT_EQ(got.skipped, 4u);
  EXPECT_EQ(ring.region().cursor(0, 0).filtered.load(), 4u);
  EXPECT_EQ(ring.region().cursor(0, 0).delivered.load(), 4u);
  EXPECT_EQ(ring.region().cursor(0, 0).committed.load(), 8u) << "filtered events are passed";
  EXPECT_EQ(resolver_calls, (std::map<std::uint16_t, int>{{1, 1}, {2, 1}}))
      << "the resolver runs once per type id";
}

TEST_F(RingTest, ManualCommitMovesTheCommittedCursorOnlyOnCommit) {
  TestRing ring(small_config(1, 4));
  RingConsumer consumer(ring.region(), 0, Start::kEarliest, /*auto_commit=*/false);
  auto producer = make_producer(ring.region(), 1, policy_.get());
  Req r(1, "k", "x");
  for (int i = 0; i < 4; ++i) ASSERT_EQ(producer->try_publish(r.request), PublishResult::kOk);
  EXPECT_EQ(drain(consumer).payloads.size(), 4u);
  const CursorLine& line = ring.region().cursor(0, 0);
  EXPECT_EQ(consumer.read_position(0), 4u);
  EXPECT_EQ(line.committed.load(), 0u) << "poll without auto-commit must not commit";
  EXPECT_EQ(producer->try_publish(r.request), PublishResult::kFull)
      << "producers are gated by the committed cursor, not the read position";
  consumer.commit();
  EXPECT_EQ(line.committed.load(), 4u);
  EXPECT_EQ(producer->try_publish(r.request), PublishResult::kOk);
}

TEST_F(RingTest, ConsumerRecreatedWithStartCommittedResumesAfterTheLastCommit) {
  TestRing ring(small_config(2, 16));
  auto producer = make_producer(ring.region(), 1, policy_.get());
  const std::string key = key_in_partition(ring.region(), 1);
  auto publish = [&](int from, int to) {
    for (int i = from; i < to; ++i) {
      Req r(1, key, tag("e", i));
      ASSERT_EQ(producer->try_publish(r.request), PublishResult::kOk);
    }
  };
  {
    RingConsumer consumer(ring.region(), 2, Start::kEarliest, /*auto_commit=*/false);
    publish(0, 6);
    EXPECT_EQ(consumer.poll([](const Event&) {}, 3).delivered, 3u);
    consumer.commit();
    EXPECT_EQ(consumer.poll([](const Event&) {}, 2).delivered, 2u);  // read, not committed
  }
  publish(6, 8);
  RingConsumer again(ring.region(), 2, Start::kCommitted);
  EXPECT_EQ(again.read_position(1), 3u);
  EXPECT_EQ(drain(again).payloads, numbered("e", 3, 8))
      << "uncommitted events are delivered again, committed ones are not";
}

TEST_F(RingTest, StartLatestSkipsExistingEventsAndStartEarliestReadsTheRing) {
  TestRing ring(small_config(1, 4));
  auto producer = make_producer(ring.region(), 1, policy_.get());
  for (int i = 0; i < 10; ++i) {  // no consumer: the ring laps freely
    Req r(1, "k", tag("old", i));
    ASSERT_EQ(producer->try_publish(r.request), PublishResult::kOk);
  }
  RingConsumer latest(ring.region(), 0, Start::kLatest);
  RingConsumer earliest(ring.region(), 1, Start::kEarliest);
  EXPECT_EQ(latest.read_position(0), 10u);
  EXPECT_EQ(earliest.read_position(0), 6u);
  EXPECT_EQ(drain(earliest).payloads, numbered("old", 6, 10));
  EXPECT_TRUE(drain(latest).payloads.empty());
  Req fresh(1, "k", "new");
  ASSERT_EQ(producer->try_publish(fresh.request), PublishResult::kOk);
  EXPECT_EQ(drain(latest).payloads, std::vector<std::string>{"new"});
  EXPECT_EQ(drain(earliest).payloads, std::vector<std::string>{"new"});
}

TEST_F(RingTest, CommittedCursorBeyondTheHeadIsNotTrusted) {
  TestRing ring(small_config(1, 8));
  auto producer = make_producer(ring.region(), 1, policy_.get());
  Req r(1, "k", "x");
  for (int i = 0; i < 3; ++i) ASSERT_EQ(producer->try_publish(r.request), PublishResult::kOk);
  ring.region().cursor(0, 0).committed.store(1'000'000);  // scribbled
  RingConsumer consumer(ring.region(), 0, Start::kCommitted);
  EXPECT_EQ(consumer.read_position(0), 3u);
  ASSERT_EQ(producer->try_publish(r.request), PublishResult::kOk);
  EXPECT_EQ(drain(consumer).payloads.size(), 1u);
}

// ------------------------------------------------------------------------- corruption

// Bytes in the ring are untrusted: a scribbled envelope is skipped and counted, the rest of the
// partition is delivered. Tried at every byte the slot stores (its compact header with the groups
// present, key, payload), at every bit of the elided field, on a slot that elides every group and
// on one that elides none.
struct Scribble {
  bool whole_header;  // publish with every optional field set: every group stored
};
std::uint16_t elided_of(const Scribble& s) {
  return s.whole_header ? std::uint16_t{kCompactHeader} : kCompactElideMask;
}
class CorruptSlotTest : public RingTest, public ::testing::WithParamInterface<Scribble> {
 protected:
  // Publishes three events; returns the elided bits and stored length of the middle one.
  void publish3(RingProducer& producer) {
    for (int e = 0; e < 3; ++e) {
      Req r(1, "key-1", "payload-" + std::to_string(e));
      if (GetParam().whole_header) {
        r.request.idempotency_key.bytes[3] = 7;
        r.request.correlation_id.bytes[5] = 9;
        r.request.causation_id.bytes[1] = 1;
        r.request.entity_revision = 12;
        r.request.origin_host = 0x01020304;
      }
      ASSERT_EQ(producer.try_publish(r.request), PublishResult::kOk);
    }
  }
  void expect_middle_dropped(TestRing& ring, RingConsumer& consumer, const std::string& what) {
    Collected got = drain(consumer);
    EXPECT_EQ(got.payloads, (std::vector<std::string>{"payload-0", "payload-2"})) << what;
    EXPECT_EQ(got.skipped, 1u) << what;
    EXPECT_EQ(ring.region().cursor(0, 0).corrupt.load(), 1u) << what;
    EXPECT_EQ(ring.region().cursor(0, 0).committed.load(), 3u) << what;
  }
};

TEST_P(CorruptSlotTest, EveryStoredByteAndElidedBitIsChecked) {
  const std::uint16_t want_elided = elided_of(GetParam());
  const std::size_t stored =
      stored_header_bytes(want_elided) + std::string("key-1").size() + std::string("payload-1").size();
  for (std::size_t i = 0; i < stored + 16; ++i) {  // the stored bytes, then the elided bits
    TestRing ring(small_config(1, 8));
    RingConsumer consumer(ring.region(), 0, Start::kEarliest);
    auto producer = make_producer(ring.region(), 1, policy_.get());
    ASSERT_NO_FATAL_FAILURE(publish3(*producer));
    SlotHeader& slot = ring.region().slot(0, 1);
    ASSERT_EQ(slot.envelope_bytes, stored);
    ASSERT_EQ(slot.elided, want_elided);
    if (i < stored) {
      RingRegion::envelope_of(slot)[i] ^= std::byte{0x5A};
    } else {
      slot.elided ^= static_cast<std::uint16_t>(1u << (i - stored));
    }
    expect_middle_dropped(ring, consumer,
                          i < stored ? "byte " + std::to_string(i)
                                     : "elided bit " + std::to_string(i - stored));
  }
}

TEST_P(CorruptSlotTest, CorruptStoredLengthIsSkippedAndCounted) {
  const std::uint16_t elided = elided_of(GetParam());
  const std::uint32_t exact = static_cast<std::uint32_t>(stored_header_bytes(elided) + 5 + 9);
  // Too short for the stored header, one byte short, one byte long (trailing bytes the envelope
  // does not account for), beyond the slot, and huge.
  const std::uint32_t bad_lengths[] = {0, 1, static_cast<std::uint32_t>(stored_header_bytes(elided) - 1),
                                       exact - 1, exact + 1, 512 - 16 + 1, 0xFFFFFFFFu,
                                       0x80000000u};
  for (std::uint32_t len : bad_lengths) {
    TestRing ring(small_config(1, 8));
    RingConsumer consumer(ring.region(), 0, Start::kEarliest);
    auto producer = make_producer(ring.region(), 1, policy_.get());
    ASSERT_NO_FATAL_FAILURE(publish3(*producer));
    ASSERT_EQ(ring.region().slot(0, 1).envelope_bytes, exact);
    ring.region().slot(0, 1).envelope_bytes = len;
    expect_middle_dropped(ring, consumer, "length " + std::to_string(len));
  }
}

INSTANTIATE_TEST_SUITE_P(Slots, CorruptSlotTest,
                         ::testing::Values(Scribble{false}, Scribble{true}),
                         [](const auto& test_param) {
                           return test_param.param.whole_header ? std::string("NothingElided")
                                                                : std::string("AllElided");
                         });

// Every combination of optional header fields round-trips through a slot that elides the
// groups holding their defaults: the consumer sees the header a producer meant, field by field.
TEST_F(RingTest, EveryElisionCombinationDeliversTheFullHeader) {
  for (unsigned set = 0; set < 32; ++set) {
    TestRing ring(small_config(1, 8));
    RingConsumer consumer(ring.region(), 0, Start::kEarliest);
    auto producer = make_producer(ring.region(), 1, policy_.get());
    Req r(1, "key-1", "payload");
    if (set & 1) r.request.idempotency_key.bytes[15] = 0x11;
    if (set & 2) r.request.correlation_id.bytes[0] = 0x22;
    if (set & 4) r.request.causation_id.bytes[7] = 0x33;
    if (set & 8) r.request.entity_revision = 0x4400000000000001ull;
    if (set & 16) r.request.origin_host = 0x55000001;
    PublishReceipt receipt;
    ASSERT_EQ(producer->try_publish(r.request, &receipt), PublishResult::kOk);
    const SlotHeader& slot = ring.region().slot(0, 0);
    EXPECT_EQ(slot.elided, kCompactHeader | (kElideMask & ~set) | (set & 16 ? 0 : kElideOriginHost))
        << set;
    EXPECT_EQ(slot.envelope_bytes, stored_header_bytes(slot.elided) + 5 + 7) << set;
    std::size_t delivered = 0;
    consumer.poll([&](const Event& e) {
      ++delivered;
      const EnvelopeHeader& h = e.view.header;
      EXPECT_EQ(h.event_id, receipt.event_id) << set;
      EXPECT_EQ(h.idempotency_key, set & 1 ? r.request.idempotency_key : receipt.event_id) << set;
      EXPECT_EQ(h.correlation_id, set & 2 ? r.request.correlation_id : receipt.event_id) << set;
      EXPECT_EQ(h.causation_id, r.request.causation_id) << set;
      EXPECT_EQ(h.entity_revision, r.request.entity_revision) << set;
      EXPECT_EQ(h.origin_host, r.request.origin_host) << set;
      EXPECT_EQ(h.sequence, 0u);
      EXPECT_EQ(h.producer_id, 1u);
      EXPECT_EQ(h.format_version, kEnvelopeFormatVersion);
      EXPECT_EQ(h.header_bytes, kEnvelopeHeaderBytes);
      EXPECT_EQ(h.payload_bytes, 7u);
      EXPECT_EQ(h.entity_key_bytes, 5u);
      EXPECT_EQ(h.entity_key_hash, entity_key_hash("key-1"));
      EXPECT_EQ(std::string(reinterpret_cast<const char*>(e.view.payload.data()),
                            e.view.payload.size()),
                "payload");
    });
    EXPECT_EQ(delivered, 1u) << set;
  }
}

}  // namespace
}  // namespace evring::core
