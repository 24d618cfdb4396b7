// The cases of evring-peers: each runs one measurement and returns its figures.
//
// A case runs its producer/initiator on cpus[0] and its consumer/echo on cpus[1], as two
// processes over shared memory (fork) or, for in-process queues, as two threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "peer_loops.h"

namespace evring::bench {

inline constexpr const char* kShmPrefix = "evring-peers";
inline constexpr uint64_t kQueueCapacity = 1024;  // messages, for every queue under test

struct CaseConfig {
  int producer_cpu = 0;
  int consumer_cpu = 1;
  double seconds = 1.0;  // per measurement
  size_t payload_bytes = 64;
  size_t slot_bytes = 256;
  // Message size of bare_spsc_span: the bytes one evring event of payload_bytes occupies in its
  // slot, in whole cache lines (slot header, compact envelope header, an 8-byte key, payload:
  // 128 for 64 B), i.e. the lines that cross between the cores per event.
  size_t span_bytes = 128;
};

// One figure. The name carries the unit: "*_per_s" is a rate (higher is better), "*_ns" a
// latency (lower is better).
struct Metric {
  std::string name;
  double value = 0;
};

using CaseFn = std::vector<Metric> (*)(const CaseConfig&);

struct CaseInfo {
  const char* name;
  CaseFn run;
  std::string skipped;  // non-empty: not built in, and why
  std::string note;     // shown under the table, e.g. a rounded message size
};

inline std::vector<Metric> throughput_metrics(const Throughput& t, size_t msg_bytes) {
  const double secs = static_cast<double>(t.elapsed_ns) / 1e9;
  const double msgs = static_cast<double>(t.msgs) / secs;
  return {{"msgs_per_s", msgs}, {"bytes_per_s", msgs * static_cast<double>(msg_bytes)}};
}

inline void add_rtt_metrics(std::vector<Metric>& out, const LatencyHistogram& h) {
  out.push_back({"rtt_p50_ns", h.percentile(0.50)});
  out.push_back({"rtt_p99_ns", h.percentile(0.99)});
}

// cases_spsc.cpp
std::vector<Metric> run_pingpong(const CaseConfig& cfg);
std::vector<Metric> run_bare_spsc(const CaseConfig& cfg);
std::vector<Metric> run_bare_spsc_slot(const CaseConfig& cfg);
std::vector<Metric> run_bare_spsc_span(const CaseConfig& cfg);
// cases_boost.cpp
std::vector<Metric> run_boost_mq(const CaseConfig& cfg);
std::vector<Metric> run_boost_spsc_shm(const CaseConfig& cfg);
// cases_moodycamel.cpp
std::vector<Metric> run_moodycamel_cq(const CaseConfig& cfg);
std::vector<Metric> run_moodycamel_rwq(const CaseConfig& cfg);
std::string moodycamel_cq_unavailable();   // empty when built in
std::string moodycamel_rwq_unavailable();  // empty when built in

// Every case in display order, with skip reasons and notes for this configuration.
std::vector<CaseInfo> all_cases(const CaseConfig& cfg);

// The names of a comma-separated case list ("--cases", "--against"), empty items kept so that
// the caller can refuse them by name ("a,,b" and "a," are typing mistakes, not lists of two).
inline std::vector<std::string> split_case_names(const std::string& text) {
  std::vector<std::string> names;
  std::size_t start = 0;
  while (true) {
    const std::size_t comma = text.find(',', start);
    names.push_back(text.substr(start, comma == std::string::npos ? comma : comma - start));
    if (comma == std::string::npos) return names;
    start = comma + 1;
  }
}

}  // namespace evring::bench
