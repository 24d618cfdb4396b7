// RingProducer: claim, write and publish slots (the slot protocol in core/FORMAT.md and
// ring_layout.h); the ring region itself is in ring.cpp, producer lanes in producer_lanes.cpp.
#include <algorithm>
#include <array>
#include <cstring>
#include <limits>

#include "evring/codec/envelope_hot.h"
#include "evring/core/clock.h"
#include "evring/core/dedup.h"
#include "evring/core/ring.h"
#include "evring/core/wait.h"

#if defined(__x86_64__)
#include <cpuid.h>
#endif

// The helpers of a publish, inlined into try_publish, try_publish_batch and try_claim: each call
// stores a return address and the callee's saved registers, and a publish went through a dozen
// of them: 135 stores an event, 10 of them to the slot (cachegrind). Stores leave the store
// buffer in order, so while a slot store waits for its line to come from the consumer's core,
// every later store waits behind it; at ~135 an event the buffer held less than one event.
#define EVRING_PUBLISH_PATH [[gnu::always_inline]] inline

namespace evring::core {
namespace {

#if defined(__x86_64__)
// PREFETCHW (CPUID 0x80000001 ECX bit 8: every AMD x86-64, Intel since Broadwell).
bool cpu_has_prefetchw() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid(0x80000000u, &a, &b, &c, &d) == 0 || a < 0x80000001u) return false;
  if (__get_cpuid(0x80000001u, &a, &b, &c, &d) == 0) return false;
  return (c & (1u << 8)) != 0;
}
#endif

// Asks for a line in exclusive state, as a store would. __builtin_prefetch(p, 1, ...) does not:
// without -mprfchw (not in the baseline x86-64 target) g++ emits a read prefetch (prefetcht0)
// for it, so the line arrived shared and the store still had to upgrade it, another round trip
// to the consumer's core, inside the next publish. Where the CPU lacks PREFETCHW, a read
// prefetch is what it gets. (Xeon 2 vCPU, 8 interleaved rounds against the read prefetch:
// round trip p50 0.90x, every round 0.87-0.95; throughput 1.12x.)
#if defined(__x86_64__)
// Read once at load (no guard per call); a producer used during another file's static
// initialization, before this one runs, sees false and gets read prefetches: safe.
const bool kHasPrefetchW = cpu_has_prefetchw();
#endif

EVRING_PUBLISH_PATH
void prefetch_line_for_write(const std::byte* p) {
#if defined(__x86_64__)
  if (kHasPrefetchW) {
    asm volatile("prefetchw %0" ::"m"(*p));
    return;
  }
#endif
  __builtin_prefetch(p, 1, 3);
}

// Bytes [first, end) of a slot, a cache line at a time (first is a multiple of a line).
EVRING_PUBLISH_PATH
void prefetch_lines_for_write(const std::byte* slot, std::size_t first, std::size_t end) {
  for (std::size_t off = first; off < end; off += kCacheLine) prefetch_line_for_write(slot + off);
}

// Which header word groups of the request's event a slot can leave out (ring_layout.h).
std::uint16_t elided_groups(const PublishRequest& r) {
  return kCompactHeader | (r.origin_host == 0 ? kElideOriginHost : 0) |
         (r.idempotency_key.is_zero() ? kElideIdempotencyKey : 0) |
         (r.correlation_id.is_zero() ? kElideCorrelationId : 0) |
         (r.causation_id.is_zero() ? kElideCausationId : 0) |
         (r.entity_revision == 0 ? kElideRevision : 0);
}

std::span<const std::byte> as_bytes(std::string_view s) {
  return std::as_bytes(std::span(s.data(), s.size()));
}

// The id held in header words first and first + 1 (canonical byte order, as stored). Two 8-byte
// loads through registers: one 16-byte load across the two 8-byte stores that wrote the words
// could not be forwarded from them and would wait for every older store (write_event below).
Id128 id_of_words(const HeaderWords& words, std::size_t first) {
  std::uint64_t lo = words.w[first], hi = words.w[first + 1];
  asm volatile("" : "+r"(lo), "+r"(hi));
  Id128 id;
  std::memcpy(id.bytes.data(), &lo, 8);
  std::memcpy(id.bytes.data() + 8, &hi, 8);
  return id;
}

}  // namespace

std::string_view describe(PublishResult r) {
  switch (r) {
    case PublishResult::kOk: return "published";
    case PublishResult::kFull: return "bus full: the slowest consumer is a whole ring behind";
    case PublishResult::kTooLarge: return "entity key and payload do not fit in a slot";
    case PublishResult::kUnknownType: return "event type not registered on this bus";
    case PublishResult::kDomainNotOwned: return "event type of a domain the producer does not own";
    case PublishResult::kDuplicate: return "duplicate idempotency key: dropped";
    case PublishResult::kRevoked:
      return "the claimed slot was abandoned before it was written (producer presumed dead)";
    case PublishResult::kExclusive:
      return "partition held by another producer publishing exclusively";
    case PublishResult::kBusy:
      return "partition busy: another producer's claim there is still open (an exclusive take, "
             "or a revocation of that producer's bias, waits only so long)";
  }
  return "invalid result";
}

// ------------------------------------------------------------------------------ RingProducer

RingProducer::RingProducer(RingRegion region, std::uint16_t producer_id, std::uint32_t lane,
                           const TypePolicy* policy)
    : region_(region),
      producer_id_(producer_id),
      lane_index_(lane),
      lane_(&region.lane(lane)),
      policy_(policy),
      owned_(region.config().partitions, kNotHeld),
      solo_next_(region.config().partitions, 0),
      solo_run_(region.config().partitions, 0),
      gate_cache_(region.config().partitions, 0),
      discard_(new std::byte[region.config().slot_bytes]),
      light_fence_(register_light_fence()),
      prefetch_ahead_(std::clamp<std::uint64_t>(region.capacity() / 4, 1, kPrefetchAhead)) {}

EVRING_PUBLISH_PATH
PublishResult RingProducer::check(const PublishRequest& r, std::size_t body_bytes) const {
  if (!policy_->known[r.type_id] || r.type_id == 0) return PublishResult::kUnknownType;
  if (!policy_->allowed[r.type_id]) return PublishResult::kDomainNotOwned;
  if (body_bytes > max_body_bytes(region_.config().slot_bytes) || r.entity_key.size() > 0xFFFF)
    return PublishResult::kTooLarge;
  return PublishResult::kOk;
}

EVRING_PUBLISH_PATH
PublishResult RingProducer::claim(std::uint32_t p, std::uint64_t wanted, std::uint64_t* first,
                                  std::uint64_t* got, bool may_hold) {
  PartitionHeader& part = region_.partition(p);
  const bool reject = region_.config().overflow == Overflow::kReject;
  const std::uint64_t capacity = region_.capacity();
  if (reject) {
    // A consumer attached since our cache was computed may sit below it: drop the caches.
    std::uint64_t epoch = region_.header().gate_epoch.load(std::memory_order_acquire);
    if (epoch != gate_epoch_seen_) {
      gate_epoch_seen_ = epoch;
      std::fill(gate_cache_.begin(), gate_cache_.end(), 0);
    }
  }
  // Relaxed: the owner alone writes its lane; the CAS below (release) publishes the intent.
  lane_->partition.store(p, std::memory_order_relaxed);
  bool sole = exclusive_;  // whether this claim may advance head with a plain store
  if (exclusive_) {
    lane_->count.store(static_cast<std::uint32_t>(wanted), std::memory_order_relaxed);
    if (owned_[p] != kHeld) [[unlikely]] {
      if (PublishResult r = acquire_exclusive(p); r != PublishResult::kOk) {
        end_claim();
        return r;
      }
    }
  } else {
    if (may_hold && owned_[p] == kNotHeld && bias_after_ != 0 && solo_run_[p] >= bias_after_)
        [[unlikely]]
      try_take_bias(p);  // our lane is idle here: the take waits for other producers' claims
    // As the biased holder, the intent carries kSoleClaim: a revoker waits until it is gone.
    const bool sole_intent = may_hold && owned_[p] == kBiased;
    const std::uint32_t intent =
        static_cast<std::uint32_t>(wanted) | (sole_intent ? kSoleClaim : 0);
    // SYNC POINT (Dekker with acquire_exclusive): our intent, then the owner word; the taker
    // CASes the owner word, then loads every lane's intent. Either we see its mark and back off,
    // or it sees our intent and waits until this claim is finished. The full barrier between our
    // store and our load is the taker's: it calls heavy_fence() (membarrier) after its CAS,
    // which makes this thread execute one, so a compiler barrier does here (as for sleepers in
    // notify_consumers). Where membarrier is refused, a seq_cst exchange (a locked op; it cost
    // the shared path ~10% on the Xeon, paid per claim).
    // The same pairing protects a biased holder's plain claims from a revoker (revoke_bias):
    // either the holder sees the mark gone, or the revoker sees the holder's kSoleClaim intent
    // and waits for it to end.
    if (light_fence_) {
      lane_->count.store(intent, std::memory_order_relaxed);
      std::atomic_signal_fence(std::memory_order_seq_cst);
    } else {
      (void)lane_->count.exchange(intent, std::memory_order_seq_cst);
    }
    const std::uint32_t owner = part.exclusive_owner.load(std::memory_order_seq_cst);
    if (sole_intent && owner == (kBiasedOwner | (lane_index_ + 1))) {
      sole = true;  // still ours: nobody revoked it before our intent was out
    } else if (owner != 0 || sole_intent) [[unlikely]] {
      if (PublishResult r = check_owner(p, owner); r != PublishResult::kOk) {
        end_claim();
        return r;
      }
    }
  }
  std::uint64_t head = part.head.load(std::memory_order_relaxed);
  while (true) {
    std::uint64_t n = wanted;
    if (reject) {
      std::uint64_t limit = gate_cache_[p] + capacity;  // first sequence we may not claim
      if (head + wanted > limit) {
        std::uint64_t lowest = region_.min_attached_cursor(p);
        // No attached consumer: nobody to protect; the ring only needs to stay a ring.
        gate_cache_[p] = lowest == std::numeric_limits<std::uint64_t>::max() ? head : lowest;
        limit = gate_cache_[p] + capacity;
        if (head >= limit) {
          end_claim();
          part.rejected.fetch_add(1, std::memory_order_relaxed);  // statistic only
          return PublishResult::kFull;
        }
      }
      n = std::min(wanted, limit - head);
      // A writer a whole lap behind may still be filling a slot we would take (possible when
      // no consumer gates, or one attached late): claim only slots whose previous sequence is
      // finished, so nobody ever writes over an unfinished slot. One load of a line we are
      // about to write anyway.
      std::uint64_t usable = 0;
      while (usable < n && previous_lap_finished(p, head + usable)) ++usable;
      if (usable == 0) {
        end_claim();
        part.rejected.fetch_add(1, std::memory_order_relaxed);  // statistic only
        return PublishResult::kFull;
      }
      n = usable;
    }
    lane_->first.store(head, std::memory_order_relaxed);
    if (sole) {
      // Nobody else writes head while we hold the partition (exclusively, or biased: a revoker
      // waits for this claim to end before it CASes): a plain store claims, and its release
      // publishes the intent as the CAS's does. No locked instruction, so the slot stores of
      // the previous event drain in the background instead of stalling this claim.
      part.head.store(head + n, std::memory_order_release);
      *first = head;
      *got = n;
      return PublishResult::kOk;
    }
    // SYNC POINT (release): a consumer that acquires head past `head` sees the intent above.
    // The acquire that makes slot reuse safe in reject mode was the cursor load in
    // min_attached_cursor(); overwrite mode does not look at consumers.
    if (part.head.compare_exchange_weak(head, head + n, std::memory_order_release,
                                        std::memory_order_relaxed)) {
      note_shared_claim(p, head, n);
      *first = head;
      *got = n;
      return PublishResult::kOk;
    }
  }
}

EVRING_PUBLISH_PATH
void RingProducer::prefetch_for_write(std::uint32_t p, std::uint64_t seq) const {
  // The slot we will write prefetch_ahead_ events from now still sits, shared, in the cache of
  // the consumer that read it a lap ago. Ask for its lines in exclusive state now, so that the
  // transfer overlaps with the publishes in between instead of filling the store buffer during
  // its own. Line 0 (the word) too, unless the slot is the very next one: a consumer keeping up
  // spins on the next slot's word, and taking that line from it delays the event it waits for
  // (round trip 1.03x worse, session J), while the word of a slot two or more ahead is read by
  // no one (throughput 1.04x, 12 of 12 rounds, round trip and one-way within the noise, AMD VM).
  const std::byte* base = reinterpret_cast<const std::byte*>(&region_.slot(p, seq));
  const std::size_t first_line = prefetch_ahead_ >= 2 ? 0 : kCacheLine;  // line 0 or not
  prefetch_lines_for_write(base, first_line,
                           std::min<std::size_t>(region_.config().slot_bytes, kPrefetchBytes + 1));
}

EVRING_PUBLISH_PATH
void RingProducer::prefetch_held_slots(std::uint32_t p,
                                       std::span<const PublishRequest> events) const {
  // The slots' lines sit in the cache of the consumer that read them a lap ago, or that spins
  // on the word now: the 16-ahead prefetch (prefetch_for_write) came before that consumer read
  // them whenever the ring runs full, and a waiting consumer takes lines 0-1 back on every spin
  // (RingConsumer::await_second_line). Without this, a publish's slot stores waited for those
  // transfers after all the work before them. A shared producer learns its sequence only from
  // the claim, and an early read of the head line other producers CAS would cost them a
  // transfer.
  if (owned_[p] == kNotHeld) return;
  // Relaxed: the head is ours while we hold p; a hint only, the claim reads it again.
  const std::uint64_t head = region_.partition(p).head.load(std::memory_order_relaxed);
  const std::size_t n = std::min<std::size_t>(events.size(), kPrefetchAhead);
  for (std::size_t k = 0; k < n && known_released(p, head + k); ++k) {
    const std::size_t body = events[k].entity_key.size() + events[k].payload.size();
    prefetch_lines_for_write(
        reinterpret_cast<const std::byte*>(&region_.slot(p, head + k)), 0,
        std::min(kSlotHeaderBytes + kCompactFixedBytes + body, kPrefetchBytes));
  }
}

EVRING_PUBLISH_PATH
bool RingProducer::previous_lap_finished(std::uint32_t p, std::uint64_t seq) const {
  const std::uint64_t capacity = region_.capacity();
  // Acquire: pairs with the previous writer's release of its final word.
  std::uint64_t w = region_.slot(p, seq).word.load(std::memory_order_acquire);
  if (seq < capacity) return true;  // first lap: nobody wrote this slot before
  // An older word: the previous lap's writer claimed but has not begun. A newer one: the slot
  // moved on already (begin_write will refuse it).
  if (word_sequence(w) != seq - capacity) return word_sequence(w) > seq - capacity;
  SlotState st = word_state(w);
  return st != SlotState::kWriting && st != SlotState::kPending;
}

EVRING_PUBLISH_PATH
void RingProducer::end_claim() {
  // SYNC POINT: release pairs with resolve_stuck()/lane_resolved() acquiring count: once idle is
  // seen, our slots' final words are visible too.
  lane_->count.store(0, std::memory_order_release);
}

EVRING_PUBLISH_PATH
SlotHeader* RingProducer::begin_write(std::uint32_t p, std::uint64_t seq) {
  SlotHeader& slot = region_.slot(p, seq);
  const std::uint64_t writing = slot_word(seq, SlotState::kWriting);
  if (region_.config().overflow == Overflow::kReject) {
    // The gate guarantees every attached consumer is past seq - capacity and that sequence was
    // finished: nobody else writes this slot now.
    // A plain store, not a CAS: the only other party that may write this word now is a
    // consumer abandoning the slot (resolve_stuck), and it does so only when every lane whose
    // intent covers seq belongs to a dead process; our lane covers seq from before the claim
    // until end_claim() and we are alive. The locked CAS used to stall the producer until the
    // line came back from the consumer spinning on it; the store retires in the background.
    std::uint64_t w = slot.word.load(std::memory_order_relaxed);
    if (word_sequence(w) >= seq && w != 0) return nullptr;
    slot.word.store(writing, std::memory_order_relaxed);
  } else {
    // Overwrite: a producer stalled a whole lap behind may still be writing the previous
    // sequence of this slot. Wait for it (it is live, or will be marked abandoned); never write
    // over a newer sequence (we were lapped ourselves: the event is lost, as overwrite allows).
    std::uint64_t w = slot.word.load(std::memory_order_acquire);
    for (std::uint32_t spins = 0;; ++spins) {
      if (word_sequence(w) >= seq && w != 0) return nullptr;
      if (word_state(w) != SlotState::kWriting && word_state(w) != SlotState::kPending) {
        if (slot.word.compare_exchange_weak(w, writing, std::memory_order_acquire,
                                            std::memory_order_acquire))
          break;
        continue;
      }
      cpu_relax(spins);
      // The writer a lap behind may be dead: check its lane about every millisecond (yields
      // make each spin past 64 cost a scheduler round trip).
      if (alive_ && spins >= 64 && (spins & 255) == 0) {
        std::uint64_t now = monotonic_ns();
        if (stalled_since_ == 0) stalled_since_ = now;
        (void)region_.resolve_stuck(p, word_sequence(w), w, now - stalled_since_, alive_);
      }
      w = slot.word.load(std::memory_order_acquire);
    }
    stalled_since_ = 0;
  }
  // Release fence: a reader that copies this slot and then re-checks the word must not be able
  // to see our payload bytes while still seeing the old PUBLISHED word (seqlock writer side).
  std::atomic_thread_fence(std::memory_order_release);
  return &slot;
}

EVRING_PUBLISH_PATH
RingProducer::EarlyParts RingProducer::early_parts(const PublishRequest& r, std::uint64_t now_ns,
                                                   bool with_probe) {
  EarlyParts e;
  e.timestamp_ns = r.timestamp_ns ? r.timestamp_ns : now_ns;
  e.event_id = ids_.next_event_id(e.timestamp_ns);
  if (with_probe && region_.dedup_enabled()) [[unlikely]] {
    const BloomProbe probe =
        bloom_probe(region_, r.idempotency_key.is_zero() ? e.event_id : r.idempotency_key);
    // Field by field, through registers. `e.probe = probe` was compiled as the two returned
    // registers stored to the stack and reloaded as one 16-byte load to copy: a load that spans
    // two stores cannot be forwarded from them and waits until every older store has left the
    // store buffer, the previous event's slot stores included (a quarter of a dedup publish
    // across cores went there).
    std::uint64_t word = probe.word, mask = probe.mask;
    asm volatile("" : "+r"(word), "+r"(mask));
    e.probe.word = word;
    e.probe.mask = mask;
  }
  return e;
}

EVRING_PUBLISH_PATH
HeaderWords RingProducer::header_words(const PublishRequest& r, std::uint64_t key_hash,
                                       std::uint64_t seq, const EarlyParts& early,
                                       std::size_t payload_bytes) {
  // The wire words (codec/envelope.h) straight from the request's fields, which the caller wrote
  // long ago: no field-by-field staging copy of an EnvelopeHeader to be packed afterwards, whose
  // narrow stores the packing loads had to wait for (micro benches, minimum of 10 interleaved
  // rounds: batch 16 835 -> 790 ns, dedup publish -7 ns, single publish -1 ns).
  // Word by word, not one 16-byte copy across two words: 2 stores fewer a publish
  // (cachegrind). g++ still keeps the sixteen words on the stack.
  auto id_words = [](const Id128& id, std::uint64_t* out) {
    std::memcpy(&out[0], id.bytes.data(), 8);
    std::memcpy(&out[1], id.bytes.data() + 8, 8);
  };
  auto u = [](auto v) { return static_cast<std::uint64_t>(v); };
  HeaderWords h;
  std::uint64_t* w = h.w;
  const std::uint64_t timestamp = early.timestamp_ns;
  const Id128& event_id = early.event_id;
  w[0] = u(kEnvelopeFormatVersion) | u(kEnvelopeHeaderBytes) << 16 | u(r.type_id) << 32 |
         u(r.schema_version) << 48;
  w[1] = u(producer_id_) | u(static_cast<std::uint8_t>(r.classification)) << 16 |
         u(static_cast<std::uint8_t>(r.content_type)) << 24 | u(r.flags) << 32 |
         u(r.key_id) << 48;
  w[2] = timestamp;
  w[3] = seq;
  id_words(event_id, &w[4]);
  id_words(r.idempotency_key.is_zero() ? event_id : r.idempotency_key, &w[6]);
  // An event without a correlation starts a trace, and the trace is named after the event: a
  // UUIDv7 is non-zero and its rightmost 7 bytes are random, which is what W3C trace-context
  // asks of a trace id (level 2, "random" flag). A second random id per event cost ~5 ns.
  id_words(r.correlation_id.is_zero() ? event_id : r.correlation_id, &w[8]);
  id_words(r.causation_id, &w[10]);
  w[12] = key_hash;
  w[13] = r.entity_revision;
  w[14] = u(static_cast<std::uint32_t>(payload_bytes)) |
          u(static_cast<std::uint16_t>(r.entity_key.size())) << 32;  // reserved (48..63) zero
  w[15] = u(r.origin_host);                                           // checksum (32..63) zero
  return h;
}

EVRING_PUBLISH_PATH
SlotHeader* RingProducer::write_event(std::uint32_t p, std::uint64_t seq, const PublishRequest& r,
                                      std::uint64_t key_hash, const EarlyParts& early,
                                      PublishReceipt* receipt, DedupMark* mark) {
  auto key = as_bytes(r.entity_key);
  HeaderWords words = header_words(r, key_hash, seq, early, r.payload.size());
  // Dedup buses: set the key's bits now, before the slot is written (dedup.h): the bloom word's
  // locked RMW then does not wait for this event's slot lines to arrive.
  if (region_.dedup_enabled()) [[unlikely]] {
    const Id128 idem = id_of_words(words, 6);
    *mark = {dedup_mark(region_, p, seq, early.probe, bloom_writers(p)), idem, words.w[2]};
  }
  // Everything is computed before the first slot store, and nothing stored here is read back:
  // the header goes out as sixteen 64-bit words from registers, its checksum is hashed from
  // those words' values (header_words_hash: inline, nothing stored to hash them) and from the
  // caller's key and payload (codec/envelope.h, "Checksum"). The slot
  // stores wait in the store buffer for the consumer's core to give their lines up; any load
  // that must wait for a store (a locked instruction, or a read of bytes just written by
  // narrower stores) would wait for all of them, and that wait was half a publish across cores.
  words.w[15] |= std::uint64_t{combine_checksum(header_words_hash(words), key_hash,
                                                hot::payload_hash(r.payload))}
                 << 32;
  SlotHeader* slot = begin_write(p, seq);
  if (!slot) return nullptr;
  // The compact header: what the slot and body imply is left out (ring_layout.h, SlotElide).
  const std::uint16_t elided = elided_groups(r);
  const std::size_t bytes =
      stored_header_bytes(elided) + key.size() + r.payload.size();
  // envelope_bytes, writer and elided (slot bytes 8..15) as one store.
  const std::uint64_t length_word =
      bytes | std::uint64_t{producer_id_} << 32 | std::uint64_t{elided} << 48;
  std::memcpy(&slot->envelope_bytes, &length_word, sizeof length_word);
  auto* out = reinterpret_cast<std::uint64_t*>(RingRegion::envelope_of(*slot));
  auto put = [&out](std::uint64_t v) {
    // Through a register, one word at a time: a vectorised copy would load 32 bytes across
    // several of the 8-byte stores that just built `words` (see above).
    asm volatile("" : "+r"(v));
    *out++ = v;
  };
  // The compact header (ring_layout.h), packed from the wire words (codec/envelope.h):
  // type and schema (w0 32..63), classification, content type and flags (w1 16..47); the
  // timestamp, the event id; key id (w1 48..63), key length (w14 32..47), checksum (w15 32..63).
  const std::uint64_t* w = words.w;
  put(w[0] >> 32 | (w[1] >> 16 & 0xFFFF'FFFF) << 32);
  put(w[2]);
  put(w[4]);
  put(w[5]);
  put(w[1] >> 48 | (w[14] >> 32 & 0xFFFF) << 16 | (w[15] >> 32) << 32);
  if (!(elided & kElideIdempotencyKey)) put(w[6]), put(w[7]);
  if (!(elided & kElideCorrelationId)) put(w[8]), put(w[9]);
  if (!(elided & kElideCausationId)) put(w[10]), put(w[11]);
  if (!(elided & kElideRevision)) put(w[13]);
  if (!(elided & kElideOriginHost)) put(w[15] & 0xFFFF'FFFF);
  std::byte* body = reinterpret_cast<std::byte*>(out);
  if (!key.empty()) std::memcpy(body, key.data(), key.size());
  if (!r.payload.empty()) std::memcpy(body + key.size(), r.payload.data(), r.payload.size());
  if (receipt) *receipt = {p, seq, id_of_words(words, 4)};
  return slot;
}

EVRING_PUBLISH_PATH
bool RingProducer::finish_publish(std::uint32_t p, SlotHeader* slot, std::uint64_t seq,
                                  const DedupMark& mark) {
  if (region_.dedup_enabled() && mark.maybe) [[unlikely]] {
    // SYNC POINT: release publishes the envelope to other producers' dedup scans (they acquire
    // the word): PENDING says "a confirmer, with its key readable".
    slot->word.store(slot_word(seq, SlotState::kPending), std::memory_order_release);
    if (dedup_confirm(region_, p, seq, mark.key, mark.time_ns, alive_) ==
        DedupVerdict::kDuplicate) {
      // Release: consumers acquiring DUPLICATE skip the slot.
      slot->word.store(slot_word(seq, SlotState::kDuplicate), std::memory_order_release);
      region_.partition(p).deduplicated.fetch_add(1, std::memory_order_relaxed);  // statistic
      return false;
    }
  }
  // SYNC POINT: release publishes the slot's length, writer and envelope to consumers that
  // acquire the word in RingConsumer::read_one() (and to dedup scans of other producers).
  slot->word.store(slot_word(seq, SlotState::kPublished), std::memory_order_release);
  return true;
}

void RingProducer::demote_slot(const SlotHeader* slot, std::size_t envelope_bytes) {
  // envelope_bytes is the full envelope's: a slot that elided header words may use one line
  // fewer, and demoting that line too is harmless (sizing it to the stored bytes measured no
  // better: bench/RESULTS.md, session I).
#if defined(__x86_64__)
  // CLDEMOTE is a hint encoded in the reserved-NOP space: a CPU without it executes a NOP.
  // Line 0 is left alone: the consumer is most likely already fetching it (it holds the word).
  const char* base = reinterpret_cast<const char*>(slot);
  const std::size_t lines = (kSlotHeaderBytes + envelope_bytes + kCacheLine - 1) / kCacheLine;
  for (std::size_t i = 1; i < lines; ++i) asm volatile("cldemote %0" ::"m"(base[kCacheLine * i]));
#else
  (void)slot;
  (void)envelope_bytes;
#endif
  ++demoted_slots_;
}

EVRING_PUBLISH_PATH
void RingProducer::notify_consumers() {
  // Dekker with RingConsumer::wait: our final slot store, then their sleepers count; they
  // increment sleepers, then look at our slot, so at least one of us must see the other. With
  // the asymmetric fence (wait.h) the full barrier is theirs: membarrier() between their
  // increment and their look makes this thread execute one, so a compiler barrier suffices
  // here. Without it, a seq_cst fence, which waits for every pending store of the event.
  if (light_fence_)
    std::atomic_signal_fence(std::memory_order_seq_cst);
  else
    std::atomic_thread_fence(std::memory_order_seq_cst);
  if (region_.header().sleepers.load(std::memory_order_relaxed) != 0) region_.wake_sleepers();
}

PublishResult RingProducer::try_publish(const PublishRequest& r, PublishReceipt* receipt) {
  if (PublishResult c = check(r, r.entity_key.size() + r.payload.size()); c != PublishResult::kOk)
    return c;
  const std::uint64_t key_hash = hot::entity_key_hash(r.entity_key);
  std::uint32_t p = region_.partition_of(key_hash);
  // The slot to be claimed is known now if we hold p. Across cores, AMD Zen 5 VM, two runs of 6
  // interleaved rounds: throughput 1.56-1.65x, round trip p50 0.82-0.90x (bench/RESULTS.md,
  // session O).
  prefetch_held_slots(p, std::span(&r, 1));
  // The clock is read before the claim: on a shared partition the claim's CAS waits for the
  // previous event's slot stores to drain, and the clock's work (a TSC read and a few loads
  // that the locked instruction would hold back) runs while they do. Across cores: shared
  // publishes +7.5%, with dedup +20% (Xeon, 6 interleaved rounds). Timestamps of one producer
  // still rise with its sequences; across producers they never were ordered.
  // So are the event id and, on dedup buses, the key's bloom probe (early_parts): with dedup,
  // shared publishes +9% and exclusive ones +21% (Xeon, 6 interleaved rounds).
  const std::uint64_t now = clock_.now_ns();
  const EarlyParts early = early_parts(r, now);
  std::uint64_t seq, got;
  if (PublishResult c = claim(p, 1, &seq, &got); c != PublishResult::kOk) return c;
  const bool after_idle = idle_before(now, 1);
  PublishResult result = PublishResult::kOk;
  DedupMark mark;
  if (SlotHeader* slot = write_event(p, seq, r, key_hash, early, receipt, &mark)) {
    if (!finish_publish(p, slot, seq, mark)) result = PublishResult::kDuplicate;
    else if (after_idle) demote_slot(slot, envelope_bytes(r.entity_key.size(), r.payload.size()));
  } else if (region_.config().overflow == Overflow::kReject) {
    result = PublishResult::kRevoked;
  }
  end_claim();
  notify_consumers();
  prefetch_for_write(p, seq + prefetch_ahead_);
  return result;
}

PublishResult RingProducer::try_publish_batch(std::span<const PublishRequest> requests,
                                              std::size_t* published) {
  *published = 0;
  PublishResult result = PublishResult::kOk;
  std::size_t i = 0;
  while (i < requests.size()) {
    const PublishRequest& r0 = requests[i];
    if (result = check(r0, r0.entity_key.size() + r0.payload.size()); result != PublishResult::kOk)
      break;
    // Hash each key once: the run's hashes are kept for the writes (bounded, no allocation).
    std::array<std::uint64_t, kBatchRun> hashes;
    hashes[0] = hot::entity_key_hash(r0.entity_key);
    const std::uint32_t p = region_.partition_of(hashes[0]);
    std::size_t j = i + 1;  // the run of valid requests of the same partition
    while (j < requests.size() && j - i < kBatchRun &&
           check(requests[j], requests[j].entity_key.size() + requests[j].payload.size()) ==
               PublishResult::kOk) {
      hashes[j - i] = hot::entity_key_hash(requests[j].entity_key);
      if (region_.partition_of(hashes[j - i]) != p) break;
      ++j;
    }
    // As in try_publish (batches of 16 across cores: 1.26x, 5 of 5 interleaved rounds; the loop
    // below prefetches the slots past the first 16 while it writes).
    prefetch_held_slots(p, requests.subspan(i, j - i));
    const std::uint64_t now = clock_.now_ns();  // before the claim, as in try_publish
    std::uint64_t first, got;
    if (result = claim(p, j - i, &first, &got); result != PublishResult::kOk) break;
    const bool after_idle = idle_before(now, got);
    for (std::uint64_t k = 0; k < got; ++k) {
      DedupMark mark;
      const PublishRequest& r = requests[i + k];
      if (SlotHeader* slot =
              write_event(p, first + k, r, hashes[k], early_parts(r, now), nullptr, &mark)) {
        // A duplicate counts as handled.
        if (finish_publish(p, slot, first + k, mark) && after_idle)
          demote_slot(slot, envelope_bytes(r.entity_key.size(), r.payload.size()));
      }
      prefetch_for_write(p, first + k + prefetch_ahead_);
    }
    end_claim();
    i += got;
    *published = i;
  }
  if (*published) notify_consumers();
  return result;
}

PublishResult RingProducer::try_claim(const PublishRequest& r, std::size_t payload_bytes,
                                      Claim* out) {
  if (PublishResult c = check(r, r.entity_key.size() + payload_bytes); c != PublishResult::kOk)
    return c;
  const std::uint64_t key_hash = hot::entity_key_hash(r.entity_key);
  std::uint32_t p = region_.partition_of(key_hash);
  const std::uint64_t now = clock_.now_ns();  // before the claim, as in try_publish
  std::uint64_t seq, got;
  // Not as a biased holder: the caller may hold this claim open for as long as it writes.
  if (PublishResult c = claim(p, 1, &seq, &got, /*may_hold=*/false); c != PublishResult::kOk)
    return c;
  SlotHeader* slot = begin_write(p, seq);
  if (!slot && region_.config().overflow == Overflow::kReject) {
    end_claim();
    return PublishResult::kRevoked;
  }
  *out = Claim{};
  out->partition = p;
  out->sequence = seq;
  out->slot = slot;
  // Overwrite mode, lapped before we began: the event is already lost (as overwrite allows);
  // the caller still gets somewhere to write, and commit() publishes nothing.
  std::byte* env = slot ? RingRegion::envelope_of(*slot) : discard_.get();
  claim_after_idle_ = idle_before(now, 1);
  // No dedup probe: commit() marks from the header the caller may still change.
  const HeaderWords words =
      header_words(r, key_hash, seq, early_parts(r, now, /*with_probe=*/false), payload_bytes);
  std::memcpy(env, words.w, sizeof words.w);  // checksum zero until commit() seals it
  std::memcpy(env + kEnvelopeHeaderBytes, r.entity_key.data(), r.entity_key.size());
  out->envelope_bytes = envelope_bytes(r.entity_key.size(), payload_bytes);
  out->payload = std::span(env + kEnvelopeHeaderBytes + r.entity_key.size(), payload_bytes);
  if (slot) {
    slot->envelope_bytes = static_cast<std::uint32_t>(out->envelope_bytes);
    slot->writer = producer_id_;
    slot->elided = 0;  // the zero-copy header is stored whole: the caller may fill any field
  }
  return PublishResult::kOk;
}

PublishResult RingProducer::commit(Claim& claim) {
  PublishResult result = PublishResult::kOk;
  if (claim.slot) {
    std::byte* env = RingRegion::envelope_of(*claim.slot);
    seal_envelope(std::span(env, claim.envelope_bytes));
    DedupMark mark;
    if (region_.dedup_enabled()) [[unlikely]] {
      // Zero-copy: the bits are set only now, so that rivals never wait on a claim that the
      // caller may hold open for long (dedup.h: a WRITING slot is waited for, bounded).
      EnvelopeHeader h;
      std::memcpy(&h, env, sizeof h);
      mark = {dedup_mark(region_, claim.partition, claim.sequence, h.idempotency_key,
                         bloom_writers(claim.partition)),
              h.idempotency_key, h.timestamp_ns};
    }
    if (!finish_publish(claim.partition, claim.slot, claim.sequence, mark))
      result = PublishResult::kDuplicate;
    else if (claim_after_idle_)
      demote_slot(claim.slot, claim.envelope_bytes);
    end_claim();
    notify_consumers();
  } else {
    end_claim();  // overwrite mode, lapped before writing: nothing to publish
  }
  claim = Claim{};
  return result;
}

void RingProducer::abort(Claim& claim) {
  if (claim.slot) {
    // Release: consumers that acquire ABANDONED skip the slot without reading it.
    claim.slot->word.store(slot_word(claim.sequence, SlotState::kAbandoned),
                           std::memory_order_release);
    end_claim();
    region_.partition(claim.partition).abandoned.fetch_add(1, std::memory_order_relaxed);
    notify_consumers();
  }
  claim = Claim{};
}

}  // namespace evring::core
