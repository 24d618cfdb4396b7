// Producer, consumer and event-type registries of a bus (cold path).
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <cstring>

#include "evring/codec/names.h"
#include "evring/shm/bus.h"
#include "evring/core/clock.h"
#include "evring/core/wait.h"
#include "evring/shm/process.h"

namespace evring {
namespace {

constexpr auto kActive = static_cast<std::uint32_t>(shm::EntryState::kActive);
constexpr auto kFree = static_cast<std::uint32_t>(shm::EntryState::kFree);

void copy_cstr(char* dst, std::size_t cap, std::string_view src) {
  std::size_t n = std::min(src.size(), cap - 1);
  std::memcpy(dst, src.data(), n);
  std::memset(dst + n, 0, cap - n);
}
std::string read_cstr(const char* src, std::size_t cap) { return {src, strnlen(src, cap)}; }

std::vector<std::string> split_list(std::string_view list) {
  std::vector<std::string> out;
  while (!list.empty()) {
    std::size_t comma = list.find(',');
    if (comma != 0) out.emplace_back(list.substr(0, comma));
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return out;
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ",") + s;
  return out;
}

// RAII for the registry mutex.
class RegistryLock {
 public:
  RegistryLock(Status s, std::function<void()> unlock)
      : status_(std::move(s)), unlock_(std::move(unlock)) {}
  ~RegistryLock() {
    if (status_.is_ok()) unlock_();
  }
  const Status& status() const { return status_; }

 private:
  Status status_;
  std::function<void()> unlock_;
};

// Back to the empty histogram (all zero). Called under the registry mutex before the consumer
// that will write these cells exists.
void clear_latency(core::HistogramCells& cells) {
  // relaxed (all): lone counters; nothing is published through them (core/histogram.h).
  cells.total_count.store(0, std::memory_order_relaxed);
  cells.sum_ns.store(0, std::memory_order_relaxed);
  cells.min_ns_complement.store(0, std::memory_order_relaxed);
  cells.max_ns.store(0, std::memory_order_relaxed);
  for (auto& c : cells.counts) c.store(0, std::memory_order_relaxed);
}

bool owner_alive(std::uint32_t pid, std::uint64_t start_time) {
  return shm::process_alive(static_cast<pid_t>(pid), start_time);
}

}  // namespace

// ------------------------------------------------------------------------------- event types

Result<std::uint16_t> Bus::find_type_locked(std::string_view name) const {
  for (std::uint32_t i = 0; i < header_->max_types; ++i) {
    const shm::TypeEntry& t = type_entry(i);
    // Acquire pairs with the release in register_type: a registered entry's name is complete.
    if (t.state.load(std::memory_order_acquire) != kActive) continue;
    if (read_cstr(t.name, sizeof t.name) == name) return static_cast<std::uint16_t>(i + 1);
  }
  return Status::unknown_event_type("event type '" + std::string(name) +
                                    "' is not registered on bus '" + name_ + "'");
}

Result<std::uint16_t> Bus::find_type(std::string_view name) const { return find_type_locked(name); }

Result<std::uint16_t> Bus::register_type(std::string_view name, std::uint16_t schema_version,
                                         Classification classification) {
  EVRING_RETURN_IF_ERROR(validate_event_name(name));
  if (schema_version == 0) return Status::invalid_argument("schema version starts at 1");
  RegistryLock lock(lock_registry(), [this] { unlock_registry(); });
  EVRING_RETURN_IF_ERROR(lock.status());
  if (auto found = find_type_locked(name); found.ok()) return found;
  for (std::uint32_t i = 0; i < header_->max_types; ++i) {
    shm::TypeEntry& t = type_entry(i);
    if (t.state.load(std::memory_order_relaxed) != kFree) continue;  // under the mutex
    t.schema_version = schema_version;
    t.classification = static_cast<std::uint8_t>(classification);
    t.registered_unix_ns = unix_now_ns();
    copy_cstr(t.name, sizeof t.name, name);
    // SYNC POINT: release publishes the entry to lock-free readers (find_type, type_info).
    t.state.store(kActive, std::memory_order_release);
    return static_cast<std::uint16_t>(i + 1);
  }
  return Status::resource_exhausted("event type table of bus '" + name_ + "' is full (" +
                                    std::to_string(header_->max_types) + " types)");
}

Result<TypeInfo> Bus::type_info(std::uint16_t id) const {
  if (id == 0 || id > header_->max_types)
    return Status::unknown_event_type("type id " + std::to_string(id) + " is out of range");
  const shm::TypeEntry& t = type_entry(id - 1u);
  if (t.state.load(std::memory_order_acquire) != kActive)
    return Status::unknown_event_type("type id " + std::to_string(id) + " is not registered");
  TypeInfo info{id, read_cstr(t.name, sizeof t.name), t.schema_version,
                static_cast<Classification>(t.classification & 3)};
  if (!validate_event_name(info.name).is_ok())
    return Status::corruption("type id " + std::to_string(id) + " has a malformed name");
  return info;
}

std::vector<TypeInfo> Bus::types() const {
  std::vector<TypeInfo> out;
  for (std::uint32_t i = 0; i < header_->max_types; ++i)
    if (auto t = type_info(static_cast<std::uint16_t>(i + 1)); t.ok()) out.push_back(t.value());
  return out;
}

// --------------------------------------------------------------------------------- producers

Result<std::unique_ptr<Producer>> Bus::producer(std::string_view service,
                                                std::vector<std::string> domains) {
  EVRING_RETURN_IF_ERROR(validate_service_name(service));
  // The producer's clock takes the process's EVRING_CLOCK (clock.h): a typo there is refused
  // here rather than silently stamping events with the default clock.
  EVRING_RETURN_IF_ERROR(core::clock_mode_from_env().status());
  if (domains.empty()) {
    if (!validate_domain(service).is_ok())
      return Status::invalid_argument("service '" + std::string(service) +
                                      "' is not a valid domain name, so it cannot be its own "
                                      "domain: name the domains it owns (--domains)");
    domains.emplace_back(service);
  }
  for (const auto& d : domains) EVRING_RETURN_IF_ERROR(validate_domain(d));
  std::sort(domains.begin(), domains.end());
  domains.erase(std::unique(domains.begin(), domains.end()), domains.end());
  if (join(domains).size() >= sizeof(shm::ProducerEntry::domains))
    return Status::invalid_argument("domain list is longer than " +
                                    std::to_string(sizeof(shm::ProducerEntry::domains) - 1) + " bytes");

  RegistryLock lock(lock_registry(), [this] { unlock_registry(); });
  EVRING_RETURN_IF_ERROR(lock.status());
  const pid_t me = getpid();
  const std::uint64_t my_start = shm::self_start_time();
  std::int64_t reuse = -1, free_slot = -1;
  for (std::uint32_t i = 0; i < header_->max_producers; ++i) {
    shm::ProducerEntry& e = producer_entry(i);
    if (e.state.load(std::memory_order_relaxed) != kActive) {
      if (free_slot < 0) free_slot = i;
      continue;
    }
    std::string other = read_cstr(e.service, sizeof e.service);
    std::vector<std::string> owned = split_list(read_cstr(e.domains, sizeof e.domains));
    if (other != service) {
      for (const auto& d : domains)
        if (std::find(owned.begin(), owned.end(), d) != owned.end())
          return Status::domain_not_owned("domain '" + d + "' is owned by service '" + other +
                                          "' on bus '" + name_ + "'");
      continue;
    }
    if (owned != domains)
      return Status::domain_not_owned("service '" + std::string(service) + "' owns domains [" +
                                      join(owned) + "] on bus '" + name_ + "', not [" +
                                      join(domains) + "]: a service's domains are fixed");
    bool mine = e.pid == static_cast<std::uint32_t>(me) && e.start_time == my_start;
    if (reuse < 0 && (mine || !shm::process_alive(static_cast<pid_t>(e.pid), e.start_time)))
      reuse = i;
  }
  std::int64_t index = reuse >= 0 ? reuse : free_slot;
  if (index < 0)
    return Status::resource_exhausted("producer registry of bus '" + name_ + "' is full (" +
                                      std::to_string(header_->max_producers) + " producers)");
  shm::ProducerEntry& e = producer_entry(static_cast<std::uint32_t>(index));
  e.pid = static_cast<std::uint32_t>(me);
  e.start_time = my_start;
  e.registered_unix_ns = unix_now_ns();
  copy_cstr(e.service, sizeof e.service, service);
  copy_cstr(e.domains, sizeof e.domains, join(domains));
  const auto id = static_cast<std::uint16_t>(index + 1);
  auto lane = ring_.acquire_lane(static_cast<std::uint32_t>(me), my_start, id, &owner_alive);
  if (!lane.ok()) return lane.status();
  // SYNC POINT: release publishes the entry to lock-free readers (producer_info, stat).
  e.state.store(kActive, std::memory_order_release);
  return std::unique_ptr<Producer>(new Producer(shared_from_this(), id, lane.value(),
                                                std::string(service), std::move(domains)));
}

Result<ProducerInfo> Bus::producer_info(std::uint16_t id) const {
  if (id == 0 || id > header_->max_producers)
    return Status::not_found("producer id " + std::to_string(id) + " is out of range");
  const shm::ProducerEntry& e = producer_entry(id - 1u);
  if (e.state.load(std::memory_order_acquire) != kActive)
    return Status::not_found("producer id " + std::to_string(id) + " is not registered");
  return ProducerInfo{id, read_cstr(e.service, sizeof e.service),
                      split_list(read_cstr(e.domains, sizeof e.domains)),
                      static_cast<pid_t>(e.pid),
                      shm::process_alive(static_cast<pid_t>(e.pid), e.start_time)};
}

std::vector<ProducerInfo> Bus::producers() const {
  std::vector<ProducerInfo> out;
  for (std::uint32_t i = 0; i < header_->max_producers; ++i)
    if (auto p = producer_info(static_cast<std::uint16_t>(i + 1)); p.ok()) out.push_back(p.value());
  return out;
}

Producer::Producer(std::shared_ptr<Bus> bus, std::uint16_t id, std::uint32_t lane,
                   std::string service, std::vector<std::string> domains)
    : bus_(std::move(bus)),
      service_(std::move(service)),
      domains_(std::move(domains)),
      policy_(std::make_unique<core::TypePolicy>()),
      type_class_(65536, 0),
      type_version_(65536, 1),
      ring_(bus_->ring(), id, lane, policy_.get()) {
  ring_.set_liveness(&owner_alive);
}

Producer::~Producer() {
  ring_.set_exclusive(false);  // before the lane can be handed to someone else
  bus_->ring().release_lane(ring_.lane());
}

core::PublishResult Producer::retry_after_sweep(const core::PublishRequest& request,
                                                core::PublishReceipt* receipt) {
  // Full in reject mode: a dead consumer may be holding the ring. Sweep at most every 10 ms
  // (it reads /proc), and retry once if it detached anyone.
  std::uint64_t now = core::monotonic_ns();
  if (now - last_sweep_ns_ < 10'000'000) return core::PublishResult::kFull;
  last_sweep_ns_ = now;
  if (bus_->sweep_dead_consumers() == 0) return core::PublishResult::kFull;
  return ring_.try_publish(request, receipt);
}

Result<std::uint16_t> Producer::resolve(std::string_view event_name, std::uint16_t schema_version,
                                        Classification classification) {
  EVRING_RETURN_IF_ERROR(validate_event_name(event_name));
  std::string_view domain = domain_of(event_name);
  if (std::find(domains_.begin(), domains_.end(), domain) == domains_.end())
    return Status::domain_not_owned("service '" + service_ + "' may not publish '" +
                                    std::string(event_name) + "': domain '" + std::string(domain) +
                                    "' is not among its domains [" + join(domains_) + "]");
  auto id = bus_->register_type(event_name, schema_version, classification);
  if (!id.ok()) return id;
  auto info = bus_->type_info(id.value());
  if (!info.ok()) return info.status();
  policy_->known.set(id.value());
  policy_->allowed.set(id.value());
  type_class_[id.value()] = static_cast<std::uint8_t>(info->classification);
  type_version_[id.value()] = info->schema_version;
  return id;
}

// --------------------------------------------------------------------------------- consumers

Result<std::unique_ptr<Consumer>> Bus::consumer(std::string_view name, ConsumerOptions options) {
  EVRING_RETURN_IF_ERROR(validate_service_name(name));
  if (!options.filter.empty()) EVRING_RETURN_IF_ERROR(validate_pattern(options.filter));
  RegistryLock lock(lock_registry(), [this] { unlock_registry(); });
  EVRING_RETURN_IF_ERROR(lock.status());
  std::int64_t found = -1, free_slot = -1;
  for (std::uint32_t i = 0; i < header_->max_consumers; ++i) {
    shm::ConsumerEntry& e = consumer_entry(i);
    if (e.state.load(std::memory_order_relaxed) != kActive) {
      if (free_slot < 0) free_slot = i;
      continue;
    }
    if (read_cstr(e.name, sizeof e.name) == name) {
      found = i;
      break;
    }
  }
  const pid_t me = getpid();
  std::uint32_t index;
  if (found >= 0) {
    index = static_cast<std::uint32_t>(found);
    shm::ConsumerEntry& e = consumer_entry(index);
    bool attached = ring_.gate(index).state.load(std::memory_order_acquire) ==
                    static_cast<std::uint32_t>(core::GateState::kAttached);
    if (attached && shm::process_alive(static_cast<pid_t>(e.pid), e.start_time))
      return Status::unavailable("consumer '" + std::string(name) + "' on bus '" + name_ +
                                 "' is attached by running process " + std::to_string(e.pid));
  } else {
    if (free_slot < 0)
      return Status::resource_exhausted("consumer registry of bus '" + name_ + "' is full (" +
                                        std::to_string(header_->max_consumers) + " consumers)");
    index = static_cast<std::uint32_t>(free_slot);
    shm::ConsumerEntry& e = consumer_entry(index);
    e.created_unix_ns = unix_now_ns();
    copy_cstr(e.name, sizeof e.name, name);
    // A new durable consumer starts at the earliest event still in the ring; counters of a
    // previous consumer at this index are cleared. Relaxed: the gate is not attached yet, and
    // the attach below publishes these with release.
    for (std::uint32_t p = 0; p < ring_.config().partitions; ++p) {
      core::CursorLine& line = ring_.cursor(index, p);
      std::uint64_t head = ring_.partition(p).head.load(std::memory_order_acquire);
      line.committed.store(head > ring_.capacity() ? head - ring_.capacity() : 0,
                           std::memory_order_relaxed);
      for (auto* c : {&line.delivered, &line.gaps, &line.filtered, &line.corrupt,
                      &line.abandoned, &line.read_position})
        c->store(0, std::memory_order_relaxed);
    }
    // A new consumer remembers no handled keys of a previous owner of this index.
    auto table = idempotency_table(index);
    if (!table.empty()) std::memset(table.data(), 0, table.size());
    // Nor the delivery latencies of a previous owner. Relaxed: monitors reading meanwhile may
    // see a half-cleared histogram, which is the same as seeing it mid-update (no count moves
    // backwards past what they already accept: readers treat a drop as a reset).
    clear_latency(e.latency);
  }
  shm::ConsumerEntry& e = consumer_entry(index);
  e.pid = static_cast<std::uint32_t>(me);
  e.start_time = shm::self_start_time();
  e.last_seen_unix_ns.store(unix_now_ns(), std::memory_order_relaxed);
  e.dead_since_unix_ns.store(0, std::memory_order_relaxed);
  copy_cstr(e.filter, sizeof e.filter, options.filter);
  // SYNC POINT: release publishes the entry to lock-free readers (consumers(), stat).
  e.state.store(kActive, std::memory_order_release);
  // Constructed under the mutex: attaching the gate and taking ownership are one step.
  return std::unique_ptr<Consumer>(
      new Consumer(shared_from_this(), index, std::string(name), options.filter, options));
}

std::vector<ConsumerInfo> Bus::consumers() const {
  std::vector<ConsumerInfo> out;
  for (std::uint32_t i = 0; i < header_->max_consumers; ++i) {
    const shm::ConsumerEntry& e = consumer_entry(i);
    if (e.state.load(std::memory_order_acquire) != kActive) continue;
    ConsumerInfo c;
    c.index = i;
    c.name = read_cstr(e.name, sizeof e.name);
    c.filter = read_cstr(e.filter, sizeof e.filter);
    c.pid = static_cast<pid_t>(e.pid);
    c.attached = ring_.gate(i).state.load(std::memory_order_acquire) ==
                 static_cast<std::uint32_t>(core::GateState::kAttached);
    c.alive = shm::process_alive(c.pid, e.start_time);
    c.last_seen_unix_ns = e.last_seen_unix_ns.load(std::memory_order_relaxed);
    c.latency = &e.latency;
    out.push_back(std::move(c));
  }
  return out;
}

std::size_t Bus::sweep_dead_consumers() {
  std::size_t swept = 0;
  const std::uint64_t now = unix_now_ns();
  const std::uint64_t grace_ns = std::uint64_t{header_->consumer_grace_ms} * 1'000'000;
  for (const auto& c : consumers()) {
    if (!c.attached) continue;
    std::atomic<std::uint64_t>& since = consumer_entry(c.index).dead_since_unix_ns;
    if (c.alive) continue;
    // Relaxed: a timestamp for the grace period; racing sweeps agree on the first one.
    std::uint64_t first = 0;
    if (since.compare_exchange_strong(first, now, std::memory_order_relaxed)) first = now;
    if (now - first < grace_ns) continue;
    ring_.detach_consumer(c.index);
    ++swept;
  }
  return swept;
}

Status Bus::remove_consumer(std::string_view name) {
  RegistryLock lock(lock_registry(), [this] { unlock_registry(); });
  EVRING_RETURN_IF_ERROR(lock.status());
  for (std::uint32_t i = 0; i < header_->max_consumers; ++i) {
    shm::ConsumerEntry& e = consumer_entry(i);
    if (e.state.load(std::memory_order_relaxed) != kActive ||
        read_cstr(e.name, sizeof e.name) != name)
      continue;
    bool attached = ring_.gate(i).state.load(std::memory_order_acquire) ==
                    static_cast<std::uint32_t>(core::GateState::kAttached);
    if (attached && shm::process_alive(static_cast<pid_t>(e.pid), e.start_time))
      return Status::unavailable("consumer '" + std::string(name) + "' is attached by running process " +
                                 std::to_string(e.pid));
    ring_.gate(i).state.store(static_cast<std::uint32_t>(core::GateState::kFree),
                              std::memory_order_release);
    e.state.store(kFree, std::memory_order_release);
    return Status::ok();
  }
  return Status::not_found("consumer '" + std::string(name) + "' is not registered on bus '" +
                           name_ + "'");
}

Consumer::Consumer(std::shared_ptr<Bus> bus, std::uint32_t index, std::string name,
                   std::string filter, const Bus::ConsumerOptions& options)
    : bus_(std::move(bus)),
      name_(std::move(name)),
      filter_pattern_(std::move(filter)),
      ring_(bus_->ring(), index, options.start, options.auto_commit),
      latency_(&bus_->consumer_entry(index).latency) {
  ring_.set_liveness(&owner_alive);
  if (!filter_pattern_.empty()) {
    filter_ = std::make_unique<core::TypeFilter>([this](std::uint16_t id) {
      auto info = bus_->type_info(id);
      return info.ok() && pattern_matches(filter_pattern_, info->name);
    });
    ring_.set_filter(filter_.get());
  }
}

Consumer::~Consumer() = default;

Result<core::Histogram> ConsumerInfo::latency_snapshot() const {
  if (latency == nullptr)
    return Status::invalid_argument("consumer '" + name + "' was not listed from a bus");
  core::Histogram h = core::Histogram::snapshot(*latency);
  // The snapshot summed the counts with wrapping arithmetic: redo it checked. 2^62 events is
  // 146 years at a billion a second, so more means scribbled counts.
  constexpr std::uint64_t kMaxPlausible = std::uint64_t{1} << 62;
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < core::kHistogramCountsLen; ++i) {
    if (__builtin_add_overflow(total, h.count_at_index(i), &total) || total > kMaxPlausible)
      return Status::corruption("the latency histogram of consumer '" + name +
                                "' has impossible counts (more than 2^62 events)");
  }
  return h;
}

void Consumer::heartbeat(std::uint64_t now_unix_ns) {
  // Relaxed: liveness is judged by pid + start time; last_seen is informational. The time is the
  // one poll() read for the delivery latencies (TSC-extrapolated CLOCK_REALTIME): a separate
  // clock read here cost every delivering poll another ~6 ns.
  if (now_unix_ns - last_heartbeat_ns_ < 10'000'000) return;
  last_heartbeat_ns_ = now_unix_ns;
  bus_->consumer_entry(index()).last_seen_unix_ns.store(now_unix_ns, std::memory_order_relaxed);
}

}  // namespace evring
