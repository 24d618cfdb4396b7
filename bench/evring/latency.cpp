// evring-bench latency: open-loop one-way latency from the scheduled send, and the round trip
// over two buses beside the cache-line ping-pong.
#include "harness.h"

namespace evring::bench::harness {
namespace {

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
  uint64_t cpu_wait_ns[2] = {0, 0};  // sender, receiver (cpu_wait.h)
};

struct RoundTripResult {
  core::Histogram rtt;
  uint64_t cpu_wait_ns[2] = {0, 0};  // initiator, echo
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
        p->set_exclusive(o.exclusive);
        const uint16_t type = must(p->resolve("lat.event"), "resolve");
        core::PublishRequest req = make_request(*p, type);
        std::vector<std::byte> buf(o.payload);
        ctl->peer_ready.store(1, std::memory_order_release);
        uint64_t start;
        while ((start = go->load(std::memory_order_acquire)) == 0) {
        }
        const CpuWait waited;
        const uint64_t n = static_cast<uint64_t>(o.seconds * o.rate);
        for (uint64_t k = 0; k < n; ++k) {
          const uint64_t sched = start + k * interval;
          uint64_t t;
          while ((t = now_ns()) < sched) {
          }
          publish_stamped(*p, req, buf, k, sched, t);
        }
        ctl->cpu_wait_ns[0].store(waited.elapsed_ns(), std::memory_order_relaxed);
        publish_stamped(*p, req, buf, kStop, 0, 0);
      },
      [&] {
        pin_current_thread(o.cpus[1 % o.cpus.size()]);
        while (ctl->peer_ready.load(std::memory_order_acquire) == 0) {
        }
        go->store(now_ns() + 10'000'000, std::memory_order_release);  // 10 ms settle
        const CpuWait waited;
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
        res.cpu_wait_ns[1] = waited.elapsed_ns();
      });
  res.cpu_wait_ns[0] = ctl->cpu_wait_ns[0].load(std::memory_order_relaxed);
  munmap(ctl, sizeof(PeerControl));
  munmap(go, sizeof(std::atomic<uint64_t>));
  return res;
}

RoundTripResult round_trip(const Options& o) {
  const std::string a = unique_name("ping"), b = unique_name("pong");
  auto bus_a = must(Bus::create(a, latency_bus_options(o)), "Bus::create ping");
  BusGuard ga{a};
  auto bus_b = must(Bus::create(b, latency_bus_options(o)), "Bus::create pong");
  BusGuard gb{b};
  auto back = must(bus_b->consumer("initiator"), "Bus::consumer pong");
  auto out = must(bus_a->producer("ping", {"ping"}), "Bus::producer ping");
  out->set_exclusive(o.exclusive);
  const uint16_t ping_type = must(out->resolve("ping.event"), "resolve ping");
  auto* ctl = shared_anon<PeerControl>();
  RoundTripResult res;
  core::Histogram& h = res.rtt;
  run_forked(
      ctl->err, sizeof(ctl->err),
      [&] {
        pin_current_thread(o.cpus[1 % o.cpus.size()]);
        auto ba = must(Bus::open(a), "Bus::open ping");
        auto bb = must(Bus::open(b), "Bus::open pong");
        auto in = must(ba->consumer("echo"), "Bus::consumer ping");
        auto p = must(bb->producer("pong", {"pong"}), "Bus::producer pong");
        p->set_exclusive(o.exclusive);
        const uint16_t type = must(p->resolve("pong.event"), "resolve pong");
        core::PublishRequest req = make_request(*p, type);
        std::vector<std::byte> buf(o.payload);
        ctl->peer_ready.store(1, std::memory_order_release);
        const CpuWait waited;
        bool done = false;
        auto echo = [&](const core::Event& e) {
          uint64_t seq, t;
          std::memcpy(&seq, e.view.payload.data(), 8);
          std::memcpy(&t, e.view.payload.data() + 8, 8);
          if (seq == kStop) done = true;
          else publish_stamped(*p, req, buf, seq, t, 0);
        };
        while (!done) (void)in->poll(echo, 64);
        ctl->cpu_wait_ns[1].store(waited.elapsed_ns(), std::memory_order_relaxed);
      },
      [&] {
        pin_current_thread(o.cpus[0]);
        while (ctl->peer_ready.load(std::memory_order_acquire) == 0) {
        }
        core::PublishRequest req = make_request(*out, ping_type);
        std::vector<std::byte> buf(o.payload);
        Watchdog dog(static_cast<unsigned>(o.seconds) + 30);
        const CpuWait waited;
        uint64_t got = ~0ull;
        auto on_pong = [&](const core::Event& e) { std::memcpy(&got, e.view.payload.data(), 8); };
        const RoundTripSchedule schedule(now_ns(), o.seconds);
        for (uint64_t i = 0;; ++i) {
          const uint64_t t = now_ns();
          if (!schedule.go_on(t, h.count())) break;
          publish_stamped(*out, req, buf, i, t, t);
          while (back->poll(on_pong, 1).delivered == 0) {
          }
          const uint64_t rtt = now_ns() - t;
          if (got != i) throw std::runtime_error("pong out of order");
          if (!schedule.warming_up(i, t)) h.record(rtt);
        }
        res.cpu_wait_ns[0] = waited.elapsed_ns();
        publish_stamped(*out, req, buf, kStop, 0, 0);
      });
  // Read after run_forked() reaped the echo process.
  res.cpu_wait_ns[1] = ctl->cpu_wait_ns[1].load(std::memory_order_relaxed);
  munmap(ctl, sizeof(PeerControl));
  return res;
}

double ms(uint64_t ns) { return static_cast<double>(ns) / 1e6; }

}  // namespace

int run_latency(const Options& o) {
  set_activity("evring one-way latency");
  LatencyResult lr = one_way(o);
  set_activity("evring round trip");
  const RoundTripResult rt = round_trip(o);
  const core::Histogram& rtt = rt.rtt;
  double peer_rtt50 = 0, peer_rtt99 = 0;
  uint64_t peer_wait_ns = 0;
  if (o.peers) {
    set_activity("pingpong");
    CaseConfig pc;
    pc.producer_cpu = o.cpus[0];
    pc.consumer_cpu = o.cpus[1 % o.cpus.size()];
    pc.seconds = o.seconds;
    pc.payload_bytes = o.payload;
    (void)take_cpu_wait_ns();
    for (const Metric& m : run_pingpong(pc)) {
      if (m.name == "rtt_p50_ns") peer_rtt50 = m.value;
      if (m.name == "rtt_p99_ns") peer_rtt99 = m.value;
    }
    peer_wait_ns = take_cpu_wait_ns();
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
              "wait %s  timer overhead %.1f ns  clock %s (clocksource %s)\n",
              cpu_model_name().c_str(), o.cpus[0], o.cpus[1 % o.cpus.size()], o.payload, o.rate,
              o.seconds, o.wait.c_str(), timer_overhead_ns(), event_clock().c_str(),
              kernel_clocksource().c_str());
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
  std::printf("cpu wait (ms): one-way sender %.2f receiver %.2f; round trip initiator %.2f echo "
              "%.2f",
              ms(lr.cpu_wait_ns[0]), ms(lr.cpu_wait_ns[1]), ms(rt.cpu_wait_ns[0]),
              ms(rt.cpu_wait_ns[1]));
  if (o.peers) std::printf("; pingpong %.2f", ms(peer_wait_ns));
  std::printf("\n");
  // A blocking receiver's wake-ups count as waits too: the note is for the spinning ones.
  const bool receiver_spins = o.wait == "spin";
  for (auto [who, ns] : {std::pair<const char*, uint64_t>{"one-way sender", lr.cpu_wait_ns[0]},
                         {"one-way receiver", receiver_spins ? lr.cpu_wait_ns[1] : 0},
                         {"round-trip initiator", rt.cpu_wait_ns[0]},
                         {"round-trip echo", rt.cpu_wait_ns[1]},
                         {"pingpong", peer_wait_ns}})
    if (const char* note = disturbed_note(ns, o.seconds))
      std::printf("note: the %s waited %.1f ms for its CPU; %s\n", who, ms(ns), note);
  if (o.json) {
    std::ostringstream j;
    j << "{\"mode\":\"latency\",\"payload\":" << o.payload << ",\"rate\":" << fmt(o.rate)
      << ",\"seconds\":" << o.seconds << ",\"wait\":\"" << o.wait << "\",\"event_clock\":\""
      << event_clock() << "\",\"clocksource\":\"" << kernel_clocksource()
      << "\",\"count\":" << h.count()
      << ",\"p50_ns\":" << p(h, 50) << ",\"p90_ns\":" << p(h, 90) << ",\"p99_ns\":" << p(h, 99)
      << ",\"p999_ns\":" << p(h, 99.9) << ",\"p9999_ns\":" << p(h, 99.99)
      << ",\"max_ns\":" << h.max() << ",\"rtt_p50_ns\":" << p(rtt, 50)
      << ",\"rtt_p99_ns\":" << p(rtt, 99) << ",\"rtt_p999_ns\":" << p(rtt, 99.9)
      << ",\"rtt_max_ns\":" << rtt.max() << ",\"rtt_count\":" << rtt.count()
      << ",\"cpu_wait_ns\":{\"one_way\":[" << lr.cpu_wait_ns[0] << "," << lr.cpu_wait_ns[1]
      << "],\"round_trip\":[" << rt.cpu_wait_ns[0] << "," << rt.cpu_wait_ns[1] << "]";
    if (o.peers) j << ",\"pingpong\":" << peer_wait_ns;
    j << "}";
    if (o.peers)
      j << ",\"pingpong_rtt_p50_ns\":" << fmt(peer_rtt50) << ",\"pingpong_rtt_p99_ns\":"
        << fmt(peer_rtt99) << ",\"rtt_p50_ratio_vs_pingpong\":"
        << fmt(static_cast<double>(p(rtt, 50)) / peer_rtt50, 4);
    j << "}";
    std::printf("%s\n", j.str().c_str());
  }
  return 0;
}

}  // namespace evring::bench::harness
