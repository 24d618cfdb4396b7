#include "evring/core/dedup.h"

// Inlined: the bloom probe hashes a 16-byte key per event, where the library call's length
// dispatch and the PLT cost as much as the hashing.
#define XXH_INLINE_ALL
#include <xxhash.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>

#include "evring/core/wait.h"

namespace evring::core {
namespace {

constexpr std::size_t kKeyOffset = kSlotHeaderBytes + offsetof(EnvelopeHeader, idempotency_key);
constexpr std::size_t kEventIdOffset = kSlotHeaderBytes + offsetof(EnvelopeHeader, event_id);
constexpr std::size_t kTimeOffset = kSlotHeaderBytes + offsetof(EnvelopeHeader, timestamp_ns);
// How long a confirmer waits for a slot still being written before giving up on it. A writer
// is normally done within a microsecond, but one that is descheduled can take a scheduler
// slice or more (a 2 ms bound let duplicates through on a loaded 2-core machine); a dead one is
// abandoned once its lane's owner is found dead (resolve_stuck, every kStuckCheckNs), which
// ends the wait early. Giving up can let a duplicate through, never drop an event.
constexpr std::uint64_t kWriterWaitNs = 100'000'000;

// Where the compact header (ring_layout.h) keeps the same fields: the first group is the key's.
constexpr std::size_t kCompactTimeOffset = kSlotHeaderBytes + 8;
constexpr std::size_t kCompactEventIdOffset = kSlotHeaderBytes + 16;
constexpr std::size_t kCompactKeyOffset = kSlotHeaderBytes + kCompactFixedBytes;
static_assert(stored_header_offset(kCompactHeader, offsetof(EnvelopeHeader, timestamp_ns)) + 16 ==
              kCompactTimeOffset);
static_assert(stored_header_offset(kCompactHeader, offsetof(EnvelopeHeader, event_id)) + 16 ==
              kCompactEventIdOffset);
static_assert(stored_header_offset(kCompactHeader, offsetof(EnvelopeHeader, idempotency_key)) +
                  16 == kCompactKeyOffset);

// The slot's idempotency key: its own bytes, or the event id where the slot elided them
// (ring_layout.h, SlotElide), in either stored form.
Id128 key_of(const SlotHeader& slot) {
  Id128 key;
  const bool compact = slot.elided & kCompactHeader;
  const bool implied = slot.elided & kElideIdempotencyKey;
  const std::size_t at = compact ? (implied ? kCompactEventIdOffset : kCompactKeyOffset)
                                 : (implied ? kEventIdOffset : kKeyOffset);
  std::memcpy(key.bytes.data(), reinterpret_cast<const std::byte*>(&slot) + at, 16);
  return key;
}
std::uint64_t time_of(const SlotHeader& slot) {
  std::uint64_t t;
  const std::size_t at = slot.elided & kCompactHeader ? kCompactTimeOffset : kTimeOffset;
  std::memcpy(&t, reinterpret_cast<const std::byte*>(&slot) + at, 8);
  return t;
}

// Clears the array generation g + 1 will use (it held g - 2, which nobody reads any more).
void clear_ahead(const RingRegion& region, std::uint32_t p, std::uint64_t g) {
  DedupHeader& h = region.dedup_header(p);
  std::uint64_t done = h.cleared_through.load(std::memory_order_relaxed);
  while (done < g + 1) {
    // A late or repeated clear only leaves stale bits (a false "maybe", confirmed exactly).
    // A producer still in an older generation may read an array we clear: the zeros are
    // stored with release after this CAS, so a reader that sees a zero also sees the CAS and
    // knows (dedup_mark) not to trust its lookup.
    if (h.cleared_through.compare_exchange_weak(done, g + 1, std::memory_order_relaxed)) {
      std::atomic<std::uint64_t>* words = region.bloom(p, g + 1);
      for (std::uint32_t i = 0; i < region.config().dedup_bloom_words; ++i)
        words[i].store(0, std::memory_order_release);
      return;
    }
  }
}

enum class Match : std::uint8_t { kNone, kDuplicate };

bool finished(SlotState st) {
  return st == SlotState::kPublished || st == SlotState::kAbandoned || st == SlotState::kDuplicate;
}

// Spins (bounded by kWriterWaitNs, yielding after a while) while slot q of partition p shows
// `seq <= q` and a state `still(state)` accepts. With `alive`, checks every kStuckCheckNs
// whether the writer is dead and, if so, abandons the slot (which ends the wait).
template <typename Still>
std::uint64_t wait_while(const RingRegion& region, std::uint32_t p, std::uint64_t q,
                         std::uint64_t w, OwnerAlive alive, Still still) {
  const SlotHeader& slot = region.slot(p, q);
  std::uint64_t start = 0, checked = 0;
  for (std::uint32_t spins = 0; word_sequence(w) <= q && still(word_state(w), word_sequence(w));
       ++spins) {
    const std::uint64_t now = monotonic_ns();
    if (start == 0) start = checked = now;
    if (now - start >= kWriterWaitNs) break;
    if (alive && now - checked >= kStuckCheckNs) {
      checked = now;
      (void)region.resolve_stuck(p, q, w, now - start, alive);
    }
    cpu_relax(spins);
    w = slot.word.load(std::memory_order_acquire);
  }
  return w;
}

// Exact confirmation of a "maybe seen" (rules in dedup.h): is an equal key published, or about
// to be, in the window?
Match confirm(const RingRegion& region, std::uint32_t p, std::uint64_t seq, const Id128& key,
              std::uint64_t time_ns, OwnerAlive alive) {
  const RingConfig& c = region.config();
  const std::uint64_t window = c.dedup_window;
  const std::uint64_t g = seq / window;
  // Acquire: a rival that set its bits before ours had claimed its sequence before that, so
  // the head we read covers it.
  const std::uint64_t head = region.partition(p).head.load(std::memory_order_acquire);
  std::uint64_t lo = g > 0 ? (g - 1) * window : 0;
  if (head > region.capacity()) lo = std::max(lo, head - region.capacity());
  for (std::uint64_t q = lo; q < head; ++q) {
    if (q == seq) continue;
    const SlotHeader& slot = region.slot(p, q);
    std::uint64_t w = slot.word.load(std::memory_order_acquire);
    // Not begun (older word) or WRITING, on either side: a "certainly new" rival publishes
    // without confirming, so its final state must be seen; a confirmer reaches PENDING.
    w = wait_while(region, p, q, w, alive, [q](SlotState st, std::uint64_t s) {
      return s < q || (st != SlotState::kPending && !finished(st));
    });
    if (word_sequence(w) != q) continue;
    SlotState st = word_state(w);
    if (st != SlotState::kPublished && !(st == SlotState::kPending && q < seq)) continue;
    Id128 other = key_of(slot);
    std::uint64_t other_time = time_of(slot);
    // Seqlock re-check: the slot must not have been rewritten while we read it.
    std::atomic_thread_fence(std::memory_order_acquire);
    if (slot.word.load(std::memory_order_relaxed) != w) continue;
    if (other != key) continue;
    if (c.dedup_window_ns && time_ns > other_time && time_ns - other_time > c.dedup_window_ns)
      continue;  // original too old: outside the time window
    if (st == SlotState::kPending) {  // a confirmer below us decides first: follow it
      w = wait_while(region, p, q, w, alive,
                     [](SlotState s2, std::uint64_t) { return s2 == SlotState::kPending; });
      if (w != slot_word(q, SlotState::kPublished)) continue;  // dropped, abandoned or stalled
    }
    return Match::kDuplicate;
  }
  return Match::kNone;
}

}  // namespace

BloomProbe bloom_probe(const Id128& key, std::uint32_t bloom_words, std::uint32_t bits) {
  XXH128_hash_t h = XXH3_128bits(key.bytes.data(), key.bytes.size());
  BloomProbe probe{h.low64 & (bloom_words - 1), 0};
  // Pick i is the low 6 bits of high64 rotated right by 6i; from pick 10 on (64 bits give ten
  // 6-bit picks) low64 >> 20, rotated right by 6(i - 10), is mixed in. Every producer of a bus
  // must compute the same picks (this is part of the ring layout's meaning); written in closed
  // form so the picks do not wait for one another (tests/core/dedup_test.cpp pins the sequence).
  // All sixteen possible picks are computed, unrolled, so every rotation is by a constant (a
  // rotation by a variable count is three uops on Intel and chained the picks through cl);
  // picks past `bits` are masked off rather than branched around.
  const std::uint64_t extra = h.low64 >> 20;
  static_assert(kMaxBloomBits == 16, "the unrolled picks below cover 16");
#pragma GCC unroll 16
  for (std::uint32_t i = 0; i < kMaxBloomBits; ++i) {
    std::uint64_t source = std::rotr(h.high64, static_cast<int>((6 * i) % 64));
    if (i >= 10) source ^= std::rotr(extra, static_cast<int>((6 * (i - 10)) % 64));
    const std::uint64_t bit = std::uint64_t{1} << (source & 63);
    probe.mask |= i < bits ? bit : 0;
  }
  return probe;
}

std::uint8_t dedup_bloom_bits(std::uint32_t window, std::uint32_t bloom_words) {
  if (window == 0 || bloom_words == 0) return 1;
  const double keys_per_word = static_cast<double>(window) / bloom_words;
  // Past 256 keys a word (only an explicit, tiny dedup_bloom_words gets there) every k answers
  // "maybe" nearly always: the fewest picks then.
  if (keys_per_word > 256) return 1;
  const auto false_positives = [keys_per_word](std::uint32_t k) {
    // Poisson terms by recurrence, out to where they no longer count.
    const double last = keys_per_word + 12 * std::sqrt(keys_per_word) + 20;
    double sum = 0, p_n = std::exp(-keys_per_word);
    for (std::uint32_t n = 0; n <= last; ++n) {
      const double set = 1 - std::pow(63.0 / 64.0, static_cast<double>(k) * n);
      sum += p_n * std::pow(set, k);
      p_n *= keys_per_word / (n + 1);
    }
    return sum;
  };
  double rate[kMaxBloomBits + 1] = {};
  double best = 1;
  for (std::uint32_t k = 1; k <= kMaxBloomBits; ++k) {
    rate[k] = false_positives(k);
    best = std::min(best, rate[k]);
  }
  std::uint32_t k = 1;
  while (rate[k] > best * 1.05) ++k;
  return static_cast<std::uint8_t>(k);
}

bool dedup_mark(const RingRegion& region, std::uint32_t p, std::uint64_t seq, const Id128& key,
                BloomWriters writers) {
  return dedup_mark(region, p, seq, bloom_probe(region, key), writers);
}

bool dedup_mark(const RingRegion& region, std::uint32_t p, std::uint64_t seq,
                const BloomProbe& probe, BloomWriters writers) {
  const RingConfig& c = region.config();
  const std::uint64_t g = seq / c.dedup_window;
  clear_ahead(region, p, g);
  std::atomic<std::uint64_t>& word = region.bloom(p, g)[probe.word];
  std::uint64_t before;
  if (writers == BloomWriters::kSole) {
    // An exclusive holder is the partition's only producer (RingProducer::set_exclusive), so
    // nobody races this word: a plain read-modify-write, no locked instruction (which would
    // wait for the previous event's slot stores to leave the store buffer). The load is
    // relaxed: bits set before we took the partition reached us through the take (its seq_cst
    // CAS and lane loads). SYNC POINT: the store is a release (a plain store on x86), as the
    // fetch_or's is: whoever later reads these bits also sees our claim, even if we die
    // without handing the partition over.
    before = word.load(std::memory_order_relaxed);
    if ((before & probe.mask) != probe.mask)
      word.store(before | probe.mask, std::memory_order_release);
  } else {
    // SYNC POINT: seq_cst RMW on the key's word of generation g. Release: our claim (head CAS)
    // is visible to whoever later sees our bits, so its scan covers our sequence; acquire: we
    // see the claim of whoever set them before us. Two producers of one generation: exactly one
    // of them sees the other's bits.
    before = word.fetch_or(probe.mask, std::memory_order_seq_cst);
  }
  bool maybe = (before & probe.mask) == probe.mask;
  // Two producers of adjacent generations mark different arrays. Each also reads the other's
  // generation (we read g - 1 and g + 1; a rival in g + 1 reads our g): RMW then load on both
  // sides, all seq_cst, so at least one of the two sees the other (store-buffer litmus). A
  // two-thread race test caught both being published across a generation boundary when only
  // g - 1 was read.
  const auto seen_in = [&](std::uint64_t gen) {
    const std::uint64_t bits = region.bloom(p, gen)[probe.word].load(std::memory_order_seq_cst);
    return (bits & probe.mask) == probe.mask;
  };
  if (!maybe && g > 0) maybe = seen_in(g - 1);
  if (!maybe) maybe = seen_in(g + 1);
  // A producer that lagged a generation or more (claimed long ago, marks now) may have looked
  // at arrays that newer generations cleared (entering G clears array (G + 1) % 3): then its
  // "certainly new" is not certain, confirm exactly instead.
  if (!maybe &&
      region.dedup_header(p).cleared_through.load(std::memory_order_acquire) > g + 1)
    maybe = true;
  return maybe;
}

DedupVerdict dedup_confirm(const RingRegion& region, std::uint32_t p, std::uint64_t seq,
                           const Id128& key, std::uint64_t time_ns, OwnerAlive alive) {
  return confirm(region, p, seq, key, time_ns, alive) == Match::kDuplicate
             ? DedupVerdict::kDuplicate
             : DedupVerdict::kNew;
}

}  // namespace evring::core
