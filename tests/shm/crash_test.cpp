// Crash tests over real processes: producers SIGKILLed at random moments (hundreds of times),
// a producer SIGSTOPped mid-claim, consumers SIGKILLed and restarted. Every event a producer
// fully published must reach the consumer exactly once; nothing a live process holds may be
// skipped; no consumer stalls. Like every stress test, these sample interleavings: they do not
// prove the orderings correct (core/FORMAT.md argues that).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <random>
#include <string>
#include <thread>

#include "evring/core/wait.h"
#include "evring/shm/bus.h"

namespace {

using namespace std::chrono_literals;
using evring::core::PublishResult;

struct Body {
  std::uint32_t producer;
  std::uint32_t n;
};

template <typename T>
T* shared_area() {
  void* p = mmap(nullptr, sizeof(T), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  return new (p) T();
}

int wait_exit(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

class TestBusName {
 public:
  explicit TestBusName(const char* what)
      : name_(std::string("crash-") + what + "-" + std::to_string(getpid())) {
    (void)evring::Bus::remove(name_);
  }
  ~TestBusName() { (void)evring::Bus::remove(name_); }
  const std::string& str() const { return name_; }

 private:
  std::string name_;
};

// Publishes Body{id, 0..} on one entity (one partition, so in order) until killed or `limit`.
int publish_forever(const std::string& bus_name, std::uint32_t id, std::atomic<std::uint64_t>* published,
                    std::uint32_t limit) {
  auto bus = evring::Bus::open(bus_name);
  if (!bus.ok()) return 10;
  auto producer = (*bus)->producer("orders");
  if (!producer.ok()) return 11;
  auto type = (*producer)->resolve("orders.order.placed");
  if (!type.ok()) return 12;
  std::string key = "entity-" + std::to_string(id);
  for (std::uint32_t n = 0; n < limit;) {
    Body b{id, n};
    evring::core::PublishRequest r;
    r.type_id = type.value();
    r.entity_key = key;
    r.payload = std::as_bytes(std::span(&b, 1));
    PublishResult res = (*producer)->try_publish(r);
    if (res == PublishResult::kOk) {
      published->store(++n, std::memory_order_release);
    } else if (res != PublishResult::kFull) {
      return 13;
    }
  }
  return 0;
}

constexpr std::uint32_t kKillIterations = 300;

struct KillStormResults {
  std::atomic<std::uint32_t> stop;
  std::atomic<std::uint64_t> violations;
  std::atomic<std::uint64_t> delivered_total;
  std::atomic<std::uint64_t> abandoned_seen;
  std::atomic<std::uint64_t> published[kKillIterations];  // count a producer saw kOk for
  std::atomic<std::uint64_t> delivered[kKillIterations];  // next n expected per producer
};

TEST(CrashTest, ProducersKilledAtRandomMomentsNeverStallOrLoseAPublishedEvent) {
  TestBusName name("kill");
  evring::BusOptions o;
  o.ring.partitions = 2;
  o.ring.slots_per_partition = 256;
  o.ring.producer_lanes = 8;
  ASSERT_TRUE(evring::Bus::create(name.str(), o).ok());
  auto* results = shared_area<KillStormResults>();

  pid_t consumer = fork();
  if (consumer == 0) {
    auto bus = evring::Bus::open(name.str());
    auto c = (*bus)->consumer("auditor");
    if (!c.ok()) _exit(20);
    auto handle = [&](const evring::core::Event& e) {
      Body b;
      std::memcpy(&b, e.view.payload.data(), sizeof b);
      // Per producer, events arrive as the prefix 0, 1, 2, ...: no loss, no repeat, in order.
      if (b.producer >= kKillIterations || b.n != results->delivered[b.producer].load())
        results->violations.fetch_add(1);
      else
        results->delivered[b.producer].store(b.n + 1);
      results->delivered_total.fetch_add(1);
    };
    while (true) {
      auto r = (*c)->poll(handle, 512);
      if (r.gaps) results->violations.fetch_add(r.gaps);
      if (r.delivered == 0) {
        if (results->stop.load() && !(*c)->ring().any_ready()) break;
        (*c)->wait(evring::core::WaitStrategy::kBlock, 5'000'000);
      }
    }
    std::uint64_t abandoned = 0;
    for (std::uint32_t p = 0; p < 2; ++p)
      abandoned += (*bus)->ring().cursor((*c)->index(), p).abandoned.load();
    results->abandoned_seen.store(abandoned);
    _exit(0);
  }
  auto bus = evring::Bus::open(name.str()).value();
  while (bus->consumers().empty()) std::this_thread::sleep_for(1ms);

  std::mt19937 rng(12345);
  std::uniform_int_distribution<int> delay_us(0, 1500);
  for (std::uint32_t i = 0; i < kKillIterations; ++i) {
    pid_t producer = fork();
    if (producer == 0) _exit(publish_forever(name.str(), i, &results->published[i], ~0u));
    std::this_thread::sleep_for(std::chrono::microseconds(delay_us(rng)));
    kill(producer, SIGKILL);
    EXPECT_EQ(wait_exit(producer), 128 + SIGKILL);
  }
  // Everything published must be delivered promptly: the consumer never waits for a dead
  // producer's slot for long (generous bound; the bench reports the real distribution).
  auto deadline = std::chrono::steady_clock::now() + 10s;
  auto all_delivered = [&] {
    for (std::uint32_t i = 0; i < kKillIterations; ++i)
      if (results->delivered[i].load() < results->published[i].load()) return false;
    return true;
  };
  while (!all_delivered() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(1ms);
  EXPECT_TRUE(all_delivered());
  results->stop.store(1);
  EXPECT_EQ(wait_exit(consumer), 0);

  std::uint64_t published = 0, delivered = 0, in_flight_delivered = 0;
  for (std::uint32_t i = 0; i < kKillIterations; ++i) {
    std::uint64_t pub = results->published[i].load(), del = results->delivered[i].load();
    published += pub;
    delivered += del;
    // A producer killed after its publish but before recording kOk adds one event.
    EXPECT_TRUE(del == pub || del == pub + 1) << "producer " << i << " published " << pub
                                             << " delivered " << del;
    in_flight_delivered += del - pub;
  }
  EXPECT_EQ(results->violations.load(), 0u);
  EXPECT_EQ(results->delivered_total.load(), delivered);
  std::uint64_t abandoned = bus->ring().partition(0).abandoned.load() +
                            bus->ring().partition(1).abandoned.load();
  // Every abandoned slot was seen and skipped by the consumer, and there is at most one per kill.
  EXPECT_EQ(results->abandoned_seen.load(), abandoned);
  EXPECT_LE(abandoned, kKillIterations);
  std::uint64_t heads = bus->ring().partition(0).head.load() + bus->ring().partition(1).head.load();
  EXPECT_EQ(heads, delivered + abandoned) << "every claimed slot was delivered or abandoned";
  std::printf("[ kill storm ] %u kills, %llu published (+%llu completed at the kill), %llu "
              "delivered, %llu abandoned, 0 lost\n",
              kKillIterations, static_cast<unsigned long long>(published),
              static_cast<unsigned long long>(in_flight_delivered),
              static_cast<unsigned long long>(delivered),
              static_cast<unsigned long long>(abandoned));
}

TEST(CrashTest, ProducerStoppedMidClaimIsNeverSkippedAndItsEventArrives) {
  TestBusName name("stop");
  evring::BusOptions o;
  o.ring.partitions = 1;
  o.ring.slots_per_partition = 64;
  ASSERT_TRUE(evring::Bus::create(name.str(), o).ok());
  auto bus = evring::Bus::open(name.str()).value();
  auto consumer = bus->consumer("reader").value();
  pid_t child = fork();
  if (child == 0) {
    auto b = evring::Bus::open(name.str()).value();
    auto p = b->producer("orders").value();
    auto t = p->resolve("orders.order.placed").value();
    evring::core::PublishRequest r;
    r.type_id = t;
    r.entity_key = "k";
    evring::core::Claim claim;
    if (p->try_claim(r, 5, &claim) != PublishResult::kOk) _exit(1);
    std::memcpy(claim.payload.data(), "first", 5);
    raise(SIGSTOP);  // stopped between claim and commit, far longer than any liveness check
    _exit(p->commit(claim) == PublishResult::kOk ? 0 : 2);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, WUNTRACED), child);
  ASSERT_TRUE(WIFSTOPPED(status));
  auto p = bus->producer("orders").value();
  auto t = p->resolve("orders.order.placed").value();
  ASSERT_EQ(p->publish(t, "k", "second"), PublishResult::kOk);
  // 400 ms stopped: 400 liveness checks, and twice the orphan-slot timeout.
  std::vector<std::string> got;
  auto collect = [&](const evring::core::Event& e) { got.emplace_back(e.view.payload_text()); };
  auto until = std::chrono::steady_clock::now() + 400ms;
  while (std::chrono::steady_clock::now() < until) {
    consumer->poll(collect);
    consumer->wait(evring::core::WaitStrategy::kBlock, 10'000'000);
  }
  EXPECT_TRUE(got.empty()) << "nothing may pass the stopped producer's slot";
  kill(child, SIGCONT);
  EXPECT_EQ(wait_exit(child), 0);
  for (int i = 0; i < 100 && got.size() < 2; ++i) {
    consumer->poll(collect);
    consumer->wait(evring::core::WaitStrategy::kBlock, 10'000'000);
  }
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0], "first");
  EXPECT_EQ(got[1], "second");
  EXPECT_EQ(bus->ring().partition(0).abandoned.load(), 0u);
}

constexpr std::uint32_t kConsumerEvents = 20000;

struct ConsumerKillResults {
  std::atomic<std::uint32_t> seen[kConsumerEvents];
  std::atomic<pid_t> ready;  // the last consumer process whose Consumer is constructed
};

// True once consumer process `pid` has said it is ready, false if that took past `deadline`. The
// registry cannot tell: a restarted consumer's entry carries its pid before its gate is taken
// over, and the gate of the killed one still reads as attached.
bool wait_ready(const std::atomic<pid_t>& ready, pid_t pid,
                std::chrono::steady_clock::time_point deadline) {
  while (ready.load() != pid) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(100us);
  }
  return true;
}

TEST(CrashTest, ConsumersKilledAtRandomMomentsLoseNothingInRejectModeAndRepeatOnlyUncommitted) {
  TestBusName name("ckill");
  evring::BusOptions o;
  o.ring.partitions = 1;
  o.ring.slots_per_partition = 1024;
  // "Lose nothing" holds while the consumer comes back within the bus's grace period: past it a
  // reject-mode bus stops holding producers for a dead consumer, by design (the grace test
  // below). A restarted consumer here may take longer than the default second to attach (a
  // loaded CI machine, ThreadSanitizer), so the grace is made longer than the whole test.
  o.consumer_grace_ms = 600'000;
  ASSERT_TRUE(evring::Bus::create(name.str(), o).ok());
  auto* results = shared_area<ConsumerKillResults>();
  constexpr std::uint32_t kCommitEvery = 10;
  auto run_consumer = [&] {
    auto bus = evring::Bus::open(name.str()).value();
    evring::Bus::ConsumerOptions co;
    co.auto_commit = false;
    auto c = bus->consumer("durable", co);
    if (!c.ok()) return 30;
    results->ready.store(getpid());
    std::uint32_t since_commit = 0;
    while (true) {
      auto r = (*c)->poll(
          [&](const evring::core::Event& e) {
            Body b;
            std::memcpy(&b, e.view.payload.data(), sizeof b);
            results->seen[b.n].fetch_add(1);
            if (++since_commit == kCommitEvery) {
              (*c)->commit();
              since_commit = 0;
            }
          },
          1);
      if (r.gaps) return 31;
      if (r.delivered == 0) (*c)->wait(evring::core::WaitStrategy::kBlock, 5'000'000);
    }
  };
  auto attach_deadline = [] { return std::chrono::steady_clock::now() + 60s; };
  pid_t consumer = fork();
  if (consumer == 0) _exit(run_consumer());
  // Attached, not just registered, before the producer starts: events published before the gate
  // is attached are not the consumer's to lose.
  if (!wait_ready(results->ready, consumer, attach_deadline())) {
    kill(consumer, SIGKILL);
    wait_exit(consumer);
    FAIL() << "first consumer never attached";
  }
  std::atomic<std::uint64_t>* published = &shared_area<KillStormResults>()->delivered_total;
  pid_t producer = fork();
  if (producer == 0) _exit(publish_forever(name.str(), 0, published, kConsumerEvents));

  std::mt19937 rng(777);
  std::uniform_int_distribution<int> delay_us(500, 4000);
  int kills = 0;
  bool producer_done = false;
  while (!producer_done || kills < 50) {
    producer_done = producer_done || waitpid(producer, nullptr, WNOHANG) == producer;
    // Most kills land while the consumer reads and commits, timed from its attach so that a slow
    // restart cannot turn every kill into one before the first read; every eighth is timed from
    // the fork and may land anywhere, opening the bus and attaching included.
    if (kills % 8 != 0 && !wait_ready(results->ready, consumer, attach_deadline())) {
      ADD_FAILURE() << "consumer " << consumer << " never attached";
      break;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(delay_us(rng)));
    kill(consumer, SIGKILL);
    wait_exit(consumer);
    ++kills;
    consumer = fork();
    if (consumer == 0) _exit(run_consumer());
    if (kills > 2000) break;
  }
  // Let the last consumer drain, then stop it (and a producer a failed run left blocked).
  auto deadline = std::chrono::steady_clock::now() + 60s;
  auto all_seen = [&] {
    for (std::uint32_t n = 0; n < kConsumerEvents; ++n)
      if (results->seen[n].load() == 0) return false;
    return true;
  };
  while (!all_seen() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
  kill(consumer, SIGKILL);
  wait_exit(consumer);
  if (!producer_done) {
    kill(producer, SIGKILL);
    EXPECT_EQ(wait_exit(producer), 0) << "the producer had not finished publishing";
  }
  std::uint64_t repeats = 0;
  for (std::uint32_t n = 0; n < kConsumerEvents; ++n) {
    ASSERT_GE(results->seen[n].load(), 1u) << "event " << n << " lost";
    repeats += results->seen[n].load() - 1;
  }
  // Each kill can repeat at most the batch handled since the last commit.
  EXPECT_LE(repeats, static_cast<std::uint64_t>(kills) * kCommitEvery);
  std::printf("[ consumer kills ] %d kills, %u events, %llu re-deliveries (uncommitted), 0 lost\n",
              kills, kConsumerEvents, static_cast<unsigned long long>(repeats));
}

TEST(CrashTest, DeadConsumerKeepsGatingForTheGracePeriodThenStopsHoldingProducers) {
  TestBusName name("grace");
  evring::BusOptions o;
  o.ring.partitions = 1;
  o.ring.slots_per_partition = 8;
  o.consumer_grace_ms = 300;
  ASSERT_TRUE(evring::Bus::create(name.str(), o).ok());
  pid_t child = fork();
  if (child == 0) {
    auto b = evring::Bus::open(name.str()).value();
    auto c = b->consumer("slow");  // attaches, then dies without reading
    raise(SIGKILL);
  }
  EXPECT_EQ(wait_exit(child), 128 + SIGKILL);
  auto bus = evring::Bus::open(name.str()).value();
  auto p = bus->producer("orders").value();
  auto t = p->resolve("orders.order.placed").value();
  for (int i = 0; i < 8; ++i) ASSERT_EQ(p->publish(t, "k", "x"), PublishResult::kOk);
  // Within the grace period the dead consumer still protects its unread events.
  EXPECT_EQ(p->publish(t, "k", "x"), PublishResult::kFull);
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(p->publish(t, "k", "x"), PublishResult::kFull);
  std::this_thread::sleep_for(350ms);
  // After it, the sweep on Full detaches it and publishing goes on.
  EXPECT_EQ(p->publish(t, "k", "x"), PublishResult::kOk);
  bool attached = true;
  for (const auto& c : bus->consumers())
    if (c.name == "slow") attached = c.attached;
  EXPECT_FALSE(attached);
}

}  // namespace
