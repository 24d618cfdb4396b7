// Histogram: snapshot, percentiles, statistics and the .hgrm writer (see histogram.h).
#include "evring/core/histogram.h"

#include <charconv>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <ostream>
#include <string>

namespace evring::core {
namespace {

// Middle of a bucket, HdrHistogram's "median equivalent value".
double bucket_middle_ns(std::size_t index) {
  return static_cast<double>(histogram_bucket_lowest_ns(index) +
                             histogram_bucket_width_ns(index) / 2);
}

// HdrHistogram's PercentileIterator step: the 0..100 range is cut into ticks_per_half_distance
// equal ticks per half of the remaining distance to 100%, so ticks halve each time the level
// crosses 50%, 75%, 87.5%, ... (Java: incrementIterationLevel).
double next_percentile_level(double level, std::int64_t ticks_per_half_distance) {
  const double halvings = std::log(100.0 / (100.0 - level)) / std::log(2.0);
  // Java truncates to a long and multiplies longs; doubles hold those products exactly, and the
  // clamp keeps the cast defined should level ever round to 100.
  const auto whole = static_cast<int>(std::min(halvings, 1000.0));
  const double reporting_ticks =
      static_cast<double>(ticks_per_half_distance) * std::ldexp(1.0, whole + 1);
  return level + 100.0 / reporting_ticks;
}

// Appends `value` as Java's Formatter prints "%<width>.<decimals>f": it rounds the shortest
// decimal that round-trips (Double.toString's digits) half up, where C's printf rounds the exact
// binary value half to even; the two differ on ties such as 0.9995361328125 at 12 decimals.
void append_java_fixed(std::string& out, double value, int width, int decimals) {
  char digits[400];
  const auto [end, ec] =
      std::to_chars(digits, digits + sizeof digits, value, std::chars_format::fixed);
  if (!std::isfinite(value) || value < 0 || ec != std::errc()) {  // never for our columns
    std::snprintf(digits, sizeof digits, "%*.*f", width, decimals, value);
    out += digits;
    return;
  }
  std::string text(digits, end);
  std::size_t dot = text.find('.');
  if (dot == std::string::npos) {
    dot = text.size();
    text += '.';
  }
  const std::size_t keep = dot + 1 + static_cast<std::size_t>(decimals);
  if (text.size() <= keep) {
    text.append(keep - text.size(), '0');
  } else {
    const bool round_up = text[keep] >= '5';
    text.resize(keep);
    for (std::size_t i = keep; round_up && i-- > 0;) {
      if (text[i] == '.') continue;
      if (text[i] != '9') {
        ++text[i];
        break;
      }
      text[i] = '0';
      if (i == 0) text.insert(0, 1, '1');
    }
  }
  if (decimals == 0) text.pop_back();  // the '.'
  if (text.size() < static_cast<std::size_t>(width))
    out.append(static_cast<std::size_t>(width) - text.size(), ' ');
  out += text;
}

}  // namespace

Histogram::Histogram() : counts_(kHistogramCountsLen, 0) {}

Histogram Histogram::snapshot(const HistogramCells& cells) {
  Histogram out;
  std::size_t first = kHistogramCountsLen;
  std::size_t last = 0;
  for (std::size_t i = 0; i < kHistogramCountsLen; ++i) {
    // relaxed: a monitoring copy; each counter is read on its own (HistogramCells "Consistency").
    const std::uint64_t c = cells.counts[i].load(std::memory_order_relaxed);
    out.counts_[i] = c;
    out.total_count_ += c;
    if (c != 0) {
      first = std::min(first, i);
      last = i;
    }
  }
  // relaxed: as above; none of these publishes other data.
  out.sum_ns_ = cells.sum_ns.load(std::memory_order_relaxed);
  out.min_ns_ = ~cells.min_ns_complement.load(std::memory_order_relaxed);
  out.max_ns_ = cells.max_ns.load(std::memory_order_relaxed);
  if (out.total_count_ == 0) {
    // Buckets rule: a record whose bucket is not visible yet is not in this snapshot.
    out.sum_ns_ = 0;
    out.min_ns_ = kNoMin;
    out.max_ns_ = 0;
  } else {
    // A record in flight may have bumped its bucket before its min/max (or a writer died between
    // the two): pull the extremes into the outermost non-empty buckets. No-op when consistent.
    out.min_ns_ = std::min(out.min_ns_, histogram_bucket_highest_ns(first));
    out.max_ns_ = std::max(out.max_ns_, histogram_bucket_lowest_ns(last));
  }
  return out;
}

void Histogram::merge(const Histogram& other) noexcept {
  for (std::size_t i = 0; i < kHistogramCountsLen; ++i) counts_[i] += other.counts_[i];
  total_count_ += other.total_count_;
  sum_ns_ += other.sum_ns_;
  min_ns_ = std::min(min_ns_, other.min_ns_);
  max_ns_ = std::max(max_ns_, other.max_ns_);
}

void Histogram::reset() noexcept {
  std::fill(counts_.begin(), counts_.end(), 0);
  total_count_ = 0;
  sum_ns_ = 0;
  min_ns_ = kNoMin;
  max_ns_ = 0;
}

std::uint64_t Histogram::clamped(std::uint64_t bucket_value) const noexcept {
  // A report whose p99.99 exceeds its exact max misleads: bucket bounds stop at the extremes.
  if (total_count_ == 0) return bucket_value;
  return std::clamp(bucket_value, min_ns_, std::max(min_ns_, max_ns_));
}

std::uint64_t Histogram::value_at_percentile(double percentile) const noexcept {
  if (total_count_ == 0) return 0;
  const double p = std::isnan(percentile) ? 100.0 : std::clamp(percentile, 0.0, 100.0);
  const auto wanted_raw =
      static_cast<std::uint64_t>(std::ceil(p / 100.0 * static_cast<double>(total_count_)));
  const std::uint64_t wanted = std::clamp<std::uint64_t>(wanted_raw, 1, total_count_);
  std::uint64_t running = 0;
  for (std::size_t i = 0; i < kHistogramCountsLen; ++i) {
    running += counts_[i];
    if (running >= wanted) {
      return clamped(p == 0.0 ? histogram_bucket_lowest_ns(i) : histogram_bucket_highest_ns(i));
    }
  }
  return histogram_bucket_highest_ns(kHistogramCountsLen - 1);  // unreachable: counts sum to total
}

double Histogram::mean() const noexcept {
  if (total_count_ == 0) return 0.0;
  return static_cast<double>(sum_ns_) / static_cast<double>(total_count_);
}

double Histogram::std_deviation() const noexcept {
  if (total_count_ == 0) return 0.0;
  const double m = mean();
  double total = 0.0;
  for (std::size_t i = 0; i < kHistogramCountsLen; ++i) {
    if (counts_[i] == 0) continue;
    const double deviation = bucket_middle_ns(i) - m;
    total += deviation * deviation * static_cast<double>(counts_[i]);
  }
  return std::sqrt(total / static_cast<double>(total_count_));
}

void Histogram::write_hgrm(std::ostream& out, double output_value_unit_scaling,
                           int ticks_per_half_distance) const {
  const double scale = output_value_unit_scaling;
  const std::int64_t ticks = std::max(ticks_per_half_distance, 1);
  char line[160];
  std::snprintf(line, sizeof line, "%12s %14s %10s %14s\n\n", "Value", "Percentile", "TotalCount",
                "1/(1-Percentile)");
  out << line;
  // Java: "%12.3f %2.12f %10d %14.2f\n", the 100% row without its (infinite) last column.
  std::string row;
  auto write_row = [&](std::uint64_t value_ns, double fraction, std::uint64_t running,
                       bool inverse) {
    row.clear();
    append_java_fixed(row, static_cast<double>(value_ns) / scale, 12, 3);
    row += ' ';
    append_java_fixed(row, fraction, 2, 12);
    std::snprintf(line, sizeof line, " %10" PRIu64, running);
    row += line;
    if (inverse) {
      row += ' ';
      append_java_fixed(row, 1.0 / (1.0 - fraction), 14, 2);
    }
    row += '\n';
    out << row;
  };

  if (total_count_ > 0) {
    // Mirrors HdrHistogram's PercentileIterator: stay on a bucket while it keeps reaching the next
    // level (several rows may share a value), move on only when it does not.
    std::size_t index = 0;
    bool fresh = true;  // counts_[index] not yet added to running
    std::uint64_t running = 0;
    double level = 0.0;  // percentile (0..100) the next row is iterated to
    while (running < total_count_ && level < 100.0 && index < kHistogramCountsLen) {
      if (fresh) {
        running += counts_[index];
        fresh = false;
      }
      const double reached =
          100.0 * static_cast<double>(running) / static_cast<double>(total_count_);
      if (counts_[index] != 0 && reached >= level) {
        const double fraction = level / 100.0;
        write_row(clamped(histogram_bucket_highest_ns(index)), fraction, running, true);
        level = next_percentile_level(level, ticks);
      } else {
        ++index;
        fresh = true;
      }
    }
    // The iterator's extra last step to 100%, at the last non-empty bucket; HdrHistogram leaves
    // out the 1/(1-Percentile) column here, which would be infinite.
    // (Only if the loop stopped early, which a consistent histogram never does: finish the sum.)
    if (fresh && index < kHistogramCountsLen) running += counts_[index];
    index = std::min(index, kHistogramCountsLen - 1);
    while (running < total_count_ && index + 1 < kHistogramCountsLen) running += counts_[++index];
    write_row(clamped(histogram_bucket_highest_ns(index)), 1.0, running, false);
  }

  row = "#[Mean    = ";
  append_java_fixed(row, mean() / scale, 12, 3);
  row += ", StdDeviation   = ";
  append_java_fixed(row, std_deviation() / scale, 12, 3);
  row += "]\n#[Max     = ";
  append_java_fixed(row, static_cast<double>(max()) / scale, 12, 3);
  std::snprintf(line, sizeof line, ", Total count    = %12" PRIu64 "]\n", total_count_);
  row += line;
  out << row;
  std::snprintf(line, sizeof line, "#[Buckets = %12d, SubBuckets     = %12d]\n",
                static_cast<int>(kHistogramBucketCount),
                static_cast<int>(kHistogramSubBucketCount));
  out << line;
}

}  // namespace evring::core
