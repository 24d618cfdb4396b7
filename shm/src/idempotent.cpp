#include "evring/shm/idempotent.h"

#include <sched.h>

#include <cstring>
#include <string>

#include "evring/shm/bus.h"
#include "evring/shm/segment_layout.h"

namespace evring::shm {
namespace {

constexpr std::uint64_t kEmpty = 0;

// The key's 32-bit tag (index home slot = tag % index slots). Not cryptographic: keys are
// UUIDv7 ids or xxh3-128 hashes; a hostile producer choosing colliding keys can lengthen probes,
// which stay bounded by the index size.
std::uint32_t tag_of(const Id128& key) {
  std::uint64_t a, b;
  std::memcpy(&a, key.bytes.data(), 8);
  std::memcpy(&b, key.bytes.data() + 8, 8);
  std::uint64_t h = a ^ (b * 0x9e3779b97f4a7c15ull) ^ 0x6a09e667f3bcc909ull;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return static_cast<std::uint32_t>(h);
}

std::uint64_t entry_of(std::uint32_t tag, std::uint32_t slot) {
  return (std::uint64_t{tag} << 32) | (std::uint64_t{slot} + 1);
}

Id128 key_at(const std::atomic<std::uint64_t>* ring, std::uint32_t slot) {
  // Relaxed: the owner reads its own writes; a reader is inside a seqlock section (see seen()).
  const std::uint64_t w0 = ring[2 * std::size_t{slot}].load(std::memory_order_relaxed);
  const std::uint64_t w1 = ring[2 * std::size_t{slot} + 1].load(std::memory_order_relaxed);
  Id128 key;
  std::memcpy(key.bytes.data(), &w0, 8);
  std::memcpy(key.bytes.data() + 8, &w1, 8);
  return key;
}

// Whether ring slot `slot` holds a live key, given head and tail (keys: power of two).
bool live(std::uint32_t slot, std::uint64_t head, std::uint64_t tail, std::uint32_t keys) {
  const std::uint64_t count = head - tail;
  if (count >= keys) return true;
  return ((slot - tail) & (keys - 1)) < count;
}

// Bounded lookup shared by the owner and readers: at most 2 * keys probes whatever the index
// holds; a tag match is confirmed against the live key ring.
bool lookup(const IdempotencyTableHeader& h, const std::atomic<std::uint64_t>* ring,
            const std::atomic<std::uint64_t>* index, std::uint32_t keys, const Id128& key) {
  // Relaxed: see key_at().
  const std::uint64_t head = h.head.load(std::memory_order_relaxed);
  const std::uint64_t tail = h.tail.load(std::memory_order_relaxed);
  if (head - tail > keys) return false;  // torn read by a reader; it retries
  const std::uint32_t tag = tag_of(key);
  const std::size_t slots = 2 * std::size_t{keys};
  const std::size_t mask = slots - 1;
  std::size_t i = tag & mask;
  for (std::size_t n = 0; n < slots; ++n, i = (i + 1) & mask) {
    const std::uint64_t e = index[i].load(std::memory_order_relaxed);
    if (e == kEmpty) return false;
    if (static_cast<std::uint32_t>(e >> 32) != tag) continue;
    const std::uint64_t slot = (e & 0xffffffffull) - 1;
    if (slot < keys && live(static_cast<std::uint32_t>(slot), head, tail, keys) &&
        key_at(ring, static_cast<std::uint32_t>(slot)) == key)
      return true;
  }
  return false;
}

bool power_of_two(std::uint32_t v) { return v != 0 && (v & (v - 1)) == 0; }

Status check_shape(std::size_t bytes, const void* data, std::uint32_t keys) {
  if (!power_of_two(keys) || keys > (1u << 20))
    return Status::invalid_argument("idempotency table keys must be a power of two in 1..2^20, got " +
                                    std::to_string(keys));
  if (bytes != idempotency_table_bytes(keys))
    return Status::invalid_argument("idempotency table of " + std::to_string(keys) +
                                    " keys must be " +
                                    std::to_string(idempotency_table_bytes(keys)) +
                                    " bytes, got " + std::to_string(bytes));
  if (reinterpret_cast<std::uintptr_t>(data) % alignof(IdempotencyTableHeader) != 0)
    return Status::invalid_argument("idempotency table is not 8-byte aligned");
  return Status::ok();
}

// A formatted header (magic already compared) this layout wrote?
Status check_formatted(const IdempotencyTableHeader& h, std::uint32_t keys) {
  if (h.layout_version != kIdempotencyLayoutVersion)
    return Status::corruption("idempotency table layout version " +
                              std::to_string(h.layout_version) + ", expected " +
                              std::to_string(kIdempotencyLayoutVersion));
  if (h.keys != keys)
    return Status::corruption("idempotency table says " + std::to_string(h.keys) +
                              " keys, the segment " + std::to_string(keys));
  return Status::ok();
}

IdempotencyStats stats_of(const IdempotencyTableHeader& h, std::uint32_t keys) {
  // Relaxed: statistics; each counter is written by one owner and read on its own.
  IdempotencyStats s;
  s.keys = keys;
  const std::uint64_t head = h.head.load(std::memory_order_relaxed);
  const std::uint64_t tail = h.tail.load(std::memory_order_relaxed);
  s.inserted = head;
  s.remembered = head >= tail && head - tail <= keys ? head - tail : 0;
  s.handled = h.handled.load(std::memory_order_relaxed);
  s.duplicates_skipped = h.duplicates_skipped.load(std::memory_order_relaxed);
  s.attaches = h.attaches.load(std::memory_order_relaxed);
  return s;
}

// Single-writer counter bump: no read-modify-write needed, relaxed (statistics, no data
// published through them).
void bump(std::atomic<std::uint64_t>& c) {
  c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

}  // namespace

// ---- IdempotencyTable (owner) ----

Result<IdempotencyTable> IdempotencyTable::attach(std::span<std::byte> table, std::uint32_t keys) {
  EVRING_RETURN_IF_ERROR(check_shape(table.size(), table.data(), keys));
  IdempotencyTable t;
  t.header_ = reinterpret_cast<IdempotencyTableHeader*>(table.data());
  t.ring_ = reinterpret_cast<std::atomic<std::uint64_t>*>(table.data() + kIdempotencyHeaderBytes);
  t.index_ = reinterpret_cast<std::atomic<std::uint64_t>*>(
      table.data() + kIdempotencyHeaderBytes + std::size_t{keys} * kIdempotencyKeyBytes);
  t.keys_ = keys;
  IdempotencyTableHeader& h = *t.header_;

  // Acquire pairs with the release store of magic below, made by an earlier owner (another
  // process): its header fields are visible once its magic is.
  const std::uint32_t magic = h.magic.load(std::memory_order_acquire);
  if (magic == 0) {
    // Never formatted (zero-filled by the registry), or the formatter died before its last
    // store. Nothing is ever counted or inserted before magic is set, so all of that is zero.
    if (h.head.load(std::memory_order_relaxed) != 0 || h.tail.load(std::memory_order_relaxed) != 0 ||
        h.epoch.load(std::memory_order_relaxed) != 0 ||
        h.handled.load(std::memory_order_relaxed) != 0 ||
        h.duplicates_skipped.load(std::memory_order_relaxed) != 0 ||
        h.attaches.load(std::memory_order_relaxed) != 0)
      return Status::corruption("idempotency table has no magic but holds counters");
    h.layout_version = kIdempotencyLayoutVersion;
    h.reserved0 = 0;
    h.keys = keys;
    h.reserved1 = 0;
    // SYNC POINT: release publishes layout_version and keys to readers that acquire magic.
    h.magic.store(kIdempotencyMagic, std::memory_order_release);
  } else if (magic != kIdempotencyMagic) {
    return Status::corruption("idempotency table magic is wrong");
  } else {
    EVRING_RETURN_IF_ERROR(check_formatted(h, keys));
  }
  // Relaxed: the previous owner is gone; the registry mutex that handed us the consumer orders
  // its last writes before these reads (and the bytes are validated whatever they hold).
  const std::uint64_t head = h.head.load(std::memory_order_relaxed);
  const std::uint64_t tail = h.tail.load(std::memory_order_relaxed);
  if (tail > head || head - tail > keys)
    return Status::corruption("idempotency table remembers keys [" + std::to_string(tail) + ", " +
                              std::to_string(head) + "), more than its " + std::to_string(keys));
  t.rebuild_index();
  bump(h.attaches);
  return t;
}

void IdempotencyTable::rebuild_index() {
  IdempotencyTableHeader& h = *header_;
  // The epoch is odd if the previous owner died mid-update: keep it odd while rebuilding.
  std::uint64_t e = h.epoch.load(std::memory_order_relaxed);
  if (e % 2 == 0) {
    h.epoch.store(++e, std::memory_order_relaxed);
    // Release fence: the index stores below are not seen before the odd epoch (seqlock writer).
    std::atomic_thread_fence(std::memory_order_release);
  }
  const std::size_t slots = 2 * std::size_t{keys_};
  for (std::size_t i = 0; i < slots; ++i) index_[i].store(kEmpty, std::memory_order_relaxed);
  const std::uint64_t head = h.head.load(std::memory_order_relaxed);
  for (std::uint64_t n = h.tail.load(std::memory_order_relaxed); n < head; ++n) {
    const auto slot = static_cast<std::uint32_t>(n & (keys_ - 1));
    index_insert(tag_of(key_at(ring_, slot)), slot);
  }
  // SYNC POINT: release pairs with a reader's acquire of the epoch: a reader that sees the new
  // even epoch sees the rebuilt index.
  h.epoch.store(e + 1, std::memory_order_release);
}

bool IdempotencyTable::contains(const Id128& key) const {
  return lookup(*header_, ring_, index_, keys_, key);
}

void IdempotencyTable::index_insert(std::uint32_t tag, std::uint32_t slot) {
  // The index has 2 * keys entries and holds at most keys: an empty entry is always found.
  const std::size_t mask = 2 * std::size_t{keys_} - 1;
  std::size_t i = tag & mask;
  for (std::size_t n = 0; n <= mask; ++n, i = (i + 1) & mask) {
    // Relaxed: the owner is the only writer; readers are inside a seqlock section.
    if (index_[i].load(std::memory_order_relaxed) == kEmpty) {
      index_[i].store(entry_of(tag, slot), std::memory_order_relaxed);
      return;
    }
  }
}

void IdempotencyTable::index_remove(std::uint32_t slot) {
  const std::size_t mask = 2 * std::size_t{keys_} - 1;
  const std::uint64_t want = std::uint64_t{slot} + 1;
  std::size_t i = tag_of(key_at(ring_, slot)) & mask;
  std::size_t n = 0;
  for (; n <= mask; ++n, i = (i + 1) & mask) {
    const std::uint64_t e = index_[i].load(std::memory_order_relaxed);
    if (e == kEmpty) return;  // not indexed (cannot happen after a rebuild): nothing to remove
    if ((e & 0xffffffffull) == want) break;
  }
  if (n > mask) return;
  // Backward-shift deletion: pull later entries of the probe run into the hole when the hole
  // lies between their home and where they sit, so no lookup stops early at an empty entry.
  std::size_t j = i;
  for (n = 0; n <= mask; ++n) {
    j = (j + 1) & mask;
    const std::uint64_t e = index_[j].load(std::memory_order_relaxed);
    if (e == kEmpty) break;
    const std::size_t home = static_cast<std::uint32_t>(e >> 32) & mask;
    if (((j - home) & mask) >= ((j - i) & mask)) {
      index_[i].store(e, std::memory_order_relaxed);
      i = j;
    }
  }
  index_[i].store(kEmpty, std::memory_order_relaxed);
}

void IdempotencyTable::insert(const Id128& key) {
  IdempotencyTableHeader& h = *header_;
  const std::uint64_t e = h.epoch.load(std::memory_order_relaxed);
  h.epoch.store(e + 1, std::memory_order_relaxed);
  // Release fence (seqlock writer): the stores below are not seen before the odd epoch. It also
  // keeps the compiler from sinking them above it, which the crash argument needs.
  std::atomic_thread_fence(std::memory_order_release);
  const std::uint64_t head = h.head.load(std::memory_order_relaxed);
  const std::uint64_t tail = h.tail.load(std::memory_order_relaxed);
  const auto slot = static_cast<std::uint32_t>(head & (keys_ - 1));
  if (head - tail >= keys_) {
    // Evict the oldest key (it sits in the slot we are about to overwrite). tail moves first:
    // a crash from here on leaves the slot outside [tail, head), never a half-written live key.
    h.tail.store(tail + 1, std::memory_order_relaxed);
    // Release fence: the tail store stays before the slot's new words (crash order).
    std::atomic_thread_fence(std::memory_order_release);
    index_remove(slot);
  }
  std::uint64_t w0, w1;
  std::memcpy(&w0, key.bytes.data(), 8);
  std::memcpy(&w1, key.bytes.data() + 8, 8);
  ring_[2 * std::size_t{slot}].store(w0, std::memory_order_relaxed);
  ring_[2 * std::size_t{slot} + 1].store(w1, std::memory_order_relaxed);
  index_insert(tag_of(key), slot);
  // Release: the key words are complete before head names the slot live (crash order; a
  // reader is covered by the epoch).
  h.head.store(head + 1, std::memory_order_release);
  // SYNC POINT: release pairs with the reader's acquire fence + epoch re-check in seen(): a
  // reader that read any of this update's stores sees the epoch changed and retries.
  h.epoch.store(e + 2, std::memory_order_release);
}

void IdempotencyTable::count_handled() { bump(header_->handled); }
void IdempotencyTable::count_duplicate() { bump(header_->duplicates_skipped); }

IdempotencyStats IdempotencyTable::stats() const { return stats_of(*header_, keys_); }

// ---- IdempotencyTableReader ----

Result<IdempotencyTableReader> IdempotencyTableReader::attach(std::span<const std::byte> table,
                                                              std::uint32_t keys) {
  EVRING_RETURN_IF_ERROR(check_shape(table.size(), table.data(), keys));
  IdempotencyTableReader r;
  r.header_ = reinterpret_cast<const IdempotencyTableHeader*>(table.data());
  r.ring_ = reinterpret_cast<const std::atomic<std::uint64_t>*>(table.data() +
                                                                kIdempotencyHeaderBytes);
  r.index_ = reinterpret_cast<const std::atomic<std::uint64_t>*>(
      table.data() + kIdempotencyHeaderBytes + std::size_t{keys} * kIdempotencyKeyBytes);
  r.keys_ = keys;
  // Acquire pairs with the owner's release of magic at formatting.
  const std::uint32_t magic = r.header_->magic.load(std::memory_order_acquire);
  if (magic == 0) return r;  // not formatted yet: reads as empty
  if (magic != kIdempotencyMagic) return Status::corruption("idempotency table magic is wrong");
  EVRING_RETURN_IF_ERROR(check_formatted(*r.header_, keys));
  return r;
}

Result<bool> IdempotencyTableReader::seen(const Id128& key) const {
  const IdempotencyTableHeader& h = *header_;
  // Acquire: pairs with the release of magic at formatting (layout_version, keys).
  const std::uint32_t magic = h.magic.load(std::memory_order_acquire);
  if (magic == 0) return false;
  if (magic != kIdempotencyMagic) return Status::corruption("idempotency table magic is wrong");
  EVRING_RETURN_IF_ERROR(check_formatted(h, keys_));
  for (int attempt = 0; attempt < 10000; ++attempt) {
    // Acquire pairs with the owner's release of the even epoch that ended its last update.
    const std::uint64_t e1 = h.epoch.load(std::memory_order_acquire);
    if (e1 % 2 != 0) {
      if (attempt > 100) sched_yield();
      continue;
    }
    const bool found = lookup(h, ring_, index_, keys_, key);
    // Acquire fence then relaxed re-read (seqlock reader): if any load above saw a store of a
    // later update, the epoch read here is that update's odd (or later) value.
    std::atomic_thread_fence(std::memory_order_acquire);
    if (h.epoch.load(std::memory_order_relaxed) == e1) return found;
  }
  return Status::unavailable(
      "idempotency table stays mid-update (its owner died during an insert; the consumer's next "
      "attach repairs it)");
}

IdempotencyStats IdempotencyTableReader::stats() const { return stats_of(*header_, keys_); }

}  // namespace evring::shm

namespace evring {

Result<IdempotentHandler> IdempotentHandler::attach(Consumer& consumer) {
  Bus& bus = consumer.bus();
  if (bus.read_only())
    return Status::permission_denied("bus '" + bus.name() +
                                     "' is open read-only: its idempotency tables cannot be written");
  const std::uint32_t keys = bus.header().idempotency_keys;
  if (keys == 0)
    return Status::not_found("bus '" + bus.name() +
                             "' has no idempotency tables (created with idempotency_keys = 0)");
  std::span<std::byte> table = bus.idempotency_table(consumer.index());
  if (table.empty())
    return Status::not_found("bus '" + bus.name() + "' has no idempotency table for consumer '" +
                             consumer.name() + "'");
  auto t = shm::IdempotencyTable::attach(table, keys);
  if (!t.ok()) {
    const Status s = t.status();
    return Status(s.code(), "consumer '" + consumer.name() + "' of bus '" + bus.name() + "': " +
                                s.message());
  }
  return IdempotentHandler(bus.shared_from_this(), t.value());
}

}  // namespace evring
