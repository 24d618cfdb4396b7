#pragma once
// RingConsumer: reads a ring's partitions in sequence order, validating every slot, with its
// type filter and wait strategies.
#include <bitset>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "evring/codec/envelope.h"
#include "evring/core/ring_region.h"

namespace evring::core {

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
  // The next slot is not ready: asks for its second line while the caller spins on the first.
  // A compact event with up to 72 bytes of key and payload spans the slot's first two lines, and
  // a consumer that requests the second only once the word's line has shown the event waits for
  // two transfers in a row; with a request for it outstanding on every spin, the two come
  // together. Only a hint (the line is fetched again if the producer writes it afterwards), and
  // no access a race detector would see. Round trip p50 0.93x (6 interleaved rounds, AMD Zen 5
  // 2 vCPU; throughput unchanged); evring-handover shows the same on bare lines
  // (bench/RESULTS.md, session O).
  [[gnu::always_inline]] static void await_second_line(const SlotHeader& slot) {
    __builtin_prefetch(reinterpret_cast<const char*>(&slot) + kCacheLine, 0, 3);
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
