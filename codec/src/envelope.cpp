#include "evring/codec/envelope.h"

// The hashes and the words' check are the hot paths' inline ones (xxHash inlined too), so the
// two cannot differ.
#include "evring/codec/envelope_hot.h"

namespace evring {
namespace {

constexpr std::size_t kChecksumOffset = offsetof(EnvelopeHeader, checksum);

// The checksum of a header that lies in memory as bytes (a reader's buffer): its 128 bytes are
// the words already, so they are copied whole instead of packed field by field.
std::uint32_t checksum_of_bytes(const std::byte* header, std::span<const std::byte> key,
                                std::span<const std::byte> payload) {
  HeaderWords words;
  std::memcpy(words.w, header, sizeof words.w);
  return envelope_checksum(words, key, payload);
}

}  // namespace

std::string_view classification_name(Classification c) {
  switch (c) {
    case Classification::kPublic: return "public";
    case Classification::kInternal: return "internal";
    case Classification::kConfidential: return "confidential";
    case Classification::kRestricted: return "restricted";
  }
  return "invalid";
}

Result<Classification> parse_classification(std::string_view text) {
  for (int i = 0; i <= 3; ++i) {
    auto c = static_cast<Classification>(i);
    if (text == classification_name(c)) return c;
  }
  if (text == "phi") return Classification::kRestricted;
  return Status::invalid_argument("unknown classification '" + std::string(text) +
                                  "' (public, internal, confidential, restricted)");
}

std::string_view content_type_name(ContentType t) {
  switch (t) {
    case ContentType::kRaw: return "raw";
    case ContentType::kJson: return "json";
    case ContentType::kSchema: return "schema";
  }
  return "invalid";
}

std::uint64_t payload_hash(std::span<const std::byte> payload) {
  return hot::payload_hash(payload);
}

std::uint32_t envelope_checksum(const HeaderWords& header, std::uint64_t key_hash,
                                std::span<const std::byte> payload) {
  // Three independent hashes, so their multiply chains run side by side (envelope.h).
  return combine_checksum(header_words_hash(header, header.w[15] & kChecksumWordMask), key_hash,
                          hot::payload_hash(payload));
}

std::uint32_t envelope_checksum(const HeaderWords& header, std::span<const std::byte> key,
                                std::span<const std::byte> payload) {
  return envelope_checksum(header, entity_key_hash(key), payload);
}

std::uint64_t entity_key_hash(std::span<const std::byte> key) {
  return hot::entity_key_hash(key);
}

std::size_t encode_envelope(std::span<std::byte> out, const EnvelopeHeader& header,
                            std::span<const std::byte> key, std::span<const std::byte> payload) {
  EnvelopeHeader h = header;
  h.format_version = kEnvelopeFormatVersion;
  h.header_bytes = kEnvelopeHeaderBytes;
  h.entity_key_bytes = static_cast<std::uint16_t>(key.size());
  h.payload_bytes = static_cast<std::uint32_t>(payload.size());
  h.reserved = 0;
  h.checksum = envelope_checksum(pack_header(h), key, payload);
  std::byte* p = out.data();
  std::memcpy(p, &h, sizeof h);
  if (!key.empty()) std::memcpy(p + kEnvelopeHeaderBytes, key.data(), key.size());
  if (!payload.empty())
    std::memcpy(p + kEnvelopeHeaderBytes + key.size(), payload.data(), payload.size());
  return envelope_bytes(key.size(), payload.size());
}

void seal_envelope(std::span<std::byte> envelope) {
  EnvelopeHeader h;
  std::memcpy(&h, envelope.data(), sizeof h);
  auto key = envelope.subspan(h.header_bytes, h.entity_key_bytes);
  auto payload = envelope.subspan(std::size_t{h.header_bytes} + h.entity_key_bytes, h.payload_bytes);
  const std::uint32_t sum = checksum_of_bytes(envelope.data(), key, payload);
  std::memcpy(envelope.data() + kChecksumOffset, &sum, sizeof sum);
}

std::string_view describe(EnvelopeCheck check) {
  switch (check) {
    case EnvelopeCheck::kOk: return "ok";
    case EnvelopeCheck::kTruncated: return "envelope shorter than its 128-byte header";
    case EnvelopeCheck::kBadVersion: return "unknown envelope format version";
    case EnvelopeCheck::kBadHeaderSize: return "envelope header size out of range";
    case EnvelopeCheck::kBadLength: return "envelope key/payload lengths exceed the slot";
    case EnvelopeCheck::kBadChecksum: return "envelope checksum mismatch";
  }
  return "invalid check";
}

EnvelopeCheck decode_envelope(std::span<const std::byte> bytes, EnvelopeView* out) {
  if (bytes.size() < kEnvelopeHeaderBytes) return EnvelopeCheck::kTruncated;
  EnvelopeHeader& h = out->header;
  // Word by word through registers: the bytes were usually just written by the caller (a
  // consumer's slot expansion) with stores of 8 and 16 bytes, and a wider load spanning
  // several of them cannot be forwarded from them (it waits for the store buffer to drain).
  // An 8-byte load inside one earlier store can.
  for (std::size_t i = 0; i < sizeof h; i += 8) {
    std::uint64_t v;
    std::memcpy(&v, bytes.data() + i, 8);
    asm volatile("" : "+r"(v));
    std::memcpy(reinterpret_cast<std::byte*>(&h) + i, &v, 8);
  }
  if (h.format_version != kEnvelopeFormatVersion) return EnvelopeCheck::kBadVersion;
  if (h.header_bytes < kEnvelopeHeaderBytes || h.header_bytes > bytes.size())
    return EnvelopeCheck::kBadHeaderSize;
  std::size_t body = std::size_t{h.entity_key_bytes} + h.payload_bytes;
  if (body > bytes.size() - h.header_bytes) return EnvelopeCheck::kBadLength;
  auto body_span = bytes.subspan(h.header_bytes, body);
  // Header bytes past 128 (fields a newer writer appended) are not covered, as in format 1.
  if (checksum_of_bytes(bytes.data(), body_span.first(h.entity_key_bytes),
                        body_span.subspan(h.entity_key_bytes)) != h.checksum)
    return EnvelopeCheck::kBadChecksum;
  out->key = body_span.first(h.entity_key_bytes);
  out->payload = body_span.subspan(h.entity_key_bytes);
  return EnvelopeCheck::kOk;
}

EnvelopeCheck decode_header_words(const HeaderWords& words, std::span<const std::byte> body,
                                  EnvelopeView* out) {
  return hot::decode_header_words(words, body, out);
}

}  // namespace evring
