// BareSpscRing: the minimal single-producer / single-consumer byte ring that evring is measured
// against, in the style of rigtorp/SPSCQueue, laid over a shared-memory region so the producer
// and the consumer may live in different processes. Fixed-size messages are memcpy'd in and out.
//
// Layout at the start of the region (offsets in bytes, host byte order, no pointers):
//
//   0             128           256
//   +-------------+-------------+--------+--------+-----+------------------+
//   | write_idx   | read_idx    | slot 0 | slot 1 | ... | slot capacity-1  |
//   +-------------+-------------+--------+--------+-----+------------------+
//
//   | offset | size              | field     | written by | published by                     |
//   |--------|-------------------|-----------|------------|----------------------------------|
//   | 0      | 8                 | write_idx | producer   | release store after the memcpy in |
//   | 128    | 8                 | read_idx  | consumer   | release store after the memcpy out|
//   | 256    | capacity * stride | slots     | producer   | write_idx                        |
//
// Indices count messages since creation and never wrap in practice (2^64); slot = idx & mask.
// The ring holds `capacity` messages: full when write_idx - read_idx == capacity.
// Benchmark code: a peer that dies mid-push leaves at most one unpublished slot, never seen.
//
// Thread safety: exactly one BareProducer (one thread) and one BareConsumer (one thread) per
// ring, in any processes that map the region. Neither handle is copyable.
#pragma once

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <stdexcept>
#include <type_traits>

namespace evring::bench {

struct BareRingHeader {
  // Each cursor has a 128-byte block to itself: the two are written by different cores, and the
  // adjacent-line prefetcher moves 64-byte lines in pairs, so 64 bytes apart still false-shares.
  alignas(128) std::atomic<uint64_t> write_idx;
  alignas(128) std::atomic<uint64_t> read_idx;
};
static_assert(std::atomic<uint64_t>::is_always_lock_free,
              "cursors live in shared memory: they must not hide a process-local lock");
static_assert(std::is_standard_layout_v<BareRingHeader>, "mapped by several processes");
static_assert(offsetof(BareRingHeader, write_idx) == 0);
static_assert(offsetof(BareRingHeader, read_idx) == 128);
static_assert(sizeof(BareRingHeader) == 256, "slots start at byte 256");
static_assert(alignof(BareRingHeader) == 128);

struct BareRingGeometry {
  uint64_t capacity = 0;  // messages; a power of two
  size_t msg_bytes = 0;   // bytes copied per message
  size_t stride() const { return (msg_bytes + 7) & ~size_t{7}; }
  size_t region_bytes() const { return sizeof(BareRingHeader) + capacity * stride(); }
  void validate() const {
    if (capacity == 0 || !std::has_single_bit(capacity)) {
      throw std::invalid_argument("bare ring capacity must be a power of two");
    }
    if (msg_bytes == 0) throw std::invalid_argument("bare ring message size must be > 0");
  }
};

// Creates an empty ring in `region` (REQUIRES: region_bytes() long, 128-byte aligned, mapped
// writable, not yet in use by any peer).
inline void bare_ring_init(void* region, const BareRingGeometry& g) {
  g.validate();
  auto* h = new (region) BareRingHeader{};
  h->write_idx.store(0, std::memory_order_relaxed);  // published to peers by fork()/handshake
  h->read_idx.store(0, std::memory_order_relaxed);
}

class BareProducer {
 public:
  // REQUIRES: `region` holds a ring made by bare_ring_init() with the same geometry.
  BareProducer(void* region, const BareRingGeometry& g)
      : hdr_(static_cast<BareRingHeader*>(region)),
        slots_(static_cast<std::byte*>(region) + sizeof(BareRingHeader)),
        mask_(g.capacity - 1),
        capacity_(g.capacity),
        stride_(g.stride()),
        msg_bytes_(g.msg_bytes),
        // relaxed: only this producer ever stores write_idx.
        write_idx_(hdr_->write_idx.load(std::memory_order_relaxed)),
        cached_read_(hdr_->read_idx.load(std::memory_order_acquire)) {}
  BareProducer(const BareProducer&) = delete;
  BareProducer& operator=(const BareProducer&) = delete;

  // Copies msg_bytes from `msg` into the next slot; false (nothing written) when full.
  [[nodiscard]] bool try_push(const void* msg) noexcept {
    const uint64_t w = write_idx_;
    // cached_read_ is the consumer's read_idx as last seen: a lower bound of the real one, so
    // "not full" by it is true; only a full-looking ring pays for the shared cache line.
    if (w - cached_read_ == capacity_) {
      // SYNC POINT (acquire) pairs with the consumer's release store of read_idx: the consumer
      // has finished copying every slot below it out, so they may be overwritten.
      cached_read_ = hdr_->read_idx.load(std::memory_order_acquire);
      if (w - cached_read_ == capacity_) return false;
    }
    std::memcpy(slots_ + (w & mask_) * stride_, msg, msg_bytes_);
    // SYNC POINT (release) publishes the slot bytes above to the consumer's acquire load.
    hdr_->write_idx.store(w + 1, std::memory_order_release);
    write_idx_ = w + 1;
    return true;
  }

 private:
  BareRingHeader* hdr_;
  std::byte* slots_;
  uint64_t mask_;
  uint64_t capacity_;
  size_t stride_;
  size_t msg_bytes_;
  uint64_t write_idx_;    // our own cursor, kept in a register-friendly local copy
  uint64_t cached_read_;  // consumer cursor cache: avoids reading its line on every push
};

class BareConsumer {
 public:
  // REQUIRES: `region` holds a ring made by bare_ring_init() with the same geometry.
  BareConsumer(void* region, const BareRingGeometry& g)
      : hdr_(static_cast<BareRingHeader*>(region)),
        slots_(static_cast<std::byte*>(region) + sizeof(BareRingHeader)),
        mask_(g.capacity - 1),
        stride_(g.stride()),
        msg_bytes_(g.msg_bytes),
        // relaxed: only this consumer ever stores read_idx.
        read_idx_(hdr_->read_idx.load(std::memory_order_relaxed)),
        cached_write_(hdr_->write_idx.load(std::memory_order_acquire)) {}
  BareConsumer(const BareConsumer&) = delete;
  BareConsumer& operator=(const BareConsumer&) = delete;

  // Copies the oldest message into `out` (msg_bytes long); false when empty.
  [[nodiscard]] bool try_pop(void* out) noexcept {
    const uint64_t r = read_idx_;
    // cached_write_ is a lower bound of the producer's write_idx: "not empty" by it is true.
    if (r == cached_write_) {
      // SYNC POINT (acquire) pairs with the producer's release store of write_idx: the slot
      // bytes below it are complete and visible.
      cached_write_ = hdr_->write_idx.load(std::memory_order_acquire);
      if (r == cached_write_) return false;
    }
    std::memcpy(out, slots_ + (r & mask_) * stride_, msg_bytes_);
    // SYNC POINT (release): the copy out above is done before the producer may reuse the slot.
    hdr_->read_idx.store(r + 1, std::memory_order_release);
    read_idx_ = r + 1;
    return true;
  }

 private:
  BareRingHeader* hdr_;
  std::byte* slots_;
  uint64_t mask_;
  size_t stride_;
  size_t msg_bytes_;
  uint64_t read_idx_;      // our own cursor
  uint64_t cached_write_;  // producer cursor cache: avoids reading its line on every pop
};

}  // namespace evring::bench
