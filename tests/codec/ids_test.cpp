// Unit tests for evring/codec/ids.h: Id128 text forms, trace ids, UUIDv7 generation, key ids.
#include "evring/codec/ids.h"

#include <gtest/gtest.h>
#include <xxhash.h>

#include <cstring>
#include <set>
#include <string>
#include <vector>

namespace evring {
namespace {

constexpr std::uint64_t kMs = 1'000'000;  // ns per ms
// 2024-01-01T00:00:00Z in ms: a realistic timestamp with all six ms bytes in use.
constexpr std::uint64_t kBaseMs = 1'704'067'200'000ull;

TEST(Id128Test, ParsesUuidAndFormatsItBackLowercase) {
  auto id = Id128::parse("0189ABCD-ef01-7234-8567-89abCDEF0123");
  ASSERT_TRUE(id.ok()) << id.status().to_string();
  EXPECT_EQ(id->bytes[0], 0x01);
  EXPECT_EQ(id->bytes[1], 0x89);
  EXPECT_EQ(id->bytes[15], 0x23);
  EXPECT_EQ(id->to_uuid_string(), "0189abcd-ef01-7234-8567-89abcdef0123");
  EXPECT_EQ(id->to_hex(), "0189abcdef017234856789abcdef0123");
}

TEST(Id128Test, ParsesThirtyTwoHexDigitsAndRoundTrips) {
  const std::string hex = "00112233445566778899aabbccddeeff";
  auto id = Id128::parse(hex);
  ASSERT_TRUE(id.ok());
  for (int i = 0; i < 16; ++i) EXPECT_EQ(id->bytes[i], 0x11 * i) << i;
  EXPECT_EQ(id->to_hex(), hex);
  EXPECT_EQ(id->to_uuid_string(), "00112233-4455-6677-8899-aabbccddeeff");
  auto again = Id128::parse(id->to_uuid_string());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again.value(), id.value());
}

TEST(Id128Test, RoundTripsRandomIdsThroughBothTextForms) {
  IdGenerator gen(7);
  for (int i = 0; i < 200; ++i) {
    Id128 id = gen.next_trace_id();
    auto from_uuid = Id128::parse(id.to_uuid_string());
    auto from_hex = Id128::parse(id.to_hex());
    ASSERT_TRUE(from_uuid.ok());
    ASSERT_TRUE(from_hex.ok());
    EXPECT_EQ(from_uuid.value(), id);
    EXPECT_EQ(from_hex.value(), id);
  }
}

TEST(Id128Test, RejectsMalformedText) {
  const char* bad[] = {
      "",
      "0011223344556677",                        // too short
      "00112233445566778899aabbccddeeff00",      // too long
      "00112233445566778899aabbccddeefg",        // 'g'
      "0011223344556677 899aabbccddeeff",        // space
      "00112233-4455-6677-8899-aabbccddeef",     // 35 chars
      "0011223-34455-6677-8899-aabbccddeeff",    // dash misplaced
      "00112233-4455-6677-8899_aabbccddeeff",    // '_' where a dash belongs
      "00112233-4455-6677-8899-aabbccddeefz",    // bad hex in UUID form
      "0011-2233445566778899aabbccddeeff",       // 32 chars with a dash
      "001122334455667-8899aabbccddeeff00-",     // 36 chars, dashes wrong
  };
  for (const char* text : bad) {
    auto id = Id128::parse(text);
    EXPECT_FALSE(id.ok()) << "'" << text << "' parsed";
    if (!id.ok()) {
      EXPECT_EQ(id.status().code(), Code::kInvalidArgument) << text;
      EXPECT_NE(id.status().message().find(text), std::string::npos)
          << "message should quote the input: " << id.status().message();
    }
  }
}

TEST(Id128Test, TraceIdMustBeThirtyTwoHexDigitsAndNotAllZero) {
  auto ok = Id128::parse_trace_id("4bf92f3577b34da6a3ce929d0e0e4736");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->to_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");

  auto zero = Id128::parse_trace_id("00000000000000000000000000000000");
  ASSERT_FALSE(zero.ok());
  EXPECT_EQ(zero.status().code(), Code::kInvalidArgument);
  EXPECT_NE(zero.status().message().find("zero"), std::string::npos);

  // The UUID spelling is not a W3C trace-id.
  EXPECT_FALSE(Id128::parse_trace_id("4bf92f35-77b3-4da6-a3ce-929d0e0e4736").ok());
  EXPECT_FALSE(Id128::parse_trace_id("4bf92f3577b34da6a3ce929d0e0e473").ok());
  EXPECT_FALSE(Id128::parse_trace_id("4bf92f3577b34da6a3ce929d0e0e473x").ok());
}

TEST(Id128Test, ZeroAndLow64) {
  Id128 id;
  EXPECT_TRUE(id.is_zero());
  id.bytes[15] = 1;
  EXPECT_FALSE(id.is_zero());
  auto parsed = Id128::parse("0000000000000000" "0102030405060708");
  ASSERT_TRUE(parsed.ok());
  std::uint64_t expect;
  const std::uint8_t tail[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  std::memcpy(&expect, tail, 8);
  EXPECT_EQ(parsed->low64(), expect);
}

TEST(Id128Test, ComparisonIsBytewise) {
  auto a = Id128::parse("00000000000000000000000000000001").value();
  auto b = Id128::parse("00000000000000000000000000000100").value();
  auto c = Id128::parse("01000000000000000000000000000000").value();
  EXPECT_LT(a, b);
  EXPECT_LT(b, c);
  EXPECT_EQ(a, a);
  EXPECT_NE(a, b);
}

void expect_uuid7_bits(const Id128& id) {
  EXPECT_EQ(id.bytes[6] >> 4, 7) << "version nibble of " << id.to_uuid_string();
  EXPECT_EQ(id.bytes[8] >> 6, 2) << "RFC 9562 variant bits of " << id.to_uuid_string();
}

TEST(IdGeneratorTest, EventIdsHaveVersion7AndTheRfcVariant) {
  IdGenerator gen(1);
  for (int i = 0; i < 1000; ++i) expect_uuid7_bits(gen.next_event_id((kBaseMs + i / 10) * kMs));
  IdGenerator seeded_from_os;
  expect_uuid7_bits(seeded_from_os.next_event_id(unix_now_ns()));
}

TEST(IdGeneratorTest, EventIdCarriesItsMillisecond) {
  IdGenerator gen(2);
  for (std::uint64_t i = 0; i < 100; ++i) {
    const std::uint64_t ms = kBaseMs + i * 37;
    Id128 id = gen.next_event_id(ms * kMs + 999'999);  // the ms, not rounded up
    EXPECT_EQ(id.uuid7_unix_ms(), ms);
  }
  // The uuid text starts with the 48-bit ms in hex.
  IdGenerator g2(3);
  Id128 id = g2.next_event_id(0x0123456789ABull * kMs);
  EXPECT_EQ(id.to_hex().substr(0, 12), "0123456789ab");
}

TEST(IdGeneratorTest, Uuid7MsOfANonV7IdIsZero) {
  auto v4 = Id128::parse("0189abcd-ef01-4234-8567-89abcdef0123").value();
  EXPECT_EQ(v4.uuid7_unix_ms(), 0u);
}

TEST(IdGeneratorTest, IdsAreStrictlyIncreasingWithinOneMillisecond) {
  IdGenerator gen(4);
  // 20000 ids in one ms exhaust the 12-bit counter several times: the generator must borrow
  // following milliseconds and stay monotonic.
  Id128 prev = gen.next_event_id(kBaseMs * kMs);
  for (int i = 1; i < 20000; ++i) {
    Id128 id = gen.next_event_id(kBaseMs * kMs + 5);
    ASSERT_LT(prev, id) << "at " << i << ": " << prev.to_uuid_string() << " then "
                        << id.to_uuid_string();
    expect_uuid7_bits(id);
    ASSERT_GE(id.uuid7_unix_ms(), kBaseMs);
    prev = id;
  }
}

TEST(IdGeneratorTest, IdsAreStrictlyIncreasingAcrossMilliseconds) {
  IdGenerator gen(5);
  Id128 prev{};
  std::uint64_t ns = kBaseMs * kMs;
  for (int i = 0; i < 50000; ++i) {
    ns += (i % 7 == 0) ? kMs : 1000;  // several ids per ms, then the next ms
    Id128 id = gen.next_event_id(ns);
    ASSERT_LT(prev, id) << "at " << i;
    prev = id;
  }
}

TEST(IdGeneratorTest, IdsStayIncreasingWhenTheClockStepsBack) {
  IdGenerator gen(6);
  Id128 a = gen.next_event_id((kBaseMs + 10) * kMs);
  Id128 b = gen.next_event_id((kBaseMs + 3) * kMs);  // NTP stepped the clock back
  Id128 c = gen.next_event_id((kBaseMs + 3) * kMs);
  EXPECT_LT(a, b);
  EXPECT_LT(b, c);
}

TEST(IdGeneratorTest, IdsFromTheRealClockAreIncreasingAndMatchTheClock) {
  IdGenerator gen;
  Id128 prev{};
  for (int i = 0; i < 100000; ++i) {
    const std::uint64_t now = unix_now_ns();
    Id128 id = gen.next_event_id(now);
    ASSERT_LT(prev, id) << "at " << i;
    // Equal to the clock's ms, or a little later when the counter borrowed a ms.
    ASSERT_GE(id.uuid7_unix_ms(), now / kMs);
    ASSERT_LE(id.uuid7_unix_ms(), now / kMs + 1000);
    prev = id;
  }
}

TEST(IdGeneratorTest, SameSeedGivesSameIdsAndDifferentSeedsDiffer) {
  IdGenerator a(99), b(99), c(100);
  for (int i = 0; i < 10; ++i) {
    Id128 x = a.next_event_id(kBaseMs * kMs), y = b.next_event_id(kBaseMs * kMs);
    EXPECT_EQ(x, y);
  }
  EXPECT_NE(IdGenerator(99).next_trace_id(), c.next_trace_id());
}

TEST(IdGeneratorTest, TraceIdsAreNeverZeroAndDistinct) {
  IdGenerator gen(0);  // the degenerate seed
  std::set<Id128> seen;
  for (int i = 0; i < 10000; ++i) {
    Id128 id = gen.next_trace_id();
    ASSERT_FALSE(id.is_zero());
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 10000u);
}

TEST(KeyTextTest, TextThatIsAnIdMapsToThatId) {
  const std::string uuid = "0189abcd-ef01-7234-8567-89abcdef0123";
  EXPECT_EQ(Id128::from_key_text(uuid), Id128::parse(uuid).value());
  EXPECT_EQ(Id128::from_key_text("0189ABCDEF017234856789ABCDEF0123"), Id128::parse(uuid).value());
}

TEST(KeyTextTest, OtherTextIsItsXxh3Of128BitsCanonicalForm) {
  const std::string text = "order-42";
  XXH128_canonical_t canon;
  XXH128_canonicalFromHash(&canon, XXH3_128bits(text.data(), text.size()));
  Id128 expect;
  std::memcpy(expect.bytes.data(), canon.digest, 16);
  EXPECT_EQ(Id128::from_key_text(text), expect);
  // Stable: same text, same key; another text, another key.
  EXPECT_EQ(Id128::from_key_text("order-42"), Id128::from_key_text(std::string("order-") + "42"));
  EXPECT_NE(Id128::from_key_text("order-42"), Id128::from_key_text("order-43"));
  EXPECT_FALSE(Id128::from_key_text("").is_zero());
}

TEST(ClockTest, UnixNowIsARecentRealtime) {
  const std::uint64_t now = unix_now_ns();
  EXPECT_GT(now, kBaseMs * kMs);               // after 2024
  EXPECT_LT(now, (kBaseMs * kMs) * 3);         // and not absurd
}

}  // namespace
}  // namespace evring
