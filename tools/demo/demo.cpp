// evring-demo: a live demo of one local bus. Forks producer and consumer processes, prints
// publish and delivery rates once a second, then checks that every consumer got every event of
// its filter exactly once and in per-entity order.
//
//   evring-demo [--producers N] [--consumers N] [--seconds S] [--partitions N] [--payload BYTES]
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "evring/shm/bus.h"

namespace {

volatile sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

struct Options {
  int producers = 2;
  int consumers = 2;
  double seconds = 10;
  std::uint32_t partitions = 4;
  std::size_t payload = 64;
  std::string bus = "demo-" + std::to_string(getpid());
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "evring-demo: %s\nusage: evring-demo [--producers N] [--consumers N] [--seconds S] "
               "[--partitions N] [--payload BYTES] [--bus NAME]\n",
               why);
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") usage("live demo of a local evring bus");
    if (i + 1 >= argc) usage(("missing value for " + a).c_str());
    const char* v = argv[++i];
    char* end = nullptr;
    double num = std::strtod(v, &end);
    bool numeric = end && *end == '\0' && num >= 0;
    if (a == "--bus") o.bus = v;
    else if (!numeric) usage(("not a number: " + a + " " + v).c_str());
    else if (a == "--producers") o.producers = static_cast<int>(num);
    else if (a == "--consumers") o.consumers = static_cast<int>(num);
    else if (a == "--seconds") o.seconds = num;
    else if (a == "--partitions") o.partitions = static_cast<std::uint32_t>(num);
    else if (a == "--payload") o.payload = static_cast<std::size_t>(num);
    else usage(("unknown flag " + a).c_str());
  }
  if (o.producers < 1 || o.producers > 16 || o.consumers < 1 || o.consumers > 16)
    usage("--producers and --consumers must be 1..16");
  if (o.payload < 16 || o.payload > 256) usage("--payload must be 16..256 bytes");
  return o;
}

// Services own their domains: producer i is "orders" (even i) or "payments" (odd i).
const char* service_of(int i) { return i % 2 ? "payments" : "orders"; }
const char* type_of(int i) { return i % 2 ? "payments.payment.captured" : "orders.order.placed"; }
// Consumer 0 sees everything; odd consumers only payments; others only orders.
const char* filter_of(int c) { return c == 0 ? "" : (c % 2 ? "payments.>" : "orders.>"); }

// Payload: producer index, entity index, per-(producer, entity) counter, then padding.
struct Body {
  std::uint32_t producer;
  std::uint32_t entity;
  std::uint64_t counter;
};

int run_producer(const Options& o, int index) {
  auto bus = evring::Bus::open(o.bus);
  if (!bus.ok()) return std::fprintf(stderr, "producer: %s\n", bus.status().to_string().c_str()), 1;
  auto producer = (*bus)->producer(service_of(index));
  if (!producer.ok()) return std::fprintf(stderr, "producer: %s\n", producer.status().to_string().c_str()), 1;
  auto type = (*producer)->resolve(type_of(index));
  if (!type.ok()) return std::fprintf(stderr, "producer: %s\n", type.status().to_string().c_str()), 1;
  constexpr std::uint32_t kEntities = 64;
  std::vector<std::uint64_t> counters(kEntities, 0);
  std::vector<std::string> keys;
  for (std::uint32_t e = 0; e < kEntities; ++e) keys.push_back("entity-" + std::to_string(e));
  std::vector<std::byte> payload(o.payload);
  evring::core::PublishRequest r;
  r.type_id = type.value();
  std::uint32_t e = 0;
  while (!g_stop) {
    Body b{static_cast<std::uint32_t>(index), e, counters[e]};
    std::memcpy(payload.data(), &b, sizeof b);
    r.entity_key = keys[e];
    r.payload = payload;
    auto result = (*producer)->try_publish(r);
    if (result == evring::core::PublishResult::kOk) {
      ++counters[e];
      e = (e + 1) % kEntities;
    } else if (result == evring::core::PublishResult::kFull ||
               result == evring::core::PublishResult::kBusy) {
      // Reject mode: a consumer is a lap behind (or a producer stopped mid-publish holds the
      // partition); never block.
      std::this_thread::yield();
    } else {
      std::fprintf(stderr, "producer: %s\n", std::string(evring::core::describe(result)).c_str());
      return 1;
    }
  }
  return 0;
}

int run_consumer(const Options& o, int index) {
  auto bus = evring::Bus::open(o.bus);
  if (!bus.ok()) return std::fprintf(stderr, "consumer: %s\n", bus.status().to_string().c_str()), 1;
  evring::Bus::ConsumerOptions co;
  co.filter = filter_of(index);
  co.start = evring::core::RingConsumer::Start::kCommitted;
  auto consumer = (*bus)->consumer("demo-consumer-" + std::to_string(index), co);
  if (!consumer.ok()) return std::fprintf(stderr, "consumer: %s\n", consumer.status().to_string().c_str()), 1;
  std::unordered_map<std::uint64_t, std::uint64_t> next;  // (producer, entity) -> counter
  std::uint64_t violations = 0;
  auto handle = [&](const evring::core::Event& ev) {
    Body b;
    std::memcpy(&b, ev.view.payload.data(), sizeof b);
    std::uint64_t& expect = next[(std::uint64_t{b.producer} << 32) | b.entity];
    if (b.counter != expect) ++violations;
    expect = b.counter + 1;
  };
  // Drain after stop: the parent stops producers first, then consumers.
  while (true) {
    auto r = (*consumer)->poll(handle, 1024);
    if (r.gaps) ++violations;
    if (r.delivered == 0) {
      if (g_stop && !(*consumer)->ring().any_ready()) break;
      (*consumer)->wait(evring::core::WaitStrategy::kBlock, 50'000'000);
    }
  }
  if (violations) std::fprintf(stderr, "consumer %d: %llu order violations or gaps\n", index,
                               static_cast<unsigned long long>(violations));
  return violations ? 3 : 0;
}

std::uint64_t delivered_of(const evring::Bus& bus, std::uint32_t index) {
  std::uint64_t sum = 0;
  for (std::uint32_t p = 0; p < bus.ring().config().partitions; ++p)
    sum += bus.ring().cursor(index, p).delivered.load(std::memory_order_relaxed);
  return sum;
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse(argc, argv);
  evring::BusOptions bo;
  bo.ring.partitions = o.partitions;
  bo.ring.slots_per_partition = 4096;
  bo.ring.slot_bytes = 512;
  auto bus = evring::Bus::create(o.bus, bo);
  if (!bus.ok()) return std::fprintf(stderr, "evring-demo: %s\n", bus.status().to_string().c_str()), 1;
  std::printf("bus '%s': %u partitions x 4096 slots, %d producer and %d consumer processes, %.0f s\n",
              o.bus.c_str(), o.partitions, o.producers, o.consumers, o.seconds);
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);

  auto spawn = [&](int (*fn)(const Options&, int), int i) {
    pid_t pid = fork();
    if (pid == 0) {
      std::signal(SIGINT, SIG_IGN);  // the parent decides when children stop
      std::signal(SIGTERM, on_signal);
      std::_Exit(fn(o, i));
    }
    return pid;
  };
  std::vector<pid_t> consumers, producers;
  for (int c = 0; c < o.consumers; ++c) consumers.push_back(spawn(run_consumer, c));
  // Consumers attach before producers start, so they see every event from the first one.
  for (int tries = 0; tries < 500 && (*bus)->consumers().size() < static_cast<std::size_t>(o.consumers); ++tries)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  for (int p = 0; p < o.producers; ++p) producers.push_back(spawn(run_producer, p));

  auto published = [&] {
    std::uint64_t sum = 0;
    for (std::uint32_t p = 0; p < o.partitions; ++p)
      sum += (*bus)->ring().partition(p).head.load(std::memory_order_relaxed);
    return sum;
  };
  std::printf("%6s %14s", "time", "published/s");
  for (int c = 0; c < o.consumers; ++c) std::printf("  %-10s %-13s", ("c" + std::to_string(c) + " got/s").c_str(), filter_of(c)[0] ? filter_of(c) : "(all)");
  std::printf("\n");
  std::uint64_t last_pub = 0;
  std::vector<std::uint64_t> last_del(o.consumers, 0);
  auto start = std::chrono::steady_clock::now();
  for (int tick = 1; !g_stop && tick <= static_cast<int>(o.seconds + 0.5); ++tick) {
    std::this_thread::sleep_until(start + std::chrono::seconds(tick));
    std::uint64_t pub = published();
    std::printf("%5ds %14.0f", tick, static_cast<double>(pub - last_pub));
    last_pub = pub;
    for (const auto& info : (*bus)->consumers()) {
      int c = std::atoi(info.name.c_str() + std::strlen("demo-consumer-"));
      std::uint64_t d = delivered_of(**bus, info.index);
      std::printf("  %-10.0f %-13s", static_cast<double>(d - last_del[c]), "");
      last_del[c] = d;
    }
    std::printf("\n");
    std::fflush(stdout);
  }
  int failures = 0;
  auto stop_all = [&](std::vector<pid_t>& pids) {
    for (pid_t pid : pids) kill(pid, SIGTERM);
    for (pid_t pid : pids) {
      int st = 0;
      waitpid(pid, &st, 0);
      if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) ++failures;
    }
  };
  stop_all(producers);
  stop_all(consumers);
  std::uint64_t total = published();
  std::printf("published %llu events in total\n", static_cast<unsigned long long>(total));
  for (const auto& info : (*bus)->consumers())
    std::printf("  %-17s filter %-11s delivered %llu, skipped by filter %llu\n", info.name.c_str(),
                info.filter.empty() ? "(all)" : info.filter.c_str(),
                static_cast<unsigned long long>(delivered_of(**bus, info.index)),
                static_cast<unsigned long long>([&] {
                  std::uint64_t f = 0;
                  for (std::uint32_t p = 0; p < o.partitions; ++p)
                    f += (*bus)->ring().cursor(info.index, p).filtered.load();
                  return f;
                }()));
  (void)evring::Bus::remove(o.bus);
  std::printf(failures ? "FAILED: %d processes reported errors\n" : "ok: every consumer got every event of its filter once, in per-entity order\n", failures);
  return failures ? 1 : 0;
}
