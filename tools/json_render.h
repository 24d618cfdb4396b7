#pragma once
// Renders a delivered event as one JSON object (the shape is documented in tools/README.md).
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_map>

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

}  // namespace evring::cli
