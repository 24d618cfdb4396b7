// Golden layout test for the event envelope (codec/envelope.h, codec/FORMAT.md).
//
// The expected bytes are built here one by one, little-endian, from the documented table, never
// from EnvelopeHeader: a change to the struct, the field order, the byte order or the checksum
// chain fails this test. If the change is intended, bump kEnvelopeFormatVersion and update the
// constants below together.
#include <gtest/gtest.h>
#include <xxhash.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "evring/codec/envelope.h"

namespace evring {
namespace {

TEST(EnvelopeGoldenTest, FormatVersionAndHeaderSizeAreFrozen) {
  EXPECT_EQ(kEnvelopeFormatVersion, 3);
  EXPECT_EQ(kEnvelopeHeaderBytes, 128);
  EXPECT_EQ(sizeof(EnvelopeHeader), 128u);
  EXPECT_EQ(envelope_bytes(3, 5), 136u);
}

class Golden {
 public:
  void put(std::size_t off, std::uint64_t value, std::size_t size) {
    for (std::size_t i = 0; i < size; ++i) {
      ASSERT_FALSE(written_[off + i]) << "field overlap at byte " << off + i;
      written_[off + i] = true;
      bytes_[off + i] = static_cast<std::uint8_t>(value >> (8 * i));  // little-endian
    }
  }
  void put_bytes(std::size_t off, const std::array<std::uint8_t, 16>& b) {
    for (std::size_t i = 0; i < 16; ++i) put(off + i, b[i], 1);
  }
  const std::array<std::uint8_t, 128>& bytes() const { return bytes_; }
  bool all_written() const {
    for (bool w : written_)
      if (!w) return false;
    return true;
  }

 private:
  std::array<std::uint8_t, 128> bytes_{};
  std::array<bool, 128> written_{};
};

std::array<std::uint8_t, 16> seq16(std::uint8_t first) {
  std::array<std::uint8_t, 16> a{};
  for (int i = 0; i < 16; ++i) a[i] = static_cast<std::uint8_t>(first + i);
  return a;
}

TEST(EnvelopeGoldenTest, EncodedHeaderMatchesTheDocumentedBytes) {
  const std::string key = "order-42";
  const std::string payload = "{\"total\":12}";

  EnvelopeHeader h{};
  h.type_id = 0x0102;
  h.schema_version = 0x0304;
  h.producer_id = 0x0506;
  h.classification = 0x03;
  h.content_type = 0x01;
  h.flags = 0x000A;
  h.key_id = 0x0B0C;
  h.timestamp_ns = 0x1112131415161718ull;
  h.sequence = 0x2122232425262728ull;
  h.event_id.bytes = seq16(0x30);
  h.idempotency_key.bytes = seq16(0x40);
  h.correlation_id.bytes = seq16(0x50);
  h.causation_id.bytes = seq16(0x60);
  h.entity_key_hash = 0x7172737475767778ull;
  h.entity_revision = 0x8182838485868788ull;
  h.origin_host = 0x91929394;

  Golden g;
  g.put(0, 3, 2);                         // format_version
  g.put(2, 128, 2);                       // header_bytes
  g.put(4, 0x0102, 2);                    // type_id
  g.put(6, 0x0304, 2);                    // schema_version
  g.put(8, 0x0506, 2);                    // producer_id
  g.put(10, 0x03, 1);                     // classification
  g.put(11, 0x01, 1);                     // content_type
  g.put(12, 0x000A, 2);                   // flags
  g.put(14, 0x0B0C, 2);                   // key_id
  g.put(16, 0x1112131415161718ull, 8);    // timestamp_ns
  g.put(24, 0x2122232425262728ull, 8);    // sequence
  g.put_bytes(32, seq16(0x30));           // event_id (canonical byte order, as stored)
  g.put_bytes(48, seq16(0x40));           // idempotency_key
  g.put_bytes(64, seq16(0x50));           // correlation_id
  g.put_bytes(80, seq16(0x60));           // causation_id
  g.put(96, 0x7172737475767778ull, 8);    // entity_key_hash
  g.put(104, 0x8182838485868788ull, 8);   // entity_revision
  g.put(112, payload.size(), 4);          // payload_bytes
  g.put(116, key.size(), 2);              // entity_key_bytes
  g.put(118, 0, 2);                       // reserved
  g.put(120, 0x91929394, 4);              // origin_host
  g.put(124, 0, 4);                       // checksum: compared separately below
  ASSERT_TRUE(g.all_written()) << "the table must cover all 128 bytes";

  std::vector<std::byte> out(128 + key.size() + payload.size());
  ASSERT_EQ(encode_envelope(out, h, std::as_bytes(std::span(key.data(), key.size())),
                            std::as_bytes(std::span(payload.data(), payload.size()))),
            out.size());

  for (std::size_t i = 0; i < 124; ++i)
    EXPECT_EQ(static_cast<std::uint8_t>(out[i]), g.bytes()[i]) << "header byte " << i;
  EXPECT_EQ(std::memcmp(out.data() + 128, key.data(), key.size()), 0) << "key follows the header";
  EXPECT_EQ(std::memcmp(out.data() + 128 + key.size(), payload.data(), payload.size()), 0)
      << "payload follows the key";

  // checksum (format 3) = low32(XXH3(header') ^ rotl(XXH3(key), 21) ^ rotl(XXH3(payload), 42))
  // where header' is the 128 header bytes with the checksum field zero (the table above).
  std::string body = key + payload;
  auto rotl = [](std::uint64_t x, int r) { return x << r | x >> (64 - r); };
  const std::uint32_t expected = static_cast<std::uint32_t>(
      XXH3_64bits(g.bytes().data(), 128) ^ rotl(XXH3_64bits(key.data(), key.size()), 21) ^
      rotl(XXH3_64bits(payload.data(), payload.size()), 42));
  const std::uint32_t stored = static_cast<std::uint32_t>(out[124]) |
                               static_cast<std::uint32_t>(out[125]) << 8 |
                               static_cast<std::uint32_t>(out[126]) << 16 |
                               static_cast<std::uint32_t>(out[127]) << 24;
  EXPECT_EQ(stored, expected);

  // And the hand-built bytes (with that checksum) decode as a valid envelope.
  std::vector<std::byte> hand(out.size());
  std::memcpy(hand.data(), g.bytes().data(), 124);
  for (int i = 0; i < 4; ++i) hand[124 + i] = static_cast<std::byte>(expected >> (8 * i));
  std::memcpy(hand.data() + 128, body.data(), body.size());
  EnvelopeView v;
  ASSERT_EQ(decode_envelope(hand, &v), EnvelopeCheck::kOk);
  EXPECT_EQ(v.header.sequence, 0x2122232425262728ull);
  EXPECT_EQ(v.key_text(), key);
  EXPECT_EQ(v.payload_text(), payload);
}

}  // namespace
}  // namespace evring
