#pragma once
// One event of `evring publish`, parsed from flags or from one line of `--jsonl` input. The line
// parser is a pure function (no bus, no I/O): tests/fuzz/jsonl_fuzz.cpp feeds it arbitrary bytes.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "evring/codec/envelope.h"
#include "evring/codec/ids.h"
#include "evring/codec/status.h"

namespace evring::cli {

// Ids are zero when not given (the ring fills them in).
struct EventSpec {
  std::string type, producer, entity;
  std::string payload;
  ContentType content_type = ContentType::kRaw;
  Id128 correlation{}, causation{}, idempotency{};
  std::optional<Classification> classification;
  std::optional<std::uint64_t> revision;
};

// Fills the optional id and classification fields from their text forms (empty = not given).
// `prefix` names their origin in errors: "--" for flags ("--correlation: ..."), "" for JSON.
Status parse_event_options(EventSpec* spec, std::string_view prefix, std::string_view correlation,
                           std::string_view causation, std::string_view idempotency,
                           std::string_view classification);

// Parses one `--jsonl` line: a JSON object {"type", "producer", "entity", "data", and optional
// "correlation" (W3C trace-id), "causation" (UUID), "idempotency_key" (any text),
// "classification", "revision" (unsigned integer)}. "producer" defaults to `default_producer`.
// Type and producer names are validated; "data" (any JSON value) becomes a JSON payload.
// Errors are invalid_argument and name the field at fault; `spec` is then unspecified.
Status parse_jsonl_event(std::string_view line, std::string_view default_producer,
                         EventSpec* spec);

}  // namespace evring::cli
