// libFuzzer target: name and pattern validation and matching, and id parsing, over arbitrary
// text: no crash, and a valid name always matches itself and "domain.>".
#include <cstdint>
#include <string>
#include <string_view>

#include "evring/codec/ids.h"
#include "evring/codec/names.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  std::size_t split = text.find('\n');
  std::string_view a = text.substr(0, split);
  std::string_view b = split == std::string_view::npos ? std::string_view{} : text.substr(split + 1);
  if (evring::validate_pattern(a).is_ok()) (void)evring::pattern_matches(a, b);
  if (evring::validate_event_name(a).is_ok()) {
    if (!evring::pattern_matches(a, a)) __builtin_trap();
    std::string wide = std::string(evring::domain_of(a)) + ".>";
    if (!evring::pattern_matches(wide, a)) __builtin_trap();
  }
  (void)evring::validate_service_name(a);
  auto id = evring::Id128::parse(a);
  if (id.ok() && evring::Id128::parse(id->to_uuid_string()).value() != id.value()) __builtin_trap();
  (void)evring::Id128::parse_trace_id(b);
  return 0;
}
