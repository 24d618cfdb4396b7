// libFuzzer target: one line of `evring publish --jsonl` input (tools/jsonl_event.h). Any bytes
// must give either a spec whose fields hold what the parser promises, or an invalid_argument
// status with a message; never a crash, an escaping exception or unbounded recursion.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "evring/codec/names.h"
#include "jsonl_event.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view line(reinterpret_cast<const char*>(data), size);
  evring::cli::EventSpec spec;
  const evring::Status s = evring::cli::parse_jsonl_event(line, "fuzz-default", &spec);
  if (!s.is_ok()) {
    // Refusals are usage errors that say what was wrong.
    if (s.code() != evring::Code::kInvalidArgument || s.message().empty()) std::abort();
    return 0;
  }
  // Accepted: the fields a publish relies on are present and valid.
  if (!evring::validate_event_name(spec.type).is_ok()) std::abort();
  if (!evring::validate_service_name(spec.producer).is_ok()) std::abort();
  if (spec.entity.empty()) std::abort();
  if (spec.content_type == evring::ContentType::kJson && spec.payload.empty()) std::abort();
  return 0;
}
