#include <algorithm>
#include <cstring>

#include "evring/codec/envelope_hot.h"
#include "evring/core/ring.h"
#include "evring/core/wait.h"

namespace evring::core {

RingConsumer::RingConsumer(RingRegion region, std::uint32_t index, Start start, bool auto_commit)
    : region_(region),
      index_(index),
      auto_commit_(auto_commit),
      stuck_(region.config().partitions),
      read_(region.config().partitions, 0),
      stats_(region.config().partitions, LocalStats{}),
      scratch_(new std::byte[region.config().slot_bytes]) {
  const std::uint64_t capacity = region_.capacity();
  for (std::uint32_t p = 0; p < region_.config().partitions; ++p) {
    CursorLine& line = region_.cursor(index_, p);
    // Relaxed: only this consumer writes its lines; we are the owner now (registry handshake).
    stats_[p] = {line.delivered.load(std::memory_order_relaxed),
                 line.gaps.load(std::memory_order_relaxed),
                 line.filtered.load(std::memory_order_relaxed),
                 line.corrupt.load(std::memory_order_relaxed),
                 line.abandoned.load(std::memory_order_relaxed)};
    std::uint64_t head = region_.partition(p).head.load(std::memory_order_acquire);
    std::uint64_t earliest = head > capacity ? head - capacity : 0;
    switch (start) {
      case Start::kCommitted: read_[p] = line.committed.load(std::memory_order_relaxed); break;
      case Start::kEarliest: read_[p] = earliest; break;
      case Start::kLatest: read_[p] = head; break;
    }
    // A cursor from a corrupt or foreign segment beyond the head is not trusted.
    if (read_[p] > head) read_[p] = head;
  }
  region_.attach_consumer(index_, read_);
}

RingConsumer::~RingConsumer() { region_.detach_consumer(index_); }

void RingConsumer::flush_stats(std::uint32_t p) {
  // Relaxed stores of this consumer's own counters: statistics for tools, publish nothing.
  CursorLine& line = region_.cursor(index_, p);
  const LocalStats& s = stats_[p];
  line.delivered.store(s.delivered, std::memory_order_relaxed);
  line.gaps.store(s.gaps, std::memory_order_relaxed);
  line.filtered.store(s.filtered, std::memory_order_relaxed);
  line.corrupt.store(s.corrupt, std::memory_order_relaxed);
  line.abandoned.store(s.abandoned, std::memory_order_relaxed);
  line.read_position.store(read_[p], std::memory_order_relaxed);
}

void RingConsumer::commit() {
  for (std::uint32_t p = 0; p < region_.config().partitions; ++p) {
    flush_stats(p);
    // SYNC POINT: see poll(): releases the handled slots to producers.
    region_.cursor(index_, p).committed.store(read_[p], std::memory_order_release);
  }
}

bool RingConsumer::ready(std::uint32_t p) const {
  const std::uint64_t c = read_[p];
  // Acquire: pairs with the producer's release of the word, as in read_one().
  const SlotHeader& slot = region_.slot(p, c);
  std::uint64_t w = slot.word.load(std::memory_order_acquire);
  std::uint64_t s = word_sequence(w);
  if (s > c) return true;  // lapped: poll reports the gap
  if (s < c) {
    await_second_line(slot);
    return false;
  }
  SlotState st = word_state(w);
  return st == SlotState::kPublished || st == SlotState::kAbandoned ||
         st == SlotState::kDuplicate;
}

bool RingConsumer::any_ready() const {
  for (std::uint32_t p = 0; p < region_.config().partitions; ++p)
    if (ready(p)) return true;
  return false;
}

RingConsumer::Step RingConsumer::read_one(std::uint32_t p, EnvelopeView* view,
                                          PollResult* result) {
  const std::uint64_t c = read_[p];
  const std::uint64_t capacity = region_.capacity();
  SlotHeader& slot = region_.slot(p, c);
  // SYNC POINT: acquire pairs with the producer's release of PUBLISHED (finish_publish): the
  // length, writer and envelope written before it are visible below.
  const std::uint64_t w = slot.word.load(std::memory_order_acquire);
  const std::uint64_t s = word_sequence(w);
  if (s < c) {  // not claimed, or claimed and not yet begun
    await_second_line(slot);
    if (alive_ && (++empty_reads_ & kStuckReadMask) == 0) check_stuck(p, w, false);
    return Step::kEmpty;
  }
  if (s > c) {
    // Lapped: sequences up to s - capacity were overwritten. Jump to the oldest sequence that
    // can still be in the ring; if that is overwritten too, the next read reports more.
    std::uint64_t head = region_.partition(p).head.load(std::memory_order_acquire);
    std::uint64_t next = std::max({c + 1, s + 1 > capacity ? s + 1 - capacity : 0,
                                   head > capacity ? head - capacity : 0});
    result->gaps += next - c;
    stats_[p].gaps += next - c;
    read_[p] = next;
    return Step::kSkipped;
  }
  switch (word_state(w)) {
    case SlotState::kPublished: break;
    case SlotState::kAbandoned:
      ++stats_[p].abandoned;
      [[fallthrough]];
    case SlotState::kDuplicate:  // counted once, by the producer (partition deduplicated)
      ++result->skipped;
      read_[p] = c + 1;
      return Step::kSkipped;
    default:  // empty, writing, pending, or an undefined state from a scribbled word
      if (alive_ && (++empty_reads_ & kStuckReadMask) == 0) check_stuck(p, w, false);
      return Step::kEmpty;
  }
  // Untrusted length and elided bits: another process wrote them (0: they cannot be right).
  // A compact slot (what every publish writes) is rebuilt as header words and validated from
  // them; a zero-copy claim's word groups are expanded into bytes and decoded.
  const std::uint16_t elided = slot.elided;
  const std::uint32_t stored = slot.envelope_bytes;
  const bool compact = (elided & kCompactHeader) && elided_bits_valid(elided);
  HeaderWords words;
  const std::size_t len =
      compact ? expand_compact_words(slot, elided, stored, region_.max_envelope_bytes(), &words,
                                     scratch_.get() + kEnvelopeHeaderBytes)
              : expand_slot_envelope(slot, region_.max_envelope_bytes(), scratch_.get());
  const bool length_ok = len != 0;
  // Seqlock re-check: the acquire fence orders the copy above before the reload below; an
  // unchanged word means no producer began rewriting the slot while we copied.
  std::atomic_thread_fence(std::memory_order_acquire);
  if (slot.word.load(std::memory_order_relaxed) != w) return Step::kSkipped;  // re-read: lapped
  read_[p] = c + 1;
  // The key's hash, from the private copy: the checksum then covers exactly the key delivered.
  if (compact && length_ok)
    words.w[12] = hot::entity_key_hash(
        std::span<const std::byte>(scratch_.get() + kEnvelopeHeaderBytes, words.w[14] >> 32));
  // The stored length must be the envelope's own: trailing bytes it does not account for are
  // corruption too, not padding (decode_header_words checks the compact body's exactly).
  const EnvelopeCheck check =
      !length_ok ? EnvelopeCheck::kTruncated
      : compact  ? hot::decode_header_words(
                      words,
                      std::span<const std::byte>(scratch_.get() + kEnvelopeHeaderBytes,
                                                 len - kEnvelopeHeaderBytes),
                      view)
                 : decode_envelope(std::span(scratch_.get(), len), view);
  if (check != EnvelopeCheck::kOk ||
      view->header.header_bytes + view->key.size() + view->payload.size() != len) {
    ++stats_[p].corrupt;
    ++result->skipped;
    return Step::kSkipped;
  }
  if (filter_ && !filter_->allows(view->header.type_id)) {
    ++stats_[p].filtered;
    ++result->skipped;
    return Step::kSkipped;
  }
  return Step::kDelivered;
}

bool RingConsumer::check_stuck(std::uint32_t p, std::uint64_t observed_word, bool look_now) {
  const std::uint64_t c = read_[p];
  const std::uint64_t now = monotonic_ns();
  Stuck& st = stuck_[p];
  const bool first_sight = st.seq != c;
  if (first_sight) st = Stuck{c, now, now, false};
  // Between two events a spinning consumer waits here about once per event: it must not read
  // the head then (see kStuckReadMask), only once a wait has lasted kStuckCheckNs.
  if (!look_now && (first_sight || now - st.looked_ns < kStuckCheckNs)) return st.claimed;
  st.looked_ns = now;
  ++liveness_looks_;
  // Acquire pairs with the claim CAS (release): a head past c comes with the claimer's intent.
  if (region_.partition(p).head.load(std::memory_order_acquire) <= c) {
    st.since_ns = now;  // nothing claimed: the wait so far was an idle ring, not a stuck writer
    st.claimed = false;
    return false;
  }
  st.claimed = true;
  // Claimed and unfinished since at least the previous look: abandoned if its claimers are
  // all dead (or, covered by none, after kOrphanSlotNs). Abandoned or not, the next read looks
  // at the word again.
  if (!first_sight)
    (void)region_.resolve_stuck(p, c, observed_word, now - st.since_ns, alive_);
  return true;
}

bool RingConsumer::poke_stuck(bool look_now) {
  bool stuck = false;
  for (std::uint32_t p = 0; p < region_.config().partitions; ++p) {
    if (ready(p)) continue;
    if (check_stuck(p, region_.slot(p, read_[p]).word.load(std::memory_order_acquire), look_now))
      stuck = true;
  }
  return stuck;
}

bool RingConsumer::wait(WaitStrategy strategy, std::uint64_t timeout_ns) {
  const std::uint64_t deadline = monotonic_ns() + timeout_ns;
  std::uint32_t spins = 0;
  // Spin briefly first in every strategy: an event often arrives within microseconds.
  const std::uint32_t spin_limit = strategy == WaitStrategy::kBlock ? 2000 : ~0u;
  while (true) {
    if (any_ready()) return true;
    if (spins >= spin_limit) break;
    if ((spins & 63) == 0 && monotonic_ns() >= deadline) return false;
    // A claimed slot whose writer died never becomes ready: look for one now and then, as the
    // block path does between naps (spinning and yielding waiters used to wait out their whole
    // timeout before a poll noticed; measured 130-300 ms by evring-abandon-bench).
    if (alive_ && (spins & 1023) == 1023 && poke_stuck(false) && any_ready()) return true;
    if (strategy == WaitStrategy::kYield) sched_yield();
    else cpu_relax(spins < 64 ? spins : 0);
    ++spins;
  }
  RingHeader& h = region_.header();
  while (true) {
    std::uint64_t now = monotonic_ns();
    if (now >= deadline) return any_ready();
    // A claimed but unfinished slot may belong to a dead producer: nobody would wake us for
    // it, so sleep in short steps and check it (check_stuck) between them.
    std::uint64_t nap = deadline - now;
    if (alive_ && poke_stuck(true)) nap = std::min<std::uint64_t>(nap, kStuckCheckNs);
    // Dekker with the producer (see RingProducer::try_publish): announce, then look.
    h.sleepers.fetch_add(1, std::memory_order_seq_cst);
    // Heavy side of the asymmetric fence (see RingProducer::notify_consumers): every producer
    // that skips its fence now executes one, so it either sees our count or we see its event.
    // If the kernel refuses, a producer relying on it could miss us: nap in short steps.
    if (!heavy_fence()) nap = std::min<std::uint64_t>(nap, kUnfencedNapNs);
    std::uint32_t snapshot = h.wake_word.load(std::memory_order_seq_cst);
    bool ready_now = any_ready();
    if (!ready_now) futex_wait(&h.wake_word, snapshot, nap);
    h.sleepers.fetch_sub(1, std::memory_order_relaxed);  // a stale count costs a spurious wake only
    if (ready_now || any_ready()) return true;
  }
}

}  // namespace evring::core
