#include "json_render.h"

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

}  // namespace evring::cli
