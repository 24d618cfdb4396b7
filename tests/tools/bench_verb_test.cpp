// `evring bench`: the verb runs the bench/ harnesses. Checked for what they report and account
// for (every published event delivered, percentiles ordered, .hgrm readable), never for speed.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "evring/core/clock.h"
#include "tools/cli_fixture.h"

namespace evring_cli_test {
namespace {

class BenchVerbTest : public CliTest {
 protected:
  void SetUp() override {
    CliTest::SetUp();
    if (IsSkipped()) return;
    // --help works either way (the verb is always declared); an unknown case reaches the
    // harness when it is linked in, and the "built without" message when it is not.
    Output probe = run({"bench", "peers", "--cases", "no-such-case"});
    if (probe.err.find("built without the benchmarks") != std::string::npos)
      GTEST_SKIP() << "this build has no benchmarks (EVRING_BUILD_BENCH=OFF)";
    ASSERT_NE(probe.err.find("no-such-case"), std::string::npos) << probe.err;
  }
  static json last_json_line(const std::string& out) {
    auto lines = lines_of(out);
    EXPECT_FALSE(lines.empty());
    return lines.empty() ? json{} : json::parse(lines.back());
  }
  // Figures taken with the TSC clock and with clock_gettime are not comparable: every report
  // says which one producers used, and the kernel clocksource that decided it.
  static void expect_clock_named(const json& j) {
    EXPECT_EQ(j.value("event_clock", ""),
              evring::core::tsc_clock_usable() ? "tsc" : "clock_gettime");
    std::ifstream in("/sys/devices/system/clocksource/clocksource0/current_clocksource");
    std::string source;
    if (!std::getline(in, source) || source.empty()) source = "unknown";
    EXPECT_EQ(j.value("clocksource", ""), source);
  }
};

TEST_F(BenchVerbTest, ThroughputAccountsForEveryEventPerConsumer) {
  Output o = run({"bench", "throughput", "--seconds", "0.2", "--runs", "2", "--producers", "2",
                  "--consumers", "2", "--partitions", "2", "--batch", "4", "--no-peers", "--json"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_NE(o.out.find("all events accounted for"), std::string::npos) << o.out;
  // Four processes on the default two CPUs wait for each other: said once, not as disturbances.
  EXPECT_NE(o.out.find("note: 4 processes on 2 CPUs take turns"), std::string::npos) << o.out;
  EXPECT_EQ(o.out.find("waited"), std::string::npos) << o.out;
  json j = last_json_line(o.out);
  EXPECT_EQ(j["mode"], "throughput");
  expect_clock_named(j);
  EXPECT_EQ(j["producers"], 2);
  EXPECT_EQ(j["consumers"], 2);
  ASSERT_EQ(j["runs"].size(), 2u);
  for (const json& r : j["runs"]) {
    const std::uint64_t published = r["published"];
    EXPECT_GT(published, 0u);
    ASSERT_EQ(r["delivered_per_consumer"].size(), 2u);
    for (const json& d : r["delivered_per_consumer"]) EXPECT_EQ(d.get<std::uint64_t>(), published);
    EXPECT_EQ(r["rejected_per_producer"].size(), 2u);
    // How long each process waited for its CPU (cpu_wait.h): producers, then consumers. Four
    // processes share the test machine's CPUs here, so only the count and type are certain.
    ASSERT_EQ(r["cpu_wait_ns"].size(), 4u) << r.dump();
    for (const json& w : r["cpu_wait_ns"]) EXPECT_TRUE(w.is_number_unsigned()) << r.dump();
    EXPECT_GT(r["events_per_sec"].get<double>(), 0.0);
    // Both are printed rounded to whole numbers: events/s x 64 may differ by up to 64.
    EXPECT_NEAR(r["bytes_per_sec"].get<double>(), r["events_per_sec"].get<double>() * 64, 64.0);
  }
  EXPECT_LE(j["events_per_sec"]["min"].get<double>(), j["events_per_sec"]["median"].get<double>());
  EXPECT_LE(j["events_per_sec"]["median"].get<double>(), j["events_per_sec"]["max"].get<double>());
  EXPECT_FALSE(j.contains("ratio_vs_bare_spsc")) << "--no-peers measures no reference";
  EXPECT_FALSE(j.contains("against"));
}

TEST_F(BenchVerbTest, ThroughputAgainstSeveralCasesGivesEachRatioFromTheSameRuns) {
  Output o = run({"bench", "throughput", "--seconds", "0.1", "--runs", "2", "--against",
                  "bare_spsc_slot,bare_spsc_span,boost_mq", "--json"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_NE(o.out.find("peers bare_spsc_slot (256 B messages, one slot)"), std::string::npos)
      << "a 64 B event takes a 256 B slot: " << o.out;
  EXPECT_NE(o.out.find("peers bare_spsc_span (128 B messages, the lines one event spans)"),
            std::string::npos)
      << "a 64 B event with its compact header and 8-byte key spans two lines: " << o.out;
  EXPECT_NE(o.out.find("ratio evring/boost_mq"), std::string::npos) << o.out;
  json j = last_json_line(o.out);
  EXPECT_FALSE(j.contains("ratio_vs_bare_spsc")) << "bare_spsc was not asked for";
  ASSERT_TRUE(j.contains("against"));
  ASSERT_EQ(j["against"].size(), 3u);
  const double evring = j["events_per_sec"]["median"];
  for (const char* name : {"bare_spsc_slot", "bare_spsc_span", "boost_mq"}) {
    ASSERT_TRUE(j["against"].contains(name)) << name;
    const json& c = j["against"][name];
    ASSERT_EQ(c["runs"].size(), 2u) << name << ": one run after each evring run";
    ASSERT_EQ(c["cpu_wait_ns"].size(), 2u) << name << ": the CPU wait of each of those runs";
    const double a = c["runs"][0], b = c["runs"][1];
    EXPECT_GT(std::min(a, b), 0.0) << name;
    EXPECT_DOUBLE_EQ(c["msgs_per_sec"]["min"].get<double>(), std::min(a, b)) << name;
    EXPECT_DOUBLE_EQ(c["msgs_per_sec"]["max"].get<double>(), std::max(a, b)) << name;
    const double median = c["msgs_per_sec"]["median"];
    EXPECT_NEAR(median, (a + b) / 2, 1.0) << name;
    EXPECT_NEAR(c["ratio"].get<double>(), evring / median, 1e-3) << name;
    // Per run: each evring run over the case's run right after it (pairs, not medians).
    const json& runs = j["runs"];
    const double r0 = runs[0]["events_per_sec"].get<double>() / a;
    const double r1 = runs[1]["events_per_sec"].get<double>() / b;
    const json& pr = c["ratio_per_run"];
    EXPECT_NEAR(pr["min"].get<double>(), std::min(r0, r1), 1e-3) << name;
    EXPECT_NEAR(pr["max"].get<double>(), std::max(r0, r1), 1e-3) << name;
    EXPECT_NEAR(pr["median"].get<double>(), (r0 + r1) / 2, 1e-3) << name;
  }
}

TEST_F(BenchVerbTest, LatencyReportsOrderedPercentilesAndWritesHgrm) {
  const std::string hgrm = path("lat.hgrm");
  Output o = run({"bench", "latency", "--seconds", "0.2", "--rate", "20000", "--wait", "block",
                  "--hgrm", hgrm, "--json"});
  ASSERT_EQ(o.code, 0) << o.err;
  json j = last_json_line(o.out);
  EXPECT_EQ(j["mode"], "latency");
  expect_clock_named(j);
  EXPECT_EQ(j["wait"], "block");
  EXPECT_EQ(j["count"].get<std::uint64_t>(), 4000u) << "rate x seconds events, every one timed";
  std::uint64_t prev = 0;
  for (const char* k : {"p50_ns", "p90_ns", "p99_ns", "p999_ns", "p9999_ns", "max_ns"}) {
    ASSERT_TRUE(j.contains(k)) << k;
    EXPECT_GE(j[k].get<std::uint64_t>(), prev) << k;
    prev = j[k];
  }
  EXPECT_GT(j["p50_ns"].get<std::uint64_t>(), 0u);
  EXPECT_GT(j["rtt_count"].get<std::uint64_t>(), 0u);
  EXPECT_LE(j["rtt_p50_ns"].get<std::uint64_t>(), j["rtt_p99_ns"].get<std::uint64_t>());
  EXPECT_LE(j["rtt_p99_ns"].get<std::uint64_t>(), j["rtt_p999_ns"].get<std::uint64_t>());
  EXPECT_GT(j["pingpong_rtt_p50_ns"].get<double>(), 0.0);
  // The CPU waits: sender and receiver, initiator and echo, and the ping-pong's processes.
  ASSERT_TRUE(j.contains("cpu_wait_ns")) << o.out;
  EXPECT_EQ(j["cpu_wait_ns"]["one_way"].size(), 2u);
  EXPECT_EQ(j["cpu_wait_ns"]["round_trip"].size(), 2u);
  EXPECT_TRUE(j["cpu_wait_ns"]["pingpong"].is_number_unsigned());
  EXPECT_NE(o.out.find("cpu wait (ms): one-way sender"), std::string::npos) << o.out;
  // .hgrm: the HdrHistogram percentile-distribution text, ending with the total count.
  const std::string text = slurp(hgrm);
  EXPECT_NE(text.find("Value     Percentile TotalCount 1/(1-Percentile)"), std::string::npos)
      << text.substr(0, 200);
  EXPECT_NE(text.find("Total count    =         4000]"), std::string::npos) << text;
}

TEST_F(BenchVerbTest, PeersRunTheReferenceCases) {
  Output o = run({"bench", "peers", "--quick", "--cases", "pingpong,bare_spsc", "--json"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_NE(o.out.find("pingpong"), std::string::npos);
  EXPECT_NE(o.out.find("bare_spsc"), std::string::npos);
  json j = json::parse(o.out);
  EXPECT_TRUE(j.is_object());
  for (const char* name : {"pingpong", "bare_spsc"})  // --quick: one run each
    EXPECT_EQ(j["cases"][name]["cpu_wait_ns"].size(), 1u) << name << ": " << o.out;
}

// bare_spsc_span moves --span-bytes messages (the lines one event spans): bytes/s is messages/s
// times that size. Sizes out of range are usage errors.
TEST_F(BenchVerbTest, PeersSpanCaseMovesSpanBytesMessages) {
  Output o = run(
      {"bench", "peers", "--quick", "--cases", "bare_spsc_span", "--span-bytes", "192", "--json"});
  ASSERT_EQ(o.code, 0) << o.err;
  json j = json::parse(o.out);
  EXPECT_EQ(j["env"]["span_bytes"], 192);
  const json& m = j["cases"]["bare_spsc_span"]["metrics"];
  const double msgs = m["msgs_per_s"]["median"], bytes = m["bytes_per_s"]["median"];
  EXPECT_GT(msgs, 0.0);
  EXPECT_NEAR(bytes, msgs * 192, msgs * 192 * 1e-6);
  o = run({"bench", "peers", "--span-bytes", "4"});
  EXPECT_EQ(o.code, 2);
  EXPECT_NE(o.err.find("--span-bytes wants a number in [8, 1.04858e+06], got '4'"),
            std::string::npos)
      << o.err;
}

TEST_F(BenchVerbTest, ExclusiveThroughputAndRoundTripAccountForEveryEvent) {
  Output o = run({"bench", "throughput", "--seconds", "0.2", "--runs", "1", "--exclusive",
                  "--no-peers", "--json"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_NE(o.out.find("all events accounted for"), std::string::npos) << o.out;
  json j = last_json_line(o.out);
  const std::uint64_t published = j["runs"][0]["published"];
  EXPECT_GT(published, 0u);
  EXPECT_EQ(j["runs"][0]["delivered_per_consumer"][0].get<std::uint64_t>(), published);
  o = run({"bench", "latency", "--seconds", "0.2", "--rate", "20000", "--exclusive", "--no-peers",
           "--json"});
  ASSERT_EQ(o.code, 0) << o.err;
  j = last_json_line(o.out);
  EXPECT_GT(j["count"].get<std::uint64_t>(), 0u);
  EXPECT_GT(j["rtt_count"].get<std::uint64_t>(), 0u);
}

TEST_F(BenchVerbTest, BadFlagsAreOneLineUsageErrors) {
  Output o = run({"bench", "throughput", "--payload", "x"});
  EXPECT_EQ(o.code, 2);
  expect_one_error_line(o, "--payload needs a number, got 'x'");
  o = run({"bench", "throughput", "--payload", "8"});
  EXPECT_EQ(o.code, 2);
  expect_one_error_line(o, "--payload must be >= 24");
  o = run({"bench", "throughput", "--bogus"});
  EXPECT_EQ(o.code, 2);
  expect_one_error_line(o, "--bogus");
  o = run({"bench", "latency", "--wait", "nap"});
  EXPECT_EQ(o.code, 2);
  expect_one_error_line(o, "nap");
  o = run({"bench", "throughput", "--producers", "17"});
  EXPECT_EQ(o.code, 2);
  expect_one_error_line(o, "--producers/--consumers must be 1..16");
  o = run({"bench", "throughput", "--producers", "2", "--exclusive"});
  EXPECT_EQ(o.code, 2);
  expect_one_error_line(o, "--exclusive needs --producers 1: exclusive producers do not share a partition");
  o = run({"bench"});
  EXPECT_EQ(o.code, 2);
  expect_one_error_line(o, "subcommand");
}

// --clock picks how producers stamp events (EVRING_CLOCK for the bench's processes), and the
// report says which clock they used; a bad mode is a usage error before anything runs.
TEST_F(BenchVerbTest, ClockFlagChoosesTheEventClockAndBadModesAreUsageErrors) {
  struct Case {
    const char* mode;
    std::string clock;
  };
  const std::vector<Case> cases = {
      {"realtime", "clock_gettime"},
      {"tsc",
       evring::core::tsc_clock_usable(evring::core::ClockMode::kTsc) ? "tsc" : "clock_gettime"},
  };
  for (const Case& c : cases) {
    Output o = run({"bench", "throughput", "--seconds", "0.05", "--runs", "1", "--no-peers",
                    "--clock", c.mode, "--json"});
    ASSERT_EQ(o.code, 0) << o.err;
    EXPECT_EQ(last_json_line(o.out).value("event_clock", ""), c.clock) << c.mode;
  }
  Output o = run({"bench", "latency", "--clock", "rdtsc"});
  EXPECT_EQ(o.code, 2);
  expect_one_error_line(o, "--clock: clock mode 'rdtsc' is not one of auto, tsc, realtime");
  EXPECT_EQ(o.out.find("p50"), std::string::npos) << "nothing was measured";
}

TEST_F(BenchVerbTest, BadAgainstListsAreOneLineUsageErrors) {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{"--against", "pingpong"}, "--against: pingpong measures a round trip, not a rate"},
      {{"--against", "bare_spsc,nosuch"},
       "--against: unknown case 'nosuch' (bare_spsc, bare_spsc_slot, bare_spsc_span, boost_mq"},
      {{"--against", "boost_mq,boost_mq"}, "--against: case 'boost_mq' named twice"},
      {{"--against", "bare_spsc,"}, "--against needs case names separated by commas"},
      {{"--against", "boost_mq", "--no-peers"}, "--against and --no-peers contradict each other"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args{"bench", "throughput"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    Output o = run(args);
    EXPECT_EQ(o.code, 2) << c.message;
    expect_one_error_line(o, c.message);
    EXPECT_EQ(o.out.find("events_per_sec"), std::string::npos) << "nothing was measured";
  }
  Output o = run({"bench", "latency", "--against", "boost_mq"});
  EXPECT_EQ(o.code, 2);
  expect_one_error_line(o, "--against");
  // The peers' --cases list is split the same way: an empty name is refused, not skipped.
  o = run({"bench", "peers", "--cases", "pingpong,,bare_spsc"});
  EXPECT_EQ(o.code, 2);
  EXPECT_NE(o.err.find("unknown case ''"), std::string::npos) << o.err;
}

}  // namespace
}  // namespace evring_cli_test
