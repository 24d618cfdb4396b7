#pragma once
// RingProducer: claims, writes and publishes slots of a ring (the slot protocol in
// core/FORMAT.md), shared, exclusive or biased; what a publish asks and what it answers.
#include <bitset>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "evring/codec/envelope.h"
#include "evring/core/clock.h"
#include "evring/core/ring_region.h"

namespace evring::core {

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
  // holder's claim in progress, a publish's worth; kBusy if that takes kRevokeWaitNs, which
  // only a stopped holder does) and both share by CAS from then on. No
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
  // The publish path's helpers below (check, claim, the prefetches, early_parts, header_words,
  // previous_lap_finished, begin_write, write_event, finish_publish, end_claim,
  // notify_consumers) are defined always-inline in producer.cpp (EVRING_PUBLISH_PATH) and are
  // callable only there.
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
  // Spins until lane l has no intent on partition p with any of `mask`'s bits in its count
  // (~0u: any intent; kSoleClaim: a biased holder's marked claim), or is free, or its owner is
  // dead: true. False once limit_ns have passed since *started (0: starts the clock now; one
  // clock can bound several lanes' waits).
  bool wait_out_intent(const ProducerLane& l, std::uint32_t p, std::uint32_t mask,
                       std::uint64_t limit_ns, std::uint64_t* started) const;
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
  // If this producer holds p (exclusive or biased), starts fetching, for writing, the lines the
  // first events (at most kPrefetchAhead) will take in the slots from the head on: slot header,
  // the compact header's fixed part and the body, at most kPrefetchBytes a slot. Called as soon
  // as the partition is known, before the clock, the id, the claim and the checksum, which then
  // run while the lines leave the consumer's core. Stops at a slot our cached gate says a
  // consumer may still be reading (reject mode, a ring running full): its lines are not ours.
  void prefetch_held_slots(std::uint32_t p, std::span<const PublishRequest> events) const;
  // Whether slot seq of p is free to write as far as our cached gate knows: false while a
  // consumer may still be reading the event a lap older there (reject mode, a ring running
  // full), whose lines an early prefetch would take from it.
  bool known_released(std::uint32_t p, std::uint64_t seq) const {
    return region_.config().overflow != Overflow::kReject ||
           seq < gate_cache_[p] + region_.capacity();
  }
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

}  // namespace evring::core
