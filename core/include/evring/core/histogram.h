#pragma once
// Latency histograms over uint64 nanosecond values, HdrHistogram-style log-linear buckets.
//
// Two types share one bucket layout (histogram_bucket_index() and its inverses below):
//  - HistogramCells: lives in a shared-memory segment. Writers (usually the one consumer process
//    that owns it, but any number is safe) call record(); monitors in other processes call
//    Histogram::snapshot() on it while it is being written. Zero-filled bytes are a valid empty
//    histogram, so a segment created from fresh (zeroed) pages needs no constructor run on it.
//  - Histogram: an ordinary, non-atomic value for benchmarks and for snapshots: percentiles,
//    merge, mean, and the HdrHistogram "percentile distribution" text (.hgrm) that the
//    HdrHistogram plotters read.
//
// Buckets. With B = kHistogramSubBucketBits (8):
//  - values 0 .. 2^B - 1 each have their own bucket (exact);
//  - every range [2^k, 2^(k+1)) with k >= B is split into 2^(B-1) equal sub-buckets of width
//    2^(k-B+1), so a value is known to within 2^-(B-1) = 1/128 < 1% of itself (HdrHistogram with
//    2 significant digits uses the same 256 sub-buckets). B = 7 would only give 1/64 = 1.6%.
//  - values up to kHistogramHighestTrackableNs = 2^40 - 1 ns (~18.3 minutes) are tracked; larger
//    ones are counted in the top bucket (clamped) while max keeps the true value.
//
// Thread safety:
//  - HistogramCells::record / record_n: any thread of any process, concurrently (atomic RMWs).
//  - Histogram::snapshot(cells): any thread of any process, concurrently with writers; the result
//    is not an atomic cut (see "Consistency" below).
//  - Histogram: an ordinary value type; external synchronisation as for any std container.
#include <algorithm>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <type_traits>
#include <vector>

namespace evring::core {

// Bump whenever a byte of HistogramCells moves or changes meaning (including any constant below
// that changes the bucket layout); whoever embeds HistogramCells in a segment folds this into the
// segment's layout version so that open() refuses a mismatch.
inline constexpr std::uint32_t kHistogramLayoutVersion = 1;

inline constexpr unsigned kHistogramSubBucketBits = 8;
inline constexpr unsigned kHistogramMaxValueBits = 40;
inline constexpr std::uint64_t kHistogramSubBucketCount = std::uint64_t{1}
                                                          << kHistogramSubBucketBits;
inline constexpr std::uint64_t kHistogramSubBucketHalfCount = kHistogramSubBucketCount / 2;
inline constexpr std::uint64_t kHistogramHighestTrackableNs =
    (std::uint64_t{1} << kHistogramMaxValueBits) - 1;
// HdrHistogram's "Buckets": power-of-two ranges, the first one holding the exact values.
inline constexpr std::size_t kHistogramBucketCount =
    kHistogramMaxValueBits - kHistogramSubBucketBits + 1;
// Number of counters: the exact range plus one half-count of sub-buckets per further range.
inline constexpr std::size_t kHistogramCountsLen =
    (kHistogramBucketCount + 1) * kHistogramSubBucketHalfCount;

// ---- bucket math shared by HistogramCells and Histogram ----------------------------------------

// Index of the counter that value_ns falls into; values above kHistogramHighestTrackableNs clamp
// to the top counter. Branch-free apart from the clamp.
[[nodiscard]] constexpr std::size_t histogram_bucket_index(std::uint64_t value_ns) noexcept {
  const std::uint64_t value = std::min(value_ns, kHistogramHighestTrackableNs);
  // How far the value's top bit lies above the exact range: 0 for value < 2^B; the OR keeps the
  // top bit at >= B - 1 so that small values need no branch.
  const auto shift =
      static_cast<unsigned>(63 - std::countl_zero(value | (kHistogramSubBucketCount - 1))) -
      (kHistogramSubBucketBits - 1);
  // value >> shift lies in [2^(B-1), 2^B) once shift > 0, so ranges tile the index space densely.
  return (std::size_t{shift} << (kHistogramSubBucketBits - 1)) +
         static_cast<std::size_t>(value >> shift);
}

// Width of counter `index` in nanoseconds (1 in the exact range).
// REQUIRES: index < kHistogramCountsLen.
[[nodiscard]] constexpr std::uint64_t histogram_bucket_width_ns(std::size_t index) noexcept {
  if (index < kHistogramSubBucketCount) return 1;
  return std::uint64_t{1} << ((index >> (kHistogramSubBucketBits - 1)) - 1);
}

// Smallest value that maps to counter `index`. REQUIRES: index < kHistogramCountsLen.
[[nodiscard]] constexpr std::uint64_t histogram_bucket_lowest_ns(std::size_t index) noexcept {
  if (index < kHistogramSubBucketCount) return index;
  const std::uint64_t sub =
      (index & (kHistogramSubBucketHalfCount - 1)) + kHistogramSubBucketHalfCount;
  return sub << ((index >> (kHistogramSubBucketBits - 1)) - 1);
}

// Largest value that maps to counter `index` (HdrHistogram's "highest equivalent value").
[[nodiscard]] constexpr std::uint64_t histogram_bucket_highest_ns(std::size_t index) noexcept {
  return histogram_bucket_lowest_ns(index) + histogram_bucket_width_ns(index) - 1;
}

static_assert(histogram_bucket_index(kHistogramSubBucketCount - 1) == kHistogramSubBucketCount - 1);
static_assert(histogram_bucket_index(kHistogramSubBucketCount) == kHistogramSubBucketCount);
static_assert(histogram_bucket_index(kHistogramHighestTrackableNs) == kHistogramCountsLen - 1);
static_assert(histogram_bucket_index(~std::uint64_t{0}) == kHistogramCountsLen - 1);
static_assert(histogram_bucket_highest_ns(kHistogramCountsLen - 1) == kHistogramHighestTrackableNs);
static_assert(histogram_bucket_lowest_ns(histogram_bucket_index(1000003)) <= 1000003 &&
              histogram_bucket_highest_ns(histogram_bucket_index(1000003)) >= 1000003);

// ---------------------------------------------------------------------------------------------
// HistogramCells (34,880 B, 64-aligned; placed by the shm layer at a 64-aligned offset)
//
//  +--------------------------------+  0
//  | total_count sum_ns min max pad |  64 B: summary line, written by every record()
//  +--------------------------------+  64
//  | counts[kHistogramCountsLen]    |  4352 x 8 B: one counter per bucket
//  +--------------------------------+  34880
//
// | off | size  | field                    | writer / publication                               |
// |   0 |     8 | total_count (atomic)     | record(): fetch_add(n, relaxed)                    |
// |   8 |     8 | sum_ns (atomic)          | record(): fetch_add(min(v, highest) * n, relaxed)  |
// |  16 |     8 | min_ns_complement (atom) | record(): CAS-max of ~v, relaxed; 0 = no values    |
// |  24 |     8 | max_ns (atomic)          | record(): CAS-max of v (true value), relaxed       |
// |  32 |    32 | reserved                 | zero                                               |
// |  64 | 34816 | counts[i] (atomic)       | record(): fetch_add(n, relaxed) on its bucket      |
//
// Native byte order (little-endian on every supported target). All-zero bytes are the empty
// histogram: min is stored complemented so that 0 decodes to "no minimum yet" (UINT64_MAX).
// Not trivially copyable (std::atomic has no copy); read it only through Histogram::snapshot().
//
// Why relaxed is enough everywhere: every field is a counter or an extreme in its own right, and
// no other memory is published through it, so there is nothing for an acquire to synchronise
// with. Atomicity of fetch_add / compare_exchange (not ordering) is what makes several writers
// safe: no increment is lost and min/max only move outward. Per-location coherence still
// guarantees that a monitor's successive snapshots see every counter non-decreasing.
//
// Consistency: a snapshot is not a single cut. A record() in flight on another core (or one whose
// process died between its steps) may show in counts[] but not yet in total_count/sum_ns/min/max,
// or the reverse, by at most the n of the records in flight. snapshot() therefore takes its count
// from the sum of counts[] (so percentiles are self-consistent) and pulls min/max into the range
// of the outermost non-empty buckets; total_count is for cheap "how many so far" reads.
// ---------------------------------------------------------------------------------------------
struct alignas(64) HistogramCells {
  std::atomic<std::uint64_t> total_count;
  std::atomic<std::uint64_t> sum_ns;
  std::atomic<std::uint64_t> min_ns_complement;
  std::atomic<std::uint64_t> max_ns;
  std::uint8_t reserved[32];
  // Counters start on their own line, away from the summary words that every record() writes.
  std::atomic<std::uint64_t> counts[kHistogramCountsLen];

  // Records one value; wait-free apart from the min/max CAS loops, which retry only while another
  // writer is moving the same extreme outward. No allocation, no exceptions.
  void record(std::uint64_t value_ns) noexcept { record_n(value_ns, 1); }
  // Records `n` occurrences of value_ns (n == 0 records nothing).
  void record_n(std::uint64_t value_ns, std::uint64_t n) noexcept;
  // Values recorded so far, without a snapshot (may lead or lag counts[] by records in flight).
  [[nodiscard]] std::uint64_t count() const noexcept {
    // relaxed: a lone counter; nothing else is read on the strength of it.
    return total_count.load(std::memory_order_relaxed);
  }
};
static_assert(std::atomic<std::uint64_t>::is_always_lock_free,
              "cells are shared across processes: the atomics must not hide a process-local lock");
static_assert(sizeof(std::atomic<std::uint64_t>) == 8 && alignof(std::atomic<std::uint64_t>) == 8,
              "std::atomic<uint64_t> must have the bytes of a uint64_t so zeroed pages read as 0");
static_assert(std::is_standard_layout_v<HistogramCells>,
              "offsets must be meaningful across builds");
static_assert(std::is_trivially_destructible_v<HistogramCells>,
              "segments are unmapped, not destroyed");
static_assert(offsetof(HistogramCells, total_count) == 0);
static_assert(offsetof(HistogramCells, sum_ns) == 8);
static_assert(offsetof(HistogramCells, min_ns_complement) == 16);
static_assert(offsetof(HistogramCells, max_ns) == 24);
static_assert(offsetof(HistogramCells, counts) == 64);
static_assert(kHistogramCountsLen == 4352);
static_assert(sizeof(HistogramCells) == 34880);
static_assert(alignof(HistogramCells) == 64);

inline void HistogramCells::record_n(std::uint64_t value_ns, std::uint64_t n) noexcept {
  if (n == 0) return;
  // relaxed (all five): independent counters/extremes, nothing else is published; see above.
  counts[histogram_bucket_index(value_ns)].fetch_add(n, std::memory_order_relaxed);
  total_count.fetch_add(n, std::memory_order_relaxed);
  sum_ns.fetch_add(std::min(value_ns, kHistogramHighestTrackableNs) * n, std::memory_order_relaxed);
  const std::uint64_t complement = ~value_ns;
  std::uint64_t seen = min_ns_complement.load(std::memory_order_relaxed);
  while (complement > seen &&
         !min_ns_complement.compare_exchange_weak(seen, complement, std::memory_order_relaxed)) {
  }
  seen = max_ns.load(std::memory_order_relaxed);
  while (value_ns > seen &&
         !max_ns.compare_exchange_weak(seen, value_ns, std::memory_order_relaxed)) {
  }
}

// ---------------------------------------------------------------------------------------------
// Histogram: plain in-process histogram with the same buckets. Holds its counters on the heap
// (34 KiB), allocated by the constructor; record() never allocates.
// ---------------------------------------------------------------------------------------------
class Histogram {
 public:
  Histogram();

  // Copies the live cells (see HistogramCells "Consistency"). Safe while writers run.
  [[nodiscard]] static Histogram snapshot(const HistogramCells& cells);

  void record(std::uint64_t value_ns) noexcept { record_n(value_ns, 1); }
  void record_n(std::uint64_t value_ns, std::uint64_t n) noexcept;
  // Adds every value of `other`: the result equals recording both inputs into one histogram.
  void merge(const Histogram& other) noexcept;
  // Back to empty, keeping the allocation.
  void reset() noexcept;

  // HdrHistogram semantics: `percentile` in [0, 100] (clamped); returns the highest value
  // equivalent to (in the same bucket as) the value of rank ceil(percentile/100 * count), rank
  // at least 1; at percentile 0 the lowest equivalent value instead; never outside the exact
  // [min(), max()] recorded. 0 when empty.
  [[nodiscard]] std::uint64_t value_at_percentile(double percentile) const noexcept;
  // A bucket bound clamped to the exact [min(), max()] (used by percentiles and .hgrm rows).
  [[nodiscard]] std::uint64_t clamped(std::uint64_t bucket_value) const noexcept;
  [[nodiscard]] std::uint64_t count() const noexcept { return total_count_; }
  // Exact smallest / largest value recorded (max is the true value even above the tracked
  // range); 0 when empty.
  [[nodiscard]] std::uint64_t min() const noexcept { return total_count_ == 0 ? 0 : min_ns_; }
  [[nodiscard]] std::uint64_t max() const noexcept { return max_ns_; }
  // Exact mean of the values, each clamped to kHistogramHighestTrackableNs; 0 when empty.
  [[nodiscard]] double mean() const noexcept;
  // HdrHistogram's: each value taken as its bucket's middle, deviation from mean(); 0 when empty.
  [[nodiscard]] double std_deviation() const noexcept;
  // Raw counter of bucket `index`. REQUIRES: index < kHistogramCountsLen.
  [[nodiscard]] std::uint64_t count_at_index(std::size_t index) const noexcept {
    return counts_[index];
  }

  // Writes HdrHistogram's outputPercentileDistribution text (classic, not CSV) byte for byte in
  // its format: header, one row per percentile tick (ticks_per_half_distance ticks in each half of
  // the remaining distance to 100%), the 100% row without its infinite last column, and the
  // Mean/StdDeviation, Max/Total count, Buckets/SubBuckets trailer. Values are divided by
  // output_value_unit_scaling (1000.0 prints microseconds) and printed with 3 decimals. Row values
  // are bucket highest-equivalent values; the trailer's Max is max(), the true value.
  // The caller checks `out` for errors.
  void write_hgrm(std::ostream& out, double output_value_unit_scaling = 1.0,
                  int ticks_per_half_distance = 5) const;

  friend bool operator==(const Histogram&, const Histogram&) = default;

 private:
  static constexpr std::uint64_t kNoMin = ~std::uint64_t{0};

  std::vector<std::uint64_t> counts_;
  std::uint64_t total_count_ = 0;
  std::uint64_t sum_ns_ = 0;  // of clamped values; wraps only after 2^64 ns (584 years) in total
  std::uint64_t min_ns_ = kNoMin;
  std::uint64_t max_ns_ = 0;
};

inline void Histogram::record_n(std::uint64_t value_ns, std::uint64_t n) noexcept {
  if (n == 0) return;
  counts_[histogram_bucket_index(value_ns)] += n;
  total_count_ += n;
  sum_ns_ += std::min(value_ns, kHistogramHighestTrackableNs) * n;
  min_ns_ = std::min(min_ns_, value_ns);
  max_ns_ = std::max(max_ns_, value_ns);
}

}  // namespace evring::core
