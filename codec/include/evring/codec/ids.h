#pragma once
// 128-bit identifiers: event ids (UUIDv7, time-ordered), idempotency keys, W3C trace-ids used as
// correlation ids, causation ids. Stored in the envelope as 16 bytes in canonical (big-endian,
// RFC 9562) byte order, so a byte-wise compare of two UUIDv7 ids orders them by time.
#include <array>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "evring/codec/status.h"

namespace evring {

struct Id128 {
  std::array<std::uint8_t, 16> bytes{};

  // Two 8-byte loads: called up to three times per publish (idempotency, correlation, causation).
  bool is_zero() const {
    std::uint64_t lo, hi;
    std::memcpy(&lo, bytes.data(), 8);
    std::memcpy(&hi, bytes.data() + 8, 8);
    return (lo | hi) == 0;
  }
  friend bool operator==(const Id128&, const Id128&) = default;
  friend auto operator<=>(const Id128&, const Id128&) = default;

  // 8-4-4-4-12 lowercase hex, as UUIDs are written.
  std::string to_uuid_string() const;
  // 32 lowercase hex digits, as W3C trace-ids are written.
  std::string to_hex() const;
  // Milliseconds since the Unix epoch of a UUIDv7 (0 if this is not a v7 id).
  std::uint64_t uuid7_unix_ms() const;
  std::uint64_t low64() const;  // last 8 bytes, for hashing / bloom probes

  // Accepts 32 hex digits, with or without the four UUID dashes, any case.
  static Result<Id128> parse(std::string_view text);
  // A W3C trace-id: 32 hex digits, not all zero.
  static Result<Id128> parse_trace_id(std::string_view text);
  // Derives a key from arbitrary text: a text that parses as an id is that id, anything else
  // is its xxh3-128 hash (so "order-42" always maps to the same key in every process).
  static Id128 from_key_text(std::string_view text);
};

// Generates UUIDv7 event ids and random W3C trace-ids. Not thread-safe: one per producer handle.
// Ids from one generator are strictly increasing (RFC 9562 method 1: a 12-bit counter in rand_a,
// re-seeded each millisecond; on counter overflow the timestamp is advanced by one ms).
class IdGenerator {
 public:
  IdGenerator();  // seeds from getrandom()
  explicit IdGenerator(std::uint64_t seed);
  // Inline, as the clock: one per publish (core/src/producer.cpp, EVRING_PUBLISH_PATH).
  Id128 next_event_id(std::uint64_t unix_ns) {
    std::uint64_t ms = unix_ns / 1'000'000;
    if (ms > last_ms_) {
      last_ms_ = ms;
      counter_ = static_cast<std::uint32_t>(next_random() & 0x3FF);  // headroom to count up
    } else if (++counter_ > 0xFFF) {
      ++last_ms_;  // counter exhausted within one ms: borrow the next ms, stay monotonic
      counter_ = 0;
    }
    const std::uint64_t r = next_random();
    // Big-endian words: 48-bit ms, version 7 + 12-bit counter | variant 10 + 62 random bits.
    // Built as two 64-bit stores: byte stores followed by a 16-byte copy of the id stalled the
    // publish path on store forwarding.
    const std::uint64_t hi =
        (last_ms_ & 0xFFFF'FFFF'FFFFull) << 16 | 0x7000u | (counter_ & 0xFFFu);
    const std::uint64_t lo = (r & 0x3FFF'FFFF'FFFF'FFFFull) | 0x8000'0000'0000'0000ull;
    const std::uint64_t words[2] = {__builtin_bswap64(hi), __builtin_bswap64(lo)};
    Id128 id;
    std::memcpy(id.bytes.data(), words, sizeof words);
    return id;
  }
  Id128 next_trace_id();  // never all zero

 private:
  std::uint64_t next_random() {  // xorshift128+
    std::uint64_t s1 = s_[0];
    const std::uint64_t s0 = s_[1];
    s_[0] = s0;
    s1 ^= s1 << 23;
    s_[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
    return s_[1] + s0;
  }
  std::uint64_t s_[2];
  std::uint64_t last_ms_ = 0;
  std::uint32_t counter_ = 0;
};

// Realtime clock in ns since the Unix epoch (vDSO, ~20 ns).
std::uint64_t unix_now_ns();

}  // namespace evring
