// exporter: serves the counters and latency histograms of buses to Prometheus (tools/README.md,
// "evring exporter").
//
// Every scrape opens each bus read-only, reads its counters with relaxed/acquire loads (as stat
// does) and unmaps it again: nothing is cached, nothing is written to the segment, and a bus
// that was removed or re-created between scrapes is seen as it is now (evring_bus_up). The
// exporter's only cost to a running bus is the cache traffic of reading its counter lines once
// per scrape. Values read from the segment are untrusted: latency histograms whose counts fail
// validation are left out and counted in evring_read_errors.
//
// Threads: prometheus-cpp's HTTP server (civetweb) calls Collect() on its own threads, possibly
// at once; BusCollector keeps no state besides the bus names, so that needs no locking.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <prometheus/collectable.h>
#include <prometheus/exposer.h>
#include <prometheus/metric_family.h>
#include <string>
#include <vector>

#include "cli_common.h"
#include "evring/core/histogram.h"
#include "evring/shm/bus.h"
#include "evring/shm/idempotent.h"

namespace evring::cli {

void add_exporter_verb(CLI::App& app, VerbList& verbs);

namespace {

namespace prom = prometheus;

struct ExporterArgs {
  std::vector<std::string> buses;
  std::string listen;
};

// Upper bounds (ns) of the latency histogram's Prometheus buckets: 1-2.5-5 per decade from
// 100 ns to 10 s, then +Inf. A segment bucket is counted under the first bound at or above its
// highest value, so a Prometheus bucket may miss observations that lie within 1% below its
// bound (the segment buckets' resolution); never the reverse.
constexpr std::uint64_t kLatencyBoundsNs[] = {
    100,        250,        500,         1'000,       2'500,         5'000,
    10'000,     25'000,     50'000,      100'000,     250'000,       500'000,
    1'000'000,  2'500'000,  5'000'000,   10'000'000,  25'000'000,    50'000'000,
    100'000'000, 250'000'000, 500'000'000, 1'000'000'000, 2'500'000'000, 5'000'000'000,
    10'000'000'000};

// Label values come from shared memory: keep printable ASCII only (the exposition escapes
// quotes and backslashes itself).
std::string label_value(std::string_view raw) {
  std::string out;
  out.reserve(raw.size());
  for (char c : raw) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  return out;
}

// Metric families of one scrape, in a stable order (by name), each created on first use.
class Families {
 public:
  void gauge(const std::string& name, const std::string& help, prom::ClientMetric::Label labels[],
             std::size_t n, double value) {
    prom::ClientMetric& m = add(name, help, prom::MetricType::Gauge, labels, n);
    m.gauge.value = value;
  }
  void counter(const std::string& name, const std::string& help,
               prom::ClientMetric::Label labels[], std::size_t n, double value) {
    prom::ClientMetric& m = add(name, help, prom::MetricType::Counter, labels, n);
    m.counter.value = value;
  }
  void histogram(const std::string& name, const std::string& help,
                 prom::ClientMetric::Label labels[], std::size_t n, const core::Histogram& h) {
    prom::ClientMetric& m = add(name, help, prom::MetricType::Histogram, labels, n);
    m.histogram.sample_count = h.count();
    m.histogram.sample_sum = h.mean() * static_cast<double>(h.count()) / 1e9;
    std::uint64_t cumulative = 0;
    std::size_t i = 0;
    for (std::uint64_t bound : kLatencyBoundsNs) {
      for (; i < core::kHistogramCountsLen && core::histogram_bucket_highest_ns(i) <= bound; ++i)
        cumulative += h.count_at_index(i);
      m.histogram.bucket.push_back({cumulative, static_cast<double>(bound) / 1e9});
    }
    m.histogram.bucket.push_back({h.count(), std::numeric_limits<double>::infinity()});
  }
  std::vector<prom::MetricFamily> take() {
    std::vector<prom::MetricFamily> out;
    out.reserve(families_.size());
    for (auto& [name, family] : families_) out.push_back(std::move(family));
    return out;
  }

 private:
  prom::ClientMetric& add(const std::string& name, const std::string& help,
                          prom::MetricType type, prom::ClientMetric::Label labels[],
                          std::size_t n) {
    prom::MetricFamily& f = families_[name];
    if (f.name.empty()) {
      f.name = name;
      f.help = help;
      f.type = type;
    }
    prom::ClientMetric& m = f.metric.emplace_back();
    m.label.assign(labels, labels + n);
    return m;
  }
  std::map<std::string, prom::MetricFamily> families_;
};

using L = prom::ClientMetric::Label;

void collect_bus(const std::string& name, Families& f) {
  L bus_label{"bus", label_value(name)};
  auto opened = Bus::open(name, Access::kReadOnly);
  {
    L l[] = {bus_label};
    f.gauge("evring_bus_up", "1 when the bus could be opened and read at this scrape", l, 1,
            opened.ok() ? 1 : 0);
  }
  if (!opened.ok()) return;
  const Bus& bus = **opened;
  const shm::SegmentHeader& hdr = bus.header();
  const core::RingRegion& ring = bus.ring();
  const core::RingConfig& c = ring.config();
  std::uint64_t read_errors = 0;
  {
    L l[] = {bus_label, {"overflow", std::string(overflow_name(c.overflow))},
             {"partitions", std::to_string(c.partitions)},
             {"slots", std::to_string(c.slots_per_partition)},
             {"slot_bytes", std::to_string(c.slot_bytes)}};
    f.gauge("evring_bus_info", "Geometry of the bus (value is always 1)", l, 5, 1);
    L b[] = {bus_label};
    f.gauge("evring_bus_size_bytes", "Size of the bus segment", b, 1,
            static_cast<double>(hdr.segment_bytes));
  }

  std::vector<std::uint64_t> heads(c.partitions);
  for (std::uint32_t p = 0; p < c.partitions; ++p) {
    const core::PartitionHeader& ph = ring.partition(p);
    // Relaxed loads: counters read for display; nothing else is read on the strength of them.
    heads[p] = ph.head.load(std::memory_order_relaxed);
    L l[] = {bus_label, {"partition", std::to_string(p)}};
    f.gauge("evring_partition_head", "Next sequence to be claimed in the partition", l, 2,
            static_cast<double>(heads[p]));
    f.counter("evring_published_total", "Events published into the partition (its head)", l, 2,
              static_cast<double>(heads[p]));
    f.counter("evring_rejected_total", "Publishes refused because the ring was full (reject mode)",
              l, 2, static_cast<double>(ph.rejected.load(std::memory_order_relaxed)));
    f.counter("evring_abandoned_total",
              "Claimed slots abandoned because their writer gave up or died", l, 2,
              static_cast<double>(ph.abandoned.load(std::memory_order_relaxed)));
    f.counter("evring_deduplicated_total", "Publishes dropped as duplicates by the dedup filter",
              l, 2, static_cast<double>(ph.deduplicated.load(std::memory_order_relaxed)));
    // lane + 1 of the exclusive or biased holder (core/ring_layout.h), written by another
    // process.
    const std::uint32_t owner = ph.exclusive_owner.load(std::memory_order_relaxed);
    const std::uint32_t mark = core::owner_lane_mark(owner);
    double holder = 0;
    if (owner != 0)
      holder = mark != 0 && mark - 1 < c.producer_lanes ? ring.lane(mark - 1).producer_id : -1.0;
    const bool biased = core::owner_biased(owner);
    f.gauge("evring_partition_exclusive_producer",
            "Producer id holding the partition exclusively; 0 shared, -1 a mark naming no lane", l,
            2, biased ? 0.0 : holder);
    f.gauge("evring_partition_biased_producer",
            "Producer id the partition is biased to (publishing there alone, revoked by the next "
            "other producer); 0 none, -1 a mark naming no lane",
            l, 2, biased ? holder : 0.0);
    f.counter("evring_bias_revocations_total",
              "Biases revoked because another producer published into the partition", l, 2,
              static_cast<double>(ph.bias_revocations.load(std::memory_order_relaxed)));
  }

  for (const ConsumerInfo& ci : bus.consumers()) {
    if (ci.index >= c.max_consumers) {  // registry and ring disagree: untrusted index
      ++read_errors;
      continue;
    }
    L who[] = {bus_label, {"consumer", label_value(ci.name)}};
    f.gauge("evring_consumer_attached", "1 when the consumer is attached (gates producers)", who,
            2, ci.attached ? 1 : 0);
    f.gauge("evring_consumer_alive", "1 when the consumer's process is running", who, 2,
            ci.alive ? 1 : 0);
    f.gauge("evring_consumer_last_seen_seconds",
            "Unix time of the consumer's last delivering poll (heartbeat, ~10 ms resolution)", who,
            2, static_cast<double>(ci.last_seen_unix_ns) / 1e9);
    for (std::uint32_t p = 0; p < c.partitions; ++p) {
      const core::CursorLine& line = ring.cursor(ci.index, p);
      // Acquire, as stat: pairs with the consumer's release of its cursor.
      const std::uint64_t committed = line.committed.load(std::memory_order_acquire);
      L l[] = {bus_label, who[1], {"partition", std::to_string(p)}};
      f.gauge("evring_consumer_committed", "Consumer's durable cursor: next sequence to read", l,
              3, static_cast<double>(committed));
      f.gauge("evring_consumer_lag", "Events published but not yet consumed (head - cursor)", l,
              3, static_cast<double>(heads[p] > committed ? heads[p] - committed : 0));
      // Relaxed: statistics, as above.
      f.counter("evring_consumer_delivered_total", "Events handed to the consumer's handler", l,
                3, static_cast<double>(line.delivered.load(std::memory_order_relaxed)));
      f.counter("evring_consumer_gaps_total",
                "Events the consumer lost because the ring overwrote them (overwrite mode)", l, 3,
                static_cast<double>(line.gaps.load(std::memory_order_relaxed)));
      f.counter("evring_consumer_filtered_total", "Events skipped by the consumer's pattern", l,
                3, static_cast<double>(line.filtered.load(std::memory_order_relaxed)));
      f.counter("evring_consumer_corrupt_total", "Slots that failed validation and were skipped",
                l, 3, static_cast<double>(line.corrupt.load(std::memory_order_relaxed)));
      f.counter("evring_consumer_abandoned_total", "Abandoned slots the consumer skipped", l, 3,
                static_cast<double>(line.abandoned.load(std::memory_order_relaxed)));
    }
    auto latency = ci.latency_snapshot();
    if (latency.ok())
      f.histogram("evring_consumer_delivery_latency_seconds",
                  "Delivery latency (delivery time - publish timestamp) of the consumer's events",
                  who, 2, *latency);
    else
      ++read_errors;
    if (hdr.idempotency_keys != 0) {
      auto table = shm::IdempotencyTableReader::attach(bus.idempotency_table(ci.index),
                                                       hdr.idempotency_keys);
      if (table.ok()) {
        const shm::IdempotencyStats st = table->stats();
        f.gauge("evring_idempotency_keys", "Capacity of the consumer's idempotency table", who, 2,
                st.keys);
        f.gauge("evring_idempotency_remembered", "Keys currently remembered as handled", who, 2,
                static_cast<double>(st.remembered));
        f.counter("evring_idempotency_handled_total",
                  "Handler calls that returned, through the idempotent helper", who, 2,
                  static_cast<double>(st.handled));
        f.counter("evring_idempotency_duplicates_skipped_total",
                  "Deliveries skipped as already handled", who, 2,
                  static_cast<double>(st.duplicates_skipped));
      } else {
        ++read_errors;
      }
    }
  }

  for (const ProducerInfo& p : bus.producers()) {
    L l[] = {bus_label, {"producer", label_value(p.service)}, {"id", std::to_string(p.id)}};
    f.gauge("evring_producer_alive", "1 when the producer's process is running", l, 3,
            p.alive ? 1 : 0);
  }
  for (const TypeInfo& t : bus.types()) {
    L l[] = {bus_label, {"event_type", label_value(t.name)}, {"id", std::to_string(t.id)},
             {"schema_version", std::to_string(t.schema_version)},
             {"classification", std::string(classification_name(t.classification))}};
    f.gauge("evring_event_type_info", "An event type registered on the bus (value is always 1)", l,
            5, 1);
  }
  L b[] = {bus_label};
  f.gauge("evring_read_errors",
          "Parts of the segment that failed validation at this scrape (left out of the output)",
          b, 1, static_cast<double>(read_errors));
}

class BusCollector : public prom::Collectable {
 public:
  explicit BusCollector(std::vector<std::string> buses) : buses_(std::move(buses)) {}
  std::vector<prom::MetricFamily> Collect() const override {
    Families f;
    for (const std::string& name : buses_) collect_bus(name, f);
    return f.take();
  }

 private:
  const std::vector<std::string> buses_;
};

struct ListenAddress {
  std::string host;
  std::uint16_t port = 0;
  sockaddr_in addr{};
};

// "IPv4:PORT", e.g. 127.0.0.1:9464.
Result<ListenAddress> parse_listen(const std::string& text) {
  const std::size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0)
    return Status::invalid_argument("--listen '" + text +
                                    "' must be IPV4:PORT, e.g. 127.0.0.1:9464");
  ListenAddress a;
  a.host = text.substr(0, colon);
  a.addr.sin_family = AF_INET;
  if (inet_pton(AF_INET, a.host.c_str(), &a.addr.sin_addr) != 1)
    return Status::invalid_argument("--listen '" + text + "': '" + a.host +
                                    "' is not an IPv4 address such as 127.0.0.1");
  auto port = parse_uint(text.substr(colon + 1), "--listen port");
  if (!port.ok()) return port.status();
  if (*port == 0 || *port > 65535)
    return Status::invalid_argument("--listen '" + text + "': port must be 1..65535");
  a.port = static_cast<std::uint16_t>(*port);
  a.addr.sin_port = htons(a.port);
  return a;
}

// Binds (and releases) the address first, to turn the HTTP server's generic start failure into
// a specific one: in use, not an address of this host, or a privileged port.
Status probe_listen(const ListenAddress& a, const std::string& text) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::from_errno(errno, "creating a socket");
  const int one = 1;
  (void)::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);  // as the server does
  int err = 0;
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&a.addr), sizeof a.addr) != 0 ||
      ::listen(fd, 1) != 0)
    err = errno;
  ::close(fd);
  if (err == 0) return Status::ok();
  if (err == EADDRINUSE)
    return Status(Code::kUnavailable,
                  "--listen " + text + ": port " + std::to_string(a.port) +
                      " is already in use on " + a.host,
                  err);
  if (err == EADDRNOTAVAIL)
    return Status::invalid_argument("--listen " + text + ": " + a.host +
                                    " is not an address of this host");
  if (err == EACCES)
    return Status(Code::kPermissionDenied,
                  "--listen " + text + ": binding port " + std::to_string(a.port) +
                      " needs privileges",
                  err);
  return Status::from_errno(err, "--listen " + text);
}

int run_exporter(const ExporterArgs& a) {
  auto listen = parse_listen(a.listen);
  if (!listen.ok()) return fail(listen.status());
  // Every bus must exist at start (a typo should not serve an empty page forever); later a
  // missing bus is reported by evring_bus_up 0.
  for (std::size_t i = 0; i < a.buses.size(); ++i) {
    const std::string& name = a.buses[i];
    // The same series twice in one exposition is invalid: Prometheus would drop the scrape.
    for (std::size_t j = 0; j < i; ++j)
      if (a.buses[j] == name)
        return fail(Status::invalid_argument("bus '" + name + "' is named twice"));
    auto bus = Bus::open(name, Access::kReadOnly);
    if (!bus.ok()) return fail(bus.status());
  }
  if (Status s = probe_listen(*listen, a.listen); !s.is_ok()) return fail(s);

  // Block the stop signals before the server starts its threads (they inherit the mask), then
  // wait for one here.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto collector = std::make_shared<BusCollector>(a.buses);
  std::unique_ptr<prom::Exposer> exposer;
  try {
    exposer = std::make_unique<prom::Exposer>(listen->host + ":" + std::to_string(listen->port), 2);
  } catch (const std::exception& e) {
    return fail(Status::unavailable("--listen " + a.listen + ": the HTTP server did not start (" +
                                    e.what() + ")"));
  }
  exposer->RegisterCollectable(collector);
  std::string names;
  for (const std::string& n : a.buses) names += (names.empty() ? "" : ", ") + n;
  std::printf("evring exporter: serving %s on http://%s:%u/metrics\n", names.c_str(),
              listen->host.c_str(), static_cast<unsigned>(listen->port));
  std::fflush(stdout);
  int sig = 0;
  while (sigwait(&stop, &sig) != 0) {
  }
  return kExitOk;
}

}  // namespace

void add_exporter_verb(CLI::App& app, VerbList& verbs) {
  auto args = std::make_shared<ExporterArgs>();
  CLI::App* cmd = app.add_subcommand(
      "exporter",
      "Serve the counters and latency histograms of buses to Prometheus (read-only; runs until "
      "SIGINT/SIGTERM)");
  cmd->add_option("BUS", args->buses, "Bus names")->required();
  cmd->add_option("--listen", args->listen, "Address to serve /metrics on: IPV4:PORT")
      ->type_name("IPV4:PORT")
      ->required();
  verbs.push_back({cmd, [args] { return run_exporter(*args); }});
}

}  // namespace evring::cli
