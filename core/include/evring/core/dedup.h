#pragma once
// Publish-side dedup: a blocked bloom filter per partition answers "certainly new" with one
// fetch_or; a "maybe seen" answer is confirmed exactly against the events still in the ring
// before anything is dropped, so a bloom false positive never drops a genuine event.
//
// Window (W = RingConfig::dedup_window, per partition): generation g = sequence / W. A key is
// looked up in generations g and g - 1, so the original of a duplicate is caught when it is
// among the last W (at least) to 2W (at most) events of its partition, it is still in the ring
// (W <= slots / 2 guarantees that for reject buses), and, with dedup_window_ns set, it was
// recorded at most dedup_window_ns before the duplicate. Older originals: accepted again.
//
// Concurrency (any number of producers, any processes): a producer writes its envelope, marks
// the slot PENDING (release), then sets its key's bits with one fetch_or on a single 64-bit
// word (all the key's bits live in that word, so exactly one of two racing producers of the
// same key can see "some bit was clear"). The other one confirms by scanning the window: a
// PUBLISHED or PENDING slot with the same key and a lower sequence makes it a duplicate; a
// slot still WRITING below it is waited for (it will reach PENDING) — a PENDING rival with a
// higher sequence yields to us, so exactly one of any set of equal keys is published.
#include <cstdint>

#include "evring/core/ring.h"

namespace evring::core {

enum class DedupVerdict : std::uint8_t { kNew, kDuplicate };

// REQUIRES: region.dedup_enabled(); slot holds the sealed envelope of `seq`, state PENDING.
DedupVerdict dedup_admit(const RingRegion& region, std::uint32_t p, std::uint64_t seq,
                         const SlotHeader& slot);

// The bit mask and word index a key maps to (exposed for tests and benches).
struct BloomProbe {
  std::uint64_t word;
  std::uint64_t mask;
};
BloomProbe bloom_probe(const Id128& key, std::uint32_t bloom_words, std::uint32_t bits);

}  // namespace evring::core
