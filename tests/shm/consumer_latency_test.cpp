// Per-consumer delivery latency histograms in the segment (shm/segment_layout.h ConsumerEntry,
// Consumer::poll, ConsumerInfo::latency_snapshot).
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>

#include "evring/shm/bus.h"
#include "shm/test_bus.h"

namespace evring {
namespace {

using testing::small_options;
using testing::TestBus;

constexpr std::uint64_t kMsNs = 1'000'000;

class ConsumerLatencyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(bus_.ok());
    auto p = bus_->producer("billing", {"sales"});
    ASSERT_TRUE(p.ok());
    producer_ = std::move(p.value());
    auto t = producer_->resolve("sales.lead.created");
    ASSERT_TRUE(t.ok());
    type_ = *t;
  }
  // Publishes n events stamped `age_ns` in the past.
  void publish_aged(int n, std::uint64_t age_ns) {
    for (int i = 0; i < n; ++i) {
      core::PublishRequest r;
      r.type_id = type_;
      r.entity_key = "k";
      r.timestamp_ns = unix_now_ns() - age_ns;
      ASSERT_EQ(producer_->try_publish(r), core::PublishResult::kOk);
    }
  }
  static std::size_t drain(Consumer& c, std::size_t want) {
    std::size_t got = 0;
    for (int spins = 0; got < want && spins < 1'000'000; ++spins)
      got += c.poll([](const core::Event&) {}).delivered;
    return got;
  }
  ConsumerInfo info(const std::string& name) {
    for (const ConsumerInfo& c : bus_->consumers())
      if (c.name == name) return c;
    ADD_FAILURE() << "no consumer " << name;
    return {};
  }

  TestBus bus_{small_options(2, 64)};
  std::unique_ptr<Producer> producer_;
  std::uint16_t type_ = 0;
};

TEST_F(ConsumerLatencyTest, PollRecordsNowMinusPublishTimePerDeliveredEvent) {
  auto c = bus_->consumer("audit");
  ASSERT_TRUE(c.ok());
  publish_aged(10, 50 * kMsNs);
  publish_aged(10, 5 * kMsNs);
  ASSERT_EQ(drain(**c, 20), 20u);
  auto h = info("audit").latency_snapshot();
  ASSERT_TRUE(h.ok()) << h.status().to_string();
  EXPECT_EQ(h->count(), 20u);
  // Events are at least as old as stamped, and this test takes well under a second.
  EXPECT_GE(h->min(), 5 * kMsNs);
  EXPECT_LT(h->value_at_percentile(50), 5 * kMsNs + 1000 * kMsNs);
  EXPECT_GE(h->value_at_percentile(99), 50 * kMsNs * 99 / 100);  // within a bucket (<1%)
  EXPECT_LT(h->max(), 50 * kMsNs + 1000 * kMsNs);
  EXPECT_EQ(info("audit").latency->count(), 20u) << "summary line updated once per poll";
}

TEST_F(ConsumerLatencyTest, FutureTimestampsCountAsZeroAndFilteredEventsNotAtAll) {
  Bus::ConsumerOptions only_other;
  only_other.filter = "other.>";
  auto filtered = bus_->consumer("filtered", only_other);
  ASSERT_TRUE(filtered.ok());
  auto c = bus_->consumer("audit");
  ASSERT_TRUE(c.ok());
  core::PublishRequest r;
  r.type_id = type_;
  r.entity_key = "k";
  r.timestamp_ns = unix_now_ns() + 3'600'000 * kMsNs;  // an hour ahead
  ASSERT_EQ(producer_->try_publish(r), core::PublishResult::kOk);
  ASSERT_EQ(drain(**c, 1), 1u);
  auto h = info("audit").latency_snapshot();
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->count(), 1u);
  EXPECT_EQ(h->max(), 0u);
  EXPECT_EQ((*filtered)->poll([](const core::Event&) {}).delivered, 0u);
  auto f = info("filtered").latency_snapshot();
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->count(), 0u) << "only delivered events are timed";
}

TEST_F(ConsumerLatencyTest, ReattachKeepsTheHistogramAndANewConsumerStartsEmpty) {
  {
    auto c = bus_->consumer("audit");
    ASSERT_TRUE(c.ok());
    publish_aged(4, kMsNs);
    ASSERT_EQ(drain(**c, 4), 4u);
  }
  {
    auto again = bus_->consumer("audit");  // same durable consumer: its latencies stay
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(info("audit").latency_snapshot()->count(), 4u);
  }
  const std::uint32_t index = info("audit").index;
  ASSERT_TRUE(bus_->remove_consumer("audit").is_ok());
  auto fresh = bus_->consumer("newcomer");  // takes the freed index
  ASSERT_TRUE(fresh.ok());
  ASSERT_EQ((*fresh)->index(), index);
  auto h = info("newcomer").latency_snapshot();
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->count(), 0u) << "a new consumer does not inherit a previous owner's latencies";
  EXPECT_EQ(h->max(), 0u);
}

TEST_F(ConsumerLatencyTest, ScribbledCountsAreReportedAsCorruption) {
  auto c = bus_->consumer("audit");
  ASSERT_TRUE(c.ok());
  ConsumerInfo ci = info("audit");
  auto& cells = const_cast<core::HistogramCells&>(*ci.latency);
  // Two buckets whose sum wraps around 2^64: the wrapped total would look small and plausible.
  cells.counts[10].store(std::numeric_limits<std::uint64_t>::max() - 1);
  cells.counts[20].store(5);
  auto h = ci.latency_snapshot();
  ASSERT_FALSE(h.ok());
  EXPECT_EQ(h.status().code(), Code::kCorruption);
  EXPECT_NE(h.status().message().find("audit"), std::string::npos) << h.status().to_string();
  // No wrap, but more events than could ever have been delivered.
  cells.counts[10].store(std::uint64_t{1} << 63);
  cells.counts[20].store(0);
  EXPECT_EQ(ci.latency_snapshot().status().code(), Code::kCorruption);
  cells.counts[10].store(0);
  EXPECT_TRUE(ci.latency_snapshot().ok());
}

TEST(ConsumerLatencyBigPollTest, APollOfMoreThan64EventsRecordsEveryOne) {
  // Stamps are buffered 64 at a time inside a poll; the 65th onwards take the in-loop flush.
  TestBus bus(small_options(1, 256));
  ASSERT_TRUE(bus.ok());
  auto c = bus->consumer("audit");
  ASSERT_TRUE(c.ok());
  auto p = bus->producer("billing", {"sales"});
  ASSERT_TRUE(p.ok());
  auto t = (*p)->resolve("sales.lead.created");
  ASSERT_TRUE(t.ok());
  for (int i = 0; i < 200; ++i) {
    core::PublishRequest r;
    r.type_id = *t;
    r.entity_key = "k";
    r.timestamp_ns = unix_now_ns() - (i < 100 ? 1 : 100) * kMsNs;
    ASSERT_EQ((*p)->try_publish(r), core::PublishResult::kOk);
  }
  ASSERT_EQ((*c)->poll([](const core::Event&) {}, 256).delivered, 200u) << "one poll";
  auto h = bus->consumers().at(0).latency_snapshot();
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->count(), 200u);
  EXPECT_EQ(bus->consumers().at(0).latency->count(), 200u) << "summary line agrees";
  EXPECT_GE(h->value_at_percentile(25), kMsNs);
  EXPECT_LT(h->value_at_percentile(25), 100 * kMsNs * 99 / 100) << "the 1 ms-old half";
  EXPECT_GE(h->value_at_percentile(75), 100 * kMsNs * 99 / 100) << "the 100 ms-old half";
}

TEST(ConsumerLatencyInfoTest, InfoNotListedFromABusIsRefused) {
  ConsumerInfo detached;
  detached.name = "x";
  EXPECT_EQ(detached.latency_snapshot().status().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace evring
