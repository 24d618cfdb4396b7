// evring-bench: cross-process throughput and latency of the real evring Bus API.
//
//   evring-bench throughput [--payload B=64] [--partitions N=1] [--producers N=1]
//                           [--consumers N=1] [--seconds S=1] [--batch N=1] [--dedup [--dedup-bits-per-key N=64]]
//                           [--runs N=5] [--cpus A,B] [--exclusive] [--against CASES=bare_spsc]
//                           [--clock auto|tsc|realtime] [--no-peers] [--json]
//   evring-bench latency    [--payload B=64] [--rate EV_PER_S=100000] [--seconds S=1]
//                           [--wait spin|yield|block] [--hgrm FILE] [--cpus A,B] [--exclusive]
//                           [--clock auto|tsc|realtime] [--no-peers] [--json]
// --exclusive: the producer publishes exclusively (RingProducer::set_exclusive: claims without a
// locked instruction). Exclusive producers do not share partitions, so throughput allows it with
// one producer only.
// --clock: how producers timestamp events (core::ClockMode, clock.h): set as EVRING_CLOCK for
// this process and the children it forks, so that reports and producers agree.
//
// Every process (producer, consumer, sender, echo) is a fork()ed child or the parent, attached to
// a bus created by the parent under a unique name ("evb-<pid>-<n>") and removed at the end.
// Throughput runs in reject mode: each consumer must receive every published event, in
// per-(producer, key) sequence order; any loss, duplicate or reorder fails the run (exit 1).
// Latency is open loop: the sender schedules send times at fixed intervals and the receiver
// measures from the scheduled time (no coordinated omission). RTT is a closed ping-pong over two
// buses. Unless --no-peers, evring-peers cases run in the same process with the same pinning,
// and the ratios are printed: for throughput the --against cases (bare_spsc unless told), each
// run of evring followed by one run of each; for RTT the ping-pong.
// Files: harness.cpp (flags, dispatch), throughput.cpp, latency.cpp, harness.h (shared).
#include "harness.h"

namespace evring::bench {
namespace harness {
namespace {

constexpr const char* kUsage =
    "usage: evring-bench throughput [--payload B] [--partitions N] [--producers N] [--consumers N]\n"
    "                               [--seconds S] [--batch N] [--dedup [--dedup-bits-per-key N]]\n"
    "                               [--runs N] [--cpus A,B,...] [--huge-pages] [--exclusive]\n"
    "                               [--against CASE,...] [--clock auto|tsc|realtime] [--no-peers]\n"
    "                               [--json]\n"
    "       evring-bench latency [--payload B] [--rate EVENTS_PER_SEC] [--seconds S]\n"
    "                            [--wait spin|yield|block] [--hgrm FILE] [--runs N] [--cpus A,B]\n"
    "                            [--huge-pages] [--exclusive] [--clock auto|tsc|realtime]\n"
    "                            [--no-peers] [--json]";

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

// The --against list: evring-peers cases that measure a rate, each named once.
std::vector<std::string> parse_against(const std::string& text, std::size_t payload) {
  const std::vector<std::string> names = split_case_names(text);
  CaseConfig cfg;
  cfg.payload_bytes = payload;
  const std::vector<CaseInfo> known = all_cases(cfg);
  std::string rates;  // the cases --against takes, for the messages
  for (const CaseInfo& c : known)
    if (std::string(c.name) != "pingpong") rates += std::string(rates.empty() ? "" : ", ") + c.name;
  for (std::size_t i = 0; i < names.size(); ++i) {
    const std::string& n = names[i];
    if (n.empty()) usage("--against needs case names separated by commas, got '" + text + "'");
    if (n == "pingpong")
      usage("--against: pingpong measures a round trip, not a rate (latency runs it)");
    const auto it = std::find_if(known.begin(), known.end(),
                                 [&](const CaseInfo& c) { return n == c.name; });
    if (it == known.end()) usage("--against: unknown case '" + n + "' (" + rates + ")");
    if (!it->skipped.empty()) usage("--against: case '" + n + "' is not built in: " + it->skipped);
    if (std::find(names.begin(), names.begin() + static_cast<std::ptrdiff_t>(i), n) !=
        names.begin() + static_cast<std::ptrdiff_t>(i))
      usage("--against: case '" + n + "' named twice");
  }
  return names;
}

Options parse(int argc, char** argv) {
  Options o;
  std::string against;
  bool against_given = false, clock_given = false;
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
    else if (a == "--against") against = val(), against_given = true;
    else if (a == "--json") o.json = true;
    else if (a == "--huge-pages") o.huge_pages = true;
    else if (a == "--exclusive") o.exclusive = true;
    else if (a == "--clock") {
      const Result<core::ClockMode> mode = core::parse_clock_mode(val());
      if (!mode.ok()) usage("--clock: " + mode.status().message());
      o.clock = mode.value();
      clock_given = true;
    }
    else usage("unknown option '" + a + "'");
  }
  if (o.payload < 24) usage("--payload must be >= 24 (seq, key and timestamps travel in it)");
  if (o.producers < 1 || o.producers > kMaxProcs || o.consumers < 1 || o.consumers > kMaxProcs)
    usage("--producers/--consumers must be 1..16");
  if (o.partitions < 1 || o.batch < 1 || o.batch > 4096 || o.runs < 1 || o.seconds <= 0 ||
      o.rate <= 0)
    usage("bad numeric option");
  if (o.wait != "spin" && o.wait != "yield" && o.wait != "block") usage("--wait spin|yield|block");
  if (o.exclusive && o.producers > 1)
    usage("--exclusive needs --producers 1: exclusive producers do not share a partition");
  for (int c : o.cpus)
    if (!cpu_allowed(c)) usage("cpu " + std::to_string(c) + " not in this process's affinity");
  if (against_given) {
    if (o.mode != "throughput")
      usage("--against is a throughput option (latency measures against the ping-pong)");
    if (!o.peers) usage("--against and --no-peers contradict each other");
    o.against = parse_against(against, o.payload);
  }
  if (!o.peers) o.against.clear();
  if (clock_given) {
    ::setenv("EVRING_CLOCK", core::clock_mode_name(o.clock), 1);
  } else if (Result<core::ClockMode> env = core::clock_mode_from_env(); !env.ok()) {
    usage(env.status().message());  // producers would refuse it: say so before any run
  }
  return o;
}

}  // namespace
}  // namespace harness

int evring_bench_main(int argc, char** argv) {
  using namespace harness;
  install_signal_handlers("evring-bench");
  try {
    const Options o = parse(argc, argv);
    return o.mode == "throughput" ? run_throughput(o) : run_latency(o);
  } catch (const std::invalid_argument& e) {  // bad command line (usage())
    // argv[0] names the program in messages: "evring-bench", or "evring" for the CLI verb,
    // whose own --help lists the flags (one line, as every evring error).
    const std::string prog = argc > 0 ? argv[0] : "evring-bench";
    std::fprintf(stderr, "%s: %s\n", prog.c_str(), e.what());
    if (prog.ends_with("evring-bench")) std::fprintf(stderr, "%s\n", kUsage);
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: FAILED: %s\n", argc > 0 ? argv[0] : "evring-bench", e.what());
    return 1;
  }
}

}  // namespace evring::bench

