// How a bus is mapped: huge pages on request (or a clear refusal that leaves nothing behind),
// and page tables filled at open() so that no publish or poll pays a first-touch fault.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <utility>
#include <set>
#include <string>

#include "shm/test_bus.h"

namespace evring::testing {
namespace {

TEST(BusMappingTest, HugePagesAreUsedWhereTheKernelAllowsThemAndRefusedClearlyElsewhere) {
  BusOptions o = small_options();
  o.huge_pages = true;
  BusNameGuard guard(unique_bus_name());
  auto bus = Bus::create(guard.name(), o);
  const std::string setting = Bus::shmem_huge_pages_setting();
  const std::set<std::string> known{"always", "within_size", "advise", "never",
                                    "deny",   "force",       "unavailable"};
  EXPECT_TRUE(known.count(setting)) << "unparsed shmem_enabled choice '" << setting << "'";
  if (setting == "never" || setting == "deny" || setting == "unavailable") {
    ASSERT_FALSE(bus.ok()) << "shmem THP is '" << setting << "'";
    EXPECT_EQ(bus.status().code(), Code::kUnavailable);
    const std::string m = bus.status().message();
    EXPECT_NE(m.find("huge pages refused for bus '" + guard.name() + "'"), std::string::npos) << m;
    EXPECT_NE(m.find("shmem_enabled is '" + setting + "'"), std::string::npos) << m;
    EXPECT_FALSE(object_exists(guard.name())) << "a refused create leaves nothing behind";
  } else {
    ASSERT_TRUE(bus.ok()) << bus.status().to_string();
    EXPECT_TRUE(Bus::open(guard.name()).ok());
  }
}

// One read per page of [base, base + size). Not instrumented: under AddressSanitizer every
// instrumented read also touches its shadow memory, whose pages fault in on first use.
__attribute__((no_sanitize("address", "thread"))) std::byte touch_pages(
    const volatile std::byte* base, std::size_t size, std::size_t page) {
  std::byte sink{};
  for (std::size_t off = 0; off < size; off += page) sink ^= base[off];
  return sink;
}

long minor_faults() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_minflt;
}

// A process that opens an existing bus then touches every page of it takes (almost) no minor
// faults: open() filled its page tables. 16 MiB of ring = 4096 pages, so a lazy mapping would
// fault thousands of times.
TEST(BusMappingTest, OpenFillsThePageTablesOfTheWholeSegment) {
  BusOptions o = small_options(4, 4096);
  o.ring.slot_bytes = 1024;
  TestBus bus(o);
  ASSERT_TRUE(bus.ok());
  const std::string name = bus.name();
  const pid_t child = fork_child([&] {
    auto opened = Bus::open(name);
    if (!opened.ok()) return 2;
    const auto* base = reinterpret_cast<const volatile std::byte*>(&(*opened)->header());
    const std::size_t size = (*opened)->header().segment_bytes;
    const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    const long before = minor_faults();
    (void)touch_pages(base, size, page);
    const long faults = minor_faults() - before;
    std::printf("pages %zu, minor faults while touching them %ld\n", size / page, faults);
    return size / page >= 4096 && faults < 64 ? 0 : 3;
  });
  EXPECT_EQ(wait_child(child), 0) << "3: touching the opened bus faulted (see stdout)";
}

// Registry entries hold atomics (the latency histogram's counters among them): a header whose
// registry offset is not 64-aligned is refused as corrupt, not mapped into misaligned atomics.
// The type table is read as TypeEntry (8-byte aligned): the segment fuzzer found a types_offset
// 7 bytes off read through a misaligned reference.
TEST(BusMappingTest, OpenRefusesMisalignedRegistryOffsets) {
  for (auto [field, shift] : {std::pair{offsetof(shm::SegmentHeader, producers_offset), 8},
                              std::pair{offsetof(shm::SegmentHeader, consumers_offset), 8},
                              std::pair{offsetof(shm::SegmentHeader, types_offset), 7}}) {
    TestBus bus;
    ASSERT_TRUE(bus.ok());
    std::uint64_t offset = 0;
    std::memcpy(&offset, reinterpret_cast<const std::byte*>(&bus->header()) + field, sizeof offset);
    offset += shift;
    std::memcpy(reinterpret_cast<std::byte*>(const_cast<shm::SegmentHeader*>(&bus->header())) + field,
                &offset, sizeof offset);
    auto r = Bus::open(bus.name());
    ASSERT_FALSE(r.ok()) << field;
    EXPECT_EQ(r.status().code(), Code::kCorruption) << r.status().to_string();
    EXPECT_NE(r.status().message().find("misaligned"), std::string::npos)
        << r.status().to_string();
  }
}

}  // namespace
}  // namespace evring::testing
