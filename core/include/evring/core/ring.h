#pragma once
// The partitioned multi-producer broadcast ring, over a memory region handed to it.
//
// Thread safety:
//  - RingRegion is a view; copying it is free; all its methods may be called from any thread.
//  - RingProducer: one per thread. Any number of RingProducers, in any number of processes,
//    may publish into the same partitions concurrently (lock-free claim by CAS), unless one
//    publishes exclusively (set_exclusive): then it alone claims there, with plain stores.
//  - RingConsumer: one per thread; each consumer index belongs to exactly one RingConsumer at a
//    time (the shm registry enforces it). Consumers never write anything a producer writes.
//
// Ordering guarantee: events of one partition are delivered to every consumer in sequence
// order; the entity key picks the partition, so events of one entity arrive in publish order.
// Nothing is promised across partitions.
//
// Hot path (try_publish, try_claim/commit, poll): no exceptions, no allocation, no strings.
#include <bitset>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "evring/codec/envelope.h"
#include "evring/codec/status.h"
#include "evring/core/clock.h"
#include "evring/core/ring_layout.h"

namespace evring::core {

// Who may be setting bits in a partition's dedup bloom words (dedup_mark, dedup.h).
enum class BloomWriters : std::uint8_t {
  kShared,  // any producer: the bits are set with a locked fetch_or (dedup.h's race rules)
  kSole,    // the caller holds the partition exclusively (set_exclusive): plain load + store
};

struct RingConfig {
  std::uint32_t partitions = 4;
  std::uint32_t slots_per_partition = 4096;  // power of two
  std::uint32_t slot_bytes = 512;            // multiple of 64, 256 .. 1 MiB, slot header included
  std::uint32_t max_consumers = 32;
  std::uint32_t producer_lanes = 64;  // producer threads that may publish at once
  Overflow overflow = Overflow::kReject;
  // Publish-side dedup (0: off). A duplicate idempotency key is dropped when its original is
  // among the last dedup_window .. 2 * dedup_window events of the partition, still in the ring,
  // and (dedup_window_ns != 0) at most dedup_window_ns older. REQUIRES <= slots_per_partition / 2.
  std::uint32_t dedup_window = 0;
  std::uint64_t dedup_window_ns = 0;
  std::uint32_t dedup_bloom_words = 0;  // per generation; 0: sized from dedup_bits_per_key
  // Bloom bits per key: sets the false-positive rate, and each false positive costs a scan of
  // up to 2 * dedup_window slots. 64 (one word per key, 16 bits set): ~2e-5 per generation probed
  // (16: 6e-3, which cost ~40% of dedup throughput in scans); memory 24 * window bytes.
  std::uint8_t dedup_bits_per_key = 64;
};

// Tells whether the process (pid, start time) still exists. Supplied by the shm layer; core
// never inspects processes itself. A stopped or descheduled process must count as alive.
using OwnerAlive = bool (*)(std::uint32_t pid, std::uint64_t start_time);

// invalid_argument naming the field that is out of range.
Status validate_config(const RingConfig& config);
// Fills derived fields (dedup_bloom_words from dedup_bits_per_key).
RingConfig normalized(RingConfig config);
std::size_t ring_region_bytes(const RingConfig& config);
// The largest entity key + payload an event may carry in a slot of this size.
// A consumer stuck behind an unfinished slot checks the claimers' liveness this often.
inline constexpr std::uint64_t kStuckCheckNs = 1'000'000;
// A claimed slot that no lane covers (a scribbled word) is abandoned after this long.
inline constexpr std::uint64_t kOrphanSlotNs = 200'000'000;
// Longest futex nap of a blocked consumer when membarrier() is refused (heavy_fence() false):
// a producer relying on the light fence may then miss the sleeper, so it wakes on its own.
inline constexpr std::uint64_t kUnfencedNapNs = 1'000'000;

inline constexpr std::size_t max_body_bytes(std::uint32_t slot_bytes) {
  return slot_bytes - kSlotHeaderBytes - kEnvelopeHeaderBytes;
}

class RingRegion {
 public:
  RingRegion() = default;
  // Lays out a region. REQUIRES: validate_config(config) OK, mem.size() >= ring_region_bytes,
  // mem zero-filled (fresh shm pages are). Nothing else may use mem until this returns.
  static RingRegion format(std::span<std::byte> mem, const RingConfig& config);
  // Reads back a formatted region; corruption if the header disagrees with itself or the size.
  static Result<RingRegion> attach(std::span<std::byte> mem);

  const RingConfig& config() const { return config_; }
  std::uint64_t capacity() const { return config_.slots_per_partition; }
  std::size_t max_envelope_bytes() const { return config_.slot_bytes - kSlotHeaderBytes; }
  // key_hash % partitions. A power-of-two count (1, and the default 4) masks instead: the same
  // value without a 64-bit division, which perf showed as ~3% of a publish across cores.
  std::uint32_t partition_of(std::uint64_t key_hash) const {
    if (partitions_pow2_) [[likely]]
      return static_cast<std::uint32_t>(key_hash & (config_.partitions - 1));
    return static_cast<std::uint32_t>(key_hash % config_.partitions);
  }

  RingHeader& header() const { return *reinterpret_cast<RingHeader*>(base_); }
  ConsumerGate& gate(std::uint32_t consumer) const {
    return reinterpret_cast<ConsumerGate*>(base_ + gates_offset_)[consumer];
  }
  ProducerLane& lane(std::uint32_t index) const {
    return reinterpret_cast<ProducerLane*>(base_ + lanes_offset_)[index];
  }
  CursorLine& cursor(std::uint32_t consumer, std::uint32_t partition) const {
    return reinterpret_cast<CursorLine*>(
        base_ + cursors_offset_)[std::size_t{consumer} * config_.partitions + partition];
  }
  PartitionHeader& partition(std::uint32_t p) const {
    return *reinterpret_cast<PartitionHeader*>(base_ + partitions_offset_ + p * partition_stride_);
  }
  bool dedup_enabled() const { return config_.dedup_window != 0; }
  DedupHeader& dedup_header(std::uint32_t p) const {
    return *reinterpret_cast<DedupHeader*>(base_ + partitions_offset_ + p * partition_stride_ +
                                           dedup_offset_);
  }
  std::atomic<std::uint64_t>* bloom(std::uint32_t p, std::uint64_t generation) const {
    return reinterpret_cast<std::atomic<std::uint64_t>*>(
               base_ + partitions_offset_ + p * partition_stride_ + dedup_offset_ +
               sizeof(DedupHeader)) +
           (generation % kDedupGenerations) * config_.dedup_bloom_words;
  }
  SlotHeader& slot(std::uint32_t p, std::uint64_t seq) const {
    return *reinterpret_cast<SlotHeader*>(base_ + partitions_offset_ + p * partition_stride_ +
                                          sizeof(PartitionHeader) +
                                          (seq & mask_) * config_.slot_bytes);
  }
  static std::byte* envelope_of(SlotHeader& slot) {
    return reinterpret_cast<std::byte*>(&slot) + kSlotHeaderBytes;
  }
  static const std::byte* envelope_of(const SlotHeader& slot) {
    return reinterpret_cast<const std::byte*>(&slot) + kSlotHeaderBytes;
  }

  // Lowest committed cursor of the attached consumers of partition p (acquire: a producer that
  // sees a cursor may reuse the slots before it), or UINT64_MAX when none is attached.
  std::uint64_t min_attached_cursor(std::uint32_t p) const;
  // Wakes consumers blocked in RingConsumer::wait. Called by producers after publishing.
  void wake_sleepers() const;
  // Marks consumer `index` attached at the given cursors (one per partition) / detached.
  void attach_consumer(std::uint32_t index, std::span<const std::uint64_t> cursors) const;
  void detach_consumer(std::uint32_t index) const;

  // Hands out a producer lane to (pid, start): a free one, or one whose owner is dead and whose
  // claims are all resolved. resource_exhausted when none is left.
  Result<std::uint32_t> acquire_lane(std::uint32_t pid, std::uint64_t start_time,
                                     std::uint16_t producer_id, OwnerAlive alive) const;
  void release_lane(std::uint32_t index) const;

  enum class StuckVerdict : std::uint8_t { kWait, kAbandoned };
  // Slot `seq` of partition p has been claimed (head > seq) but not finished for a while, and
  // its word was `observed`. Abandons it (counted in the partition) when every lane whose
  // intent covers it belongs to a dead process, or, when no lane covers it at all, once
  // `stuck_ns` exceeds kOrphanSlotNs (a scribbled word: nobody will ever finish it).
  StuckVerdict resolve_stuck(std::uint32_t p, std::uint64_t seq, std::uint64_t observed,
                             std::uint64_t stuck_ns, OwnerAlive alive) const;
  std::span<std::byte> bytes() const { return {base_, size_}; }

 private:
  std::byte* base_ = nullptr;
  std::size_t size_ = 0;
  RingConfig config_{};
  std::uint64_t mask_ = 0;
  bool partitions_pow2_ = false;  // config_.partitions is a power of two (partition_of)
  bool lane_resolved(const ProducerLane& lane) const;
  std::size_t dedup_offset_ = 0;  // within a partition
  std::size_t gates_offset_ = 0, lanes_offset_ = 0, cursors_offset_ = 0, partitions_offset_ = 0;
  std::size_t partition_stride_ = 0;
};

// Copies the envelope held in `slot` into `out` with its header expanded to the full 128 bytes
// (the words the slot elided restored: ring_layout.h, SlotElide). Returns the envelope's length,
// or 0 when the slot's length or elided bits cannot be right; the bytes are untrusted (another
// process wrote them, and may be writing them still: a reader re-checks the slot word after the
// copy). out must hold max_envelope_bytes; a longer envelope is refused (0), as producers never
// write one (RingProducer::check).
// The groups below are kElideGroups (ring_layout.h), written out for the poll path.
static_assert(kElideGroups[0].first == 48 && kElideGroups[0].bytes == 16 &&
              kElideGroups[0].bit == kElideIdempotencyKey);
static_assert(kElideGroups[1].first == 64 && kElideGroups[1].bytes == 16 &&
              kElideGroups[1].bit == kElideCorrelationId);
static_assert(kElideGroups[2].first == 80 && kElideGroups[2].bytes == 16 &&
              kElideGroups[2].bit == kElideCausationId);
static_assert(kElideGroups[3].first == 104 && kElideGroups[3].bytes == 8 &&
              kElideGroups[3].bit == kElideRevision);
// The compact form (ring_layout.h, "Compact header"): the 128-byte header rebuilt as words from
// the 40 fixed bytes, the groups present, the slot's writer and sequence and the stored key; the
// key and payload copied to body_out. Returns the full envelope's length, or 0 when the length,
// the key length or the origin group's padding cannot be right. `elided` and `stored` are the
// slot's, read once by the caller; REQUIRES: elided has kCompactHeader and elided_bits_valid.
// body_out must hold max_envelope_bytes - 128. Same untrusted-bytes contract as below.
inline std::size_t expand_compact_words(const SlotHeader& slot, std::uint16_t elided,
                                        std::uint32_t stored, std::size_t max_envelope_bytes,
                                        HeaderWords* words, std::byte* body_out) {
  const std::size_t header = compact_header_bytes(elided);
  if (stored < header || stored - header > max_envelope_bytes - kEnvelopeHeaderBytes) return 0;
  const std::byte* in = RingRegion::envelope_of(slot);
  auto load = [&in] {
    std::uint64_t v;
    std::memcpy(&v, in, 8);
    in += 8;
    return v;
  };
  auto u = [](auto v) { return static_cast<std::uint64_t>(v); };
  std::uint64_t* w = words->w;
  const std::uint64_t c0 = load();
  w[2] = load();
  w[4] = load();
  w[5] = load();
  const std::uint64_t c4 = load();
  const std::uint64_t key_bytes = (c4 >> 16) & 0xFFFF;
  w[0] = u(kEnvelopeFormatVersion) | u(kEnvelopeHeaderBytes) << 16 | (c0 & 0xFFFF'FFFF) << 32;
  w[1] = u(slot.writer) | (c0 >> 32) << 16 | (c4 & 0xFFFF) << 48;
  w[3] = word_sequence(slot.word.load(std::memory_order_relaxed));  // the caller re-checks it
  auto pair = [&](std::size_t i, std::uint16_t bit, bool event_id) {
    if (!(elided & bit)) {
      w[i] = load();
      w[i + 1] = load();
    } else {
      w[i] = event_id ? w[4] : 0;
      w[i + 1] = event_id ? w[5] : 0;
    }
  };
  pair(6, kElideIdempotencyKey, true);
  pair(8, kElideCorrelationId, true);
  pair(10, kElideCausationId, false);
  w[13] = elided & kElideRevision ? 0 : load();
  std::uint64_t origin = 0;
  if (!(elided & kElideOriginHost)) {
    origin = load();
    if (origin >> 32) return 0;  // the 4 padding bytes are zero, or the slot is corrupt
  }
  const std::size_t body = stored - header;
  if (key_bytes > body) return 0;
  std::memcpy(body_out, in, body);
  // From the private copy: the checksum then covers exactly the key the caller delivers.
  w[12] = entity_key_hash(std::span<const std::byte>(body_out, key_bytes));
  w[14] = u(body - key_bytes) | key_bytes << 32;
  w[15] = origin | (c4 >> 32) << 32;
  return kEnvelopeHeaderBytes + body;
}

// expand_compact_words with the header written out in front of the body.
inline std::size_t expand_compact_envelope(const SlotHeader& slot, std::uint16_t elided,
                                           std::uint32_t stored, std::size_t max_envelope_bytes,
                                           std::byte* out) {
  HeaderWords words;
  const std::size_t n = expand_compact_words(slot, elided, stored, max_envelope_bytes, &words,
                                             out + kEnvelopeHeaderBytes);
  if (n != 0) std::memcpy(out, words.w, kEnvelopeHeaderBytes);
  return n;
}

inline std::size_t expand_slot_envelope(const SlotHeader& slot, std::size_t max_envelope_bytes,
                                        std::byte* out) {
  const std::uint32_t stored = slot.envelope_bytes;
  const std::uint16_t elided = slot.elided;
  if (!elided_bits_valid(elided)) return 0;
  if (elided & kCompactHeader)
    return expand_compact_envelope(slot, elided, stored, max_envelope_bytes, out);
  const std::size_t header = stored_header_bytes(elided);
  if (stored < header || stored - header > max_envelope_bytes - kEnvelopeHeaderBytes) return 0;
  const std::byte* in = RingRegion::envelope_of(slot);
  // The event id (words 4-5), which an elided idempotency key or correlation id repeats, is
  // copied from the slot, not from `out`: a 16-byte load of bytes this thread has just stored
  // with narrower stores cannot be forwarded from them and waits for the store buffer to drain
  // (a tenth of a consumer's samples across cores). Read twice, it is still covered by the
  // caller's re-check of the slot word and by the checksum.
  const std::byte* const event_id = in + 32;
  // Words 0-5 always; then each group, stored or implied; then word 12, 13, 14-15.
  std::memcpy(out, in, 48);
  in += 48;
  auto group = [&](std::size_t at, std::size_t bytes, bool elide, const std::byte* implied) {
    if (!elide) {
      std::memcpy(out + at, in, bytes);
      in += bytes;
    } else if (implied) {
      std::memcpy(out + at, implied, bytes);
    } else {
      std::memset(out + at, 0, bytes);
    }
  };
  group(48, 16, elided & kElideIdempotencyKey, event_id);
  group(64, 16, elided & kElideCorrelationId, event_id);
  group(80, 16, elided & kElideCausationId, nullptr);
  group(96, 8, false, nullptr);
  group(104, 8, elided & kElideRevision, nullptr);
  group(112, 16, false, nullptr);
  const std::size_t body = stored - header;
  std::memcpy(out + kEnvelopeHeaderBytes, in, body);
  return kEnvelopeHeaderBytes + body;
}

// Which type ids a producer may publish. Filled on the cold path (registration); read on the
// hot path as two bit tests.
struct TypePolicy {
  std::bitset<65536> known;    // registered type ids this producer resolved
  std::bitset<65536> allowed;  // ... of a domain the producer owns
};

struct PublishRequest {
  std::uint16_t type_id = 0;
  std::uint16_t schema_version = 1;
  Classification classification = Classification::kInternal;
  ContentType content_type = ContentType::kRaw;
  std::uint16_t flags = 0;
  std::uint16_t key_id = 0;
  std::string_view entity_key;
  std::span<const std::byte> payload;
  Id128 idempotency_key{};  // zero: the event id
  Id128 correlation_id{};   // zero: a new W3C trace-id
  Id128 causation_id{};     // zero: none
  std::uint64_t entity_revision = 0;  // set flag kHasRevision to make it meaningful
  std::uint64_t timestamp_ns = 0;     // zero: now
  std::uint32_t origin_host = 0;
};

enum class [[nodiscard]] PublishResult : std::uint8_t {
  kOk = 0,
  kFull,            // reject mode: the slowest attached consumer is a whole ring behind
  kTooLarge,        // key + payload do not fit in a slot
  kUnknownType,     // type id not registered / not resolved by this producer
  kDomainNotOwned,  // type of a domain this producer does not own
  kDuplicate,       // dropped by the dedup filter (not an error)
  kRevoked,         // the claimed slot was abandoned before it was written (see resolve_stuck)
  kExclusive,       // the partition is held by another, live, exclusive producer
  kBusy,            // exclusive take not done: another producer's claim there stayed open past
                    // RingProducer::kExclusiveTakeWaitNs; or a bias not revoked: its holder's
                    // publish stayed open past kRevokeWaitNs (a stopped process). Nothing
                    // written; try again later
};
inline constexpr PublishResult kLastPublishResult = PublishResult::kBusy;
std::string_view describe(PublishResult r);

struct PublishReceipt {
  std::uint32_t partition = 0;
  std::uint64_t sequence = 0;
  Id128 event_id{};
};

// A zero-copy claim: write `payload`, then commit() (or abort()).
struct Claim {
  std::span<std::byte> payload;
  std::uint32_t partition = 0;
  std::uint64_t sequence = 0;
  SlotHeader* slot = nullptr;
  std::size_t envelope_bytes = 0;
};

class RingProducer {
 public:
  // REQUIRES: producer_id != 0; lane acquired for this thread (RingRegion::acquire_lane);
  // policy outlives the producer.
  RingProducer(RingRegion region, std::uint16_t producer_id, std::uint32_t lane,
               const TypePolicy* policy);

  PublishResult try_publish(const PublishRequest& request, PublishReceipt* receipt = nullptr);
  // Publishes requests in order, claiming each run of the same partition (up to kBatchRun
  // requests) with one claim.
  // Stops at the first refusal; *published says how many went out (a prefix of requests).
  PublishResult try_publish_batch(std::span<const PublishRequest> requests,
                                  std::size_t* published);
  // Claims a slot for `payload_bytes` (request.payload is ignored) and fills the header.
  PublishResult try_claim(const PublishRequest& request, std::size_t payload_bytes, Claim* claim);
  // Seals the checksum and publishes (kDuplicate: dropped by dedup, nothing published).
  PublishResult commit(Claim& claim);
  void abort(Claim& claim);   // marks the slot abandoned: consumers skip it

  // Exclusive mode: this producer takes each partition it publishes to for itself (the first
  // publish into a partition takes it) and then claims with plain stores instead of a CAS on
  // the partition head: no locked instruction per event, whose wait for the store buffer to
  // drain was most of a cross-core publish. Others publishing there get kExclusive until it is
  // released: set_exclusive(false), destruction, or its process dying (the next producer that
  // looks finds the holder dead and frees the partition). A partition held by another live
  // producer refuses this one with kExclusive too, and a take that finds another producer's
  // claim there still open after kExclusiveTakeWaitNs gives up with kBusy (publishing never
  // blocks; retry later). Like Aeron's exclusive publication or the Disruptor's
  // single-producer sequencer, but taken and given back at run time.
  void set_exclusive(bool on);
  bool exclusive() const { return exclusive_; }
  ~RingProducer();  // releases exclusively held (and biased) partitions

  // Biased partitions: a producer that has claimed kBiasAfterSoloClaims times in a row on a
  // shared partition with nobody else claiming in between takes it as its biased holder (one
  // CAS and one membarrier, as set_exclusive's take) and from then on claims there with plain
  // stores, as an exclusive producer does. Unlike set_exclusive, nobody is refused: the first
  // other producer that claims there revokes the bias (CAS, membarrier, then it waits out the
  // holder's claim in progress, a publish's worth) and both share by CAS from then on. No
  // producer takes a bias on a partition within kBiasCooldownNs of a revocation there, so
  // producers that take turns settle on sharing instead of passing a bias back and forth.
  // Zero-copy claims never hold a bias (they stay open for as long as the caller writes): a
  // holder's try_claim gives it up first. after_solo_claims 0: this producer never takes one.
  static constexpr std::uint32_t kBiasAfterSoloClaims = 1024;
  static constexpr std::uint64_t kBiasCooldownNs = 1'000'000'000;
  void set_bias_policy(std::uint32_t after_solo_claims, std::uint64_t cooldown_ns) {
    bias_after_ = after_solo_claims;
    bias_cooldown_ns_ = cooldown_ns;
  }
  // Whether this producer holds partition p as its biased holder (its own view: a revocation
  // is noticed at its next claim there).
  bool biased(std::uint32_t p) const { return owned_[p] == kBiased; }
  RingProducer(const RingProducer&) = delete;
  RingProducer& operator=(const RingProducer&) = delete;

  std::uint16_t producer_id() const { return producer_id_; }
  std::uint32_t lane() const { return lane_index_; }
  // After an idle gap the consumer is likely spinning on the next slot, waiting: once such a
  // publish is out, its slot's lines after the first are demoted (CLDEMOTE) from this core's
  // private caches to the shared one, so that the consumer's reads of them are served there
  // instead of by a snoop of this core (about 12% off the round trip on the Xeon). A publish is
  // "after an idle gap" when at least `ns` per event of the previous publish call have passed
  // since that call read the clock. Back-to-back publishes never demote: a saturated producer
  // that demoted every slot lost ~25% of its throughput, and a consumer that keeps up is not
  // waiting on any one event. 0: demote every slot; UINT64_MAX: never.
  static constexpr std::uint64_t kDemoteAfterIdleNs = 1'000;
  void set_demote_after_idle_ns(std::uint64_t ns) { demote_after_idle_ns_ = idle_gap_ns_ = ns; }
  // Slots demoted so far (a statistic of this producer alone).
  std::uint64_t demoted_slots() const { return demoted_slots_; }
  // Lets an overwrite-mode producer waiting behind a slot a lap old abandon it when its writer
  // is dead (nullptr: wait for it).
  void set_liveness(OwnerAlive alive) { alive_ = alive; }
  const RingRegion& region() const { return region_; }

 private:
  PublishResult check(const PublishRequest& request, std::size_t body_bytes) const;
  // Claims up to `wanted` consecutive sequences of partition p; *got may be less (reject mode,
  // ring nearly full). kFull when none could be claimed.
  // may_hold: the claim ends within this call (a publish), so it may be made as the
  // partition's biased holder; a zero-copy claim passes false and gives a bias up.
  PublishResult claim(std::uint32_t p, std::uint64_t wanted, std::uint64_t* first,
                      std::uint64_t* got, bool may_hold = true);
  // The shared path, our intent out, found the owner word `owner` set, or not our bias although
  // we thought we held one (revoked, or a zero-copy claim): kOk once we may claim by CAS (a
  // bias revoked, a dead exclusive holder's mark freed), kExclusive when a live exclusive
  // holder refuses us. Cold.
  PublishResult check_owner(std::uint32_t p, std::uint32_t owner);
  // Revokes the bias `owner` on p (another producer's, or our own when a zero-copy claim gives
  // it up), or finishes a revocation another producer began, while our intent is out: kOk once
  // the mark is 0 (or changed under us: look again), kExclusive when this process may not issue
  // a membarrier (the mark left alone), kBusy when the holder's claim in progress (one publish
  // long) is still open after kRevokeWaitNs: its process is stopped (or, without
  // set_liveness, dead). The revoking mark then stays, and the next look finishes it.
  PublishResult revoke_bias(std::uint32_t p, std::uint32_t owner);
  // After a shared claim of [head, head + n): counts claims in a row that nobody else's claim
  // came between, and takes the bias at kBiasAfterSoloClaims (before the next claim).
  void note_shared_claim(std::uint32_t p, std::uint64_t head, std::uint64_t n) {
    solo_run_[p] = head == solo_next_[p] ? solo_run_[p] + 1 : 0;
    solo_next_[p] = head + n;
  }
  void try_take_bias(std::uint32_t p);
  SlotHeader* begin_write(std::uint32_t p, std::uint64_t seq);
  // Encodes the request and writes it into slot seq of partition p (begin_write included);
  // nullptr when begin_write refused the slot (nothing written). key_hash:
  // entity_key_hash(request.entity_key), computed once by the caller.
  // Dedup buses: what dedup_mark said for the event, kept for finish_publish.
  struct DedupMark {
    bool maybe = false;
    Id128 key;
    std::uint64_t time_ns = 0;
  };
  // What an event's encoding needs that does not depend on its sequence, computed before the
  // claim (early_parts): on a shared partition the claim's locked instruction waits for the
  // previous event's slot stores to drain, and this work overlaps that wait.
  struct EarlyParts {
    std::uint64_t timestamp_ns;  // the event's (the request's, or the clock's)
    Id128 event_id;
    BloomProbe probe{};          // dedup buses: of the idempotency key
  };
  // with_probe false: no bloom probe (the zero-copy path marks at commit, from the header).
  EarlyParts early_parts(const PublishRequest& request, std::uint64_t now_ns,
                         bool with_probe = true);
  SlotHeader* write_event(std::uint32_t p, std::uint64_t seq, const PublishRequest& request,
                          std::uint64_t key_hash, const EarlyParts& early,
                          PublishReceipt* receipt, DedupMark* mark);
  // The header's wire words (codec/envelope.h) for the request: every field, lengths, version
  // and reserved included; the checksum is zero (the caller's).
  HeaderWords header_words(const PublishRequest& request, std::uint64_t key_hash,
                           std::uint64_t seq, const EarlyParts& early,
                           std::size_t payload_bytes);
  // Publishes the written slot, or, on a dedup bus whose mark said maybe, confirms and drops it
  // as a duplicate (false).
  bool finish_publish(std::uint32_t p, SlotHeader* slot, std::uint64_t seq, const DedupMark& mark);
  void end_claim();  // the lane's intent is done: every claimed slot is finished
  void notify_consumers();  // wakes blocked consumers, if any (after a final slot store)
  static constexpr std::size_t kBatchRun = 64;  // most slots one batch claim takes
  bool previous_lap_finished(std::uint32_t p, std::uint64_t seq) const;
  // Exclusive mode (cold): takes partition p (kOk), says another holds it (kExclusive), or
  // gives up after waiting kExclusiveTakeWaitNs for other producers' claims there (kBusy):
  // publishing never blocks, and a claim may be a zero-copy one held open, or its process
  // stopped.
  static constexpr std::uint64_t kExclusiveTakeWaitNs = 1'000'000;
  // A bias is an optimisation: its take gives up sooner (and is tried again a run later).
  static constexpr std::uint64_t kBiasTakeWaitNs = 10'000;
  // How long a revoker waits for the holder's claim in progress before it says kBusy. The
  // claim is one publish long; a holder descheduled in it comes back within a scheduler
  // latency (milliseconds, even on a loaded machine), so only a stopped process (a debugger,
  // SIGSTOP: its consumers wait for its slot too) or scribbled bytes take this long. A shared
  // producer meets kBusy only then.
  static constexpr std::uint64_t kRevokeWaitNs = 1'000'000'000;
  // biased: take p as its biased holder instead (never from another holder, biased or not).
  PublishResult acquire_exclusive(std::uint32_t p, bool biased = false);
  // Partition p is held by lane owner - 1: true (and the partition freed) when that producer is
  // gone (lane free or its process dead); false when it is alive.
  bool exclusive_holder_gone(std::uint32_t p, std::uint32_t owner) const;
  // kSole while we hold p exclusively or biased (no other producer can be claiming there: a
  // revoker waits until our claim is over), else kShared.
  BloomWriters bloom_writers(std::uint32_t p) const {
    return owned_[p] != kNotHeld ? BloomWriters::kSole : BloomWriters::kShared;
  }
  // Whether a publish call of `events` events that read the clock at now_ns follows an idle
  // gap (set_demote_after_idle_ns); remembers the call for the next one.
  bool idle_before(std::uint64_t now_ns, std::uint64_t events) {
    const bool idle = now_ns - last_publish_ns_ >= idle_gap_ns_;
    last_publish_ns_ = now_ns;
    if (__builtin_mul_overflow(demote_after_idle_ns_, events, &idle_gap_ns_))
      idle_gap_ns_ = ~std::uint64_t{0};  // UINT64_MAX: never
    return idle;
  }
  void demote_slot(const SlotHeader* slot, std::size_t envelope_bytes);
  // Starts fetching the lines of slot seq of partition p for writing (the word's line only when
  // prefetch_ahead_ >= 2: see prefetch_for_write).
  void prefetch_for_write(std::uint32_t p, std::uint64_t seq) const;
  static constexpr std::size_t kPrefetchBytes = 1024;  // at most this much of a slot
  // How far ahead of the slot just written a publish prefetches (prefetch_ahead_). A slot's
  // lines come from the cache of the consumer that read them a lap ago, one cross-core
  // transfer each: prefetching the next slot only, the producer waited out one transfer per
  // event in turn, and across CCXs that transfer is the whole cost of an event. Sixteen slots
  // ahead keep that many in flight (AMD Zen 5 VM, slow regime: 1.3x against one ahead; 64
  // ahead measured the same as 16).
  static constexpr std::uint64_t kPrefetchAhead = 16;

  RingRegion region_;
  std::uint16_t producer_id_;
  std::uint32_t lane_index_;
  ProducerLane* lane_;
  OwnerAlive alive_ = nullptr;
  std::uint64_t stalled_since_ = 0;
  std::uint64_t demote_after_idle_ns_ = kDemoteAfterIdleNs;
  std::uint64_t last_publish_ns_ = 0;  // clock reading of the previous publish call
  std::uint64_t idle_gap_ns_ = 0;      // demote_after_idle_ns_ times that call's events
  bool claim_after_idle_ = false;      // the open zero-copy claim followed an idle gap
  std::uint64_t demoted_slots_ = 0;
  const TypePolicy* policy_;
  IdGenerator ids_;
  UnixClock clock_;  // event timestamps (TSC-extrapolated CLOCK_REALTIME, see clock.h)
  bool exclusive_ = false;
  enum Hold : std::uint8_t { kNotHeld = 0, kHeld = 1, kBiased = 2 };
  std::vector<std::uint8_t> owned_;  // per partition: Hold (set_exclusive's, or a bias)
  std::uint32_t bias_after_ = kBiasAfterSoloClaims;
  std::uint64_t bias_cooldown_ns_ = kBiasCooldownNs;
  std::vector<std::uint64_t> solo_next_;  // per partition: head after our last shared claim
  std::vector<std::uint32_t> solo_run_;   // per partition: shared claims in a row, nobody between
  std::uint64_t gate_epoch_seen_ = ~0ull;
  std::vector<std::uint64_t> gate_cache_;  // per partition: a lower bound of the attached minimum
  std::unique_ptr<std::byte[]> discard_;   // claim target when overwrite lapped us (never read)
  bool light_fence_;  // register_light_fence() succeeded: notify_consumers() skips the fence
  // kPrefetchAhead, or a quarter of the ring when that is less (at least 1): the prefetch must
  // not reach slots that a consumer keeping up is still reading.
  std::uint64_t prefetch_ahead_;
};

// Lazily evaluated type filter for a consumer's pattern: the resolver is called once per type
// id (cold path), the answer cached in a bitset (hot path).
class TypeFilter {
 public:
  using Resolver = std::function<bool(std::uint16_t type_id)>;
  explicit TypeFilter(Resolver resolver) : resolver_(std::move(resolver)) {}
  bool allows(std::uint16_t type_id) {
    if (!known_[type_id]) {
      known_[type_id] = true;
      if (resolver_(type_id)) match_[type_id] = true;
    }
    return match_[type_id];
  }

 private:
  Resolver resolver_;
  std::bitset<65536> known_, match_;
};

enum class WaitStrategy : std::uint8_t { kSpin, kYield, kBlock };

struct Event {
  const EnvelopeView& view;
  std::uint32_t partition;
  std::uint64_t sequence;
};

struct PollResult {
  std::size_t delivered = 0;
  std::uint64_t gaps = 0;       // events lost to overwriting since the last poll
  std::uint64_t skipped = 0;    // filtered, corrupt or abandoned slots passed over
};

class RingConsumer {
 public:
  enum class Start : std::uint8_t { kCommitted, kEarliest, kLatest };
  // REQUIRES: index < max_consumers and owned by this consumer (registry).
  RingConsumer(RingRegion region, std::uint32_t index, Start start, bool auto_commit = true);
  ~RingConsumer();
  RingConsumer(const RingConsumer&) = delete;
  RingConsumer& operator=(const RingConsumer&) = delete;

  void set_filter(TypeFilter* filter) { filter_ = filter; }  // nullptr: everything
  // Enables moving past slots whose producer died mid-write (nullptr: wait forever).
  void set_liveness(OwnerAlive alive) { alive_ = alive; }

  // Hands up to max_events ready events to handler(const Event&), partitions round-robin.
  // The EnvelopeView is valid only during the call. With auto-commit, cursors are committed
  // after the handler returned for each batch.
  template <typename Handler>
  PollResult poll(Handler&& handler, std::size_t max_events = 256);

  // Durably stores the read position of every partition (release).
  void commit();
  // Waits until some partition may have an event (true) or timeout_ns passes (false).
  bool wait(WaitStrategy strategy, std::uint64_t timeout_ns);
  bool any_ready() const;

  std::uint64_t read_position(std::uint32_t p) const { return read_[p]; }
  // How many times this consumer has read a partition head to see whether a slot it waits for
  // is claimed by a dead writer (a diagnostic: each read takes the line from the producers).
  std::uint64_t liveness_looks() const { return liveness_looks_; }
  std::uint32_t index() const { return index_; }
  const RingRegion& region() const { return region_; }

 private:
  enum class Step : std::uint8_t { kEmpty, kDelivered, kSkipped };
  bool ready(std::uint32_t p) const;
  // Slot read_[p] was found unfinished (its word was observed_word): is it claimed by a writer
  // that died? Looks at the partition head (is the slot claimed at all?) at most once per
  // kStuckCheckNs per sequence, unless look_now, and abandons the slot once it has been claimed
  // and unfinished for that long and every claimer is dead (RingRegion::resolve_stuck).
  // Returns whether the slot was claimed and unfinished at the last look. Cold; not inlined.
  bool check_stuck(std::uint32_t p, std::uint64_t observed_word, bool look_now);
  // check_stuck() on every partition whose next slot is not ready; true if one of them is
  // claimed and unfinished. look_now: look at the heads now (a consumer about to sleep).
  bool poke_stuck(bool look_now);
  // Reads one slot at read_[p] into scratch_; advances read_[p] past it unless empty.
  Step read_one(std::uint32_t p, EnvelopeView* view, PollResult* result);
  void flush_stats(std::uint32_t p);
  // The consumer is behind (poll found events ready back to back): asks for the first lines of
  // the slot kReadAheadSlots past seq, so that they are on their way from the producer's core
  // well before read_one needs them. Only a hint: a slot that is not written yet is fetched
  // again when it is. Four lines (a slot has at least four: kMinSlotBytes): the rest of a
  // longer event is a sequential read the hardware prefetcher follows on its own.
  // always_inline: g++ (-O1 and up) sees a function whose only effects are prefetches as pure
  // and deletes the call before it would inline it (it did, silently; objdump shows it).
  [[gnu::always_inline]] void read_ahead(std::uint32_t p, std::uint64_t seq) const {
    const char* next = reinterpret_cast<const char*>(&region_.slot(p, seq + kReadAheadSlots));
    __builtin_prefetch(next, 0, 3);
    __builtin_prefetch(next + kCacheLine, 0, 3);
    __builtin_prefetch(next + 2 * kCacheLine, 0, 3);
    __builtin_prefetch(next + 3 * kCacheLine, 0, 3);
  }
  // Far enough ahead that the lines arrive in time, near enough that they are still cached
  // when read (Xeon 2 vCPU, 64 B events, throughput against no read-ahead, 6 interleaved
  // rounds: 4 slots ahead +0%, 16 +32%, 32 +35%, 64 +28%; starting only at the 16th event in a
  // row instead of the 2nd, +16%).
  static constexpr std::uint64_t kReadAheadSlots = 16;

  RingRegion region_;
  std::uint32_t index_;
  bool auto_commit_;
  TypeFilter* filter_ = nullptr;
  OwnerAlive alive_ = nullptr;
  std::uint32_t next_partition_ = 0;
  // Empty reads since the consumer was made. Every (kStuckReadMask + 1)-th empty read calls
  // check_stuck() (a clock read; about a microsecond of spinning), which reads the partition
  // head at most once per kStuckCheckNs. The head is the line every producer's claim writes:
  // read on every 64th empty read, as it was, a consumer spinning between two events took the
  // line away from the producer about once per event, and the next claim waited for it to come
  // back (round trip p50 0.84x and one-way p50 0.78x without it, Xeon 2 vCPU, 8 interleaved
  // rounds). A caller that sleeps between polls instead of calling wait() looks 64 polls after
  // an event stops coming and abandons a dead writer's slot 64 polls and kStuckCheckNs later.
  static constexpr std::uint32_t kStuckReadMask = 63;
  std::uint32_t empty_reads_ = 0;
  struct Stuck {
    std::uint64_t seq = ~0ull;  // the sequence waited for
    std::uint64_t since_ns = 0;   // the last look that found it unclaimed (or the first sight)
    std::uint64_t looked_ns = 0;  // the last look at the head
    bool claimed = false;         // what that look found
  };
  std::vector<Stuck> stuck_;
  std::uint64_t liveness_looks_ = 0;
  std::vector<std::uint64_t> read_;
  struct LocalStats { std::uint64_t delivered, gaps, filtered, corrupt, abandoned; };
  std::vector<LocalStats> stats_;
  std::unique_ptr<std::byte[]> scratch_;
};

template <typename Handler>
PollResult RingConsumer::poll(Handler&& handler, std::size_t max_events) {
  PollResult result;
  const std::uint32_t partitions = region_.config().partitions;
  EnvelopeView view;
  for (std::uint32_t n = 0; n < partitions && result.delivered < max_events; ++n) {
    std::uint32_t p = next_partition_;
    next_partition_ = (next_partition_ + 1 == partitions) ? 0 : next_partition_ + 1;
    std::uint64_t before = read_[p];
    while (result.delivered < max_events) {
      std::uint64_t seq = read_[p];
      Step step = read_one(p, &view, &result);
      if (step == Step::kEmpty) break;
      if (step == Step::kDelivered) {
        // A second event in a row: the consumer is behind and reads slots the producer wrote
        // a while ago, each line a miss served by the producer's core; read ahead.
        if (read_[p] - before >= 2) read_ahead(p, seq);
        ++result.delivered;
        ++stats_[p].delivered;
        handler(Event{view, p, seq});
      }
    }
    if (read_[p] != before) {
      flush_stats(p);
      if (auto_commit_) {
        // SYNC POINT: release pairs with the producer's acquire in min_attached_cursor(): the
        // handler's reads of these slots happen-before a producer reuses them.
        region_.cursor(index_, p).committed.store(read_[p], std::memory_order_release);
      }
    }
  }
  return result;
}

}  // namespace evring::core
