#pragma once
// Consumer-side ordering helpers: drop stale entity updates (StaleFilter) and put an entity's
// events back in revision order (ReorderBuffer). Pure in-process: no shared memory, state lost
// when the process ends.
//
// What the ring guarantees (core/ring.h):
//  - Per partition, every consumer gets events in partition-sequence order, and that order is
//    the order in which producers CLAIMED sequences. The entity key picks the partition, so all
//    events of one entity arrive in claim order.
//  - Nothing across partitions: poll() visits partitions round-robin; two entities on different
//    partitions interleave arbitrarily, and no global order exists.
//  - Claim order is not the order the producers decided on. Two producers (threads or processes)
//    updating one entity can compute revisions 4 and 5 and claim them 5 first; a retried or
//    bridged-in event can arrive after newer ones. In overwrite mode a lapped consumer loses
//    events (a gap); a restarted consumer is handed again what it had not committed.
// So per-entity order is "publish order", which is the revision order only when one producer
// publishes an entity's revisions in order and nothing is lost.
//
// What these helpers add, for events carrying a revision (EnvelopeFlag::kHasRevision and
// entity_revision; events without the flag pass straight through both):
//  - StaleFilter: per entity, an event is delivered only if its revision is greater than every
//    revision delivered before it for that entity. Latest-state consumers get monotonic
//    revisions; they may miss revisions (the ones that arrived late are dropped, or reported).
//  - ReorderBuffer: per entity, delivers revisions in order last+1, last+2, ... holding back
//    events that arrive early until the missing revisions come, or until a timeout, when it
//    skips the gap (and says how many revisions were skipped). Consumers that must see every
//    transition get them in order when they arrive within the timeout.
// Neither orders events across entities, and neither survives a restart: combine with
// IdempotentHandler (shm/idempotent.h) for re-delivered events.
//
// Entities are identified by entity_key_hash (xxh3-64, EntityIdentity::kKeyHash: two distinct
// keys sharing a hash, p ~ n^2 / 2^65, share one revision line) or by the full key bytes
// (kFullKey: exact, but stores each key and allocates for it when the entity is first seen).
//
// Thread safety: none. One StaleFilter / ReorderBuffer per consumer thread.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "evring/codec/envelope.h"
#include "evring/core/ring.h"

namespace evring::core {

enum class EntityIdentity : std::uint8_t { kKeyHash, kFullKey };

// Monotonic ns (CLOCK_MONOTONIC via steady_clock): the default clock of ReorderBuffer.
std::uint64_t steady_now_ns();

namespace detail {

// A fixed-capacity map from entity to a slot number in [0, capacity), least recently used
// evicted when full. All memory is allocated at construction, except the key strings of
// kFullKey. Open addressing (linear probing, load <= 1/2) over an index of node numbers, and a
// doubly linked recency list through the nodes.
class EntityLru {
 public:
  static constexpr std::uint32_t kNone = 0xffffffffu;
  EntityLru(std::size_t capacity, EntityIdentity identity);

  struct Acquired {
    std::uint32_t slot;
    bool inserted;  // the entity was not in the map (new, or evicted earlier)
    bool evicted;   // ... and took the slot of the least recently used entity
  };
  // Finds the entity or inserts it; marks it most recently used. When `evicted`, the slot's
  // previous entity is forgotten: the caller resets whatever it keeps per slot.
  Acquired acquire(std::uint64_t hash, std::span<const std::byte> key);
  // kNone when absent. Does not change recency.
  std::uint32_t find(std::uint64_t hash, std::span<const std::byte> key) const;
  std::size_t size() const { return size_; }
  std::size_t capacity() const { return nodes_.size(); }

 private:
  struct Node {
    std::uint64_t hash = 0;
    std::string key;  // kFullKey only
    std::uint32_t prev = kNone, next = kNone;
  };
  bool matches(const Node& n, std::uint64_t hash, std::span<const std::byte> key) const;
  std::size_t home(std::uint64_t hash) const;
  void unlink(std::uint32_t n);
  void push_front(std::uint32_t n);
  void index_remove(std::uint32_t n);
  EntityIdentity identity_;
  std::vector<Node> nodes_;
  std::vector<std::uint32_t> index_;  // node + 1, 0 = empty
  std::size_t mask_ = 0;
  std::size_t size_ = 0;
  std::uint32_t mru_ = kNone, lru_ = kNone;
};

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// StaleFilter: drops (optionally reporting) events whose revision is <= the last revision
// passed for their entity. An equal revision is a duplicate and counts as stale.
//
// Memory: max_entities entities (LRU). An evicted entity's last revision is forgotten: its next
// event is accepted whatever its revision (so a stale event of an entity idle for longer than
// max_entities other entities can pass once). Size max_entities above the number of entities
// updated concurrently; evictions() says whether it was.
struct StaleFilterOptions {
  std::size_t max_entities = 65536;  // >= 1
  EntityIdentity identity = EntityIdentity::kKeyHash;
};

struct StaleStats {
  std::uint64_t fresh = 0;         // passed: revision above the entity's last (or first seen)
  std::uint64_t stale = 0;         // dropped (and reported when a callback is set)
  std::uint64_t unrevisioned = 0;  // passed: no kHasRevision flag
  std::uint64_t evictions = 0;     // entities forgotten to make room
  std::size_t entities = 0;        // entities remembered now
};

class StaleFilter {
 public:
  // Called for each stale event, with the last revision passed for its entity. The view is valid
  // only during the call. Empty: stale events are dropped silently.
  using OnStale = std::function<void(const EnvelopeView& view, std::uint64_t last_revision)>;
  enum class Verdict : std::uint8_t { kFresh, kStale, kUnrevisioned };

  explicit StaleFilter(StaleFilterOptions options = {}, OnStale on_stale = {});

  // Classifies the event and, when fresh, records its revision as the entity's last.
  Verdict check(const EnvelopeView& view);

  // A handler for Consumer::poll calling h(const Event&) for fresh and unrevisioned events only.
  // REQUIRES: this filter outlives the callable and is not moved while it is in use.
  template <typename H>
  auto wrap(H&& h) {
    return [this, h = std::forward<H>(h)](const Event& event) mutable {
      if (check(event.view) != Verdict::kStale) h(event);
    };
  }

  // The last revision passed for an entity (key needed with kFullKey only).
  std::optional<std::uint64_t> last_revision(std::uint64_t key_hash,
                                             std::string_view key = {}) const;
  StaleStats stats() const;

 private:
  detail::EntityLru entities_;
  std::vector<std::uint64_t> last_;  // per LRU slot
  OnStale on_stale_;
  StaleStats stats_;
};

// ---------------------------------------------------------------------------------------------
// ReorderBuffer: per entity, releases revisions in order.
//
// Per entity it keeps `last`, the last revision released. For an event with revision r:
//   - unknown entity (first seen, or evicted): with revisions_start_at_one, last = 0 and the
//     event is treated as below; otherwise r becomes the baseline: released at once, last = r.
//   - r <= last, or r already held: dropped (stale_dropped). Use StaleFilter to report those.
//   - r == last + 1: released at once (kInOrder), then every held r+1, r+2, ... (kGapFilled).
//   - r > last + 1: COPIED (header, key and payload: the poll's view dies with the call) and held.
// Held events are released, lowest revision first, with Released::gap = revisions skipped before
// it (never delivered by this buffer; they may still arrive and are then stale):
//   - timeout: once an entity's longest-held event has waited gap_timeout_ns (kTimeout), its
//     lowest held event is released, then everything consecutive; repeated while the new lowest
//     held event is itself past the timeout. Checked on every push() and by expire(): call
//     expire() when a poll delivers nothing, or held events wait until the next push.
//   - overflow (policy: release the oldest held, never drop): more than max_held_per_entity held
//     for one entity releases that entity's lowest (kOverflow); more than max_held_total in all
//     releases the lowest held event of the entity whose held events have waited longest.
//   - eviction: an entity dropped from the LRU (max_entities) releases all it holds first
//     (kEvicted), and is then unknown.
//   - flush(): releases everything (kFlushed), e.g. before shutting down.
// Events without kHasRevision are released at once (kPassThrough).
//
// Memory: max_entities entity records, and at most max_held_total held events, each a copy of
// one envelope's header, key and payload (so at most max_held_total * the bus's largest event,
// slot_bytes). Buffers are pooled: once warm, holding an event allocates nothing unless it is
// larger than any held before in that pool entry.
//
// The sink is called synchronously from push() / expire() / flush(). REQUIRES: it does not call
// back into the same ReorderBuffer.
enum class ReleaseReason : std::uint8_t {
  kPassThrough,  // no revision
  kInOrder,      // r == last + 1 (or the entity's baseline), released as it arrived
  kGapFilled,    // was held; released once the revisions before it came
  kTimeout,      // was held; its gap timed out
  kOverflow,     // was held; released to make room
  kEvicted,      // was held; its entity was evicted from the LRU
  kFlushed,      // was held; flush()
};
std::string_view release_reason_name(ReleaseReason reason);

struct Released {
  Event event;              // view and spans valid only during the sink call
  std::uint64_t gap = 0;    // revisions skipped right before this one; 0: in order
  ReleaseReason reason = ReleaseReason::kInOrder;
};

struct ReorderOptions {
  std::size_t max_entities = 4096;       // >= 1
  std::size_t max_held_per_entity = 64;  // >= 1
  std::size_t max_held_total = 1024;     // >= 1
  std::uint64_t gap_timeout_ns = 10'000'000;
  EntityIdentity identity = EntityIdentity::kKeyHash;
  bool revisions_start_at_one = false;
};

struct ReorderStats {
  std::uint64_t pushed = 0;
  std::uint64_t released = 0;
  std::uint64_t stale_dropped = 0;      // r <= last, or a revision already held
  std::uint64_t gaps = 0;               // releases with gap > 0
  std::uint64_t revisions_skipped = 0;  // sum of those gaps
  std::uint64_t timeouts = 0;           // releases for kTimeout
  std::uint64_t overflows = 0;          // releases for kOverflow
  std::uint64_t evictions = 0;          // entities evicted from the LRU
  std::size_t held = 0;                 // events held now
  std::size_t held_peak = 0;
  std::size_t held_bytes = 0;           // key + payload bytes held now
};

class ReorderBuffer {
 public:
  using Sink = std::function<void(const Released&)>;
  using Clock = std::function<std::uint64_t()>;  // monotonic ns

  ReorderBuffer(ReorderOptions options, Sink sink, Clock clock = steady_now_ns);
  ReorderBuffer(const ReorderBuffer&) = delete;
  ReorderBuffer& operator=(const ReorderBuffer&) = delete;

  void push(const Event& event);
  // Releases what has timed out; returns the number of events released.
  std::size_t expire();
  // Releases everything held, per entity in revision order; returns the number released.
  std::size_t flush();

  // A handler for Consumer::poll. REQUIRES: this buffer outlives the callable.
  auto handler() {
    return [this](const Event& event) { push(event); };
  }

  // The last revision released for an entity (key needed with kFullKey only).
  std::optional<std::uint64_t> last_revision(std::uint64_t key_hash,
                                             std::string_view key = {}) const;
  const ReorderStats& stats() const { return stats_; }

 private:
  struct Held {
    EnvelopeHeader header{};
    std::uint32_t partition = 0;
    std::uint64_t sequence = 0;
    std::uint64_t arrival_ns = 0;
    std::size_t key_bytes = 0;
    std::vector<std::byte> body;  // key then payload
  };
  struct Entity {
    bool known = false;
    std::uint64_t last = 0;
    std::vector<std::uint32_t> held;        // pool indices, ascending revision
    std::uint32_t holding_pos = 0xffffffffu;  // position in holding_, or none
  };
  std::uint64_t revision_of(std::uint32_t pool_index) const {
    return pool_[pool_index].header.entity_revision;
  }
  void emit(const EnvelopeView& view, std::uint32_t partition, std::uint64_t sequence,
            std::uint64_t gap, ReleaseReason reason);
  void hold(std::uint32_t entity, const Event& event, std::uint64_t now_ns);
  void release_lowest(std::uint32_t entity, ReleaseReason reason);
  void drain(std::uint32_t entity);
  void release_all(std::uint32_t entity, ReleaseReason reason);
  std::uint64_t oldest_arrival(std::uint32_t entity) const;
  void set_holding(std::uint32_t entity);
  void expire_at(std::uint64_t now_ns);

  ReorderOptions options_;
  Sink sink_;
  Clock clock_;
  detail::EntityLru lru_;
  std::vector<Entity> entities_;       // per LRU slot
  std::vector<Held> pool_;             // max_held_total + 1 entries
  std::vector<std::uint32_t> free_;    // free pool entries
  std::vector<std::uint32_t> holding_; // entities holding events
  std::uint64_t next_deadline_ns_ = ~0ull;
  ReorderStats stats_;
};

}  // namespace evring::core
