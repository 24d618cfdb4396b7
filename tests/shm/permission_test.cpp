// The OS permission on the segment is the security boundary: a bus created 0600 cannot be
// opened by another user; 0660 can be opened by a member of the file's group. Runs the other
// user in a forked child that drops to uid/gid 65534 (nobody/nogroup); needs root to do so.
#include <gtest/gtest.h>
#include <grp.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "evring/shm/bus.h"

namespace {

constexpr uid_t kNobody = 65534;
constexpr gid_t kNogroup = 65534;

std::string bus_name(const char* what) { return std::string("perm-") + what + "-" + std::to_string(getpid()); }

// Runs fn as nobody:nogroup in a child; returns its exit code.
template <typename Fn>
int as_nobody(Fn fn) {
  pid_t pid = fork();
  if (pid == 0) {
    if (setgroups(0, nullptr) != 0 || setgid(kNogroup) != 0 || setuid(kNobody) != 0) _exit(100);
    _exit(fn());
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 101;
}

class PermissionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "switching to another user needs root; run the suite as root";
  }
};

TEST_F(PermissionTest, Mode0600RefusesAnotherUserWithPermissionDeniedNamingTheBus) {
  const std::string name = bus_name("0600");
  evring::BusOptions o;
  o.mode = 0600;
  auto bus = evring::Bus::create(name, o);
  ASSERT_TRUE(bus.ok()) << bus.status().to_string();
  int code = as_nobody([&] {
    auto opened = evring::Bus::open(name);
    if (opened.ok()) return 1;
    if (opened.status().code() != evring::Code::kPermissionDenied) return 2;
    if (opened.status().message().find(name) == std::string::npos) return 3;
    auto read_only = evring::Bus::open(name, evring::Access::kReadOnly);
    if (read_only.ok() || read_only.status().code() != evring::Code::kPermissionDenied) return 4;
    // ls names the bus and says why it cannot be read.
    for (const auto& s : evring::Bus::list())
      if (s.name == name) return s.status.code() == evring::Code::kPermissionDenied ? 0 : 5;
    return 6;
  });
  EXPECT_EQ(code, 0);
  (void)evring::Bus::remove(name);
}

TEST_F(PermissionTest, Mode0660LetsAMemberOfTheGroupPublishAndConsume) {
  const std::string name = bus_name("0660");
  evring::BusOptions o;
  o.mode = 0660;
  auto bus = evring::Bus::create(name, o);
  ASSERT_TRUE(bus.ok()) << bus.status().to_string();
  ASSERT_EQ(chown(evring::Bus::object_path(name).c_str(), 0, kNogroup), 0);
  int code = as_nobody([&] {
    auto opened = evring::Bus::open(name);
    if (!opened.ok()) return 1;
    auto consumer = (*opened)->consumer("group-reader");
    auto producer = (*opened)->producer("orders");
    if (!consumer.ok() || !producer.ok()) return 2;
    auto type = (*producer)->resolve("orders.order.placed");
    if (!type.ok() || (*producer)->publish(type.value(), "o-1", "x") != evring::core::PublishResult::kOk)
      return 3;
    return (*consumer)->poll([](const evring::core::Event&) {}).delivered == 1 ? 0 : 4;
  });
  EXPECT_EQ(code, 0);
  // And a user outside the group still cannot.
  ASSERT_EQ(chown(evring::Bus::object_path(name).c_str(), 0, 0), 0);
  EXPECT_EQ(as_nobody([&] { return evring::Bus::open(name).ok() ? 1 : 0; }), 0);
  (void)evring::Bus::remove(name);
}

}  // namespace
