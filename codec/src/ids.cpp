#include "evring/codec/ids.h"

#include <sys/random.h>
#include <xxhash.h>

#include <cstring>
#include <ctime>

namespace evring {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

constexpr char kHex[] = "0123456789abcdef";

}  // namespace

std::string Id128::to_hex() const {
  std::string out(32, '0');
  for (int i = 0; i < 16; ++i) {
    out[2 * i] = kHex[bytes[i] >> 4];
    out[2 * i + 1] = kHex[bytes[i] & 0xF];
  }
  return out;
}

std::string Id128::to_uuid_string() const {
  std::string hex = to_hex();
  return hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) + "-" +
         hex.substr(16, 4) + "-" + hex.substr(20);
}

std::uint64_t Id128::uuid7_unix_ms() const {
  if ((bytes[6] >> 4) != 7) return 0;
  std::uint64_t ms = 0;
  for (int i = 0; i < 6; ++i) ms = (ms << 8) | bytes[i];
  return ms;
}

std::uint64_t Id128::low64() const {
  std::uint64_t v;
  std::memcpy(&v, bytes.data() + 8, 8);
  return v;
}

Result<Id128> Id128::parse(std::string_view text) {
  std::string digits;
  if (text.size() == 36) {
    for (std::size_t i = 0; i < text.size(); ++i) {
      bool dash_pos = (i == 8 || i == 13 || i == 18 || i == 23);
      if (dash_pos != (text[i] == '-'))
        return Status::invalid_argument("malformed id '" + std::string(text) +
                                        "': expected 8-4-4-4-12 hex digits");
      if (!dash_pos) digits += text[i];
    }
  } else if (text.size() == 32) {
    digits = text;
  } else {
    return Status::invalid_argument("malformed id '" + std::string(text) +
                                    "': expected 32 hex digits or a UUID");
  }
  Id128 id;
  for (int i = 0; i < 16; ++i) {
    int hi = hex_value(digits[2 * i]), lo = hex_value(digits[2 * i + 1]);
    if (hi < 0 || lo < 0)
      return Status::invalid_argument("malformed id '" + std::string(text) +
                                      "': not a hex digit");
    id.bytes[i] = static_cast<std::uint8_t>(hi << 4 | lo);
  }
  return id;
}

Result<Id128> Id128::parse_trace_id(std::string_view text) {
  if (text.size() != 32)
    return Status::invalid_argument("malformed trace id '" + std::string(text) +
                                    "': expected 32 hex digits");
  auto id = parse(text);
  if (!id.ok()) return id;
  if (id->is_zero())
    return Status::invalid_argument("trace id must not be all zeros (W3C trace-context)");
  return id;
}

Id128 Id128::from_key_text(std::string_view text) {
  if (auto parsed = parse(text); parsed.ok()) return parsed.value();
  XXH128_hash_t h = XXH3_128bits(text.data(), text.size());
  XXH128_canonical_t canon;
  XXH128_canonicalFromHash(&canon, h);
  Id128 id;
  std::memcpy(id.bytes.data(), canon.digest, 16);
  return id;
}

IdGenerator::IdGenerator() {
  std::uint64_t seed[2] = {0, 0};
  if (getrandom(seed, sizeof seed, 0) != static_cast<ssize_t>(sizeof seed)) {
    seed[0] = unix_now_ns();
    seed[1] = reinterpret_cast<std::uintptr_t>(this);
  }
  s_[0] = seed[0] | 1;
  s_[1] = seed[1] ^ 0x9E3779B97F4A7C15ull;
}

IdGenerator::IdGenerator(std::uint64_t seed) {
  s_[0] = seed | 1;
  s_[1] = seed ^ 0x9E3779B97F4A7C15ull;
}

// From next_random(), xorshift128+: fast, good enough for the random bits of ids (not for
// secrets).
Id128 IdGenerator::next_trace_id() {
  Id128 id;
  do {
    std::uint64_t a = next_random(), b = next_random();
    std::memcpy(id.bytes.data(), &a, 8);
    std::memcpy(id.bytes.data() + 8, &b, 8);
  } while (id.is_zero());
  return id;
}

std::uint64_t unix_now_ns() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

}  // namespace evring
