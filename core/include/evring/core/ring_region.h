#pragma once
// RingRegion: the ring over a memory region handed to it (ring_layout.h's bytes), its
// configuration, and the expansion of a stored slot envelope; shared by producer.h and
// consumer.h. ring.h includes all three.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <vector>

#include "evring/codec/envelope.h"
#include "evring/codec/status.h"
#include "evring/core/ring_layout.h"

namespace evring::core {

// Who may be setting bits in a partition's dedup bloom words (dedup_mark, dedup.h).
enum class BloomWriters : std::uint8_t {
  kShared,  // any producer: the bits are set with a locked fetch_or (dedup.h's race rules)
  kSole,    // the caller holds the partition exclusively or biased: plain load + store
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
  // up to 2 * dedup_window slots. 64 (one word per key, 9 bits of it set, dedup_bloom_bits()):
  // ~4e-5 per full generation probed (32: 4e-4; 16: 5e-3, where dedup costs ~35% of the
  // throughput, most of it in scans); memory 24 * window bytes.
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
// key and payload copied to body_out. Every word but 12, the key's entity_key_hash(), which the
// caller computes from the copy at the front of body_out (the checksum then covers exactly the
// key it delivers; the poll path hashes inline, envelope_hot.h). Returns the full envelope's
// length (the key's is word 14's high half), or 0 when the length, the key length or the origin
// group's padding cannot be right. `elided` and `stored` are the slot's, read once by the caller;
// REQUIRES: elided has kCompactHeader and elided_bits_valid. body_out must hold
// max_envelope_bytes - 128. Same untrusted-bytes contract as below.
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
  w[12] = 0;  // the caller's: entity_key_hash() of body_out's first key_bytes
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
  if (n == 0) return 0;
  words.w[12] = entity_key_hash(
      std::span<const std::byte>(out + kEnvelopeHeaderBytes, words.w[14] >> 32));
  std::memcpy(out, words.w, kEnvelopeHeaderBytes);
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

}  // namespace evring::core
