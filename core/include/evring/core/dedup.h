#pragma once
// Publish-side dedup: a blocked bloom filter per partition answers "certainly new" with one
// fetch_or (a plain load and store for an exclusive holder, the partition's only writer); a
// "maybe seen" answer is confirmed exactly against the events still in the ring
// before anything is dropped, so a bloom false positive never drops a genuine event.
//
// Window (W = RingConfig::dedup_window, per partition): generation g = sequence / W. A key is
// set in generation g and looked up in g - 1 and g + 1 too (dedup_mark), so the original of a
// duplicate is caught when it is among the last W (at least) to 2W (at most) events of its
// partition, it is still in the ring (W <= slots / 2 guarantees that for reject buses), and,
// with dedup_window_ns set, it was recorded at most dedup_window_ns before the duplicate.
// Older originals: accepted again.
//
// Concurrency (any number of producers, any processes). After claiming its sequence and before
// the slot reaches its final state, a producer sets its key's bits with one fetch_or on a single
// 64-bit word (dedup_mark): all the key's bits live in that word, so of two racing producers of
// the same key exactly one sees "some bit was clear".
//  - "certainly new": it writes the envelope and publishes it directly (WRITING -> PUBLISHED);
//  - "maybe seen": it writes the envelope, marks the slot PENDING ("confirming", release) and
//    scans the window (dedup_confirm). A PUBLISHED slot with the same key, any sequence, makes it
//    a duplicate; a PENDING one below it is waited for and followed (published: duplicate); a
//    PENDING one above it yields to it; a slot still being written (or claimed, not begun) on
//    either side is waited for, bounded, since it may be a "certainly new" rival about to publish.
// PENDING therefore always means "a confirmer", and confirmers of equal keys resolve by
// sequence, so exactly one of any set of equal keys is published. (Until this design the mark came
// after PENDING, and a confirmer below a "certainly new" rival that was still PENDING let both
// through.) A writer that dies is waited for until its slot is abandoned (the waiter checks its
// lane's owner every ms), one that stalls for at most 100 ms per slot: that can let a duplicate
// through, never drop an event. So hold zero-copy claims briefly on dedup buses: a confirmer
// (a duplicate, or a bloom false positive) waits for every open claim in its window.
#include <cstdint>

#include "evring/core/ring.h"

namespace evring::core {

enum class DedupVerdict : std::uint8_t { kNew, kDuplicate };

// REQUIRES: region.dedup_enabled(); seq claimed by the caller and not yet in its final state;
// BloomWriters::kSole (ring.h) only while the caller holds p exclusively.
// Sets the key's bits in generation seq / W; true when the key may have been seen (then the
// caller marks its slot PENDING and calls dedup_confirm before publishing).
bool dedup_mark(const RingRegion& region, std::uint32_t p, std::uint64_t seq, const Id128& key,
                BloomWriters writers = BloomWriters::kShared);
// The same with the key's probe computed beforehand (bloom_probe(region, key)).
bool dedup_mark(const RingRegion& region, std::uint32_t p, std::uint64_t seq,
                const BloomProbe& probe, BloomWriters writers = BloomWriters::kShared);

// REQUIRES: dedup_mark said maybe; the slot of seq holds its envelope and is PENDING.
// time_ns: the event's timestamp (for dedup_window_ns). alive (may be null): lets a wait on a
// slot whose writer died end by abandoning it.
DedupVerdict dedup_confirm(const RingRegion& region, std::uint32_t p, std::uint64_t seq,
                           const Id128& key, std::uint64_t time_ns, OwnerAlive alive);

// The bit mask and word index a key maps to (BloomProbe: ring_layout.h). It does not depend on
// the sequence, so a producer computes it before its claim (dedup_mark with a probe).
BloomProbe bloom_probe(const Id128& key, std::uint32_t bloom_words, std::uint32_t bits);
// How many bits a key sets in its word (RingHeader::dedup_bloom_bits, written by format()) for
// a generation of `window` keys over `bloom_words` words: the k of 1..kMaxBloomBits with the
// fewest false positives for a filter that keeps all of a key's bits in one 64-bit word, the
// smallest k within 5% of that (each bit is a pick to compute on every publish). Modelled as a
// fresh key probing a word that holds n ~ Poisson(window / bloom_words) keys of k bits each:
// sum over n of P(n) (1 - (63/64)^(k n))^k. The textbook ln 2 x (bits per key) is the optimum
// of an unblocked filter and sets too many bits in one word: at 64 bits a key it said 16, with
// 2.7x the false positives of the 9 chosen here (1.05e-4 against 3.9e-5 per full generation;
// BM_BloomFalsePositiveRate, bench/RESULTS.md session R).
// 1 when window or bloom_words is 0.
std::uint8_t dedup_bloom_bits(std::uint32_t window, std::uint32_t bloom_words);

// The probe of `key` on this bus.
inline BloomProbe bloom_probe(const RingRegion& region, const Id128& key) {
  return bloom_probe(key, region.config().dedup_bloom_words, region.header().dedup_bloom_bits);
}

}  // namespace evring::core
