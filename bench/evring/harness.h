#pragma once
// Shared by the evring-bench harness files: options, the helpers every mode uses, and the two
// modes' entry points (throughput.cpp, latency.cpp; harness.cpp parses and dispatches).
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <limits>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "bench_env.h"
#include "cpu_wait.h"
#include "evring/core/clock.h"
#include "evring/core/histogram.h"
#include "evring/shm/bus.h"
#include "fork_peer.h"
#include "peer_cases.h"
#include "pin.h"
#include "stats.h"


namespace evring::bench::harness {

// core::kernel_clocksource(), or "unknown". Only the characters such names use are kept: the
// value goes into JSON unescaped.
inline std::string kernel_clocksource() {
  std::string name;
  for (char c : core::kernel_clocksource())
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') name += c;
  return name.empty() ? "unknown" : name;
}

// How producers timestamp events on this machine: "tsc" (the TSC scaled between anchors) or
// "clock_gettime" (the kernel's clocksource is not the TSC, or the TSC is not invariant). The
// second costs a vDSO call per event (26 ns against 11 ns for rdtsc on the AMD VM of session
// K, about a third of a publish), so figures from the two are not comparable.
inline std::string event_clock() { return core::tsc_clock_usable() ? "tsc" : "clock_gettime"; }

constexpr int kMaxProcs = 16;
constexpr int kKeysPerProducer = 8;
constexpr uint64_t kStop = ~uint64_t{0};

struct Options {
  std::string mode;
  size_t payload = 64;
  uint32_t partitions = 1;
  int producers = 1;
  int consumers = 1;
  double seconds = 1.0;
  size_t batch = 1;
  bool dedup = false;
  uint8_t dedup_bits = 64;  // bloom bits per key: 1 gives a filter that says "maybe" to most keys
  int runs = 5;
  double rate = 100000;
  std::string wait = "spin";
  std::string hgrm;
  std::vector<int> cpus{0, 1};
  bool peers = true;
  // Throughput: the evring-peers cases each run alternates with, for same-run ratios
  // (--against; empty with --no-peers).
  std::vector<std::string> against{"bare_spsc"};
  bool json = false;
  bool huge_pages = false;
  bool exclusive = false;  // producers publish exclusively (RingProducer::set_exclusive)
  core::ClockMode clock = core::ClockMode::kAuto;  // --clock, exported as EVRING_CLOCK
};

template <class T>
T* shared_anon() {
  void* p = mmap(nullptr, sizeof(T), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::runtime_error("mmap anonymous shared");
  return new (p) T{};
}

template <class T>
T must(Result<T> r, const char* what) {
  if (!r.ok()) throw std::runtime_error(std::string(what) + ": " + r.status().to_string());
  return std::move(r).value();
}

inline uint32_t slot_bytes_for(size_t key_bytes, size_t payload) {
  size_t need = core::kSlotHeaderBytes + kEnvelopeHeaderBytes + key_bytes + payload;
  size_t s = (need + 63) / 64 * 64;
  return static_cast<uint32_t>(std::max<size_t>(s, core::kMinSlotBytes));
}

// The bytes a published event with a key of key_bytes occupies in its slot, in whole cache lines:
// the slot header, the compact envelope header with every optional group elided (the bench's
// events carry no idempotency key, correlation, causation, revision or origin), key, payload.
inline uint32_t span_bytes_for(size_t key_bytes, size_t payload) {
  size_t need = core::kSlotHeaderBytes + core::compact_header_bytes(core::kCompactElideMask) +
                key_bytes + payload;
  return static_cast<uint32_t>((need + 63) / 64 * 64);
}

// Removes the bus on every exit path of a run.
struct BusGuard {
  std::string name;
  ~BusGuard() { (void)Bus::remove(name); }
};

inline std::string unique_name(const char* tag) {
  static int n = 0;
  return "evb-" + std::to_string(getpid()) + "-" + tag + std::to_string(n++);
}

inline unsigned long long ull(uint64_t v) { return static_cast<unsigned long long>(v); }

inline std::string fmt(double v, int prec = 0) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", prec, v);
  return b;
}

inline std::string json_list(const std::vector<uint64_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s + "]";
}

// Rates, rounded to whole numbers as the tables print them.
inline std::string json_doubles(const std::vector<double>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + fmt(v[i]);
  return s + "]";
}

int run_throughput(const Options& o);  // throughput.cpp
int run_latency(const Options& o);     // latency.cpp

}  // namespace evring::bench::harness
