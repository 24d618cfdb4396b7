// Bus::check / shm::check_segment: every kind of finding from a crafted corrupt segment (one
// field scribbled at a time, through the object file as another process would), and arbitrary
// bytes never crash it.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <chrono>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "evring/shm/bus.h"
#include "gmock/gmock.h"
#include "test_bus.h"

namespace evring {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using testing::small_options;
using testing::TestBus;

class CheckTest : public ::testing::Test {
 protected:
  static constexpr std::uint32_t kPartitions = 4, kSlots = 16;

  void SetUp() override {
    ASSERT_TRUE(bus_.ok());
    auto producer = bus_->producer("shop");
    ASSERT_TRUE(producer.ok()) << producer.status().to_string();
    auto type = (*producer)->resolve("shop.order.placed");
    ASSERT_TRUE(type.ok());
    for (int i = 0; i < 40; ++i)
      ASSERT_EQ((*producer)->publish(*type, testing::tag("order-", i), "{\"n\":1}"),
                core::PublishResult::kOk);
    auto consumer = bus_->consumer("billing");
    ASSERT_TRUE(consumer.ok());
    std::size_t seen = 0;
    while ((*consumer)->poll([&](const core::Event&) { ++seen; }).delivered) {}
    ASSERT_EQ(seen, 40u);
    (*consumer)->commit();
    // The busiest partition: the slot scribbles below need a few sequences in it.
    for (std::uint32_t p = 0; p < kPartitions; ++p)
      if (head(p) > head(busy_)) busy_ = p;
    ASSERT_GE(head(busy_), 5u);
  }

  std::uint64_t head(std::uint32_t p) const {
    return bus_->ring().partition(p).head.load(std::memory_order_relaxed);
  }
  // Offset in the segment of something inside the mapping.
  std::size_t offset_of(const void* p) const {
    return static_cast<std::size_t>(static_cast<const std::byte*>(p) -
                                    reinterpret_cast<const std::byte*>(&bus_->header()));
  }
  template <typename T>
  void poke(std::size_t offset, T value) {
    const int fd = ::open(Bus::object_path(bus_.name()).c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pwrite(fd, &value, sizeof value, static_cast<off_t>(offset)),
              static_cast<ssize_t>(sizeof value));
    ::close(fd);
  }
  void poke_bytes(std::size_t offset, const std::string& bytes) {
    const int fd = ::open(Bus::object_path(bus_.name()).c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset)),
              static_cast<ssize_t>(bytes.size()));
    ::close(fd);
  }
  std::size_t slot_at(std::uint32_t p, std::uint64_t k) const {
    return offset_of(&bus_->ring().slot(p, k));
  }
  std::vector<std::string> findings(std::size_t max = 1000) {
    auto f = Bus::check(bus_.name(), max);
    EXPECT_TRUE(f.ok()) << f.status().to_string();
    return f.ok() ? *f : std::vector<std::string>{"check failed"};
  }
  std::string partition_name() const { return "partition " + std::to_string(busy_); }

  TestBus bus_{small_options(kPartitions, kSlots)};
  std::uint32_t busy_ = 0;
};

TEST_F(CheckTest, ASoundBusHasNoFindings) { EXPECT_THAT(findings(), IsEmpty()); }

TEST_F(CheckTest, HeadBehindAConsumerCursorNamesPartitionHeadConsumerAndCursor) {
  const std::uint64_t cursor = head(busy_);
  poke<std::uint64_t>(offset_of(&bus_->ring().partition(busy_)), 1);
  EXPECT_THAT(findings(), Contains(partition_name() + ": head 1 is behind consumer 'billing' cursor " +
                                   std::to_string(cursor)));
}

TEST_F(CheckTest, MoreAbandonedThanClaimedIsReported) {
  poke<std::uint64_t>(offset_of(&bus_->ring().partition(busy_).abandoned), 1000);
  EXPECT_THAT(findings(), Contains(partition_name() + ": abandoned count 1000 exceeds head " +
                                   std::to_string(head(busy_)) +
                                   " (more slots abandoned than ever claimed)"));
}

TEST_F(CheckTest, AnExclusiveOwnerThatNamesNoLaneIsReported) {
  const std::uint32_t lanes = bus_->ring().config().producer_lanes;
  poke<std::uint32_t>(offset_of(&bus_->ring().partition(busy_).exclusive_owner), lanes);
  EXPECT_THAT(findings(), IsEmpty()) << "the last lane (index lanes - 1) is a valid owner";
  poke<std::uint32_t>(offset_of(&bus_->ring().partition(busy_).exclusive_owner), lanes + 1);
  EXPECT_THAT(findings(), Contains(partition_name() + ": exclusive owner " +
                                   std::to_string(lanes + 1) + " names no producer lane (" +
                                   std::to_string(lanes) + " lanes)"));
}

TEST_F(CheckTest, ABiasedOwnerThatNamesNoLaneIsReported) {
  const std::uint32_t lanes = bus_->ring().config().producer_lanes;
  const std::size_t at = offset_of(&bus_->ring().partition(busy_).exclusive_owner);
  poke<std::uint32_t>(at, core::kBiasedOwner | lanes);
  EXPECT_THAT(findings(), IsEmpty()) << "a bias of the last lane is a valid mark";
  poke<std::uint32_t>(at, core::kBiasedOwner | (lanes + 1));
  EXPECT_THAT(findings(),
              Contains(partition_name() + ": biased owner " + std::to_string(lanes + 1) +
                       " names no producer lane (" + std::to_string(lanes) + " lanes)"));
  poke<std::uint32_t>(at, core::kBiasedOwner);
  EXPECT_THAT(findings(), Contains(partition_name() + ": biased owner 0 names no producer lane (" +
                                   std::to_string(lanes) + " lanes)"));
  poke<std::uint32_t>(at, core::kBiasedOwner | core::kRevokingOwner | lanes);
  EXPECT_THAT(findings(), IsEmpty()) << "a bias being revoked is a valid mark";
  poke<std::uint32_t>(at, core::kRevokingOwner | 1);  // revoking, but no bias
  EXPECT_THAT(
      findings(),
      Contains(partition_name() + ": exclusive owner " + std::to_string(core::kRevokingOwner | 1) +
               " names no producer lane (" + std::to_string(lanes) + " lanes)"));
}

TEST_F(CheckTest, ALaneIntentMarkedSoleIsCountedWithoutItsMark) {
  core::ProducerLane& lane = bus_->ring().lane(0);
  const std::size_t base = offset_of(&lane.state);
  poke<std::uint32_t>(base + offsetof(core::ProducerLane, state), 1);
  poke<std::uint32_t>(base + offsetof(core::ProducerLane, partition), busy_);
  poke<std::uint32_t>(base + offsetof(core::ProducerLane, count), core::kSoleClaim | 1);
  EXPECT_THAT(findings(), Not(Contains(HasSubstr("producer lane 0"))))
      << "a one-slot intent of a biased holder is a valid intent";
  const std::uint32_t slots = bus_->ring().config().slots_per_partition;
  poke<std::uint32_t>(base + offsetof(core::ProducerLane, count), core::kSoleClaim | (slots + 1));
  EXPECT_THAT(findings(),
              Contains("producer lane 0: claims " + std::to_string(slots + 1) +
                       " slots, more than the " + std::to_string(slots) + " of a partition"));
}

TEST_F(CheckTest, SlotWordsWithUnknownStateMisplacedOrFutureSequencesAreReported) {
  const std::string at = partition_name() + " slot ";
  poke<std::uint64_t>(slot_at(busy_, 0), 7);  // sequence 0, state 7
  poke<std::uint64_t>(slot_at(busy_, 1), core::slot_word(2, core::SlotState::kPublished));
  poke<std::uint64_t>(slot_at(busy_, 3), core::slot_word(head(busy_) + kSlots * 4 + 3,
                                                         core::SlotState::kAbandoned));
  poke<std::uint64_t>(slot_at(busy_, kSlots - 1), 40);  // EMPTY carrying sequence 5
  const auto f = findings();
  EXPECT_THAT(f, Contains(at + "0: word 0x7 has unknown state 7"));
  EXPECT_THAT(f, Contains(at + "1: holds sequence 2, which belongs in slot 2"));
  EXPECT_THAT(f, Contains(at + "3: ABANDONED sequence " +
                          std::to_string(head(busy_) + kSlots * 4 + 3) +
                          " is at or beyond the head " + std::to_string(head(busy_))));
  EXPECT_THAT(f, Contains(at + std::to_string(kSlots - 1) +
                          ": word 0x28 is EMPTY but carries sequence 5"));
}

TEST_F(CheckTest, PublishedSlotsWithBadEnvelopesOrWritersAreReported) {
  const std::string at = partition_name() + " slot ";
  // Slot 0: a payload byte flipped. Slot 1: a length beyond the slot. Slot 2: writer id 0.
  // Slot 3: elided bits no layout defines. Slot 4: a length shorter than the stored header.
  const core::SlotHeader& slot0 = bus_->ring().slot(busy_, 0);
  ASSERT_EQ(slot0.elided, core::kCompactElideMask) << "events with default ids elide every group";
  poke<std::uint8_t>(slot_at(busy_, 0) + core::kSlotHeaderBytes +
                         core::stored_header_bytes(slot0.elided) + 2,
                     0xAA);
  poke<std::uint32_t>(slot_at(busy_, 1) + offsetof(core::SlotHeader, envelope_bytes), 99999);
  poke<std::uint16_t>(slot_at(busy_, 2) + offsetof(core::SlotHeader, writer), 0);
  poke<std::uint16_t>(slot_at(busy_, 3) + offsetof(core::SlotHeader, elided), 0x50);
  poke<std::uint32_t>(slot_at(busy_, 4) + offsetof(core::SlotHeader, envelope_bytes), 39);
  const auto f = findings();
  EXPECT_THAT(f, Contains(at + "0 (sequence 0): envelope is invalid: envelope checksum mismatch"));
  EXPECT_THAT(f, Contains(at + "1 (sequence 1): envelope_bytes 99999 exceeds the " +
                          std::to_string(512 - core::kSlotHeaderBytes) + " bytes a slot holds"));
  EXPECT_THAT(f, Contains(at + "2 (sequence 2): writer id 0 is outside 1..16"));
  EXPECT_THAT(f, Contains(at + "3 (sequence 3): elided bits 0x50 name header words no layout "
                               "elides"));
  EXPECT_THAT(f, Contains(at + "4 (sequence 4): envelope_bytes 39 cannot hold the 40 header "
                               "bytes a slot with elided bits 0x3f stores, or leaves a body "
                               "longer than a slot's envelope"));
}

TEST_F(CheckTest, EventsOfAnUnregisteredTypeOrProducerAreReported) {
  const shm::SegmentHeader& h = bus_->header();
  poke<std::uint32_t>(h.types_offset, 0);      // type 1: free
  poke<std::uint32_t>(h.producers_offset, 0);  // producer 1: free
  const auto f = findings();
  EXPECT_THAT(f, Contains(partition_name() + " slot 0 (sequence 0): type id 1 is not a registered event type"));
  EXPECT_THAT(f, Contains(partition_name() + " slot 0 (sequence 0): producer id 1 is not a registered producer"));
}

TEST_F(CheckTest, RegistryEntriesWithBadStatesNamesOrDuplicatesAreReported) {
  const shm::SegmentHeader& h = bus_->header();
  auto producer = bus_->producer("ops");
  ASSERT_TRUE(producer.ok());
  ASSERT_TRUE((*producer)->resolve("ops.job.done").ok());  // type 2
  poke<std::uint32_t>(h.producers_offset + 2 * sizeof(shm::ProducerEntry), 9);  // producer 3
  poke_bytes(h.producers_offset + sizeof(shm::ProducerEntry) + offsetof(shm::ProducerEntry, service),
             std::string(64, 'x'));  // producer 2 ("ops"): unterminated
  poke_bytes(h.types_offset + sizeof(shm::TypeEntry) + offsetof(shm::TypeEntry, name),
             std::string("shop.order.placed") + '\0');  // type 2 renamed onto type 1
  poke<std::uint8_t>(h.types_offset + offsetof(shm::TypeEntry, classification), 9);
  poke_bytes(h.consumers_offset + offsetof(shm::ConsumerEntry, name), std::string("bad name!") + '\0');
  const auto f = findings();
  EXPECT_THAT(f, Contains("producer 3: state 9 is not free (0), active (1) or retired (2)"));
  EXPECT_THAT(f, Contains("producer 2: service name is not NUL-terminated within its 64 bytes"));
  EXPECT_THAT(f, Contains("type 2: event name 'shop.order.placed' is registered twice"));
  EXPECT_THAT(f, Contains("type 1 'shop.order.placed': classification 9 is not one of 0..3"));
  EXPECT_THAT(f, Contains(HasSubstr("consumer index 0: service name 'bad name!'")));
}

TEST_F(CheckTest, GatesAndProducerLanesThatPointNowhereAreReported) {
  const core::RingRegion& ring = bus_->ring();
  poke<std::uint32_t>(offset_of(&ring.gate(5)), 1);  // attached, but no consumer 5
  poke<std::uint32_t>(offset_of(&ring.gate(6)), 4);
  poke<std::uint32_t>(offset_of(&ring.lane(1).state), 1);
  poke<std::uint32_t>(offset_of(&ring.lane(1).count), 1);
  poke<std::uint32_t>(offset_of(&ring.lane(1).partition), 99);
  poke<std::uint32_t>(offset_of(&ring.lane(2).state), 3);
  const auto f = findings();
  EXPECT_THAT(f, Contains("consumer index 5: gate says attached but no consumer is registered at this index"));
  EXPECT_THAT(f, Contains("consumer index 6: gate state 4 is not free (0), attached (1) or detached (2)"));
  EXPECT_THAT(f, Contains("producer lane 1: claims partition 99 of 4"));
  EXPECT_THAT(f, Contains("producer lane 2: state 3 is not free (0) or in use (1)"));
}

TEST_F(CheckTest, ABadMagicOrLayoutVersionIsTheOnlyFinding) {
  poke<std::uint32_t>(offsetof(shm::SegmentHeader, layout_version), 9);
  EXPECT_THAT(findings(), ElementsAre("header: segment layout version 9, this build reads version " +
                                      std::to_string(shm::kSegmentLayoutVersion)));
  poke<std::uint64_t>(0, 0x1122334455667788ull);
  EXPECT_THAT(findings(), ElementsAre("header: magic is 0x1122334455667788, not 0x3142474e49525645 "
                                      "(not an evring segment)"));
}

TEST_F(CheckTest, HeaderSizesOffsetsAndCountsThatDisagreeAreReported) {
  const shm::SegmentHeader& h = bus_->header();
  const std::uint64_t consumers = h.consumers_offset, bytes = h.segment_bytes;
  poke<std::uint64_t>(offsetof(shm::SegmentHeader, segment_bytes), bytes + 4096);
  poke<std::uint64_t>(offsetof(shm::SegmentHeader, consumers_offset), consumers + 64);
  poke<std::uint32_t>(offsetof(shm::SegmentHeader, ready), 0);
  auto f = findings();
  EXPECT_THAT(f, Contains("header: segment_bytes is " + std::to_string(bytes + 4096) +
                          " but the segment has " + std::to_string(bytes) + " bytes"));
  EXPECT_THAT(f, Contains("header: consumers_offset is " + std::to_string(consumers + 64) +
                          ", expected " + std::to_string(consumers) + " from the registry sizes"));
  EXPECT_THAT(f, Contains(HasSubstr("header: ready is 0, not 1")));
  poke<std::uint32_t>(offsetof(shm::SegmentHeader, max_consumers), 0);
  EXPECT_THAT(findings(), Contains("header: max_consumers is 0, outside 1..256"));
}

// The bytes segment_fuzz found: a priority-protect kind with a ceiling made glibc's
// pthread_mutex_timedlock abort the process. The check names the word, and every registry
// update refuses with a corruption error instead of locking, leaving the registry as it was.
TEST_F(CheckTest, AScribbledRegistryMutexKindIsReportedAndNeverLocked) {
  const std::size_t kind_at =
      offsetof(shm::SegmentHeader, registry_mutex) + offsetof(__pthread_mutex_s, __kind);
  const int expected = shm::expected_registry_mutex_kind();
  ASSERT_EQ(shm::registry_mutex_kind(bus_->header()), expected);
  poke<std::int32_t>(kind_at, 0x00ae0040);
  EXPECT_THAT(findings(),
              ElementsAre("header: registry mutex kind is " + std::to_string(0x00ae0040) +
                          ", not " + std::to_string(expected) +
                          " (a process-shared robust mutex): registry updates are refused"));
  auto rw = Bus::open(bus_.name());
  ASSERT_TRUE(rw.ok()) << rw.status().to_string();
  const std::size_t consumers = (*rw)->consumers().size(), producers = (*rw)->producers().size();
  auto consumer = (*rw)->consumer("audit");
  ASSERT_FALSE(consumer.ok());
  EXPECT_EQ(consumer.status().code(), Code::kCorruption);
  EXPECT_THAT(
      consumer.status().message(),
      HasSubstr("the registry lock of bus '" + bus_.name() + "' is corrupt (its kind word is " +
                std::to_string(0x00ae0040) + ", not " + std::to_string(expected) + ")"));
  auto producer = (*rw)->producer("ledger");
  ASSERT_FALSE(producer.ok());
  EXPECT_EQ(producer.status().code(), Code::kCorruption);
  EXPECT_EQ(bus_->remove_consumer("billing").code(), Code::kCorruption);
  EXPECT_EQ((*rw)->consumers().size(), consumers);
  EXPECT_EQ((*rw)->producers().size(), producers);
  // Restored, the same calls go through: nothing was left half-locked.
  poke<std::int32_t>(kind_at, expected);
  EXPECT_THAT(findings(), IsEmpty());
  EXPECT_TRUE((*rw)->consumer("audit").ok());
}

TEST_F(CheckTest, ARingHeaderThatContradictsItselfIsReported) {
  poke<std::uint32_t>(bus_->header().ring_offset + offsetof(core::RingHeader, slots_per_partition), 3);
  EXPECT_THAT(findings(), Contains(HasSubstr("ring header: ring header is invalid")));
}

TEST_F(CheckTest, ATruncatedSegmentIsReportedNotRead) {
  bus_.unmap();
  ASSERT_EQ(::truncate(Bus::object_path(bus_.name()).c_str(), 512), 0);
  EXPECT_THAT(findings(), ElementsAre("header: segment is 512 bytes, smaller than the 1024-byte "
                                      "segment header"));
}

TEST_F(CheckTest, FindingsAreCappedWithACountOfTheRest) {
  for (std::uint64_t k = 0; k < kSlots; ++k) poke<std::uint64_t>(slot_at(busy_, k), 6);
  const auto f = findings(3);
  ASSERT_EQ(f.size(), 4u);
  EXPECT_EQ(f[3], "... and " + std::to_string(kSlots - 3) + " more findings not listed");
}

TEST_F(CheckTest, MissingBusAndBadNameAreErrorsNotFindings) {
  auto missing = Bus::check("no-such-bus-check-test");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), Code::kNotFound);
  auto bad = Bus::check("bad/name");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), Code::kInvalidArgument);
}

// Checked while a producer laps the ring and a consumer reads: a live bus is not corrupt.
TEST(CheckLiveTest, ABusBeingPublishedToAndReadHasNoFindings) {
  TestBus bus(small_options(2, 16, core::Overflow::kOverwrite));
  ASSERT_TRUE(bus.ok());
  auto consumer = bus->consumer("reader");
  ASSERT_TRUE(consumer.ok());
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    auto producer = bus->producer("live").value();
    for (int i = 0; !stop.load(std::memory_order_relaxed); ++i) {
      // Types registered while the check runs, too.
      auto type = producer->resolve(i % 200 < 20 ? testing::tag("live.type.t", i % 200) : "live.type.t0");
      if (type.ok()) (void)producer->publish(*type, testing::tag("k", i % 7), "{}");
    }
  });
  auto heads = [&] {
    return bus->ring().partition(0).head.load() + bus->ring().partition(1).head.load();
  };
  for (int i = 0; i < 5000 && heads() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::size_t checks = 0, delivered = 0;
  for (; checks < 200 || heads() < 1000; ++checks) {
    auto f = Bus::check(bus.name());
    ASSERT_TRUE(f.ok());
    ASSERT_THAT(*f, IsEmpty()) << "check " << checks;
    delivered += (*consumer)->poll([](const core::Event&) {}).delivered;
  }
  stop = true;
  writer.join();
  EXPECT_GE(heads(), 1000u) << "the 16-slot partitions wrapped many times during the checks";
  EXPECT_GT(delivered, 0u);
}

// A copy of the segment in private memory: scribbled at random places and lengths, then fully
// random. The check reads only inside the span (ASan would catch a stray read) and never traps.
TEST_F(CheckTest, ArbitraryBytesNeverCrashTheCheck) {
  const std::size_t size = bus_->header().segment_bytes;
  std::unique_ptr<std::byte, decltype(&std::free)> copy(
      static_cast<std::byte*>(std::aligned_alloc(4096, size)), &std::free);
  const std::byte* live = reinterpret_cast<const std::byte*>(&bus_->header());
  std::memcpy(copy.get(), live, size);
  ASSERT_THAT(shm::check_segment(std::span<const std::byte>(copy.get(), size)), IsEmpty());
  std::mt19937_64 rng(42);
  for (int round = 0; round < 200; ++round) {
    std::memcpy(copy.get(), live, size);
    for (int n = 0; n < 8; ++n) {
      const std::size_t at = rng() % size, len = std::min<std::size_t>(1 + rng() % 64, size - at);
      for (std::size_t i = 0; i < len; ++i) copy.get()[at + i] = static_cast<std::byte>(rng());
    }
    (void)shm::check_segment(std::span<const std::byte>(copy.get(), size));
  }
  for (std::size_t i = 0; i < size; ++i) copy.get()[i] = static_cast<std::byte>(rng());
  EXPECT_THAT(shm::check_segment(std::span<const std::byte>(copy.get(), size)), Contains(HasSubstr("magic")));
  // The header kept, everything after it random.
  std::memcpy(copy.get(), live, shm::kSegmentHeaderBytes);
  EXPECT_FALSE(shm::check_segment(std::span<const std::byte>(copy.get(), size)).empty());
  EXPECT_THAT(shm::check_segment(std::span<const std::byte>(copy.get() + 8, size - 8)),
              ElementsAre("segment: mapping is not 64-byte aligned (internal error)"));
}

}  // namespace
}  // namespace evring
