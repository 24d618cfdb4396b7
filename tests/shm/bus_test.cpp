// Tests for evring/shm/bus.h over real /dev/shm segments: lifecycle, validation of names,
// options and untrusted segment bytes, permissions and liveness (a SIGKILLed consumer process).
// The producer, type and consumer registries: bus_registry_test.cpp.
#include "evring/shm/bus.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "evring/codec/ids.h"
#include "evring/shm/segment_layout.h"
#include "shm/test_bus.h"

namespace evring {
namespace {

using testing::BusNameGuard;
using testing::drain_payloads;
using testing::expect_status;
using testing::fork_child;
using testing::object_exists;
using testing::small_options;
using testing::tag;
using testing::TestBus;
using testing::unique_bus_name;
using testing::wait_child;

void pwrite_at(const std::string& bus, off_t offset, const void* data, std::size_t n) {
  const int fd = ::open(Bus::object_path(bus).c_str(), O_RDWR);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  EXPECT_EQ(::pwrite(fd, data, n, offset), static_cast<ssize_t>(n));
  ::close(fd);
}

TEST(BusTest, CreatesOpensListsAndRemovesABus) {
  BusNameGuard name(unique_bus_name());
  BusOptions options = small_options(3, 32);
  {
    auto created = Bus::create(name.name(), options);
    ASSERT_TRUE(created.ok()) << created.status().to_string();
    EXPECT_EQ((*created)->name(), name.name());
    EXPECT_TRUE(object_exists(name.name()));
    EXPECT_EQ(Bus::object_path(name.name()), "/dev/shm/evring." + name.name());

    auto opened = Bus::open(name.name());
    ASSERT_TRUE(opened.ok()) << opened.status().to_string();
    const core::RingConfig& c = (*opened)->ring().config();
    EXPECT_EQ(c.partitions, 3u);
    EXPECT_EQ(c.slots_per_partition, 32u);
    EXPECT_EQ(c.slot_bytes, 512u);
    EXPECT_EQ(c.max_consumers, 8u);
    EXPECT_EQ((*opened)->header().creator_pid, static_cast<std::uint32_t>(::getpid()));
    EXPECT_FALSE((*opened)->read_only());

    std::vector<BusSummary> all = Bus::list();
    auto it = std::find_if(all.begin(), all.end(),
                           [&](const BusSummary& s) { return s.name == name.name(); });
    ASSERT_NE(it, all.end()) << "list() must show the new bus";
    EXPECT_TRUE(it->status.is_ok()) << it->status.to_string();
    EXPECT_EQ(it->path, Bus::object_path(name.name()));
    EXPECT_EQ(it->ring.partitions, 3u);
    EXPECT_EQ(it->creator_pid, ::getpid());
    EXPECT_TRUE(it->creator_alive);
    EXPECT_FALSE(it->stale());
    EXPECT_EQ(it->bytes, (*opened)->header().segment_bytes);
  }
  EXPECT_TRUE(Bus::remove(name.name()).is_ok());
  EXPECT_FALSE(object_exists(name.name()));
  expect_status(Bus::open(name.name()).status(), Code::kNotFound, name.name());
  expect_status(Bus::remove(name.name()), Code::kNotFound, name.name());
  std::vector<BusSummary> all = Bus::list();
  EXPECT_TRUE(std::none_of(all.begin(), all.end(),
                           [&](const BusSummary& s) { return s.name == name.name(); }));
}

TEST(BusTest, CreateOfAnExistingBusIsAlreadyExistsAndLeavesItUntouched) {
  TestBus bus(small_options(2, 64));
  ASSERT_TRUE(bus.ok());
  auto producer = bus->producer("chat");
  ASSERT_TRUE(producer.ok()) << producer.status().to_string();
  auto type = (*producer)->resolve("chat.message.created");
  ASSERT_TRUE(type.ok());
  ASSERT_EQ((*producer)->publish(type.value(), "c-1", "kept"), core::PublishResult::kOk);
  const std::uint64_t bytes = bus->header().segment_bytes;

  auto again = Bus::create(bus.name(), small_options(4, 128));
  ASSERT_FALSE(again.ok());
  expect_status(again.status(), Code::kAlreadyExists, bus.name());

  auto opened = Bus::open(bus.name());
  ASSERT_TRUE(opened.ok()) << opened.status().to_string();
  EXPECT_EQ((*opened)->ring().config().partitions, 2u);
  EXPECT_EQ((*opened)->header().segment_bytes, bytes);
  EXPECT_TRUE((*opened)->find_type("chat.message.created").ok());
  auto consumer = (*opened)->consumer("reader");
  ASSERT_TRUE(consumer.ok()) << consumer.status().to_string();
  EXPECT_EQ(drain_payloads(**consumer), std::vector<std::string>{"kept"});
}

TEST(BusTest, OpenOfAMissingBusIsNotFoundNamingIt) {
  const std::string name = unique_bus_name();
  auto r = Bus::open(name);
  ASSERT_FALSE(r.ok());
  expect_status(r.status(), Code::kNotFound, "'" + name + "'");
  EXPECT_FALSE(object_exists(name));
}

TEST(BusTest, RefusesBadBusNamesNamingTheBadCharacter) {
  struct Case {
    std::string name, mention;
  } cases[] = {
      {"a/b", "'/'"},         {"a b", "' '"},        {"bus*", "'*'"},
      {"ümlaut", "contains"}, {".hidden", "'.'"},    {"-dash", "'-'"},
      {"", "1..48"},          {std::string(49, 'x'), "1..48"},
  };
  for (const auto& c : cases) {
    expect_status(Bus::validate_name(c.name), Code::kInvalidArgument, c.mention);
    auto created = Bus::create(c.name, small_options());
    ASSERT_FALSE(created.ok()) << c.name;
    expect_status(created.status(), Code::kInvalidArgument, c.mention);
    expect_status(Bus::open(c.name).status(), Code::kInvalidArgument, c.mention);
    expect_status(Bus::remove(c.name), Code::kInvalidArgument, c.mention);
  }
  EXPECT_TRUE(Bus::validate_name(std::string(48, 'x')).is_ok());
  EXPECT_TRUE(Bus::validate_name("Orders_v2.eu-west").is_ok());
}

TEST(BusTest, RefusesBadOptionsNamingTheFieldAndLeavesNoObject) {
  struct Case {
    BusOptions options;
    std::string mention;
  };
  std::vector<Case> cases;
  BusOptions o = small_options();
  o.ring.partitions = 0;
  cases.push_back({o, "partitions"});
  o = small_options();
  o.ring.slots_per_partition = 100;
  cases.push_back({o, "slots per partition"});
  o = small_options();
  o.ring.slot_bytes = 100;
  cases.push_back({o, "slot size"});
  o = small_options();
  o.ring.max_consumers = 0;
  cases.push_back({o, "max consumers"});
  o = small_options();
  o.max_producers = 0;
  cases.push_back({o, "max producers"});
  o = small_options();
  o.max_types = 70000;
  cases.push_back({o, "max event types"});
  o = small_options();
  o.mode = 04755;
  cases.push_back({o, "mode"});
  for (const auto& c : cases) {
    BusNameGuard name(unique_bus_name());
    auto created = Bus::create(name.name(), c.options);
    ASSERT_FALSE(created.ok()) << c.mention;
    expect_status(created.status(), Code::kInvalidArgument, c.mention);
    EXPECT_FALSE(object_exists(name.name())) << "no /dev/shm object after refusing " << c.mention;
  }
}

// ------------------------------------------------------------------- untrusted segment bytes

TEST(BusTest, OpenRefusesAnotherSegmentLayoutVersion) {
  TestBus bus;
  ASSERT_TRUE(bus.ok());
  const std::uint32_t other = shm::kSegmentLayoutVersion + 1;
  pwrite_at(bus.name(), offsetof(shm::SegmentHeader, layout_version), &other, sizeof other);
  auto r = Bus::open(bus.name());
  ASSERT_FALSE(r.ok());
  // Names the version found and the one this build reads.
  expect_status(r.status(), Code::kLayoutMismatch, "segment layout " + std::to_string(other));
  expect_status(r.status(), Code::kLayoutMismatch,
                "this build reads " + std::to_string(shm::kSegmentLayoutVersion));
  const std::uint32_t ours = shm::kSegmentLayoutVersion;
  pwrite_at(bus.name(), offsetof(shm::SegmentHeader, layout_version), &ours, sizeof ours);
  EXPECT_TRUE(Bus::open(bus.name()).ok()) << "restoring the version makes it readable again";
}

TEST(BusTest, OpenRefusesAnotherRingLayoutVersion) {
  TestBus bus;
  ASSERT_TRUE(bus.ok());
  const std::uint32_t other = 77;
  pwrite_at(bus.name(), offsetof(shm::SegmentHeader, ring_layout_version), &other, sizeof other);
  expect_status(Bus::open(bus.name()).status(), Code::kLayoutMismatch, "ring layout 77");
}

TEST(BusTest, OpenRefusesBadMagicAsLayoutMismatch) {
  TestBus bus;
  ASSERT_TRUE(bus.ok());
  pwrite_at(bus.name(), 0, "NOTOURS!", 8);
  expect_status(Bus::open(bus.name()).status(), Code::kLayoutMismatch, "magic");
}

TEST(BusTest, OpenReportsATruncatedSegmentAsCorruption) {
  TestBus bus;
  ASSERT_TRUE(bus.ok());
  bus.unmap();  // our own mapping must not outlive the pages we cut off
  for (off_t size : {off_t{100}, off_t{4096}}) {
    const int fd = ::open(Bus::object_path(bus.name()).c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::ftruncate(fd, size), 0);
    ::close(fd);
    auto r = Bus::open(bus.name());
    ASSERT_FALSE(r.ok()) << size;
    expect_status(r.status(), Code::kCorruption, bus.name());
  }
}

TEST(BusTest, OpenReportsOffsetsOutsideTheSegmentAsCorruption) {
  TestBus bus;
  ASSERT_TRUE(bus.ok());
  const std::uint64_t huge = 1ull << 40;
  pwrite_at(bus.name(), offsetof(shm::SegmentHeader, types_offset), &huge, sizeof huge);
  expect_status(Bus::open(bus.name()).status(), Code::kCorruption, "offsets");
}

TEST(BusTest, OpenReportsAnInvalidRingHeaderAsCorruption) {
  TestBus bus;
  ASSERT_TRUE(bus.ok());
  const std::uint64_t ring_offset = bus->header().ring_offset;
  const std::uint32_t slots = 100;  // not a power of two
  pwrite_at(bus.name(), static_cast<off_t>(ring_offset + offsetof(core::RingHeader, slots_per_partition)),
            &slots, sizeof slots);
  expect_status(Bus::open(bus.name()).status(), Code::kCorruption, "ring header");
}

// A bus that is not ready is waited for only while it can still become ready: not when its
// creator is gone (it died mid-create), nor long after its creation (a stuck creator, or a
// scribbled ready word). Both are unavailable, named, and the bus is left as it was.
TEST(BusTest, OpenDoesNotWaitForABusThatCanNeverBeReady) {
  TestBus bus;
  ASSERT_TRUE(bus.ok());
  const std::uint32_t not_ready = 0;
  pwrite_at(bus.name(), offsetof(shm::SegmentHeader, ready), &not_ready, sizeof not_ready);
  // Created a minute ago, by this (live) process.
  const std::uint64_t minute_ago = unix_now_ns() - 60'000'000'000ull;
  pwrite_at(bus.name(), offsetof(shm::SegmentHeader, created_unix_ns), &minute_ago,
            sizeof minute_ago);
  auto r = Bus::open(bus.name());
  ASSERT_FALSE(r.ok());
  expect_status(r.status(), Code::kUnavailable,
                "bus '" + bus.name() + "' is not initialised 60 s after its creation");
  // Or in a minute, which no clock skew explains.
  const std::uint64_t in_a_minute = unix_now_ns() + 60'500'000'000ull;
  pwrite_at(bus.name(), offsetof(shm::SegmentHeader, created_unix_ns), &in_a_minute,
            sizeof in_a_minute);
  r = Bus::open(bus.name());
  ASSERT_FALSE(r.ok());
  expect_status(
      r.status(), Code::kUnavailable,
      "bus '" + bus.name() + "' is not initialised and its creation time is 60 s in the future");
  // Created just now by a process that has exited.
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ASSERT_GT(child, 0);
  ASSERT_EQ(::waitpid(child, nullptr, 0), child);
  const std::uint64_t now = unix_now_ns();
  const std::uint32_t dead = static_cast<std::uint32_t>(child);
  pwrite_at(bus.name(), offsetof(shm::SegmentHeader, created_unix_ns), &now, sizeof now);
  pwrite_at(bus.name(), offsetof(shm::SegmentHeader, creator_pid), &dead, sizeof dead);
  r = Bus::open(bus.name(), Access::kReadOnly);
  ASSERT_FALSE(r.ok());
  expect_status(r.status(), Code::kUnavailable,
                "bus '" + bus.name() + "' is not initialised and its creator (pid " +
                    std::to_string(child) + ") is gone");
  // Ready again: it opens.
  const std::uint32_t ready = 1;
  pwrite_at(bus.name(), offsetof(shm::SegmentHeader, ready), &ready, sizeof ready);
  EXPECT_TRUE(Bus::open(bus.name()).ok());
}

TEST(BusTest, ReadOnlyOpenRefusesRegistryWrites) {
  TestBus bus;
  ASSERT_TRUE(bus.ok());
  ASSERT_TRUE(bus->register_type("chat.message.created").ok());
  auto ro = Bus::open(bus.name(), Access::kReadOnly);
  ASSERT_TRUE(ro.ok()) << ro.status().to_string();
  EXPECT_TRUE((*ro)->read_only());
  expect_status((*ro)->producer("chat").status(), Code::kPermissionDenied, "read-only");
  expect_status((*ro)->consumer("audit").status(), Code::kPermissionDenied, "read-only");
  expect_status((*ro)->register_type("chat.message.deleted").status(), Code::kPermissionDenied);
  EXPECT_EQ((*ro)->types().size(), 1u) << "reading works";
}

// ------------------------------------------------------------------------------ permissions

TEST(BusTest, ModeIsReflectedInTheObjectPermissions) {
  for (mode_t mode : {mode_t{0600}, mode_t{0660}, mode_t{0640}}) {
    BusOptions o = small_options();
    o.mode = mode;
    TestBus bus(o, std::to_string(mode));
    ASSERT_TRUE(bus.ok());
    struct stat st {};
    ASSERT_EQ(::stat(Bus::object_path(bus.name()).c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, mode) << std::oct << mode << " (umask must not apply)";
    EXPECT_EQ(bus->header().mode, mode);
  }
}

// ------------------------------------------------------------------------------ liveness

bool read_line(int fd, std::string* out, int timeout_ms) {
  out->clear();
  char c;
  while (true) {
    pollfd pfd{fd, POLLIN, 0};
    if (::poll(&pfd, 1, timeout_ms) <= 0) return false;
    if (::read(fd, &c, 1) != 1) return false;
    if (c == '\n') return true;
    *out += c;
  }
}

TEST(BusLivenessTest, SweepDetachesAKilledConsumerAndANewProcessResumesFromItsCursor) {
  TestBus bus(small_options(1, 16));
  ASSERT_TRUE(bus.ok());
  auto p = bus->producer("chat");
  ASSERT_TRUE(p.ok());
  auto type = (*p)->resolve("chat.message.created");
  ASSERT_TRUE(type.ok());
  for (int i = 0; i < 5; ++i)
    ASSERT_EQ((*p)->publish(type.value(), "k", tag("e", i)), core::PublishResult::kOk);

  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const std::string name = bus.name();
  const pid_t victim = fork_child([&] {
    ::close(ready[0]);
    auto b = Bus::open(name);
    if (!b.ok()) return 2;
    auto c = (*b)->consumer("worker");
    if (!c.ok()) return 3;
    if ((*c)->poll([](const core::Event&) {}, 3).delivered != 3) return 4;  // auto-commit
    if (::write(ready[1], "ready\n", 6) != 6) return 5;
    while (true) ::pause();  // killed here, attached
  });
  ASSERT_GT(victim, 0);
  ::close(ready[1]);
  std::string line;
  ASSERT_TRUE(read_line(ready[0], &line, 30000)) << "child did not attach";
  ::close(ready[0]);
  ASSERT_EQ(line, "ready");

  auto infos = bus->consumers();
  ASSERT_EQ(infos.size(), 1u);
  EXPECT_EQ(infos[0].pid, victim);
  EXPECT_TRUE(infos[0].attached);
  EXPECT_TRUE(infos[0].alive);
  EXPECT_EQ(bus->sweep_dead_consumers(), 0u) << "a live consumer is not swept";
  expect_status(bus->consumer("worker").status(), Code::kUnavailable, std::to_string(victim));

  ASSERT_EQ(::kill(victim, SIGKILL), 0);
  EXPECT_EQ(wait_child(victim), 128 + SIGKILL);
  infos = bus->consumers();
  ASSERT_EQ(infos.size(), 1u);
  EXPECT_TRUE(infos[0].attached) << "nobody detached it yet";
  EXPECT_FALSE(infos[0].alive);
  EXPECT_EQ(bus->ring().min_attached_cursor(0), 3u) << "the dead consumer still gates";

  EXPECT_EQ(bus->sweep_dead_consumers(), 1u);
  EXPECT_EQ(bus->sweep_dead_consumers(), 0u);
  infos = bus->consumers();
  ASSERT_EQ(infos.size(), 1u);
  EXPECT_FALSE(infos[0].attached);
  EXPECT_EQ(bus->ring().min_attached_cursor(0), UINT64_MAX) << "swept: gates nothing";

  // A new process takes the name over and resumes after the dead one's last commit.
  int out[2];
  ASSERT_EQ(::pipe(out), 0);
  const pid_t heir = fork_child([&] {
    ::close(out[0]);
    auto b = Bus::open(name);
    if (!b.ok()) return 2;
    auto c = (*b)->consumer("worker");
    if (!c.ok()) return 3;
    std::string got;
    for (int i = 0; i < 10; ++i)
      (void)(*c)->poll([&](const core::Event& e) {
        got += std::string(e.view.payload_text()) + ",";
      });
    got += "\n";
    if (::write(out[1], got.data(), got.size()) != static_cast<ssize_t>(got.size())) return 4;
    return 0;
  });
  ASSERT_GT(heir, 0);
  ::close(out[1]);
  ASSERT_TRUE(read_line(out[0], &line, 30000));
  ::close(out[0]);
  EXPECT_EQ(wait_child(heir), 0);
  EXPECT_EQ(line, "e3,e4,") << "resumes at the committed cursor: no repeat, no loss";
}

TEST(BusLivenessTest, ProducerHittingFullSweepsADeadConsumerAndPublishes) {
  TestBus bus(small_options(1, 8));
  ASSERT_TRUE(bus.ok());
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const std::string name = bus.name();
  const pid_t victim = fork_child([&] {
    ::close(ready[0]);
    auto b = Bus::open(name);
    if (!b.ok()) return 2;
    auto c = (*b)->consumer("stalled");
    if (!c.ok()) return 3;
    if (::write(ready[1], "ready\n", 6) != 6) return 4;
    while (true) ::pause();
  });
  ASSERT_GT(victim, 0);
  ::close(ready[1]);
  std::string line;
  ASSERT_TRUE(read_line(ready[0], &line, 30000));
  ::close(ready[0]);

  auto p = bus->producer("chat");
  ASSERT_TRUE(p.ok());
  auto type = (*p)->resolve("chat.message.created");
  ASSERT_TRUE(type.ok());
  for (int i = 0; i < 8; ++i)
    ASSERT_EQ((*p)->publish(type.value(), "k", tag("e", i)), core::PublishResult::kOk);
  EXPECT_EQ((*p)->publish(type.value(), "k", "over"), core::PublishResult::kFull)
      << "a live stalled consumer gates a full ring";
  ASSERT_EQ(::kill(victim, SIGKILL), 0);
  EXPECT_EQ(wait_child(victim), 128 + SIGKILL);
  // The next refusal sweeps (at most every 10 ms) and retries: allow for the rate limit.
  core::PublishResult r = core::PublishResult::kFull;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (r == core::PublishResult::kFull && std::chrono::steady_clock::now() < deadline) {
    r = (*p)->publish(type.value(), "k", "over");
    if (r == core::PublishResult::kFull) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  EXPECT_EQ(r, core::PublishResult::kOk) << "the dead consumer no longer gates";
  auto infos = bus->consumers();
  ASSERT_EQ(infos.size(), 1u);
  EXPECT_FALSE(infos[0].attached);
}

}  // namespace
}  // namespace evring
