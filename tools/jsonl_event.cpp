#include "jsonl_event.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "evring/codec/names.h"

namespace evring::cli {
namespace {

using Json = nlohmann::json;

// Deeper documents are refused before parsing: dump() and the destructor recurse per level, so
// a line of a million '[' would otherwise overflow the stack.
constexpr int kMaxJsonDepth = 64;

Status named(const Status& s, std::string_view what) {
  return Status(s.code(), std::string(what) + ": " + s.message(), s.sys_errno());
}

// The deepest nesting of arrays and objects in `text`, brackets inside strings not counted.
// Stops counting past kMaxJsonDepth + 1.
int nesting_depth(std::string_view text) {
  int depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
      if (deepest > kMaxJsonDepth) break;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

Status parse_line(std::string_view line, std::string_view default_producer, EventSpec* spec);

}  // namespace

Status parse_event_options(EventSpec* spec, std::string_view prefix, std::string_view correlation,
                           std::string_view causation, std::string_view idempotency,
                           std::string_view classification) {
  auto where = [&](const char* field) { return std::string(prefix) + field; };
  if (!correlation.empty()) {
    auto id = Id128::parse_trace_id(correlation);
    if (!id.ok()) return named(id.status(), where("correlation"));
    spec->correlation = *id;
  }
  if (!causation.empty()) {
    auto id = Id128::parse(causation);
    if (!id.ok()) return named(id.status(), where("causation"));
    spec->causation = *id;
  }
  if (!idempotency.empty()) spec->idempotency = Id128::from_key_text(idempotency);
  if (!classification.empty()) {
    auto c = parse_classification(classification);
    if (!c.ok()) return named(c.status(), where("classification"));
    spec->classification = *c;
  }
  return Status::ok();
}

Status parse_jsonl_event(std::string_view line, std::string_view default_producer,
                         EventSpec* spec) {
  if (nesting_depth(line) > kMaxJsonDepth)
    return Status::invalid_argument("JSON nested deeper than " + std::to_string(kMaxJsonDepth) +
                                    " levels");
  // Nothing nlohmann throws escapes: parse errors are caught in parse_line, this is for the rest.
  try {
    return parse_line(line, default_producer, spec);
  } catch (const Json::exception& e) {
    return Status::invalid_argument(std::string("unusable JSON: ") + e.what());
  }
}

namespace {

Status parse_line(std::string_view line, std::string_view default_producer, EventSpec* spec) {
  Json j;
  try {
    j = Json::parse(line);
  } catch (const Json::exception& e) {
    return Status::invalid_argument(std::string("not valid JSON: ") + e.what());
  }
  if (!j.is_object())
    return Status::invalid_argument(std::string("not a JSON object (a JSON ") + j.type_name() +
                                    ")");
  auto text = [&](const char* field, std::string* out) -> Status {
    auto it = j.find(field);
    if (it == j.end() || it->is_null()) return Status::ok();
    if (!it->is_string())
      return Status::invalid_argument(std::string("\"") + field + "\" must be a string, not " +
                                      it->type_name());
    *out = it->get<std::string>();
    return Status::ok();
  };
  std::string correlation, causation, idempotency, classification;
  spec->producer = std::string(default_producer);
  EVRING_RETURN_IF_ERROR(text("type", &spec->type));
  EVRING_RETURN_IF_ERROR(text("producer", &spec->producer));
  EVRING_RETURN_IF_ERROR(text("entity", &spec->entity));
  EVRING_RETURN_IF_ERROR(text("correlation", &correlation));
  EVRING_RETURN_IF_ERROR(text("causation", &causation));
  EVRING_RETURN_IF_ERROR(text("idempotency_key", &idempotency));
  EVRING_RETURN_IF_ERROR(text("classification", &classification));
  if (spec->type.empty()) return Status::invalid_argument("\"type\" is missing");
  if (Status s = validate_event_name(spec->type); !s.is_ok()) return named(s, "\"type\"");
  if (spec->producer.empty())
    return Status::invalid_argument("\"producer\" is missing (and no --producer default)");
  if (Status s = validate_service_name(spec->producer); !s.is_ok())
    return named(s, "\"producer\"");
  if (spec->entity.empty()) return Status::invalid_argument("\"entity\" is missing");
  EVRING_RETURN_IF_ERROR(
      parse_event_options(spec, "", correlation, causation, idempotency, classification));
  if (auto it = j.find("revision"); it != j.end() && !it->is_null()) {
    if (!it->is_number_unsigned())
      return Status::invalid_argument("\"revision\" must be a non-negative integer");
    spec->revision = it->get<std::uint64_t>();
  }
  if (auto it = j.find("data"); it != j.end()) {
    spec->payload = it->dump();
    spec->content_type = ContentType::kJson;
  }
  return Status::ok();
}

}  // namespace
}  // namespace evring::cli
