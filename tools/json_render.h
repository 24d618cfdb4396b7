#pragma once
// Renders events for `tail` and `inspect` (shapes documented in tools/README.md): evring's own
// JSON object, a CloudEvents 1.0 JSON object (structured mode), and aligned table rows.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "evring/shm/bus.h"

namespace evring::cli {

using OrderedJson = nlohmann::ordered_json;

// Resolves type and producer ids to names through the bus, once per id: type and producer
// registry entries are never reused for a different name, so the cache cannot go stale.
class NameCache {
 public:
  explicit NameCache(const Bus& bus) : bus_(bus) {}
  // nullptr when the id does not resolve (unknown or corrupt entry).
  const TypeInfo* type(std::uint16_t id);
  const ProducerInfo* producer(std::uint16_t id);

 private:
  const Bus& bus_;
  std::unordered_map<std::uint16_t, Result<TypeInfo>> types_;
  std::unordered_map<std::uint16_t, Result<ProducerInfo>> producers_;
};

OrderedJson render_event(const core::Event& event, NameCache& names);

// Serialises compactly on one line; invalid UTF-8 (entity keys are bytes) is replaced by U+FFFD.
std::string dump_line(const OrderedJson& json);

std::string base64(std::string_view bytes);

// ---- CloudEvents 1.0, JSON event format, structured mode (tools/README.md, "cloudevents") ----

// `evring://BUS/SERVICE` (or `evring://BUS/producer-id/N` when the producer id does not
// resolve), characters outside RFC 3986 "unreserved" percent-encoded.
std::string cloudevent_source(std::string_view bus, const ProducerInfo* producer,
                              std::uint16_t producer_id);
// W3C traceparent `00-<trace-id>-<parent-id>-01`: trace-id = the correlation id, parent-id = the
// last 8 bytes of the event id (its random part). Empty when either would be all zero, which
// W3C Trace Context forbids.
std::string traceparent(const Id128& correlation_id, const Id128& event_id);
// One event as a CloudEvent. `view` must be a validated envelope (decode_envelope() said kOk).
OrderedJson render_cloudevent(const EnvelopeView& view, std::uint32_t partition,
                              std::uint64_t sequence, std::string_view bus, NameCache& names);

// ---- table (tools/README.md, "table") ----

struct TableColumn {
  std::string_view title;
  std::size_t width;  // in characters; wider cells are cut with "..." (numbers never are)
  bool align_right;
};
// TIME, PART, SEQUENCE, TYPE, PRODUCER, ENTITY, DATA: the columns of one event.
std::span<const TableColumn> event_table_columns();
// The cells of one event, in event_table_columns() order, not yet cut or padded.
std::vector<std::string> event_table_cells(const EnvelopeView& view, std::uint32_t partition,
                                           std::uint64_t sequence, NameCache& names);
// One line (no newline): each cell made printable (control characters and invalid UTF-8 become
// '?'), cut to its column's width, padded; the last column is not padded.
// REQUIRES: cells.size() == columns.size().
std::string table_line(std::span<const TableColumn> columns, std::span<const std::string> cells);
// The header line: the column titles.
std::string table_header(std::span<const TableColumn> columns);

}  // namespace evring::cli
