#include "evring/core/ordering.h"

#include <algorithm>
#include <chrono>
#include <cstring>

namespace evring::core {

std::uint64_t steady_now_ns() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

std::string_view release_reason_name(ReleaseReason reason) {
  switch (reason) {
    case ReleaseReason::kPassThrough: return "pass-through";
    case ReleaseReason::kInOrder: return "in-order";
    case ReleaseReason::kGapFilled: return "gap-filled";
    case ReleaseReason::kTimeout: return "timeout";
    case ReleaseReason::kOverflow: return "overflow";
    case ReleaseReason::kEvicted: return "evicted";
    case ReleaseReason::kFlushed: return "flushed";
  }
  return "unknown";
}

namespace detail {
namespace {

std::size_t pow2_at_least(std::size_t n) {
  std::size_t p = 1;
  while (p < n) p <<= 1;
  return p;
}

std::string_view as_text(std::span<const std::byte> key) {
  return {reinterpret_cast<const char*>(key.data()), key.size()};
}

}  // namespace

EntityLru::EntityLru(std::size_t capacity, EntityIdentity identity)
    : identity_(identity),
      nodes_(std::max<std::size_t>(capacity, 1)),
      index_(pow2_at_least(2 * std::max<std::size_t>(capacity, 1)), 0),
      mask_(index_.size() - 1) {}

std::size_t EntityLru::home(std::uint64_t hash) const {
  // The entity key hash is xxh3 already; mixing keeps hand-made hashes (tests) spread too.
  hash ^= hash >> 33;
  hash *= 0xff51afd7ed558ccdull;
  hash ^= hash >> 33;
  return static_cast<std::size_t>(hash) & mask_;
}

bool EntityLru::matches(const Node& n, std::uint64_t hash, std::span<const std::byte> key) const {
  return n.hash == hash && (identity_ == EntityIdentity::kKeyHash || n.key == as_text(key));
}

void EntityLru::unlink(std::uint32_t n) {
  Node& node = nodes_[n];
  if (node.prev != kNone) nodes_[node.prev].next = node.next; else mru_ = node.next;
  if (node.next != kNone) nodes_[node.next].prev = node.prev; else lru_ = node.prev;
  node.prev = node.next = kNone;
}

void EntityLru::push_front(std::uint32_t n) {
  Node& node = nodes_[n];
  node.prev = kNone;
  node.next = mru_;
  if (mru_ != kNone) nodes_[mru_].prev = n;
  mru_ = n;
  if (lru_ == kNone) lru_ = n;
}

std::uint32_t EntityLru::find(std::uint64_t hash, std::span<const std::byte> key) const {
  std::size_t i = home(hash);
  for (std::size_t n = 0; n <= mask_; ++n, i = (i + 1) & mask_) {
    const std::uint32_t v = index_[i];
    if (v == 0) return kNone;
    if (matches(nodes_[v - 1], hash, key)) return v - 1;
  }
  return kNone;
}

void EntityLru::index_remove(std::uint32_t node) {
  std::size_t i = home(nodes_[node].hash);
  std::size_t n = 0;
  for (; n <= mask_; ++n, i = (i + 1) & mask_) {
    if (index_[i] == 0) return;
    if (index_[i] == node + 1) break;
  }
  if (n > mask_) return;
  // Backward-shift deletion (no tombstones): see shm/src/idempotent.cpp for the same scheme.
  std::size_t j = i;
  for (n = 0; n <= mask_; ++n) {
    j = (j + 1) & mask_;
    const std::uint32_t v = index_[j];
    if (v == 0) break;
    const std::size_t h = home(nodes_[v - 1].hash);
    if (((j - h) & mask_) >= ((j - i) & mask_)) {
      index_[i] = v;
      i = j;
    }
  }
  index_[i] = 0;
}

EntityLru::Acquired EntityLru::acquire(std::uint64_t hash, std::span<const std::byte> key) {
  const std::uint32_t found = find(hash, key);
  if (found != kNone) {
    if (mru_ != found) {
      unlink(found);
      push_front(found);
    }
    return {found, false, false};
  }
  std::uint32_t node;
  bool evicted = false;
  if (size_ < nodes_.size()) {
    node = static_cast<std::uint32_t>(size_++);
  } else {
    node = lru_;
    index_remove(node);
    unlink(node);
    evicted = true;
  }
  Node& n = nodes_[node];
  n.hash = hash;
  if (identity_ == EntityIdentity::kFullKey) n.key.assign(as_text(key));
  push_front(node);
  // At most capacity entries in an index of >= 2 * capacity: an empty entry exists.
  std::size_t i = home(hash);
  while (index_[i] != 0) i = (i + 1) & mask_;
  index_[i] = node + 1;
  return {node, true, evicted};
}

}  // namespace detail

// ---- StaleFilter ----

StaleFilter::StaleFilter(StaleFilterOptions options, OnStale on_stale)
    : entities_(options.max_entities, options.identity),
      last_(entities_.capacity(), 0),
      on_stale_(std::move(on_stale)) {}

StaleFilter::Verdict StaleFilter::check(const EnvelopeView& view) {
  if ((view.header.flags & kHasRevision) == 0) {
    ++stats_.unrevisioned;
    return Verdict::kUnrevisioned;
  }
  const std::uint64_t revision = view.header.entity_revision;
  const auto a = entities_.acquire(view.header.entity_key_hash, view.key);
  if (a.evicted) ++stats_.evictions;
  std::uint64_t& last = last_[a.slot];
  if (!a.inserted && revision <= last) {
    ++stats_.stale;
    if (on_stale_) on_stale_(view, last);
    return Verdict::kStale;
  }
  last = revision;
  ++stats_.fresh;
  return Verdict::kFresh;
}

std::optional<std::uint64_t> StaleFilter::last_revision(std::uint64_t key_hash,
                                                        std::string_view key) const {
  const std::uint32_t slot = entities_.find(key_hash, std::as_bytes(std::span(key.data(), key.size())));
  if (slot == detail::EntityLru::kNone) return std::nullopt;
  return last_[slot];
}

StaleStats StaleFilter::stats() const {
  StaleStats s = stats_;
  s.entities = entities_.size();
  return s;
}

// ---- ReorderBuffer ----

namespace {
constexpr std::uint32_t kNotHolding = 0xffffffffu;
}

ReorderBuffer::ReorderBuffer(ReorderOptions options, Sink sink, Clock clock)
    : options_(options),
      sink_(std::move(sink)),
      clock_(clock ? std::move(clock) : Clock(steady_now_ns)),
      lru_(std::max<std::size_t>(options.max_entities, 1), options.identity) {
  options_.max_held_per_entity = std::max<std::size_t>(options_.max_held_per_entity, 1);
  options_.max_held_total = std::max<std::size_t>(options_.max_held_total, 1);
  entities_.resize(lru_.capacity());
  // One spare entry: an event is held first, then the overflow rule releases one.
  pool_.resize(options_.max_held_total + 1);
  free_.reserve(pool_.size());
  for (std::size_t i = pool_.size(); i-- > 0;) free_.push_back(static_cast<std::uint32_t>(i));
  holding_.reserve(std::min(entities_.size(), pool_.size()));
}

void ReorderBuffer::emit(const EnvelopeView& view, std::uint32_t partition,
                         std::uint64_t sequence, std::uint64_t gap, ReleaseReason reason) {
  ++stats_.released;
  if (gap != 0) {
    ++stats_.gaps;
    stats_.revisions_skipped += gap;
  }
  if (reason == ReleaseReason::kTimeout) ++stats_.timeouts;
  if (reason == ReleaseReason::kOverflow) ++stats_.overflows;
  if (sink_) sink_(Released{Event{view, partition, sequence}, gap, reason});
}

void ReorderBuffer::set_holding(std::uint32_t entity) {
  Entity& e = entities_[entity];
  const bool listed = e.holding_pos != kNotHolding;
  if (!e.held.empty() && !listed) {
    e.holding_pos = static_cast<std::uint32_t>(holding_.size());
    holding_.push_back(entity);
  } else if (e.held.empty() && listed) {
    const std::uint32_t moved = holding_.back();
    holding_[e.holding_pos] = moved;
    entities_[moved].holding_pos = e.holding_pos;
    holding_.pop_back();
    e.holding_pos = kNotHolding;
  }
}

void ReorderBuffer::hold(std::uint32_t entity, const Event& event, std::uint64_t now_ns) {
  const std::uint32_t index = free_.back();
  free_.pop_back();
  Held& h = pool_[index];
  const EnvelopeView& v = event.view;
  h.header = v.header;
  h.partition = event.partition;
  h.sequence = event.sequence;
  h.arrival_ns = now_ns;
  h.key_bytes = v.key.size();
  h.body.resize(v.key.size() + v.payload.size());  // keeps capacity: no allocation once warm
  if (!v.key.empty()) std::memcpy(h.body.data(), v.key.data(), v.key.size());
  if (!v.payload.empty())
    std::memcpy(h.body.data() + v.key.size(), v.payload.data(), v.payload.size());
  Entity& e = entities_[entity];
  const std::uint64_t r = v.header.entity_revision;
  auto at = std::upper_bound(e.held.begin(), e.held.end(), r,
                             [this](std::uint64_t rev, std::uint32_t i) { return rev < revision_of(i); });
  e.held.insert(at, index);
  ++stats_.held;
  stats_.held_bytes += h.body.size();
  const std::uint64_t deadline =
      now_ns > ~0ull - options_.gap_timeout_ns ? ~0ull : now_ns + options_.gap_timeout_ns;
  next_deadline_ns_ = std::min(next_deadline_ns_, deadline);
  set_holding(entity);
}

// Releases the entity's lowest held event, reporting the gap below it.
void ReorderBuffer::release_lowest(std::uint32_t entity, ReleaseReason reason) {
  Entity& e = entities_[entity];
  const std::uint32_t index = e.held.front();
  e.held.erase(e.held.begin());
  Held& h = pool_[index];
  const std::uint64_t r = h.header.entity_revision;
  const std::uint64_t gap = r > e.last + 1 ? r - e.last - 1 : 0;
  e.last = r;
  --stats_.held;
  stats_.held_bytes -= h.body.size();
  const EnvelopeView view{h.header, std::span<const std::byte>(h.body.data(), h.key_bytes),
                          std::span<const std::byte>(h.body.data() + h.key_bytes,
                                                     h.body.size() - h.key_bytes)};
  emit(view, h.partition, h.sequence, gap, reason);
  free_.push_back(index);  // after emit: the view points into h.body
  set_holding(entity);
}

void ReorderBuffer::drain(std::uint32_t entity) {
  Entity& e = entities_[entity];
  while (!e.held.empty() && revision_of(e.held.front()) == e.last + 1)
    release_lowest(entity, ReleaseReason::kGapFilled);
}

void ReorderBuffer::release_all(std::uint32_t entity, ReleaseReason reason) {
  while (!entities_[entity].held.empty()) release_lowest(entity, reason);
}

std::uint64_t ReorderBuffer::oldest_arrival(std::uint32_t entity) const {
  std::uint64_t oldest = ~0ull;
  for (std::uint32_t i : entities_[entity].held) oldest = std::min(oldest, pool_[i].arrival_ns);
  return oldest;
}

void ReorderBuffer::push(const Event& event) {
  const std::uint64_t now = clock_();
  ++stats_.pushed;
  const EnvelopeView& v = event.view;
  if ((v.header.flags & kHasRevision) == 0) {
    emit(v, event.partition, event.sequence, 0, ReleaseReason::kPassThrough);
  } else {
    const auto a = lru_.acquire(v.header.entity_key_hash, v.key);
    Entity& e = entities_[a.slot];
    if (a.evicted) {
      ++stats_.evictions;
      release_all(a.slot, ReleaseReason::kEvicted);
    }
    if (a.inserted) {
      e.known = false;
      e.last = 0;
    }
    const std::uint64_t r = v.header.entity_revision;
    bool baseline = false;
    if (!e.known) {
      e.known = true;
      e.last = 0;
      baseline = !options_.revisions_start_at_one;
    }
    auto at = std::lower_bound(e.held.begin(), e.held.end(), r,
                               [this](std::uint32_t i, std::uint64_t rev) { return revision_of(i) < rev; });
    if (baseline || r == e.last + 1) {
      e.last = r;
      emit(v, event.partition, event.sequence, 0, ReleaseReason::kInOrder);
      drain(a.slot);
    } else if (r <= e.last || (at != e.held.end() && revision_of(*at) == r)) {
      ++stats_.stale_dropped;  // older than the last released, or this revision is held already
    } else {
      hold(a.slot, event, now);
      while (e.held.size() > options_.max_held_per_entity) {
        release_lowest(a.slot, ReleaseReason::kOverflow);
        drain(a.slot);
      }
      while (stats_.held > options_.max_held_total) {
        // Release from the entity whose held events have waited longest.
        std::uint32_t victim = holding_.front();
        std::uint64_t oldest = oldest_arrival(victim);
        for (std::uint32_t h : holding_) {
          const std::uint64_t t = oldest_arrival(h);
          if (t < oldest) {
            oldest = t;
            victim = h;
          }
        }
        release_lowest(victim, ReleaseReason::kOverflow);
        drain(victim);
      }
      stats_.held_peak = std::max(stats_.held_peak, stats_.held);  // after the caps applied
    }
  }
  if (now >= next_deadline_ns_) expire_at(now);
}

void ReorderBuffer::expire_at(std::uint64_t now_ns) {
  std::uint64_t next = ~0ull;
  for (std::size_t i = 0; i < holding_.size();) {
    const std::uint32_t entity = holding_[i];
    while (!entities_[entity].held.empty()) {
      const std::uint64_t arrival = oldest_arrival(entity);
      if (now_ns < arrival || now_ns - arrival < options_.gap_timeout_ns) {
        next = std::min<std::uint64_t>(next, arrival > ~0ull - options_.gap_timeout_ns
                                  ? ~0ull
                                  : arrival + options_.gap_timeout_ns);
        break;
      }
      release_lowest(entity, ReleaseReason::kTimeout);
      drain(entity);
    }
    // An entity that emptied was swap-removed: position i now holds an unvisited one.
    if (i < holding_.size() && holding_[i] == entity) ++i;
  }
  next_deadline_ns_ = next;
}

std::size_t ReorderBuffer::expire() {
  const std::uint64_t before = stats_.released;
  expire_at(clock_());
  return static_cast<std::size_t>(stats_.released - before);
}

std::size_t ReorderBuffer::flush() {
  const std::uint64_t before = stats_.released;
  while (!holding_.empty()) release_all(holding_.back(), ReleaseReason::kFlushed);
  next_deadline_ns_ = ~0ull;
  return static_cast<std::size_t>(stats_.released - before);
}

std::optional<std::uint64_t> ReorderBuffer::last_revision(std::uint64_t key_hash,
                                                          std::string_view key) const {
  const std::uint32_t slot = lru_.find(key_hash, std::as_bytes(std::span(key.data(), key.size())));
  if (slot == detail::EntityLru::kNone || !entities_[slot].known) return std::nullopt;
  return entities_[slot].last;
}

}  // namespace evring::core
