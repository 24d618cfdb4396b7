// `evring inspect` and `evring top` (tools/INSPECT.md), run as child processes over real buses.
#include <atomic>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <vector>

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

// "850ns", "12.3us", "4.56ms", "1.20s" (top's latency columns) in ns; -1 when not such a value.
double latency_ns(const std::string& text) {
  std::size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (...) {
    return -1;
  }
  const std::string unit = text.substr(used);
  if (unit == "ns") return v;
  if (unit == "us") return v * 1e3;
  if (unit == "ms") return v * 1e6;
  if (unit == "s") return v * 1e9;
  return -1;
}

// The whitespace-separated fields of the last line of `text` that starts with `name`.
std::vector<std::string> row_fields(const std::string& text, const std::string& name) {
  std::vector<std::string> out;
  std::size_t row = text.rfind("\n" + name + " ");
  if (row == std::string::npos) return out;
  ++row;
  std::istringstream in(text.substr(row, text.find('\n', row) - row));
  for (std::string f; in >> f;) out.push_back(f);
  return out;
}

// Publishes `n` events of chat.message.created stamped `age_ns` in the past.
void publish_aged(evring::Producer& producer, std::uint16_t type, int n, std::uint64_t age_ns) {
  for (int i = 0; i < n; ++i) {
    const std::string key = numbered("conv-", i);
    evring::core::PublishRequest r;
    r.type_id = type;
    r.entity_key = key;
    r.timestamp_ns = evring::unix_now_ns() - age_ns;
    ASSERT_EQ(producer.try_publish(r), evring::core::PublishResult::kOk);
  }
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
    evring::core::SlotHeader& slot0 = ring.slot(0, 0);
    std::byte* env0 = evring::core::RingRegion::envelope_of(slot0);
    const std::vector<std::byte> full0 = expanded_envelope(ring, slot0);
    ASSERT_GE(full0.size(), evring::kEnvelopeHeaderBytes);
    evring::EnvelopeHeader h;
    std::memcpy(&h, full0.data(), sizeof h);
    ASSERT_GT(h.payload_bytes, 2u);
    std::memset(env0 + evring::core::stored_header_bytes(slot0.elided) + h.entity_key_bytes, 'X',
                2);
    // seq 1: lengths that point far beyond the slot.
    evring::core::SlotHeader& slot1 = ring.slot(0, 1);
    std::byte* env1 = evring::core::RingRegion::envelope_of(slot1);
    const std::uint16_t huge_key = 0xffff;
    const std::size_t key_bytes_at = evring::core::stored_header_offset(
        slot1.elided, offsetof(evring::EnvelopeHeader, entity_key_bytes));
    ASSERT_NE(key_bytes_at, evring::core::kElidedOffset);
    std::memcpy(env1 + key_bytes_at, &huge_key, 2);
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

// Slots leave out header words that hold their defaults; inspect shows which (`elided`) and the
// envelope expanded back to its full header, and says so when the elided bits cannot be right.
TEST_F(inspect, ShowsElidedGroupsAndTheExpandedHeader) {
  create({"--partitions", "1", "--slots", "8"});
  publish3("chat.message.created");
  {
    auto bus = evring::Bus::open(bus_);
    ASSERT_TRUE(bus.ok()) << bus.status().to_string();
    bus.value()->ring().slot(0, 1).envelope_bytes = 30;  // shorter than the 40 stored header bytes
    bus.value()->ring().slot(0, 2).elided = 0x50;        // bits no layout defines
  }
  Output o = run({"inspect", bus_, "--json"});
  ASSERT_EQ(o.code, 0) << o.err;
  json slots = json::parse(o.out).at("slots");
  ASSERT_EQ(slots.size(), 3u) << o.out;
  EXPECT_EQ(slots[0].at("elided"), 0x3F) << "compact: default ids, no causation, no revision, "
                                            "no origin host";
  EXPECT_FALSE(slots[0].contains("envelope_bytes_error")) << slots[0].dump();
  const json& h = slots[0].at("envelope").at("header");
  EXPECT_EQ(slots[0].at("envelope").at("check"), "ok");
  EXPECT_EQ(h.at("idempotency_key"), h.at("event_id")) << "restored from the event id";
  EXPECT_EQ(h.at("entity_revision"), 0);
  EXPECT_NE(slots[1].at("envelope_bytes_error").get<std::string>().find("too short for the 40"),
            std::string::npos)
      << slots[1].dump();
  EXPECT_NE(slots[1].at("envelope").at("check"), "ok");
  EXPECT_EQ(slots[2].at("elided"), 0x50);
  EXPECT_NE(slots[2].at("envelope_bytes_error").get<std::string>().find("elided bits"),
            std::string::npos)
      << slots[2].dump();
  EXPECT_NE(slots[2].at("envelope").at("check"), "ok");
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

TEST_F(inspect, TopShowsDeliveryLatencyPercentilesFromTheSegment) {
  create({"--partitions", "2", "--slots", "64"});
  constexpr std::uint64_t kAgeNs = 20'000'000;  // every event is 20 ms old when delivered
  {
    auto bus = evring::Bus::open(bus_);
    ASSERT_TRUE(bus.ok());
    auto consumer = (*bus)->consumer("timed");
    ASSERT_TRUE(consumer.ok());
    auto producer = (*bus)->producer("chat", {"chat"});
    ASSERT_TRUE(producer.ok());
    auto type = (*producer)->resolve("chat.message.created");
    ASSERT_TRUE(type.ok());
    publish_aged(**producer, *type, 10, kAgeNs);
    std::size_t got = 0;
    for (int i = 0; i < 100000 && got < 10; ++i)
      got += (*consumer)->poll([](const evring::core::Event&) {}).delivered;
    ASSERT_EQ(got, 10u);
  }
  const std::string out = capture(std::string(EVRING_BINARY) + " top " + bus_ +
                                  " --iterations 2 --interval-ms 100 < /dev/null");
  const std::size_t second = out.find("\n\nevring top:");
  ASSERT_NE(second, std::string::npos) << out;
  const std::string first_frame = out.substr(0, second), second_frame = out.substr(second);
  // First frame: everything since the consumer was created.
  EXPECT_NE(first_frame.find("delivery latency (now - publish time): since each consumer was created"),
            std::string::npos)
      << first_frame;
  EXPECT_NE(first_frame.find("P50"), std::string::npos);
  EXPECT_NE(first_frame.find("P99.9"), std::string::npos);
  const std::vector<std::string> f = row_fields(first_frame, "timed");
  ASSERT_EQ(f.size(), 11u) << first_frame;
  for (int i = 8; i < 11; ++i) {
    const double ns = latency_ns(f[static_cast<std::size_t>(i)]);
    EXPECT_GE(ns, kAgeNs * 0.99) << "column " << i << ": " << f[static_cast<std::size_t>(i)];
    EXPECT_LT(ns, kAgeNs + 2e9) << "column " << i << ": " << f[static_cast<std::size_t>(i)];
  }
  EXPECT_LE(latency_ns(f[8]), latency_ns(f[9])) << "p50 <= p99";
  EXPECT_LE(latency_ns(f[9]), latency_ns(f[10])) << "p99 <= p99.9";
  // Second frame: the last interval, in which nothing was delivered.
  EXPECT_NE(second_frame.find("delivery latency (now - publish time): over the last interval"),
            std::string::npos)
      << second_frame;
  const std::vector<std::string> g = row_fields(second_frame, "timed");
  ASSERT_EQ(g.size(), 11u) << second_frame;
  EXPECT_EQ(g[8], "-");
  EXPECT_EQ(g[10], "-");
}

TEST_F(inspect, TopShowsCorruptLatencyCountsInsteadOfUsingThem) {
  create({"--partitions", "1", "--slots", "16"});
  auto bus = evring::Bus::open(bus_);
  ASSERT_TRUE(bus.ok());
  ASSERT_TRUE((*bus)->consumer("scribbled").ok());
  const std::vector<evring::ConsumerInfo> listed = (*bus)->consumers();
  ASSERT_EQ(listed.size(), 1u);
  auto& cells = const_cast<evring::core::HistogramCells&>(*listed[0].latency);
  cells.counts[3].store(~std::uint64_t{0});
  cells.counts[4].store(~std::uint64_t{0});
  const std::string out = capture(std::string(EVRING_BINARY) + " top " + bus_ +
                                  " --iterations 1 < /dev/null");
  const std::vector<std::string> f = row_fields(out, "scribbled");
  ASSERT_EQ(f.size(), 11u) << out;
  EXPECT_EQ(f[8], "corrupt");
  EXPECT_NE(out.find("latency of 'scribbled': the latency histogram of consumer 'scribbled' has "
                     "impossible counts"),
            std::string::npos)
      << out;
}

TEST_F(inspect, StatJsonReportsPerConsumerDeliveryLatency) {
  create({"--partitions", "2", "--slots", "64"});
  constexpr std::uint64_t kAgeNs = 20'000'000;  // every event is 20 ms old when delivered
  {
    auto bus = evring::Bus::open(bus_);
    ASSERT_TRUE(bus.ok());
    auto timed = (*bus)->consumer("timed");
    ASSERT_TRUE(timed.ok());
    ASSERT_TRUE((*bus)->consumer("idle").ok());  // registered, never polls
    auto producer = (*bus)->producer("chat", {"chat"});
    ASSERT_TRUE(producer.ok());
    auto type = (*producer)->resolve("chat.message.created");
    ASSERT_TRUE(type.ok());
    publish_aged(**producer, *type, 10, kAgeNs);
    std::size_t got = 0;
    for (int i = 0; i < 100000 && got < 10; ++i)
      got += (*timed)->poll([](const evring::core::Event&) {}).delivered;
    ASSERT_EQ(got, 10u);
  }
  json s = stat();
  std::map<std::string, json> latency;
  for (const json& c : s.at("consumers")) latency[c.at("name")] = c.at("latency_ns");
  ASSERT_EQ(latency.size(), 2u) << s.dump();
  const json& t = latency.at("timed");
  EXPECT_EQ(t.at("count"), 10u) << t.dump();
  for (const char* k : {"p50", "p99", "p999", "max"}) {
    EXPECT_GE(t.at(k).get<std::uint64_t>(), kAgeNs) << k << " " << t.dump();
    EXPECT_LT(t.at(k).get<std::uint64_t>(), kAgeNs + 2'000'000'000ull) << k << " " << t.dump();
  }
  EXPECT_LE(t.at("p50").get<std::uint64_t>(), t.at("p99").get<std::uint64_t>());
  EXPECT_LE(t.at("p999").get<std::uint64_t>(), t.at("max").get<std::uint64_t>());
  EXPECT_EQ(latency.at("idle"),
            (json{{"p50", 0}, {"p99", 0}, {"p999", 0}, {"max", 0}, {"count", 0}}));
}

// An exclusive producer's hold on a partition (core::RingProducer::set_exclusive) is shown by
// stat (JSON and text) and top, and disappears when it lets go.
TEST_F(inspect, StatAndTopShowWhoHoldsAPartitionExclusively) {
  create({"--partitions", "2", "--slots", "64"});
  const ExclusiveHolder holder = hold_exclusively("conv-held");
  ASSERT_TRUE(holder.producer);
  evring::Producer& producer = *holder.producer;
  const std::uint32_t held = holder.partition, other = 1 - held;
  const std::string id = std::to_string(producer.id());

  json s = stat();
  const json& e = s.at("partitions").at(held).at("exclusive");
  EXPECT_EQ(e.at("producer"), producer.id()) << e.dump();
  EXPECT_EQ(e.at("service"), "chat");
  EXPECT_EQ(e.at("pid"), static_cast<int>(::getpid()));
  EXPECT_TRUE(e.at("lane").is_number_unsigned());
  EXPECT_TRUE(s.at("partitions").at(other).at("exclusive").is_null());

  Output text = run({"stat", bus_});
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_EQ(row_fields(text.out, std::to_string(held)).back(), std::to_string(::getpid()))
      << text.out;
  EXPECT_NE(text.out.find(" producer " + id + " (chat) pid "), std::string::npos) << text.out;
  EXPECT_EQ(row_fields(text.out, std::to_string(other)).back(), "-") << text.out;

  const std::string top =
      capture(std::string(EVRING_BINARY) + " top " + bus_ + " --iterations 1 < /dev/null");
  const std::vector<std::string> row = row_fields(top, std::to_string(held));
  ASSERT_GE(row.size(), 2u) << top;
  EXPECT_EQ(row[row.size() - 2], "producer") << top;
  EXPECT_EQ(row.back(), id) << top;
  EXPECT_EQ(row_fields(top, std::to_string(other)).back(), "-") << top;

  producer.set_exclusive(false);
  EXPECT_TRUE(stat().at("partitions").at(held).at("exclusive").is_null());
}

// A producer publishing alone into a partition is biased to it: stat and top say so, and a
// second producer's publish there revokes it (counted in stat's bias_revocations).
TEST_F(inspect, StatAndTopShowABiasAndItsRevocation) {
  create({"--partitions", "2", "--slots", "64"});
  const ExclusiveHolder holder = hold_biased("conv-held");
  ASSERT_TRUE(holder.producer);
  const std::uint32_t held = holder.partition;
  const std::string id = std::to_string(holder.producer->id());

  json s = stat();
  const json& e = s.at("partitions").at(held).at("exclusive");
  EXPECT_EQ(e.at("producer"), holder.producer->id()) << e.dump();
  EXPECT_EQ(e.at("biased"), true) << e.dump();
  EXPECT_EQ(s.at("partitions").at(held).at("bias_revocations"), 0);
  Output text = run({"stat", bus_});
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_NE(
      text.out.find(" producer " + id + " (chat) pid " + std::to_string(::getpid()) + ", biased"),
      std::string::npos)
      << text.out;
  const std::string top =
      capture(std::string(EVRING_BINARY) + " top " + bus_ + " --iterations 1 < /dev/null");
  const std::vector<std::string> row = row_fields(top, std::to_string(held));
  ASSERT_GE(row.size(), 2u) << top;
  EXPECT_EQ(row[row.size() - 2], "biased") << top;
  EXPECT_EQ(row.back(), id) << top;

  // Another producer (the CLI's, another process) publishes there: not refused, it revokes.
  Output pub = run({"publish", bus_, "--type", "chat.message.created", "--producer", "chat",
                    "--entity", "conv-held", "--data", "{}"});
  ASSERT_EQ(pub.code, 0) << pub.err;
  s = stat();
  EXPECT_TRUE(s.at("partitions").at(held).at("exclusive").is_null()) << s.dump();
  EXPECT_EQ(s.at("partitions").at(held).at("bias_revocations"), 1);
}

TEST_F(inspect, TopInTmuxQuitsOnQ) {
  if (std::system("command -v tmux > /dev/null 2>&1") != 0)
    GTEST_SKIP() << "tmux is not installed: the interactive (tty) mode of top is not tested";
  create({"--partitions", "1", "--slots", "16"});
  auto bus = evring::Bus::open(bus_);
  ASSERT_TRUE(bus.ok());
  auto consumer = (*bus)->consumer("tmux-watcher");  // attached while the test runs
  ASSERT_TRUE(consumer.ok());
  auto producer = (*bus)->producer("chat", {"chat"});
  ASSERT_TRUE(producer.ok());
  auto type = (*producer)->resolve("chat.message.created");
  ASSERT_TRUE(type.ok());
  // Traffic while top runs: events stamped 5 ms in the past, consumed at once, so every
  // refresh interval has deliveries whose latency is 5 ms and a little more.
  constexpr std::uint64_t kAgeNs = 5'000'000;
  std::atomic<bool> stop{false};
  struct Joiner {  // stops the traffic on every way out of the test, failed assertions included
    std::atomic<bool>& stop;
    std::thread thread;
    ~Joiner() {
      stop = true;
      if (thread.joinable()) thread.join();
    }
  } traffic{stop, {}};
  traffic.thread = std::thread([&] {
    while (!stop.load()) {
      publish_aged(**producer, *type, 4, kAgeNs);
      while ((*consumer)->poll([](const evring::core::Event&) {}).delivered != 0) {
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  const std::string tmux = "tmux -L evring-inspect-" + std::to_string(getpid()) + " ";
  const std::string session = "top";
  ASSERT_EQ(std::system((tmux + "new-session -d -s " + session + " -x 160 -y 40 '" +
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
  // After the first refresh the percentiles are those of the last interval's deliveries.
  for (int i = 0; i < 50 && screen.find("over the last interval") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    screen = capture(tmux + "capture-pane -p -t " + session + " 2>/dev/null");
  }
  stop = true;
  traffic.thread.join();
  EXPECT_NE(screen.find("delivery latency (now - publish time): over the last interval"),
            std::string::npos)
      << screen;
  const std::vector<std::string> f = row_fields("\n" + screen, "tmux-watcher");
  ASSERT_EQ(f.size(), 11u) << screen;
  EXPECT_NE(f[3], "-") << "deliveries per second shown: " << screen;
  for (int i = 8; i < 11; ++i) {
    const double ns = latency_ns(f[static_cast<std::size_t>(i)]);
    EXPECT_GE(ns, kAgeNs * 0.99) << "column " << i << ": " << screen;
    EXPECT_LT(ns, kAgeNs + 1e9) << "column " << i << ": " << screen;
  }
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
