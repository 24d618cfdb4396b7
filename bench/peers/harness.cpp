// evring-peers: the reference figures the evring ring is compared against, measured in one run
// on the same machine: a cache-line ping-pong (the physical floor), a bare SPSC ring, Boost
// message_queue and lockfree::spsc_queue in shared memory, and moodycamel's in-process queues.
//
// Exit codes: 0 done; 1 a measurement failed (one line on stderr); 2 bad command line.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench_env.h"
#include "fork_peer.h"
#include "peer_cases.h"
#include "pin.h"
#include "stats.h"

namespace evring::bench {

std::vector<CaseInfo> all_cases(const CaseConfig& cfg) {
  std::string rounded;
  const size_t typed = with_fixed_size(cfg.payload_bytes, []<size_t>() {});
  if (typed != cfg.payload_bytes) {
    rounded = "element type is " + std::to_string(typed) +
              " bytes (payload rounded up to a power of two)";
  }
  return {
      {"pingpong", run_pingpong, "", ""},
      {"bare_spsc", run_bare_spsc, "", ""},
      {"bare_spsc_slot", run_bare_spsc_slot, "", ""},
      {"bare_spsc_span", run_bare_spsc_span, "", ""},
      {"boost_mq", run_boost_mq, "", ""},
      {"boost_spsc_shm", run_boost_spsc_shm, "", rounded},
      {"moodycamel_cq", run_moodycamel_cq, moodycamel_cq_unavailable(), rounded},
      {"moodycamel_rwq", run_moodycamel_rwq, moodycamel_rwq_unavailable(), rounded},
  };
}

namespace {

constexpr const char* kProg = "evring-peers";

struct Options {
  CaseConfig cfg;
  int runs = 5;
  bool json = false;
  std::vector<std::string> cases;  // empty: all
};

[[noreturn]] void usage_error(const std::string& why) {
  std::fprintf(stderr, "%s: %s (try --help)\n", kProg, why.c_str());
  std::exit(2);
}

void print_help() {
  std::printf(
      "usage: %s [options]\n"
      "  --cpus A,B         producer/initiator on A, consumer/echo on B (default 0,1)\n"
      "  --seconds S        length of each measurement (default 1.0)\n"
      "  --runs N           runs, cases interleaved round-robin; median/min/max (default 5)\n"
      "  --payload BYTES    message size, 8..4096 (default 64)\n"
      "  --slot-bytes BYTES message size of bare_spsc_slot (default 256)\n"
      "  --span-bytes BYTES message size of bare_spsc_span (default 128: the lines a 64 B\n"
      "                     evring event spans in its slot)\n"
      "  --cases a,b,...    subset of: pingpong bare_spsc bare_spsc_slot bare_spsc_span\n"
      "                     boost_mq boost_spsc_shm moodycamel_cq moodycamel_rwq\n"
      "  --quick            0.1 s and 1 run per case, every message still checked\n"
      "  --json             one JSON object on stdout instead of the table\n"
      "exit: 0 done, 1 a measurement failed, 2 bad command line\n",
      kProg);
}

double parse_number(const std::string& flag, const std::string& text, double lo, double hi) {
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || !(v >= lo && v <= hi)) {
    char range[64];
    std::snprintf(range, sizeof(range), "[%g, %g]", lo, hi);
    usage_error(flag + " wants a number in " + range + ", got '" + text + "'");
  }
  return v;
}

Options parse_options(int argc, char** argv) {
  Options o;
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage_error(a + " needs a value");
      return argv[++i];
    };
    if (a == "--help" || a == "-h") {
      print_help();
      std::exit(0);
    } else if (a == "--cpus") {
      std::vector<int> cpus;
      try {
        cpus = parse_cpu_list(value());
      } catch (const std::exception& e) {
        usage_error(e.what());
      }
      if (cpus.size() != 2) usage_error("--cpus wants exactly two cpus, A,B");
      o.cfg.producer_cpu = cpus[0];
      o.cfg.consumer_cpu = cpus[1];
    } else if (a == "--seconds") {
      o.cfg.seconds = parse_number(a, value(), 0.001, 3600);
    } else if (a == "--runs") {
      o.runs = static_cast<int>(parse_number(a, value(), 1, 1000));
    } else if (a == "--payload") {
      o.cfg.payload_bytes = static_cast<size_t>(parse_number(a, value(), 8, kMaxTypedBytes));
    } else if (a == "--slot-bytes") {
      o.cfg.slot_bytes = static_cast<size_t>(parse_number(a, value(), 8, 1 << 20));
    } else if (a == "--span-bytes") {
      o.cfg.span_bytes = static_cast<size_t>(parse_number(a, value(), 8, 1 << 20));
    } else if (a == "--cases") {
      o.cases = split_case_names(value());
    } else if (a == "--quick") {
      quick = true;
    } else if (a == "--json") {
      o.json = true;
    } else {
      usage_error("unknown option '" + a + "'");
    }
  }
  if (quick) {
    o.cfg.seconds = 0.1;
    o.runs = 1;
  }
  for (int cpu : {o.cfg.producer_cpu, o.cfg.consumer_cpu}) {
    if (!cpu_allowed(cpu)) usage_error("cpu " + std::to_string(cpu) + " is not available here");
  }
  return o;
}

bool is_rate(const std::string& metric) { return metric.ends_with("_per_s"); }

std::string format_value(const std::string& metric, double v) {
  char buf[32];
  if (is_rate(metric)) {
    const char* suffix = "";
    if (v >= 1e9) {
      v /= 1e9, suffix = " G";
    } else if (v >= 1e6) {
      v /= 1e6, suffix = " M";
    } else if (v >= 1e3) {
      v /= 1e3, suffix = " k";
    }
    std::snprintf(buf, sizeof(buf), "%.2f%s", v, suffix);
  } else {
    std::snprintf(buf, sizeof(buf), "%.1f", v);
  }
  return buf;
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\', out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

struct Row {
  std::string case_name;
  std::string metric;
  Summary s;
  double ratio = -1;  // < 0: no reference case in this run
};

}  // namespace

int evring_peers_main(int argc, char** argv) {
  install_signal_handlers(kProg);
  const Options opt = parse_options(argc, argv);
  const CaseConfig& cfg = opt.cfg;

  std::vector<CaseInfo> cases;
  std::vector<CaseInfo> known = all_cases(cfg);
  if (opt.cases.empty()) {
    cases = known;
  } else {
    for (const std::string& name : opt.cases) {
      bool found = false;
      for (const CaseInfo& c : known) {
        if (c.name == name) cases.push_back(c), found = true;
      }
      if (!found) usage_error("unknown case '" + name + "'");  // '' too: "a,,b" is a typo
    }
  }

  const std::string warning = build_warning();
  const std::string cpu_model = cpu_model_name();
  const double timer_ns = timer_overhead_ns();
  if (!warning.empty()) std::fprintf(stderr, "%s: %s\n", kProg, warning.c_str());
  if (!opt.json) {
    std::printf("evring-peers: reference figures for the evring ring\n");
    std::printf("cpu model : %s\n", cpu_model.c_str());
    std::printf("cpus      : producer/initiator %d, consumer/echo %d\n", cfg.producer_cpu,
                cfg.consumer_cpu);
    std::printf(
        "payload   : %zu B (bare_spsc_slot %zu B, bare_spsc_span %zu B), queues hold %llu "
        "messages\n",
        cfg.payload_bytes, cfg.slot_bytes, cfg.span_bytes,
        static_cast<unsigned long long>(kQueueCapacity));
    std::printf("runs      : %d x %.3g s per measurement, cases interleaved round-robin\n",
                opt.runs, cfg.seconds);
    std::printf(
        "timer     : clock_gettime(CLOCK_MONOTONIC), %.1f ns per call, one per round trip\n",
        timer_ns);
    if (!warning.empty()) std::printf("%s\n", warning.c_str());
    std::fflush(stdout);
  }

  // results[case][metric] = one value per run
  std::map<std::string, std::map<std::string, std::vector<double>>> results;
  std::vector<std::string> metric_order;  // "case/metric" in first-seen order
  // waits[case][run]: the longest CPU wait of the run's processes (cpu_wait.h)
  std::map<std::string, std::vector<uint64_t>> waits;
  const bool progress = isatty(STDERR_FILENO) != 0;
  try {
    for (int run = 0; run < opt.runs; ++run) {
      for (const CaseInfo& c : cases) {
        if (!c.skipped.empty()) continue;
        if (progress) std::fprintf(stderr, "\r[run %d/%d] %-16s", run + 1, opt.runs, c.name);
        set_activity(c.name);
        Watchdog watchdog(static_cast<unsigned>(cfg.seconds * 4) + 30);
        (void)take_cpu_wait_ns();
        for (const Metric& m : c.run(cfg)) {
          auto& values = results[c.name][m.name];
          if (values.empty()) metric_order.push_back(std::string(c.name) + "/" + m.name);
          values.push_back(m.value);
        }
        waits[c.name].push_back(take_cpu_wait_ns());
      }
    }
    set_activity("report");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s%s: %s: %s\n", progress ? "\n" : "", kProg, detail::g_activity.load(),
                 e.what());
    return 1;
  }
  if (progress) std::fprintf(stderr, "\r%40s\r", "");

  std::vector<Row> rows;
  for (const std::string& key : metric_order) {
    const size_t slash = key.find('/');
    Row r{key.substr(0, slash), key.substr(slash + 1), {}, -1};
    r.s = summarize(results[r.case_name][r.metric]);
    const char* base = is_rate(r.metric) ? "bare_spsc" : "pingpong";
    if (results.count(base) != 0 && results[base].count(r.metric) != 0) {
      const double ref = summarize(results[base][r.metric]).median;
      if (ref > 0) r.ratio = r.s.median / ref;
    }
    rows.push_back(r);
  }

  if (opt.json) {
    std::printf(
        "{\"tool\":\"evring-peers\",\"env\":{\"cpu_model\":%s,\"cpus\":[%d,%d],"
        "\"payload_bytes\":%zu,\"slot_bytes\":%zu,\"span_bytes\":%zu,\"queue_capacity\":%llu,"
        "\"seconds\":%g,\"runs\":%d,\"timer\":\"clock_gettime(CLOCK_MONOTONIC)\","
        "\"timer_overhead_ns\":%.1f,\"optimised\":%s,\"warning\":%s},\"cases\":{",
        json_string(cpu_model).c_str(), cfg.producer_cpu, cfg.consumer_cpu, cfg.payload_bytes,
        cfg.slot_bytes, cfg.span_bytes, static_cast<unsigned long long>(kQueueCapacity),
        cfg.seconds, opt.runs, timer_ns, warning.empty() ? "true" : "false",
        json_string(warning).c_str());
    bool first_case = true;
    for (const CaseInfo& c : cases) {
      std::printf("%s%s:{", first_case ? "" : ",", json_string(c.name).c_str());
      first_case = false;
      if (!c.skipped.empty()) {
        std::printf("\"skipped\":%s}", json_string(c.skipped).c_str());
        continue;
      }
      if (!c.note.empty()) std::printf("\"note\":%s,", json_string(c.note).c_str());
      std::printf("\"cpu_wait_ns\":[");
      for (size_t i = 0; i < waits[c.name].size(); ++i)
        std::printf("%s%llu", i ? "," : "", static_cast<unsigned long long>(waits[c.name][i]));
      std::printf("],\"metrics\":{");
      bool first_metric = true;
      for (const Row& r : rows) {
        if (r.case_name != c.name) continue;
        std::printf(
            "%s%s:{\"median\":%.1f,\"min\":%.1f,\"max\":%.1f,\"ratio\":", first_metric ? "" : ",",
            json_string(r.metric).c_str(), r.s.median, r.s.min, r.s.max);
        if (r.ratio < 0) {
          std::printf("null}");
        } else {
          std::printf("%.3f}", r.ratio);
        }
        first_metric = false;
      }
      std::printf("}}");
    }
    std::printf("}}\n");
    return 0;
  }

  std::printf("\n%-16s %-15s %12s %12s %12s %8s\n", "case", "metric", "median", "min", "max",
              "ratio");
  for (const Row& r : rows) {
    std::string ratio = "-";
    if (r.ratio >= 0) {
      char buf[16];
      std::snprintf(buf, sizeof(buf), "%.2fx", r.ratio);
      ratio = buf;
    }
    std::printf("%-16s %-15s %12s %12s %12s %8s\n", r.case_name.c_str(), r.metric.c_str(),
                format_value(r.metric, r.s.median).c_str(), format_value(r.metric, r.s.min).c_str(),
                format_value(r.metric, r.s.max).c_str(), ratio.c_str());
  }
  std::printf("ratio: *_per_s to bare_spsc's median, *_ns to pingpong's median\n");
  for (const CaseInfo& c : cases) {
    if (!c.skipped.empty()) std::printf("skipped %s: %s\n", c.name, c.skipped.c_str());
    if (c.skipped.empty() && !c.note.empty()) std::printf("note %s: %s\n", c.name, c.note.c_str());
    // A case's run may hold two measurements of cfg.seconds (throughput, then round trips);
    // its longest wait is judged against one of them.
    const std::vector<uint64_t>& w = waits[c.name];
    for (size_t i = 0; i < w.size(); ++i)
      if (const char* note = disturbed_note(w[i], cfg.seconds))
        std::printf("note %s: run %zu: a process waited %.1f ms for its CPU; %s\n", c.name, i,
                    static_cast<double>(w[i]) / 1e6, note);
  }
  return 0;
}

}  // namespace evring::bench
