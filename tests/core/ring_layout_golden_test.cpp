// Golden layout test for the ring region (core/ring_layout.h, core/FORMAT.md).
//
// Offsets are hard-coded from the documented tables, and checked twice: with offsetof, and by
// reading raw little-endian bytes of a formatted region that the ring wrote. Any change to the
// layout fails here: if it is intended, bump kRingLayoutVersion and update this file with it.
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "core/ring_fixture.h"
#include "evring/core/ring_layout.h"

namespace evring::core {
namespace {

using testing::make_producer;
using testing::permissive_policy;
using testing::Req;
using testing::TestRing;

std::uint64_t read_le(const std::byte* base, std::size_t off, std::size_t size) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < size; ++i)
    v |= static_cast<std::uint64_t>(static_cast<std::uint8_t>(base[off + i])) << (8 * i);
  return v;
}

TEST(RingLayoutGoldenTest, VersionIsFrozen) { EXPECT_EQ(kRingLayoutVersion, 7u); }

TEST(RingLayoutGoldenTest, RingHeaderFields) {
  EXPECT_EQ(sizeof(RingHeader), 256u);
  EXPECT_EQ(offsetof(RingHeader, partitions), 0u);
  EXPECT_EQ(offsetof(RingHeader, slots_per_partition), 4u);
  EXPECT_EQ(offsetof(RingHeader, slot_bytes), 8u);
  EXPECT_EQ(offsetof(RingHeader, max_consumers), 12u);
  EXPECT_EQ(offsetof(RingHeader, overflow), 16u);
  EXPECT_EQ(offsetof(RingHeader, producer_lanes), 20u);
  EXPECT_EQ(offsetof(RingHeader, dedup_window), 24u);
  EXPECT_EQ(offsetof(RingHeader, dedup_bloom_words), 28u);
  EXPECT_EQ(offsetof(RingHeader, dedup_window_ns), 32u);
  EXPECT_EQ(offsetof(RingHeader, dedup_bloom_bits), 40u);
  EXPECT_EQ(offsetof(RingHeader, reserved0), 41u);
  EXPECT_EQ(offsetof(RingHeader, wake_word), 64u);
  EXPECT_EQ(offsetof(RingHeader, sleepers), 68u);
  EXPECT_EQ(offsetof(RingHeader, gate_epoch), 128u);
  EXPECT_EQ(static_cast<std::uint32_t>(Overflow::kReject), 0u);
  EXPECT_EQ(static_cast<std::uint32_t>(Overflow::kOverwrite), 1u);
}

TEST(RingLayoutGoldenTest, ConsumerGateFields) {
  EXPECT_EQ(sizeof(ConsumerGate), 64u);
  EXPECT_EQ(offsetof(ConsumerGate, state), 0u);
  EXPECT_EQ(static_cast<std::uint32_t>(GateState::kFree), 0u);
  EXPECT_EQ(static_cast<std::uint32_t>(GateState::kAttached), 1u);
  EXPECT_EQ(static_cast<std::uint32_t>(GateState::kDetached), 2u);
}

TEST(RingLayoutGoldenTest, ProducerLaneFields) {
  EXPECT_EQ(sizeof(ProducerLane), 64u);
  EXPECT_EQ(offsetof(ProducerLane, state), 0u);
  EXPECT_EQ(offsetof(ProducerLane, owner_pid), 4u);
  EXPECT_EQ(offsetof(ProducerLane, owner_start), 8u);
  EXPECT_EQ(offsetof(ProducerLane, first), 16u);
  EXPECT_EQ(offsetof(ProducerLane, count), 24u);
  EXPECT_EQ(offsetof(ProducerLane, partition), 28u);
  EXPECT_EQ(offsetof(ProducerLane, producer_id), 32u);
  EXPECT_EQ(offsetof(ProducerLane, reserved), 34u);
}

TEST(RingLayoutGoldenTest, DedupHeaderFields) {
  EXPECT_EQ(sizeof(DedupHeader), 64u);
  EXPECT_EQ(offsetof(DedupHeader, cleared_through), 0u);
  EXPECT_EQ(kDedupGenerations, 3u);
}

TEST(RingLayoutGoldenTest, CursorLineFields) {
  EXPECT_EQ(sizeof(CursorLine), 64u);
  EXPECT_EQ(offsetof(CursorLine, committed), 0u);
  EXPECT_EQ(offsetof(CursorLine, delivered), 8u);
  EXPECT_EQ(offsetof(CursorLine, gaps), 16u);
  EXPECT_EQ(offsetof(CursorLine, filtered), 24u);
  EXPECT_EQ(offsetof(CursorLine, corrupt), 32u);
  EXPECT_EQ(offsetof(CursorLine, abandoned), 40u);
  EXPECT_EQ(offsetof(CursorLine, read_position), 48u);
  EXPECT_EQ(offsetof(CursorLine, reserved), 56u);
}

TEST(RingLayoutGoldenTest, PartitionHeaderFields) {
  EXPECT_EQ(sizeof(PartitionHeader), 256u);
  EXPECT_EQ(offsetof(PartitionHeader, head), 0u);
  EXPECT_EQ(offsetof(PartitionHeader, rejected), 64u);
  EXPECT_EQ(offsetof(PartitionHeader, abandoned), 72u);
  EXPECT_EQ(offsetof(PartitionHeader, deduplicated), 80u);
  EXPECT_EQ(offsetof(PartitionHeader, exclusive_owner), 88u);
  EXPECT_EQ(offsetof(PartitionHeader, bias_revoked_ns), 96u);
  EXPECT_EQ(offsetof(PartitionHeader, bias_revocations), 104u);
  EXPECT_EQ(kBiasedOwner, 0x8000'0000u);
  EXPECT_EQ(kSoleClaim, 0x8000'0000u);
}

TEST(RingLayoutGoldenTest, SlotHeaderFieldsAndWordEncoding) {
  EXPECT_EQ(sizeof(SlotHeader), 16u);
  EXPECT_EQ(kSlotHeaderBytes, 16u);
  EXPECT_EQ(offsetof(SlotHeader, word), 0u);
  EXPECT_EQ(offsetof(SlotHeader, envelope_bytes), 8u);
  EXPECT_EQ(offsetof(SlotHeader, writer), 12u);
  EXPECT_EQ(offsetof(SlotHeader, elided), 14u);
  // Elided header word groups (layout version 4) and the header bytes a slot then stores.
  EXPECT_EQ(kElideIdempotencyKey, 1u);
  EXPECT_EQ(kElideCorrelationId, 2u);
  EXPECT_EQ(kElideCausationId, 4u);
  EXPECT_EQ(kElideRevision, 8u);
  EXPECT_EQ(kElideMask, 0xFu);
  EXPECT_EQ(stored_header_bytes(0), 128u);
  EXPECT_EQ(stored_header_bytes(kElideIdempotencyKey | kElideRevision), 104u);
  EXPECT_EQ(stored_header_bytes(kElideMask), 72u);
  // The compact header (layout version 6): 40 fixed bytes, then the groups present.
  EXPECT_EQ(kCompactHeader, 0x10u);
  EXPECT_EQ(kElideOriginHost, 0x20u);
  EXPECT_EQ(kCompactElideMask, 0x3Fu);
  EXPECT_EQ(stored_header_bytes(kCompactElideMask), 40u);
  EXPECT_EQ(stored_header_bytes(kCompactHeader), 40u + 16 + 16 + 16 + 8 + 8);
  EXPECT_EQ(stored_header_bytes(kCompactHeader | kElideCorrelationId | kElideOriginHost), 80u);
  EXPECT_TRUE(elided_bits_valid(kElideMask));
  EXPECT_FALSE(elided_bits_valid(kElideOriginHost)) << "origin_host is elided in compact slots only";
  EXPECT_TRUE(elided_bits_valid(kCompactElideMask));
  EXPECT_FALSE(elided_bits_valid(0x40));
  // word = (sequence << 3) | state
  EXPECT_EQ(kSlotStateBits, 3u);
  EXPECT_EQ(static_cast<std::uint64_t>(SlotState::kEmpty), 0u);
  EXPECT_EQ(static_cast<std::uint64_t>(SlotState::kWriting), 1u);
  EXPECT_EQ(static_cast<std::uint64_t>(SlotState::kPublished), 2u);
  EXPECT_EQ(static_cast<std::uint64_t>(SlotState::kAbandoned), 3u);
  EXPECT_EQ(static_cast<std::uint64_t>(SlotState::kPending), 4u);
  EXPECT_EQ(static_cast<std::uint64_t>(SlotState::kDuplicate), 5u);
  EXPECT_EQ(slot_word(5, SlotState::kPublished), 42u);
  EXPECT_EQ(slot_word(0x1234, SlotState::kWriting), (0x1234u << 3) | 1u);
  EXPECT_EQ(word_sequence(42), 5u);
  EXPECT_EQ(word_state(43), SlotState::kAbandoned);
  EXPECT_EQ(word_state(45), SlotState::kDuplicate);
  EXPECT_EQ(max_body_bytes(512), 512u - 16u - 128u);
}

TEST(RingLayoutGoldenTest, LimitsAreFrozen) {
  EXPECT_EQ(kCacheLine, 64u);
  EXPECT_EQ(kMinSlotBytes, 256u);
  EXPECT_EQ(kMaxSlotBytes, 1048576u);
  EXPECT_EQ(kMaxPartitions, 1024u);
  EXPECT_EQ(kMaxConsumers, 256u);
  EXPECT_EQ(kMaxProducerLanes, 4096u);
}

// The region: header 256 B; gates at 256 (64 B per consumer); producer lanes after them (64 B
// each); cursors after the lanes (64 B per consumer per partition); then the partitions, each a
// 256 B header and slots * slot_bytes (then, on dedup buses, a 64 B dedup header and 3
// generations of bloom words).
TEST(RingLayoutGoldenTest, RegionOffsetsForAGivenConfig) {
  RingConfig c;
  c.partitions = 3;
  c.slots_per_partition = 8;
  c.slot_bytes = 320;
  c.max_consumers = 5;
  c.producer_lanes = 6;
  c.overflow = Overflow::kOverwrite;
  constexpr std::size_t kGates = 256;
  constexpr std::size_t kLanes = kGates + 64 * 5;             // 576
  constexpr std::size_t kCursors = kLanes + 64 * 6;           // 960
  constexpr std::size_t kPartitions = kCursors + 64 * 5 * 3;  // 1920
  constexpr std::size_t kStride = 256 + 8 * 320;              // 2816
  constexpr std::size_t kTotal = kPartitions + 3 * kStride;   // 10368
  EXPECT_EQ(ring_region_bytes(c), kTotal);

  TestRing ring(c);
  const RingRegion& r = ring.region();
  const std::byte* base = ring.memory().data();
  auto off = [&](const void* p) {
    return static_cast<std::size_t>(static_cast<const std::byte*>(p) - base);
  };
  EXPECT_EQ(off(&r.header()), 0u);
  for (std::uint32_t i = 0; i < 5; ++i) EXPECT_EQ(off(&r.gate(i)), kGates + 64 * i);
  for (std::uint32_t i = 0; i < 6; ++i) EXPECT_EQ(off(&r.lane(i)), kLanes + 64 * i);
  for (std::uint32_t ci = 0; ci < 5; ++ci)
    for (std::uint32_t p = 0; p < 3; ++p)
      EXPECT_EQ(off(&r.cursor(ci, p)), kCursors + 64 * (ci * 3 + p)) << ci << "/" << p;
  for (std::uint32_t p = 0; p < 3; ++p) {
    EXPECT_EQ(off(&r.partition(p)), kPartitions + p * kStride);
    for (std::uint64_t s = 0; s < 8; ++s)
      EXPECT_EQ(off(&r.slot(p, s)), kPartitions + p * kStride + 256 + s * 320);
    EXPECT_EQ(off(&r.slot(p, 8 + 3)), off(&r.slot(p, 3))) << "sequence modulo slots";
  }

  // The header the ring wrote, byte by byte (little-endian).
  EXPECT_EQ(read_le(base, 0, 4), 3u);
  EXPECT_EQ(read_le(base, 4, 4), 8u);
  EXPECT_EQ(read_le(base, 8, 4), 320u);
  EXPECT_EQ(read_le(base, 12, 4), 5u);
  EXPECT_EQ(read_le(base, 16, 4), 1u);  // overwrite
  EXPECT_EQ(read_le(base, 20, 4), 6u);  // producer lanes
  EXPECT_EQ(read_le(base, 24, 4), 0u) << "dedup_window: off";
  EXPECT_EQ(read_le(base, 28, 4), 0u) << "dedup_bloom_words";
  EXPECT_EQ(read_le(base, 32, 8), 0u) << "dedup_window_ns";
  for (std::size_t i = 41; i < 64; ++i) EXPECT_EQ(read_le(base, i, 1), 0u) << "reserved " << i;
}

TEST(RingLayoutGoldenTest, DedupAreaFollowsTheSlotsOfEachPartition) {
  RingConfig c;
  c.partitions = 2;
  c.slots_per_partition = 16;
  c.slot_bytes = 256;
  c.max_consumers = 1;
  c.producer_lanes = 1;
  c.dedup_window = 4;
  c.dedup_bloom_words = 8;
  c.dedup_window_ns = 0x0102030405060708ull;
  constexpr std::size_t kPartitions = 256 + 64 + 64 + 64 * 2;  // 512
  constexpr std::size_t kSlots = 256 + 16 * 256;               // 4352
  constexpr std::size_t kStride = kSlots + 64 + 3 * 8 * 8;     // 4608
  EXPECT_EQ(ring_region_bytes(c), kPartitions + 2 * kStride);
  TestRing ring(c);
  const RingRegion& r = ring.region();
  const std::byte* base = ring.memory().data();
  auto off = [&](const void* p) {
    return static_cast<std::size_t>(static_cast<const std::byte*>(p) - base);
  };
  for (std::uint32_t p = 0; p < 2; ++p) {
    EXPECT_EQ(off(&r.partition(p)), kPartitions + p * kStride);
    EXPECT_EQ(off(&r.dedup_header(p)), kPartitions + p * kStride + kSlots);
    for (std::uint64_t g = 0; g < 4; ++g)
      EXPECT_EQ(off(r.bloom(p, g)), kPartitions + p * kStride + kSlots + 64 + (g % 3) * 8 * 8);
  }
  EXPECT_EQ(read_le(base, 24, 4), 4u) << "dedup_window";
  EXPECT_EQ(read_le(base, 28, 4), 8u) << "dedup_bloom_words";
  EXPECT_EQ(read_le(base, 32, 8), 0x0102030405060708ull) << "dedup_window_ns";
  EXPECT_GE(read_le(base, 40, 1), 1u) << "dedup_bloom_bits";
  EXPECT_LE(read_le(base, 40, 1), 16u) << "dedup_bloom_bits";
}

TEST(RingLayoutGoldenTest, WrittenBytesLandAtTheDocumentedOffsets) {
  RingConfig c;
  c.partitions = 2;
  c.slots_per_partition = 4;
  c.slot_bytes = 256;
  c.max_consumers = 3;
  c.producer_lanes = 2;
  constexpr std::size_t kGates = 256, kLanes = kGates + 64 * 3, kCursors = kLanes + 64 * 2;
  constexpr std::size_t kPartitions = kCursors + 64 * 3 * 2;
  constexpr std::size_t kStride = 256 + 4 * 256;
  TestRing ring(c);
  const std::byte* base = ring.memory().data();
  auto policy = permissive_policy();
  RingConsumer consumer(ring.region(), 2, RingConsumer::Start::kEarliest);
  EXPECT_EQ(read_le(base, kGates + 64 * 2, 4), 1u) << "gate 2 attached";
  EXPECT_EQ(read_le(base, kGates + 64 * 1, 4), 0u) << "gate 1 free";
  EXPECT_EQ(read_le(base, 128, 8), 1u) << "gate epoch bumped by the attach";

  auto producer = make_producer(ring.region(), 0x0A0B, policy.get());
  std::string key;
  for (int i = 0;; ++i) {  // a key of partition 1
    key = "key-" + std::to_string(i);
    if (ring.region().partition_of(entity_key_hash(key)) == 1) break;
  }
  Req r(1, key, "payload");
  for (int i = 0; i < 2; ++i) ASSERT_EQ(producer->try_publish(r.request), PublishResult::kOk);
  // Sequence 2: every optional field set, so the slot stores every group.
  Req full(1, key, "payload");
  full.request.idempotency_key.bytes[0] = 0x11;
  full.request.correlation_id.bytes[0] = 0x22;
  full.request.causation_id.bytes[0] = 0x33;
  full.request.entity_revision = 0x44;
  full.request.origin_host = 0x55667788;
  full.request.key_id = 0x0C0D;
  full.request.schema_version = 0x0203;
  full.request.flags = 0x0405;
  ASSERT_EQ(producer->try_publish(full.request), PublishResult::kOk);

  const std::size_t part1 = kPartitions + kStride;
  EXPECT_EQ(read_le(base, part1, 8), 3u) << "partition 1 head";
  EXPECT_EQ(read_le(base, kPartitions, 8), 0u) << "partition 0 head";
  const std::size_t slot1 = part1 + 256 + 1 * 256;  // sequence 1: every optional group elided
  const std::size_t env1 = slot1 + 16;
  EXPECT_EQ(read_le(base, slot1, 8), (1u << 3) | 2u) << "word: sequence 1, published";
  EXPECT_EQ(read_le(base, slot1 + 8, 4), 40 + key.size() + 7) << "envelope_bytes as stored";
  EXPECT_EQ(read_le(base, slot1 + 12, 2), 0x0A0Bu) << "writer";
  EXPECT_EQ(read_le(base, slot1 + 14, 2), 0x3Fu) << "elided: compact, every group";
  EXPECT_EQ(read_le(base, env1 + 0, 2), 1u) << "type_id";
  EXPECT_EQ(read_le(base, env1 + 2, 2), 1u) << "schema_version";
  EXPECT_EQ(read_le(base, env1 + 4, 1), static_cast<std::uint64_t>(r.request.classification))
      << "classification";
  EXPECT_EQ(read_le(base, env1 + 5, 1), static_cast<std::uint64_t>(r.request.content_type))
      << "content_type";
  EXPECT_EQ(read_le(base, env1 + 6, 2), 0u) << "flags";
  EXPECT_NE(read_le(base, env1 + 8, 8), 0u) << "timestamp_ns";
  EXPECT_EQ(read_le(base, env1 + 16 + 6, 1) >> 4, 7u) << "event_id: a UUIDv7";
  EXPECT_EQ(read_le(base, env1 + 32, 2), 0u) << "key_id";
  EXPECT_EQ(read_le(base, env1 + 34, 2), key.size()) << "entity_key_bytes";
  EXPECT_EQ(std::memcmp(base + env1 + 40, key.data(), key.size()), 0) << "key at 40";
  EXPECT_EQ(std::memcmp(base + env1 + 40 + key.size(), "payload", 7), 0);
  const std::size_t slot2 = slot1 + 256;  // sequence 2: every group present
  const std::size_t env2 = slot2 + 16;
  EXPECT_EQ(read_le(base, slot2 + 8, 4), 104 + key.size() + 7) << "envelope_bytes";
  EXPECT_EQ(read_le(base, slot2 + 14, 2), 0x10u) << "elided: compact, no group";
  EXPECT_EQ(read_le(base, env2 + 2, 2), 0x0203u) << "schema_version";
  EXPECT_EQ(read_le(base, env2 + 6, 2), 0x0405u) << "flags";
  EXPECT_EQ(read_le(base, env2 + 32, 2), 0x0C0Du) << "key_id";
  EXPECT_EQ(read_le(base, env2 + 40, 1), 0x11u) << "idempotency_key at 40";
  EXPECT_EQ(read_le(base, env2 + 56, 1), 0x22u) << "correlation_id at 56";
  EXPECT_EQ(read_le(base, env2 + 72, 1), 0x33u) << "causation_id at 72";
  EXPECT_EQ(read_le(base, env2 + 88, 8), 0x44u) << "entity_revision at 88";
  EXPECT_EQ(read_le(base, env2 + 96, 8), 0x55667788u) << "origin_host at 96, then 4 zero bytes";
  EXPECT_EQ(std::memcmp(base + env2 + 104, key.data(), key.size()), 0) << "key at 104";
  EXPECT_EQ(std::memcmp(base + env2 + 104 + key.size(), "payload", 7), 0);
  // The checksum (compact bytes 36..39) is the one the expanded envelope carries.
  std::vector<std::byte> expanded(ring.region().max_envelope_bytes());
  const auto& s2 = *reinterpret_cast<const SlotHeader*>(base + slot2);
  ASSERT_EQ(expand_slot_envelope(s2, expanded.size(), expanded.data()), 128 + key.size() + 7);
  EXPECT_EQ(read_le(base, env2 + 36, 4), read_le(expanded.data(), 124, 4)) << "checksum";
  EXPECT_EQ(read_le(expanded.data(), 8, 2), 0x0A0Bu) << "producer_id: the writer";
  EXPECT_EQ(read_le(expanded.data(), 24, 8), 2u) << "sequence: the slot word's";
  EXPECT_EQ(read_le(expanded.data(), 96, 8), entity_key_hash(key)) << "entity_key_hash";
  EXPECT_EQ(read_le(expanded.data(), 112, 4), 7u) << "payload_bytes";
  EXPECT_EQ(read_le(expanded.data(), 120, 4), 0x55667788u) << "origin_host";

  // The producer's lane (lane 0): owner, last intent, idle.
  EXPECT_EQ(read_le(base, kLanes + 0, 4), 1u) << "lane state: in use";
  EXPECT_EQ(read_le(base, kLanes + 4, 4), static_cast<std::uint64_t>(::getpid())) << "owner_pid";
  EXPECT_EQ(read_le(base, kLanes + 16, 8), 2u) << "first of the last intent";
  EXPECT_EQ(read_le(base, kLanes + 24, 4), 0u) << "count: idle after publishing";
  EXPECT_EQ(read_le(base, kLanes + 28, 4), 1u) << "partition of the last intent";
  EXPECT_EQ(read_le(base, kLanes + 32, 2), 0x0A0Bu) << "producer_id";
  EXPECT_EQ(read_le(base, kLanes + 64, 4), 0u) << "lane 1 free";

  ASSERT_EQ(consumer.poll([](const Event&) {}).delivered, 3u);
  const std::size_t line = kCursors + 64 * (2 * 2 + 1);  // consumer 2, partition 1
  EXPECT_EQ(read_le(base, line + 0, 8), 3u) << "committed";
  EXPECT_EQ(read_le(base, line + 8, 8), 3u) << "delivered";
  EXPECT_EQ(read_le(base, line + 48, 8), 3u) << "read_position";
}

}  // namespace
}  // namespace evring::core
