// A bus left by another evring build (another segment layout version) cannot be reused: create
// over it is refused naming both versions and `evring rm`, and list() reports it as foreign.
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <string>

#include "evring/shm/bus.h"
#include "gmock/gmock.h"
#include "test_bus.h"

namespace evring {
namespace {

using ::testing::HasSubstr;
using testing::BusNameGuard;
using testing::small_options;
using testing::unique_bus_name;

// Overwrites `value` at `offset` of the bus object, as another build or a scribbler would.
void write_u32(const std::string& bus, std::size_t offset, std::uint32_t value) {
  const int fd = ::open(Bus::object_path(bus).c_str(), O_WRONLY);
  ASSERT_GE(fd, 0) << Bus::object_path(bus);
  ASSERT_EQ(::pwrite(fd, &value, sizeof value, static_cast<off_t>(offset)),
            static_cast<ssize_t>(sizeof value));
  ::close(fd);
}

// A stale bus (creator gone, nobody attached) whose segment header says layout `version`.
void make_stale_bus(const std::string& name, std::uint32_t version) {
  auto bus = Bus::create(name, small_options());
  ASSERT_TRUE(bus.ok()) << bus.status().to_string();
  bus->reset();
  write_u32(name, offsetof(shm::SegmentHeader, layout_version), version);
}

TEST(StaleBusTest, CreateOverABusOfAnotherLayoutVersionNamesBothVersionsAndHowToRemoveIt) {
  BusNameGuard guard(unique_bus_name());
  make_stale_bus(guard.name(), shm::kSegmentLayoutVersion + 7);
  auto again = Bus::create(guard.name(), small_options());
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), Code::kLayoutMismatch);
  const std::string m = again.status().message();
  EXPECT_THAT(m, HasSubstr("bus '" + guard.name() + "' already exists"));
  EXPECT_THAT(m, HasSubstr("segment layout version " +
                           std::to_string(shm::kSegmentLayoutVersion + 7)));
  EXPECT_THAT(m, HasSubstr("this build creates version " +
                           std::to_string(shm::kSegmentLayoutVersion)));
  EXPECT_THAT(m, HasSubstr("`evring rm " + guard.name() + "`"));
  // Refused, not replaced: the foreign segment is untouched until someone removes it.
  EXPECT_TRUE(testing::object_exists(guard.name()));
  ASSERT_TRUE(Bus::remove(guard.name()).is_ok());
  EXPECT_TRUE(Bus::create(guard.name(), small_options()).ok());
}

TEST(StaleBusTest, CreateOverABusOfAnotherRingLayoutVersionNamesTheRingLayout) {
  BusNameGuard guard(unique_bus_name());
  auto bus = Bus::create(guard.name(), small_options());
  ASSERT_TRUE(bus.ok());
  bus->reset();
  write_u32(guard.name(), offsetof(shm::SegmentHeader, ring_layout_version),
            core::kRingLayoutVersion + 1);
  auto again = Bus::create(guard.name(), small_options());
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), Code::kLayoutMismatch);
  EXPECT_THAT(again.status().message(),
              HasSubstr("ring layout version " + std::to_string(core::kRingLayoutVersion + 1)));
  EXPECT_THAT(again.status().message(), HasSubstr("`evring rm " + guard.name() + "`"));
}

TEST(StaleBusTest, CreateOverABusOfThisVersionStillSaysAlreadyExists) {
  BusNameGuard guard(unique_bus_name());
  auto bus = Bus::create(guard.name(), small_options());
  ASSERT_TRUE(bus.ok());
  auto again = Bus::create(guard.name(), small_options());
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), Code::kAlreadyExists);
  EXPECT_EQ(again.status().message(), "bus '" + guard.name() + "' already exists");
}

TEST(StaleBusTest, CreateOverAnObjectThatIsNotAnEvringSegmentSaysAlreadyExists) {
  BusNameGuard guard(unique_bus_name());
  make_stale_bus(guard.name(), 1);
  write_u32(guard.name(), 0, 0xdeadbeef);  // the magic: no longer an evring segment
  auto again = Bus::create(guard.name(), small_options());
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), Code::kAlreadyExists);
}

TEST(StaleBusTest, ListShowsABusOfAnotherLayoutVersionAsForeignInsteadOfFailing) {
  BusNameGuard foreign(unique_bus_name("-foreign"));
  BusNameGuard current(unique_bus_name("-current"));
  make_stale_bus(foreign.name(), shm::kSegmentLayoutVersion + 1);
  auto bus = Bus::create(current.name(), small_options());
  ASSERT_TRUE(bus.ok());
  bool saw_foreign = false, saw_current = false;
  for (const BusSummary& s : Bus::list()) {
    if (s.name == foreign.name()) {
      saw_foreign = true;
      EXPECT_TRUE(s.foreign_version());
      EXPECT_EQ(s.layout_version, shm::kSegmentLayoutVersion + 1);
      EXPECT_EQ(s.status.code(), Code::kLayoutMismatch);
      EXPECT_FALSE(s.stale());  // nothing in it can be read by this build
    } else if (s.name == current.name()) {
      saw_current = true;
      EXPECT_FALSE(s.foreign_version());
      EXPECT_EQ(s.layout_version, shm::kSegmentLayoutVersion);
      EXPECT_TRUE(s.status.is_ok());
    }
  }
  EXPECT_TRUE(saw_foreign);
  EXPECT_TRUE(saw_current);
}

}  // namespace
}  // namespace evring
