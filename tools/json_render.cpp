#include "json_render.h"

#include <algorithm>
#include <cassert>
#include <cctype>

#include "cli_common.h"

namespace evring::cli {

const TypeInfo* NameCache::type(std::uint16_t id) {
  auto it = types_.find(id);
  if (it == types_.end()) it = types_.emplace(id, bus_.type_info(id)).first;
  return it->second.ok() ? &it->second.value() : nullptr;
}

const ProducerInfo* NameCache::producer(std::uint16_t id) {
  auto it = producers_.find(id);
  if (it == producers_.end()) it = producers_.emplace(id, bus_.producer_info(id)).first;
  return it->second.ok() ? &it->second.value() : nullptr;
}

std::string base64(std::string_view bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  auto at = [&](std::size_t k) { return static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[k])); };
  for (; i + 3 <= bytes.size(); i += 3) {
    std::uint32_t v = at(i) << 16 | at(i + 1) << 8 | at(i + 2);
    out += kAlphabet[v >> 18 & 63];
    out += kAlphabet[v >> 12 & 63];
    out += kAlphabet[v >> 6 & 63];
    out += kAlphabet[v & 63];
  }
  if (std::size_t rest = bytes.size() - i; rest > 0) {
    std::uint32_t v = at(i) << 16 | (rest == 2 ? at(i + 1) << 8 : 0u);
    out += kAlphabet[v >> 18 & 63];
    out += kAlphabet[v >> 12 & 63];
    out += rest == 2 ? kAlphabet[v >> 6 & 63] : '=';
    out += '=';
  }
  return out;
}

OrderedJson render_event(const core::Event& event, NameCache& names) {
  const EnvelopeHeader& h = event.view.header;
  OrderedJson j;
  j["id"] = h.event_id.to_uuid_string();
  const TypeInfo* type = names.type(h.type_id);
  j["type"] = type ? OrderedJson(type->name) : OrderedJson(nullptr);
  j["type_id"] = h.type_id;
  j["version"] = h.schema_version;
  const ProducerInfo* producer = names.producer(h.producer_id);
  j["producer"] = producer ? OrderedJson(producer->service) : OrderedJson(nullptr);
  j["producer_id"] = h.producer_id;
  j["time"] = rfc3339_ns(h.timestamp_ns);
  j["time_ns"] = h.timestamp_ns;
  j["partition"] = event.partition;
  j["sequence"] = event.sequence;
  j["entity"] = std::string(event.view.key_text());
  j["correlation"] = h.correlation_id.to_hex();
  j["causation"] =
      h.causation_id.is_zero() ? OrderedJson(nullptr) : OrderedJson(h.causation_id.to_uuid_string());
  j["idempotency_key"] = h.idempotency_key.to_uuid_string();
  j["classification"] = std::string(classification_name(static_cast<Classification>(h.classification)));
  j["content_type"] = std::string(content_type_name(static_cast<ContentType>(h.content_type)));
  j["flags"] = h.flags;
  if (h.flags & kHasRevision) j["revision"] = h.entity_revision;

  const std::string_view payload = event.view.payload_text();
  if (payload.empty()) {
    j["data"] = nullptr;
    j["data_encoding"] = "none";
    return j;
  }
  if (static_cast<ContentType>(h.content_type) == ContentType::kJson) {
    OrderedJson data = OrderedJson::parse(payload, nullptr, /*allow_exceptions=*/false);
    if (!data.is_discarded()) {
      j["data"] = std::move(data);
      j["data_encoding"] = "json";
      return j;
    }
  }
  j["data"] = base64(payload);
  j["data_encoding"] = "base64";
  return j;
}

std::string dump_line(const OrderedJson& json) {
  return json.dump(-1, ' ', false, nlohmann::detail::error_handler_t::replace);
}

namespace {

constexpr char kHexDigits[] = "0123456789abcdef";

// RFC 3986 "unreserved": the characters a URI carries as they are.
bool is_unreserved(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

// Percent-encodes everything but unreserved characters: bus and service names are validated
// to need none, but a name read from a damaged registry must still give a valid URI.
std::string uri_escape(std::string_view text) {
  std::string out;
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (is_unreserved(c)) {
      out += ch;
    } else {
      out += '%';
      out += static_cast<char>(std::toupper(kHexDigits[c >> 4]));
      out += static_cast<char>(std::toupper(kHexDigits[c & 15]));
    }
  }
  return out;
}

// The type's name, or `type-id:N` when the id does not resolve (no event name holds a ':').
std::string type_label(const TypeInfo* type, std::uint16_t id) {
  return type ? type->name : "type-id:" + std::to_string(id);
}

bool all_zero(std::span<const std::uint8_t> bytes) {
  return std::all_of(bytes.begin(), bytes.end(), [](std::uint8_t b) { return b == 0; });
}

}  // namespace

std::string cloudevent_source(std::string_view bus, const ProducerInfo* producer,
                              std::uint16_t producer_id) {
  std::string out = "evring://" + uri_escape(bus) + "/";
  // A service name never holds '/', so the two-segment form cannot name a service.
  if (producer) out += uri_escape(producer->service);
  else out += "producer-id/" + std::to_string(producer_id);
  return out;
}

std::string traceparent(const Id128& correlation_id, const Id128& event_id) {
  const std::span<const std::uint8_t> parent(event_id.bytes.data() + 8, 8);
  if (correlation_id.is_zero() || all_zero(parent)) return {};
  std::string out = "00-" + correlation_id.to_hex() + "-";
  for (std::uint8_t b : parent) {
    out += kHexDigits[b >> 4];
    out += kHexDigits[b & 15];
  }
  out += "-01";
  return out;
}

OrderedJson render_cloudevent(const EnvelopeView& view, std::uint32_t partition,
                              std::uint64_t sequence, std::string_view bus, NameCache& names) {
  const EnvelopeHeader& h = view.header;
  const TypeInfo* type = names.type(h.type_id);
  OrderedJson j;
  // Required context attributes.
  j["specversion"] = "1.0";
  j["id"] = h.event_id.to_uuid_string();
  j["source"] = cloudevent_source(bus, names.producer(h.producer_id), h.producer_id);
  j["type"] = type_label(type, h.type_id);
  // Optional context attributes.
  j["time"] = rfc3339_ns(h.timestamp_ns);
  if (!view.key.empty()) j["subject"] = std::string(view.key_text());  // MUST be non-empty
  const auto content = static_cast<ContentType>(h.content_type);
  const std::string_view payload = view.payload_text();
  // JSON payloads travel as `data` (a JSON value), anything else as `data_base64`.
  OrderedJson data;
  bool json_data = false;
  if (!payload.empty() && content == ContentType::kJson) {
    data = OrderedJson::parse(payload, nullptr, /*allow_exceptions=*/false);
    json_data = !data.is_discarded();  // else: labelled JSON but not JSON, sent as bytes
  }
  if (json_data) j["datacontenttype"] = "application/json";
  else if (!payload.empty()) j["datacontenttype"] = "application/octet-stream";
  if (content == ContentType::kSchema && type)
    j["dataschema"] = "evring://" + uri_escape(bus) + "/types/" + uri_escape(type->name) +
                      "/versions/" + std::to_string(h.schema_version);
  // Extension attributes: lowercase letters and digits, at most 20 characters. CloudEvents
  // integers are 32-bit, so 64-bit counters travel as decimal strings.
  j["evringpartition"] = partition;
  j["evringsequence"] = std::to_string(sequence);
  j["evringversion"] = h.schema_version;
  if (h.flags & kHasRevision) j["evringrevision"] = std::to_string(h.entity_revision);
  if (std::string tp = traceparent(h.correlation_id, h.event_id); !tp.empty())
    j["traceparent"] = std::move(tp);
  if (!h.causation_id.is_zero()) j["causationid"] = h.causation_id.to_uuid_string();
  j["idempotencykey"] = h.idempotency_key.to_uuid_string();
  j["classification"] =
      std::string(classification_name(static_cast<Classification>(h.classification)));
  // Event data last: `data` for JSON, `data_base64` for bytes; neither for an empty payload.
  if (json_data)
    j["data"] = std::move(data);
  else if (!payload.empty())
    j["data_base64"] = base64(payload);
  return j;
}

namespace {

// Bytes of the valid UTF-8 sequence starting text[i], or 0 when it is not one (RFC 3629:
// no overlong forms, no surrogates, nothing above U+10FFFF).
std::size_t utf8_sequence_bytes(std::string_view text, std::size_t i) {
  const auto at = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char c = at(i);
  if (c < 0x80) return 1;
  std::size_t n = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // bounds of the second byte
  if (c >= 0xC2 && c <= 0xDF) n = 2;
  else if (c == 0xE0) n = 3, lo = 0xA0;
  else if (c == 0xED) n = 3, hi = 0x9F;
  else if (c >= 0xE1 && c <= 0xEF) n = 3;
  else if (c == 0xF0) n = 4, lo = 0x90;
  else if (c >= 0xF1 && c <= 0xF3) n = 4;
  else if (c == 0xF4) n = 4, hi = 0x8F;
  else return 0;
  if (i + n > text.size()) return 0;
  if (at(i + 1) < lo || at(i + 1) > hi) return 0;
  for (std::size_t k = 2; k < n; ++k)
    if (at(i + k) < 0x80 || at(i + k) > 0xBF) return 0;
  return n;
}

// At most `width` characters of `text`, printable: control characters (C0, DEL, C1) and invalid
// UTF-8 bytes become '?'. A longer text ends in "..." within the width. *chars: the count kept.
std::string printable_cut(std::string_view text, std::size_t width, std::size_t* chars) {
  std::string out;
  std::vector<std::size_t> ends;  // out.size() after each character
  bool more = false;
  for (std::size_t i = 0; i < text.size();) {
    if (ends.size() == width) {
      more = true;
      break;
    }
    const std::size_t n = utf8_sequence_bytes(text, i);
    const auto c = static_cast<unsigned char>(text[i]);
    const bool c1 = n == 2 && c == 0xC2 && static_cast<unsigned char>(text[i + 1]) < 0xA0;
    if (n == 0 || (n == 1 && (c < 0x20 || c == 0x7F)) || c1) {
      out += '?';
      i += n == 0 ? 1 : n;
    } else {
      out.append(text.substr(i, n));
      i += n;
    }
    ends.push_back(out.size());
  }
  if (more && width >= 4) {
    out.resize(ends[width - 4]);
    out += "...";
    ends.resize(width);
  }
  *chars = ends.size();
  return out;
}

std::string hex_preview(std::string_view bytes, std::size_t max_bytes) {
  std::string out = "0x";
  for (std::size_t i = 0; i < bytes.size() && i < max_bytes; ++i) {
    const auto b = static_cast<unsigned char>(bytes[i]);
    out += kHexDigits[b >> 4];
    out += kHexDigits[b & 15];
  }
  if (bytes.size() > max_bytes) out += "...";
  return out;
}

constexpr TableColumn kEventColumns[] = {
    {"TIME", 30, false},     {"PART", 4, true},     {"SEQUENCE", 10, true},
    {"TYPE", 28, false},     {"PRODUCER", 16, false}, {"ENTITY", 20, false},
    {"DATA", 48, false},
};

}  // namespace

std::span<const TableColumn> event_table_columns() { return kEventColumns; }

std::vector<std::string> event_table_cells(const EnvelopeView& view, std::uint32_t partition,
                                           std::uint64_t sequence, NameCache& names) {
  const EnvelopeHeader& h = view.header;
  const ProducerInfo* producer = names.producer(h.producer_id);
  std::string data;
  const std::string_view payload = view.payload_text();
  if (payload.empty()) {
    data = "-";
  } else {
    OrderedJson parsed;
    if (static_cast<ContentType>(h.content_type) == ContentType::kJson)
      parsed = OrderedJson::parse(payload, nullptr, /*allow_exceptions=*/false);
    // Enough hex for the widest DATA column; the cell is cut to the column anyway.
    data = static_cast<ContentType>(h.content_type) == ContentType::kJson && !parsed.is_discarded()
               ? dump_line(parsed)
               : hex_preview(payload, 32);
  }
  return {rfc3339_ns(h.timestamp_ns),
          std::to_string(partition),
          std::to_string(sequence),
          type_label(names.type(h.type_id), h.type_id),
          producer ? producer->service : "producer-id:" + std::to_string(h.producer_id),
          view.key.empty() ? std::string("-") : std::string(view.key_text()),
          std::move(data)};
}

std::string table_line(std::span<const TableColumn> columns, std::span<const std::string> cells) {
  assert(cells.size() == columns.size());
  std::string line;
  for (std::size_t i = 0; i < columns.size(); ++i) {
    const TableColumn& col = columns[i];
    const bool last = i + 1 == columns.size();
    if (i) line += ' ';
    std::size_t chars = 0;
    // Right-aligned columns hold numbers: never cut, a wider one shifts the rest of the line.
    const std::size_t width = col.align_right ? cells[i].size() : col.width;
    std::string cell = printable_cut(cells[i], width, &chars);
    const std::size_t pad = chars < col.width ? col.width - chars : 0;
    if (col.align_right) line.append(pad, ' ');
    line += cell;
    if (!col.align_right && !last) line.append(pad, ' ');
  }
  return line;
}

std::string table_header(std::span<const TableColumn> columns) {
  std::vector<std::string> titles;
  for (const TableColumn& col : columns) titles.emplace_back(col.title);
  return table_line(columns, titles);
}

}  // namespace evring::cli
