// evring-bench throughput: producer and consumer processes on one bus, every event accounted
// for, alternating with evring-peers cases (--against, bare_spsc unless told) for same-run ratios.
#include "harness.h"

namespace evring::bench::harness {
namespace {

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
    uint64_t published, rejected, duplicates, end_ns, cpu_wait_ns;
  } prod[kMaxProcs];
  struct alignas(128) Cons {
    uint64_t delivered, gaps, skipped, last_ns, cpu_wait_ns;
  } cons[kMaxProcs];
  char err[512];
};

struct ThroughputRun {
  double events_per_sec = 0, bytes_per_sec = 0, elapsed_s = 0;
  uint64_t published = 0, rejected = 0;
  std::vector<uint64_t> delivered, rejected_per_producer;
  std::vector<uint64_t> cpu_wait_ns;  // per process, producers first (cpu_wait.h)
  uint64_t max_cpu_wait_ns() const {
    return cpu_wait_ns.empty() ? 0 : *std::max_element(cpu_wait_ns.begin(), cpu_wait_ns.end());
  }
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
  prod->set_exclusive(o.exclusive);
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
  const CpuWait cpu_wait;
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
  sh->prod[idx] = {seq - dups, rejected, dups, now_ns(), cpu_wait.elapsed_ns()};
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
  while (sh->go.load(std::memory_order_acquire) == 0) {
  }
  const CpuWait cpu_wait;
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
  sh->cons[idx] = {delivered, gaps, skipped, last, cpu_wait.elapsed_ns()};
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
    r.cpu_wait_ns.push_back(sh->prod[i].cpu_wait_ns);
    if (sh->prod[i].duplicates)
      throw std::runtime_error("producer " + std::to_string(i) + ": " +
                               std::to_string(sh->prod[i].duplicates) + " unexpected kDuplicate");
  }
  for (int i = 0; i < o.consumers; ++i) {
    r.delivered.push_back(sh->cons[i].delivered);
    r.cpu_wait_ns.push_back(sh->cons[i].cpu_wait_ns);
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

// What issue #5 asks of evring against a reference, where it asks something.
const char* target_against(const std::string& name) {
  if (name == "bare_spsc") return " (target >= 0.6)";
  if (name == "bare_spsc_slot") return " (target >= 0.8)";
  if (name == "boost_mq") return " (target >= 8)";
  return "";
}

}  // namespace

int run_throughput(const Options& o) {
  std::vector<double> eps, bps;
  std::vector<std::vector<double>> peer_eps(o.against.size());  // per --against case, per run
  std::vector<std::vector<uint64_t>> peer_wait(o.against.size());  // the same, CPU wait (ns)
  std::vector<ThroughputRun> runs;
  CaseConfig pc;
  pc.producer_cpu = o.cpus[0];
  pc.consumer_cpu = o.cpus[1 % o.cpus.size()];
  pc.seconds = o.seconds;
  pc.payload_bytes = o.payload;
  pc.slot_bytes = slot_bytes_for(8, o.payload);  // bare_spsc_slot moves what one slot holds
  pc.span_bytes = span_bytes_for(8, o.payload);  // bare_spsc_span moves the lines an event spans
  std::vector<CaseFn> peer_fns;
  for (const std::string& name : o.against)
    for (const CaseInfo& c : all_cases(pc))
      if (name == c.name) peer_fns.push_back(c.run);  // parse() checked every name
  for (int i = 0; i < o.runs; ++i) {
    set_activity("evring throughput");
    runs.push_back(throughput_once(o));
    eps.push_back(runs.back().events_per_sec);
    bps.push_back(runs.back().bytes_per_sec);
    // Interleaved: evring, then each reference once, then evring again.
    for (std::size_t k = 0; k < o.against.size(); ++k) {
      set_activity(o.against[k].c_str());
      double rate = 0;
      (void)take_cpu_wait_ns();
      for (const Metric& m : peer_fns[k](pc))
        if (m.name == "msgs_per_s") rate = m.value;
      peer_wait[k].push_back(take_cpu_wait_ns());
      if (rate <= 0) throw std::runtime_error(o.against[k] + " reported no msgs_per_s");
      peer_eps[k].push_back(rate);
    }
  }
  const Summary se = summarize(eps), sb = summarize(bps);
  if (!build_warning().empty()) std::cerr << build_warning() << "\n";
  std::string cpu_list;  // every process's CPU, producers first (throughput_cpu)
  for (int i = 0; i < o.producers + o.consumers; ++i)
    cpu_list += (i ? "," : "") + std::to_string(throughput_cpu(o, i));
  std::printf("evring-bench throughput  cpu: %s  cpus %s  payload %zu B  partitions %u  "
              "producers %d  consumers %d  batch %zu  dedup %s  %.2f s x %d runs  "
              "clock %s (clocksource %s)\n",
              cpu_model_name().c_str(), cpu_list.c_str(), o.payload, o.partitions, o.producers,
              o.consumers, o.batch, o.dedup ? "on" : "off", o.seconds, o.runs,
              event_clock().c_str(), kernel_clocksource().c_str());
  std::printf("%-4s %16s %16s %14s %12s %13s  %s\n", "run", "events_per_sec", "bytes_per_sec",
              "published", "rejected", "cpu_wait_ms", "delivered per consumer");
  for (size_t i = 0; i < runs.size(); ++i) {
    std::string d;
    for (auto v : runs[i].delivered) d += std::to_string(v) + " ";
    std::printf("%-4zu %16.0f %16.0f %14llu %12llu %13.2f  %s\n", i, runs[i].events_per_sec,
                runs[i].bytes_per_sec, static_cast<unsigned long long>(runs[i].published),
                static_cast<unsigned long long>(runs[i].rejected),
                static_cast<double>(runs[i].max_cpu_wait_ns()) / 1e6, d.c_str());
  }
  // Processes that share a CPU (more of them than --cpus lists) wait for each other: that is
  // the measurement, not a disturbance.
  std::vector<int> used;
  for (int i = 0; i < o.producers + o.consumers; ++i) used.push_back(throughput_cpu(o, i));
  std::sort(used.begin(), used.end());
  const long distinct = std::unique(used.begin(), used.end()) - used.begin();
  const bool shared_cpus = distinct < o.producers + o.consumers;
  if (shared_cpus)
    std::printf("note: %d processes on %ld CPUs take turns, so cpu_wait_ms is their "
                "turn-taking, not a disturbance\n",
                o.producers + o.consumers, distinct);
  for (size_t i = 0; i < runs.size() && !shared_cpus; ++i) {
    const std::vector<uint64_t>& w = runs[i].cpu_wait_ns;
    const size_t who = static_cast<size_t>(std::max_element(w.begin(), w.end()) - w.begin());
    if (const char* note = disturbed_note(w[who], runs[i].elapsed_s))
      std::printf("note: run %zu: %s %zu (CPU %d) waited %.1f ms for its CPU; %s\n", i,
                  static_cast<int>(who) < o.producers ? "producer" : "consumer",
                  static_cast<int>(who) < o.producers ? who : who - o.producers,
                  throughput_cpu(o, static_cast<int>(who)), static_cast<double>(w[who]) / 1e6,
                  note);
  }
  std::printf("median events_per_sec %.0f (min %.0f max %.0f); bytes_per_sec %.0f; all events "
              "accounted for, per-(producer,key) order verified\n",
              se.median, se.min, se.max, sb.median);
  std::vector<Summary> sp, sr;
  for (std::size_t k = 0; k < o.against.size(); ++k) {
    sp.push_back(summarize(peer_eps[k]));
    // Each evring run over the run of the case right after it: a host that changes speed
    // between runs moves both sides of a ratio, not one side of the ratio of medians.
    std::vector<double> per_run;
    for (std::size_t i = 0; i < eps.size(); ++i) per_run.push_back(eps[i] / peer_eps[k][i]);
    sr.push_back(summarize(per_run));
    const std::string what =
        o.against[k] == "bare_spsc_slot"
            ? " (" + std::to_string(pc.slot_bytes) + " B messages, one slot)"
        : o.against[k] == "bare_spsc_span"
            ? " (" + std::to_string(pc.span_bytes) + " B messages, the lines one event spans)"
            : "";
    std::printf(
        "peers %s%s msgs_per_s median %.0f (min %.0f max %.0f); ratio evring/%s %.3f%s; "
        "per run %.3f (%.3f-%.3f)\n",
        o.against[k].c_str(), what.c_str(), sp[k].median, sp[k].min, sp[k].max,
        o.against[k].c_str(), se.median / sp[k].median, target_against(o.against[k]), sr[k].median,
        sr[k].min, sr[k].max);
    for (std::size_t i = 0; i < peer_wait[k].size(); ++i)
      if (const char* note = disturbed_note(peer_wait[k][i], o.seconds))
        std::printf("note: %s run %zu: a process waited %.1f ms for its CPU; %s\n",
                    o.against[k].c_str(), i, static_cast<double>(peer_wait[k][i]) / 1e6, note);
  }
  if (o.json) {
    std::ostringstream j;
    j << "{\"mode\":\"throughput\",\"payload\":" << o.payload << ",\"partitions\":" << o.partitions
      << ",\"producers\":" << o.producers << ",\"consumers\":" << o.consumers
      << ",\"batch\":" << o.batch << ",\"dedup\":" << (o.dedup ? "true" : "false")
      << ",\"seconds\":" << o.seconds << ",\"event_clock\":\"" << event_clock()
      << "\",\"clocksource\":\"" << kernel_clocksource() << "\",\"runs\":[";
    for (size_t i = 0; i < runs.size(); ++i) {
      j << (i ? "," : "") << "{\"events_per_sec\":" << fmt(runs[i].events_per_sec)
        << ",\"bytes_per_sec\":" << fmt(runs[i].bytes_per_sec)
        << ",\"published\":" << runs[i].published << ",\"rejected\":" << runs[i].rejected
        << ",\"rejected_per_producer\":" << json_list(runs[i].rejected_per_producer)
        << ",\"delivered_per_consumer\":" << json_list(runs[i].delivered)
        << ",\"cpu_wait_ns\":" << json_list(runs[i].cpu_wait_ns) << "}";
    }
    j << "],\"events_per_sec\":{\"median\":" << fmt(se.median) << ",\"min\":" << fmt(se.min)
      << ",\"max\":" << fmt(se.max) << "},\"bytes_per_sec_median\":" << fmt(sb.median);
    for (std::size_t k = 0; k < o.against.size(); ++k) {
      if (o.against[k] != "bare_spsc") continue;  // its figures under their original names too
      j << ",\"bare_spsc_msgs_per_sec\":{\"median\":" << fmt(sp[k].median) << ",\"min\":"
        << fmt(sp[k].min) << ",\"max\":" << fmt(sp[k].max)
        << "},\"ratio_vs_bare_spsc\":" << fmt(se.median / sp[k].median, 4);
    }
    if (!o.against.empty()) {
      j << ",\"against\":{";
      for (std::size_t k = 0; k < o.against.size(); ++k) {
        j << (k ? "," : "") << "\"" << o.against[k]
          << "\":{\"msgs_per_sec\":{\"median\":" << fmt(sp[k].median)
          << ",\"min\":" << fmt(sp[k].min) << ",\"max\":" << fmt(sp[k].max)
          << "},\"runs\":" << json_doubles(peer_eps[k])
          << ",\"cpu_wait_ns\":" << json_list(peer_wait[k])
          << ",\"ratio\":" << fmt(se.median / sp[k].median, 4)
          << ",\"ratio_per_run\":{\"median\":" << fmt(sr[k].median, 4)
          << ",\"min\":" << fmt(sr[k].min, 4) << ",\"max\":" << fmt(sr[k].max, 4) << "}}";
      }
      j << "}";
    }
    j << "}";
    std::printf("%s\n", j.str().c_str());
  }
  return 0;
}

}  // namespace evring::bench::harness
