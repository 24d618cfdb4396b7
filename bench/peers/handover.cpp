// evring-handover: what a cross-core hand-over costs by how many bytes it spans.
//
//   evring-handover [--cpus A,B] [--iters N] [--rounds R]
//
// A ping-pong between two pinned threads in which every message spans N bytes (64, 128, 192,
// 256) from the start of a 512-byte, 64-aligned slot: the sender writes bytes 8..N, then the flag
// (bytes 0..7, release); the receiver spins on the flag (acquire), reads bytes 8..N, and answers
// the same way in a second set of slots. Sixteen slots each way, used in turn, as a ring would.
// Prints the round trip's p10 and p50 per size, sizes interleaved round by round. Two more
// 128-byte cases wait differently: "stamped" puts the flag in every line and waits on all of
// them, "prefetched" spins on the flag and prefetches the second line on every spin, as
// RingConsumer does (await_second_line).
//
// It shows how a slot's layout and a reader's wait turn into transfers. On the AMD Zen 5 VM of
// session L: 641 ns at 64 B, 802 ns at 128 B, ~1200 ns at 192 B, 1310 ns at 256 B: the line paired
// with the flag's line in its aligned 128 bytes arrives nearly with it, every further line is one
// more transfer in series, requested only once the flag's line showed the message. That is why ring
// layout 6 stores a compact header (core/include/evring/core/ring_layout.h). Session O, same VM,
// p50s of 4 rounds in two host states: 64 B 591-632 / 611-621 ns, 128 B 741-771 / 801-1002, 128 B
// stamped 481-661 / 621-882, prefetched 631-662 / 782-881: a request for the second line kept
// outstanding while the reader waits brings most of it along with the first. (Writing the second
// line before the first, or without a WRITING mark first, changed nothing.)
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "bench_env.h"
#include "pin.h"

namespace {

constexpr int kSlots = 16;
constexpr std::size_t kSlotBytes = 512;

struct alignas(4096) Slots {
  unsigned char out[kSlots][kSlotBytes];
  unsigned char back[kSlots][kSlotBytes];
};

std::atomic<std::uint64_t>& flag(unsigned char* slot) {
  return *reinterpret_cast<std::atomic<std::uint64_t>*>(slot);
}

enum class Wait { kFlag, kStamped, kPrefetched };
const char* wait_name(Wait w) {
  return w == Wait::kFlag ? "" : w == Wait::kStamped ? "stamped" : "prefetched";
}

// Stamped messages carry the flag at the start of every line; the body skips those words.
std::uint64_t read_body(const unsigned char* slot, std::size_t n) {
  std::uint64_t sum = 0;
  for (std::size_t k = 8; k < n; k += 8) {
    if (k % 64 == 0) continue;
    std::uint64_t v;
    std::memcpy(&v, slot + k, 8);
    sum += v;
  }
  return sum;
}

void write_body(unsigned char* slot, std::size_t n, std::uint64_t v) {
  for (std::size_t k = 8; k < n; k += 8)
    if (k % 64 != 0) std::memcpy(slot + k, &v, 8);
}

// Waits until message `want` is in `slot`.
void await(unsigned char* slot, std::size_t n, std::uint64_t want, Wait how) {
  for (;;) {
    bool ok = flag(slot).load(std::memory_order_acquire) == want;
    if (how == Wait::kStamped)
      for (std::size_t k = 64; k < n; k += 64)
        ok &= flag(slot + k).load(std::memory_order_acquire) == want;
    if (ok) return;
    if (how == Wait::kPrefetched) __builtin_prefetch(slot + 64, 0, 3);
  }
}

// Publishes message `v` with `body` in every word: the body, then the other lines' stamps
// (stamped), then the flag.
void send(unsigned char* slot, std::size_t n, std::uint64_t v, std::uint64_t body, Wait how) {
  write_body(slot, n, body);
  if (how == Wait::kStamped)
    for (std::size_t k = 64; k < n; k += 64) flag(slot + k).store(v, std::memory_order_release);
  flag(slot).store(v, std::memory_order_release);
}

// Round trips of `n`-byte messages; returns the sorted round trips after a warm-up.
std::vector<std::uint64_t> measure(Slots& s, std::size_t n, Wait how, int iters, int cpu0,
                                   int cpu1) {
  std::memset(&s, 0, sizeof s);
  std::thread echo([&] {
    evring::bench::pin_current_thread(cpu1);
    for (std::uint64_t i = 0; i < static_cast<std::uint64_t>(iters); ++i) {
      unsigned char* in = s.out[i % kSlots];
      await(in, n, i + 1, how);
      const std::uint64_t sum = read_body(in, n);
      send(s.back[i % kSlots], n, i + 1, sum, how);
    }
  });
  evring::bench::pin_current_thread(cpu0);
  std::vector<std::uint64_t> rtt;
  rtt.reserve(static_cast<std::size_t>(iters));
  for (std::uint64_t i = 0; i < static_cast<std::uint64_t>(iters); ++i) {
    const std::uint64_t t = evring::bench::now_ns();
    unsigned char* out = s.out[i % kSlots];
    send(out, n, i + 1, i, how);
    unsigned char* in = s.back[i % kSlots];
    await(in, n, i + 1, how);
    const std::uint64_t sum = read_body(in, n);
    asm volatile("" : : "r"(sum));
    rtt.push_back(evring::bench::now_ns() - t);
  }
  echo.join();
  const std::size_t warm = std::min<std::size_t>(rtt.size() / 10, 1000);
  rtt.erase(rtt.begin(), rtt.begin() + static_cast<std::ptrdiff_t>(warm));
  std::sort(rtt.begin(), rtt.end());
  return rtt;
}

int run(int argc, char** argv) {
  std::vector<int> cpus{0, 1};
  int iters = 200000, rounds = 3;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
    const std::string v = argv[++i];
    if (a == "--cpus") cpus = evring::bench::parse_cpu_list(v);
    else if (a == "--iters") iters = std::stoi(v);
    else if (a == "--rounds") rounds = std::stoi(v);
    else throw std::invalid_argument("unknown option '" + a + "'");
  }
  if (cpus.size() < 2 || iters < 100 || rounds < 1)
    throw std::invalid_argument("needs two CPUs, --iters >= 100, --rounds >= 1");
  auto* slots = new Slots;
  std::printf("evring-handover  cpu: %s  cpus %d,%d  %d round trips a size\n",
              evring::bench::cpu_model_name().c_str(), cpus[0], cpus[1], iters);
  for (int r = 0; r < rounds; ++r) {
    const std::pair<std::size_t, Wait> cases[] = {{64, Wait::kFlag},     {128, Wait::kFlag},
                                                  {192, Wait::kFlag},    {256, Wait::kFlag},
                                                  {128, Wait::kStamped}, {128, Wait::kPrefetched}};
    for (const auto& [n, how] : cases) {
      const std::vector<std::uint64_t> rtt = measure(*slots, n, how, iters, cpus[0], cpus[1]);
      std::printf("round %d  %3zu B %-10s  rtt p10 %6llu ns  p50 %6llu ns\n", r, n, wait_name(how),
                  static_cast<unsigned long long>(rtt[rtt.size() / 10]),
                  static_cast<unsigned long long>(rtt[rtt.size() / 2]));
    }
  }
  delete slots;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "evring-handover: %s\n", e.what());
    return 2;
  }
}
