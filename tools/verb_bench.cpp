// evring bench throughput|latency|peers: the benchmark harnesses of bench/ (evring-bench,
// evring-peers), linked in so that the verb and the executables run the very same code. The flags
// are declared here too, so that `evring bench VERB --help` lists them and CLI11 rejects unknown
// ones; the parsed flags are then handed to the harness as its own command line.
#include <CLI/CLI.hpp>
#include <memory>
#include <string>
#include <vector>

#include "cli_common.h"

#if EVRING_HAVE_BENCH
namespace evring::bench {
int evring_bench_main(int argc, char** argv);
int evring_peers_main(int argc, char** argv);
}  // namespace evring::bench
#endif

namespace evring::cli {
namespace {

struct BenchArgs {
  CLI::App* throughput = nullptr;
  CLI::App* latency = nullptr;
  CLI::App* peers = nullptr;
};

// The options given on the command line, in CLI11's order, as the harness expects them.
std::vector<std::string> forwarded(const CLI::App& sub) {
  std::vector<std::string> args;
  for (const CLI::Option* opt : sub.get_options()) {
    if (opt->count() == 0 || opt->get_lnames().empty()) continue;
    const std::string flag = "--" + opt->get_lnames().front();
    if (opt->get_expected_max() == 0) {  // a flag: its results are "true"
      args.push_back(flag);
      continue;
    }
    for (const std::string& value : opt->results()) {
      args.push_back(flag);
      args.push_back(value);
    }
  }
  return args;
}

int run_harness(int (*harness)(int, char**), std::vector<std::string> args) {
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  return harness(static_cast<int>(args.size()), argv.data());
}

int run_bench(const BenchArgs& b) {
#if EVRING_HAVE_BENCH
  if (b.peers->parsed()) {
    std::vector<std::string> args{"evring"};
    for (std::string& a : forwarded(*b.peers)) args.push_back(std::move(a));
    return run_harness(&bench::evring_peers_main, std::move(args));
  }
  const CLI::App* mode = b.throughput->parsed() ? b.throughput : b.latency;
  std::vector<std::string> args{"evring", mode->get_name()};
  for (std::string& a : forwarded(*mode)) args.push_back(std::move(a));
  return run_harness(&bench::evring_bench_main, std::move(args));
#else
  (void)b;
  print_error("this evring was built without the benchmarks (configure with -DEVRING_BUILD_BENCH=ON)");
  return kExitUsage;
#endif
}

void common_flags(CLI::App* cmd) {
  cmd->add_option("--payload", "payload bytes per event (default 64; >= 24)");
  cmd->add_option("--seconds", "length of each run in seconds (default 1)");
  cmd->add_option("--runs", "runs; the median, min and max are reported (default 5)");
  cmd->add_option("--cpus", "CPUs to pin to, comma separated: producer(s) first (default 0,1)");
  cmd->add_flag("--no-peers")->description("skip the reference cases normally measured in the same run");
  cmd->add_flag("--json")->description("print one JSON object (after the table)");
  cmd->add_flag("--huge-pages")->description(
      "back the bench buses with transparent huge pages (refused where shared-memory THP is off)");
  cmd->add_flag("--exclusive")->description(
      "producers publish exclusively: no locked instruction per claim (throughput: one producer)");
  cmd->add_option("--clock",
                  "event timestamps: auto (TSC where the kernel keeps time with it), tsc (wherever "
                  "the TSC is invariant) or realtime (clock_gettime); sets EVRING_CLOCK");
}

}  // namespace

void add_bench_verb(CLI::App& app, VerbList& verbs) {
  CLI::App* cmd = app.add_subcommand(
      "bench", "Benchmark this machine: evring throughput and latency, and reference peers");
  cmd->require_subcommand(1);
  auto b = std::make_shared<BenchArgs>();

  b->throughput = cmd->add_subcommand(
      "throughput",
      "Cross-process events/s on a fresh bus; every event is checked for loss, duplicates and "
      "order; the bare SPSC ring runs in the same run for the ratio");
  common_flags(b->throughput);
  b->throughput->add_option("--partitions", "partitions of the bus (default 1)");
  b->throughput->add_option("--producers", "producer processes, 1..16 (default 1)");
  b->throughput->add_option("--consumers", "consumer processes, 1..16 (default 1)");
  b->throughput->add_option("--batch", "events per try_publish_batch call, 1..4096 (default 1)");
  b->throughput->add_flag("--dedup")->description("publish-side dedup on (window 1024)");
  b->throughput->add_option("--against",
                            "reference cases each run alternates with, comma separated: bare_spsc "
                            "bare_spsc_slot boost_mq boost_spsc_shm moodycamel_cq moodycamel_rwq "
                            "(default bare_spsc)");
  b->throughput->add_option("--dedup-bits-per-key", "bloom bits per key with --dedup (default 64)");

  b->latency = cmd->add_subcommand(
      "latency",
      "One-way latency at an open-loop rate (from the scheduled send: no coordinated omission), "
      "and round trip over two buses, beside the cache-line ping-pong");
  common_flags(b->latency);
  b->latency->add_option("--rate", "events per second sent by the open-loop sender (default 100000)");
  b->latency->add_option("--wait", "consumer wait strategy: spin, yield or block (default spin)")
      ->check(CLI::IsMember({"spin", "yield", "block"}));
  b->latency->add_option("--hgrm", "write the one-way histogram in HdrHistogram .hgrm format");

  b->peers = cmd->add_subcommand(
      "peers",
      "Reference figures only: cache-line ping-pong, bare SPSC ring, Boost message_queue and "
      "spsc_queue in shared memory, moodycamel queues");
  b->peers->add_option("--cpus", "producer/initiator CPU, consumer/echo CPU (default 0,1)");
  b->peers->add_option("--seconds", "length of each measurement (default 1)");
  b->peers->add_option("--runs", "runs, cases interleaved round-robin (default 5)");
  b->peers->add_option("--payload", "message size, 8..4096 (default 64)");
  b->peers->add_option("--slot-bytes", "message size of bare_spsc_slot (default 256)");
  b->peers->add_option(
      "--span-bytes", "message size of bare_spsc_span (default 128: the lines a 64 B event spans)");
  b->peers->add_option("--cases", "subset, comma separated: pingpong bare_spsc bare_spsc_slot "
                                  "boost_mq boost_spsc_shm moodycamel_cq moodycamel_rwq");
  b->peers->add_flag("--quick")->description("0.1 s and 1 run per case");
  b->peers->add_flag("--json")->description("one JSON object instead of the table");

  verbs.push_back({cmd, [b] { return run_bench(*b); }});
}

}  // namespace evring::cli
