// Uses only installed headers and libraries: creates a bus, publishes one event, consumes it,
// removes the bus. Exit 0 only if the event round-tripped.
#include <unistd.h>

#include <cstdio>
#include <string>

#include "evring/shm/bus.h"

int main() {
  const std::string name = "install-check-" + std::to_string(::getpid());
  evring::BusOptions options;
  options.ring.partitions = 1;
  options.ring.slots_per_partition = 16;
  options.ring.max_consumers = 2;
  options.max_producers = 2;
  options.max_types = 4;
  auto bus = evring::Bus::create(name, options);
  if (!bus.ok()) {
    std::fprintf(stderr, "create: %s\n", bus.status().to_string().c_str());
    return 1;
  }
  bool ok = false;
  {
    auto consumer = (*bus)->consumer("checker");
    auto producer = (*bus)->producer("install");
    if (consumer.ok() && producer.ok()) {
      auto type = (*producer)->resolve("install.check.done");
      if (type.ok() &&
          (*producer)->publish(type.value(), "key-1", "round-trip") == evring::core::PublishResult::kOk) {
        int seen = 0;
        (void)(*consumer)->poll([&](const evring::core::Event& e) {
          ++seen;
          ok = e.view.key_text() == "key-1" && e.view.payload_text() == "round-trip" &&
               e.view.header.type_id == type.value();
        });
        ok = ok && seen == 1;
      }
    } else {
      std::fprintf(stderr, "consumer: %s / producer: %s\n", consumer.status().to_string().c_str(),
                   producer.status().to_string().c_str());
    }
  }
  bus.value().reset();
  const evring::Status removed = evring::Bus::remove(name);
  if (!removed.is_ok()) std::fprintf(stderr, "remove: %s\n", removed.to_string().c_str());
  if (!ok) std::fprintf(stderr, "the event did not round-trip\n");
  return ok && removed.is_ok() ? 0 : 1;
}
