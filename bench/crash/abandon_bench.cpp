// evring-abandon-bench: how long after a producer's death does a waiting consumer move past the
// slot it had claimed? (issue "crash-proof": target within 10 ms of the death.)
//
// Each iteration:
//   1. a victim process (this executable re-executed with --victim) claims a slot of the one
//      partition (Producer::try_claim) and reports the claim through a pipe, then sleeps;
//   2. the parent publishes a marker event behind it, so the consumer thread, parked in
//      Consumer::wait behind the unfinished slot, has something to move to;
//   3. after a random 2..5 ms (the consumer is napping between its liveness checks; the random
//      phase samples the whole nap cycle), the parent reads CLOCK_MONOTONIC and SIGKILLs the
//      victim;
//   4. the consumer thread reads CLOCK_MONOTONIC when the marker is handed to it: the slot was
//      found abandoned and skipped. latency = delivery - kill.
// The victim is reaped only after the measurement: a zombie is dead to the liveness check, as it
// is when any other parent has not reaped yet.
//
//   evring-abandon-bench [--iterations N] [--wait block|yield|spin] [--wait-timeout-us US]
//                        [--json] [--hgrm FILE]
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <string_view>
#include <thread>

#include "bench_env.h"
#include "evring/core/histogram.h"
#include "evring/shm/bus.h"

namespace {

using evring::core::PublishResult;
using evring::core::WaitStrategy;

constexpr std::string_view kMarker = "marker";
constexpr int kStallLimitMs = 5000;

struct Args {
  std::uint64_t iterations = 200;
  WaitStrategy wait = WaitStrategy::kBlock;
  std::string wait_name = "block";
  std::uint64_t wait_timeout_us = 50'000;  // the consumer's Consumer::wait timeout
  bool json = false;
  std::string hgrm;
};

int usage_error(const std::string& message) {
  std::fprintf(stderr, "evring-abandon-bench: %s\n", message.c_str());
  return 2;
}

// The victim: claim one slot, say so on `fd`, and wait to be killed.
int victim_main(const std::string& bus_name, int fd) {
  auto bus = evring::Bus::open(bus_name);
  if (!bus.ok()) return 10;
  auto producer = (*bus)->producer("victim");
  if (!producer.ok()) return 11;
  auto type = (*producer)->resolve("victim.slot.claimed");
  if (!type.ok()) return 12;
  evring::core::PublishRequest r;
  r.type_id = *type;
  r.entity_key = "k";
  evring::core::Claim claim;
  if ((*producer)->try_claim(r, 8, &claim) != PublishResult::kOk) return 13;
  std::memset(claim.payload.data(), 'v', claim.payload.size());  // half-written, never committed
  const char one = 1;
  if (::write(fd, &one, 1) != 1) return 14;
  for (;;) ::pause();
}

// Starts the victim (fork + exec of this binary: nothing of the parent's threads is inherited)
// and returns its pid once it holds its claim, or -1.
pid_t start_victim(const std::string& bus_name, std::string* error) {
  int fds[2];
  if (::pipe(fds) != 0) {
    *error = std::string("pipe: ") + std::strerror(errno);
    return -1;
  }
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    const std::string fd = std::to_string(fds[1]);
    ::execl("/proc/self/exe", "evring-abandon-bench", "--victim", bus_name.c_str(), fd.c_str(),
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(fds[1]);
  if (pid < 0) {
    *error = std::string("fork: ") + std::strerror(errno);
    ::close(fds[0]);
    return -1;
  }
  pollfd p{fds[0], POLLIN, 0};
  char byte = 0;
  const bool claimed = ::poll(&p, 1, kStallLimitMs) == 1 && ::read(fds[0], &byte, 1) == 1;
  ::close(fds[0]);
  if (!claimed) {
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    *error = "the victim did not claim a slot (exit status " + std::to_string(status) + ")";
    return -1;
  }
  return pid;
}

Args parse(int argc, char** argv, int* error) {
  Args a;
  *error = 0;
  for (int i = 1; i < argc && *error == 0; ++i) {
    const std::string_view arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        *error = usage_error(std::string(arg) + " needs a value");
        return {};
      }
      return argv[++i];
    };
    if (arg == "--iterations") {
      const std::string v = value();
      char* end = nullptr;
      const unsigned long long n = std::strtoull(v.c_str(), &end, 10);
      if (*error == 0 && (v.empty() || *end != '\0' || n == 0 || n > 1'000'000))
        *error = usage_error("--iterations '" + v + "' must be 1..1000000");
      a.iterations = n;
    } else if (arg == "--wait") {
      a.wait_name = value();
      if (a.wait_name == "block") a.wait = WaitStrategy::kBlock;
      else if (a.wait_name == "yield") a.wait = WaitStrategy::kYield;
      else if (a.wait_name == "spin") a.wait = WaitStrategy::kSpin;
      else if (*error == 0) *error = usage_error("--wait '" + a.wait_name + "' must be block, yield or spin");
    } else if (arg == "--wait-timeout-us") {
      const std::string v = value();
      char* end = nullptr;
      const unsigned long long n = std::strtoull(v.c_str(), &end, 10);
      if (*error == 0 && (v.empty() || *end != '\0' || n == 0 || n > 10'000'000))
        *error = usage_error("--wait-timeout-us '" + v + "' must be 1..10000000");
      a.wait_timeout_us = n;
    } else if (arg == "--json") {
      a.json = true;
    } else if (arg == "--hgrm") {
      a.hgrm = value();
    } else if (arg == "--help" || arg == "-h") {
      std::printf("usage: evring-abandon-bench [--iterations N (200)] [--wait block|yield|spin]"
                  " [--wait-timeout-us US (50000)] [--json] [--hgrm FILE]\n");
      std::exit(0);
    } else {
      *error = usage_error("unknown argument '" + std::string(arg) + "'");
    }
  }
  return a;
}

int run(const Args& a) {
  const std::string bus_name = "abandon-bench-" + std::to_string(::getpid());
  evring::BusOptions o;
  o.ring.partitions = 1;
  o.ring.slots_per_partition = 1024;
  o.ring.max_consumers = 2;
  o.ring.producer_lanes = 8;
  o.max_producers = 4;
  o.max_types = 4;
  o.idempotency_keys = 0;
  (void)evring::Bus::remove(bus_name);
  auto created = evring::Bus::create(bus_name, o);
  if (!created.ok()) return usage_error(created.status().to_string());
  struct Remove {
    std::string name;
    ~Remove() { (void)evring::Bus::remove(name); }
  } remove{bus_name};
  std::shared_ptr<evring::Bus> bus = *created;
  auto consumer = bus->consumer("abandon-bench");
  auto marker_producer = bus->producer("marker");
  if (!consumer.ok() || !marker_producer.ok()) return usage_error("registering on the bus failed");
  auto marker_type = (*marker_producer)->resolve("marker.event.published");
  if (!marker_type.ok()) return usage_error(marker_type.status().to_string());

  // The consumer thread: waits on the partition, timestamps each marker it is handed.
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> delivered_at{0};
  std::thread reader([&] {
    evring::Consumer& c = **consumer;
    while (!stop.load(std::memory_order_relaxed)) {
      c.poll([&](const evring::core::Event& e) {
        if (e.view.payload_text() == kMarker)
          delivered_at.store(evring::bench::now_ns(), std::memory_order_release);
      });
      (void)c.wait(a.wait, a.wait_timeout_us * 1000);
    }
  });

  evring::core::Histogram latency;
  std::mt19937_64 rng(std::random_device{}());
  std::string error;
  const std::uint64_t abandoned_before = bus->ring().partition(0).abandoned.load();
  for (std::uint64_t i = 0; i < a.iterations && error.empty(); ++i) {
    delivered_at.store(0, std::memory_order_relaxed);
    const pid_t victim = start_victim(bus_name, &error);
    if (victim < 0) break;
    PublishResult r;
    while ((r = (*marker_producer)->publish(*marker_type, "k", kMarker)) == PublishResult::kFull)
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    if (r != PublishResult::kOk) error = "publishing the marker failed";
    std::this_thread::sleep_for(std::chrono::microseconds(2000 + rng() % 3000));
    const std::uint64_t killed_at = evring::bench::now_ns();
    ::kill(victim, SIGKILL);
    std::uint64_t at = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kStallLimitMs);
    while (error.empty() && (at = delivered_at.load(std::memory_order_acquire)) == 0) {
      if (std::chrono::steady_clock::now() > deadline)
        error = "iteration " + std::to_string(i) + ": the consumer did not move past the abandoned "
                "slot within " + std::to_string(kStallLimitMs) + " ms";
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
    int status = 0;
    ::waitpid(victim, &status, 0);
    if (error.empty()) latency.record(at > killed_at ? at - killed_at : 0);
  }
  stop.store(true, std::memory_order_relaxed);
  reader.join();
  const std::uint64_t abandoned = bus->ring().partition(0).abandoned.load() - abandoned_before;
  if (!error.empty()) {
    std::fprintf(stderr, "evring-abandon-bench: %s\n", error.c_str());
    return 1;
  }

  if (!a.hgrm.empty()) {
    std::ofstream out(a.hgrm);
    latency.write_hgrm(out, 1000.0);
    if (!out) return usage_error("writing --hgrm '" + a.hgrm + "' failed");
  }
  const std::string warning = evring::bench::build_warning();
  const unsigned cpus = std::thread::hardware_concurrency();
  auto p = [&](double q) { return latency.value_at_percentile(q); };
  auto us = [](std::uint64_t ns) { return static_cast<double>(ns) / 1e3; };
  if (a.json) {
    std::printf(
        "{\"bench\":\"abandon\",\"iterations\":%llu,\"wait\":\"%s\",\"wait_timeout_us\":%llu,"
        "\"count\":%llu,"
        "\"abandoned\":%llu,\"p50_ns\":%llu,\"p90_ns\":%llu,\"p99_ns\":%llu,\"p999_ns\":%llu,"
        "\"max_ns\":%llu,\"min_ns\":%llu,\"mean_ns\":%.0f,\"cpu\":\"%s\",\"cpus\":%u,"
        "\"warning\":\"%s\"}\n",
        static_cast<unsigned long long>(a.iterations), a.wait_name.c_str(),
        static_cast<unsigned long long>(a.wait_timeout_us),
        static_cast<unsigned long long>(latency.count()), static_cast<unsigned long long>(abandoned),
        static_cast<unsigned long long>(p(50)), static_cast<unsigned long long>(p(90)),
        static_cast<unsigned long long>(p(99)), static_cast<unsigned long long>(p(99.9)),
        static_cast<unsigned long long>(latency.max()), static_cast<unsigned long long>(latency.min()),
        latency.mean(), evring::bench::cpu_model_name().c_str(), cpus, warning.c_str());
  } else {
    if (!warning.empty()) std::printf("%s\n", warning.c_str());
    std::printf("evring-abandon-bench: %llu iterations, wait %s (timeout %llu us); cpu %s, %u cpus\n",
                static_cast<unsigned long long>(a.iterations), a.wait_name.c_str(),
                static_cast<unsigned long long>(a.wait_timeout_us),
                evring::bench::cpu_model_name().c_str(), cpus);
    std::printf("abandonment latency (SIGKILL of the claimer -> consumer handed the next event), us:\n");
    std::printf("  count %llu  p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  (min %.1f, mean %.1f)\n",
                static_cast<unsigned long long>(latency.count()), us(p(50)), us(p(90)), us(p(99)),
                us(p(99.9)), us(latency.max()), us(latency.min()), latency.mean() / 1e3);
    std::printf("  abandoned slots counted by the partition: %llu (one per iteration)\n",
                static_cast<unsigned long long>(abandoned));
  }
  return abandoned == a.iterations ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 4 && std::string_view(argv[1]) == "--victim")
    return victim_main(argv[2], std::atoi(argv[3]));
  int error = 0;
  const Args a = parse(argc, argv, &error);
  if (error != 0) return error;
  return run(a);
}
