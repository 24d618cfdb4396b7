// tools/latency_render.cpp: the latency figures of stat --json, top and the exporter. The tool's
// translation unit is compiled into this test directly (the tool is an executable, not a
// library).
#include "../tools/latency_render.cpp"  // NOLINT(bugprone-suspicious-include)

#include <gtest/gtest.h>

#include <limits>

#include "shm/test_bus.h"

namespace evring::cli {
namespace {

TEST(LatencyRender, HumanLatencyKeepsThreeSignificantDigitsWithoutExponents) {
  EXPECT_EQ(human_latency(0), "0ns");
  EXPECT_EQ(human_latency(999), "999ns");
  EXPECT_EQ(human_latency(1000), "1.00us");
  EXPECT_EQ(human_latency(12'345), "12.3us");
  EXPECT_EQ(human_latency(999'499), "999us");
  EXPECT_EQ(human_latency(999'600), "1.00ms") << "rounding up crosses into the next unit";
  EXPECT_EQ(human_latency(4'560'000), "4.56ms");
  EXPECT_EQ(human_latency(1'200'000'000), "1.20s");
  EXPECT_EQ(human_latency(3'600'000'000'000), "3600s");
}

TEST(LatencyRender, DeltaIsWhatWasRecordedBetweenTwoSnapshots) {
  core::Histogram before, now;
  before.record_n(1'000, 5);
  now.record_n(1'000, 5);
  now.record_n(2'000'000, 3);
  auto d = latency_delta(now, before);
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->count(), 3u);
  EXPECT_GE(d->value_at_percentile(50), 2'000'000u);
  EXPECT_LE(d->value_at_percentile(50), 2'000'000u * 101 / 100);
  auto none = latency_delta(now, now);
  ASSERT_TRUE(none.has_value());
  EXPECT_EQ(none->count(), 0u);
  EXPECT_FALSE(latency_delta(before, now).has_value()) << "counts went down: a reset";
}

TEST(LatencyRender, SummaryOfAnEmptyHistogramIsZero) {
  const LatencySummary s = summarize_latency(core::Histogram());
  EXPECT_EQ(s.count, 0u);
  EXPECT_EQ(s.p50_ns, 0u);
  EXPECT_EQ(s.max_ns, 0u);
}

TEST(LatencyRender, StatJsonHasPercentilesOrTheCorruption) {
  evring::testing::TestBus bus(evring::testing::small_options(1, 64));
  ASSERT_TRUE(bus.ok());
  auto consumer = bus->consumer("audit");
  ASSERT_TRUE(consumer.ok());
  auto producer = bus->producer("chat", {"chat"});
  ASSERT_TRUE(producer.ok());
  auto type = (*producer)->resolve("chat.message.created");
  ASSERT_TRUE(type.ok());
  constexpr std::uint64_t kAgeNs = 30'000'000;
  for (int i = 0; i < 50; ++i) {  // fits the 64 slots
    core::PublishRequest r;
    r.type_id = *type;
    r.entity_key = "k";
    r.timestamp_ns = unix_now_ns() - kAgeNs;
    ASSERT_EQ((*producer)->try_publish(r), core::PublishResult::kOk);
  }
  std::size_t got = 0;
  while (got < 50) got += (*consumer)->poll([](const core::Event&) {}).delivered;
  ConsumerInfo info = bus->consumers().at(0);
  OrderedJson j = latency_json(info);
  ASSERT_FALSE(j.contains("error")) << j.dump();
  EXPECT_EQ(j.at("count"), 50u);
  for (const char* k : {"p50", "p99", "p999", "max"}) {
    EXPECT_GE(j.at(k).get<std::uint64_t>(), kAgeNs) << k;
    EXPECT_LT(j.at(k).get<std::uint64_t>(), kAgeNs + 5'000'000'000ull) << k;
  }
  EXPECT_LE(j.at("p50").get<std::uint64_t>(), j.at("p99").get<std::uint64_t>());
  EXPECT_LE(j.at("p99").get<std::uint64_t>(), j.at("p999").get<std::uint64_t>());
  EXPECT_LE(j.at("p999").get<std::uint64_t>(), j.at("max").get<std::uint64_t>());
  std::vector<std::string> keys;
  for (auto it = j.begin(); it != j.end(); ++it) keys.push_back(it.key());
  EXPECT_EQ(keys, (std::vector<std::string>{"p50", "p99", "p999", "max", "count"}));

  auto& cells = const_cast<core::HistogramCells&>(*info.latency);
  cells.counts[7].store(std::numeric_limits<std::uint64_t>::max());
  OrderedJson bad = latency_json(info);
  ASSERT_TRUE(bad.contains("error")) << bad.dump();
  EXPECT_NE(bad.at("error").get<std::string>().find("impossible counts"), std::string::npos);
  EXPECT_FALSE(bad.contains("p50")) << "no figures from corrupt counts";
}

}  // namespace
}  // namespace evring::cli
