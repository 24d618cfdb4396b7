// envelope_hot.h: the inline hashes of the publish and poll paths must be xxHash's XXH3-64 for
// every length (XXH3 switches algorithm at 16, 128 and 240 bytes), or every checksum a producer
// writes, and every key hash a consumer rebuilds, would be wrong.
#include <xxhash.h>

#include <cstddef>
#include <cstdint>

// The library's XXH3, bound before envelope_hot.h renames XXH3_64bits to its inline copy.
static XXH64_hash_t library_xxh3(const void* data, std::size_t len) {
  return XXH3_64bits(data, len);
}

#include "evring/codec/envelope_hot.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace evring {
namespace {

TEST(EnvelopeHotTest, InlineHashesAreXxh3AtEveryLength) {
  std::vector<std::byte> bytes(320);
  std::uint64_t x = 0x243F6A8885A308D3ull;
  for (auto& b : bytes) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    b = static_cast<std::byte>(x >> 56);
  }
  for (std::size_t len = 0; len <= bytes.size(); ++len) {
    const std::span<const std::byte> s(bytes.data(), len);
    const std::uint64_t want = library_xxh3(s.data(), s.size());
    ASSERT_EQ(hot::payload_hash(s), want) << "length " << len;
    ASSERT_EQ(hot::entity_key_hash(s), want) << "length " << len;
    ASSERT_EQ(payload_hash(s), want) << "length " << len;
    ASSERT_EQ(entity_key_hash(s), want) << "length " << len;
  }
  const std::string key = "p0-k3";
  EXPECT_EQ(hot::entity_key_hash(std::string_view(key)), library_xxh3(key.data(), key.size()));
}

// The inline check computes the checksum from the words with the checksum field masked in a
// register: it must accept what encode_envelope sealed and refuse a changed checksum field.
TEST(EnvelopeHotTest, DecodeHeaderWordsChecksTheChecksumField) {
  const std::string key = "key-7", payload = "{\"n\":1}";
  EnvelopeHeader in{};
  in.type_id = 3;
  in.timestamp_ns = 1'700'000'000'000'000'000ull;
  in.entity_key_hash = entity_key_hash(key);
  std::vector<std::byte> bytes(envelope_bytes(key.size(), payload.size()));
  encode_envelope(bytes, in, std::as_bytes(std::span(key)), std::as_bytes(std::span(payload)));
  EnvelopeHeader h;
  std::memcpy(&h, bytes.data(), sizeof h);
  HeaderWords words = pack_header(h);
  const std::span<const std::byte> body(bytes.data() + 128, bytes.size() - 128);
  EnvelopeView v;
  ASSERT_EQ(hot::decode_header_words(words, body, &v), EnvelopeCheck::kOk);
  EXPECT_EQ(v.header.checksum, h.checksum);
  EXPECT_EQ(v.key.size(), key.size());
  EXPECT_EQ(v.payload.size(), payload.size());
  words.w[15] ^= std::uint64_t{1} << 32;  // the checksum's lowest bit
  EXPECT_EQ(hot::decode_header_words(words, body, &v), EnvelopeCheck::kBadChecksum);
  words.w[15] ^= std::uint64_t{1} << 32 | 1;  // restored; origin_host's lowest bit instead
  EXPECT_EQ(hot::decode_header_words(words, body, &v), EnvelopeCheck::kBadChecksum);
}

}  // namespace
}  // namespace evring
