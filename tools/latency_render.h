#pragma once
// Delivery latency of a consumer (its histogram in the segment, shm/FORMAT.md) as the figures
// the tools show: `stat --json` (latency_ns), `top` (per-interval percentiles), `exporter`.
#include <cstdint>
#include <optional>
#include <string>

#include "evring/core/histogram.h"
#include "evring/shm/bus.h"
#include "json_render.h"

namespace evring::cli {

struct LatencySummary {
  std::uint64_t p50_ns = 0, p99_ns = 0, p999_ns = 0, max_ns = 0, count = 0;
};
LatencySummary summarize_latency(const core::Histogram& h);

// `stat --json`'s per-consumer "latency_ns": {"p50","p99","p999","max","count"} in ns since the
// consumer was created (all 0 when nothing was delivered), or {"error": "..."} when the
// histogram's counts are corrupt (they are untrusted shared memory).
OrderedJson latency_json(const ConsumerInfo& consumer);

// The values recorded between two snapshots of one histogram (now - before), or nullopt when a
// count went down: the histogram was reset (a new consumer took the index), so the caller
// should fall back to `now`. Bucket-exact; min/max are the bounds of the outermost buckets.
std::optional<core::Histogram> latency_delta(const core::Histogram& now,
                                             const core::Histogram& before);

// "850ns", "12.3us", "4.56ms", "1.20s": three significant digits, for a terminal column.
std::string human_latency(std::uint64_t ns);

}  // namespace evring::cli
