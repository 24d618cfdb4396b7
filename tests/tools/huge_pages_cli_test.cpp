// `evring create --huge-pages`: used where the kernel allows transparent huge pages for shared
// memory; elsewhere refused with exit 8, one line naming the kernel setting, and no bus left.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>

#include "tools/cli_fixture.h"

namespace evring_cli_test {
namespace {

class HugePagesCliTest : public CliTest {};

TEST_F(HugePagesCliTest, CreateWithHugePagesFollowsTheKernelSetting) {
  Output o = run({"create", bus_, "--huge-pages"});
  const std::string setting = evring::Bus::shmem_huge_pages_setting();
  if (setting == "never" || setting == "deny" || setting == "unavailable") {
    EXPECT_EQ(o.code, 8) << o.err;
    expect_one_error_line(o, "huge pages refused for bus '" + bus_ + "'");
    EXPECT_NE(o.err.find("shmem_enabled is '" + setting + "'"), std::string::npos) << o.err;
    Output ls = run({"ls", "--json"});
    ASSERT_EQ(ls.code, 0) << ls.err;
    for (const json& b : json::parse(ls.out)) EXPECT_NE(b["name"], bus_) << "nothing left behind";
  } else {
    EXPECT_EQ(o.code, 0) << o.err;
    EXPECT_EQ(run({"stat", bus_}).code, 0);
  }
}

}  // namespace
}  // namespace evring_cli_test
