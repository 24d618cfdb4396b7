// libFuzzer target: decode_envelope over arbitrary bytes must never crash or read out of
// bounds, and whatever it accepts must re-encode to an envelope that decodes to the same
// fields, key and payload. (The fuzzer does find valid checksums: its comparison tracing reads
// the expected value. Encoding zeroes the reserved field, so that and the checksum may differ.)
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "evring/codec/envelope.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // Exact-size copy so ASan catches any read past the end.
  std::vector<std::byte> bytes(size);
  if (size) std::memcpy(bytes.data(), data, size);
  evring::EnvelopeView view;
  if (evring::decode_envelope(bytes, &view) != evring::EnvelopeCheck::kOk) return 0;
  if (view.header.header_bytes != evring::kEnvelopeHeaderBytes) return 0;
  std::vector<std::byte> again(evring::envelope_bytes(view.key.size(), view.payload.size()));
  evring::encode_envelope(again, view.header, view.key, view.payload);
  evring::EnvelopeView back;
  if (evring::decode_envelope(again, &back) != evring::EnvelopeCheck::kOk) __builtin_trap();
  constexpr std::size_t kReserved = offsetof(evring::EnvelopeHeader, reserved);
  constexpr std::size_t kChecksum = offsetof(evring::EnvelopeHeader, checksum);
  const std::byte* a = again.data();
  const std::byte* b = bytes.data();
  if (std::memcmp(a, b, kReserved) != 0 ||
      std::memcmp(a + kReserved + 2, b + kReserved + 2, kChecksum - kReserved - 2) != 0 ||
      std::memcmp(a + evring::kEnvelopeHeaderBytes, b + evring::kEnvelopeHeaderBytes,
                  again.size() - evring::kEnvelopeHeaderBytes) != 0)
    __builtin_trap();
  return 0;
}
