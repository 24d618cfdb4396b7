// Producer lanes and who may write a partition: handing lanes out and taking over those of dead
// processes, deciding whether a claimed but unfinished slot can be abandoned (resolve_stuck),
// and exclusive partitions (RingProducer::set_exclusive). Split from ring.cpp; the
// claim, write and publish path is in producer.cpp.
#include <string>

#include "evring/core/ring.h"
#include "evring/core/wait.h"

namespace evring::core {

bool RingRegion::lane_resolved(const ProducerLane& lane) const {
  std::uint32_t count = intent_count(lane.count.load(std::memory_order_acquire));
  if (count == 0) return true;
  std::uint32_t p = lane.partition.load(std::memory_order_relaxed);
  if (p >= config_.partitions) return true;  // garbage intent: covers nothing
  std::uint64_t first = lane.first.load(std::memory_order_relaxed);
  std::uint64_t head = partition(p).head.load(std::memory_order_acquire);
  for (std::uint64_t s = first; s < first + count && s < head; ++s) {
    std::uint64_t w = slot(p, s).word.load(std::memory_order_acquire);
    if (word_sequence(w) > s) continue;  // lapped
    SlotState st = word_state(w);
    if (word_sequence(w) == s && (st == SlotState::kPublished || st == SlotState::kAbandoned ||
                                  st == SlotState::kDuplicate))
      continue;
    return false;
  }
  return true;
}

Result<std::uint32_t> RingRegion::acquire_lane(std::uint32_t pid, std::uint64_t start_time,
                                               std::uint16_t producer_id, OwnerAlive alive) const {
  for (int pass = 0; pass < 2; ++pass) {
    for (std::uint32_t i = 0; i < config_.producer_lanes; ++i) {
      ProducerLane& l = lane(i);
      std::uint32_t st = l.state.load(std::memory_order_acquire);
      if (pass == 0 && st != 0) continue;
      // Second pass: take over lanes of dead processes whose claims are all finished.
      if (pass == 1 && (st == 0 || alive(l.owner_pid, l.owner_start) || !lane_resolved(l)))
        continue;
      // The CAS makes the lane ours; a racing taker of the same lane fails and moves on.
      if (!l.state.compare_exchange_strong(st, 2, std::memory_order_acq_rel)) continue;
      if (pass == 1) {
        // A dead owner may have held partitions exclusively or biased: free them, or they
        // would look held by the (live) new owner of this lane.
        for (std::uint32_t p = 0; p < config_.partitions; ++p) {
          for (std::uint32_t mark :
               {i + 1, kBiasedOwner | (i + 1), kBiasedOwner | kRevokingOwner | (i + 1)}) {
            (void)partition(p).exclusive_owner.compare_exchange_strong(
                mark, 0, std::memory_order_acq_rel, std::memory_order_relaxed);
          }
        }
      }
      l.owner_pid = pid;
      l.owner_start = start_time;
      l.producer_id = producer_id;
      l.count.store(0, std::memory_order_relaxed);
      // SYNC POINT: release publishes the owner fields to consumers checking liveness.
      l.state.store(1, std::memory_order_release);
      return i;
    }
  }
  return Status::resource_exhausted("all " + std::to_string(config_.producer_lanes) +
                                    " producer lanes are in use (one per publishing thread)");
}

void RingRegion::release_lane(std::uint32_t index) const {
  // Release: our last intent (count 0) is visible before the lane can be handed out again.
  lane(index).state.store(0, std::memory_order_release);
}

RingRegion::StuckVerdict RingRegion::resolve_stuck(std::uint32_t p, std::uint64_t seq,
                                                   std::uint64_t observed, std::uint64_t stuck_ns,
                                                   OwnerAlive alive) const {
  bool covered = false;
  for (std::uint32_t i = 0; i < config_.producer_lanes; ++i) {
    const ProducerLane& l = lane(i);
    if (l.state.load(std::memory_order_acquire) == 0) continue;
    // Acquire pairs with the owner's release in end_claim(); the intent fields were published
    // to us by the claim CAS (release) that moved head past seq, which we acquired.
    std::uint32_t count = intent_count(l.count.load(std::memory_order_acquire));
    if (count == 0 || l.partition.load(std::memory_order_relaxed) != p) continue;
    std::uint64_t first = l.first.load(std::memory_order_relaxed);
    if (seq < first || seq - first >= count) continue;
    covered = true;
    if (alive(l.owner_pid, l.owner_start)) return StuckVerdict::kWait;
  }
  if (!covered && stuck_ns < kOrphanSlotNs) return StuckVerdict::kWait;
  // Every claimer that could own the slot is dead (or the word is garbage nobody will finish).
  // CAS from the word we saw: if the writer finished meanwhile, we lose and deliver its event.
  SlotHeader& s = slot(p, seq);
  if (!s.word.compare_exchange_strong(observed, slot_word(seq, SlotState::kAbandoned),
                                      std::memory_order_acq_rel, std::memory_order_acquire))
    return StuckVerdict::kWait;
  partition(p).abandoned.fetch_add(1, std::memory_order_relaxed);  // statistic
  return StuckVerdict::kAbandoned;
}

RingProducer::~RingProducer() { set_exclusive(false); }

void RingProducer::set_exclusive(bool on) {
  if (!on) {
    const std::uint32_t me = lane_index_ + 1;
    for (std::uint32_t p = 0; p < owned_.size(); ++p) {
      if (owned_[p] == kNotHeld) continue;
      std::uint32_t expected = owned_[p] == kBiased ? kBiasedOwner | me : me;
      owned_[p] = kNotHeld;
      // Release: our last head store and intents are visible to the sharers that see it free.
      (void)region_.partition(p).exclusive_owner.compare_exchange_strong(
          expected, 0, std::memory_order_release, std::memory_order_relaxed);
    }
  }
  exclusive_ = on;
}

PublishResult RingProducer::check_owner(std::uint32_t p, std::uint32_t owner) {
  std::atomic<std::uint32_t>& word = region_.partition(p).exclusive_owner;
  // Not (or no longer) ours: a revoker took it, or this claim may not hold it (zero-copy).
  if (owned_[p] == kBiased) owned_[p] = kNotHeld;
  while (owner != 0) {
    if (owner_biased(owner)) {
      if (PublishResult r = revoke_bias(p, owner); r != PublishResult::kOk) return r;
    } else if (!exclusive_holder_gone(p, owner)) {
      return PublishResult::kExclusive;
    }
    // Whatever we did, look again: another producer may have marked it meanwhile (it then
    // waits for our intent, which is out, before it claims).
    owner = word.load(std::memory_order_seq_cst);
  }
  return PublishResult::kOk;
}

PublishResult RingProducer::revoke_bias(std::uint32_t p, std::uint32_t owner) {
  std::atomic<std::uint32_t>& word = region_.partition(p).exclusive_owner;
  const std::uint32_t holder = owner_lane_mark(owner) - 1;
  if (holder == lane_index_) {
    // Our own bias, or a revocation of it: our claims that stored head plainly are all over
    // (this is a claim of ours, not one of them). A failed CAS: the mark changed, look again.
    (void)word.compare_exchange_strong(owner, 0, std::memory_order_seq_cst);
    return PublishResult::kOk;
  }
  // Without the membarrier a holder mid-claim could neither see the mark change nor show us
  // its intent. Where this process may not issue one, leave the mark alone and refuse, as a
  // take does. It is also the fence of a producer that found the revoking mark of another.
  if (!heavy_fence()) return PublishResult::kExclusive;
  if (!owner_revoking(owner)) {
    // SYNC POINT (seq_cst CAS, then the membarrier, then the holder's intent): the revoker's
    // half of the Dekker pairing in claim(). A failed CAS: the mark changed, look again.
    const std::uint32_t revoking = owner | kRevokingOwner;
    if (!word.compare_exchange_strong(owner, revoking, std::memory_order_seq_cst))
      return PublishResult::kOk;
    owner = revoking;
    PartitionHeader& part = region_.partition(p);
    // Relaxed: a hint for takers (the cool-down) and a statistic, ordered by nothing.
    part.bias_revoked_ns.store(monotonic_ns(), std::memory_order_relaxed);
    part.bias_revocations.fetch_add(1, std::memory_order_relaxed);
    (void)heavy_fence();  // our half of the pairing (it worked a moment ago, above)
  }
  if (holder < region_.config().producer_lanes) {
    const ProducerLane& l = region_.lane(holder);
    // The holder's claim that may store head plainly is one publish long (zero-copy claims
    // never hold a bias): wait it out, unless its process died in it (its lane's intent then
    // covers the slot, and consumers abandon it). One that outlasts kRevokeWaitNs (a stopped
    // process, or bytes scribbled to look like a claim) gets kBusy: the revoking mark stays, so
    // nobody claims by CAS until a later look finds the claim over.
    std::uint64_t started = 0;
    if (!wait_out_intent(l, p, kSoleClaim, kRevokeWaitNs, &started)) return PublishResult::kBusy;
  }
  // The holder cannot advance head plainly any more: shared from here (a failed CAS means
  // another producer finished the revocation first).
  (void)word.compare_exchange_strong(owner, 0, std::memory_order_seq_cst);
  return PublishResult::kOk;
}

bool RingProducer::wait_out_intent(const ProducerLane& l, std::uint32_t p, std::uint32_t mask,
                                   std::uint64_t limit_ns, std::uint64_t* started) const {
  for (std::uint32_t spins = 0;; ++spins) {
    // seq_cst: the load half of the Dekker pairings (claim() against a take or a revocation);
    // it also acquires end_claim's release, so the lane's slots (and a biased holder's last
    // plain head store) are visible once its intent is gone.
    if ((l.count.load(std::memory_order_seq_cst) & mask) == 0 ||
        l.partition.load(std::memory_order_relaxed) != p)
      return true;
    if (l.state.load(std::memory_order_acquire) == 0) return true;
    // Every 64 spins (each a yield past the first 64): a dead owner, and the bound.
    if ((spins & 63) == 63) {
      if (alive_ && !alive_(l.owner_pid, l.owner_start)) return true;
      const std::uint64_t now = monotonic_ns();
      if (*started == 0) *started = now;
      if (now - *started >= limit_ns) return false;
    }
    cpu_relax(spins);
  }
}

void RingProducer::try_take_bias(std::uint32_t p) {
  solo_run_[p] = 0;  // whatever happens, the next attempt is another run away
  const std::uint64_t revoked =
      region_.partition(p).bias_revoked_ns.load(std::memory_order_relaxed);
  if (revoked != 0 && monotonic_ns() - revoked < bias_cooldown_ns_) return;
  (void)acquire_exclusive(p, /*biased=*/true);
}

bool RingProducer::exclusive_holder_gone(std::uint32_t p, std::uint32_t owner) const {
  const std::uint32_t holder = owner_lane_mark(owner) - 1;
  if (holder < region_.config().producer_lanes) {
    const ProducerLane& l = region_.lane(holder);
    // Acquire pairs with acquire_lane's release of the owner fields.
    if (l.state.load(std::memory_order_acquire) != 0 &&
        (!alive_ || alive_(l.owner_pid, l.owner_start)))
      return false;  // alive (or no way to tell): it keeps the partition
  }
  // A free lane, a dead owner, or a value that names no lane (scribbled): free the partition.
  // Its unfinished claims are covered by its lane's intent: consumers abandon those slots.
  std::uint32_t expected = owner;
  (void)region_.partition(p).exclusive_owner.compare_exchange_strong(
      expected, 0, std::memory_order_acq_rel, std::memory_order_relaxed);
  return true;
}

PublishResult RingProducer::acquire_exclusive(std::uint32_t p, bool biased) {
  std::atomic<std::uint32_t>& owner = region_.partition(p).exclusive_owner;
  const std::uint32_t me = biased ? kBiasedOwner | (lane_index_ + 1) : lane_index_ + 1;
  // SYNC POINT: seq_cst CAS, then the lane reads below (Dekker with claim(), see there).
  std::uint32_t current = owner.load(std::memory_order_seq_cst);
  while (current != me) {  // == me: ours already (taken before a set_exclusive(false) elsewhere)
    if (current == 0) {
      if (owner.compare_exchange_strong(current, me, std::memory_order_seq_cst)) break;
      continue;  // changed meanwhile: look at the new mark
    }
    // A bias is taken only from nobody; an explicit holder refuses us while it lives.
    if (biased) return PublishResult::kExclusive;
    if (owner_biased(current)) {
      // An explicit take from a bias, ours or another's: revoke it first (our intent is out).
      if (PublishResult r = revoke_bias(p, current); r != PublishResult::kOk) return r;
    } else if (!exclusive_holder_gone(p, current)) {
      return PublishResult::kExclusive;
    }
    current = owner.load(std::memory_order_seq_cst);
  }
  // Heavy side of the asymmetric fence (see claim()): sharers in processes that skip their
  // fence execute one now. If the kernel refuses, those sharers could miss our mark: give the
  // partition back rather than race them.
  if (!heavy_fence()) {
    owned_[p] = kNotHeld;
    if (biased) bias_after_ = 0;  // it would be refused every time: stop trying
    std::uint32_t expected = me;
    (void)owner.compare_exchange_strong(expected, 0, std::memory_order_release,
                                        std::memory_order_relaxed);
    return PublishResult::kExclusive;
  }
  // Sharers that passed their check before our mark may still be between it and the end of
  // their claim: wait until each has finished (its intent idle or elsewhere), or is dead. A
  // claim normally ends within microseconds; one that does not (a zero-copy claim held open,
  // a stopped process) makes us give the partition back rather than block the publish.
  std::uint64_t started = 0;  // one bound for all the lanes together
  for (std::uint32_t i = 0; i < region_.config().producer_lanes; ++i) {
    if (i == lane_index_) continue;
    if (!wait_out_intent(region_.lane(i), p, ~0u, biased ? kBiasTakeWaitNs : kExclusiveTakeWaitNs,
                         &started)) {
      // Release: the sharers that see the mark gone may claim (nothing of ours to publish).
      std::uint32_t expected = me;
      (void)owner.compare_exchange_strong(expected, 0, std::memory_order_release,
                                          std::memory_order_relaxed);
      return PublishResult::kBusy;
    }
  }
  owned_[p] = biased ? kBiased : kHeld;
  return PublishResult::kOk;
}

}  // namespace evring::core
