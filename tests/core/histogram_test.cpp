// Unit and stress tests for evring/core/histogram.h. The concurrency test checks sums only; it
// does not prove the (relaxed) orderings right, which the header argues instead.
#include "evring/core/histogram.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace evring::core {
namespace {

constexpr std::uint64_t kTwo40 = std::uint64_t{1} << 40;

// Log-uniform values over the tracked range, so every power-of-two range gets hit.
std::vector<std::uint64_t> log_uniform_values(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> bits(0, 40);
  std::vector<std::uint64_t> values(n);
  for (auto& v : values) {
    const int b = bits(rng);
    v = b == 0 ? 0 : (rng() & ((std::uint64_t{1} << b) - 1)) | (std::uint64_t{1} << (b - 1));
  }
  return values;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::string hgrm_of(const Histogram& h, double scaling = 1.0) {
  std::ostringstream out;
  h.write_hgrm(out, scaling);
  return out.str();
}

TEST(HistogramLayout, GoldenLayoutMatchesVersionOne) {
  // Changing any of these changes the bytes in a segment: bump kHistogramLayoutVersion too.
  EXPECT_EQ(kHistogramLayoutVersion, 1u);
  EXPECT_EQ(sizeof(HistogramCells), 34880u);
  EXPECT_EQ(alignof(HistogramCells), 64u);
  EXPECT_EQ(offsetof(HistogramCells, max_ns), 24u);
  EXPECT_EQ(offsetof(HistogramCells, counts), 64u);
  EXPECT_EQ(kHistogramCountsLen, 4352u);
  EXPECT_EQ(histogram_bucket_index(1000),
            506u);  // top bit 9: shift 2, sub 1000>>2 = 250; 2*128+250
}

TEST(HistogramBuckets, ValuesBelowSubBucketCountAreExact) {
  Histogram h;
  for (std::uint64_t v = 0; v < kHistogramSubBucketCount; ++v) {
    EXPECT_EQ(histogram_bucket_index(v), v);
    EXPECT_EQ(histogram_bucket_lowest_ns(v), v);
    EXPECT_EQ(histogram_bucket_highest_ns(v), v);
    h.record(v);
  }
  for (std::uint64_t v = 0; v < kHistogramSubBucketCount; ++v) {
    const double p =
        100.0 * static_cast<double>(v + 1) / static_cast<double>(kHistogramSubBucketCount);
    EXPECT_EQ(h.value_at_percentile(p), v) << "p=" << p;
  }
}

TEST(HistogramBuckets, BucketsTileTheRangeWithBoundedWidth) {
  EXPECT_EQ(histogram_bucket_lowest_ns(0), 0u);
  for (std::size_t i = 0; i + 1 < kHistogramCountsLen; ++i) {
    ASSERT_EQ(histogram_bucket_highest_ns(i) + 1, histogram_bucket_lowest_ns(i + 1)) << i;
    ASSERT_EQ(histogram_bucket_index(histogram_bucket_lowest_ns(i)), i);
    ASSERT_EQ(histogram_bucket_index(histogram_bucket_highest_ns(i)), i);
    // Relative width of every bucket is below 2^-(kSubBucketBits-1) = 1/128.
    ASSERT_LT(histogram_bucket_width_ns(i) * 128,
              std::max<std::uint64_t>(histogram_bucket_lowest_ns(i), 1) + 128)
        << i;
  }
  EXPECT_EQ(histogram_bucket_highest_ns(kHistogramCountsLen - 1), kTwo40 - 1);
}

TEST(Histogram, PercentilesWithinRelativeErrorOfExactSortedPercentiles) {
  const auto values = log_uniform_values(200000, 42);
  Histogram h;
  for (auto v : values) h.record(v);
  auto sorted = values;
  std::sort(sorted.begin(), sorted.end());
  const double n = static_cast<double>(sorted.size());
  for (double p :
       {0.0, 0.001, 1.0, 10.0, 25.0, 50.0, 75.0, 90.0, 99.0, 99.9, 99.99, 99.999, 100.0}) {
    const auto rank = std::max<std::size_t>(1, static_cast<std::size_t>(std::ceil(p / 100.0 * n)));
    const std::uint64_t exact = sorted[rank - 1];
    const std::uint64_t got = h.value_at_percentile(p);
    EXPECT_EQ(histogram_bucket_index(got), histogram_bucket_index(exact)) << "p=" << p;
    const double error = std::fabs(static_cast<double>(got) - static_cast<double>(exact));
    EXPECT_LE(error, static_cast<double>(exact) / 128.0) << "p=" << p << " exact=" << exact;
  }
}

TEST(Histogram, TracksExactMinMaxCountAndMean) {
  Histogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.max(), 0u);
  EXPECT_EQ(h.mean(), 0.0);
  EXPECT_EQ(h.value_at_percentile(50), 0u);
  h.record(1000003);
  h.record(77);
  h.record_n(5000, 3);
  h.record_n(9, 0);  // records nothing
  EXPECT_EQ(h.count(), 5u);
  EXPECT_EQ(h.min(), 77u);
  EXPECT_EQ(h.max(), 1000003u);
  EXPECT_DOUBLE_EQ(h.mean(), (1000003.0 + 77.0 + 3 * 5000.0) / 5.0);
  EXPECT_EQ(h.count_at_index(histogram_bucket_index(5000)), 3u);
  h.reset();
  EXPECT_EQ(h, Histogram());
  h.record(12);
  EXPECT_EQ(h.min(), 12u);  // reset restored the "no minimum" sentinel
}

// A bucket's highest equivalent value can lie above the largest value recorded (87008 sits in a
// bucket reaching 87039): percentiles stop at the exact max, and at the exact min below.
TEST(Histogram, PercentilesNeverLeaveTheRecordedRange) {
  Histogram h;
  h.record_n(700, 9999);
  h.record(87008);
  EXPECT_GT(histogram_bucket_highest_ns(histogram_bucket_index(87008)), 87008u);
  EXPECT_EQ(h.value_at_percentile(100), 87008u);
  EXPECT_EQ(h.value_at_percentile(99.999), 87008u);
  EXPECT_LE(h.value_at_percentile(99.99), h.max());
  Histogram low;
  low.record(100003);
  EXPECT_GT(100003u, histogram_bucket_lowest_ns(histogram_bucket_index(100003)));
  EXPECT_EQ(low.value_at_percentile(0), 100003u);
  EXPECT_EQ(low.value_at_percentile(50), 100003u);
}

TEST(Histogram, MergeEqualsRecordingBoth) {
  const auto a_values = log_uniform_values(5000, 1);
  const auto b_values = log_uniform_values(7000, 2);
  Histogram a, b, both;
  for (auto v : a_values) {
    a.record(v);
    both.record(v);
  }
  for (auto v : b_values) {
    b.record(v);
    both.record(v);
  }
  a.merge(b);
  EXPECT_EQ(a, both);
  EXPECT_EQ(a.count(), 12000u);
  EXPECT_EQ(a.value_at_percentile(99.9), both.value_at_percentile(99.9));
  Histogram empty;
  empty.merge(b);
  EXPECT_EQ(empty, b);
}

TEST(HistogramCells, SnapshotEqualsInProcessHistogramFedTheSameValues) {
  auto cells = std::make_unique<HistogramCells>();
  Histogram h;
  for (auto v : log_uniform_values(20000, 7)) {
    cells->record(v);
    h.record(v);
  }
  cells->record_n(123456, 4);
  h.record_n(123456, 4);
  EXPECT_EQ(cells->count(), 20004u);
  const Histogram snap = Histogram::snapshot(*cells);
  EXPECT_EQ(snap, h);
  EXPECT_EQ(snap.min(), h.min());
  EXPECT_EQ(snap.max(), h.max());
  EXPECT_DOUBLE_EQ(snap.mean(), h.mean());
  EXPECT_EQ(hgrm_of(snap), hgrm_of(h));
}

TEST(HistogramCells, ZeroedMemoryIsAnEmptyHistogram) {
  // What a freshly created segment looks like: bytes that no constructor has touched.
  alignas(HistogramCells) static unsigned char bytes[sizeof(HistogramCells)];
  std::memset(bytes, 0xA5, sizeof bytes);  // so a pass cannot come from leftover zeroes...
  std::memset(bytes, 0, sizeof bytes);     // ...but only from the zero fill itself
  auto* cells = std::launder(reinterpret_cast<HistogramCells*>(bytes));
  EXPECT_EQ(cells->count(), 0u);
  const Histogram empty = Histogram::snapshot(*cells);
  EXPECT_EQ(empty, Histogram());
  EXPECT_EQ(empty.count(), 0u);
  EXPECT_EQ(empty.min(), 0u);
  EXPECT_EQ(empty.max(), 0u);
  // The zero encoding of min must mean "none yet", not "0 ns": the first value becomes the min.
  cells->record(500);
  cells->record(700);
  const Histogram one = Histogram::snapshot(*cells);
  EXPECT_EQ(one.count(), 2u);
  EXPECT_EQ(one.min(), 500u);
  EXPECT_EQ(one.max(), 700u);
}

TEST(HistogramCells, ConcurrentRecordingFromFourThreadsSumsExactly) {
  constexpr int kThreads = 4;
  constexpr std::uint64_t kPerThread = 250000;
  auto cells = std::make_unique<HistogramCells>();
  auto value_of = [](int t, std::uint64_t i) {
    return (i * 2654435761u + static_cast<std::uint64_t>(t)) % 5000000 + 3;
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&cells, &value_of, t] {
      for (std::uint64_t i = 0; i < kPerThread; ++i) cells->record(value_of(t, i));
    });
  }
  for (auto& th : threads) th.join();
  Histogram expected;
  for (int t = 0; t < kThreads; ++t) {
    for (std::uint64_t i = 0; i < kPerThread; ++i) expected.record(value_of(t, i));
  }
  EXPECT_EQ(cells->count(), kThreads * kPerThread);
  const Histogram snap = Histogram::snapshot(*cells);
  EXPECT_EQ(snap.count(), kThreads * kPerThread);
  EXPECT_EQ(snap.min(), expected.min());
  EXPECT_EQ(snap.max(), expected.max());
  EXPECT_EQ(snap, expected);
}

TEST(Histogram, ValuesAboveTrackedRangeClampButMaxIsExact) {
  Histogram h;
  auto cells = std::make_unique<HistogramCells>();
  for (std::uint64_t v :
       {kTwo40 + 5, std::uint64_t{1} << 50, ~std::uint64_t{0}, std::uint64_t{10}}) {
    h.record(v);
    cells->record(v);
  }
  EXPECT_EQ(h.count(), 4u);
  EXPECT_EQ(h.count_at_index(kHistogramCountsLen - 1), 3u);
  EXPECT_EQ(h.max(), ~std::uint64_t{0});
  EXPECT_EQ(h.min(), 10u);
  EXPECT_EQ(h.value_at_percentile(100.0), kTwo40 - 1);
  EXPECT_DOUBLE_EQ(h.mean(), (3.0 * static_cast<double>(kTwo40 - 1) + 10.0) / 4.0);
  EXPECT_EQ(Histogram::snapshot(*cells), h);
  EXPECT_EQ(Histogram::snapshot(*cells).max(), ~std::uint64_t{0});
}

// Golden output for the values 1..100: byte-identical to HdrHistogram 2.1.11 (Java)
// outputPercentileDistribution of a Histogram(1, 2^40 - 1, 2 significant digits), which has the
// same 256 sub-buckets, when its value format is widened from 2 to 3 decimals.
constexpr const char* kOneToHundredHgrm =
    "       Value     Percentile TotalCount 1/(1-Percentile)\n"
    "\n"
    "       1.000 0.000000000000          1           1.00\n"
    "      10.000 0.100000000000         10           1.11\n"
    "      20.000 0.200000000000         20           1.25\n"
    "      30.000 0.300000000000         30           1.43\n"
    "      40.000 0.400000000000         40           1.67\n"
    "      50.000 0.500000000000         50           2.00\n"
    "      55.000 0.550000000000         55           2.22\n"
    "      60.000 0.600000000000         60           2.50\n"
    "      65.000 0.650000000000         65           2.86\n"
    "      70.000 0.700000000000         70           3.33\n"
    "      75.000 0.750000000000         75           4.00\n"
    "      78.000 0.775000000000         78           4.44\n"
    "      80.000 0.800000000000         80           5.00\n"
    "      83.000 0.825000000000         83           5.71\n"
    "      85.000 0.850000000000         85           6.67\n"
    "      88.000 0.875000000000         88           8.00\n"
    "      89.000 0.887500000000         89           8.89\n"
    "      90.000 0.900000000000         90          10.00\n"
    "      92.000 0.912500000000         92          11.43\n"
    "      93.000 0.925000000000         93          13.33\n"
    "      94.000 0.937500000000         94          16.00\n"
    "      95.000 0.943750000000         95          17.78\n"
    "      95.000 0.950000000000         95          20.00\n"
    "      96.000 0.956250000000         96          22.86\n"
    "      97.000 0.962500000000         97          26.67\n"
    "      97.000 0.968750000000         97          32.00\n"
    "      98.000 0.971875000000         98          35.56\n"
    "      98.000 0.975000000000         98          40.00\n"
    "      98.000 0.978125000000         98          45.71\n"
    "      99.000 0.981250000000         99          53.33\n"
    "      99.000 0.984375000000         99          64.00\n"
    "      99.000 0.985937500000         99          71.11\n"
    "      99.000 0.987500000000         99          80.00\n"
    "      99.000 0.989062500000         99          91.43\n"
    "     100.000 0.990625000000        100         106.67\n"
    "     100.000 1.000000000000        100\n"
    "#[Mean    =       50.500, StdDeviation   =       28.866]\n"
    "#[Max     =      100.000, Total count    =          100]\n"
    "#[Buckets =           33, SubBuckets     =          256]\n";

TEST(HistogramHgrm, MatchesHdrHistogramOutputForOneToHundred) {
  Histogram h;
  for (std::uint64_t v = 1; v <= 100; ++v) h.record(v);
  EXPECT_EQ(hgrm_of(h), kOneToHundredHgrm);
}

TEST(HistogramHgrm, RoundsTiesHalfUpLikeJavasFormatter) {
  // The 1/(1-p) tick level 0.9995361328125 is a tie at 12 decimals: HdrHistogram (Java) prints
  // ...813 where printf's round-half-even would print ...812. Row checked against HdrHistogram
  // 2.1.11 with ticks_per_half_distance = 10.
  Histogram h;
  h.record_n(1, 9999);
  h.record(2);
  std::ostringstream out;
  h.write_hgrm(out, 1.0, 10);
  EXPECT_NE(out.str().find("\n       1.000 0.999536132813       9999        2155.79\n"),
            std::string::npos)
      << out.str();
  EXPECT_NE(out.str().find("\n       2.000 1.000000000000      10000\n#[Mean    =        1.000,"),
            std::string::npos);
}

TEST(HistogramHgrm, RowsAreMonotonicAndEndAtOneWithTheTotalCount) {
  Histogram h;
  for (auto v : log_uniform_values(100000, 9)) h.record(v);
  const auto lines = lines_of(hgrm_of(h, 1000.0));
  ASSERT_GE(lines.size(), 6u);
  EXPECT_EQ(lines[0], "       Value     Percentile TotalCount 1/(1-Percentile)");
  EXPECT_EQ(lines[1], "");
  double last_value = -1, last_percentile = -1;
  unsigned long long last_count = 0;
  std::size_t rows = 0;
  for (std::size_t i = 2; i + 3 < lines.size(); ++i, ++rows) {
    double value = 0, percentile = 0, inverse = 0;
    unsigned long long count = 0;
    const int fields =
        std::sscanf(lines[i].c_str(), "%lf %lf %llu %lf", &value, &percentile, &count, &inverse);
    const bool last_row = i + 4 == lines.size();
    ASSERT_EQ(fields, last_row ? 3 : 4) << lines[i];
    EXPECT_GE(value, last_value) << lines[i];
    EXPECT_GT(percentile, last_percentile) << lines[i];
    EXPECT_GE(count, last_count) << lines[i];
    last_value = value;
    last_percentile = percentile;
    last_count = count;
  }
  EXPECT_GT(rows, 50u);
  const std::string& last = lines[lines.size() - 4];
  char last_percentile_text[32] = {};
  ASSERT_EQ(std::sscanf(last.c_str(), "%*s %31s", last_percentile_text), 1) << last;
  EXPECT_STREQ(last_percentile_text, "1.000000000000") << last;
  EXPECT_EQ(last_count, 100000u);
  // Values are printed in the requested unit (us here): the last row is the max / 1000.
  EXPECT_DOUBLE_EQ(last_value, static_cast<double>(h.value_at_percentile(100)) / 1000.0);
  unsigned long long trailer_count = 0;
  double trailer_max = 0;
  ASSERT_EQ(std::sscanf(lines[lines.size() - 2].c_str(), "#[Max     = %lf, Total count    = %llu]",
                        &trailer_max, &trailer_count),
            2);
  EXPECT_EQ(trailer_count, 100000u);
  EXPECT_NEAR(trailer_max, static_cast<double>(h.max()) / 1000.0, 0.0005);
  EXPECT_EQ(lines.back(), "#[Buckets =           33, SubBuckets     =          256]");
}

TEST(HistogramHgrm, EmptyHistogramHasHeaderAndTrailerOnly) {
  const auto lines = lines_of(hgrm_of(Histogram()));
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_EQ(lines[2], "#[Mean    =        0.000, StdDeviation   =        0.000]");
  EXPECT_EQ(lines[3], "#[Max     =        0.000, Total count    =            0]");
}

}  // namespace
}  // namespace evring::core
