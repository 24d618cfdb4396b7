// libFuzzer target: decode_envelope over arbitrary bytes must never crash or read out of
// bounds, and whatever it accepts must re-encode to the same bytes.
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
  if (std::memcmp(again.data(), bytes.data(), again.size()) != 0) __builtin_trap();
  return 0;
}
