// evring-handover: what a cross-core hand-over costs by how many bytes it spans.
//
//   evring-handover [--cpus A,B] [--iters N] [--rounds R]
//
// A ping-pong between two pinned threads in which every message spans N bytes (64, 128, 192,
// 256) from the start of a 512-byte, 64-aligned slot: the sender writes bytes 8..N, then the flag
// (bytes 0..7, release); the receiver spins on the flag (acquire), reads bytes 8..N, and answers
// the same way in a second set of slots. Sixteen slots each way, used in turn, as a ring would.
// Prints the round trip's p10 and p50 per size, sizes interleaved round by round.
//
// It shows how a slot's layout turns into transfers. On the AMD Zen 5 VM of session L: 641 ns
// at 64 B, 802 ns at 128 B, ~1200 ns at 192 B, 1310 ns at 256 B: the line paired with the
// flag's line in its aligned 128 bytes arrives nearly with it, every further line is one more
// transfer in series, requested only once the flag's line showed the message. That is why
// ring layout 6 stores a compact header (core/include/evring/core/ring_layout.h).
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>
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

std::uint64_t read_body(const unsigned char* slot, std::size_t n) {
  std::uint64_t sum = 0;
  for (std::size_t k = 8; k < n; k += 8) {
    std::uint64_t v;
    std::memcpy(&v, slot + k, 8);
    sum += v;
  }
  return sum;
}

void write_body(unsigned char* slot, std::size_t n, std::uint64_t v) {
  for (std::size_t k = 8; k < n; k += 8) std::memcpy(slot + k, &v, 8);
}

// Round trips of `n`-byte messages; returns the sorted round trips after a warm-up.
std::vector<std::uint64_t> measure(Slots& s, std::size_t n, int iters, int cpu0, int cpu1) {
  std::memset(&s, 0, sizeof s);
  std::thread echo([&] {
    evring::bench::pin_current_thread(cpu1);
    for (std::uint64_t i = 0; i < static_cast<std::uint64_t>(iters); ++i) {
      unsigned char* in = s.out[i % kSlots];
      while (flag(in).load(std::memory_order_acquire) != i + 1) {
      }
      const std::uint64_t sum = read_body(in, n);
      unsigned char* reply = s.back[i % kSlots];
      write_body(reply, n, sum);
      flag(reply).store(i + 1, std::memory_order_release);
    }
  });
  evring::bench::pin_current_thread(cpu0);
  std::vector<std::uint64_t> rtt;
  rtt.reserve(static_cast<std::size_t>(iters));
  for (std::uint64_t i = 0; i < static_cast<std::uint64_t>(iters); ++i) {
    const std::uint64_t t = evring::bench::now_ns();
    unsigned char* out = s.out[i % kSlots];
    write_body(out, n, i);
    flag(out).store(i + 1, std::memory_order_release);
    unsigned char* in = s.back[i % kSlots];
    while (flag(in).load(std::memory_order_acquire) != i + 1) {
    }
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
    for (std::size_t n : {64, 128, 192, 256}) {
      const std::vector<std::uint64_t> rtt = measure(*slots, n, iters, cpus[0], cpus[1]);
      std::printf("round %d  %3zu B  rtt p10 %6llu ns  p50 %6llu ns\n", r, n,
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
