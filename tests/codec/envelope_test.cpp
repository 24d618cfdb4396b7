// Unit tests for evring/codec/envelope.h: encode/decode round trip and validation of untrusted
// bytes (every single-byte corruption of a small envelope must be caught).
#include "evring/codec/envelope.h"

#include <gtest/gtest.h>
#include <xxhash.h>

#include <cstring>
#include <set>
#include <string>
#include <vector>

namespace evring {
namespace {

std::span<const std::byte> bytes_of(std::string_view s) {
  return std::as_bytes(std::span(s.data(), s.size()));
}

Id128 id_of(const char* hex) { return Id128::parse(hex).value(); }

// A header with a distinct value in every field.
EnvelopeHeader sample_header() {
  EnvelopeHeader h{};
  h.type_id = 0x1234;
  h.schema_version = 0x0203;
  h.producer_id = 0x0405;
  h.classification = static_cast<std::uint8_t>(Classification::kConfidential);
  h.content_type = static_cast<std::uint8_t>(ContentType::kJson);
  h.flags = kHasRevision | kBridgedIn;
  h.key_id = 0x0607;
  h.timestamp_ns = 0x1122334455667788ull;
  h.sequence = 0x99AABBCCDDEEFF00ull;
  h.event_id = id_of("0189abcd-ef01-7234-8567-89abcdef0123");
  h.idempotency_key = id_of("11111111-2222-3333-4444-555555555555");
  h.correlation_id = id_of("4bf92f3577b34da6a3ce929d0e0e4736");
  h.causation_id = id_of("0189abcd-ef00-7000-8000-000000000001");
  h.entity_key_hash = 0xCAFEBABEDEADBEEFull;
  h.entity_revision = 77;
  h.origin_host = 0xA0B0C0D0;
  return h;
}

std::vector<std::byte> encode(const EnvelopeHeader& h, std::string_view key,
                              std::string_view payload) {
  std::vector<std::byte> out(envelope_bytes(key.size(), payload.size()));
  std::size_t n = encode_envelope(out, h, bytes_of(key), bytes_of(payload));
  EXPECT_EQ(n, out.size());
  return out;
}

TEST(EnvelopeTest, RoundTripsEveryField) {
  EnvelopeHeader in = sample_header();
  in.format_version = 999;  // encode owns these four
  in.header_bytes = 7;
  in.payload_bytes = 1;
  in.entity_key_bytes = 1;
  in.reserved = 0xFFFF;
  const std::string key = "conversation-42", payload = "{\"text\":\"hello\"}";
  auto bytes = encode(in, key, payload);
  ASSERT_EQ(bytes.size(), 128 + key.size() + payload.size());

  EnvelopeView v;
  ASSERT_EQ(decode_envelope(bytes, &v), EnvelopeCheck::kOk);
  const EnvelopeHeader& h = v.header;
  EXPECT_EQ(h.format_version, kEnvelopeFormatVersion);
  EXPECT_EQ(h.header_bytes, kEnvelopeHeaderBytes);
  EXPECT_EQ(h.type_id, in.type_id);
  EXPECT_EQ(h.schema_version, in.schema_version);
  EXPECT_EQ(h.producer_id, in.producer_id);
  EXPECT_EQ(h.classification, in.classification);
  EXPECT_EQ(h.content_type, in.content_type);
  EXPECT_EQ(h.flags, in.flags);
  EXPECT_EQ(h.key_id, in.key_id);
  EXPECT_EQ(h.timestamp_ns, in.timestamp_ns);
  EXPECT_EQ(h.sequence, in.sequence);
  EXPECT_EQ(h.event_id, in.event_id);
  EXPECT_EQ(h.idempotency_key, in.idempotency_key);
  EXPECT_EQ(h.correlation_id, in.correlation_id);
  EXPECT_EQ(h.causation_id, in.causation_id);
  EXPECT_EQ(h.entity_key_hash, in.entity_key_hash);
  EXPECT_EQ(h.entity_revision, in.entity_revision);
  EXPECT_EQ(h.payload_bytes, payload.size());
  EXPECT_EQ(h.entity_key_bytes, key.size());
  EXPECT_EQ(h.reserved, 0);
  EXPECT_EQ(h.origin_host, in.origin_host);
  EXPECT_EQ(v.key_text(), key);
  EXPECT_EQ(v.payload_text(), payload);
  // The views point into the buffer, not into a copy.
  EXPECT_EQ(v.key.data(), bytes.data() + 128);
  EXPECT_EQ(v.payload.data(), bytes.data() + 128 + key.size());
}

TEST(EnvelopeTest, RoundTripsEmptyKeyAndPayload) {
  auto bytes = encode(sample_header(), "", "");
  ASSERT_EQ(bytes.size(), 128u);
  EnvelopeView v;
  ASSERT_EQ(decode_envelope(bytes, &v), EnvelopeCheck::kOk);
  EXPECT_TRUE(v.key.empty());
  EXPECT_TRUE(v.payload.empty());
}

TEST(EnvelopeTest, DecodesFromALargerBufferSuchAsASlot) {
  EnvelopeHeader h = sample_header();
  std::vector<std::byte> slot(512, std::byte{0xEE});
  std::size_t n = encode_envelope(slot, h, bytes_of("k"), bytes_of("payload"));
  ASSERT_EQ(n, 128u + 1 + 7);
  EnvelopeView v;
  ASSERT_EQ(decode_envelope(slot, &v), EnvelopeCheck::kOk);
  EXPECT_EQ(v.payload_text(), "payload");
}

TEST(EnvelopeTest, RejectsFewerBytesThanAHeader) {
  auto bytes = encode(sample_header(), "k", "p");
  EnvelopeView v;
  for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{127}})
    EXPECT_EQ(decode_envelope(std::span(bytes).first(n), &v), EnvelopeCheck::kTruncated) << n;
}

TEST(EnvelopeTest, RejectsKeyAndPayloadLongerThanTheBuffer) {
  auto bytes = encode(sample_header(), "key", "payload");
  EnvelopeView v;
  for (std::size_t cut = 1; cut <= 10; ++cut)
    EXPECT_EQ(decode_envelope(std::span(bytes).first(bytes.size() - cut), &v),
              EnvelopeCheck::kBadLength)
        << cut;
  // Lengths that claim more than exists, resealed so only the length check can catch them.
  for (std::uint32_t claimed : {8u, 1000u, 0xFFFFFFFFu}) {
    auto b = bytes;
    std::memcpy(b.data() + offsetof(EnvelopeHeader, payload_bytes), &claimed, 4);
    EXPECT_EQ(decode_envelope(b, &v), EnvelopeCheck::kBadLength) << claimed;
  }
  auto b = bytes;
  std::uint16_t key_len = 0xFFFF;
  std::memcpy(b.data() + offsetof(EnvelopeHeader, entity_key_bytes), &key_len, 2);
  EXPECT_EQ(decode_envelope(b, &v), EnvelopeCheck::kBadLength);
}

TEST(EnvelopeTest, RejectsUnknownFormatVersion) {
  EnvelopeView v;
  const std::uint16_t versions[] = {0, 1, 2, 4, 0xFFFF};  // 1, 2: the older checksums
  for (std::uint16_t version : versions) {
    auto bytes = encode(sample_header(), "k", "p");
    std::memcpy(bytes.data(), &version, 2);
    EXPECT_EQ(decode_envelope(bytes, &v), EnvelopeCheck::kBadVersion) << version;
  }
}

TEST(EnvelopeTest, RejectsHeaderSizeBelowTheHeaderOrBeyondTheBuffer) {
  EnvelopeView v;
  const std::uint16_t sizes[] = {0, 1, 127, 200, 0xFFFF};
  for (std::uint16_t hb : sizes) {
    auto bytes = encode(sample_header(), "k", "p");  // 130 bytes
    std::memcpy(bytes.data() + 2, &hb, 2);
    EXPECT_EQ(decode_envelope(bytes, &v), EnvelopeCheck::kBadHeaderSize) << hb;
  }
}

// A newer writer may append header fields: header_bytes moves the key, the checksum still
// covers the 128 known header bytes, key and payload, and this reader skips the extra bytes.
TEST(EnvelopeTest, SkipsHeaderFieldsAppendedByANewerWriter) {
  const std::string key = "entity", payload = "body";
  std::vector<std::byte> bytes(136 + key.size() + payload.size());
  EnvelopeHeader h = sample_header();
  h.format_version = kEnvelopeFormatVersion;
  h.header_bytes = 136;
  h.entity_key_bytes = static_cast<std::uint16_t>(key.size());
  h.payload_bytes = static_cast<std::uint32_t>(payload.size());
  std::memcpy(bytes.data(), &h, sizeof h);
  std::memset(bytes.data() + 128, 0x5A, 8);
  std::memcpy(bytes.data() + 136, key.data(), key.size());
  std::memcpy(bytes.data() + 136 + key.size(), payload.data(), payload.size());
  seal_envelope(bytes);
  EnvelopeView v;
  ASSERT_EQ(decode_envelope(bytes, &v), EnvelopeCheck::kOk);
  EXPECT_EQ(v.key_text(), key);
  EXPECT_EQ(v.payload_text(), payload);
}

TEST(EnvelopeTest, SealRecomputesTheChecksumAfterAnInPlaceWrite) {
  auto bytes = encode(sample_header(), "key", "payload");
  EnvelopeView v;
  bytes.back() = std::byte{'X'};
  ASSERT_EQ(decode_envelope(bytes, &v), EnvelopeCheck::kBadChecksum);
  seal_envelope(bytes);
  ASSERT_EQ(decode_envelope(bytes, &v), EnvelopeCheck::kOk);
  EXPECT_EQ(v.payload_text(), "payloaX");
}

// Every single-byte corruption of an envelope is refused: header (checksum or a structural
// check), key and payload (checksum), and the checksum field itself.
TEST(EnvelopeTest, RejectsAFlippedByteAtEveryPosition) {
  const auto good = encode(sample_header(), "order-7", "{\"n\":1}");
  EnvelopeView v;
  ASSERT_EQ(decode_envelope(good, &v), EnvelopeCheck::kOk);
  for (std::size_t i = 0; i < good.size(); ++i) {
    const std::uint8_t masks[] = {0x01, 0x80, 0xFF};
    for (std::uint8_t mask : masks) {
      auto bad = good;
      bad[i] ^= std::byte{mask};
      EnvelopeCheck check = decode_envelope(bad, &v);
      EXPECT_NE(check, EnvelopeCheck::kOk) << "byte " << i << " ^ " << int{mask};
      const bool structural = i < 4 || (i >= 112 && i < 118);  // version, sizes, lengths
      if (!structural) {
        EXPECT_EQ(check, EnvelopeCheck::kBadChecksum) << "byte " << i << " ^ " << int{mask};
      }
    }
  }
}

TEST(EnvelopeTest, ChecksumIsTheDocumentedXxh3Combination) {
  const std::string key = "k1", payload = "p1";
  auto bytes = encode(sample_header(), key, payload);
  std::uint32_t stored;
  std::memcpy(&stored, bytes.data() + 124, 4);
  std::vector<std::byte> header(bytes.begin(), bytes.begin() + 128);
  std::memset(header.data() + 124, 0, 4);  // hashed with the checksum field zero
  auto rotl = [](std::uint64_t x, int r) { return x << r | x >> (64 - r); };
  const std::uint64_t full = XXH3_64bits(header.data(), 128) ^
                             rotl(XXH3_64bits(key.data(), key.size()), 21) ^
                             rotl(XXH3_64bits(payload.data(), payload.size()), 42);
  EXPECT_EQ(stored, static_cast<std::uint32_t>(full));
  // The pieces are hashed apart, not concatenated: moving a byte from the key to the payload
  // changes the checksum even though key + payload reads the same, and so does swapping a key
  // and a payload of one length (their hashes are rotated differently).
  auto moved = encode(sample_header(), "k", "1p1");
  std::uint32_t moved_sum;
  std::memcpy(&moved_sum, moved.data() + 124, 4);
  EXPECT_NE(moved_sum, stored);
  auto swapped = encode(sample_header(), payload, key);
  std::uint32_t swapped_sum;
  std::memcpy(&swapped_sum, swapped.data() + 124, 4);
  EXPECT_NE(swapped_sum, stored);
  // And the packed words are the header bytes, word by word.
  EnvelopeHeader h;
  std::memcpy(&h, bytes.data(), sizeof h);
  const HeaderWords words = pack_header(h);
  EXPECT_EQ(std::memcmp(words.w, bytes.data(), 128), 0);
  EXPECT_EQ(envelope_checksum(words, std::as_bytes(std::span(key)), std::as_bytes(std::span(payload))),
            stored);
  // A producer passes the key's hash, which it has already, instead of the key.
  EXPECT_EQ(envelope_checksum(words, entity_key_hash(key), std::as_bytes(std::span(payload))),
            stored);
}

// header_words_hash() computes XXH3 of 128 bytes from the words themselves: it must agree with
// the library on every input, or every checksum a producer writes would be wrong.
TEST(EnvelopeTest, HeaderWordsHashIsXxh3OfTheWordsBytes) {
  std::uint64_t x = 0x9E3779B97F4A7C15ull;  // splitmix64: varied, reproducible words
  auto next = [&x] {
    std::uint64_t z = (x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  };
  std::vector<HeaderWords> cases(2000);
  std::memset(&cases[0], 0, sizeof cases[0]);     // all zero
  std::memset(&cases[1], 0xFF, sizeof cases[1]);  // all ones
  for (std::size_t i = 2; i < cases.size(); ++i)
    for (auto& w : cases[i].w) w = i % 3 == 0 ? next() & 0xFF : next();  // sparse words too
  for (std::size_t i = 0; i < cases.size(); ++i)
    ASSERT_EQ(header_words_hash(cases[i]), XXH3_64bits(cases[i].w, 128)) << "case " << i;
  // And a real header's words, as a producer builds them.
  const std::string key = "k1", payload = "p1";
  auto bytes = encode(sample_header(), key, payload);
  std::memset(bytes.data() + 124, 0, 4);
  EnvelopeHeader h;
  std::memcpy(&h, bytes.data(), sizeof h);
  EXPECT_EQ(header_words_hash(pack_header(h)), XXH3_64bits(bytes.data(), 128));
  EXPECT_EQ(payload_hash(std::as_bytes(std::span(payload))),
            XXH3_64bits(payload.data(), payload.size()));
}

TEST(EnvelopeTest, EntityKeyHashIsXxh3Of64Bits) {
  const std::string key = "conversation-42";
  EXPECT_EQ(entity_key_hash(key), XXH3_64bits(key.data(), key.size()));
  EXPECT_EQ(entity_key_hash(bytes_of(key)), entity_key_hash(key));
  EXPECT_NE(entity_key_hash("a"), entity_key_hash("b"));
}

TEST(EnvelopeTest, EveryCheckHasADistinctDescription) {
  std::set<std::string> seen;
  for (int c = 0; c <= 5; ++c) {
    std::string d(describe(static_cast<EnvelopeCheck>(c)));
    EXPECT_FALSE(d.empty());
    EXPECT_NE(d, "invalid check");
    seen.insert(d);
  }
  EXPECT_EQ(seen.size(), 6u);
}

TEST(ClassificationTest, NamesRoundTripAndPhiMeansRestricted) {
  for (int i = 0; i <= 3; ++i) {
    auto c = static_cast<Classification>(i);
    auto parsed = parse_classification(classification_name(c));
    ASSERT_TRUE(parsed.ok()) << classification_name(c);
    EXPECT_EQ(parsed.value(), c);
  }
  EXPECT_EQ(parse_classification("phi").value(), Classification::kRestricted);
  auto bad = parse_classification("secret");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), Code::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("secret"), std::string::npos);
  EXPECT_EQ(classification_name(static_cast<Classification>(9)), "invalid");
}

TEST(ContentTypeTest, HasNames) {
  EXPECT_EQ(content_type_name(ContentType::kRaw), "raw");
  EXPECT_EQ(content_type_name(ContentType::kJson), "json");
  EXPECT_EQ(content_type_name(ContentType::kSchema), "schema");
}

}  // namespace
}  // namespace evring

namespace evring {
namespace {

// decode_header_words: the consumer's check of a compact slot, from words instead of bytes.
TEST(EnvelopeWordsTest, HeaderWordsDecodeLikeTheirBytesAndEveryCheckStillBites) {
  const std::string key = "key-7", payload = "{\"n\":1}";
  EnvelopeHeader in = sample_header();
  in.entity_key_hash = entity_key_hash(key);  // what a compact slot's reader rebuilds word 12 as
  const auto bytes = encode(in, key, payload);
  EnvelopeHeader h;
  std::memcpy(&h, bytes.data(), sizeof h);
  const HeaderWords good = pack_header(h);
  const std::span<const std::byte> body(bytes.data() + 128, bytes.size() - 128);
  EnvelopeView v;
  ASSERT_EQ(decode_header_words(good, body, &v), EnvelopeCheck::kOk);
  EnvelopeView from_bytes;
  ASSERT_EQ(decode_envelope(bytes, &from_bytes), EnvelopeCheck::kOk);
  EXPECT_EQ(std::memcmp(&v.header, &from_bytes.header, sizeof v.header), 0);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(v.key.data()), v.key.size()), key);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(v.payload.data()), v.payload.size()), payload);

  HeaderWords bad = good;
  bad.w[0] = (bad.w[0] & ~0xFFFFull) | 2;  // format 2
  EXPECT_EQ(decode_header_words(bad, body, &v), EnvelopeCheck::kBadVersion);
  bad = good;
  bad.w[0] = (bad.w[0] & ~0xFFFF0000ull) | (200ull << 16);
  EXPECT_EQ(decode_header_words(bad, body, &v), EnvelopeCheck::kBadHeaderSize);
  EXPECT_EQ(decode_header_words(good, body.first(body.size() - 1), &v), EnvelopeCheck::kBadLength);
  std::vector<std::byte> flipped(body.begin(), body.end());
  flipped.back() ^= std::byte{1};
  EXPECT_EQ(decode_header_words(good, flipped, &v), EnvelopeCheck::kBadChecksum);
  bad = good;
  bad.w[2] ^= 1;  // the timestamp
  EXPECT_EQ(decode_header_words(bad, body, &v), EnvelopeCheck::kBadChecksum);
}

}  // namespace
}  // namespace evring
