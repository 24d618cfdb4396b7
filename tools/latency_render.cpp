// Delivery latency rendering shared by stat, top and the exporter (latency_render.h).
#include "latency_render.h"

#include <cstdio>

namespace evring::cli {

LatencySummary summarize_latency(const core::Histogram& h) {
  LatencySummary s;
  s.count = h.count();
  if (s.count == 0) return s;
  s.p50_ns = h.value_at_percentile(50.0);
  s.p99_ns = h.value_at_percentile(99.0);
  s.p999_ns = h.value_at_percentile(99.9);
  s.max_ns = h.max();
  return s;
}

OrderedJson latency_json(const ConsumerInfo& consumer) {
  auto h = consumer.latency_snapshot();
  if (!h.ok()) return OrderedJson{{"error", h.status().to_string()}};
  const LatencySummary s = summarize_latency(*h);
  return OrderedJson{{"p50", s.p50_ns},   {"p99", s.p99_ns}, {"p999", s.p999_ns},
                     {"max", s.max_ns},   {"count", s.count}};
}

std::optional<core::Histogram> latency_delta(const core::Histogram& now,
                                             const core::Histogram& before) {
  core::Histogram delta;
  for (std::size_t i = 0; i < core::kHistogramCountsLen; ++i) {
    const std::uint64_t a = now.count_at_index(i), b = before.count_at_index(i);
    if (a < b) return std::nullopt;
    // The bucket's highest equivalent value lands in the same bucket, and is what percentiles
    // report for it anyway.
    if (a > b) delta.record_n(core::histogram_bucket_highest_ns(i), a - b);
  }
  return delta;
}

std::string human_latency(std::uint64_t ns) {
  if (ns < 1000) return std::to_string(ns) + "ns";
  const char* unit = "us";
  double v = static_cast<double>(ns) / 1e3;
  if (v >= 999.5) unit = "ms", v /= 1e3;
  if (v >= 999.5) unit = "s", v /= 1e3;
  // Three significant digits without an exponent: 1.23, 12.3, 123.
  const int decimals = v < 9.995 ? 2 : v < 99.95 ? 1 : 0;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f%s", decimals, v, unit);
  return buf;
}

}  // namespace evring::cli
