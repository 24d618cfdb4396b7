// Small statistics helpers for benchmarks.
//
//  - summarize(): median / min / max of one figure across repeated runs.
//  - LatencyHistogram: fixed-memory histogram of non-negative integer samples (ns), exact below
//    1024 and within 1/512 (0.2 %) relative error above, for percentiles without keeping samples.
//  - RoundTripSchedule: which round trips of a timed loop are warm-up and when the loop ends.
//
// Thread safety: none; one histogram per thread, merge() afterwards.
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>
#include <stdexcept>
#include <vector>

namespace evring::bench {

struct Summary {
  double median = 0;
  double min = 0;
  double max = 0;
};

// REQUIRES: !values.empty(). Median of an even count is the mean of the two middle values.
inline Summary summarize(std::vector<double> values) {
  if (values.empty()) throw std::invalid_argument("summarize: no values");
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  const double median = n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
  return Summary{median, values.front(), values.back()};
}

class LatencyHistogram {
 public:
  // Buckets: [0, 1024) one per value; then for each power of two 2^e (e >= 10) 512 buckets
  // keyed by the top 10 significant bits, up to 2^64.
  static constexpr uint64_t kExact = 1024;
  static constexpr uint64_t kSubBuckets = 512;
  static constexpr size_t kBuckets = kExact + (64 - 10) * kSubBuckets;

  LatencyHistogram() : counts_(kBuckets, 0) {}

  void record(uint64_t value) {
    ++counts_[index_of(value)];
    ++count_;
    max_ = std::max(max_, value);
    min_ = std::min(min_, value);
  }

  void merge(const LatencyHistogram& other) {
    for (size_t i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
    count_ += other.count_;
    max_ = std::max(max_, other.max_);
    min_ = std::min(min_, other.min_);
  }

  uint64_t count() const { return count_; }
  uint64_t max() const { return count_ == 0 ? 0 : max_; }
  uint64_t min() const { return count_ == 0 ? 0 : min_; }

  // Smallest recorded bucket value v such that at least q of the samples are <= v.
  // q in [0, 1]; returns 0 for an empty histogram. Values above 1024 are bucket midpoints.
  double percentile(double q) const {
    if (count_ == 0) return 0;
    q = std::clamp(q, 0.0, 1.0);
    auto rank = static_cast<uint64_t>(q * static_cast<double>(count_));
    if (rank == 0) rank = 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < kBuckets; ++i) {
      seen += counts_[i];
      if (seen >= rank) {
        return std::clamp(value_of(i), static_cast<double>(min()), static_cast<double>(max()));
      }
    }
    return static_cast<double>(max());
  }

 private:
  static size_t index_of(uint64_t v) {
    if (v < kExact) return static_cast<size_t>(v);
    const int e = 63 - std::countl_zero(v);  // e >= 10
    const int shift = e - 9;
    const uint64_t mantissa = v >> shift;  // in [512, 1024)
    return static_cast<size_t>(kExact + static_cast<uint64_t>(e - 10) * kSubBuckets +
                               (mantissa - kSubBuckets));
  }

  static double value_of(size_t index) {
    if (index < kExact) return static_cast<double>(index);
    const size_t rest = index - kExact;
    const int e = static_cast<int>(rest / kSubBuckets) + 10;
    const uint64_t mantissa = kSubBuckets + rest % kSubBuckets;
    const int shift = e - 9;
    const double low = static_cast<double>(mantissa << shift);
    return low + static_cast<double>(uint64_t{1} << shift) / 2;
  }

  std::vector<uint64_t> counts_;
  uint64_t count_ = 0;
  uint64_t max_ = 0;
  uint64_t min_ = UINT64_MAX;
};

// The schedule of a round-trip loop that runs for `seconds` from `start_ns`:
//  - warm-up, not recorded: the first kWarmupRoundTrips round trips, or every round trip that
//    starts in the first tenth of the run if that ends sooner. Page faults, cold caches and
//    the first wake-ups land there. The time bound matters on a loaded machine (a shared CI
//    runner), where two spinning processes on too few cores may manage only a few hundred round
//    trips in a short run: a count alone would then leave nothing recorded;
//  - the end: the loop goes on past `seconds` until it has recorded one round trip, so a
//    report always has a sample. The callers' watchdogs bound a peer that never answers.
class RoundTripSchedule {
 public:
  static constexpr uint64_t kWarmupRoundTrips = 1000;

  RoundTripSchedule(uint64_t start_ns, double seconds)
      : warm_until_ns_(start_ns + static_cast<uint64_t>(seconds * 1e8)),
        end_ns_(start_ns + static_cast<uint64_t>(seconds * 1e9)) {}

  // True for round trip number `index` (from 0) that started at `started_ns`.
  bool warming_up(uint64_t index, uint64_t started_ns) const {
    return index < kWarmupRoundTrips && started_ns < warm_until_ns_;
  }
  // True while a loop that has recorded `recorded` round trips should start another at `now_ns`.
  bool go_on(uint64_t now_ns, uint64_t recorded) const {
    return now_ns < end_ns_ || recorded == 0;
  }

 private:
  uint64_t warm_until_ns_;
  uint64_t end_ns_;
};

}  // namespace evring::bench
