// libFuzzer target: a bus segment holding arbitrary bytes. The input is laid over a freshly
// created, valid segment (at an offset chosen by the first bytes), then the bus is opened and
// read the way tools and consumers read it, and deep-checked (Bus::check). Nothing may crash,
// hang or read out of bounds: open() refuses, or reads report errors / skip corrupt slots.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "evring/shm/bus.h"

namespace {

const std::string& bus_name() {
  static const std::string name = "fuzz-" + std::to_string(getpid());
  return name;
}

std::size_t template_size() {
  static std::size_t size = [] {
    evring::BusOptions o;
    o.ring.partitions = 2;
    o.ring.slots_per_partition = 8;
    o.ring.max_consumers = 2;
    o.ring.producer_lanes = 2;
    o.max_producers = 2;
    o.max_types = 4;
    o.idempotency_keys = 4;
    (void)evring::Bus::remove(bus_name());
    auto bus = evring::Bus::create(bus_name(), o);
    if (!bus.ok()) __builtin_trap();
    auto producer = (*bus)->producer("fuzz");
    auto type = (*producer)->resolve("fuzz.event.happened");
    for (int i = 0; i < 12; ++i)
      (void)(*producer)->publish(type.value(), "key-" + std::to_string(i), "payload");
    (void)(*bus)->consumer("reader");
    // libFuzzer ends with exit(): remove the template bus then, so /dev/shm stays clean.
    std::atexit([] { (void)evring::Bus::remove(bus_name()); });
    return (*bus)->header().segment_bytes;
  }();
  return size;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::size_t total = template_size();
  if (size < 4) return 0;
  std::uint32_t offset;
  std::memcpy(&offset, data, 4);
  data += 4;
  size -= 4;
  std::string path = evring::Bus::object_path(bus_name());
  int fd = ::open(path.c_str(), O_RDWR);
  if (fd < 0) __builtin_trap();
  void* map = ::mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) __builtin_trap();
  auto* bytes = static_cast<std::uint8_t*>(map);
  std::vector<std::uint8_t> saved(bytes, bytes + total);
  std::size_t at = offset % total;
  std::size_t n = std::min(size, total - at);
  std::memcpy(bytes + at, data, n);

  // The deep check (evring stat) reads everything, whatever open() would say.
  (void)evring::shm::check_segment(std::span<const std::byte>(reinterpret_cast<const std::byte*>(bytes), total));
  auto bus = evring::Bus::open(bus_name(), evring::Access::kReadOnly);
  if (bus.ok()) {
    (void)(*bus)->producers();
    (void)(*bus)->consumers();
    (void)(*bus)->types();
    auto rw = evring::Bus::open(bus_name());
    if (rw.ok()) {
      evring::Bus::ConsumerOptions co;
      co.start = evring::core::RingConsumer::Start::kEarliest;
      auto consumer = (*rw)->consumer("fuzz-reader", co);
      if (consumer.ok()) {
        for (int i = 0; i < 4; ++i)
          (void)(*consumer)->poll([](const evring::core::Event& e) {
            volatile std::size_t sink = e.view.payload.size();
            (void)sink;
          });
        consumer->reset();
        (void)(*rw)->remove_consumer("fuzz-reader");
      }
    }
  }
  std::memcpy(bytes, saved.data(), total);  // restore the template for the next input
  ::munmap(map, total);
  return 0;
}
