#pragma once
// A named bus: one shared-memory segment (Boost.Interprocess) holding the registries and the
// ring. This is the API services use:
//
//   auto bus = evring::Bus::open("orders").value();
//   auto producer = bus->producer("chat-svc", {"chat"}).value();
//   auto type = producer->resolve("chat.message.created").value();
//   producer->publish(type, "conversation-42", payload);
//
//   auto consumer = bus->consumer("audit", {.filter = "chat.>"}).value();
//   consumer->poll([](const evring::core::Event& e) { ... });
//
// Thread safety: Bus is safe to share between threads. A Producer or Consumer is used by one
// thread at a time; create one per thread.
#include <sys/types.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "evring/codec/status.h"
#include "evring/core/histogram.h"
#include "evring/core/ring.h"
#include "evring/shm/segment_layout.h"

namespace evring {

struct BusOptions {
  core::RingConfig ring;  // ring.producer_lanes: publishing threads at once, all processes
  std::uint32_t max_producers = 64;
  std::uint32_t max_types = 1024;
  // Keys each consumer's idempotency table remembers (power of two; 0 = no tables).
  std::uint32_t idempotency_keys = 4096;
  mode_t mode = 0600;
  bool prefault = true;  // touch every page at create so no publish pays a first-touch fault
  // Back the segment with transparent huge pages (fewer TLB misses on big rings). Needs the
  // kernel's shmem THP setting to allow it; create() fails (unavailable, naming the setting)
  // and leaves nothing behind when it does not. Advice: the kernel backs what it can.
  bool huge_pages = false;
  // Reject mode: a consumer whose process died keeps gating producers for this long, so that
  // a consumer restarted within it loses nothing; after it, producers may lap its cursor and
  // it is told the gap when it returns.
  std::uint32_t consumer_grace_ms = 1000;
};

enum class Access : std::uint8_t { kReadWrite, kReadOnly };

struct ProducerInfo {
  std::uint16_t id;
  std::string service;
  std::vector<std::string> domains;
  pid_t pid;
  bool alive;
};
struct ConsumerInfo {
  std::uint32_t index;
  std::string name;
  std::string filter;
  pid_t pid;
  bool attached;  // the gate says attached
  bool alive;     // its process is running
  std::uint64_t last_seen_unix_ns;
  // The consumer's delivery latency histogram, live in the segment (shm/segment_layout.h,
  // ConsumerEntry::latency); valid while the Bus that listed it is alive. Read it through
  // latency_snapshot(), never by trusting its counts.
  const core::HistogramCells* latency = nullptr;
  // A copy of `latency` whose counts were checked (they are untrusted shared memory):
  // corruption when they cannot be true (their sum overflows or exceeds 2^62 events).
  // Cold path: allocates the 34 KiB copy.
  Result<core::Histogram> latency_snapshot() const;
};
struct TypeInfo {
  std::uint16_t id;
  std::string name;
  std::uint16_t schema_version;
  Classification classification;
};
struct BusSummary {
  std::string name;
  std::string path;
  std::uint64_t bytes = 0;
  Status status;  // why it could not be read, if it could not
  core::RingConfig ring{};
  pid_t creator_pid = 0;
  bool creator_alive = false;
  std::size_t live_members = 0;  // producers + consumers whose process runs
  bool stale() const { return status.is_ok() && !creator_alive && live_members == 0; }
  // The segment layout version found in an evring segment (0: not an evring segment or too
  // short to tell). A foreign version is a bus of another evring build: nothing else in it can
  // be read, `evring rm` removes it.
  std::uint32_t layout_version = 0;
  bool foreign_version() const {
    return layout_version != 0 && layout_version != shm::kSegmentLayoutVersion;
  }
};

class Producer;
class Consumer;

namespace shm {
// Bus::check over bytes already in memory (a mapping or a copy of a segment). Reads nothing
// outside `segment`, whatever it holds. REQUIRES: segment.data() is 64-byte aligned (a finding
// says so otherwise).
std::vector<std::string> check_segment(std::span<const std::byte> segment,
                                       std::size_t max_findings = 1000);
}  // namespace shm

class Bus : public std::enable_shared_from_this<Bus> {
 public:
  // Bus names: 1..48 of [A-Za-z0-9_.-], not starting with '.'.
  static Status validate_name(std::string_view name);
  static Result<std::shared_ptr<Bus>> create(std::string_view name, const BusOptions& options);
  // Maps an existing bus and fills this process's page tables for all of it (no first-touch
  // faults later; costs time proportional to the bus size, once).
  static Result<std::shared_ptr<Bus>> open(std::string_view name, Access access = Access::kReadWrite);
  static Status remove(std::string_view name);
  static std::vector<BusSummary> list();
  static std::string object_path(std::string_view name);  // /dev/shm/evring.<name>
  // The kernel's active transparent-huge-page choice for shared memory (the bracketed word of
  // /sys/kernel/mm/transparent_hugepage/shmem_enabled), "unavailable" without one; create()
  // refuses BusOptions::huge_pages when it is never, deny or unavailable.
  static std::string shmem_huge_pages_setting();
  // Deep check of the segment of bus `name` (shm/src/check.cpp): maps it read-only, even when
  // open() would refuse it, and walks the segment header, the registries (states, names,
  // duplicates), the ring header, gates, producer lanes, each partition (head against every
  // consumer's cursor, counters) and every slot (word, sequence, envelope, type and producer
  // ids). Returns one finding per problem, each naming its location ("partition 3: head 17 is
  // behind consumer 'billing' cursor 40"), at most max_findings plus a line counting the rest;
  // empty when the segment is sound. Errors only when the segment cannot be mapped (not found,
  // permission denied). Cold path: reads the whole segment.
  static Result<std::vector<std::string>> check(std::string_view name,
                                                std::size_t max_findings = 1000);

  ~Bus();
  Bus(const Bus&) = delete;
  Bus& operator=(const Bus&) = delete;

  const std::string& name() const { return name_; }
  const core::RingRegion& ring() const { return ring_; }
  const shm::SegmentHeader& header() const { return *header_; }
  // The idempotency table of consumer `index` (idempotency_table_bytes() long), or an empty
  // span when the bus has none.
  std::span<std::byte> idempotency_table(std::uint32_t index) const;
  bool read_only() const { return read_only_; }

  // Registers `service` owning `domains` (empty: the service's own name, which must then be a
  // valid domain). A service re-registering must name the same domains; a domain owned by
  // another service is refused.
  Result<std::unique_ptr<Producer>> producer(std::string_view service,
                                             std::vector<std::string> domains = {});

  struct ConsumerOptions {
    std::string filter;  // event-name pattern, "" = everything
    core::RingConsumer::Start start = core::RingConsumer::Start::kCommitted;
    bool auto_commit = true;
  };
  // Attaches the durable consumer `name` (created on first use, starting at the earliest event
  // still in the ring for Start::kCommitted). Refused while another live process holds it.
  Result<std::unique_ptr<Consumer>> consumer(std::string_view name, ConsumerOptions options);
  Result<std::unique_ptr<Consumer>> consumer(std::string_view name) {
    return consumer(name, ConsumerOptions{});
  }

  // Registers an event type (or returns the existing id). Cold path.
  Result<std::uint16_t> register_type(std::string_view name, std::uint16_t schema_version = 1,
                                      Classification classification = Classification::kInternal);
  Result<std::uint16_t> find_type(std::string_view name) const;
  // Name of a type id, validated (the table is untrusted memory).
  Result<TypeInfo> type_info(std::uint16_t id) const;
  Result<ProducerInfo> producer_info(std::uint16_t id) const;
  std::vector<ProducerInfo> producers() const;
  std::vector<ConsumerInfo> consumers() const;
  std::vector<TypeInfo> types() const;
  // Marks consumers whose process has been gone for the bus's grace period as detached so they
  // stop gating producers. Returns how many it detached.
  std::size_t sweep_dead_consumers();
  // Removes a consumer's registration and cursors. Refused while it is attached and alive.
  Status remove_consumer(std::string_view name);

 private:
  Bus() = default;
  static Result<std::shared_ptr<Bus>> map(std::string_view name, Access access, bool creating,
                                          std::size_t create_bytes, mode_t mode);
  Status lock_registry() const;
  void unlock_registry() const;
  shm::ProducerEntry& producer_entry(std::uint32_t i) const;
  shm::ConsumerEntry& consumer_entry(std::uint32_t i) const;
  shm::TypeEntry& type_entry(std::uint32_t i) const;
  Result<std::uint16_t> find_type_locked(std::string_view name) const;

  friend class Producer;
  friend class Consumer;
  std::string name_;
  bool read_only_ = false;
  struct Mapping;
  std::unique_ptr<Mapping> mapping_;
  shm::SegmentHeader* header_ = nullptr;
  std::byte* base_ = nullptr;
  std::size_t size_ = 0;
  core::RingRegion ring_;
};

class Producer {
 public:
  ~Producer();
  // Looks up (registering it if new) an event type this producer may publish. Errors: bad name,
  // domain not owned (naming the owner when there is one), type table full.
  Result<std::uint16_t> resolve(std::string_view event_name, std::uint16_t schema_version = 1,
                                Classification classification = Classification::kInternal);

  // Hot path.
  core::PublishResult try_publish(const core::PublishRequest& request,
                                  core::PublishReceipt* receipt = nullptr) {
    core::PublishResult r = ring_.try_publish(request, receipt);
    if (r == core::PublishResult::kFull) [[unlikely]] r = retry_after_sweep(request, receipt);
    return r;
  }
  core::PublishResult try_publish_batch(std::span<const core::PublishRequest> requests,
                                        std::size_t* published) {
    return ring_.try_publish_batch(requests, published);
  }
  core::PublishResult try_claim(const core::PublishRequest& request, std::size_t payload_bytes,
                                core::Claim* claim) {
    return ring_.try_claim(request, payload_bytes, claim);
  }
  core::PublishResult commit(core::Claim& claim) { return ring_.commit(claim); }
  void abort(core::Claim& claim) { ring_.abort(claim); }

  // Convenience: raw payload, everything else defaulted.
  core::PublishResult publish(std::uint16_t type_id, std::string_view entity_key,
                              std::string_view payload,
                              ContentType content_type = ContentType::kRaw) {
    core::PublishRequest r;
    r.type_id = type_id;
    r.entity_key = entity_key;
    r.payload = std::as_bytes(std::span(payload.data(), payload.size()));
    r.content_type = content_type;
    r.classification = classification_of(type_id);
    r.schema_version = schema_version_of(type_id);
    return try_publish(r);
  }

  // Publish exclusively (core::RingProducer::set_exclusive): each partition this producer
  // publishes to is taken for it alone and claimed without a locked instruction; other
  // producers get kExclusive there until it is released (false, destruction, or death).
  void set_exclusive(bool on) { ring_.set_exclusive(on); }
  bool exclusive() const { return ring_.exclusive(); }
  // Biased partitions (core::RingProducer::set_bias_policy): a producer that publishes alone
  // into a partition for a run of claims takes it for itself until another producer comes,
  // which revokes it instead of being refused. after_solo_claims 0: never.
  void set_bias_policy(std::uint32_t after_solo_claims, std::uint64_t cooldown_ns) {
    ring_.set_bias_policy(after_solo_claims, cooldown_ns);
  }
  // When a published slot's lines are pushed to the shared cache for a waiting consumer
  // (core::RingProducer::set_demote_after_idle_ns; default after 1 us idle).
  void set_demote_after_idle_ns(std::uint64_t ns) { ring_.set_demote_after_idle_ns(ns); }

  std::uint16_t id() const { return ring_.producer_id(); }
  const std::string& service() const { return service_; }
  const std::vector<std::string>& domains() const { return domains_; }
  Classification classification_of(std::uint16_t type_id) const {
    return static_cast<Classification>(type_class_[type_id]);
  }
  std::uint16_t schema_version_of(std::uint16_t type_id) const { return type_version_[type_id]; }

 private:
  friend class Bus;
  Producer(std::shared_ptr<Bus> bus, std::uint16_t id, std::uint32_t lane, std::string service,
           std::vector<std::string> domains);
  core::PublishResult retry_after_sweep(const core::PublishRequest& request,
                                        core::PublishReceipt* receipt);
  std::shared_ptr<Bus> bus_;
  std::string service_;
  std::vector<std::string> domains_;
  std::unique_ptr<core::TypePolicy> policy_;
  std::vector<std::uint8_t> type_class_;
  std::vector<std::uint16_t> type_version_;
  core::RingProducer ring_;
  std::uint64_t last_sweep_ns_ = 0;
};

class Consumer {
 public:
  ~Consumer();  // detaches: the cursor stays, producers stop waiting for this consumer

  // Also records each delivered event's delivery latency in this consumer's histogram in the
  // segment: now - the envelope's timestamp_ns, where `now` is read once, when the handlers of
  // this poll have returned (once per 64 events in larger polls). Per event it costs a stored
  // timestamp, a bucket index and one counter update; nothing allocates. Reading the clock after
  // the loop rather than at the first event keeps an opaque call out of the loop: inside it, it
  // cost ~20 ns per single-event poll against ~3 ns here (bench/RESULTS.md, "top overhead").
  template <typename Handler>
  core::PollResult poll(Handler&& handler, std::size_t max_events = 256) {
    LatencyBatch batch;
    std::uint64_t stamps[kLatencyStamps];  // publish timestamps of delivered events
    std::size_t pending = 0;               // stamps not yet recorded
    core::PollResult r = ring_.poll(
        [&](const core::Event& e) {
          handler(e);
          stamps[pending] = e.view.header.timestamp_ns;
          if (++pending == kLatencyStamps) [[unlikely]] {
            record_latencies(batch, stamps, pending);
            pending = 0;
          }
        },
        max_events);
    if (r.delivered) {
      record_latencies(batch, stamps, pending);
      finish_latency(batch);
      heartbeat(batch.now_ns);  // the latency clock read doubles as the heartbeat's
    }
    return r;
  }
  void commit() { ring_.commit(); }
  bool wait(core::WaitStrategy strategy, std::uint64_t timeout_ns) {
    return ring_.wait(strategy, timeout_ns);
  }

  const std::string& name() const { return name_; }
  std::uint32_t index() const { return ring_.index(); }
  core::RingConsumer& ring() { return ring_; }
  Bus& bus() const { return *bus_; }

 private:
  friend class Bus;
  Consumer(std::shared_ptr<Bus> bus, std::uint32_t index, std::string name, std::string filter,
           const Bus::ConsumerOptions& options);
  // Stores last_seen (at most every 10 ms). now_unix_ns: read by this poll for the latencies.
  void heartbeat(std::uint64_t now_unix_ns);

  // Latency of the events of one poll, kept on the stack until finish_latency().
  static constexpr std::size_t kLatencyStamps = 64;
  struct LatencyBatch {
    std::uint64_t now_ns = 0;  // 0: not read yet in this poll
    std::uint64_t count = 0, sum_ns = 0, min_ns = ~std::uint64_t{0}, max_ns = 0;
  };
  // Records n publish timestamps against one clock read (taken now if this poll has none yet).
  void record_latencies(LatencyBatch& batch, const std::uint64_t* stamps, std::size_t n) {
    if (n == 0) return;
    if (batch.now_ns == 0) batch.now_ns = clock_.now_ns();
    for (std::size_t i = 0; i < n; ++i) {
      const std::uint64_t published = stamps[i];
      // A publisher whose clock runs ahead of ours (or a timestamp set by the caller) reads as 0.
      const std::uint64_t v = batch.now_ns > published ? batch.now_ns - published : 0;
      std::atomic<std::uint64_t>& cell = latency_->counts[core::histogram_bucket_index(v)];
      // relaxed load + store, not fetch_add: this consumer is the cells' only writer (the
      // registry gives an index to one process at a time) and readers need only each counter's
      // own value.
      cell.store(cell.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
      batch.sum_ns += std::min(v, core::kHistogramHighestTrackableNs);
      batch.min_ns = std::min(batch.min_ns, v);
      batch.max_ns = std::max(batch.max_ns, v);
    }
    batch.count += n;
  }
  // Adds the batch to the histogram's summary line (count, sum, min, max). Once per poll.
  void finish_latency(const LatencyBatch& batch) {
    core::HistogramCells& h = *latency_;
    // relaxed load + store (all four): this consumer is the only writer of its cells, and each
    // word is a lone counter or extreme that publishes nothing else (segment_layout.h).
    h.total_count.store(h.total_count.load(std::memory_order_relaxed) + batch.count,
                        std::memory_order_relaxed);
    h.sum_ns.store(h.sum_ns.load(std::memory_order_relaxed) + batch.sum_ns,
                   std::memory_order_relaxed);
    if (~batch.min_ns > h.min_ns_complement.load(std::memory_order_relaxed))
      h.min_ns_complement.store(~batch.min_ns, std::memory_order_relaxed);
    if (batch.max_ns > h.max_ns.load(std::memory_order_relaxed))
      h.max_ns.store(batch.max_ns, std::memory_order_relaxed);
  }

  std::shared_ptr<Bus> bus_;
  std::string name_;
  std::string filter_pattern_;
  std::unique_ptr<core::TypeFilter> filter_;
  core::RingConsumer ring_;
  std::uint64_t last_heartbeat_ns_ = 0;
  core::HistogramCells* latency_;  // in this consumer's registry entry (segment_layout.h)
  core::UnixClock clock_;          // CLOCK_REALTIME, as the envelope's timestamp (clock.h)
};

}  // namespace evring
