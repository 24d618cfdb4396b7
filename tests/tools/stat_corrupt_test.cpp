// `evring stat` on a corrupt bus lists what is corrupt (text and --json "corruption") and exits
// with the corruption code (7); a sound bus reports an empty "corruption" array.
#include <fcntl.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>

#include "cli_fixture.h"

namespace evring_cli_test {
namespace {

class cli_stat_corrupt : public CliTest {
 protected:
  // A bus with 12 events that consumer 'billing' read and committed; returns the partition
  // with the most events and its head.
  void populate() {
    create({"--partitions", "2", "--slots", "16"});
    auto bus = evring::Bus::open(bus_);
    ASSERT_TRUE(bus.ok()) << bus.status().to_string();
    auto producer = (*bus)->producer("shop");
    ASSERT_TRUE(producer.ok());
    auto type = (*producer)->resolve("shop.order.placed");
    ASSERT_TRUE(type.ok());
    for (int i = 0; i < 12; ++i)
      ASSERT_EQ((*producer)->publish(*type, numbered("order-", i), "{}"),
                evring::core::PublishResult::kOk);
    auto consumer = (*bus)->consumer("billing");
    ASSERT_TRUE(consumer.ok());
    while ((*consumer)->poll([](const evring::core::Event&) {}).delivered) {}
    (*consumer)->commit();
    const evring::core::RingRegion& ring = (*bus)->ring();
    for (std::uint32_t p = 0; p < 2; ++p) {
      const std::uint64_t h = ring.partition(p).head.load(std::memory_order_relaxed);
      if (h > head_) head_ = h, busy_ = p;
    }
    head_offset_ = static_cast<std::size_t>(
        reinterpret_cast<const std::byte*>(&ring.partition(busy_)) -
        reinterpret_cast<const std::byte*>(&(*bus)->header()));
  }
  void set_head(std::uint64_t head) {
    const int fd = ::open(evring::Bus::object_path(bus_).c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pwrite(fd, &head, sizeof head, static_cast<off_t>(head_offset_)),
              static_cast<ssize_t>(sizeof head));
    ::close(fd);
  }
  std::string finding() const {
    return "partition " + std::to_string(busy_) + ": head 1 is behind consumer 'billing' cursor " +
           std::to_string(head_);
  }

  std::uint32_t busy_ = 0;
  std::uint64_t head_ = 0;
  std::size_t head_offset_ = 0;
};

TEST_F(cli_stat_corrupt, SoundBusHasAnEmptyCorruptionArray) {
  populate();
  json s = stat();
  ASSERT_TRUE(s.contains("corruption"));
  EXPECT_EQ(s["corruption"], json::array());
  EXPECT_EQ(s["totals"]["published"], 12);
}

TEST_F(cli_stat_corrupt, TextListsEachFindingAndExitsWithTheCorruptionCode) {
  populate();
  ASSERT_GE(head_, 2u);
  set_head(1);
  Output o = run({"stat", bus_});
  EXPECT_EQ(o.code, 7);
  EXPECT_EQ(o.out.rfind("bus '" + bus_ + "' is corrupt:\n", 0), 0u) << o.out;
  EXPECT_NE(o.out.find("\n  " + finding() + "\n"), std::string::npos) << o.out;
  expect_one_error_line(o, "evring: corruption: bus '" + bus_ + "': ");
  EXPECT_NE(o.err.find("found (listed on stdout)"), std::string::npos) << o.err;
}

TEST_F(cli_stat_corrupt, JsonGivesTheFindingsAsAnArray) {
  populate();
  set_head(1);
  Output o = run({"stat", bus_, "--json"});
  EXPECT_EQ(o.code, 7);
  json j = json::parse(o.out);
  EXPECT_EQ(j["bus"], bus_);
  EXPECT_EQ(j["ok"], false);
  ASSERT_TRUE(j["corruption"].is_array());
  bool found = false;
  for (const json& f : j["corruption"]) found |= f == finding();
  EXPECT_TRUE(found) << j.dump();
  // Every sequence the head no longer covers is listed too: one finding per slot past it.
  EXPECT_EQ(j["corruption"].size(), 1 + (head_ - 1)) << j.dump();
}

// An exclusive mark that names no lane (core/ring_layout.h: lane + 1) is a finding, and top
// says so instead of reading a lane that is not there.
TEST_F(cli_stat_corrupt, AnExclusiveMarkNamingNoLaneIsListedAndShownAsSuch) {
  populate();
  const std::uint32_t mark = 5000;
  const int fd = ::open(evring::Bus::object_path(bus_).c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, &mark, sizeof mark,
                     static_cast<off_t>(head_offset_ +
                                        offsetof(evring::core::PartitionHeader, exclusive_owner))),
            static_cast<ssize_t>(sizeof mark));
  ::close(fd);
  Output o = run({"stat", bus_, "--json"});
  EXPECT_EQ(o.code, 7);
  json j = json::parse(o.out);
  bool found = false;
  for (const json& f : j["corruption"])
    found |= f.get<std::string>().find("exclusive owner 5000 names no producer lane") !=
             std::string::npos;
  EXPECT_TRUE(found) << j.dump();
  // top reads a live bus without checking it first: it shows the mark, not a lane past the end.
  Output top = run({"top", bus_, "--iterations", "1"});
  EXPECT_EQ(top.code, 0) << top.err;
  const std::string row = "\n" + std::to_string(busy_) + " ";
  const std::size_t at = top.out.find(row);
  ASSERT_NE(at, std::string::npos) << top.out;
  const std::string line = top.out.substr(at + 1, top.out.find('\n', at + 1) - at - 1);
  EXPECT_EQ(line.substr(line.size() - 10), "lane 4999?") << line;
}

TEST_F(cli_stat_corrupt, ABusThatOpenRefusesStillGetsItsFindingsListed) {
  create();
  const std::uint64_t magic = 0x0102030405060708ull;
  const int fd = ::open(evring::Bus::object_path(bus_).c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, &magic, sizeof magic, 0), static_cast<ssize_t>(sizeof magic));
  ::close(fd);
  Output o = run({"stat", bus_, "--json"});
  EXPECT_EQ(o.code, 7);
  EXPECT_EQ(json::parse(o.out)["corruption"],
            json::array({"header: magic is 0x102030405060708, not 0x3142474e49525645 (not an "
                         "evring segment)"}));
}

TEST_F(cli_stat_corrupt, AMissingBusIsStillNotFound) {
  Output o = run({"stat", bus_});
  EXPECT_EQ(o.code, 3);
  expect_one_error_line(o, "does not exist");
}

}  // namespace
}  // namespace evring_cli_test
