// Deep check of a bus segment (`evring stat` on a corrupt bus): every structure is read as
// untrusted bytes, every index and offset is bounds-checked before it is followed, and each
// problem becomes one finding that names where it is. Read-only: nothing here writes the segment.
//
// The segment may be live. Counters and cursors only grow and a cursor never passes its head, so
// cursors are read before heads; a slot is copied, then its word re-read (the ring's seqlock) and
// skipped when a writer reused it meanwhile. A finding therefore means the bytes are wrong, not
// that a publish was in flight.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "evring/codec/envelope.h"
#include "evring/codec/names.h"
#include "evring/core/ring.h"
#include "evring/shm/bus.h"

namespace evring {
namespace shm {
namespace {

std::size_t align_up(std::size_t v, std::size_t a) { return (v + a - 1) / a * a; }

std::string quoted(std::string_view s) { return "'" + std::string(s) + "'"; }

std::string hex(std::uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%" PRIx64, v);
  return buf;
}

std::string_view state_name(core::SlotState s) {
  switch (s) {
    case core::SlotState::kEmpty: return "EMPTY";
    case core::SlotState::kWriting: return "WRITING";
    case core::SlotState::kPublished: return "PUBLISHED";
    case core::SlotState::kAbandoned: return "ABANDONED";
    case core::SlotState::kPending: return "PENDING";
    case core::SlotState::kDuplicate: return "DUPLICATE";
  }
  return "unknown";
}

class Checker {
 public:
  Checker(std::span<const std::byte> segment, std::size_t max_findings)
      : base_(segment.data()), size_(segment.size()), max_findings_(max_findings) {}

  std::vector<std::string> run() {
    if (check_header()) {
      check_producers();
      check_types();
      check_consumers();
      check_ring();
    }
    if (dropped_ > 0)
      findings_.push_back("... and " + std::to_string(dropped_) + " more findings not listed");
    return std::move(findings_);
  }

 private:
  void add(std::string finding) {
    if (findings_.size() < max_findings_) findings_.push_back(std::move(finding));
    else ++dropped_;
  }

  // A NUL-terminated string in a fixed field; nullopt-like empty + finding when unterminated.
  bool read_name(const char* field, std::size_t cap, std::string* out) const {
    std::size_t n = strnlen(field, cap);
    if (n == cap) return false;
    out->assign(field, n);
    return true;
  }

  // Is [offset, offset + count * entry) inside the segment? (No overflow: count <= 2^16.)
  bool fits(std::uint64_t offset, std::uint64_t count, std::size_t entry) const {
    return offset <= size_ && count <= 65536 && count * entry <= size_ - offset;
  }

  // ------------------------------------------------------------------------------ segment header
  // False when nothing beyond the header can be interpreted.
  bool check_header() {
    if (reinterpret_cast<std::uintptr_t>(base_) % 64 != 0) {
      add("segment: mapping is not 64-byte aligned (internal error)");
      return false;
    }
    if (size_ < kSegmentHeaderBytes) {
      add("header: segment is " + std::to_string(size_) + " bytes, smaller than the " +
          std::to_string(kSegmentHeaderBytes) + "-byte segment header");
      return false;
    }
    h_ = reinterpret_cast<const SegmentHeader*>(base_);
    if (h_->magic != kSegmentMagic) {
      add("header: magic is " + hex(h_->magic) + ", not " + hex(kSegmentMagic) +
          " (not an evring segment)");
      return false;
    }
    if (h_->layout_version != kSegmentLayoutVersion) {
      add("header: segment layout version " + std::to_string(h_->layout_version) +
          ", this build reads version " + std::to_string(kSegmentLayoutVersion));
      return false;
    }
    if (h_->ring_layout_version != core::kRingLayoutVersion) {
      add("header: ring layout version " + std::to_string(h_->ring_layout_version) +
          ", this build reads version " + std::to_string(core::kRingLayoutVersion));
      return false;
    }
    bool usable = true;
    if (h_->ready.load(std::memory_order_acquire) != 1)
      add("header: ready is " + std::to_string(h_->ready.load(std::memory_order_relaxed)) +
          ", not 1 (the creator died before finishing, or the word was overwritten)");
    if (h_->segment_bytes != size_)
      add("header: segment_bytes is " + std::to_string(h_->segment_bytes) +
          " but the segment has " + std::to_string(size_) + " bytes");
    if (h_->header_bytes != kSegmentHeaderBytes)
      add("header: header_bytes is " + std::to_string(h_->header_bytes) + ", expected " +
          std::to_string(kSegmentHeaderBytes));
    if (const int kind = registry_mutex_kind(*h_); kind != expected_registry_mutex_kind())
      add("header: registry mutex kind is " + std::to_string(kind) + ", not " +
          std::to_string(expected_registry_mutex_kind()) +
          " (a process-shared robust mutex): registry updates are refused");
    if (strnlen(h_->bus_name, sizeof h_->bus_name) == sizeof h_->bus_name)
      add("header: bus_name is not NUL-terminated within its 64 bytes");
    else if (Status s = Bus::validate_name(h_->bus_name); !s.is_ok())
      add("header: bus_name: " + s.message());
    auto count = [&](const char* field, std::uint32_t v, std::uint32_t max) {
      if (v == 0 || v > max) {
        add("header: " + std::string(field) + " is " + std::to_string(v) + ", outside 1.." +
            std::to_string(max));
        usable = false;
      }
    };
    count("max_producers", h_->max_producers, 65535);
    count("max_consumers", h_->max_consumers, core::kMaxConsumers);
    count("max_types", h_->max_types, 65535);
    if (h_->idempotency_keys > (1u << 20) ||
        (h_->idempotency_keys & (h_->idempotency_keys - 1)) != 0) {
      add("header: idempotency_keys is " + std::to_string(h_->idempotency_keys) +
          ", not a power of two up to 1048576 (or 0)");
      usable = false;
    }
    if (!usable) return false;
    // Every offset follows from the counts (Bus::create's layout): a mismatch is a scribble.
    const std::uint64_t producers = kSegmentHeaderBytes;
    const std::uint64_t consumers = producers + std::uint64_t{h_->max_producers} * sizeof(ProducerEntry);
    const std::uint64_t types = consumers + std::uint64_t{h_->max_consumers} * sizeof(ConsumerEntry);
    const std::uint64_t idem = align_up(types + std::uint64_t{h_->max_types} * sizeof(TypeEntry), 64);
    const std::uint64_t ring =
        align_up(idem + std::uint64_t{h_->max_consumers} * idempotency_table_bytes(h_->idempotency_keys),
                 4096);
    auto offset = [&](const char* field, std::uint64_t found, std::uint64_t expected) {
      if (found == expected) return;
      add("header: " + std::string(field) + " is " + std::to_string(found) + ", expected " +
          std::to_string(expected) + " from the registry sizes");
      usable = false;
    };
    offset("producers_offset", h_->producers_offset, producers);
    offset("consumers_offset", h_->consumers_offset, consumers);
    offset("types_offset", h_->types_offset, types);
    offset("idempotency_offset", h_->idempotency_offset, idem);
    offset("ring_offset", h_->ring_offset, ring);
    if (!usable) return false;
    if (!fits(ring, 1, h_->ring_bytes) || h_->ring_bytes < sizeof(core::RingHeader)) {
      add("header: ring of " + std::to_string(h_->ring_bytes) + " bytes at offset " +
          std::to_string(ring) + " does not fit the " + std::to_string(size_) + "-byte segment");
      return false;
    }
    return true;
  }

  // -------------------------------------------------------------------------------- registries
  const ProducerEntry& producer(std::uint32_t i) const {
    return reinterpret_cast<const ProducerEntry*>(base_ + h_->producers_offset)[i];
  }
  const ConsumerEntry& consumer(std::uint32_t i) const {
    return reinterpret_cast<const ConsumerEntry*>(base_ + h_->consumers_offset)[i];
  }
  const TypeEntry& type(std::uint32_t i) const {
    return reinterpret_cast<const TypeEntry*>(base_ + h_->types_offset)[i];
  }

  // The entry's state, or kRetired + 1 (unknown) after a finding.
  std::uint32_t entry_state(const std::atomic<std::uint32_t>& state, const std::string& where) {
    std::uint32_t s = state.load(std::memory_order_acquire);
    if (s > static_cast<std::uint32_t>(EntryState::kRetired))
      add(where + ": state " + std::to_string(s) + " is not free (0), active (1) or retired (2)");
    return s;
  }

  void check_producers() {
    producer_state_.assign(h_->max_producers, 0);
    for (std::uint32_t i = 0; i < h_->max_producers; ++i) {
      const ProducerEntry& e = producer(i);
      const std::string where = "producer " + std::to_string(i + 1);
      const std::uint32_t state = entry_state(e.state, where);
      producer_state_[i] = state;
      if (state != static_cast<std::uint32_t>(EntryState::kActive)) continue;
      std::string service, domains;
      if (!read_name(e.service, sizeof e.service, &service)) {
        add(where + ": service name is not NUL-terminated within its 64 bytes");
        continue;
      }
      // One service may hold several entries (one per publishing process): no duplicate check.
      if (Status s = validate_service_name(service); !s.is_ok()) add(where + ": " + s.message());
      if (!read_name(e.domains, sizeof e.domains, &domains)) {
        add(where + " " + quoted(service) + ": domains are not NUL-terminated within 160 bytes");
        continue;
      }
      std::string_view rest = domains;
      while (!rest.empty()) {
        const std::size_t comma = rest.find(',');
        const std::string_view d = rest.substr(0, comma);
        if (Status s = validate_domain(d); !s.is_ok())
          add(where + " " + quoted(service) + ": owned domain: " + s.message());
        if (comma == std::string_view::npos) break;
        rest.remove_prefix(comma + 1);
      }
    }
  }

  void check_types() {
    std::set<std::string> names;
    type_state_.assign(h_->max_types, 0);
    for (std::uint32_t i = 0; i < h_->max_types; ++i) {
      const TypeEntry& e = type(i);
      const std::string where = "type " + std::to_string(i + 1);
      const std::uint32_t state = entry_state(e.state, where);
      type_state_[i] = state;
      if (state != static_cast<std::uint32_t>(EntryState::kActive)) continue;
      std::string name;
      if (!read_name(e.name, sizeof e.name, &name)) {
        add(where + ": event name is not NUL-terminated within its 128 bytes");
        continue;
      }
      if (Status s = validate_event_name(name); !s.is_ok()) add(where + ": " + s.message());
      else if (!names.insert(name).second)
        add(where + ": event name " + quoted(name) + " is registered twice");
      if (e.classification > static_cast<std::uint8_t>(Classification::kRestricted))
        add(where + " " + quoted(name) + ": classification " + std::to_string(e.classification) +
            " is not one of 0..3");
      if (e.schema_version == 0) add(where + " " + quoted(name) + ": schema version is 0");
    }
  }

  void check_consumers() {
    std::set<std::string> names;
    consumer_names_.assign(h_->max_consumers, {});
    for (std::uint32_t i = 0; i < h_->max_consumers; ++i) {
      const ConsumerEntry& e = consumer(i);
      const std::string where = "consumer index " + std::to_string(i);
      if (entry_state(e.state, where) != static_cast<std::uint32_t>(EntryState::kActive)) continue;
      std::string name, filter;
      if (!read_name(e.name, sizeof e.name, &name)) {
        add(where + ": name is not NUL-terminated within its 64 bytes");
        continue;
      }
      consumer_names_[i] = name.empty() ? "#" + std::to_string(i) : name;
      if (Status s = validate_service_name(name); !s.is_ok()) add(where + ": " + s.message());
      else if (!names.insert(name).second)
        add(where + ": consumer " + quoted(name) + " is registered twice");
      if (!read_name(e.filter, sizeof e.filter, &filter))
        add("consumer " + quoted(name) + ": filter is not NUL-terminated within its 128 bytes");
      else if (!filter.empty())
        if (Status s = validate_pattern(filter); !s.is_ok())
          add("consumer " + quoted(name) + ": filter: " + s.message());
    }
  }

  // ------------------------------------------------------------------------------------- ring
  void check_ring() {
    // attach() only reads; the const_cast is for its accessors, which hand out atomics to load.
    std::span<std::byte> mem(const_cast<std::byte*>(base_) + h_->ring_offset, h_->ring_bytes);
    auto attached = core::RingRegion::attach(mem);
    if (!attached.ok()) {
      add("ring header: " + attached.status().message());
      return;
    }
    const core::RingRegion& ring = *attached;
    const core::RingConfig& c = ring.config();
    if (c.max_consumers != h_->max_consumers) {
      add("ring header: max_consumers is " + std::to_string(c.max_consumers) +
          " but the segment header says " + std::to_string(h_->max_consumers));
      return;
    }
    if (core::ring_region_bytes(c) != h_->ring_bytes)
      add("header: ring_bytes is " + std::to_string(h_->ring_bytes) + " but the ring header's " +
          "configuration needs " + std::to_string(core::ring_region_bytes(c)));

    // Gates: an attached or detached gate needs a registered consumer.
    for (std::uint32_t i = 0; i < c.max_consumers; ++i) {
      const std::uint32_t g = ring.gate(i).state.load(std::memory_order_acquire);
      if (g > static_cast<std::uint32_t>(core::GateState::kDetached))
        add("consumer index " + std::to_string(i) + ": gate state " + std::to_string(g) +
            " is not free (0), attached (1) or detached (2)");
      else if (g == static_cast<std::uint32_t>(core::GateState::kAttached) &&
               consumer_names_[i].empty() &&
               consumer(i).state.load(std::memory_order_acquire) !=
                   static_cast<std::uint32_t>(EntryState::kActive))  // not registered since
        add("consumer index " + std::to_string(i) +
            ": gate says attached but no consumer is registered at this index");
    }

    for (std::uint32_t p = 0; p < c.partitions; ++p) check_partition(ring, p);
    check_lanes(ring);
  }

  void check_partition(const core::RingRegion& ring, std::uint32_t p) {
    const core::RingConfig& c = ring.config();
    const std::string where = "partition " + std::to_string(p);
    // Cursors before the head: both only grow, and a cursor never passes the head.
    std::vector<std::uint64_t> committed(c.max_consumers, 0);
    for (std::uint32_t i = 0; i < c.max_consumers; ++i)
      if (!consumer_names_[i].empty())
        committed[i] = ring.cursor(i, p).committed.load(std::memory_order_acquire);
    const core::PartitionHeader& ph = ring.partition(p);
    // The abandoned counter too: it counts claimed slots, so it never passes the head.
    const std::uint64_t abandoned = ph.abandoned.load(std::memory_order_relaxed);
    const std::uint64_t head = ph.head.load(std::memory_order_acquire);
    if (head >= (std::uint64_t{1} << (64 - core::kSlotStateBits)))
      add(where + ": head " + std::to_string(head) + " does not fit a slot word's sequence");
    for (std::uint32_t i = 0; i < c.max_consumers; ++i)
      if (!consumer_names_[i].empty() && committed[i] > head)
        add(where + ": head " + std::to_string(head) + " is behind consumer " +
            quoted(consumer_names_[i]) + " cursor " + std::to_string(committed[i]));
    if (abandoned > head)
      add(where + ": abandoned count " + std::to_string(abandoned) + " exceeds head " +
          std::to_string(head) + " (more slots abandoned than ever claimed)");
    // An exclusive or biased holder is a producer lane (index + 1, kBiasedOwner for a bias).
    // Producers free a mark that names no lane when they meet it, so this is a finding about
    // the bytes, not a stuck bus.
    if (const std::uint32_t owner = ph.exclusive_owner.load(std::memory_order_relaxed);
        owner != 0 &&
        (core::owner_lane_mark(owner) == 0 || core::owner_lane_mark(owner) > c.producer_lanes))
      add(where +
          (core::owner_biased(owner)
               ? ": biased owner " + std::to_string(core::owner_lane_mark(owner))
               : ": exclusive owner " + std::to_string(owner)) +
          " names no producer lane (" + std::to_string(c.producer_lanes) + " lanes)");

    const std::uint64_t slots = c.slots_per_partition;
    const std::size_t envelope_room = c.slot_bytes - core::kSlotHeaderBytes;
    // The raw slot (8-aligned, as a SlotHeader must be), then its envelope expanded.
    std::vector<std::uint64_t> raw(c.slot_bytes / 8);
    std::vector<std::byte> copy(envelope_room);
    for (std::uint64_t k = 0; k < slots; ++k) {
      core::SlotHeader& slot = ring.slot(p, k);
      const std::uint64_t word = slot.word.load(std::memory_order_acquire);
      const std::string at = where + " slot " + std::to_string(k);
      const auto state = core::word_state(word);
      const std::uint64_t seq = core::word_sequence(word);
      if (static_cast<std::uint64_t>(state) > static_cast<std::uint64_t>(core::SlotState::kDuplicate)) {
        add(at + ": word " + hex(word) + " has unknown state " +
            std::to_string(static_cast<std::uint64_t>(state)));
        continue;
      }
      if (state == core::SlotState::kEmpty) {
        if (seq != 0)
          add(at + ": word " + hex(word) + " is EMPTY but carries sequence " + std::to_string(seq));
        continue;
      }
      // A slot is claimed (head) before it is written: a word past the head read above may be a
      // publish since; only one past the head read after the word is wrong.
      if (seq >= head && seq >= ph.head.load(std::memory_order_acquire)) {
        add(at + ": " + std::string(state_name(state)) + " sequence " + std::to_string(seq) +
            " is at or beyond the head " + std::to_string(head));
        continue;
      }
      if ((seq & (slots - 1)) != k) {
        add(at + ": holds sequence " + std::to_string(seq) + ", which belongs in slot " +
            std::to_string(seq & (slots - 1)));
        continue;
      }
      if (state != core::SlotState::kPublished) continue;
      // Seqlock copy: length, writer, elided bits and envelope, then the word again.
      raw[0] = word;  // the word as loaded above (it is atomic: never copied bytewise)
      std::memcpy(raw.data() + 1, reinterpret_cast<const std::byte*>(&slot) + 8,
                  c.slot_bytes - 8);
      std::atomic_thread_fence(std::memory_order_acquire);
      if (slot.word.load(std::memory_order_relaxed) != word) continue;  // reused meanwhile
      const auto& copied = *reinterpret_cast<const core::SlotHeader*>(raw.data());
      const std::uint32_t bytes = copied.envelope_bytes;
      const std::uint16_t writer = copied.writer;
      const std::uint16_t elided = copied.elided;
      const std::string ev = at + " (sequence " + std::to_string(seq) + ")";
      if (writer == 0 || writer > h_->max_producers)
        add(ev + ": writer id " + std::to_string(writer) + " is outside 1.." +
            std::to_string(h_->max_producers));
      if (!core::elided_bits_valid(elided)) {
        add(ev + ": elided bits " + hex(elided) + " name header words no layout elides");
        continue;
      }
      if (bytes > envelope_room) {
        add(ev + ": envelope_bytes " + std::to_string(bytes) + " exceeds the " +
            std::to_string(envelope_room) + " bytes a slot holds");
        continue;
      }
      const std::size_t expanded = core::expand_slot_envelope(copied, envelope_room, copy.data());
      if (expanded == 0) {
        add(ev + ": envelope_bytes " + std::to_string(bytes) + " cannot hold the " +
            std::to_string(core::stored_header_bytes(elided)) +
            " header bytes a slot with elided bits " + hex(elided) +
            " stores, or leaves a body longer than a slot's envelope");
        continue;
      }
      EnvelopeView view;
      const EnvelopeCheck check = decode_envelope(std::span(copy.data(), expanded), &view);
      if (check != EnvelopeCheck::kOk) {
        add(ev + ": envelope is invalid: " + std::string(describe(check)));
        continue;
      }
      const EnvelopeHeader& eh = view.header;
      if (eh.sequence != seq)
        add(ev + ": envelope says sequence " + std::to_string(eh.sequence));
      if (eh.type_id == 0 || eh.type_id > h_->max_types || !type_active_now(eh.type_id - 1u))
        add(ev + ": type id " + std::to_string(eh.type_id) + " is not a registered event type");
      if (eh.producer_id == 0 || eh.producer_id > h_->max_producers ||
          !producer_known_now(eh.producer_id - 1u))
        add(ev + ": producer id " + std::to_string(eh.producer_id) +
            " is not a registered producer");
    }
  }

  // Registry states as they are now: an entry registered after the registry pass (a live bus)
  // may already have events in the ring.
  bool type_active_now(std::uint32_t i) {
    if (type_state_[i] == static_cast<std::uint32_t>(EntryState::kActive)) return true;
    type_state_[i] = type(i).state.load(std::memory_order_acquire);
    return type_state_[i] == static_cast<std::uint32_t>(EntryState::kActive);
  }
  bool producer_known_now(std::uint32_t i) {
    if (producer_state_[i] != static_cast<std::uint32_t>(EntryState::kFree)) return true;
    producer_state_[i] = producer(i).state.load(std::memory_order_acquire);
    return producer_state_[i] != static_cast<std::uint32_t>(EntryState::kFree);
  }

  void check_lanes(const core::RingRegion& ring) {
    const core::RingConfig& c = ring.config();
    for (std::uint32_t i = 0; i < c.producer_lanes; ++i) {
      const core::ProducerLane& lane = ring.lane(i);
      const std::string where = "producer lane " + std::to_string(i);
      const std::uint32_t state = lane.state.load(std::memory_order_acquire);
      if (state > 1) {
        add(where + ": state " + std::to_string(state) + " is not free (0) or in use (1)");
        continue;
      }
      const std::uint32_t count = core::intent_count(lane.count.load(std::memory_order_acquire));
      if (count == 0) continue;
      const std::uint32_t p = lane.partition.load(std::memory_order_relaxed);
      if (p >= c.partitions) {
        add(where + ": claims partition " + std::to_string(p) + " of " +
            std::to_string(c.partitions));
        continue;
      }
      if (count > c.slots_per_partition)
        add(where + ": claims " + std::to_string(count) + " slots, more than the " +
            std::to_string(c.slots_per_partition) + " of a partition");
    }
  }

  const std::byte* base_;
  std::size_t size_;
  std::size_t max_findings_;
  std::size_t dropped_ = 0;
  const SegmentHeader* h_ = nullptr;
  std::vector<std::string> findings_;
  std::vector<std::uint32_t> producer_state_, type_state_;
  std::vector<std::string> consumer_names_;  // "" = no active entry at that index
};

}  // namespace

std::vector<std::string> check_segment(std::span<const std::byte> segment,
                                       std::size_t max_findings) {
  return Checker(segment, max_findings).run();
}

}  // namespace shm

Result<std::vector<std::string>> Bus::check(std::string_view name, std::size_t max_findings) {
  EVRING_RETURN_IF_ERROR(validate_name(name));
  const std::string path = object_path(name);
  const std::string who = "bus '" + std::string(name) + "'";
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) return Status(Code::kNotFound, who + " does not exist", err);
    if (err == EACCES || err == EPERM)
      return Status(Code::kPermissionDenied, "permission denied: checking " + who, err);
    return Status::from_errno(err, "checking " + who);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return Status::from_errno(err, "checking " + who);
  }
  const std::size_t size = static_cast<std::size_t>(st.st_size);
  if (size == 0) {
    ::close(fd);
    return std::vector<std::string>{"header: segment is 0 bytes (being created, or its creator died)"};
  }
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  const int map_err = errno;
  ::close(fd);
  if (map == MAP_FAILED) return Status::from_errno(map_err, "mapping " + who + " to check it");
  std::vector<std::string> findings =
      shm::check_segment(std::span(static_cast<const std::byte*>(map), size), max_findings);
  ::munmap(map, size);
  return findings;
}

}  // namespace evring
