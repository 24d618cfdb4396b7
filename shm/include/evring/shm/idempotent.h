#pragma once
// Consumer-side idempotency: a handler wrapper that handles each idempotency key once across the
// consumer's own crashes and restarts, with its memory in the bus segment beside the consumer's
// durable cursors.
//
//   auto consumer = bus->consumer("billing", {.auto_commit = false}).value();
//   auto idem = evring::IdempotentHandler::attach(*consumer).value();
//   auto handler = idem.wrap([&](const evring::core::Event& e) { charge(e); });
//   while (running) { consumer->poll(handler); consumer->commit(); }
//
// Why: delivery is at-least-once. A consumer that crashes after handling events but before
// committing its cursor gets those events again after it restarts. The wrapper remembers the
// idempotency keys it handled (the last `keys` of them, bus option idempotency_keys) in the
// segment, so the re-delivered events are skipped.
//
// Protocol, per delivered event (key = envelope idempotency_key, or event_id when that is zero):
//   1. key in the table                -> skip: the user handler is not called;
//                                         duplicates_skipped += 1.
//   2. otherwise call the user handler; handled += 1 once it returns;
//   3. then insert the key (evicting the oldest key when the table holds `keys` keys).
// A handler returning bool may return false to say "not handled": the key is not inserted (and
// not counted), so a re-delivery calls the handler again.
//
// What a crash leaves (SIGKILL at any instruction; the segment survives the process):
//  - after step 3, before the consumer commits its cursor: covered. The event comes again and is
//    skipped.
//  - during the handler or between its return and the end of step 3: NOT covered. The key is not
//    (completely) marked, so the event is handled again after the restart. Exactly-once needs the
//    side effect and the mark to commit atomically (one transaction, or a side effect that is
//    itself idempotent); this helper cannot give that. The window is one event per crash: only
//    the last event the crashed process was handling can be handled twice.
//  - the table itself never becomes unusable: the key ring and its two counters are the durable
//    state and are written in an order that is consistent at every instruction (see below); the
//    index is rebuilt from them on every attach.
// The window is `keys` events: a key is forgotten once `keys` newer keys have been inserted. The
// consumer must therefore commit its cursor at least every `keys` handled events (auto-commit
// commits after each poll batch, so: max_events per poll <= keys), or a crash re-delivers events
// older than the window and they are handled again.
//
// Thread safety: one IdempotentHandler per consumer, used by the consumer's thread (the registry
// guarantees one owning process per consumer name; within it, attach once per Consumer). Tools in
// any process may read a table concurrently with IdempotencyTableReader.
//
// Layout of one table (the span Bus::idempotency_table(i) returns: 64 + keys * 32 bytes, starting
// at least 32-byte aligned, zero-filled by the registry when consumer index i is (re)created).
// All integers native little-endian; all words below are std::atomic<uint64_t> or fields of the
// header. A zero-filled table is a valid empty table (magic 0: formatted on first attach).
//
//  0        64                       64 + 16*keys                          64 + 32*keys
//  +--------+------------------------+-------------------------------------+
//  | header | key ring: keys x 16 B  | index: 2*keys x 8 B, linear probing |
//  +--------+------------------------+-------------------------------------+
//
// Header (IdempotencyTableHeader, 64 B):
// | off | size | field              | writer / publication                                      |
// |   0 |    4 | magic              | attach(): kIdempotencyMagic ("EVID"), stored last at      |
// |     |      |                    | formatting (release); 0 = never formatted                 |
// |   4 |    2 | layout_version     | attach(): kIdempotencyLayoutVersion                       |
// |   6 |    2 | reserved           | zero                                                      |
// |   8 |    4 | keys               | attach(): capacity; must equal the segment's keys         |
// |  12 |    4 | reserved           | zero                                                      |
// |  16 |    8 | epoch (atomic)     | owner: seqlock for readers, odd while an update is under  |
// |     |      |                    | way (stays odd if the owner died mid-update)              |
// |  24 |    8 | head (atomic)      | owner: insertion number of the next key (keys inserted)   |
// |  32 |    8 | tail (atomic)      | owner: insertion number of the oldest remembered key;     |
// |     |      |                    | live keys are insertions [tail, head), head - tail <= keys|
// |  40 |    8 | handled (atomic)   | owner, relaxed: user handler calls that returned (true)   |
// |  48 |    8 | duplicates_skipped | owner, relaxed: deliveries skipped as already handled     |
// |     |      | (atomic)           |                                                           |
// |  56 |    8 | attaches (atomic)  | owner, relaxed: times the table was attached (restarts+1) |
//
// Key ring (keys x 16 B at 64): insertion n stores its key, as the two 64-bit words of the
// Id128 bytes (relaxed atomics), in slot n % keys.
// Index (2 * keys x 8 B at 64 + 16 * keys): open addressing, linear probing, load <= 1/2.
// Entry word = tag << 32 | (ring slot + 1), 0 = empty; tag = the key's 32-bit hash, home slot =
// tag % (2 * keys). Removal by backward shift (no tombstones). A lookup probes at most 2 * keys
// entries whatever the bytes hold, and confirms a tag match against the key ring.
//
// Update protocol (owner only), the insert of key K as insertion n = head:
//   epoch <- epoch + 1 (odd)
//   if head - tail == keys: tail <- tail + 1, remove slot n % keys from the index   (evict)
//   ring[n % keys] <- K; index <- (tag(K), n % keys); head <- n + 1 (release)
//   epoch <- epoch + 1 (even, release)
// The stores are kept in this program order by release fences, so whatever instruction a SIGKILL
// stops at, [tail, head) names only slots holding complete keys: a crash between the two tail/head
// stores forgets one old key early (the one being evicted anyway), never invents one. The index is
// derived data and is rebuilt from [tail, head) on every attach, so a crash mid-index-update
// cannot cause a miss later.
//
// Bump kIdempotencyLayoutVersion when any byte above moves or changes meaning;
// tests/shm/idempotent_test.cpp (idempotent.LayoutGolden*) hard-codes it. attach() refuses a table
// whose magic, version or keys it does not recognise with Status::corruption: the segment layout
// version already matched, so a different table header means the bytes were scribbled.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <type_traits>
#include <utility>

#include "evring/codec/ids.h"
#include "evring/codec/status.h"
#include "evring/core/ring.h"

namespace evring {
class Bus;
class Consumer;
}  // namespace evring

namespace evring::shm {

inline constexpr std::uint32_t kIdempotencyMagic = 0x44495645u;  // "EVID" in memory
inline constexpr std::uint16_t kIdempotencyLayoutVersion = 1;
inline constexpr std::size_t kIdempotencyHeaderBytes = 64;
inline constexpr std::size_t kIdempotencyKeyBytes = 16;    // one key ring slot
inline constexpr std::size_t kIdempotencyIndexBytes = 8;   // one index entry (two per key)

struct IdempotencyTableHeader {
  std::atomic<std::uint32_t> magic;
  std::uint16_t layout_version;
  std::uint16_t reserved0;
  std::uint32_t keys;
  std::uint32_t reserved1;
  std::atomic<std::uint64_t> epoch;
  std::atomic<std::uint64_t> head;
  std::atomic<std::uint64_t> tail;
  std::atomic<std::uint64_t> handled;
  std::atomic<std::uint64_t> duplicates_skipped;
  std::atomic<std::uint64_t> attaches;
};
static_assert(std::is_standard_layout_v<IdempotencyTableHeader>,
              "lives in shared memory: offsets must be the declared ones");
static_assert(sizeof(IdempotencyTableHeader) == kIdempotencyHeaderBytes);
static_assert(alignof(IdempotencyTableHeader) == 8,
              "tables start 32-byte aligned (64 + 32 * keys apart), more would not hold");
static_assert(offsetof(IdempotencyTableHeader, magic) == 0);
static_assert(offsetof(IdempotencyTableHeader, layout_version) == 4);
static_assert(offsetof(IdempotencyTableHeader, keys) == 8);
static_assert(offsetof(IdempotencyTableHeader, epoch) == 16);
static_assert(offsetof(IdempotencyTableHeader, head) == 24);
static_assert(offsetof(IdempotencyTableHeader, tail) == 32);
static_assert(offsetof(IdempotencyTableHeader, handled) == 40);
static_assert(offsetof(IdempotencyTableHeader, duplicates_skipped) == 48);
static_assert(offsetof(IdempotencyTableHeader, attaches) == 56);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free &&
                  std::atomic<std::uint32_t>::is_always_lock_free,
              "cross-process atomics must not fall back to a process-local lock");
static_assert(sizeof(std::atomic<std::uint64_t>) == 8 && sizeof(std::atomic<std::uint32_t>) == 4,
              "atomics must have the size of the plain word the layout declares");
static_assert(kIdempotencyHeaderBytes + kIdempotencyKeyBytes + 2 * kIdempotencyIndexBytes == 64 + 32,
              "the segment sizes a table as 64 + 32 * keys bytes (shm::idempotency_table_bytes)");

struct IdempotencyStats {
  std::uint32_t keys = 0;                // capacity: the window, in keys
  std::uint64_t remembered = 0;          // keys currently in the table (head - tail)
  std::uint64_t inserted = 0;            // keys ever inserted (head)
  std::uint64_t handled = 0;             // user handler calls that returned
  std::uint64_t duplicates_skipped = 0;  // deliveries skipped as already handled
  std::uint64_t attaches = 0;            // times the table was attached
};

// The owner's view of one table. Cheap to move; does not own the memory.
class IdempotencyTable {
 public:
  IdempotencyTable() = default;
  // Formats a zero-filled table or validates an existing one, then rebuilds its index from the
  // key ring (O(keys)). corruption when the header or [tail, head) is not what this layout
  // writes; invalid_argument when keys is 0 / not a power of two or the span is the wrong size
  // or misaligned. REQUIRES: the caller is the table's only writer until it stops using it.
  static Result<IdempotencyTable> attach(std::span<std::byte> table, std::uint32_t keys);

  bool contains(const Id128& key) const;
  // Remembers key as the newest (evicting the oldest when full). REQUIRES: !contains(key).
  void insert(const Id128& key);
  void count_handled();
  void count_duplicate();

  std::uint32_t keys() const { return keys_; }
  IdempotencyStats stats() const;

 private:
  IdempotencyTableHeader* header_ = nullptr;
  std::atomic<std::uint64_t>* ring_ = nullptr;   // 2 words per key slot
  std::atomic<std::uint64_t>* index_ = nullptr;  // 2 * keys entries
  std::uint32_t keys_ = 0;
  void index_insert(std::uint32_t tag, std::uint32_t slot);
  void index_remove(std::uint32_t slot);
  void rebuild_index();
};

// A tool's read-only view (the table may be written concurrently by its owner).
class IdempotencyTableReader {
 public:
  IdempotencyTableReader() = default;
  // corruption when the header is not this layout's (a never-formatted zero table reads as empty).
  static Result<IdempotencyTableReader> attach(std::span<const std::byte> table, std::uint32_t keys);
  // Seqlock read: retries while the owner is mid-update; unavailable when the epoch stays odd
  // (the owner died mid-update; its next attach repairs the table).
  Result<bool> seen(const Id128& key) const;
  // Counters: each is a relaxed load, exact on its own, not a snapshot of all of them together.
  IdempotencyStats stats() const;

 private:
  const IdempotencyTableHeader* header_ = nullptr;
  const std::atomic<std::uint64_t>* ring_ = nullptr;
  const std::atomic<std::uint64_t>* index_ = nullptr;
  std::uint32_t keys_ = 0;
};

}  // namespace evring::shm

namespace evring {

class IdempotentHandler {
 public:
  enum class Outcome : std::uint8_t {
    kHandled,    // the user handler ran and the key was marked
    kDuplicate,  // key already handled: skipped
    kDeclined,   // the user handler returned false: key not marked
  };

  // Attaches the idempotency table of `consumer` (Bus::idempotency_table(consumer.index())).
  // Errors: not_found when the bus was created with idempotency_keys = 0; permission_denied on a
  // read-only bus; corruption when the table bytes are not a table of this layout.
  // REQUIRES: one IdempotentHandler per Consumer; the Consumer outlives it.
  static Result<IdempotentHandler> attach(Consumer& consumer);

  // Returns a handler for Consumer::poll that runs h(const core::Event&) once per idempotency
  // key (see the protocol above). h returns void, or bool (false: not handled, not marked).
  // h is moved or copied into the returned callable.
  // REQUIRES: this IdempotentHandler is not moved or destroyed while the callable is in use.
  template <typename H>
  auto wrap(H&& h) {
    return [this, h = std::forward<H>(h)](const core::Event& event) mutable {
      (void)handle(event, h);
    };
  }

  // One delivery through the protocol; what wrap()'s callable does.
  template <typename H>
  Outcome handle(const core::Event& event, H& h) {
    const Id128 key = key_of(event.view);
    if (table_.contains(key)) {
      table_.count_duplicate();
      return Outcome::kDuplicate;
    }
    if constexpr (std::is_same_v<std::invoke_result_t<H&, const core::Event&>, bool>) {
      if (!h(event)) return Outcome::kDeclined;
    } else {
      h(event);
    }
    table_.count_handled();
    table_.insert(key);
    return Outcome::kHandled;
  }

  // The key the protocol uses: idempotency_key, or event_id when the key is zero.
  static Id128 key_of(const EnvelopeView& view) {
    return view.header.idempotency_key.is_zero() ? view.header.event_id
                                                 : view.header.idempotency_key;
  }

  bool seen(const Id128& key) const { return table_.contains(key); }
  std::uint64_t handled() const { return table_.stats().handled; }
  std::uint64_t duplicates_skipped() const { return table_.stats().duplicates_skipped; }
  std::uint32_t window_keys() const { return table_.keys(); }
  shm::IdempotencyStats stats() const { return table_.stats(); }

 private:
  IdempotentHandler(std::shared_ptr<Bus> bus, shm::IdempotencyTable table)
      : bus_(std::move(bus)), table_(table) {}
  std::shared_ptr<Bus> bus_;  // keeps the mapping alive
  shm::IdempotencyTable table_;
};

}  // namespace evring
