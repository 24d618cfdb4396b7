#pragma once
// The event envelope: one fixed-layout binary header, then the entity key, then the payload.
// Byte-exact and little-endian; see codec/FORMAT.md for the prose version.
//
//  0               8               16              24              32
//  +-------+-------+-------+-------+-------+-------+-------+-------+
//  |fv |hb |tid|sv |pid|c|t|flg|kid| timestamp_ns  | sequence      |   0..31
//  +---------------------------------------------------------------+
//  | event_id (16)                 | idempotency_key (16)          |  32..63
//  | correlation_id (16)           | causation_id (16)             |  64..95
//  | entity_key_hash | revision    |plen |kl |rsv|origin |checksum |  96..127
//  +---------------------------------------------------------------+
//  | entity key (entity_key_bytes) | payload (payload_bytes)       | 128..
//
// | off | size | field            | meaning                                                   |
// |-----|------|------------------|-----------------------------------------------------------|
// |   0 |    2 | format_version   | kEnvelopeFormatVersion; bump on any incompatible change   |
// |   2 |    2 | header_bytes     | offset of the key; a newer writer may append fields, an   |
// |     |      |                  | older reader skips them (forward compatible)              |
// |   4 |    2 | type_id          | index+1 into the bus's event-type table (0 = invalid)     |
// |   6 |    2 | schema_version   | version of the type's schema the payload follows          |
// |   8 |    2 | producer_id      | index+1 into the bus's producer registry                  |
// |  10 |    1 | classification   | Classification: public/internal/confidential/restricted   |
// |  11 |    1 | content_type     | ContentType: raw, json, schema-encoded                    |
// |  12 |    2 | flags            | EnvelopeFlag bits: encrypted, redacted, bridged-in, ...   |
// |  14 |    2 | key_id           | encryption key id for encrypted PHI fields, 0 = none      |
// |  16 |    8 | timestamp_ns     | when the fact was recorded, ns since the Unix epoch       |
// |  24 |    8 | sequence         | the partition sequence the ring gave this event           |
// |  32 |   16 | event_id         | UUIDv7, canonical byte order (time-ordered)               |
// |  48 |   16 | idempotency_key  | dedup key; defaults to event_id                           |
// |  64 |   16 | correlation_id   | W3C trace-id                                              |
// |  80 |   16 | causation_id     | event_id of the cause, or zero                            |
// |  96 |    8 | entity_key_hash  | xxh3-64 of the entity key (also picks the partition)      |
// | 104 |    8 | entity_revision  | optional per-entity revision (kHasRevision flag), else 0  |
// | 112 |    4 | payload_bytes    | payload length                                            |
// | 116 |    2 | entity_key_bytes | key length                                                |
// | 118 |    2 | reserved         | zero                                                      |
// | 120 |    4 | origin_host      | host id of a bridged-in event (kBridgedIn), else 0        |
// | 124 |    4 | checksum         | see "Checksum" below                                      |
//
// Checksum (format 3): the low 32 bits of
//   XXH3_64bits(header') ^ rotl(XXH3_64bits(key), 21) ^ rotl(XXH3_64bits(payload), 42)
// where header' is the 128 header bytes with the checksum field zero. Each piece is hashed
// from where it lies, so a producer hashes its header from the sixteen words it is about to
// store (HeaderWords) and the key and payload from the caller's buffers, and never reads back
// bytes it has just stored with narrower stores (a load that straddles stores waits for every
// older store to leave the store buffer, and those are the slot stores still waiting for the
// consumer's core to give their cache lines up). The three hashes are independent, so their
// multiply chains run side by side, and the key's is the entity_key_hash() a producer computed
// to pick the partition. Format 2 seeded each hash with the one before, three passes in
// series: ~20 ns where format 3 takes ~9 (AMD Zen 5, 128 + 8 + 64 bytes). Format 1 hashed
// bytes 0..123 and key ‖ payload as one piece, bytes the producer had just stored. The rotations
// keep a key and a payload of one length from cancelling when swapped.
//
// A reader validates every length and the checksum before it trusts a byte (validate()).
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <type_traits>

#include "evring/codec/ids.h"

namespace evring {

static_assert(std::endian::native == std::endian::little,
              "the envelope is little-endian and written with memcpy: big-endian hosts would "
              "need byte swaps in encode/decode");

// 3: the checksum combines three independent xxh3 hashes (header with its checksum field zero,
// key, payload); 2 chained them. A reader refuses any other version as unknown.
inline constexpr std::uint16_t kEnvelopeFormatVersion = 3;
inline constexpr std::uint16_t kEnvelopeHeaderBytes = 128;

enum class Classification : std::uint8_t {
  kPublic = 0,
  kInternal = 1,
  kConfidential = 2,
  kRestricted = 3,  // PHI: must be encrypted or redacted
};
enum class ContentType : std::uint8_t { kRaw = 0, kJson = 1, kSchema = 2 };
enum EnvelopeFlag : std::uint16_t {
  kEncrypted = 1u << 0,
  kRedacted = 1u << 1,
  kBridgedIn = 1u << 2,
  kHasRevision = 1u << 3,
};

std::string_view classification_name(Classification c);
Result<Classification> parse_classification(std::string_view text);
std::string_view content_type_name(ContentType t);

struct EnvelopeHeader {
  std::uint16_t format_version;
  std::uint16_t header_bytes;
  std::uint16_t type_id;
  std::uint16_t schema_version;
  std::uint16_t producer_id;
  std::uint8_t classification;
  std::uint8_t content_type;
  std::uint16_t flags;
  std::uint16_t key_id;
  std::uint64_t timestamp_ns;
  std::uint64_t sequence;
  Id128 event_id;
  Id128 idempotency_key;
  Id128 correlation_id;
  Id128 causation_id;
  std::uint64_t entity_key_hash;
  std::uint64_t entity_revision;
  std::uint32_t payload_bytes;
  std::uint16_t entity_key_bytes;
  std::uint16_t reserved;
  std::uint32_t origin_host;
  std::uint32_t checksum;
};

// Layout guards: a change to any of these is a format change (bump kEnvelopeFormatVersion and
// update tests/codec/envelope_golden_test.cpp).
static_assert(std::is_standard_layout_v<EnvelopeHeader>);
static_assert(std::is_trivially_copyable_v<EnvelopeHeader>);
static_assert(sizeof(EnvelopeHeader) == kEnvelopeHeaderBytes);
static_assert(alignof(EnvelopeHeader) == 8);
static_assert(offsetof(EnvelopeHeader, format_version) == 0);
static_assert(offsetof(EnvelopeHeader, header_bytes) == 2);
static_assert(offsetof(EnvelopeHeader, type_id) == 4);
static_assert(offsetof(EnvelopeHeader, schema_version) == 6);
static_assert(offsetof(EnvelopeHeader, producer_id) == 8);
static_assert(offsetof(EnvelopeHeader, classification) == 10);
static_assert(offsetof(EnvelopeHeader, content_type) == 11);
static_assert(offsetof(EnvelopeHeader, flags) == 12);
static_assert(offsetof(EnvelopeHeader, key_id) == 14);
static_assert(offsetof(EnvelopeHeader, timestamp_ns) == 16);
static_assert(offsetof(EnvelopeHeader, sequence) == 24);
static_assert(offsetof(EnvelopeHeader, event_id) == 32);
static_assert(offsetof(EnvelopeHeader, idempotency_key) == 48);
static_assert(offsetof(EnvelopeHeader, correlation_id) == 64);
static_assert(offsetof(EnvelopeHeader, causation_id) == 80);
static_assert(offsetof(EnvelopeHeader, entity_key_hash) == 96);
static_assert(offsetof(EnvelopeHeader, entity_revision) == 104);
static_assert(offsetof(EnvelopeHeader, payload_bytes) == 112);
static_assert(offsetof(EnvelopeHeader, entity_key_bytes) == 116);
static_assert(offsetof(EnvelopeHeader, reserved) == 118);
static_assert(offsetof(EnvelopeHeader, origin_host) == 120);
static_assert(offsetof(EnvelopeHeader, checksum) == 124);
static_assert(sizeof(Id128) == 16 && alignof(Id128) == 1);

// The header as its sixteen little-endian 64-bit wire words (the byte table above), built from
// the fields in registers: word i is bytes 8i..8i+7. A producer stores these words, never a
// byte-wise copy of an EnvelopeHeader it has just filled.
struct HeaderWords {
  std::uint64_t w[16];
};
static_assert(sizeof(HeaderWords) == kEnvelopeHeaderBytes);

inline HeaderWords pack_header(const EnvelopeHeader& h) {
  // Every field is read at its own width (volatile keeps the compiler from merging neighbours
  // into one wide load): the header was usually just filled field by field, and a load that
  // spans several pending stores cannot be forwarded from them.
  auto get = [](const auto& field) {
    return static_cast<std::uint64_t>(
        static_cast<const volatile std::remove_reference_t<decltype(field)>&>(field));
  };
  auto id_word = [](const Id128& id, int half) {
    std::uint64_t v;
    std::memcpy(&v, id.bytes.data() + 8 * half, 8);
    asm volatile("" : "+r"(v));  // one 8-byte load into a register, not half of a 16-byte one
    return v;
  };
  HeaderWords o;
  o.w[0] = get(h.format_version) | get(h.header_bytes) << 16 | get(h.type_id) << 32 |
           get(h.schema_version) << 48;
  o.w[1] = get(h.producer_id) | get(h.classification) << 16 | get(h.content_type) << 24 |
           get(h.flags) << 32 | get(h.key_id) << 48;
  o.w[2] = get(h.timestamp_ns);
  o.w[3] = get(h.sequence);
  o.w[4] = id_word(h.event_id, 0);
  o.w[5] = id_word(h.event_id, 1);
  o.w[6] = id_word(h.idempotency_key, 0);
  o.w[7] = id_word(h.idempotency_key, 1);
  o.w[8] = id_word(h.correlation_id, 0);
  o.w[9] = id_word(h.correlation_id, 1);
  o.w[10] = id_word(h.causation_id, 0);
  o.w[11] = id_word(h.causation_id, 1);
  o.w[12] = get(h.entity_key_hash);
  o.w[13] = get(h.entity_revision);
  o.w[14] = get(h.payload_bytes) | get(h.entity_key_bytes) << 32 | get(h.reserved) << 48;
  o.w[15] = get(h.origin_host) | get(h.checksum) << 32;
  return o;
}
inline constexpr std::uint64_t kChecksumWordMask = 0x0000'0000'FFFF'FFFFull;  // word 15 sans checksum

// XXH3_64bits of the 128 bytes that `h` holds, computed from the sixteen words as values rather
// than read back from memory: a producer that builds its header in registers hashes it without
// storing it anywhere first (core/src/producer.cpp, write_event). It is xxHash's 17..128-byte
// path (XXH3_len_17to128_64b) at exactly 128 bytes, default secret, seed 0: eight 16-byte
// chunks, each folded 128-bit product of (chunk ^ secret), summed and avalanched. Equal to the
// library's result for every input (envelope_test checks it against XXH3_64bits). The header is
// hashed with its checksum field zero: a caller whose word 15 carries one passes word 15 masked
// (kChecksumWordMask) as `word15`, which stands in for h.w[15].
inline std::uint64_t header_words_hash(const HeaderWords& h, std::uint64_t word15) {
  static_assert(std::endian::native == std::endian::little,
                "the words are the header's little-endian bytes");
  // XXH3's default secret (xxhash.h, XXH3_kSecret), its first 128 bytes as little-endian words.
  constexpr std::uint64_t s[16] = {
      0xbe4ba423396cfeb8, 0x1cad21f72c81017c, 0xdb979083e96dd4de, 0x1f67b3b7a4a44072,
      0x78e5c0cc4ee679cb, 0x2172ffcc7dd05a82, 0x8e2443f7744608b8, 0x4c263a81e69035e0,
      0xcb00c391bb52283c, 0xa32e531b8b65d088, 0x4ef90da297486471, 0xd8acdea946ef1938,
      0x3f349ce33f76faa8, 0x1d4f0bc7c7bbdcf9, 0x3159b4cd4be0518a, 0x647378d9c97e9fc8};
  __extension__ typedef unsigned __int128 U128;  // g++ and clang; -Wpedantic otherwise
  auto mix = [](std::uint64_t lo, std::uint64_t hi, std::uint64_t s_lo, std::uint64_t s_hi) {
    const U128 m = static_cast<U128>(lo ^ s_lo) * (hi ^ s_hi);
    return static_cast<std::uint64_t>(m) ^ static_cast<std::uint64_t>(m >> 64);
  };
  const std::uint64_t* w = h.w;
  // Chunk k of the input is words 2k and 2k+1; XXH3 pairs the chunks from both ends with
  // consecutive secret chunks: 0 and 7, 1 and 6, 2 and 5, 3 and 4.
  std::uint64_t acc = 128 * 0x9E3779B185EBCA87ull;  // len * XXH_PRIME64_1
  acc += mix(w[6], w[7], s[12], s[13]) + mix(w[8], w[9], s[14], s[15]);
  acc += mix(w[4], w[5], s[8], s[9]) + mix(w[10], w[11], s[10], s[11]);
  acc += mix(w[2], w[3], s[4], s[5]) + mix(w[12], w[13], s[6], s[7]);
  acc += mix(w[0], w[1], s[0], s[1]) + mix(w[14], word15, s[2], s[3]);
  acc ^= acc >> 37;  // XXH3_avalanche
  acc *= 0x165667919E3779F9ull;
  return acc ^ (acc >> 32);
}
inline std::uint64_t header_words_hash(const HeaderWords& h) {
  return header_words_hash(h, h.w[15]);
}

// XXH3_64bits of a payload: its part of the checksum. (Inline for the hot paths: envelope_hot.h.)
std::uint64_t payload_hash(std::span<const std::byte> payload);

// The checksum from its three parts ("Checksum" above): the header's words hashed with the
// checksum field zero, the key's entity_key_hash(), the payload's payload_hash().
inline std::uint32_t combine_checksum(std::uint64_t header_hash, std::uint64_t key_hash,
                                      std::uint64_t payload_hash) {
  return static_cast<std::uint32_t>(header_hash ^ std::rotl(key_hash, 21) ^
                                    std::rotl(payload_hash, 42));
}

// The checksum of a header (its checksum field is ignored), key and payload ("Checksum" above).
std::uint32_t envelope_checksum(const HeaderWords& header, std::span<const std::byte> key,
                                std::span<const std::byte> payload);
// The same, for a caller that has the key's entity_key_hash() already (a producer: it picked
// the partition with it). REQUIRES: key_hash == entity_key_hash(key).
std::uint32_t envelope_checksum(const HeaderWords& header, std::uint64_t key_hash,
                                std::span<const std::byte> payload);

inline constexpr std::size_t envelope_bytes(std::size_t key_bytes, std::size_t payload_bytes) {
  return kEnvelopeHeaderBytes + key_bytes + payload_bytes;
}

// xxh3-64 of an entity key: the partition picker and envelope field.
std::uint64_t entity_key_hash(std::span<const std::byte> key);
inline std::uint64_t entity_key_hash(std::string_view key) {
  return entity_key_hash(std::as_bytes(std::span(key.data(), key.size())));
}

// Writes header (with format_version, header_bytes, lengths and checksum filled in), key and
// payload into `out`. REQUIRES: out.size() >= envelope_bytes(key.size(), payload.size()),
// key.size() <= 65535, payload.size() <= UINT32_MAX. Returns the bytes written.
std::size_t encode_envelope(std::span<std::byte> out, const EnvelopeHeader& header,
                            std::span<const std::byte> key, std::span<const std::byte> payload);

// Recomputes and stores the checksum of an envelope whose header, key and payload are in place
// (zero-copy publish writes the payload directly, then seals).
void seal_envelope(std::span<std::byte> envelope);

enum class EnvelopeCheck : std::uint8_t {
  kOk = 0,
  kTruncated,       // fewer bytes than a header
  kBadVersion,      // format_version unknown
  kBadHeaderSize,   // header_bytes < 128 or beyond the buffer
  kBadLength,       // header + key + payload exceed the buffer
  kBadChecksum,
};
std::string_view describe(EnvelopeCheck check);

// A validated envelope: header copied out, key and payload pointing into the buffer.
struct EnvelopeView {
  EnvelopeHeader header;
  std::span<const std::byte> key;
  std::span<const std::byte> payload;
  std::string_view key_text() const {
    return {reinterpret_cast<const char*>(key.data()), key.size()};
  }
  std::string_view payload_text() const {
    return {reinterpret_cast<const char*>(payload.data()), payload.size()};
  }
};

// Validates lengths and checksum of untrusted bytes. Allocation-free; hot-path safe.
EnvelopeCheck decode_envelope(std::span<const std::byte> bytes, EnvelopeView* out);

// The same checks for an envelope whose 128-byte header is given as words and whose key and
// payload are `body` (a consumer's expansion of a compact slot, core/ring_region.h): no header
// bytes to load back, and the key hashed once. REQUIRES: words.w[12] (entity_key_hash) was
// computed from the key bytes at the front of `body` (the checksum then covers them through it).
// The poll path uses its inline twin, hot::decode_header_words (envelope_hot.h).
EnvelopeCheck decode_header_words(const HeaderWords& words, std::span<const std::byte> body,
                                  EnvelopeView* out);

}  // namespace evring
