#pragma once
// Byte layout of the ring region: the part of a bus segment that the core algorithms own.
// The shm layer places it after the segment header and registries and hands it to core as a
// span; every offset below is relative to the start of that span. Prose: core/FORMAT.md.
//
//  +------------------+  0
//  | RingHeader       |  256 B: config copy, futex wake word, sleeper count, gate epoch
//  +------------------+  256
//  | ConsumerGate[C]  |  64 B each: is consumer i attached (gates publishing in reject mode)
//  +------------------+
//  | ProducerLane[L]  |  64 B each: what one producer thread is claiming, and who it is
//  +------------------+
//  | CursorLine[C][P] |  64 B each: consumer i's durable cursor + counters for partition p
//  +------------------+
//  | Partition[P]     |  PartitionHeader (256 B), slots_per_partition * slot_bytes, then (dedup
//  |                  |  buses) a DedupArea: 64 B header + 3 generations of bloom words
//  +------------------+
//
// All fields are native little-endian (static_assert in envelope.h); all offsets are multiples
// of 64 so that no two writers share a cache line unless the table says so.
//
// Bump kRingLayoutVersion whenever a byte below moves or changes meaning; the segment header
// stores it and open() refuses a mismatch (tests/core/ring_layout_golden_test.cpp hard-codes it).
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "evring/codec/envelope.h"

namespace evring::core {

// 2: the bytes are those of version 1, their meaning changed between processes: producers skip
// the fence before reading `sleepers` (sleepers issue membarrier instead), and a dedup producer
// sets its bloom bits before writing its slot, PENDING marking only confirmers. A version-1
// process on the same ring could miss a wake-up or let a duplicate through.
// 3: PartitionHeader::exclusive_owner (an exclusive producer advances head with plain stores;
// a version-2 producer would not look at it and CAS head under it).
// 4: SlotHeader::elided (was reserved): a slot may leave header word groups out (SlotElide), so
// its envelope bytes are no longer the envelope verbatim; a version-3 reader would misread them.
// 5: slots hold envelope format 3 (codec/envelope.h: a checksum of three independent hashes); a
// version-4 reader would count every event corrupt, so it is refused at open instead.
// 6: the compact slot header (kCompactHeader, "Slot envelope compaction" below).
// 7: biased partitions: exclusive_owner's top bit (kBiasedOwner) marks a holder that any other
// producer may revoke (kRevokingOwner: being revoked), ProducerLane::count's top bit
// (kSoleClaim) a claim that advances head with a plain store, and
// PartitionHeader::bias_revoked_ns / bias_revocations. A version-6
// producer would read a biased mark as one naming no lane, free it and CAS head under the
// holder's plain stores.
inline constexpr std::uint32_t kRingLayoutVersion = 7;
inline constexpr std::size_t kCacheLine = 64;

enum class Overflow : std::uint32_t {
  kReject = 0,     // lossless: publish returns Full when the slowest attached consumer is a lap behind
  kOverwrite = 1,  // never refuses: a lapped consumer is told how many events it lost
};

// ---------------------------------------------------------------------------------------------
// RingHeader (256 B, written once by format(), then only the wake/sleeper/epoch words change)
// | off | size | field               | writer / publication                                    |
// |   0 |    4 | partitions          | format(); read-only after the segment is marked ready    |
// |   4 |    4 | slots_per_partition | format(); power of two                                  |
// |   8 |    4 | slot_bytes          | format(); multiple of 64, >= 256                        |
// |  12 |    4 | max_consumers       | format()                                                |
// |  16 |    4 | overflow            | format(); Overflow                                      |
// |  20 |    4 | producer_lanes      | format(); number of ProducerLane entries                |
// |  24 |    4 | dedup_window        | format(); events per dedup generation, 0 = dedup off    |
// |  28 |    4 | dedup_bloom_words   | format(); 64-bit bloom words per generation (pow2)      |
// |  32 |    8 | dedup_window_ns     | format(); max age of a duplicate's original, 0 = any    |
// |  40 |    1 | dedup_bloom_bits    | format(); bits set per key in its word (1..16)          |
// |  41 |   23 | reserved            | zero                                                    |
// |  64 |    4 | wake_word (atomic)  | producers bump it (release) before FUTEX_WAKE           |
// |  68 |    4 | sleepers (atomic)   | consumers ++ before sleeping, -- after (seq_cst RMW, then |
// |     |      |                     | membarrier: see notify_consumers for the Dekker pairing) |
// | 128 |    8 | gate_epoch (atomic) | bumped when a consumer attaches; producers drop caches  |
// | 136 |  120 | reserved            | zero                                                    |
// ---------------------------------------------------------------------------------------------
struct RingHeader {
  std::uint32_t partitions;
  std::uint32_t slots_per_partition;
  std::uint32_t slot_bytes;
  std::uint32_t max_consumers;
  std::uint32_t overflow;
  std::uint32_t producer_lanes;
  std::uint32_t dedup_window;
  std::uint32_t dedup_bloom_words;
  std::uint64_t dedup_window_ns;
  std::uint8_t dedup_bloom_bits;
  std::uint8_t reserved0[23];
  // Own line: consumers that block write it, producers read it on every publish.
  alignas(kCacheLine) std::atomic<std::uint32_t> wake_word;
  std::atomic<std::uint32_t> sleepers;
  std::uint8_t reserved1[56];
  alignas(kCacheLine) std::atomic<std::uint64_t> gate_epoch;
  std::uint8_t reserved2[120];
};
static_assert(std::is_standard_layout_v<RingHeader>);
static_assert(sizeof(RingHeader) == 256);
static_assert(offsetof(RingHeader, overflow) == 16);
static_assert(offsetof(RingHeader, producer_lanes) == 20);
static_assert(offsetof(RingHeader, dedup_window) == 24);
static_assert(offsetof(RingHeader, dedup_window_ns) == 32);
static_assert(offsetof(RingHeader, dedup_bloom_bits) == 40);
static_assert(offsetof(RingHeader, wake_word) == 64);
static_assert(offsetof(RingHeader, sleepers) == 68);
static_assert(offsetof(RingHeader, gate_epoch) == 128);

// ---------------------------------------------------------------------------------------------
// ConsumerGate (64 B per consumer index; index shared with the shm consumer registry)
// | off | size | field          | writer / publication                                          |
// |   0 |    4 | state (atomic) | attach/detach/liveness sweep; release on attach so the cursor |
// |     |      |                | written before it is visible to producers that acquire it    |
// |   4 |   60 | reserved       |                                                               |
// ---------------------------------------------------------------------------------------------
enum class GateState : std::uint32_t {
  kFree = 0,      // no consumer at this index
  kAttached = 1,  // a live consumer: gates publishing in reject mode
  kDetached = 2,  // known consumer, not running: keeps its cursor, gates nothing
};
struct ConsumerGate {
  std::atomic<std::uint32_t> state;
  std::uint8_t reserved[60];
};
static_assert(sizeof(ConsumerGate) == kCacheLine);

// ---------------------------------------------------------------------------------------------
// ProducerLane (64 B per producer thread; written only by its owner, except `state` on reclaim)
// Lets a consumer stuck behind an unfinished slot find out who claimed it and whether that
// process is dead, without a daemon. Protocol (RingProducer::claim):
//   intent:  partition, first := expected head, count := wanted (relaxed), then the claim CAS
//            with release, so a consumer that acquires head >= first + 1 sees the intent;
//   done:    count := 0 (release) after the claimed slots are published.
// A slot that stays unfinished is abandoned only when every lane whose intent covers it belongs
// to a dead process (pid + start time; a stopped or slow process is alive).
// | off | size | field             | writer / publication                                       |
// |   0 |    4 | state (atomic)    | 0 free, 1 in use; set by the registry when handed out      |
// |   4 |    4 | owner_pid         | set when handed out, before state (release)                |
// |   8 |    8 | owner_start       | process start time of the owner (pid reuse guard)          |
// |  16 |    8 | first (atomic)    | first sequence of the current intent (relaxed, see above)  |
// |  24 |    4 | count (atomic)    | sequences in the intent, 0 = idle; top bit kSoleClaim: a   |
// |     |      |                   | biased holder's claim, which may store head plainly (a     |
// |     |      |                   | revoker waits until it is gone; intent_count() masks it)   |
// |  28 |    4 | partition (atomic)| partition of the intent                                    |
// |  32 |    2 | producer_id       | registry id of the owning producer (for tools)             |
// |  34 |   30 | reserved          |                                                            |
// ---------------------------------------------------------------------------------------------
struct ProducerLane {
  std::atomic<std::uint32_t> state;
  std::uint32_t owner_pid;
  std::uint64_t owner_start;
  std::atomic<std::uint64_t> first;
  std::atomic<std::uint32_t> count;
  std::atomic<std::uint32_t> partition;
  std::uint16_t producer_id;
  std::uint8_t reserved[30];
};
static_assert(std::is_standard_layout_v<ProducerLane>);
static_assert(sizeof(ProducerLane) == kCacheLine);
static_assert(offsetof(ProducerLane, first) == 16);
static_assert(offsetof(ProducerLane, count) == 24);
static_assert(offsetof(ProducerLane, partition) == 28);
static_assert(offsetof(ProducerLane, producer_id) == 32);
// ProducerLane::count's top bit: the claim was made as the partition's biased holder and may
// advance head with a plain store (RingProducer::claim). Intents never count 2^31 sequences.
inline constexpr std::uint32_t kSoleClaim = 0x8000'0000u;
inline constexpr std::uint32_t intent_count(std::uint32_t count) { return count & ~kSoleClaim; }

// ---------------------------------------------------------------------------------------------
// CursorLine (64 B per consumer per partition; written only by that consumer)
// | off | size | field                | meaning                                                |
// |   0 |    8 | committed (atomic)   | next sequence to read after a restart; release-stored  |
// |     |      |                      | after the events before it were handled, so a producer  |
// |     |      |                      | that acquires it may reuse those slots                  |
// |   8 |    8 | delivered (atomic)   | events handed to the handler (relaxed: a statistic)    |
// |  16 |    8 | gaps (atomic)        | events lost because the ring lapped this consumer      |
// |  24 |    8 | filtered (atomic)    | events skipped by the consumer's pattern               |
// |  32 |    8 | corrupt (atomic)     | slots that failed validation and were skipped          |
// |  40 |    8 | abandoned (atomic)   | abandoned slots skipped                                |
// |  48 |    8 | read_position        | in-process read position mirror (relaxed; for stat lag)|
// |  56 |    8 | reserved             |                                                        |
// ---------------------------------------------------------------------------------------------
struct CursorLine {
  std::atomic<std::uint64_t> committed;
  std::atomic<std::uint64_t> delivered;
  std::atomic<std::uint64_t> gaps;
  std::atomic<std::uint64_t> filtered;
  std::atomic<std::uint64_t> corrupt;
  std::atomic<std::uint64_t> abandoned;
  std::atomic<std::uint64_t> read_position;
  std::uint64_t reserved;
};
static_assert(sizeof(CursorLine) == kCacheLine);
static_assert(offsetof(CursorLine, committed) == 0);
static_assert(offsetof(CursorLine, read_position) == 48);

// ---------------------------------------------------------------------------------------------
// PartitionHeader (256 B)
// | off | size | field              | writer / publication                                     |
// |   0 |    8 | head (atomic)      | next sequence to claim; producers CAS (reject) or        |
// |     |      |                    | fetch_add (overwrite); relaxed: it orders only claims,   |
// |     |      |                    | slot contents are published by the slot word             |
// |  64 |    8 | rejected (atomic)  | publishes refused Full (relaxed counter)                 |
// |  72 |    8 | abandoned (atomic) | claimed slots marked abandoned (relaxed counter)         |
// |  80 |    8 | deduplicated       | reserved for the dedup filter (relaxed counter)          |
// |  88 |    4 | exclusive_owner    | 0: producers share the partition and claim by CAS;        |
// |     |      |  (atomic)          | lane index + 1: that lane's producer holds it exclusively |
// |     |      |                    | and advances head with plain release stores. Set by CAS  |
// |     |      |                    | (seq_cst) then the taker waits out claims already past   |
// |     |      |                    | their check; sharers store their intent, fence (seq_cst) |
// |     |      |                    | and then read it (Dekker: one of the two sees the other)  |
// |     |      |                    | kBiasedOwner | (lane + 1): biased to that lane, a lone    |
// |     |      |                    | producer's automatic hold; it advances head plainly in    |
// |     |      |                    | claims marked kSoleClaim, after finding this exact mark.  |
// |     |      |                    | Any other producer revokes it: CAS in kRevokingOwner,     |
// |     |      |                    | membarrier, wait until the lane shows no marked claim on  |
// |     |      |                    | the partition (bounded: kBusy leaves the revoking mark    |
// |     |      |                    | for the next producer to finish), then CAS it to 0        |
// |  92 |    4 | reserved           |                                                          |
// |  96 |    8 | bias_revoked_ns    | CLOCK_MONOTONIC of the last revocation (relaxed: a hint;  |
// |     |      |  (atomic)          | no bias is taken for RingProducer's cool-down after it)   |
// | 104 |    8 | bias_revocations   | biases revoked (relaxed counter)                          |
// | 112 |   16 | reserved           |                                                          |
// | 128 |  128 | reserved           | dedup filter offsets, future use                         |
// ---------------------------------------------------------------------------------------------
struct PartitionHeader {
  // Own line: every producer of this partition CASes it.
  alignas(kCacheLine) std::atomic<std::uint64_t> head;
  std::uint8_t reserved0[56];
  // Counters change rarely (only on refusal / abandonment): apart from head so that they do
  // not bounce the claim line.
  std::atomic<std::uint64_t> rejected;
  std::atomic<std::uint64_t> abandoned;
  std::atomic<std::uint64_t> deduplicated;
  std::atomic<std::uint32_t> exclusive_owner;
  std::uint8_t reserved1[4];
  std::atomic<std::uint64_t> bias_revoked_ns;
  std::atomic<std::uint64_t> bias_revocations;
  std::uint8_t reserved3[16];
  std::uint8_t reserved2[128];
};
// exclusive_owner's top bit: the holder is a biased one (revocable), not set_exclusive's. The
// next bit, only beside it: a producer is revoking that bias; nobody claims by CAS until the
// holder's marked claim is seen over and the mark is 0.
inline constexpr std::uint32_t kBiasedOwner = 0x8000'0000u;
inline constexpr std::uint32_t kRevokingOwner = 0x4000'0000u;
inline constexpr bool owner_biased(std::uint32_t owner) { return (owner & kBiasedOwner) != 0; }
inline constexpr bool owner_revoking(std::uint32_t owner) { return (owner & kRevokingOwner) != 0; }
// The lane + 1 a mark names; 0 when it names none (a revoking bit without the bias bit too).
inline constexpr std::uint32_t owner_lane_mark(std::uint32_t owner) {
  if (owner_revoking(owner) && !owner_biased(owner)) return 0;
  return owner & ~(kBiasedOwner | kRevokingOwner);
}
static_assert(std::is_standard_layout_v<PartitionHeader>);
static_assert(sizeof(PartitionHeader) == 256);
static_assert(offsetof(PartitionHeader, head) == 0);
static_assert(offsetof(PartitionHeader, rejected) == 64);
static_assert(offsetof(PartitionHeader, abandoned) == 72);
static_assert(offsetof(PartitionHeader, deduplicated) == 80);
static_assert(offsetof(PartitionHeader, exclusive_owner) == 88);
static_assert(offsetof(PartitionHeader, bias_revoked_ns) == 96);
static_assert(offsetof(PartitionHeader, bias_revocations) == 104);

// ---------------------------------------------------------------------------------------------
// Slot (slot_bytes, 64-aligned)
// | off | size | field                 | writer / publication                                 |
// |   0 |    8 | word (atomic)         | (sequence << 3) | state; see SlotState. The release   |
// |     |      |                       | store of PUBLISHED publishes bytes 8..; readers      |
// |     |      |                       | acquire it, copy, then re-check it (seqlock) so a    |
// |     |      |                       | slot reused during the copy is detected, not torn    |
// |   8 |    4 | envelope_bytes        | bytes of envelope stored at 16 (after elision)       |
// |  12 |    2 | writer                | producer id (registry index+1) that claimed the slot |
// |  14 |    2 | elided                | SlotElide bits: the stored form of the header at 16  |
// |  16 |    … | envelope              | codec/envelope.h, its header in one of two forms,    |
// |     |      |                       | then key and payload (expand_slot_envelope, ring.h): |
// |     |      |                       | compact (kCompactHeader set; what publish writes):   |
// |     |      |                       |   the table "Compact header" below; word groups      |
// |     |      |                       |   (zero-copy claims): words 0-5, [6-7], [8-9],       |
// |     |      |                       |   [10-11], 12, [13], 14-15                           |
// ---------------------------------------------------------------------------------------------
// Commit protocol (per slot, sequence s):
//   1. claim s (head), (dedup buses: set the key's bloom bits, core/dedup.h),
//   2. word := (s, WRITING), 3. write length, writer, envelope,
//   4. (dedup buses, only when the bloom said "maybe") word := (s, PENDING), confirm, and on a
//      confirmed duplicate (s, DUPLICATE),
//   5. word := (s, PUBLISHED) with release.
// A writer that dies after 1 leaves the word at an older sequence; after 2 at (s, WRITING) or
// (s, PENDING). Either way readers never see its bytes as an event: only PUBLISHED words are
// read, and only when the re-check after the copy finds the same word. ABANDONED and DUPLICATE
// mark a slot that every consumer skips.
enum class SlotState : std::uint64_t {
  kEmpty = 0,      // never written (zeroed memory)
  kWriting = 1,    // claimed; the writer is filling it
  kPublished = 2,  // readable
  kAbandoned = 3,  // its writer gave up or died: skip
  kPending = 4,    // written; a dedup confirmer awaiting its decision: not readable yet
  kDuplicate = 5,  // dropped by dedup: skip
};
inline constexpr unsigned kSlotStateBits = 3;
inline constexpr std::uint64_t slot_word(std::uint64_t seq, SlotState s) {
  return (seq << kSlotStateBits) | static_cast<std::uint64_t>(s);
}
inline constexpr std::uint64_t word_sequence(std::uint64_t word) { return word >> kSlotStateBits; }
inline constexpr SlotState word_state(std::uint64_t word) {
  return static_cast<SlotState>(word & ((1u << kSlotStateBits) - 1));
}

struct SlotHeader {
  std::atomic<std::uint64_t> word;
  std::uint32_t envelope_bytes;
  std::uint16_t writer;
  std::uint16_t elided;
};
static_assert(std::is_standard_layout_v<SlotHeader>);
static_assert(sizeof(SlotHeader) == 16);
static_assert(offsetof(SlotHeader, envelope_bytes) == 8);
static_assert(offsetof(SlotHeader, writer) == 12);
static_assert(offsetof(SlotHeader, elided) == 14);
inline constexpr std::size_t kSlotHeaderBytes = sizeof(SlotHeader);

// Slot envelope compaction. Readers expand a slot back into the 128-byte header
// (expand_slot_envelope, ring.h) before anything checks it: the checksum covers the expanded
// envelope, so a scribbled `elided` fails it like any other corruption.
//
// Word groups (layout version 4): four groups of header words usually hold a value the rest of
// the header implies; a producer leaves such a group out and sets its bit, and the words after it
// move up. Zero-copy claims store this form with no group left out (the caller may still change
// any field before commit seals it).
//
// Compact header (layout version 6, kCompactHeader set; every publish and batch): the fields the
// slot or the body already imply are not stored at all (format_version and header_bytes: this
// build's; producer_id: the slot's writer; sequence: the slot word's; entity_key_hash: xxh3 of the
// stored key; payload_bytes: what the length leaves after the key; reserved: zero), the rest is
// packed into 40 bytes, then the optional groups, each present only when its bit is clear:
// | off | size | field                                                                        |
// |   0 |    8 | type_id (0..15), schema_version (16..31), classification (32..39),           |
// |     |      | content_type (40..47), flags (48..63)                                        |
// |   8 |    8 | timestamp_ns                                                                 |
// |  16 |   16 | event_id                                                                     |
// |  32 |    8 | key_id (0..15), entity_key_bytes (16..31), checksum (32..63)                 |
// |  40 |    … | [idempotency_key 16] [correlation_id 16] [causation_id 16]                   |
// |     |      | [entity_revision 8] [origin_host 4, then 4 zero bytes]                       |
// Why: a cache line moves between cores as one transfer. A consumer waiting on a slot keeps a
// request for its second line outstanding (RingConsumer::await_second_line), so the first two
// come together, but every further line is another transfer, one after the other, since it asks
// for the rest only once the word's line has shown it the event is there. A 64-byte payload with
// a key of up to 8 bytes now fits the slot's first 128 bytes (16 + 40 + 8 + 64) instead of
// spilling into a third line: a hand-over measured 1.5x slower at 192 bytes than at 128
// (bench/RESULTS.md, sessions L and O).
enum SlotElide : std::uint16_t {
  kElideIdempotencyKey = 1u << 0,  // header words 6-7: equal to the event id (words 4-5)
  kElideCorrelationId = 1u << 1,   // words 8-9: equal to the event id
  kElideCausationId = 1u << 2,     // words 10-11: zero
  kElideRevision = 1u << 3,        // word 13: zero
  kCompactHeader = 1u << 4,        // the compact header above, not the word groups
  kElideOriginHost = 1u << 5,      // compact only: origin_host zero
};
inline constexpr std::uint16_t kElideMask = 0xF;          // the bits of the word-group form
inline constexpr std::uint16_t kCompactElideMask = 0x3F;  // the bits of the compact form
inline constexpr std::size_t kCompactFixedBytes = 40;
// Whether `elided` names one of the two forms with only the bits it defines.
inline constexpr bool elided_bits_valid(std::uint16_t elided) {
  return elided & kCompactHeader ? (elided & ~kCompactElideMask) == 0
                                 : (elided & ~kElideMask) == 0;
}
// The compact form as one description: full-header byte ranges the fixed 40 bytes hold and
// where, then the optional groups in stored order (stored: the bytes a group takes in the slot).
// stored_header_offset reads it; the hot paths (RingProducer::write_event,
// expand_compact_words) spell it out, and the golden tests pin both to it.
struct CompactRun {
  std::size_t first, bytes, at;
};
inline constexpr CompactRun kCompactFixed[] = {{4, 4, 0},   {10, 4, 4},   {16, 8, 8},
                                               {32, 16, 16}, {14, 2, 32}, {116, 2, 34},
                                               {124, 4, 36}};
struct CompactGroup {
  std::size_t first, bytes, stored;
  std::uint16_t bit;
};
inline constexpr CompactGroup kCompactGroups[] = {{48, 16, 16, kElideIdempotencyKey},
                                                  {64, 16, 16, kElideCorrelationId},
                                                  {80, 16, 16, kElideCausationId},
                                                  {104, 8, 8, kElideRevision},
                                                  {120, 4, 8, kElideOriginHost}};
// Bytes of header a compact slot holds. Written out for the hot paths; equal to the table's sum
// for every set (checked below).
inline constexpr std::size_t compact_header_bytes(std::uint16_t elided) {
  return kCompactFixedBytes + (elided & kElideIdempotencyKey ? 0 : 16) +
         (elided & kElideCorrelationId ? 0 : 16) + (elided & kElideCausationId ? 0 : 16) +
         (elided & kElideRevision ? 0 : 8) + (elided & kElideOriginHost ? 0 : 8);
}
inline constexpr bool compact_header_bytes_matches_groups() {
  for (std::uint16_t set = kCompactHeader; set <= kCompactElideMask; ++set) {
    std::size_t bytes = kCompactFixedBytes;
    for (const CompactGroup& g : kCompactGroups)
      if (!(set & g.bit)) bytes += g.stored;
    if (bytes != compact_header_bytes(set)) return false;
  }
  std::size_t fixed = 0;
  for (const CompactRun& r : kCompactFixed) fixed += r.bytes;
  return fixed == kCompactFixedBytes;
}
static_assert(compact_header_bytes_matches_groups());
static_assert(compact_header_bytes(kCompactElideMask) == 40);
static_assert(compact_header_bytes(kCompactHeader) == 104);
// The groups as full-header byte ranges, in header order: the one description the helpers below
// are checked against. write_event (producer.cpp) and expand_slot_envelope (ring.h) spell the
// groups out word by word on the hot paths; static_asserts beside them pin them to this table.
struct ElideGroup {
  std::size_t first, bytes;
  std::uint16_t bit;
};
inline constexpr ElideGroup kElideGroups[] = {{48, 16, kElideIdempotencyKey},
                                              {64, 16, kElideCorrelationId},
                                              {80, 16, kElideCausationId},
                                              {104, 8, kElideRevision}};
// Bytes of header the slot holds for an `elided` set (elided_bits_valid). Written out for the hot
// paths; equal to the table's sum for every word-group set (checked below).
inline constexpr std::size_t stored_header_bytes(std::uint16_t elided) {
  if (elided & kCompactHeader) return compact_header_bytes(elided);
  return kEnvelopeHeaderBytes - (elided & kElideIdempotencyKey ? 16 : 0) -
         (elided & kElideCorrelationId ? 16 : 0) - (elided & kElideCausationId ? 16 : 0) -
         (elided & kElideRevision ? 8 : 0);
}
inline constexpr bool stored_header_bytes_matches_groups() {
  for (std::uint16_t set = 0; set <= kElideMask; ++set) {
    std::size_t bytes = kEnvelopeHeaderBytes;
    for (const ElideGroup& g : kElideGroups)
      if (set & g.bit) bytes -= g.bytes;
    if (bytes != stored_header_bytes(set)) return false;
  }
  return true;
}
static_assert(stored_header_bytes_matches_groups());
static_assert(stored_header_bytes(kElideMask) == 72);
inline constexpr std::size_t kElidedOffset = ~std::size_t{0};
// Where byte `offset` (< 128) of the full header lies among the header bytes a slot with these
// elided groups stores, or kElidedOffset when its group is left out (for tools and tests that
// look at slot bytes; readers expand instead).
inline constexpr std::size_t stored_header_offset(std::uint16_t elided, std::size_t offset) {
  if (elided & kCompactHeader) {
    for (const CompactRun& r : kCompactFixed)
      if (offset >= r.first && offset < r.first + r.bytes) return r.at + offset - r.first;
    std::size_t at = kCompactFixedBytes;
    for (const CompactGroup& g : kCompactGroups) {
      if (elided & g.bit) continue;
      if (offset >= g.first && offset < g.first + g.bytes) return at + offset - g.first;
      at += g.stored;
    }
    return kElidedOffset;  // implied by the slot or the body, or its group is left out
  }
  std::size_t at = offset;
  for (const ElideGroup& g : kElideGroups) {
    if (!(elided & g.bit)) continue;
    if (offset >= g.first + g.bytes) at -= g.bytes;
    else if (offset >= g.first) return kElidedOffset;
  }
  return at;
}
static_assert(stored_header_offset(kElideMask, 96) == 48);   // entity_key_hash
static_assert(stored_header_offset(kElideMask, 112) == 56);  // payload_bytes
static_assert(stored_header_offset(kElideIdempotencyKey, 64) == 48);
static_assert(stored_header_offset(kElideRevision, 104) == kElidedOffset);
static_assert(stored_header_offset(kCompactElideMask, 6) == 2);    // schema_version
static_assert(stored_header_offset(kCompactElideMask, 12) == 6);   // flags
static_assert(stored_header_offset(kCompactElideMask, 14) == 32);  // key_id
static_assert(stored_header_offset(kCompactElideMask, 124) == 36); // checksum
static_assert(stored_header_offset(kCompactElideMask, 24) == kElidedOffset);   // sequence
static_assert(stored_header_offset(kCompactElideMask, 96) == kElidedOffset);   // entity_key_hash
static_assert(stored_header_offset(kCompactHeader, 104) == 88);    // entity_revision
static_assert(stored_header_offset(kCompactHeader, 120) == 96);    // origin_host

// Where a key's bits lie in a generation's bloom array: word index and bit mask (core/dedup.h).
struct BloomProbe {
  std::uint64_t word;
  std::uint64_t mask;
};

// ---------------------------------------------------------------------------------------------
// DedupArea (per partition, after its slots, dedup buses only): 64 B header, then 3 generations
// of dedup_bloom_words 64-bit words. Generation g = sequence / dedup_window uses array g % 3;
// a key is "maybe seen" when its bits are all set in generation g or g - 1; array (g + 1) % 3
// is cleared by the first producer that enters generation g (cleared_through CAS).
// | off | size | field                     | writer / publication                              |
// |   0 |    8 | cleared_through (atomic)  | highest generation whose array is cleared, + 1;   |
// |     |      |                           | CAS (relaxed): clearing is idempotent and a stale |
// |     |      |                           | bit only costs a confirmation, never a false drop |
// |   8 |   56 | reserved                  |                                                   |
// |  64 | 3*8W | bloom words (atomic)      | fetch_or (seq_cst) by producers; an exclusive     |
// |     |      |                           | holder, the only writer, loads (relaxed) and      |
// |     |      |                           | stores (release); see dedup.h                     |
// ---------------------------------------------------------------------------------------------
struct DedupHeader {
  std::atomic<std::uint64_t> cleared_through;
  std::uint8_t reserved[56];
};
static_assert(sizeof(DedupHeader) == kCacheLine);
inline constexpr std::uint32_t kDedupGenerations = 3;
inline constexpr std::uint32_t kMaxBloomBits = 16;  // RingHeader::dedup_bloom_bits is 1..this

static_assert(std::atomic<std::uint64_t>::is_always_lock_free,
              "cross-process atomics must not fall back to a process-local lock");
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);
static_assert(sizeof(std::atomic<std::uint64_t>) == 8 && sizeof(std::atomic<std::uint32_t>) == 4,
              "atomics in shared memory must have the size of the plain integer");

inline constexpr std::size_t kMinSlotBytes = 256;
inline constexpr std::size_t kMaxSlotBytes = 1u << 20;
inline constexpr std::uint32_t kMaxPartitions = 1024;
inline constexpr std::uint32_t kMaxConsumers = 256;
inline constexpr std::uint32_t kMaxProducerLanes = 4096;

}  // namespace evring::core
