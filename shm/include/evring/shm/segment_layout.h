#pragma once
// Byte layout of a bus segment (/dev/shm/evring.<bus>). Prose: shm/FORMAT.md.
//
//  +------------------------+ 0
//  | SegmentHeader  (1 KiB) | magic, layout versions, sizes, offsets, registry lock, name
//  +------------------------+ producers_offset
//  | ProducerEntry[Np]      | 256 B each: service, owned domains, pid + start time
//  +------------------------+ consumers_offset
//  | ConsumerEntry[Nc]      | 35,136 B each: name, filter, pid + start time, last seen, and
//  |                        | the consumer's delivery latency histogram (HistogramCells)
//  +------------------------+ types_offset
//  | TypeEntry[Nt]          | 192 B each: event name -> type id (index + 1)
//  +------------------------+ idempotency_offset (64-aligned)
//  | idempotency tables[Nc] | idempotency_table_bytes(keys) each: handled keys per consumer
//  +------------------------+ ring_offset (4096-aligned)
//  | ring region            | core/ring_layout.h
//  +------------------------+ segment_bytes
//
// Every offset is from the segment start; every integer is native little-endian. Registries are
// written only under the registry mutex (a process-shared robust pthread mutex: the kernel hands
// it on when its owner dies); entries are published by a release store of `state` so that
// lock-free readers (stat, consumers resolving type names) that acquire `state` see the entry.
//
// Bump kSegmentLayoutVersion when any byte here moves or changes meaning; open() refuses other
// versions (tests/shm/segment_layout_golden_test.cpp hard-codes it).
#include <pthread.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "evring/core/histogram.h"

namespace evring::shm {

inline constexpr std::uint64_t kSegmentMagic = 0x3142474e49525645ull;  // "EVRINGB1" in memory
// 2: ConsumerEntry grew from 256 B to 35,136 B to embed the delivery latency histogram.
inline constexpr std::uint32_t kSegmentLayoutVersion = 2;
// The histogram bytes inside ConsumerEntry are core's HistogramCells: a change there is a change
// here. When this fails, bump kSegmentLayoutVersion and update the golden test, then this line.
static_assert(core::kHistogramLayoutVersion == 1,
              "HistogramCells changed: bump kSegmentLayoutVersion (ConsumerEntry embeds it)");
inline constexpr std::size_t kSegmentHeaderBytes = 1024;

// | off | size | field               | writer / publication                                     |
// |   0 |    8 | magic               | create(); first bytes checked by open()                  |
// |   8 |    4 | layout_version      | create(): kSegmentLayoutVersion                          |
// |  12 |    4 | ring_layout_version | create(): core::kRingLayoutVersion                       |
// |  16 |    8 | segment_bytes       | create(); open() checks it against the object's size    |
// |  24 |    4 | ready (atomic)      | create() stores 1 with release when everything above and |
// |     |      |                     | the ring are initialised; open() acquires it             |
// |  28 |    4 | header_bytes        | kSegmentHeaderBytes                                      |
// |  32 |    8 | created_unix_ns     | create()                                                 |
// |  40 |    4 | creator_pid         | create()                                                 |
// |  44 |    4 | mode                | create(): the file mode asked for                        |
// |  48 |    8 | creator_start_time  | create(): /proc start time, so pid reuse is detected     |
// |  56 |    4 | max_producers       | create()                                                 |
// |  60 |    4 | max_consumers       | create() (equal to the ring's)                           |
// |  64 |    4 | max_types           | create()                                                 |
// |  68 |    4 | reserved            |                                                          |
// |  72 |    8 | producers_offset    | create()                                                 |
// |  80 |    8 | consumers_offset    | create()                                                 |
// |  88 |    8 | types_offset        | create()                                                 |
// |  96 |    8 | ring_offset         | create()                                                 |
// | 104 |    8 | ring_bytes          | create()                                                 |
// | 112 |    8 | idempotency_offset  | create(): per-consumer idempotency tables (see below)    |
// | 120 |    4 | idempotency_keys    | create(): keys per consumer table (power of two, or 0)   |
// | 124 |    4 | consumer_grace_ms   | create(): how long a dead consumer keeps gating (reject) |
// | 128 |   64 | registry_mutex      | pthread_mutex_t, process-shared + robust                 |
// | 192 |   64 | bus_name            | NUL-terminated                                           |
// | 256 |  768 | reserved            |                                                          |
struct SegmentHeader {
  std::uint64_t magic;
  std::uint32_t layout_version;
  std::uint32_t ring_layout_version;
  std::uint64_t segment_bytes;
  std::atomic<std::uint32_t> ready;
  std::uint32_t header_bytes;
  std::uint64_t created_unix_ns;
  std::uint32_t creator_pid;
  std::uint32_t mode;
  std::uint64_t creator_start_time;
  std::uint32_t max_producers;
  std::uint32_t max_consumers;
  std::uint32_t max_types;
  std::uint32_t reserved0;
  std::uint64_t producers_offset;
  std::uint64_t consumers_offset;
  std::uint64_t types_offset;
  std::uint64_t ring_offset;
  std::uint64_t ring_bytes;
  std::uint64_t idempotency_offset;
  std::uint32_t idempotency_keys;
  std::uint32_t consumer_grace_ms;
  union {
    pthread_mutex_t registry_mutex;
    std::uint8_t registry_mutex_bytes[64];
  };
  char bus_name[64];
  std::uint8_t reserved2[768];
};
static_assert(std::is_standard_layout_v<SegmentHeader>);
static_assert(sizeof(pthread_mutex_t) <= 64);
static_assert(sizeof(SegmentHeader) == kSegmentHeaderBytes);
static_assert(offsetof(SegmentHeader, layout_version) == 8);
static_assert(offsetof(SegmentHeader, ring_layout_version) == 12);
static_assert(offsetof(SegmentHeader, segment_bytes) == 16);
static_assert(offsetof(SegmentHeader, ready) == 24);
static_assert(offsetof(SegmentHeader, created_unix_ns) == 32);
static_assert(offsetof(SegmentHeader, creator_pid) == 40);
static_assert(offsetof(SegmentHeader, creator_start_time) == 48);
static_assert(offsetof(SegmentHeader, max_producers) == 56);
static_assert(offsetof(SegmentHeader, producers_offset) == 72);
static_assert(offsetof(SegmentHeader, ring_offset) == 96);
static_assert(offsetof(SegmentHeader, ring_bytes) == 104);
static_assert(offsetof(SegmentHeader, idempotency_offset) == 112);
static_assert(offsetof(SegmentHeader, idempotency_keys) == 120);
static_assert(offsetof(SegmentHeader, registry_mutex) == 128);
static_assert(offsetof(SegmentHeader, bus_name) == 192);

// The registry mutex keeps its type and protocol in one word (glibc: __data.__kind), which
// pthread_mutex_timedlock trusts: a scribbled kind sends it down priority-protect or
// priority-inheritance paths that abort inside glibc instead of failing. create() leaves the
// kind of a normal, process-shared, robust mutex; lock_registry() and check_segment() compare
// against that before trusting the rest of the mutex.
int init_registry_mutex(pthread_mutex_t& m);  // 0 or an errno value
int expected_registry_mutex_kind();
int registry_mutex_kind(const SegmentHeader& h);

enum class EntryState : std::uint32_t { kFree = 0, kActive = 1, kRetired = 2 };

// ProducerEntry (256 B). Producer id = index + 1 (0 is "no producer" in the envelope).
// | off | size | field              | writer / publication                                      |
// |   0 |    4 | state (atomic)     | registry, under the mutex; release after the fields below |
// |   4 |    4 | pid                | registry                                                  |
// |   8 |    8 | start_time         | /proc/<pid>/stat starttime: pid + start time names a      |
// |     |      |                    | process uniquely, so pid reuse is detected                |
// |  16 |    8 | registered_unix_ns | registry                                                  |
// |  24 |   64 | service            | NUL-terminated service name                               |
// |  88 |  160 | domains            | NUL-terminated comma-separated owned domains              |
// | 248 |    8 | reserved           |                                                           |
struct ProducerEntry {
  std::atomic<std::uint32_t> state;
  std::uint32_t pid;
  std::uint64_t start_time;
  std::uint64_t registered_unix_ns;
  char service[64];
  char domains[160];
  std::uint64_t reserved;
};
static_assert(sizeof(ProducerEntry) == 256);
static_assert(offsetof(ProducerEntry, service) == 24);
static_assert(offsetof(ProducerEntry, domains) == 88);

// ConsumerEntry (35,136 B, 64-aligned). Index i owns ring gate i and cursor lines [i][*].
//
//  +---------------------------------+ 0
//  | registry fields (256 B)         | state, pid, names, liveness (table below)
//  +---------------------------------+ 256
//  | latency: core::HistogramCells   | 34,880 B: delivery latency of this consumer, ns
//  +---------------------------------+ 35136
//
// | off | size  | field                     | writer / publication                              |
// |   0 |     4 | state (atomic)            | registry under the mutex; release after the fields|
// |   4 |     4 | pid                       | attaching process                                 |
// |   8 |     8 | start_time                | attaching process's /proc start time              |
// |  16 |     8 | created_unix_ns           | registry                                          |
// |  24 |     8 | last_seen_unix_ns (atomic)| the consumer, relaxed, at most every ~10 ms of poll|
// |  32 |    64 | name                      | NUL-terminated                                    |
// |  96 |   128 | filter                    | NUL-terminated pattern ("" = everything)          |
// | 224 |     8 | dead_since_unix_ns (atom.)| first time a sweep found its process dead, 0 =    |
// |     |       |                           | alive; relaxed: only sweeps (any process) use it  |
// | 232 |    24 | reserved                  | zero                                              |
// | 256 | 34880 | latency (HistogramCells)  | the owning Consumer only (one writer: the registry|
// |     |       |                           | hands an index to one live process at a time);    |
// |     |       |                           | zeroed by the registry under the mutex when a new |
// |     |       |                           | consumer takes the index. Layout: core/histogram.h|
//
// latency holds, per delivered event, now - the envelope's timestamp_ns (CLOCK_REALTIME of the
// publisher; 0 when the publisher's clock is ahead), with `now` read once per poll, when its
// handlers have returned (once per 64 events in larger polls).
// Because there is one writer, Consumer::poll updates the cells with relaxed load + store
// instead of core's fetch_add (Consumer::record_latencies in bus.h); readers use
// core::Histogram::snapshot() and must treat the counts as untrusted data
// (Bus::consumer_latency validates them).
struct alignas(64) ConsumerEntry {
  std::atomic<std::uint32_t> state;
  std::uint32_t pid;
  std::uint64_t start_time;
  std::uint64_t created_unix_ns;
  std::atomic<std::uint64_t> last_seen_unix_ns;
  char name[64];
  char filter[128];
  std::atomic<std::uint64_t> dead_since_unix_ns;
  std::uint8_t reserved[24];
  // Own lines (HistogramCells is 64-aligned): the consumer writes these on every delivering
  // poll, while monitors read the registry fields above.
  core::HistogramCells latency;
};
static_assert(std::is_standard_layout_v<ConsumerEntry>, "offsets must mean the same in every build");
static_assert(std::is_trivially_destructible_v<ConsumerEntry>, "segments are unmapped, not destroyed");
static_assert(sizeof(ConsumerEntry) == 35136, "256 B of registry fields + 34,880 B of histogram");
static_assert(alignof(ConsumerEntry) == 64, "entries start 64-aligned: consumers_offset is");
static_assert(offsetof(ConsumerEntry, state) == 0);
static_assert(offsetof(ConsumerEntry, pid) == 4);
static_assert(offsetof(ConsumerEntry, start_time) == 8);
static_assert(offsetof(ConsumerEntry, created_unix_ns) == 16);
static_assert(offsetof(ConsumerEntry, last_seen_unix_ns) == 24);
static_assert(offsetof(ConsumerEntry, name) == 32);
static_assert(offsetof(ConsumerEntry, filter) == 96);
static_assert(offsetof(ConsumerEntry, dead_since_unix_ns) == 224);
static_assert(offsetof(ConsumerEntry, reserved) == 232);
static_assert(offsetof(ConsumerEntry, latency) == 256, "histogram on its own cache lines");
static_assert(sizeof(core::HistogramCells) == 34880);
// consumers_offset = 1024 + max_producers * 256 is a multiple of 64, so every entry and its
// histogram are 64-aligned in the segment as alignof() promises.
static_assert(kSegmentHeaderBytes % 64 == 0);

// TypeEntry (192 B). Type id = index + 1.
// | off | size | field              | writer / publication                                      |
// |   0 |    4 | state (atomic)     | registry under the mutex; release after the fields        |
// |   4 |    2 | schema_version     | latest registered version                                 |
// |   6 |    1 | classification     | codec Classification                                      |
// |   7 |    1 | reserved           |                                                           |
// |   8 |    8 | registered_unix_ns |                                                           |
// |  16 |  128 | name               | NUL-terminated event name                                 |
// | 144 |   48 | reserved           | schema offset (future)                                    |
struct TypeEntry {
  std::atomic<std::uint32_t> state;
  std::uint16_t schema_version;
  std::uint8_t classification;
  std::uint8_t reserved0;
  std::uint64_t registered_unix_ns;
  char name[128];
  std::uint8_t reserved1[48];
};
static_assert(sizeof(TypeEntry) == 192);
static_assert(offsetof(TypeEntry, name) == 16);

// Per-consumer idempotency table (consumer index i at idempotency_offset +
// i * idempotency_table_bytes(idempotency_keys)); layout owned by shm/idempotent.h.
inline constexpr std::size_t idempotency_table_bytes(std::uint32_t keys) {
  return keys == 0 ? 0 : 64 + std::size_t{keys} * 32;
}

static_assert(std::atomic<std::uint32_t>::is_always_lock_free &&
              std::atomic<std::uint64_t>::is_always_lock_free);

}  // namespace evring::shm
