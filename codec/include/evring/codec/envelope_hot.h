#pragma once
// The envelope's hashes and the compact-header check compiled into their caller: the publish
// and poll paths (core/src/producer.cpp, core/src/consumer.cpp), where each was a call into the
// codec library, and XXH3_64bits behind it a second call through the PLT with its length
// dispatch, for 8 to 240 bytes. The results are envelope.h's: its out-of-line functions are
// these, and envelope_hot_test checks them against the library's XXH3 at every length.
//
// This header inlines xxHash into the file that includes it (XXH_INLINE_ALL renames every
// xxHash symbol there): include it from source files only, never from another header.
#include "evring/codec/envelope.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace evring::hot {

// entity_key_hash(): XXH3-64 of the key.
inline std::uint64_t entity_key_hash(std::span<const std::byte> key) {
  return XXH3_64bits(key.data(), key.size());
}
inline std::uint64_t entity_key_hash(std::string_view key) {
  return XXH3_64bits(key.data(), key.size());
}

// payload_hash(): XXH3-64 of the payload.
inline std::uint64_t payload_hash(std::span<const std::byte> payload) {
  return XXH3_64bits(payload.data(), payload.size());
}

// decode_header_words() (envelope.h): the header given as words, the key and payload as `body`.
// The header is hashed from the words' values with the checksum field masked in a register,
// not from a zeroed copy of all sixteen. REQUIRES: words.w[12] is entity_key_hash() of the
// key at the front of body.
inline EnvelopeCheck decode_header_words(const HeaderWords& words, std::span<const std::byte> body,
                                         EnvelopeView* out) {
  EnvelopeHeader& h = out->header;
  // Into the view through registers, 8 bytes at a time: the words were just stored by the
  // caller's expansion, and an 8-byte load inside one of those stores is forwarded from it.
  for (std::size_t i = 0; i < 16; ++i) {
    std::uint64_t v = words.w[i];
    asm volatile("" : "+r"(v));
    std::memcpy(reinterpret_cast<std::byte*>(&h) + 8 * i, &v, 8);
  }
  if (h.format_version != kEnvelopeFormatVersion) return EnvelopeCheck::kBadVersion;
  if (h.header_bytes != kEnvelopeHeaderBytes) return EnvelopeCheck::kBadHeaderSize;
  if (std::size_t{h.entity_key_bytes} + h.payload_bytes != body.size())
    return EnvelopeCheck::kBadLength;
  const auto payload = body.subspan(h.entity_key_bytes);
  const std::uint32_t sum =
      combine_checksum(header_words_hash(words, words.w[15] & kChecksumWordMask), words.w[12],
                       payload_hash(payload));
  if (sum != h.checksum) return EnvelopeCheck::kBadChecksum;
  out->key = body.first(h.entity_key_bytes);
  out->payload = payload;
  return EnvelopeCheck::kOk;
}

}  // namespace evring::hot
