// Golden layout test for a bus segment (shm/segment_layout.h, shm/FORMAT.md).
//
// Offsets and sizes are hard-coded from the documented tables and checked against the bytes of
// a real segment read back from its /dev/shm file, little-endian. Any change fails here: if it
// is intended, bump kSegmentLayoutVersion and update this file with it.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "evring/shm/bus.h"
#include "evring/shm/segment_layout.h"
#include "shm/test_bus.h"

namespace evring {
namespace {

using testing::small_options;
using testing::TestBus;

std::vector<std::uint8_t> read_object(const std::string& bus) {
  const int fd = ::open(Bus::object_path(bus).c_str(), O_RDONLY);
  if (fd < 0) return {};
  struct stat st {};
  ::fstat(fd, &st);
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(st.st_size));
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::pread(fd, bytes.data() + done, bytes.size() - done, static_cast<off_t>(done));
    if (n <= 0) break;
    done += static_cast<std::size_t>(n);
  }
  ::close(fd);
  bytes.resize(done);
  return bytes;
}

std::uint64_t le(const std::vector<std::uint8_t>& b, std::size_t off, std::size_t size) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < size; ++i) v |= std::uint64_t{b.at(off + i)} << (8 * i);
  return v;
}
std::string cstr(const std::vector<std::uint8_t>& b, std::size_t off, std::size_t cap) {
  std::string s;
  for (std::size_t i = 0; i < cap && b.at(off + i) != 0; ++i) s += static_cast<char>(b[off + i]);
  return s;
}

TEST(SegmentLayoutGoldenTest, VersionAndMagicAreFrozen) {
  EXPECT_EQ(shm::kSegmentLayoutVersion, 2u);
  EXPECT_EQ(core::kHistogramLayoutVersion, 1u) << "ConsumerEntry embeds HistogramCells";
  EXPECT_EQ(shm::kSegmentHeaderBytes, 1024u);
  char magic[8];
  std::memcpy(magic, &shm::kSegmentMagic, 8);
  EXPECT_EQ(std::string(magic, 8), "EVRINGB1");
}

TEST(SegmentLayoutGoldenTest, StructOffsetsAndSizes) {
  EXPECT_EQ(sizeof(shm::SegmentHeader), 1024u);
  EXPECT_EQ(offsetof(shm::SegmentHeader, magic), 0u);
  EXPECT_EQ(offsetof(shm::SegmentHeader, layout_version), 8u);
  EXPECT_EQ(offsetof(shm::SegmentHeader, ring_layout_version), 12u);
  EXPECT_EQ(offsetof(shm::SegmentHeader, segment_bytes), 16u);
  EXPECT_EQ(offsetof(shm::SegmentHeader, ready), 24u);
  EXPECT_EQ(offsetof(shm::SegmentHeader, header_bytes), 28u);
  EXPECT_EQ(offsetof(shm::SegmentHeader, created_unix_ns), 32u);
  EXPECT_EQ(offsetof(shm::SegmentHeader, creator_pid), 40u);
  EXPECT_EQ(offsetof(shm::SegmentHeader, mode), 44u);
  EXPECT_EQ(offsetof(shm::SegmentHeader, creator_start_time), 48u);
  EXPECT_EQ(offsetof(shm::SegmentHeader, max_producers), 56u);
  EXPECT_EQ(offsetof(shm::SegmentHeader, max_consumers), 60u);
  EXPECT_EQ(offsetof(shm::SegmentHeader, max_types), 64u);
  EXPECT_EQ(offsetof(shm::SegmentHeader, producers_offset), 72u);
  EXPECT_EQ(offsetof(shm::SegmentHeader, consumers_offset), 80u);
  EXPECT_EQ(offsetof(shm::SegmentHeader, types_offset), 88u);
  EXPECT_EQ(offsetof(shm::SegmentHeader, ring_offset), 96u);
  EXPECT_EQ(offsetof(shm::SegmentHeader, ring_bytes), 104u);
  EXPECT_EQ(offsetof(shm::SegmentHeader, idempotency_offset), 112u);
  EXPECT_EQ(offsetof(shm::SegmentHeader, idempotency_keys), 120u);
  EXPECT_EQ(offsetof(shm::SegmentHeader, consumer_grace_ms), 124u);
  EXPECT_EQ(offsetof(shm::SegmentHeader, registry_mutex), 128u);
  EXPECT_EQ(offsetof(shm::SegmentHeader, bus_name), 192u);
  EXPECT_EQ(offsetof(shm::SegmentHeader, reserved2), 256u);

  EXPECT_EQ(sizeof(shm::ProducerEntry), 256u);
  EXPECT_EQ(offsetof(shm::ProducerEntry, state), 0u);
  EXPECT_EQ(offsetof(shm::ProducerEntry, pid), 4u);
  EXPECT_EQ(offsetof(shm::ProducerEntry, start_time), 8u);
  EXPECT_EQ(offsetof(shm::ProducerEntry, registered_unix_ns), 16u);
  EXPECT_EQ(offsetof(shm::ProducerEntry, service), 24u);
  EXPECT_EQ(offsetof(shm::ProducerEntry, domains), 88u);
  EXPECT_EQ(offsetof(shm::ProducerEntry, reserved), 248u);

  EXPECT_EQ(sizeof(shm::ConsumerEntry), 35136u);
  EXPECT_EQ(alignof(shm::ConsumerEntry), 64u);
  EXPECT_EQ(offsetof(shm::ConsumerEntry, state), 0u);
  EXPECT_EQ(offsetof(shm::ConsumerEntry, pid), 4u);
  EXPECT_EQ(offsetof(shm::ConsumerEntry, start_time), 8u);
  EXPECT_EQ(offsetof(shm::ConsumerEntry, created_unix_ns), 16u);
  EXPECT_EQ(offsetof(shm::ConsumerEntry, last_seen_unix_ns), 24u);
  EXPECT_EQ(offsetof(shm::ConsumerEntry, name), 32u);
  EXPECT_EQ(offsetof(shm::ConsumerEntry, filter), 96u);
  EXPECT_EQ(offsetof(shm::ConsumerEntry, dead_since_unix_ns), 224u);
  EXPECT_EQ(offsetof(shm::ConsumerEntry, reserved), 232u);
  EXPECT_EQ(offsetof(shm::ConsumerEntry, latency), 256u);
  EXPECT_EQ(sizeof(core::HistogramCells), 34880u);

  EXPECT_EQ(sizeof(shm::TypeEntry), 192u);
  EXPECT_EQ(offsetof(shm::TypeEntry, state), 0u);
  EXPECT_EQ(offsetof(shm::TypeEntry, schema_version), 4u);
  EXPECT_EQ(offsetof(shm::TypeEntry, classification), 6u);
  EXPECT_EQ(offsetof(shm::TypeEntry, registered_unix_ns), 8u);
  EXPECT_EQ(offsetof(shm::TypeEntry, name), 16u);
  EXPECT_EQ(offsetof(shm::TypeEntry, reserved1), 144u);

  // Per-consumer idempotency table: 64 B header + 32 B per key.
  EXPECT_EQ(shm::idempotency_table_bytes(0), 0u);
  EXPECT_EQ(shm::idempotency_table_bytes(16), 64u + 16u * 32u);

  EXPECT_EQ(static_cast<std::uint32_t>(shm::EntryState::kFree), 0u);
  EXPECT_EQ(static_cast<std::uint32_t>(shm::EntryState::kActive), 1u);
  EXPECT_EQ(static_cast<std::uint32_t>(shm::EntryState::kRetired), 2u);
}

TEST(SegmentLayoutGoldenTest, CreatedSegmentHasTheDocumentedBytes) {
  BusOptions o = small_options(2, 16);
  o.max_producers = 5;
  o.ring.max_consumers = 3;
  o.max_types = 7;
  o.idempotency_keys = 16;
  o.mode = 0640;
  TestBus bus(o);
  ASSERT_TRUE(bus.ok());
  auto producer = bus->producer("billing", {"sales", "invoices"});
  ASSERT_TRUE(producer.ok());
  auto type = (*producer)->resolve("sales.lead.created", 4, Classification::kConfidential);
  ASSERT_TRUE(type.ok());
  Bus::ConsumerOptions co;
  co.filter = "sales.>";
  auto consumer = bus->consumer("audit", co);
  ASSERT_TRUE(consumer.ok());

  const std::vector<std::uint8_t> b = read_object(bus.name());
  ASSERT_GE(b.size(), 4096u);

  // Header.
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(b.data()), 8), "EVRINGB1");
  EXPECT_EQ(le(b, 8, 4), 2u) << "layout_version";
  EXPECT_EQ(le(b, 12, 4), 7u) << "ring_layout_version";
  EXPECT_EQ(le(b, 16, 8), b.size()) << "segment_bytes";
  EXPECT_EQ(b.size() % 4096, 0u);
  EXPECT_EQ(le(b, 24, 4), 1u) << "ready";
  EXPECT_EQ(le(b, 28, 4), 1024u) << "header_bytes";
  EXPECT_GT(le(b, 32, 8), 1'700'000'000'000'000'000ull) << "created_unix_ns";
  EXPECT_EQ(le(b, 40, 4), static_cast<std::uint64_t>(::getpid())) << "creator_pid";
  EXPECT_EQ(le(b, 44, 4), 0640u) << "mode";
  EXPECT_NE(le(b, 48, 8), 0u) << "creator_start_time";
  EXPECT_EQ(le(b, 56, 4), 5u) << "max_producers";
  EXPECT_EQ(le(b, 60, 4), 3u) << "max_consumers";
  EXPECT_EQ(le(b, 64, 4), 7u) << "max_types";
  const std::size_t producers = 1024;
  const std::size_t consumer_entry = 256 + 34880;
  const std::size_t consumers = producers + 5 * 256;             // 2304
  const std::size_t types = consumers + 3 * consumer_entry;      // 107712
  const std::size_t idempotency = (types + 7 * 192 + 63) / 64 * 64;  // 109056
  const std::size_t table = 64 + 16 * 32;                            // 576
  const std::size_t ring = (idempotency + 3 * table + 4095) / 4096 * 4096;  // 114688
  EXPECT_EQ(le(b, 72, 8), producers) << "producers_offset";
  EXPECT_EQ(le(b, 80, 8), consumers) << "consumers_offset";
  EXPECT_EQ(le(b, 88, 8), types) << "types_offset";
  EXPECT_EQ(le(b, 96, 8), ring) << "ring_offset";
  EXPECT_EQ(types, 107712u);
  EXPECT_EQ(ring, 114688u);
  EXPECT_EQ(le(b, 104, 8), core::ring_region_bytes(o.ring)) << "ring_bytes";
  EXPECT_EQ(le(b, 112, 8), idempotency) << "idempotency_offset";
  EXPECT_EQ(idempotency, 109056u);
  EXPECT_EQ(le(b, 120, 4), 16u) << "idempotency_keys";
  for (std::uint32_t i = 0; i < 3; ++i) {
    auto t = bus->idempotency_table(i);
    EXPECT_EQ(t.size(), table);
    EXPECT_EQ(static_cast<std::size_t>(t.data() - reinterpret_cast<const std::byte*>(&bus->header())),
              idempotency + i * table);
  }
  EXPECT_TRUE(bus->idempotency_table(3).empty()) << "only max_consumers tables";
  EXPECT_EQ(b.size(), (ring + core::ring_region_bytes(o.ring) + 4095) / 4096 * 4096);
  EXPECT_EQ(cstr(b, 192, 64), bus.name()) << "bus_name";

  // Producer entry 0 (producer id 1).
  EXPECT_EQ((*producer)->id(), 1);
  EXPECT_EQ(le(b, producers + 0, 4), 1u) << "state active";
  EXPECT_EQ(le(b, producers + 4, 4), static_cast<std::uint64_t>(::getpid()));
  EXPECT_EQ(le(b, producers + 8, 8), le(b, 48, 8)) << "start time of this process";
  EXPECT_EQ(cstr(b, producers + 24, 64), "billing");
  EXPECT_EQ(cstr(b, producers + 88, 160), "invoices,sales") << "sorted, comma-separated";
  EXPECT_EQ(le(b, producers + 256, 4), 0u) << "entry 1 free";

  // Consumer entry 0.
  EXPECT_EQ(le(b, consumers + 0, 4), 1u);
  EXPECT_EQ(le(b, consumers + 4, 4), static_cast<std::uint64_t>(::getpid()));
  EXPECT_EQ(cstr(b, consumers + 32, 64), "audit");
  EXPECT_EQ(cstr(b, consumers + 96, 128), "sales.>");
  EXPECT_EQ(le(b, consumers + consumer_entry, 4), 0u) << "entry 1 free, 35136 B further";

  // Type entry 0 (type id 1).
  EXPECT_EQ(type.value(), 1);
  EXPECT_EQ(le(b, types + 0, 4), 1u);
  EXPECT_EQ(le(b, types + 4, 2), 4u) << "schema_version";
  EXPECT_EQ(le(b, types + 6, 1), 2u) << "classification confidential";
  EXPECT_EQ(cstr(b, types + 16, 128), "sales.lead.created");

  // The ring region starts with its own header (core/ring_layout.h).
  EXPECT_EQ(le(b, ring + 0, 4), 2u) << "ring partitions";
  EXPECT_EQ(le(b, ring + 4, 4), 16u) << "ring slots_per_partition";
  EXPECT_EQ(le(b, ring + 12, 4), 3u) << "ring max_consumers";
}

TEST(SegmentLayoutGoldenTest, ConsumerLatencyHistogramHasTheDocumentedBytes) {
  BusOptions o = small_options(1, 16);
  o.max_producers = 2;
  o.ring.max_consumers = 2;
  TestBus bus(o);
  ASSERT_TRUE(bus.ok());
  auto producer = bus->producer("billing", {"sales"});
  ASSERT_TRUE(producer.ok());
  auto type = (*producer)->resolve("sales.lead.created");
  ASSERT_TRUE(type.ok());
  auto idle = bus->consumer("idle");  // entry 0: stays empty
  ASSERT_TRUE(idle.ok());
  auto consumer = bus->consumer("audit");  // entry 1
  ASSERT_TRUE(consumer.ok());
  // Published "ten minutes ago" (inside the tracked range of 2^40 ns): every latency is that
  // plus the few microseconds of this test.
  constexpr std::uint64_t kAgeNs = 600'000'000'000ull;
  for (int i = 0; i < 3; ++i) {
    core::PublishRequest r;
    r.type_id = *type;
    r.entity_key = "k";
    r.timestamp_ns = unix_now_ns() - kAgeNs;
    ASSERT_EQ((*producer)->try_publish(r), core::PublishResult::kOk);
  }
  std::size_t seen = 0;
  while (seen < 3) seen += (*consumer)->poll([](const core::Event&) {}).delivered;

  const std::vector<std::uint8_t> b = read_object(bus.name());
  const std::size_t entry1 = 1024 + 2 * 256 + 35136;
  const std::size_t cells = entry1 + 256;
  EXPECT_EQ(cstr(b, entry1 + 32, 64), "audit");
  EXPECT_EQ(le(b, cells + 0, 8), 3u) << "total_count";
  const std::uint64_t sum = le(b, cells + 8, 8);
  EXPECT_GE(sum, 3 * kAgeNs) << "sum_ns";
  EXPECT_LT(sum, 3 * (kAgeNs + 60'000'000'000ull)) << "sum_ns";
  const std::uint64_t min = ~le(b, cells + 16, 8);  // stored complemented: 0 means none
  const std::uint64_t max = le(b, cells + 24, 8);
  EXPECT_GE(min, kAgeNs) << "min_ns_complement";
  EXPECT_GE(max, min) << "max_ns";
  EXPECT_LT(max, kAgeNs + 60'000'000'000ull) << "max_ns";
  // The three events sit in the buckets of their values; counts[i] at 64 + 8 * i.
  std::uint64_t counted = 0;
  for (std::size_t i = 0; i < core::kHistogramCountsLen; ++i) counted += le(b, cells + 64 + 8 * i, 8);
  EXPECT_EQ(counted, 3u);
  EXPECT_GE(le(b, cells + 64 + 8 * core::histogram_bucket_index(min), 8), 1u);
  EXPECT_GE(le(b, cells + 64 + 8 * core::histogram_bucket_index(max), 8), 1u);
  // Entry 0's histogram: all zero bytes are the empty histogram.
  for (std::size_t off = 1024 + 2 * 256 + 256; off < entry1; ++off)
    ASSERT_EQ(b[off], 0u) << "idle consumer's histogram byte " << off;
}

}  // namespace
}  // namespace evring
