// evring-micro: per-operation cost of envelope encode/decode, entity_key_hash, bloom probe and
// insert, the event clock, RingProducer::try_publish / try_publish_batch / try_claim+commit with
// no consumer attached (and with dedup on), and poll of a ready batch.
// The ring lives in a std::aligned_alloc'ed, zeroed heap region formatted with
// RingRegion::format (as tests/core/ring_fixture.h does): no shared memory, one process.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "evring/codec/envelope.h"
#include "evring/codec/ids.h"
#include "evring/core/clock.h"
#include "evring/core/dedup.h"
#include "evring/core/ring.h"

namespace {
using namespace evring;
using namespace evring::core;

std::vector<std::byte> bytes_of(size_t n) {
  std::vector<std::byte> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<std::byte>(i * 31 + 7);
  return v;
}

class HeapRing {
 public:
  explicit HeapRing(const RingConfig& c) {
    if (!validate_config(c).is_ok()) std::abort();
    bytes_ = ring_region_bytes(c);
    mem_ = static_cast<std::byte*>(std::aligned_alloc(kCacheLine, (bytes_ + kCacheLine - 1) / kCacheLine * kCacheLine));
    std::memset(mem_, 0, bytes_);
    region_ = RingRegion::format(std::span(mem_, bytes_), c);
    for (uint16_t t = 1; t < 16; ++t) policy_.known.set(t), policy_.allowed.set(t);
  }
  ~HeapRing() { std::free(mem_); }
  const RingRegion& region() const { return region_; }
  std::unique_ptr<RingProducer> producer() {
    auto lane = region_.acquire_lane(static_cast<uint32_t>(::getpid()), 1, 1,
                                     [](uint32_t, uint64_t) { return true; });
    if (!lane.ok()) std::abort();
    return std::make_unique<RingProducer>(region_, 1, lane.value(), &policy_);
  }

 private:
  size_t bytes_ = 0;
  std::byte* mem_ = nullptr;
  RingRegion region_;
  TypePolicy policy_;
};

RingConfig config(uint32_t slots, Overflow overflow, uint32_t dedup_window = 0) {
  RingConfig c;
  c.partitions = 1;
  c.slots_per_partition = slots;
  c.slot_bytes = 512;
  c.max_consumers = 2;
  c.producer_lanes = 2;
  c.overflow = overflow;
  c.dedup_window = dedup_window;
  return normalized(c);
}

void BM_EnvelopeEncode(benchmark::State& state) {
  const auto payload = bytes_of(static_cast<size_t>(state.range(0)));
  const std::string key = "entity-42";
  EnvelopeHeader h{};
  h.type_id = 1;
  std::vector<std::byte> out(envelope_bytes(key.size(), payload.size()));
  for (auto _ : state) {
    benchmark::DoNotOptimize(encode_envelope(out, h, std::as_bytes(std::span(key)), payload));
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * out.size()));
}
BENCHMARK(BM_EnvelopeEncode)->Arg(64)->Arg(1024);

void BM_EnvelopeDecode(benchmark::State& state) {
  const auto payload = bytes_of(static_cast<size_t>(state.range(0)));
  const std::string key = "entity-42";
  EnvelopeHeader h{};
  h.type_id = 1;
  std::vector<std::byte> buf(envelope_bytes(key.size(), payload.size()));
  (void)encode_envelope(buf, h, std::as_bytes(std::span(key)), payload);
  EnvelopeView view;
  for (auto _ : state) {
    benchmark::DoNotOptimize(decode_envelope(buf, &view));
    benchmark::DoNotOptimize(view);
  }
  if (decode_envelope(buf, &view) != EnvelopeCheck::kOk) state.SkipWithError("decode failed");
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * buf.size()));
}
BENCHMARK(BM_EnvelopeDecode)->Arg(64)->Arg(1024);

void BM_EntityKeyHash(benchmark::State& state) {
  const std::string key(static_cast<size_t>(state.range(0)), 'k');
  for (auto _ : state) {
    std::string_view k = key;
    benchmark::DoNotOptimize(k);
    benchmark::DoNotOptimize(entity_key_hash(k));
  }
}
BENCHMARK(BM_EntityKeyHash)->Arg(8)->Arg(32)->Arg(128);

void BM_BloomProbe(benchmark::State& state) {
  // Keys made beforehand: bumping one byte of a key just before hashing it timed a failed
  // store-to-load forwarding (a byte store under an 8-byte load), a fifth of the figure.
  IdGenerator ids(7);
  std::vector<Id128> keys(1024);
  for (Id128& k : keys) k = ids.next_event_id(1);
  std::size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(bloom_probe(keys[i++ & 1023], 4096, 16));
  }
}
BENCHMARK(BM_BloomProbe);

// Probe and set a key's bits in a 4096-word generation, as dedup_admit does (acq_rel fetch_or).
void BM_BloomInsert(benchmark::State& state) {
  std::vector<std::atomic<std::uint64_t>> words(4096);
  IdGenerator ids(7);
  std::uint64_t seen = 0;
  for (auto _ : state) {
    const BloomProbe p = bloom_probe(ids.next_event_id(1), 4096, 11);
    seen += (words[p.word].fetch_or(p.mask, std::memory_order_acq_rel) & p.mask) == p.mask;
  }
  benchmark::DoNotOptimize(seen);
}
BENCHMARK(BM_BloomInsert);

// The event timestamp: clock_gettime(CLOCK_REALTIME) against the TSC-extrapolated UnixClock.
void BM_ClockGettimeRealtime(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(unix_now_ns());
}
BENCHMARK(BM_ClockGettimeRealtime);
void BM_UnixClock(benchmark::State& state) {
  UnixClock clock;
  for (auto _ : state) benchmark::DoNotOptimize(clock.now_ns());
  state.SetLabel(clock.uses_tsc() ? "tsc" : "clock_gettime fallback");
}
BENCHMARK(BM_UnixClock);

// False-positive rate of the blocked bloom at the ring's sizing (window W keys, bits per key
// b -> words = next_pow2(W * b / 64), k = dedup_bloom_bits(W, words) bits in one word), beside
// the rate with the textbook k = round(0.69 * 64 * words / W) that format() used until session R,
// and the target (1 - e^(-k W / m))^k of an unblocked filter with as many bits m.
void BM_BloomFalsePositiveRate(benchmark::State& state) {
  const std::uint32_t window = 1024;
  const auto bits_per_key = static_cast<std::uint32_t>(state.range(0));
  RingConfig c;
  c.dedup_window = window;
  c.dedup_bits_per_key = static_cast<std::uint8_t>(bits_per_key);
  c = normalized(c);
  const std::uint32_t words = c.dedup_bloom_words;
  const double m = 64.0 * words;
  const std::uint32_t k = dedup_bloom_bits(window, words);  // as RingRegion::format
  const auto textbook_k =
      static_cast<std::uint32_t>(std::clamp(m / window * 0.69 + 0.5, 1.0, 16.0));
  std::vector<std::uint64_t> bloom(words, 0);
  // One full generation of keys set with k bits each, then fresh keys probed.
  const auto rate_with = [&](std::uint32_t bits, IdGenerator& ids) {
    std::fill(bloom.begin(), bloom.end(), 0);
    for (std::uint32_t i = 0; i < window; ++i) {
      BloomProbe p = bloom_probe(ids.next_trace_id(), words, bits);
      bloom[p.word] |= p.mask;
    }
    std::uint64_t hits = 0;
    constexpr std::uint32_t kProbes = 1'000'000;  // ~30 hits at the default 64 bits a key
    for (std::uint32_t i = 0; i < kProbes; ++i) {
      BloomProbe p = bloom_probe(ids.next_trace_id(), words, bits);
      hits += (bloom[p.word] & p.mask) == p.mask;
    }
    return static_cast<double>(hits) / kProbes;
  };
  IdGenerator ids(42);
  double rate = 0, textbook_rate = 0;
  for (auto _ : state) {
    rate += rate_with(k, ids);
    textbook_rate += rate_with(textbook_k, ids);
  }
  state.counters["fp_rate"] = rate / static_cast<double>(state.iterations());
  state.counters["bits_set_k"] = k;
  state.counters["fp_textbook_k"] = textbook_rate / static_cast<double>(state.iterations());
  state.counters["textbook_k"] = textbook_k;
  const double kd = k;
  state.counters["unblocked_target"] = std::pow(1.0 - std::exp(-kd * window / m), kd);
}
BENCHMARK(BM_BloomFalsePositiveRate)->Arg(1)->Arg(4)->Arg(8)->Arg(16)->Arg(32)->Arg(64)->Iterations(3);

// No consumer attached: nothing gates the producer (reject mode has no slowest consumer).
void BM_TryPublishNoConsumer(benchmark::State& state) {
  HeapRing ring(config(4096, Overflow::kReject));
  auto producer = ring.producer();
  producer->set_exclusive(state.range(1) != 0);
  const auto payload = bytes_of(static_cast<size_t>(state.range(0)));
  PublishRequest r;
  r.type_id = 1;
  r.entity_key = "entity-42";
  r.payload = payload;
  for (auto _ : state) {
    const PublishResult res = producer->try_publish(r);
    if (res != PublishResult::kOk) {
      state.SkipWithError(std::string(describe(res)).c_str());
      break;
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_TryPublishNoConsumer)
    ->ArgNames({"payload", "exclusive"})
    ->Args({64, 0})
    ->Args({256, 0})
    ->Args({64, 1});

// Dedup on (window 1024, the default 64 bits per key), fresh idempotency keys: the filter's
// cost alone. Arg 1: an exclusive producer (its bloom bits are set without a locked RMW).
void BM_TryPublishDedupNoConsumer(benchmark::State& state) {
  HeapRing ring(config(4096, Overflow::kReject, 1024));
  auto producer = ring.producer();
  producer->set_exclusive(state.range(0) != 0);
  const auto payload = bytes_of(64);
  PublishRequest r;
  r.type_id = 1;
  r.entity_key = "entity-42";
  r.payload = payload;
  for (auto _ : state) {
    const PublishResult res = producer->try_publish(r);
    if (res != PublishResult::kOk) {
      state.SkipWithError(std::string(describe(res)).c_str());
      break;
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_TryPublishDedupNoConsumer)->ArgName("exclusive")->Arg(0)->Arg(1);

// try_publish_batch of 16 events of one partition: one claim, one clock read, one wake check.
void BM_TryPublishBatch16NoConsumer(benchmark::State& state) {
  HeapRing ring(config(4096, Overflow::kReject));
  auto producer = ring.producer();
  if (state.range(0) == 0) producer->set_bias_policy(0, 0);  // claims by CAS throughout
  const auto payload = bytes_of(64);
  std::vector<PublishRequest> batch(16);
  for (auto& r : batch) {
    r.type_id = 1;
    r.entity_key = "entity-42";
    r.payload = payload;
  }
  for (auto _ : state) {
    std::size_t done = 0;
    const PublishResult res = producer->try_publish_batch(batch, &done);
    if (res != PublishResult::kOk || done != batch.size()) {
      state.SkipWithError(std::string(describe(res)).c_str());
      break;
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * 16));
}
BENCHMARK(BM_TryPublishBatch16NoConsumer)->ArgName("bias")->Arg(0)->Arg(1);

// Zero-copy: try_claim, write 64 payload bytes in place, commit (seals the checksum).
void BM_ClaimCommitNoConsumer(benchmark::State& state) {
  HeapRing ring(config(4096, Overflow::kReject));
  auto producer = ring.producer();
  const auto payload = bytes_of(64);
  PublishRequest r;
  r.type_id = 1;
  r.entity_key = "entity-42";
  for (auto _ : state) {
    Claim claim;
    PublishResult res = producer->try_claim(r, payload.size(), &claim);
    if (res == PublishResult::kOk) {
      std::memcpy(claim.payload.data(), payload.data(), payload.size());
      res = producer->commit(claim);
    }
    if (res != PublishResult::kOk) {
      state.SkipWithError(std::string(describe(res)).c_str());
      break;
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_ClaimCommitNoConsumer);

// Publishes a batch of 256 (not timed), then times one poll() that delivers all of them.
void BM_PollReadyBatch(benchmark::State& state) {
  constexpr size_t kBatch = 256;
  HeapRing ring(config(4096, Overflow::kReject));
  auto producer = ring.producer();
  RingConsumer consumer(ring.region(), 0, RingConsumer::Start::kEarliest);
  const auto payload = bytes_of(64);
  PublishRequest r;
  r.type_id = 1;
  r.entity_key = "entity-42";
  r.payload = payload;
  uint64_t sum = 0;
  for (auto _ : state) {
    state.PauseTiming();
    for (size_t i = 0; i < kBatch; ++i)
      if (producer->try_publish(r) != PublishResult::kOk) {
        state.SkipWithError("publish failed");
        break;
      }
    state.ResumeTiming();
    const PollResult pr =
        consumer.poll([&](const Event& e) { sum += e.view.payload.size(); }, kBatch);
    if (pr.delivered != kBatch) {
      state.SkipWithError("poll delivered fewer than the batch");
      break;
    }
  }
  benchmark::DoNotOptimize(sum);
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kBatch));
}
BENCHMARK(BM_PollReadyBatch);

}  // namespace

BENCHMARK_MAIN();
