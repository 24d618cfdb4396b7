// evring-bench: cross-process throughput and latency of the real evring Bus API.
//
//   evring-bench throughput [--payload B=64] [--partitions N=1] [--producers N=1]
//                           [--consumers N=1] [--seconds S=1] [--batch N=1] [--dedup [--dedup-bits-per-key N=16]]
//                           [--runs N=5] [--cpus A,B] [--no-peers] [--json]
//   evring-bench latency    [--payload B=64] [--rate EV_PER_S=100000] [--seconds S=1]
//                           [--wait spin|yield|block] [--hgrm FILE] [--cpus A,B] [--no-peers]
//                           [--json]
//
// Every process (producer, consumer, sender, echo) is a fork()ed child or the parent, attached to
// a bus created by the parent under a unique name ("evb-<pid>-<n>") and removed at the end.
// Throughput runs in reject mode: each consumer must receive every published event, in
// per-(producer, key) sequence order; any loss, duplicate or reorder fails the run (exit 1).
// Latency is open loop: the sender schedules send times at fixed intervals and the receiver
// measures from the scheduled time (no coordinated omission). RTT is a closed ping-pong over two
// buses. Unless --no-peers, the evring-peers floor cases (bare_spsc for throughput, pingpong for
// RTT) run in the same process with the same pinning, and the ratios are printed.
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <limits>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "bench_env.h"
#include "evring/core/histogram.h"
#include "evring/shm/bus.h"
#include "fork_peer.h"
#include "peer_cases.h"
#include "pin.h"
#include "stats.h"

namespace evring::bench {
namespace {

constexpr int kMaxProcs = 16;
constexpr int kKeysPerProducer = 8;
constexpr uint64_t kStop = ~uint64_t{0};

struct Options {
  std::string mode;
  size_t payload = 64;
  uint32_t partitions = 1;
  int producers = 1;
  int consumers = 1;
  double seconds = 1.0;
  size_t batch = 1;
  bool dedup = false;
  uint8_t dedup_bits = 16;  // bloom bits per key: 1 gives a filter that says "maybe" to most keys
  int runs = 5;
  double rate = 100000;
  std::string wait = "spin";
  std::string hgrm;
  std::vector<int> cpus{0, 1};
  bool peers = true;
  bool json = false;
  bool huge_pages = false;
};

constexpr const char* kUsage =
    "usage: evring-bench throughput [--payload B] [--partitions N] [--producers N] [--consumers N]\n"
    "                               [--seconds S] [--batch N] [--dedup [--dedup-bits-per-key N]]\n"
    "                               [--runs N] [--cpus A,B,...] [--huge-pages] [--no-peers] [--json]\n"
    "       evring-bench latency [--payload B] [--rate EVENTS_PER_SEC] [--seconds S]\n"
    "                            [--wait spin|yield|block] [--hgrm FILE] [--runs N] [--cpus A,B]\n"
    "                            [--huge-pages] [--no-peers] [--json]";

[[noreturn]] void usage(const std::string& why) { throw std::invalid_argument(why); }

// A whole-string number, or a usage error naming the flag and the text.
double number(const std::string& flag, const std::string& text) {
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || errno == ERANGE || v != v)
    usage(flag + " needs a number, got '" + text + "'");
  return v;
}
template <class T>
T whole(const std::string& flag, const std::string& text) {
  const double v = number(flag, text);
  if (v < 0 || v != static_cast<double>(static_cast<std::uint64_t>(v)) ||
      v > static_cast<double>(std::numeric_limits<T>::max()))
    usage(flag + " needs a whole number in range, got '" + text + "'");
  return static_cast<T>(v);
}

Options parse(int argc, char** argv) {
  Options o;
  if (argc < 2) usage("missing mode");
  o.mode = argv[1];
  if (o.mode != "throughput" && o.mode != "latency") usage("unknown mode '" + o.mode + "'");
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) usage(a + " needs a value");
      return argv[++i];
    };
    if (a == "--payload") o.payload = whole<size_t>(a, val());
    else if (a == "--partitions") o.partitions = whole<uint32_t>(a, val());
    else if (a == "--producers") o.producers = whole<int>(a, val());
    else if (a == "--consumers") o.consumers = whole<int>(a, val());
    else if (a == "--seconds") o.seconds = number(a, val());
    else if (a == "--batch") o.batch = whole<size_t>(a, val());
    else if (a == "--dedup") o.dedup = true;
    else if (a == "--dedup-bits-per-key") o.dedup_bits = whole<uint8_t>(a, val());
    else if (a == "--runs") o.runs = whole<int>(a, val());
    else if (a == "--rate") o.rate = number(a, val());
    else if (a == "--wait") o.wait = val();
    else if (a == "--hgrm") o.hgrm = val();
    else if (a == "--cpus") o.cpus = parse_cpu_list(val());
    else if (a == "--no-peers") o.peers = false;
    else if (a == "--json") o.json = true;
    else if (a == "--huge-pages") o.huge_pages = true;
    else usage("unknown option '" + a + "'");
  }
  if (o.payload < 24) usage("--payload must be >= 24 (seq, key and timestamps travel in it)");
  if (o.producers < 1 || o.producers > kMaxProcs || o.consumers < 1 || o.consumers > kMaxProcs)
    usage("--producers/--consumers must be 1..16");
  if (o.partitions < 1 || o.batch < 1 || o.batch > 4096 || o.runs < 1 || o.seconds <= 0 ||
      o.rate <= 0)
    usage("bad numeric option");
  if (o.wait != "spin" && o.wait != "yield" && o.wait != "block") usage("--wait spin|yield|block");
  for (int c : o.cpus)
    if (!cpu_allowed(c)) usage("cpu " + std::to_string(c) + " not in this process's affinity");
  return o;
}

template <class T>
T* shared_anon() {
  void* p = mmap(nullptr, sizeof(T), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::runtime_error("mmap anonymous shared");
  return new (p) T{};
}

template <class T>
T must(Result<T> r, const char* what) {
  if (!r.ok()) throw std::runtime_error(std::string(what) + ": " + r.status().to_string());
  return std::move(r).value();
}

uint32_t slot_bytes_for(size_t key_bytes, size_t payload) {
  size_t need = core::kSlotHeaderBytes + kEnvelopeHeaderBytes + key_bytes + payload;
  size_t s = (need + 63) / 64 * 64;
  return static_cast<uint32_t>(std::max<size_t>(s, core::kMinSlotBytes));
}

// Removes the bus on every exit path of a run.
struct BusGuard {
  std::string name;
  ~BusGuard() { (void)Bus::remove(name); }
};

std::string unique_name(const char* tag) {
  static int n = 0;
  return "evb-" + std::to_string(getpid()) + "-" + tag + std::to_string(n++);
}

// ------------------------------------------------------------------------------------------
// Throughput
// ------------------------------------------------------------------------------------------
struct ThroughputShared {
  std::atomic<int> ready{0};
  std::atomic<int> go{0};
  std::atomic<uint64_t> start_ns{0};
  std::atomic<int> producers_done{0};
  std::atomic<uint64_t> total_published{0};
  struct alignas(128) Prod {
    uint64_t published, rejected, duplicates, end_ns;
  } prod[kMaxProcs];
  struct alignas(128) Cons {
    uint64_t delivered, gaps, skipped, last_ns;
  } cons[kMaxProcs];
  char err[512];
};

struct ThroughputRun {
  double events_per_sec = 0, bytes_per_sec = 0, elapsed_s = 0;
  uint64_t published = 0, rejected = 0;
  std::vector<uint64_t> delivered, rejected_per_producer;
};

void fail_child(ThroughputShared* sh, const std::string& what) {
  std::snprintf(sh->err, sizeof(sh->err), "%s", what.c_str());
  std::fflush(nullptr);
  _exit(1);
}

template <class Fn>
pid_t fork_child(ThroughputShared* sh, Fn&& fn) {
  std::fflush(nullptr);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1);
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGALRM, SIGCHLD}) signal(sig, SIG_DFL);
    try {
      fn();
    } catch (const std::exception& e) {
      fail_child(sh, e.what());
    }
    _exit(0);
  }
  return pid;
}

// Throughput pinning: producer i on cpus[i], consumer j on cpus[producers + j], both modulo the
// list, so `--cpus 0,1` keeps 1 producer + 1 consumer on separate CPUs and a 16-entry list
// gives every process of a 8x4 run its own CPU.
int throughput_cpu(const Options& o, int slot) {
  return o.cpus[static_cast<size_t>(slot) % o.cpus.size()];
}

void producer_main(const Options& o, const std::string& bus_name, ThroughputShared* sh, int idx) {
  pin_current_thread(throughput_cpu(o, idx));
  auto bus = must(Bus::open(bus_name), "Bus::open (producer)");
  auto prod = must(bus->producer("bench", {"bench"}), "Bus::producer");
  const uint16_t type = must(prod->resolve("bench.event"), "resolve");
  std::vector<std::string> keys;
  for (int k = 0; k < kKeysPerProducer; ++k)
    keys.push_back("p" + std::to_string(idx) + "-k" + std::to_string(k));
  std::vector<std::vector<std::byte>> payloads(o.batch, std::vector<std::byte>(o.payload));
  std::vector<core::PublishRequest> reqs(o.batch);
  for (auto& r : reqs) {
    r.type_id = type;
    r.classification = prod->classification_of(type);
    r.schema_version = prod->schema_version_of(type);
  }
  sh->ready.fetch_add(1);
  while (sh->go.load(std::memory_order_acquire) == 0) {
  }
  const uint64_t end = sh->start_ns.load() + static_cast<uint64_t>(o.seconds * 1e9);
  uint64_t seq = 0, rejected = 0, dups = 0;
  auto fill = [&](size_t i) {
    auto* p = payloads[i].data();
    const uint32_t who = static_cast<uint32_t>(idx), key = static_cast<uint32_t>(seq % kKeysPerProducer);
    std::memcpy(p, &who, 4);
    std::memcpy(p + 4, &key, 4);
    std::memcpy(p + 8, &seq, 8);
    reqs[i].entity_key = keys[key];
    reqs[i].payload = payloads[i];
    ++seq;
  };
  uint64_t iter = 0;
  if (o.batch == 1) {
    while (true) {
      if ((++iter & 63) == 0 && now_ns() >= end) break;
      fill(0);
      while (true) {
        const core::PublishResult r = prod->try_publish(reqs[0]);
        if (r == core::PublishResult::kOk) break;
        if (r == core::PublishResult::kFull) { ++rejected; continue; }
        if (r == core::PublishResult::kDuplicate) { ++dups; break; }
        throw std::runtime_error(std::string("try_publish: ") + std::string(core::describe(r)));
      }
    }
  } else {
    while (true) {
      if ((++iter & 7) == 0 && now_ns() >= end) break;
      for (size_t i = 0; i < o.batch; ++i) fill(i);
      size_t off = 0;
      while (off < o.batch) {
        size_t done = 0;
        const core::PublishResult r = prod->try_publish_batch(
            std::span<const core::PublishRequest>(reqs.data() + off, o.batch - off), &done);
        off += done;
        if (r == core::PublishResult::kOk) break;
        if (r == core::PublishResult::kFull) { ++rejected; continue; }
        if (r == core::PublishResult::kDuplicate) { ++dups; ++off; continue; }
        throw std::runtime_error(std::string("try_publish_batch: ") + std::string(core::describe(r)));
      }
    }
  }
  sh->prod[idx] = {seq - dups, rejected, dups, now_ns()};
  sh->total_published.fetch_add(seq - dups);
  sh->producers_done.fetch_add(1, std::memory_order_release);
}

void consumer_main(const Options& o, const std::string& bus_name, ThroughputShared* sh, int idx) {
  pin_current_thread(throughput_cpu(o, o.producers + idx));
  auto bus = must(Bus::open(bus_name), "Bus::open (consumer)");
  auto cons = must(bus->consumer("c" + std::to_string(idx)), "Bus::consumer");
  std::vector<uint64_t> next(static_cast<size_t>(o.producers) * kKeysPerProducer);
  for (size_t i = 0; i < next.size(); ++i) next[i] = i % kKeysPerProducer;
  uint64_t delivered = 0, gaps = 0, skipped = 0, last = 0;
  std::string error;
  auto handler = [&](const core::Event& e) {
    const auto& pl = e.view.payload;
    if (pl.size() != o.payload) {
      if (error.empty()) error = "payload size " + std::to_string(pl.size());
      return;
    }
    uint32_t who, key;
    uint64_t seq;
    std::memcpy(&who, pl.data(), 4);
    std::memcpy(&key, pl.data() + 4, 4);
    std::memcpy(&seq, pl.data() + 8, 8);
    if (who >= static_cast<uint32_t>(o.producers) || key >= kKeysPerProducer) {
      if (error.empty()) error = "bad producer/key in payload";
      return;
    }
    uint64_t& n = next[who * kKeysPerProducer + key];
    if (seq != n && error.empty())
      error = "producer " + std::to_string(who) + " key " + std::to_string(key) + ": expected seq " +
              std::to_string(n) + ", got " + std::to_string(seq);
    n = seq + kKeysPerProducer;
    ++delivered;
  };
  sh->ready.fetch_add(1);
  // The run ends with the consumer's last delivery. Its time is only needed once the producers
  // are done: reading the clock on every delivering poll cost the consumer ~24 ns per event
  // (most polls deliver one or two), which the reference cases do not pay.
  bool draining = false;
  while (true) {
    const core::PollResult r = cons->poll(handler, 256);
    gaps += r.gaps;
    skipped += r.skipped;
    if (!error.empty()) throw std::runtime_error("consumer " + std::to_string(idx) + ": " + error);
    if (r.delivered) {
      if (draining) last = now_ns();
      continue;
    }
    if (!draining && sh->producers_done.load(std::memory_order_acquire) == o.producers) {
      draining = true;
      last = now_ns();  // caught up when the producers finished: the end, unless a backlog
    }
    if (draining && delivered >= sh->total_published.load()) {
      // One more drain to catch anything beyond the published total (duplicates).
      const core::PollResult extra = cons->poll(handler, 256);
      if (extra.delivered) last = now_ns();
      break;
    }
  }
  if (!error.empty()) throw std::runtime_error("consumer " + std::to_string(idx) + ": " + error);
  sh->cons[idx] = {delivered, gaps, skipped, last};
}

ThroughputRun throughput_once(const Options& o) {
  const std::string name = unique_name("t");
  BusOptions bo;
  bo.ring.partitions = o.partitions;
  bo.ring.slots_per_partition = 4096;
  bo.ring.slot_bytes = slot_bytes_for(8, o.payload);
  bo.ring.max_consumers = static_cast<uint32_t>(o.consumers + 1);
  bo.ring.producer_lanes = static_cast<uint32_t>(o.producers + 2);
  bo.ring.overflow = core::Overflow::kReject;
  if (o.dedup) {
    bo.ring.dedup_window = 1024;
    bo.ring.dedup_bits_per_key = o.dedup_bits;
  }
  bo.prefault = true;
  bo.huge_pages = o.huge_pages;
  auto bus = must(Bus::create(name, bo), "Bus::create");
  BusGuard guard{name};
  auto* sh = shared_anon<ThroughputShared>();
  struct Unmap {
    void* p;
    ~Unmap() { munmap(p, sizeof(ThroughputShared)); }
  } unmap{sh};

  std::vector<pid_t> kids;
  for (int i = 0; i < o.consumers; ++i)
    kids.push_back(fork_child(sh, [&] { consumer_main(o, name, sh, i); }));
  // Consumers attach before any producer exists, so every event is gated by all of them.
  auto wait_ready = [&](int n) {
    const uint64_t deadline = now_ns() + 10'000'000'000ull;
    while (sh->ready.load() < n) {
      int st;
      for (pid_t k : kids)
        if (waitpid(k, &st, WNOHANG) == k)
          throw std::runtime_error(std::string("child failed during setup: ") + sh->err);
      if (now_ns() > deadline) throw std::runtime_error("children not ready after 10 s");
      std::this_thread::yield();
    }
  };
  wait_ready(o.consumers);
  for (int i = 0; i < o.producers; ++i)
    kids.push_back(fork_child(sh, [&] { producer_main(o, name, sh, i); }));
  wait_ready(o.consumers + o.producers);
  sh->start_ns.store(now_ns());
  sh->go.store(1, std::memory_order_release);

  Watchdog dog(static_cast<unsigned>(o.seconds) + 30);
  std::string failure;
  for (size_t left = kids.size(); left > 0;) {
    int st = 0;
    const pid_t k = waitpid(-1, &st, 0);
    if (k < 0) {
      if (errno == EINTR) continue;
      break;
    }
    --left;
    if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
      failure = std::string("child ") + std::to_string(k) + " failed: " +
                (sh->err[0] ? sh->err : WIFSIGNALED(st) ? "killed by signal" : "nonzero exit");
      for (pid_t other : kids) kill(other, SIGKILL);
    }
  }
  if (!failure.empty()) throw std::runtime_error(failure);

  ThroughputRun r;
  uint64_t last = 0;
  for (int i = 0; i < o.producers; ++i) {
    r.published += sh->prod[i].published;
    r.rejected += sh->prod[i].rejected;
    r.rejected_per_producer.push_back(sh->prod[i].rejected);
    if (sh->prod[i].duplicates)
      throw std::runtime_error("producer " + std::to_string(i) + ": " +
                               std::to_string(sh->prod[i].duplicates) + " unexpected kDuplicate");
  }
  for (int i = 0; i < o.consumers; ++i) {
    r.delivered.push_back(sh->cons[i].delivered);
    last = std::max(last, sh->cons[i].last_ns);
    if (sh->cons[i].delivered != r.published || sh->cons[i].gaps != 0)
      throw std::runtime_error("ACCOUNTING FAILURE: consumer " + std::to_string(i) + " delivered " +
                               std::to_string(sh->cons[i].delivered) + " (gaps " +
                               std::to_string(sh->cons[i].gaps) + ") of " +
                               std::to_string(r.published) + " published");
  }
  r.elapsed_s = static_cast<double>(last - sh->start_ns.load()) / 1e9;
  r.events_per_sec = static_cast<double>(r.published) / r.elapsed_s;
  r.bytes_per_sec = r.events_per_sec * static_cast<double>(o.payload);
  return r;
}

unsigned long long ull(uint64_t v) { return static_cast<unsigned long long>(v); }

std::string fmt(double v, int prec = 0) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", prec, v);
  return b;
}

std::string json_list(const std::vector<uint64_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s + "]";
}

int run_throughput(const Options& o) {
  std::vector<double> eps, bps, peer_eps;
  std::vector<ThroughputRun> runs;
  CaseConfig pc;
  pc.producer_cpu = o.cpus[0];
  pc.consumer_cpu = o.cpus[1 % o.cpus.size()];
  pc.seconds = o.seconds;
  pc.payload_bytes = o.payload;
  for (int i = 0; i < o.runs; ++i) {
    set_activity("evring throughput");
    runs.push_back(throughput_once(o));
    eps.push_back(runs.back().events_per_sec);
    bps.push_back(runs.back().bytes_per_sec);
    if (o.peers) {  // interleaved: evring, bare_spsc, evring, bare_spsc, ...
      set_activity("bare_spsc");
      for (const Metric& m : run_bare_spsc(pc))
        if (m.name == "msgs_per_s") peer_eps.push_back(m.value);
    }
  }
  const Summary se = summarize(eps), sb = summarize(bps);
  if (!build_warning().empty()) std::cerr << build_warning() << "\n";
  std::string cpu_list;  // every process's CPU, producers first (throughput_cpu)
  for (int i = 0; i < o.producers + o.consumers; ++i)
    cpu_list += (i ? "," : "") + std::to_string(throughput_cpu(o, i));
  std::printf("evring-bench throughput  cpu: %s  cpus %s  payload %zu B  partitions %u  "
              "producers %d  consumers %d  batch %zu  dedup %s  %.2f s x %d runs\n",
              cpu_model_name().c_str(), cpu_list.c_str(), o.payload, o.partitions, o.producers,
              o.consumers, o.batch, o.dedup ? "on" : "off", o.seconds, o.runs);
  std::printf("%-4s %16s %16s %14s %12s  %s\n", "run", "events_per_sec", "bytes_per_sec",
              "published", "rejected", "delivered per consumer");
  for (size_t i = 0; i < runs.size(); ++i) {
    std::string d;
    for (auto v : runs[i].delivered) d += std::to_string(v) + " ";
    std::printf("%-4zu %16.0f %16.0f %14llu %12llu  %s\n", i, runs[i].events_per_sec,
                runs[i].bytes_per_sec, static_cast<unsigned long long>(runs[i].published),
                static_cast<unsigned long long>(runs[i].rejected), d.c_str());
  }
  std::printf("median events_per_sec %.0f (min %.0f max %.0f); bytes_per_sec %.0f; all events "
              "accounted for, per-(producer,key) order verified\n",
              se.median, se.min, se.max, sb.median);
  Summary sp{};
  if (o.peers) {
    sp = summarize(peer_eps);
    std::printf("peers bare_spsc msgs_per_s median %.0f (min %.0f max %.0f); ratio evring/bare "
                "%.3f (target >= 0.6)\n",
                sp.median, sp.min, sp.max, se.median / sp.median);
  }
  if (o.json) {
    std::ostringstream j;
    j << "{\"mode\":\"throughput\",\"payload\":" << o.payload << ",\"partitions\":" << o.partitions
      << ",\"producers\":" << o.producers << ",\"consumers\":" << o.consumers
      << ",\"batch\":" << o.batch << ",\"dedup\":" << (o.dedup ? "true" : "false")
      << ",\"seconds\":" << o.seconds << ",\"runs\":[";
    for (size_t i = 0; i < runs.size(); ++i) {
      j << (i ? "," : "") << "{\"events_per_sec\":" << fmt(runs[i].events_per_sec)
        << ",\"bytes_per_sec\":" << fmt(runs[i].bytes_per_sec)
        << ",\"published\":" << runs[i].published << ",\"rejected\":" << runs[i].rejected
        << ",\"rejected_per_producer\":" << json_list(runs[i].rejected_per_producer)
        << ",\"delivered_per_consumer\":" << json_list(runs[i].delivered) << "}";
    }
    j << "],\"events_per_sec\":{\"median\":" << fmt(se.median) << ",\"min\":" << fmt(se.min)
      << ",\"max\":" << fmt(se.max) << "},\"bytes_per_sec_median\":" << fmt(sb.median);
    if (o.peers)
      j << ",\"bare_spsc_msgs_per_sec\":{\"median\":" << fmt(sp.median) << ",\"min\":"
        << fmt(sp.min) << ",\"max\":" << fmt(sp.max)
        << "},\"ratio_vs_bare_spsc\":" << fmt(se.median / sp.median, 4);
    j << "}";
    std::printf("%s\n", j.str().c_str());
  }
  return 0;
}

// ------------------------------------------------------------------------------------------
// Latency (open loop, one way) and RTT (closed ping-pong over two buses)
// ------------------------------------------------------------------------------------------
BusOptions latency_bus_options(const Options& o) {
  BusOptions bo;
  bo.ring.partitions = 1;
  bo.ring.slots_per_partition = 4096;
  bo.ring.slot_bytes = slot_bytes_for(4, o.payload);
  bo.ring.max_consumers = 2;
  bo.ring.producer_lanes = 4;
  bo.ring.overflow = core::Overflow::kReject;
  bo.prefault = true;
  bo.huge_pages = o.huge_pages;
  return bo;
}

core::WaitStrategy strategy_of(const std::string& w) {
  return w == "spin" ? core::WaitStrategy::kSpin
         : w == "yield" ? core::WaitStrategy::kYield : core::WaitStrategy::kBlock;
}

// payload: [0] seq, [8] scheduled ns, [16] actual send ns
void publish_stamped(Producer& p, core::PublishRequest& req, std::vector<std::byte>& buf,
                     uint64_t seq, uint64_t sched, uint64_t sent) {
  std::memcpy(buf.data(), &seq, 8);
  std::memcpy(buf.data() + 8, &sched, 8);
  std::memcpy(buf.data() + 16, &sent, 8);
  req.payload = buf;
  while (true) {
    const core::PublishResult r = p.try_publish(req);
    if (r == core::PublishResult::kOk) return;
    if (r != core::PublishResult::kFull)
      throw std::runtime_error(std::string("try_publish: ") + std::string(core::describe(r)));
  }
}

core::PublishRequest make_request(Producer& p, uint16_t type) {
  core::PublishRequest r;
  r.type_id = type;
  r.classification = p.classification_of(type);
  r.schema_version = p.schema_version_of(type);
  r.entity_key = "lat";
  return r;
}

struct LatencyResult {
  core::Histogram sched, service;
  uint64_t events = 0;
};

LatencyResult one_way(const Options& o) {
  const std::string name = unique_name("l");
  auto bus = must(Bus::create(name, latency_bus_options(o)), "Bus::create");
  BusGuard guard{name};
  auto cons = must(bus->consumer("recv"), "Bus::consumer");
  auto* ctl = shared_anon<PeerControl>();
  auto* go = shared_anon<std::atomic<uint64_t>>();  // start time, 0 = not yet
  LatencyResult res;
  const uint64_t interval = static_cast<uint64_t>(1e9 / o.rate);
  run_forked(
      ctl->err, sizeof(ctl->err),
      [&] {
        pin_current_thread(o.cpus[0]);
        auto b = must(Bus::open(name), "Bus::open (sender)");
        auto p = must(b->producer("lat", {"lat"}), "Bus::producer");
        const uint16_t type = must(p->resolve("lat.event"), "resolve");
        core::PublishRequest req = make_request(*p, type);
        std::vector<std::byte> buf(o.payload);
        ctl->peer_ready.store(1, std::memory_order_release);
        uint64_t start;
        while ((start = go->load(std::memory_order_acquire)) == 0) {
        }
        const uint64_t n = static_cast<uint64_t>(o.seconds * o.rate);
        for (uint64_t k = 0; k < n; ++k) {
          const uint64_t sched = start + k * interval;
          uint64_t t;
          while ((t = now_ns()) < sched) {
          }
          publish_stamped(*p, req, buf, k, sched, t);
        }
        publish_stamped(*p, req, buf, kStop, 0, 0);
      },
      [&] {
        pin_current_thread(o.cpus[1 % o.cpus.size()]);
        while (ctl->peer_ready.load(std::memory_order_acquire) == 0) {
        }
        go->store(now_ns() + 10'000'000, std::memory_order_release);  // 10 ms settle
        const core::WaitStrategy ws = strategy_of(o.wait);
        uint64_t expected = 0;
        bool done = false;
        std::string error;
        auto handler = [&](const core::Event& e) {
          const uint64_t now = now_ns();
          uint64_t seq, sched, sent;
          std::memcpy(&seq, e.view.payload.data(), 8);
          std::memcpy(&sched, e.view.payload.data() + 8, 8);
          std::memcpy(&sent, e.view.payload.data() + 16, 8);
          if (seq == kStop) {
            done = true;
            return;
          }
          if (seq != expected && error.empty())
            error = "expected seq " + std::to_string(expected) + ", got " + std::to_string(seq);
          expected = seq + 1;
          res.sched.record(now - sched);
          res.service.record(now - sent);
          ++res.events;
        };
        Watchdog dog(static_cast<unsigned>(o.seconds) + 30);
        while (!done) {
          if (cons->poll(handler, 64).delivered == 0 && ws != core::WaitStrategy::kSpin)
            (void)cons->wait(ws, 1'000'000);
          if (!error.empty()) throw std::runtime_error("receiver: " + error);
        }
      });
  munmap(ctl, sizeof(PeerControl));
  munmap(go, sizeof(std::atomic<uint64_t>));
  return res;
}

core::Histogram round_trip(const Options& o) {
  const std::string a = unique_name("ping"), b = unique_name("pong");
  auto bus_a = must(Bus::create(a, latency_bus_options(o)), "Bus::create ping");
  BusGuard ga{a};
  auto bus_b = must(Bus::create(b, latency_bus_options(o)), "Bus::create pong");
  BusGuard gb{b};
  auto back = must(bus_b->consumer("initiator"), "Bus::consumer pong");
  auto out = must(bus_a->producer("ping", {"ping"}), "Bus::producer ping");
  const uint16_t ping_type = must(out->resolve("ping.event"), "resolve ping");
  auto* ctl = shared_anon<PeerControl>();
  core::Histogram h;
  run_forked(
      ctl->err, sizeof(ctl->err),
      [&] {
        pin_current_thread(o.cpus[1 % o.cpus.size()]);
        auto ba = must(Bus::open(a), "Bus::open ping");
        auto bb = must(Bus::open(b), "Bus::open pong");
        auto in = must(ba->consumer("echo"), "Bus::consumer ping");
        auto p = must(bb->producer("pong", {"pong"}), "Bus::producer pong");
        const uint16_t type = must(p->resolve("pong.event"), "resolve pong");
        core::PublishRequest req = make_request(*p, type);
        std::vector<std::byte> buf(o.payload);
        ctl->peer_ready.store(1, std::memory_order_release);
        bool done = false;
        auto echo = [&](const core::Event& e) {
          uint64_t seq, t;
          std::memcpy(&seq, e.view.payload.data(), 8);
          std::memcpy(&t, e.view.payload.data() + 8, 8);
          if (seq == kStop) done = true;
          else publish_stamped(*p, req, buf, seq, t, 0);
        };
        while (!done) (void)in->poll(echo, 64);
      },
      [&] {
        pin_current_thread(o.cpus[0]);
        while (ctl->peer_ready.load(std::memory_order_acquire) == 0) {
        }
        core::PublishRequest req = make_request(*out, ping_type);
        std::vector<std::byte> buf(o.payload);
        Watchdog dog(static_cast<unsigned>(o.seconds) + 30);
        uint64_t got = ~0ull;
        auto on_pong = [&](const core::Event& e) { std::memcpy(&got, e.view.payload.data(), 8); };
        const uint64_t end = now_ns() + static_cast<uint64_t>(o.seconds * 1e9);
        for (uint64_t i = 0;; ++i) {
          const uint64_t t = now_ns();
          if (t >= end) break;
          publish_stamped(*out, req, buf, i, t, t);
          while (back->poll(on_pong, 1).delivered == 0) {
          }
          const uint64_t rtt = now_ns() - t;
          if (got != i) throw std::runtime_error("pong out of order");
          if (i >= 1000) h.record(rtt);  // warm-up, as in evring-peers
        }
        publish_stamped(*out, req, buf, kStop, 0, 0);
      });
  munmap(ctl, sizeof(PeerControl));
  return h;
}

int run_latency(const Options& o) {
  set_activity("evring one-way latency");
  LatencyResult lr = one_way(o);
  set_activity("evring round trip");
  core::Histogram rtt = round_trip(o);
  double peer_rtt50 = 0, peer_rtt99 = 0;
  if (o.peers) {
    set_activity("pingpong");
    CaseConfig pc;
    pc.producer_cpu = o.cpus[0];
    pc.consumer_cpu = o.cpus[1 % o.cpus.size()];
    pc.seconds = o.seconds;
    pc.payload_bytes = o.payload;
    for (const Metric& m : run_pingpong(pc)) {
      if (m.name == "rtt_p50_ns") peer_rtt50 = m.value;
      if (m.name == "rtt_p99_ns") peer_rtt99 = m.value;
    }
  }
  if (!o.hgrm.empty()) {
    std::ofstream f(o.hgrm);
    lr.sched.write_hgrm(f, 1000.0);
    if (!f) throw std::runtime_error("cannot write " + o.hgrm);
  }
  const auto& h = lr.sched;
  auto p = [&](const core::Histogram& x, double q) { return x.value_at_percentile(q); };
  if (!build_warning().empty()) std::cerr << build_warning() << "\n";
  std::printf("evring-bench latency  cpu: %s  cpus %d,%d  payload %zu B  rate %.0f/s  %.2f s  "
              "wait %s  timer overhead %.1f ns\n",
              cpu_model_name().c_str(), o.cpus[0], o.cpus[1 % o.cpus.size()], o.payload, o.rate,
              o.seconds, o.wait.c_str(), timer_overhead_ns());
  std::printf("%-28s %8s %8s %8s %8s %8s %8s %10s\n", "one-way (ns)", "p50", "p90", "p99", "p999",
              "p9999", "max", "count");
  for (auto [label, x] : {std::pair<const char*, const core::Histogram*>{
                              "from scheduled send (CO-free)", &lr.sched},
                          {"from actual publish call", &lr.service}})
    std::printf("%-28s %8llu %8llu %8llu %8llu %8llu %8llu %10llu\n", label,
                ull(p(*x, 50)), ull(p(*x, 90)),
                ull(p(*x, 99)), ull(p(*x, 99.9)),
                ull(p(*x, 99.99)), ull(x->max()),
                ull(x->count()));
  std::printf("rtt (ns, closed ping-pong over two buses): p50 %llu  p99 %llu  p999 %llu  max %llu  "
              "count %llu\n",
              ull(p(rtt, 50)), ull(p(rtt, 99)),
              ull(p(rtt, 99.9)), ull(rtt.max()),
              ull(rtt.count()));
  if (o.peers)
    std::printf("peers pingpong rtt p50 %.0f  p99 %.0f; ratio evring/pingpong p50 %.3f (target <= "
                "1.25)\n",
                peer_rtt50, peer_rtt99, static_cast<double>(p(rtt, 50)) / peer_rtt50);
  if (o.json) {
    std::ostringstream j;
    j << "{\"mode\":\"latency\",\"payload\":" << o.payload << ",\"rate\":" << fmt(o.rate)
      << ",\"seconds\":" << o.seconds << ",\"wait\":\"" << o.wait << "\",\"count\":" << h.count()
      << ",\"p50_ns\":" << p(h, 50) << ",\"p90_ns\":" << p(h, 90) << ",\"p99_ns\":" << p(h, 99)
      << ",\"p999_ns\":" << p(h, 99.9) << ",\"p9999_ns\":" << p(h, 99.99)
      << ",\"max_ns\":" << h.max() << ",\"rtt_p50_ns\":" << p(rtt, 50)
      << ",\"rtt_p99_ns\":" << p(rtt, 99) << ",\"rtt_p999_ns\":" << p(rtt, 99.9)
      << ",\"rtt_max_ns\":" << rtt.max() << ",\"rtt_count\":" << rtt.count();
    if (o.peers)
      j << ",\"pingpong_rtt_p50_ns\":" << fmt(peer_rtt50) << ",\"pingpong_rtt_p99_ns\":"
        << fmt(peer_rtt99) << ",\"rtt_p50_ratio_vs_pingpong\":"
        << fmt(static_cast<double>(p(rtt, 50)) / peer_rtt50, 4);
    j << "}";
    std::printf("%s\n", j.str().c_str());
  }
  return 0;
}

}  // namespace

int evring_bench_main(int argc, char** argv) {
  install_signal_handlers("evring-bench");
  try {
    const Options o = parse(argc, argv);
    return o.mode == "throughput" ? run_throughput(o) : run_latency(o);
  } catch (const std::invalid_argument& e) {  // bad command line (usage())
    // argv[0] names the program in messages: "evring-bench", or "evring" for the CLI verb,
    // whose own --help lists the flags (one line, as every evring error).
    const std::string prog = argc > 0 ? argv[0] : "evring-bench";
    std::fprintf(stderr, "%s: %s\n", prog.c_str(), e.what());
    if (prog == "evring-bench") std::fprintf(stderr, "%s\n", kUsage);
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: FAILED: %s\n", argc > 0 ? argv[0] : "evring-bench", e.what());
    return 1;
  }
}

}  // namespace evring::bench
