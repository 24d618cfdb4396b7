// `evring create` over a bus of another layout version, and `evring ls` / `stat` / `rm` on it.
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>

#include "cli_fixture.h"
#include "evring/shm/segment_layout.h"

namespace evring_cli_test {
namespace {

using cli_stale = CliTest;

constexpr std::uint32_t kForeign = evring::shm::kSegmentLayoutVersion + 1;

// Rewrites the layout version in the segment header, as a bus of another evring build has it.
void set_layout_version(const std::string& bus, std::uint32_t version) {
  const int fd = ::open(evring::Bus::object_path(bus).c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, &version, sizeof version, offsetof(evring::shm::SegmentHeader, layout_version)),
            static_cast<ssize_t>(sizeof version));
  ::close(fd);
}

TEST_F(cli_stale, CreateOverAForeignVersionBusIsRefusedNamingBothVersionsAndRm) {
  create();
  set_layout_version(bus_, kForeign);
  Output o = run({"create", bus_});
  EXPECT_EQ(o.code, 7) << o.err;
  expect_one_error_line(o, "bus '" + bus_ + "' already exists with segment layout version " +
                               std::to_string(kForeign) + " (this build creates version " +
                               std::to_string(evring::shm::kSegmentLayoutVersion) + ")");
  EXPECT_NE(o.err.find("remove it with `evring rm " + bus_ + "`"), std::string::npos) << o.err;
  // The way out works: rm, then create.
  o = run({"rm", bus_});
  EXPECT_EQ(o.code, 0) << o.err;
  o = run({"create", bus_});
  EXPECT_EQ(o.code, 0) << o.err;
}

TEST_F(cli_stale, LsShowsAForeignVersionBusInsteadOfFailing) {
  create();
  set_layout_version(bus_, kForeign);
  Output o = run({"ls"});
  ASSERT_EQ(o.code, 0) << o.err;
  bool found = false;
  for (const std::string& line : lines_of(o.out)) {
    if (line.rfind(bus_ + " ", 0) != 0) continue;
    found = true;
    EXPECT_NE(line.find("foreign-version (layout " + std::to_string(kForeign) + ", expected " +
                        std::to_string(evring::shm::kSegmentLayoutVersion) + "; evring rm " +
                        bus_ + ")"),
              std::string::npos)
        << line;
  }
  EXPECT_TRUE(found) << o.out;

  o = run({"ls", "--json"});
  ASSERT_EQ(o.code, 0) << o.err;
  found = false;
  for (const json& b : json::parse(o.out)) {
    if (b["name"] != bus_) continue;
    found = true;
    EXPECT_EQ(b["state"], "foreign-version");
    EXPECT_EQ(b["layout_version"], kForeign);
    EXPECT_EQ(b["expected_layout_version"], evring::shm::kSegmentLayoutVersion);
    EXPECT_EQ(b["ok"], false);
    EXPECT_EQ(b["exit_code"], 7);
  }
  EXPECT_TRUE(found) << o.out;
}

TEST_F(cli_stale, StatOnAForeignVersionBusSaysWhichVersionItFound) {
  create();
  set_layout_version(bus_, kForeign);
  Output o = run({"stat", bus_});
  EXPECT_EQ(o.code, 7);
  EXPECT_NE(o.out.find("header: segment layout version " + std::to_string(kForeign) +
                       ", this build reads version " +
                       std::to_string(evring::shm::kSegmentLayoutVersion)),
            std::string::npos)
      << o.out;
  expect_one_error_line(o, "1 problem found");
}

}  // namespace
}  // namespace evring_cli_test
