// `evring inspect` and `evring top` (tools/INSPECT.md), run as child processes over real buses.
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <thread>

#include "cli_fixture.h"
#include "evring/codec/envelope.h"
#include "evring/core/ring_layout.h"

namespace evring_cli_test {
namespace {

class InspectTest : public CliTest {
 protected:
  void publish3(const std::string& type) {
    for (int i = 1; i <= 3; ++i) {
      Output o = run({"publish", bus_, "--type", type, "--producer", "chat", "--entity",
                      numbered("conv-", i), "--data", json{{"n", i}}.dump()});
      ASSERT_EQ(o.code, 0) << o.err;
    }
  }
};
using inspect = InspectTest;  // lowercase suite: `ctest -R inspect`

// The published slots of an `inspect --json` answer, keyed by entity.
std::map<std::string, json> published_by_entity(const json& answer) {
  std::map<std::string, json> out;
  for (const json& s : answer.at("slots"))
    if (s.at("state") == "published") out[s.at("envelope").at("entity").get<std::string>()] = s;
  return out;
}

std::string capture(const std::string& command) {
  std::string out;
  if (FILE* f = popen(command.c_str(), "r")) {
    char buf[4096];
    for (std::size_t n; (n = fread(buf, 1, sizeof buf, f)) > 0;) out.append(buf, n);
    pclose(f);
  }
  return out;
}

std::size_t count_of(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST_F(inspect, JsonShowsPublishedEventsWithTypesAndData) {
  create({"--partitions", "2", "--slots", "16"});
  publish3("chat.message.created");
  Output o = run({"inspect", bus_, "--json"});
  ASSERT_EQ(o.code, 0) << o.err;
  json j = json::parse(o.out);
  EXPECT_EQ(j.at("bus"), bus_);
  auto events = published_by_entity(j);
  ASSERT_EQ(events.size(), 3u) << o.out;
  for (int i = 1; i <= 3; ++i) {
    const json& s = events.at(numbered("conv-", i));
    EXPECT_EQ(s.at("status"), "current");
    EXPECT_EQ(s.at("writer"), 1);
    const std::string word = s.at("word");
    EXPECT_EQ(word.rfind("0x", 0), 0u);
    EXPECT_EQ(std::stoull(word, nullptr, 16), (s.at("sequence").get<std::uint64_t>() << 3) | 2u);
    const json& e = s.at("envelope");
    EXPECT_EQ(e.at("check"), "ok");
    EXPECT_EQ(e.at("type"), "chat.message.created");
    EXPECT_EQ(e.at("producer"), "chat");
    EXPECT_EQ(e.at("data"), (json{{"n", i}}));
    EXPECT_EQ(e.at("header").at("content_type"), "json");
    EXPECT_EQ(e.at("header").at("sequence"), s.at("sequence"));
  }
  // Text mode and a single sequence work too; an out-of-range partition is a usage error.
  Output text = run({"inspect", bus_});
  EXPECT_EQ(text.code, 0) << text.err;
  EXPECT_NE(text.out.find("chat.message.created"), std::string::npos) << text.out;
  Output bad = run({"inspect", bus_, "--partition", "9"});
  EXPECT_EQ(bad.code, 2);
  expect_one_error_line(bad, "--partition");
}

TEST_F(inspect, ReportsOverwrittenSlots) {
  create({"--partitions", "1", "--slots", "4", "--overflow", "overwrite"});
  for (int i = 0; i < 6; ++i)
    ASSERT_EQ(run({"publish", bus_, "--type", "chat.x", "--producer", "chat", "--entity", "k"}).code,
              0);
  Output o = run({"inspect", bus_, "--json", "--seq", "0"});
  ASSERT_EQ(o.code, 0) << o.err;
  json s = json::parse(o.out).at("slots").at(0);
  EXPECT_EQ(s.at("status"), "overwritten by seq 4") << s.dump();
}

TEST_F(inspect, ScribbledSlotsAreReportedNotFatal) {
  create({"--partitions", "1", "--slots", "8"});
  publish3("chat.message.created");
  {
    auto bus = evring::Bus::open(bus_);
    ASSERT_TRUE(bus.ok()) << bus.status().to_string();
    const evring::core::RingRegion& ring = (*bus)->ring();
    // seq 0: scribble over the payload, so only the checksum can tell.
    std::byte* env0 = evring::core::RingRegion::envelope_of(ring.slot(0, 0));
    evring::EnvelopeHeader h;
    std::memcpy(&h, env0, sizeof h);
    ASSERT_GT(h.payload_bytes, 2u);
    std::memset(env0 + evring::kEnvelopeHeaderBytes + h.entity_key_bytes, 'X', 2);
    // seq 1: lengths that point far beyond the slot.
    evring::core::SlotHeader& slot1 = ring.slot(0, 1);
    std::byte* env1 = evring::core::RingRegion::envelope_of(slot1);
    const std::uint32_t huge_payload = 0x7fffffff;
    std::memcpy(env1 + offsetof(evring::EnvelopeHeader, payload_bytes), &huge_payload, 4);
    slot1.envelope_bytes = 0xffffffffu;
    // seq 2: a slot word in no valid state.
    ring.slot(0, 2).word.store((2u << 3) | 7u);
  }
  Output o = run({"inspect", bus_, "--json"});
  ASSERT_EQ(o.code, 0) << o.err;
  json slots = json::parse(o.out).at("slots");
  ASSERT_EQ(slots.size(), 3u) << o.out;
  EXPECT_EQ(slots[0].at("envelope").at("check"), std::string(evring::describe(evring::EnvelopeCheck::kBadChecksum)));
  EXPECT_NE(slots[0].at("envelope").at("check").get<std::string>().find("checksum"), std::string::npos);
  EXPECT_EQ(slots[0].at("envelope").at("entity"), "conv-1");
  EXPECT_TRUE(slots[0].at("envelope").at("data").is_null());  // "XX" breaks the JSON: hex dump
  EXPECT_FALSE(slots[0].at("envelope").at("data_hex").empty());
  EXPECT_TRUE(slots[1].contains("envelope_bytes_error")) << slots[1].dump();
  EXPECT_NE(slots[1].at("envelope").at("check"), "ok");
  EXPECT_EQ(slots[2].at("state"), "invalid");
  Output text = run({"inspect", bus_});
  EXPECT_EQ(text.code, 0) << text.err;
  EXPECT_NE(text.out.find("checksum mismatch"), std::string::npos) << text.out;
}

TEST_F(inspect, CorruptSegmentExits7) {
  create({"--partitions", "1", "--slots", "8"});
  {
    // Scribble the segment's first bytes (magic / layout version).
    int fd = open(evring::Bus::object_path(bus_).c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    const char junk[64] = "this is not an evring segment header, not at all, nope";
    ASSERT_EQ(pwrite(fd, junk, sizeof junk, 0), static_cast<ssize_t>(sizeof junk));
    close(fd);
  }
  Output o = run({"inspect", bus_});
  EXPECT_EQ(o.code, 7) << o.out << o.err;
  expect_one_error_line(o, "evring: ");
}

TEST_F(inspect, TopPrintsPlainFramesToAPipe) {
  create({"--partitions", "2", "--slots", "16"});
  {
    auto bus = evring::Bus::open(bus_);
    ASSERT_TRUE(bus.ok());
    evring::Bus::ConsumerOptions opts;
    opts.filter = "chat.>";
    ASSERT_TRUE((*bus)->consumer("audit-top", opts).ok());
  }
  publish3("chat.message.created");
  const std::string out = capture(std::string(EVRING_BINARY) + " top " + bus_ +
                                  " --iterations 2 --interval-ms 100 < /dev/null");
  EXPECT_EQ(count_of(out, "evring top: bus " + bus_), 2u) << out;
  EXPECT_EQ(out.find('\033'), std::string::npos) << "escape codes in a pipe";
  EXPECT_EQ(count_of(out, "audit-top"), 2u) << out;
  EXPECT_EQ(count_of(out, "chat.>"), 2u) << out;
  EXPECT_EQ(count_of(out, "\n0 "), 2u) << out;  // partition rows
  EXPECT_EQ(count_of(out, "\n1 "), 2u) << out;
  EXPECT_NE(out.find("\n\nevring top:"), std::string::npos) << "frames separated by a blank line";
  // Lag is head - committed summed over partitions: 3 published, none consumed.
  const std::size_t row = out.rfind("audit-top");
  ASSERT_NE(row, std::string::npos);
  std::istringstream fields(out.substr(row, out.find('\n', row) - row));
  std::string name, filter, state, rate, lag;
  fields >> name >> filter >> state >> rate >> lag;
  EXPECT_EQ(state, "detached");
  EXPECT_EQ(lag, "3") << out;
}

TEST_F(inspect, TopInTmuxQuitsOnQ) {
  if (std::system("command -v tmux > /dev/null 2>&1") != 0)
    GTEST_SKIP() << "tmux is not installed: the interactive (tty) mode of top is not tested";
  create({"--partitions", "1", "--slots", "16"});
  auto bus = evring::Bus::open(bus_);
  ASSERT_TRUE(bus.ok());
  auto consumer = (*bus)->consumer("tmux-watcher");  // attached while the test runs
  ASSERT_TRUE(consumer.ok());
  const std::string tmux = "tmux -L evring-inspect-" + std::to_string(getpid()) + " ";
  const std::string session = "top";
  ASSERT_EQ(std::system((tmux + "new-session -d -s " + session + " -x 120 -y 40 '" +
                         EVRING_BINARY + " top " + bus_ + " --interval-ms 200'")
                            .c_str()),
            0);
  std::string screen;
  for (int i = 0; i < 50 && screen.find("tmux-watcher") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    screen = capture(tmux + "capture-pane -p -t " + session + " 2>/dev/null");
  }
  EXPECT_NE(screen.find("tmux-watcher"), std::string::npos) << screen;
  EXPECT_NE(screen.find("attached/alive"), std::string::npos) << screen;
  std::system((tmux + "send-keys -t " + session + " q").c_str());
  bool ended = false;
  for (int i = 0; i < 50 && !ended; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    ended = std::system((tmux + "has-session -t " + session + " 2>/dev/null").c_str()) != 0;
  }
  EXPECT_TRUE(ended) << "top did not quit on q";
  std::system((tmux + "kill-server 2>/dev/null").c_str());
}

}  // namespace
}  // namespace evring_cli_test
