#include "evring/core/ring.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>

#include "evring/core/dedup.h"
#include "evring/core/wait.h"

namespace evring::core {
namespace {

constexpr std::size_t align_up(std::size_t v, std::size_t a) { return (v + a - 1) / a * a; }

struct Offsets {
  std::size_t gates, lanes, cursors, partitions, stride, total;
};

Offsets offsets_of(const RingConfig& c) {
  Offsets o;
  o.gates = sizeof(RingHeader);
  o.lanes = o.gates + std::size_t{c.max_consumers} * sizeof(ConsumerGate);
  o.cursors = o.lanes + std::size_t{c.producer_lanes} * sizeof(ProducerLane);
  o.partitions = o.cursors + std::size_t{c.max_consumers} * c.partitions * sizeof(CursorLine);
  o.stride = sizeof(PartitionHeader) + std::size_t{c.slots_per_partition} * c.slot_bytes;
  if (c.dedup_window)  // rounded to a cache line: the next partition header must stay aligned
    o.stride += align_up(sizeof(DedupHeader) + std::size_t{kDedupGenerations} *
                                                   c.dedup_bloom_words * sizeof(std::uint64_t),
                         kCacheLine);
  o.total = o.partitions + o.stride * c.partitions;
  return o;
}

bool is_pow2(std::uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

}  // namespace

RingConfig normalized(RingConfig c) {
  if (c.dedup_window && c.dedup_bloom_words == 0) {
    std::uint64_t bits = std::uint64_t{c.dedup_window} * std::max<std::uint32_t>(c.dedup_bits_per_key, 1);
    std::uint64_t words = 1;
    while (words * 64 < bits) words <<= 1;
    c.dedup_bloom_words = static_cast<std::uint32_t>(words);
  }
  return c;
}

Status validate_config(const RingConfig& raw) {
  const RingConfig c = normalized(raw);
  if (c.partitions == 0 || c.partitions > kMaxPartitions)
    return Status::invalid_argument("partitions must be 1.." + std::to_string(kMaxPartitions) +
                                    ", got " + std::to_string(c.partitions));
  if (!is_pow2(c.slots_per_partition) || c.slots_per_partition < 2 ||
      c.slots_per_partition > (1u << 24))
    return Status::invalid_argument("slots per partition must be a power of two in 2..16777216, got " +
                                    std::to_string(c.slots_per_partition));
  if (c.slot_bytes < kMinSlotBytes || c.slot_bytes > kMaxSlotBytes || c.slot_bytes % kCacheLine)
    return Status::invalid_argument("slot size must be a multiple of 64 in 256..1048576 bytes, got " +
                                    std::to_string(c.slot_bytes));
  if (c.max_consumers == 0 || c.max_consumers > kMaxConsumers)
    return Status::invalid_argument("max consumers must be 1.." + std::to_string(kMaxConsumers) +
                                    ", got " + std::to_string(c.max_consumers));
  if (c.producer_lanes == 0 || c.producer_lanes > kMaxProducerLanes)
    return Status::invalid_argument("producer lanes must be 1.." +
                                    std::to_string(kMaxProducerLanes) + ", got " +
                                    std::to_string(c.producer_lanes));
  if (c.dedup_window > c.slots_per_partition / 2)
    return Status::invalid_argument("dedup window must be at most half the slots per partition (" +
                                    std::to_string(c.slots_per_partition / 2) + "), got " +
                                    std::to_string(c.dedup_window));
  if (c.dedup_window && (!is_pow2(c.dedup_bloom_words) || c.dedup_bloom_words > (1u << 24)))
    return Status::invalid_argument("dedup bloom words must be a power of two up to 16777216");
  if (c.dedup_window && (c.dedup_bits_per_key == 0 || c.dedup_bits_per_key > 64))
    return Status::invalid_argument("dedup bits per key must be 1..64");
  if (c.overflow != Overflow::kReject && c.overflow != Overflow::kOverwrite)
    return Status::invalid_argument("unknown overflow policy");
  std::size_t total = offsets_of(c).total;
  if (total > (std::size_t{1} << 40))
    return Status::invalid_argument("ring would need " + std::to_string(total) +
                                    " bytes: more than 1 TiB");
  return Status::ok();
}

std::size_t ring_region_bytes(const RingConfig& config) {
  return offsets_of(normalized(config)).total;
}

RingRegion RingRegion::format(std::span<std::byte> mem, const RingConfig& raw) {
  const RingConfig config = normalized(raw);
  RingHeader& h = *reinterpret_cast<RingHeader*>(mem.data());
  h.partitions = config.partitions;
  h.slots_per_partition = config.slots_per_partition;
  h.slot_bytes = config.slot_bytes;
  h.max_consumers = config.max_consumers;
  h.overflow = static_cast<std::uint32_t>(config.overflow);
  h.producer_lanes = config.producer_lanes;
  h.dedup_window = config.dedup_window;
  h.dedup_bloom_words = config.dedup_bloom_words;
  h.dedup_window_ns = config.dedup_window_ns;
  // Bits a key sets in its word: the fewest false positives for a one-word filter (dedup.h).
  h.dedup_bloom_bits = dedup_bloom_bits(config.dedup_window, config.dedup_bloom_words);
  // Zero-filled memory already is: every atomic 0, every slot word (0, EMPTY), every head 0.
  // The caller publishes the region (segment ready flag, release) after this returns.
  auto region = attach(mem);
  return region.value();
}

Result<RingRegion> RingRegion::attach(std::span<std::byte> mem) {
  if (mem.size() < sizeof(RingHeader) ||
      reinterpret_cast<std::uintptr_t>(mem.data()) % kCacheLine != 0)
    return Status::corruption("ring region is smaller than its header or misaligned");
  const RingHeader& h = *reinterpret_cast<const RingHeader*>(mem.data());
  RingConfig c;
  c.partitions = h.partitions;
  c.slots_per_partition = h.slots_per_partition;
  c.slot_bytes = h.slot_bytes;
  c.max_consumers = h.max_consumers;
  c.overflow = static_cast<Overflow>(h.overflow);
  c.producer_lanes = h.producer_lanes;
  c.dedup_window = h.dedup_window;
  c.dedup_bloom_words = h.dedup_bloom_words;
  c.dedup_window_ns = h.dedup_window_ns;
  if (c.dedup_window && (h.dedup_bloom_bits == 0 || h.dedup_bloom_bits > kMaxBloomBits))
    return Status::corruption("ring header has an invalid dedup bit count");
  if (Status s = validate_config(c); !s.is_ok())
    return Status::corruption("ring header is invalid: " + s.message());
  Offsets o = offsets_of(c);
  if (o.total > mem.size())
    return Status::corruption("ring header describes " + std::to_string(o.total) +
                              " bytes but the region has " + std::to_string(mem.size()));
  RingRegion r;
  r.base_ = mem.data();
  r.size_ = o.total;
  r.config_ = c;
  r.mask_ = c.slots_per_partition - 1;
  r.partitions_pow2_ = std::has_single_bit(c.partitions);
  r.gates_offset_ = o.gates;
  r.lanes_offset_ = o.lanes;
  r.cursors_offset_ = o.cursors;
  r.partitions_offset_ = o.partitions;
  r.partition_stride_ = o.stride;
  r.dedup_offset_ = sizeof(PartitionHeader) + std::size_t{c.slots_per_partition} * c.slot_bytes;
  return r;
}

std::uint64_t RingRegion::min_attached_cursor(std::uint32_t p) const {
  std::uint64_t lowest = std::numeric_limits<std::uint64_t>::max();
  for (std::uint32_t c = 0; c < config_.max_consumers; ++c) {
    // SYNC POINT: acquire pairs with the release in attach_consumer(): a gate seen attached
    // comes with the cursor written before it.
    if (gate(c).state.load(std::memory_order_acquire) !=
        static_cast<std::uint32_t>(GateState::kAttached))
      continue;
    // SYNC POINT: acquire pairs with the consumer's release of committed (poll/commit): the
    // consumer's reads of slots below it happen-before our writes into them.
    lowest = std::min(lowest, cursor(c, p).committed.load(std::memory_order_acquire));
  }
  return lowest;
}

void RingRegion::wake_sleepers() const {
  // Relaxed RMW: the futex word only needs to change so that a sleeper whose snapshot is older
  // does not go to sleep; the event itself was published by the slot word.
  header().wake_word.fetch_add(1, std::memory_order_relaxed);
  futex_wake_all(&header().wake_word);
}

void RingRegion::attach_consumer(std::uint32_t index,
                                 std::span<const std::uint64_t> cursors) const {
  for (std::uint32_t p = 0; p < config_.partitions; ++p)
    cursor(index, p).committed.store(cursors[p], std::memory_order_relaxed);
  // SYNC POINT: release publishes the cursors above to producers that acquire the gate.
  gate(index).state.store(static_cast<std::uint32_t>(GateState::kAttached),
                          std::memory_order_release);
  // Producers compare the epoch on every claim; seq_cst so the bump is ordered after the gate
  // store for any producer that reads the epoch and then the gate.
  header().gate_epoch.fetch_add(1, std::memory_order_seq_cst);
}

void RingRegion::detach_consumer(std::uint32_t index) const {
  // Release: a producer that stops seeing the gate also sees the consumer's last commit.
  gate(index).state.store(static_cast<std::uint32_t>(GateState::kDetached),
                          std::memory_order_release);
}

}  // namespace evring::core
