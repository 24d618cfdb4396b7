// Admin verbs: create, ls, rm, stat.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>
#include <string>

#include "cli_common.h"
#include "evring/shm/bus.h"
#include "evring/shm/idempotent.h"
#include "json_render.h"
#include "latency_render.h"

namespace evring::cli {
namespace {

// ------------------------------------------------------------------------------------ create

struct CreateArgs {
  std::string bus;
  std::string partitions, slots, slot_size, overflow = "reject", mode = "0600";
  std::string max_consumers, max_producers;
  std::string dedup_window, dedup_bits_per_key;
  bool huge_pages = false;
};

// "dedup window 64 events" / "dedup window 2048 events or 500ms"; "dedup off".
std::string dedup_summary(const core::RingConfig& c) {
  if (!c.dedup_window) return "dedup off";
  std::string s = "dedup window " + std::to_string(c.dedup_window) + " events";
  if (c.dedup_window_ns) s += " or " + human_duration_ns(c.dedup_window_ns);
  s += " (bloom " + std::to_string(c.dedup_bloom_words) + " words)";
  return s;
}

// Applies --dedup-window / --dedup-bits-per-key to o (after --slots is known).
Status set_dedup(const CreateArgs& a, BusOptions* o) {
  if (a.dedup_window.empty()) {
    if (!a.dedup_bits_per_key.empty())
      return Status::invalid_argument("--dedup-bits-per-key needs --dedup-window");
    return Status::ok();
  }
  auto w = parse_dedup_window(a.dedup_window, "--dedup-window");
  if (!w.ok()) return w.status();
  const std::uint64_t limit = o->ring.slots_per_partition / 2;
  if (w->events) {
    if (w->events > limit)
      return Status::invalid_argument("--dedup-window '" + a.dedup_window +
                                      "' exceeds the limit of " + std::to_string(limit) +
                                      " events (half of --slots " +
                                      std::to_string(o->ring.slots_per_partition) + ")");
    o->ring.dedup_window = static_cast<std::uint32_t>(w->events);
  } else {
    if (limit == 0)
      return Status::invalid_argument("--dedup-window needs --slots of at least 2");
    o->ring.dedup_window = static_cast<std::uint32_t>(limit);
    o->ring.dedup_window_ns = w->duration_ns;
  }
  if (!a.dedup_bits_per_key.empty()) {
    auto bits = parse_uint(a.dedup_bits_per_key, "--dedup-bits-per-key");
    if (!bits.ok()) return bits.status();
    if (*bits < 1 || *bits > 64)
      return Status::invalid_argument("--dedup-bits-per-key '" + a.dedup_bits_per_key +
                                      "' must be 1..64");
    o->ring.dedup_bits_per_key = static_cast<std::uint8_t>(*bits);
  }
  return Status::ok();
}

int run_create(const CreateArgs& a) {
  BusOptions o;
  auto set = [](const std::string& text, const char* flag, std::uint32_t* field) -> Status {
    if (text.empty()) return Status::ok();
    auto v = parse_size(text, flag);
    if (!v.ok()) return v.status();
    auto n = narrow<std::uint32_t>(*v, flag);
    if (!n.ok()) return n.status();
    *field = *n;
    return Status::ok();
  };
  for (Status s : {set(a.partitions, "--partitions", &o.ring.partitions),
                   set(a.slots, "--slots", &o.ring.slots_per_partition),
                   set(a.slot_size, "--slot-size", &o.ring.slot_bytes),
                   set(a.max_consumers, "--max-consumers", &o.ring.max_consumers),
                   set(a.max_producers, "--max-producers", &o.max_producers)})
    if (!s.is_ok()) return fail(s);
  auto overflow = parse_overflow(a.overflow);
  if (!overflow.ok()) return fail(overflow.status());
  o.ring.overflow = *overflow;
  auto mode = parse_octal_mode(a.mode, "--mode");
  if (!mode.ok()) return fail(mode.status());
  o.mode = *mode;
  if (Status s = set_dedup(a, &o); !s.is_ok()) return fail(s);
  o.huge_pages = a.huge_pages;

  auto bus = Bus::create(a.bus, o);
  if (!bus.ok()) return fail(bus.status());
  const core::RingConfig& c = (*bus)->ring().config();
  std::string dedup;
  if (c.dedup_window) dedup = ", " + dedup_summary(c);
  std::printf("created bus '%s': %u partitions x %u slots x %u B, overflow %s, mode %s, %s%s\n",
              a.bus.c_str(), c.partitions, c.slots_per_partition, c.slot_bytes,
              std::string(overflow_name(c.overflow)).c_str(), octal_mode(o.mode).c_str(),
              human_bytes((*bus)->header().segment_bytes).c_str(), dedup.c_str());
  return kExitOk;
}

// ---------------------------------------------------------------------------------------- ls

OrderedJson summary_json(const BusSummary& s) {
  OrderedJson j;
  j["name"] = s.name;
  j["path"] = s.path;
  j["bytes"] = s.bytes;
  j["ok"] = s.status.is_ok();
  if (s.foreign_version()) {
    // Left by another evring build: unreadable here, so stale as far as this build can tell.
    j["state"] = "foreign-version";
    j["layout_version"] = s.layout_version;
    j["expected_layout_version"] = shm::kSegmentLayoutVersion;
  }
  if (!s.status.is_ok()) {
    j["error"] = s.status.to_string();
    j["exit_code"] = exit_code_for(s.status.code());
    return j;
  }
  j["partitions"] = s.ring.partitions;
  j["slots"] = s.ring.slots_per_partition;
  j["slot_size"] = s.ring.slot_bytes;
  j["overflow"] = std::string(overflow_name(s.ring.overflow));
  j["max_consumers"] = s.ring.max_consumers;
  j["creator_pid"] = s.creator_pid;
  j["creator_alive"] = s.creator_alive;
  j["live_members"] = s.live_members;
  j["stale"] = s.stale();
  return j;
}

int run_ls(bool json) {
  const std::vector<BusSummary> buses = Bus::list();
  if (json) {
    OrderedJson out = OrderedJson::array();
    for (const auto& s : buses) out.push_back(summary_json(s));
    std::printf("%s\n", dump_line(out).c_str());
    return kExitOk;
  }
  std::printf("%-24s %10s %10s %8s %9s %-9s %8s %5s %s\n", "NAME", "SIZE", "PARTITIONS", "SLOTS",
              "SLOT_SIZE", "OVERFLOW", "CREATOR", "LIVE", "STATE");
  for (const auto& s : buses) {
    if (s.foreign_version()) {
      std::printf("%-24s %10s %10s %8s %9s %-9s %8s %5s %s\n", s.name.c_str(),
                  human_bytes(s.bytes).c_str(), "-", "-", "-", "-", "-", "-",
                  ("foreign-version (layout " + std::to_string(s.layout_version) + ", expected " +
                   std::to_string(shm::kSegmentLayoutVersion) + "; evring rm " + s.name + ")")
                      .c_str());
      continue;
    }
    if (!s.status.is_ok()) {
      std::printf("%-24s %10s %10s %8s %9s %-9s %8s %5s %s\n", s.name.c_str(),
                  human_bytes(s.bytes).c_str(), "-", "-", "-", "-", "-", "-",
                  s.status.to_string().c_str());
      continue;
    }
    std::printf("%-24s %10s %10u %8u %9u %-9s %8d %5zu %s\n", s.name.c_str(),
                human_bytes(s.bytes).c_str(), s.ring.partitions, s.ring.slots_per_partition,
                s.ring.slot_bytes, std::string(overflow_name(s.ring.overflow)).c_str(),
                static_cast<int>(s.creator_pid), s.live_members, s.stale() ? "stale" : "ok");
  }
  return kExitOk;
}

// -------------------------------------------------------------------------------------- stat

std::string u(const OrderedJson& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

// Who holds partition p exclusively (core::RingProducer::set_exclusive): null when producers
// share it, else the holder's lane and the producer registered there. The mark is another
// process's word: one that names no lane is shown as such (Bus::check reports it as corrupt).
OrderedJson exclusive_holder_json(const core::RingRegion& ring, std::uint32_t p,
                                  const std::vector<ProducerInfo>& producers) {
  // Relaxed: a snapshot for display; the holder may let go at any moment.
  const std::uint32_t owner = ring.partition(p).exclusive_owner.load(std::memory_order_relaxed);
  if (owner == 0) return nullptr;
  const std::uint32_t lane = core::owner_lane_mark(owner) - 1;
  if (lane >= ring.config().producer_lanes)
    return {{"lane", lane}, {"error", "names no producer lane"}};
  const core::ProducerLane& l = ring.lane(lane);
  const std::uint16_t id = l.producer_id;
  OrderedJson j{{"lane", lane}, {"producer", id}, {"pid", l.owner_pid}};
  for (const ProducerInfo& info : producers)
    if (info.id == id) j["service"] = info.service;
  // A bias: held while the producer publishes there alone; the next other producer revokes it.
  j["biased"] = core::owner_biased(owner);
  // Being revoked: the holder's publish in progress outlasted the revoker's wait (a stopped
  // process); the next producer to publish there finishes the revocation.
  if (core::owner_revoking(owner)) j["revoking"] = true;
  return j;
}

std::string exclusive_holder_text(const OrderedJson& e) {
  if (e.is_null()) return "-";
  if (e.contains("error")) return "lane " + u(e["lane"]) + ": " + u(e["error"]);
  std::string text = "producer " + u(e["producer"]);
  if (e.contains("service")) text += " (" + u(e["service"]) + ")";
  text += " pid " + u(e["pid"]);
  if (e.value("revoking", false)) return text + ", biased, being revoked";
  return e.value("biased", false) ? text + ", biased" : text;
}

OrderedJson collect_stat(const Bus& bus) {
  const shm::SegmentHeader& h = bus.header();
  const core::RingRegion& ring = bus.ring();
  const core::RingConfig& c = ring.config();
  OrderedJson j;
  j["bus"] = bus.name();
  j["bytes"] = h.segment_bytes;
  j["created"] = rfc3339_ns(h.created_unix_ns);
  j["creator_pid"] = h.creator_pid;
  j["config"] = {{"partitions", c.partitions},     {"slots", c.slots_per_partition},
                 {"slot_size", c.slot_bytes},      {"overflow", std::string(overflow_name(c.overflow))},
                 {"max_consumers", c.max_consumers}, {"max_producers", h.max_producers},
                 {"max_types", h.max_types},       {"mode", octal_mode(h.mode)},
                 {"dedup_window", c.dedup_window}, {"dedup_window_ns", c.dedup_window_ns},
                 {"dedup_bloom_words", c.dedup_window ? c.dedup_bloom_words : 0u}};
  std::uint64_t published = 0, rejected = 0, abandoned = 0, deduplicated = 0;
  std::vector<std::uint64_t> heads(c.partitions);
  const std::vector<ProducerInfo> producer_infos = bus.producers();
  OrderedJson parts = OrderedJson::array();
  for (std::uint32_t p = 0; p < c.partitions; ++p) {
    const core::PartitionHeader& ph = ring.partition(p);
    // Relaxed loads: counters read for display, nothing else depends on them.
    heads[p] = ph.head.load(std::memory_order_relaxed);
    std::uint64_t rej = ph.rejected.load(std::memory_order_relaxed);
    std::uint64_t ab = ph.abandoned.load(std::memory_order_relaxed);
    std::uint64_t dd = ph.deduplicated.load(std::memory_order_relaxed);
    published += heads[p];
    rejected += rej;
    abandoned += ab;
    deduplicated += dd;
    parts.push_back({{"partition", p},
                     {"head", heads[p]},
                     {"rejected", rej},
                     {"abandoned", ab},
                     {"deduplicated", dd},
                     {"exclusive", exclusive_holder_json(ring, p, producer_infos)},
                     {"bias_revocations", ph.bias_revocations.load(std::memory_order_relaxed)}});
  }
  j["partitions"] = std::move(parts);

  std::uint64_t gaps = 0, delivered = 0;
  OrderedJson consumers = OrderedJson::array();
  for (const ConsumerInfo& ci : bus.consumers()) {
    OrderedJson cj{{"name", ci.name}, {"filter", ci.filter}, {"pid", ci.pid},
                   {"attached", ci.attached}, {"alive", ci.alive},
                   {"last_seen", rfc3339_ns(ci.last_seen_unix_ns)}};
    std::uint64_t lag = 0, cd = 0, cg = 0, cf = 0, cc = 0;
    OrderedJson cparts = OrderedJson::array();
    for (std::uint32_t p = 0; p < c.partitions; ++p) {
      const core::CursorLine& line = ring.cursor(ci.index, p);
      std::uint64_t committed = line.committed.load(std::memory_order_acquire);
      std::uint64_t pl = heads[p] > committed ? heads[p] - committed : 0;
      std::uint64_t d = line.delivered.load(std::memory_order_relaxed);
      std::uint64_t g = line.gaps.load(std::memory_order_relaxed);
      std::uint64_t f = line.filtered.load(std::memory_order_relaxed);
      std::uint64_t k = line.corrupt.load(std::memory_order_relaxed);
      lag += pl, cd += d, cg += g, cf += f, cc += k;
      cparts.push_back({{"partition", p}, {"committed", committed}, {"lag", pl}, {"delivered", d},
                        {"gaps", g}, {"filtered", f}, {"corrupt", k}});
    }
    cj["lag"] = lag, cj["delivered"] = cd, cj["gaps"] = cg, cj["filtered"] = cf, cj["corrupt"] = cc;
    cj["partitions"] = std::move(cparts);
    // The consumer's idempotency table (IdempotentHandler), when it has used one.
    auto table = shm::IdempotencyTableReader::attach(bus.idempotency_table(ci.index),
                                                     bus.header().idempotency_keys);
    if (table.ok()) {
      shm::IdempotencyStats st = table->stats();
      cj["idempotency"] = {{"keys", st.keys}, {"remembered", st.remembered},
                           {"handled", st.handled}, {"duplicates_skipped", st.duplicates_skipped}};
    } else {
      cj["idempotency"] = {{"error", table.status().to_string()}};
    }
    cj["latency_ns"] = latency_json(ci);  // delivery latency (latency_render.h)
    gaps += cg, delivered += cd;
    consumers.push_back(std::move(cj));
  }
  j["consumers"] = std::move(consumers);
  j["totals"] = {{"published", published}, {"rejected", rejected}, {"abandoned", abandoned},
                 {"deduplicated", deduplicated}, {"gaps", gaps}, {"delivered", delivered}};

  OrderedJson producers = OrderedJson::array();
  for (const ProducerInfo& p : bus.producers())
    producers.push_back({{"id", p.id}, {"service", p.service}, {"domains", p.domains},
                         {"pid", p.pid}, {"alive", p.alive}});
  j["producers"] = std::move(producers);
  OrderedJson types = OrderedJson::array();
  for (const TypeInfo& t : bus.types())
    types.push_back({{"id", t.id}, {"name", t.name}, {"version", t.schema_version},
                     {"classification", std::string(classification_name(t.classification))}});
  j["types"] = std::move(types);
  return j;
}

void print_stat_text(const OrderedJson& j) {
  const OrderedJson& c = j["config"];
  std::printf("bus '%s': %s partitions x %s slots x %s B, overflow %s, mode %s, %s, created %s by pid %s\n",
              u(j["bus"]).c_str(), u(c["partitions"]).c_str(), u(c["slots"]).c_str(),
              u(c["slot_size"]).c_str(), u(c["overflow"]).c_str(), u(c["mode"]).c_str(),
              human_bytes(j["bytes"].get<std::uint64_t>()).c_str(), u(j["created"]).c_str(),
              u(j["creator_pid"]).c_str());
  core::RingConfig dc;
  dc.dedup_window = c["dedup_window"].get<std::uint32_t>();
  dc.dedup_window_ns = c["dedup_window_ns"].get<std::uint64_t>();
  dc.dedup_bloom_words = c["dedup_bloom_words"].get<std::uint32_t>();
  std::printf("%s\n", dedup_summary(dc).c_str());
  std::printf("\n%-10s %14s %10s %10s %12s  %s\n", "PARTITION", "HEAD", "REJECTED", "ABANDONED",
              "DEDUPLICATED", "EXCLUSIVE");
  for (const auto& p : j["partitions"])
    std::printf("%-10s %14s %10s %10s %12s  %s\n", u(p["partition"]).c_str(),
                u(p["head"]).c_str(), u(p["rejected"]).c_str(), u(p["abandoned"]).c_str(),
                u(p["deduplicated"]).c_str(), exclusive_holder_text(p["exclusive"]).c_str());
  for (const auto& ci : j["consumers"]) {
    std::printf("\nconsumer '%s' filter '%s' pid %s %s %s\n", u(ci["name"]).c_str(),
                u(ci["filter"]).c_str(), u(ci["pid"]).c_str(),
                ci["attached"].get<bool>() ? "attached" : "detached",
                ci["alive"].get<bool>() ? "alive" : "dead");
    std::printf("  %-10s %14s %10s %12s %8s %10s %8s\n", "PARTITION", "COMMITTED", "LAG",
                "DELIVERED", "GAPS", "FILTERED", "CORRUPT");
    for (const auto& p : ci["partitions"])
      std::printf("  %-10s %14s %10s %12s %8s %10s %8s\n", u(p["partition"]).c_str(),
                  u(p["committed"]).c_str(), u(p["lag"]).c_str(), u(p["delivered"]).c_str(),
                  u(p["gaps"]).c_str(), u(p["filtered"]).c_str(), u(p["corrupt"]).c_str());
    const OrderedJson& id = ci["idempotency"];
    if (id.contains("error"))
      std::printf("  idempotency table: %s\n", u(id["error"]).c_str());
    else
      std::printf("  idempotency table: %s keys remembered of %s, handled %s, duplicates skipped %s\n",
                  u(id["remembered"]).c_str(), u(id["keys"]).c_str(), u(id["handled"]).c_str(),
                  u(id["duplicates_skipped"]).c_str());
  }
  const OrderedJson& t = j["totals"];
  std::printf(
      "\ntotals: published %s, rejected %s, abandoned %s, deduplicated %s, gaps %s, delivered %s\n",
      u(t["published"]).c_str(), u(t["rejected"]).c_str(), u(t["abandoned"]).c_str(),
      u(t["deduplicated"]).c_str(), u(t["gaps"]).c_str(), u(t["delivered"]).c_str());
  std::printf("\nproducers:\n");
  for (const auto& p : j["producers"]) {
    std::string domains;
    for (const auto& d : p["domains"]) {
      if (!domains.empty()) domains += ',';
      domains += d.get<std::string>();
    }
    std::printf("  %-5s %-24s domains %-20s pid %-8s %s\n", u(p["id"]).c_str(),
                u(p["service"]).c_str(), domains.c_str(), u(p["pid"]).c_str(),
                p["alive"].get<bool>() ? "alive" : "dead");
  }
  std::printf("\nevent types:\n");
  for (const auto& ty : j["types"])
    std::printf("  %-5s %-40s v%-4s %s\n", u(ty["id"]).c_str(), u(ty["name"]).c_str(),
                u(ty["version"]).c_str(), u(ty["classification"]).c_str());
}

// A corrupt bus: its findings (stdout), one summary line (stderr), the corruption exit code.
int report_corruption(const std::string& name, const std::vector<std::string>& findings,
                      bool json) {
  if (json) {
    OrderedJson j;
    j["bus"] = name;
    j["ok"] = false;
    j["corruption"] = findings;
    std::printf("%s\n", dump_line(j).c_str());
  } else {
    std::printf("bus '%s' is corrupt:\n", name.c_str());
    for (const std::string& f : findings) std::printf("  %s\n", f.c_str());
  }
  return fail(Status::corruption("bus '" + name + "': " + std::to_string(findings.size()) +
                                 (findings.size() == 1 ? " problem" : " problems") +
                                 " found (listed on stdout)"));
}

int run_stat(const std::string& name, bool json) {
  auto bus = Bus::open(name, Access::kReadOnly);
  if (!bus.ok()) {
    const Code code = bus.status().code();
    if (code != Code::kCorruption && code != Code::kLayoutMismatch) return fail(bus.status());
    // open() stops at the first problem; the deep check lists them all.
    auto findings = Bus::check(name);
    if (!findings.ok() || findings->empty()) return fail(bus.status());
    return report_corruption(name, *findings, json);
  }
  auto findings = Bus::check(name);
  if (!findings.ok()) return fail(findings.status());
  if (!findings->empty()) return report_corruption(name, *findings, json);
  OrderedJson j = collect_stat(**bus);
  j["corruption"] = OrderedJson::array();
  if (json) std::printf("%s\n", dump_line(j).c_str());
  else print_stat_text(j);
  return kExitOk;
}

}  // namespace

void add_admin_verbs(CLI::App& app, VerbList& verbs) {
  auto create = std::make_shared<CreateArgs>();
  CLI::App* cmd = app.add_subcommand("create", "Create a bus (a named shared-memory segment)");
  cmd->add_option("BUS", create->bus, "Bus name: 1..48 of A-Z a-z 0-9 _ - .")->required();
  const BusOptions defaults;
  auto num = [&](const char* flag, std::string& field, std::uint64_t dflt, const char* what) {
    cmd->add_option(flag, field, std::string(what) + " (default " + std::to_string(dflt) + ")")
        ->type_name("N");
  };
  num("--partitions", create->partitions, defaults.ring.partitions, "Partitions");
  num("--slots", create->slots, defaults.ring.slots_per_partition,
      "Slots per partition, a power of two; K/M suffixes accepted");
  num("--slot-size", create->slot_size, defaults.ring.slot_bytes,
      "Slot size in bytes, a multiple of 64 in 256..1M, slot header included; K/M accepted");
  cmd->add_option("--overflow", create->overflow, "reject (lossless) or overwrite")
      ->type_name("reject|overwrite")->capture_default_str();
  cmd->add_option("--mode", create->mode, "Permission bits, octal")
      ->type_name("OCTAL")->capture_default_str();
  num("--max-consumers", create->max_consumers, defaults.ring.max_consumers, "Consumer slots");
  num("--max-producers", create->max_producers, defaults.max_producers, "Producer slots");
  cmd->add_option("--dedup-window", create->dedup_window,
                  "Publish-side dedup of idempotency keys (default off). N: events per partition, "
                  "at most --slots/2; DURATION (500ms, 10s, 5m): window --slots/2 events, "
                  "originals older than DURATION are not matched. See tools/README.md")
      ->type_name("N|DURATION");
  num("--dedup-bits-per-key", create->dedup_bits_per_key, defaults.ring.dedup_bits_per_key,
      "Bloom bits per key of the dedup window, 1..64 (sizes the filter; needs --dedup-window)");
  cmd->add_flag("--huge-pages", create->huge_pages,
                "Back the bus with transparent huge pages; refused (exit 8, naming the kernel "
                "setting) where shared-memory THP is off");
  verbs.push_back({cmd, [create] { return run_create(*create); }});

  auto ls_json = std::make_shared<bool>(false);
  cmd = app.add_subcommand("ls", "List buses: size, geometry, creator, live members, stale");
  cmd->add_flag("--json", *ls_json, "Print a JSON array");
  verbs.push_back({cmd, [ls_json] { return run_ls(*ls_json); }});

  auto rm_name = std::make_shared<std::string>();
  cmd = app.add_subcommand("rm", "Remove a bus");
  cmd->add_option("BUS", *rm_name, "Bus name")->required();
  verbs.push_back({cmd, [rm_name] {
                     Status s = Bus::remove(*rm_name);
                     if (!s.is_ok()) return fail(s);
                     std::printf("removed bus '%s'\n", rm_name->c_str());
                     return static_cast<int>(kExitOk);
                   }});

  struct StatArgs { std::string bus; bool json = false; };
  auto stat = std::make_shared<StatArgs>();
  cmd = app.add_subcommand("stat", "Counters of a bus: partitions, consumers, producers, types");
  cmd->add_option("BUS", stat->bus, "Bus name")->required();
  cmd->add_flag("--json", stat->json, "Print one JSON object (shape in tools/README.md)");
  verbs.push_back({cmd, [stat] { return run_stat(stat->bus, stat->json); }});
}

}  // namespace evring::cli
