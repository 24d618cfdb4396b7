// End-to-end tests of the `evring` command (fixture: cli_fixture.h).
#include <chrono>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include "evring/shm/bus.h"
#include "evring/shm/process.h"
#include "tools/cli_fixture.h"

namespace evring_cli_test {
namespace {

TEST_F(cli, CreateLsStatRmHappyPath) {
  Output o = run({"create", bus_, "--partitions", "2", "--slots", "64", "--slot-size", "1K",
                  "--overflow", "overwrite", "--mode", "0640", "--max-consumers", "8",
                  "--max-producers", "4"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(o.out.rfind("created bus '" + bus_ +
                            "': 2 partitions x 64 slots x 1024 B, overflow overwrite, mode 0640, ",
                        0),
            0u)
      << o.out;
  EXPECT_TRUE(std::regex_search(o.out, std::regex(R"(, [0-9.]+ (B|KiB|MiB|GiB)\n$)"))) << o.out;

  o = run({"ls", "--json"});
  ASSERT_EQ(o.code, 0) << o.err;
  json mine;
  for (const auto& b : json::parse(o.out))
    if (b["name"] == bus_) mine = b;
  ASSERT_TRUE(mine.is_object()) << o.out;
  EXPECT_EQ(mine["ok"], true);
  EXPECT_EQ(mine["partitions"], 2);
  EXPECT_EQ(mine["slots"], 64);
  EXPECT_EQ(mine["slot_size"], 1024);
  EXPECT_EQ(mine["overflow"], "overwrite");
  EXPECT_EQ(mine["max_consumers"], 8);
  EXPECT_EQ(mine["live_members"], 0);
  EXPECT_EQ(mine["stale"], true);  // its creator (evring create) has exited
  EXPECT_GT(mine["bytes"].get<std::uint64_t>(), 64u * 1024u * 2u);
  o = run({"ls"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_NE(o.out.find(bus_), std::string::npos);

  o = run({"publish", bus_, "--type", "chat.message.created", "--producer", "chat", "--entity",
           "conv-1", "--data", R"({"text":"hi"})"});
  ASSERT_EQ(o.code, 0) << o.err;
  json s = stat();
  EXPECT_EQ(s["bus"], bus_);
  EXPECT_EQ(s["config"]["partitions"], 2);
  EXPECT_EQ(s["config"]["slots"], 64);
  EXPECT_EQ(s["config"]["slot_size"], 1024);
  EXPECT_EQ(s["config"]["max_producers"], 4);
  EXPECT_EQ(s["config"]["mode"], "0640");
  ASSERT_EQ(s["partitions"].size(), 2u);
  EXPECT_EQ(s["totals"]["published"], 1);
  EXPECT_EQ(s["partitions"][0]["head"].get<int>() + s["partitions"][1]["head"].get<int>(), 1);
  ASSERT_EQ(s["producers"].size(), 1u);
  EXPECT_EQ(s["producers"][0]["service"], "chat");
  EXPECT_EQ(s["producers"][0]["domains"], json::array({"chat"}));
  ASSERT_EQ(s["types"].size(), 1u);
  EXPECT_EQ(s["types"][0]["name"], "chat.message.created");
  EXPECT_EQ(s["types"][0]["classification"], "internal");
  EXPECT_TRUE(s["consumers"].empty());
  o = run({"stat", bus_});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_NE(o.out.find("published 1"), std::string::npos) << o.out;

  o = run({"rm", bus_});
  ASSERT_EQ(o.code, 0) << o.err;
  o = run({"ls", "--json"});
  for (const auto& b : json::parse(o.out)) EXPECT_NE(b["name"], bus_);
}

TEST_F(cli, CreateExistingBusExits4) {
  create();
  Output o = run({"create", bus_});
  EXPECT_EQ(o.code, 4);
  expect_one_error_line(o, bus_);
}

TEST_F(cli, MissingBusExits3) {
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"rm", bus_},
           {"stat", bus_},
           {"stat", bus_, "--json"},
           {"publish", bus_, "--type", "chat.message.created", "--producer", "chat", "--entity", "x"},
           {"publish", bus_, "--jsonl"},
           {"tail", bus_, "--timeout-ms", "10"}}) {
    Output o = run(args);
    EXPECT_EQ(o.code, 3) << args[0];
    expect_one_error_line(o, bus_);
  }
}

TEST_F(cli, BadArgumentsExit2NamingTheBadPart) {
  Output o = run({"create", "bad name!"});
  EXPECT_EQ(o.code, 2);
  expect_one_error_line(o, "bad name!");
  create();
  const std::vector<std::string> base{"publish", bus_, "--producer", "chat", "--entity", "e1"};
  auto publish = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = base;
    args.insert(args.end(), extra.begin(), extra.end());
    return run(args);
  };
  o = publish({"--type", "Chat.Message.created"});
  EXPECT_EQ(o.code, 2);
  expect_one_error_line(o, "Chat");
  o = publish({"--type", "chat.message.created", "--data", "{\"a\": tru}"});
  EXPECT_EQ(o.code, 2);
  expect_one_error_line(o, "--data");
  o = publish({"--type", "chat.message.created", "--correlation", "xyz123"});
  EXPECT_EQ(o.code, 2);
  expect_one_error_line(o, "xyz123");
  o = publish({"--type", "chat.message.created", "--causation", "not-a-uuid"});
  EXPECT_EQ(o.code, 2);
  expect_one_error_line(o, "not-a-uuid");
  std::ofstream(path("bad.json")) << "{ not json";
  o = publish({"--type", "chat.message.created", "--data-file", path("bad.json")});
  EXPECT_EQ(o.code, 2);
  expect_one_error_line(o, "bad.json");
  o = run({"create", bus_ + "x", "--mode", "0999"});
  EXPECT_EQ(o.code, 2);
  expect_one_error_line(o, "0999");
  o = run({"create", bus_ + "x", "--overflow", "drop"});
  EXPECT_EQ(o.code, 2);
  expect_one_error_line(o, "drop");
  o = run({"create", bus_ + "x", "--slots", "100"});  // not a power of two
  EXPECT_EQ(o.code, 2);
  expect_one_error_line(o, "100");
  o = run({"tail", bus_, "--no-such-flag"});
  EXPECT_EQ(o.code, 2);
  expect_one_error_line(o, "--no-such-flag");
  EXPECT_EQ(stat()["totals"]["published"], 0);
}

TEST_F(cli, DomainNotOwnedExits6AndWritesNothing) {
  create();
  Output o = run({"publish", bus_, "--type", "billing.invoice.paid", "--producer", "chat",
                  "--entity", "inv-1", "--data", "{}"});
  EXPECT_EQ(o.code, 6);
  expect_one_error_line(o, "billing");
  json s = stat();
  EXPECT_EQ(s["totals"]["published"], 0);
  EXPECT_TRUE(s["types"].empty());
  // --domains lets a service own other domains.
  o = run({"publish", bus_, "--type", "billing.invoice.paid", "--producer", "chat",
           "--domains", "chat,billing", "--entity", "inv-1", "--data", "{}"});
  EXPECT_EQ(o.code, 6) << "a service's domains are fixed once registered";
  o = run({"publish", bus_, "--type", "billing.invoice.paid", "--producer", "billing-svc",
           "--domains", "billing", "--entity", "inv-1", "--data", "{}"});
  EXPECT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(stat()["totals"]["published"], 1);
}

// publish --exclusive holds the partitions it publishes to while it runs and lets go at exit;
// a partition held by another live producer refuses it, and plain publishes, with exit 8.
TEST_F(cli, PublishExclusiveHoldsWhileRunningAndIsRefusedWhereAnotherHolds) {
  create({"--partitions", "1"});
  Output o = run({"publish", bus_, "--type", "chat.message.created", "--producer", "chat",
                  "--entity", "conv-1", "--data", "{}", "--exclusive"});
  ASSERT_EQ(o.code, 0) << o.err;
  json s = stat();
  EXPECT_EQ(s["totals"]["published"], 1);
  EXPECT_TRUE(s["partitions"][0]["exclusive"].is_null()) << "released when the command exits";

  ExclusiveHolder holder = hold_exclusively("conv-2");
  ASSERT_TRUE(holder.producer);
  for (bool exclusive : {false, true}) {
    std::vector<std::string> args{"publish", bus_, "--type", "chat.message.created",
                                  "--producer", "chat", "--entity", "conv-3", "--data", "{}"};
    if (exclusive) args.push_back("--exclusive");
    o = run(args);
    EXPECT_EQ(o.code, 8) << "exclusive " << exclusive << ": " << o.err;
    expect_one_error_line(o, "held by another producer publishing exclusively");
  }
  std::string input = event_line("chat.message.created", "conv-4", 0) +
                      event_line("chat.message.created", "conv-5", 1);
  o = run({"publish", bus_, "--jsonl", "--producer", "chat", "--exclusive"}, input);
  EXPECT_EQ(o.code, 6) << o.err;
  EXPECT_EQ(o.out, "published 0 refused 2\n");
  EXPECT_EQ(stat()["totals"]["published"], 2) << "nothing written by the refused commands";

  holder.producer->set_exclusive(false);
  o = run({"publish", bus_, "--jsonl", "--producer", "chat", "--exclusive"}, input);
  EXPECT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(o.out, "published 2 refused 0\n");
  EXPECT_EQ(stat()["totals"]["published"], 4);
}

// A bias whose holder is stopped in the middle of a publish (its lane's intent marked
// kSoleClaim, made up here) keeps the partition busy: a single publish is refused with exit 8
// after the revoker's wait, writing nothing; with --full-timeout-ms it waits the claim out.
TEST_F(cli, PublishWaitsOutAPartitionKeptBusyByAStoppedBiasHolder) {
  create({"--partitions", "1"});
  auto bus = evring::Bus::open(bus_);
  ASSERT_TRUE(bus.ok()) << bus.status().to_string();
  const evring::core::RingRegion& ring = (*bus)->ring();
  // Owned by this process (pid and start time), so the CLI's liveness check finds it alive.
  auto lane = ring.acquire_lane(static_cast<std::uint32_t>(::getpid()),
                                evring::shm::self_start_time(), 9,
                                [](std::uint32_t, std::uint64_t) { return true; });
  ASSERT_TRUE(lane.ok());
  evring::core::ProducerLane& l = ring.lane(lane.value());
  l.partition.store(0);
  l.first.store(0);
  l.count.store(evring::core::kSoleClaim | 1);
  ring.partition(0).exclusive_owner.store(evring::core::kBiasedOwner | (lane.value() + 1));

  const std::vector<std::string> args{"publish", bus_, "--type", "chat.message.created",
                                      "--producer", "chat", "--entity", "conv-1", "--data", "{}"};
  Output o = run(args);
  EXPECT_EQ(o.code, 8) << o.err;
  expect_one_error_line(o, "partition busy");
  EXPECT_EQ(stat()["totals"]["published"], 0) << "nothing written";
  EXPECT_EQ(stat()["partitions"][0]["exclusive"]["revoking"], true);

  std::thread ends([&] {  // the holder resumes: it claims sequence 0 and finishes
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    ring.partition(0).head.store(1);
    l.count.store(0);
  });
  std::vector<std::string> waiting = args;
  waiting.insert(waiting.end(), {"--full-timeout-ms", "10000"});
  o = run(waiting);
  ends.join();
  EXPECT_EQ(o.code, 0) << o.err;
  json s = stat();
  EXPECT_EQ(s["totals"]["published"], 2);
  EXPECT_TRUE(s["partitions"][0]["exclusive"].is_null());
  EXPECT_EQ(s["partitions"][0]["bias_revocations"], 1);
}

TEST_F(cli, PayloadTooLargeExits6) {
  create({"--slot-size", "256"});
  Output o = run({"publish", bus_, "--type", "chat.message.created", "--producer", "chat",
                  "--entity", "e", "--data", json{{"text", std::string(300, 'x')}}.dump()});
  EXPECT_EQ(o.code, 6);
  expect_one_error_line(o, "too large");
  EXPECT_EQ(stat()["totals"]["published"], 0);
}

TEST_F(cli, ConcurrentJsonlPublishersAndDurableReadersSeeEveryEventOnce) {
  // 1024 slots in all, fewer than the 2000 events: publishers must wait for the readers.
  create({"--slots", "256"});
  constexpr int kPerPublisher = 1000, kEntities = 10, kReaders = 3;
  std::vector<pid_t> readers;
  for (int r = 0; r < kReaders; ++r)
    readers.push_back(spawn({"tail", bus_, "--consumer", "c" + std::to_string(r), "--count",
                             "2000", "--from", "earliest", "--timeout-ms", "10000"},
                            "", path("reader" + std::to_string(r)),
                            path("reader-err" + std::to_string(r))));
  auto bus = evring::Bus::open(bus_, evring::Access::kReadOnly);
  ASSERT_TRUE(bus.ok()) << bus.status().to_string();
  for (int i = 0;; ++i) {  // publish only once every reader is attached
    int attached = 0;
    for (const auto& c : (*bus)->consumers()) attached += c.attached && c.alive;
    if (attached == kReaders) break;
    ASSERT_LT(i, 1000) << "readers did not attach";
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::vector<pid_t> publishers;
  for (int p = 0; p < 2; ++p) {
    std::string input;
    for (int i = 0; i < kPerPublisher; ++i)
      input += event_line("chat.message.created",
                          numbered(numbered("p", p) + "-e", i % kEntities),
                          i / kEntities);
    std::ofstream(path("input" + std::to_string(p))) << input;
    publishers.push_back(spawn({"publish", bus_, "--jsonl", "--producer", "chat"},
                               path("input" + std::to_string(p)),
                               path("pub" + std::to_string(p)), path("pub-err" + std::to_string(p))));
  }
  for (int p = 0; p < 2; ++p) {
    EXPECT_EQ(wait_exit(publishers[p]), 0) << slurp(path("pub-err" + std::to_string(p)));
    EXPECT_EQ(slurp(path("pub" + std::to_string(p))), "published 1000 refused 0\n");
  }
  for (int r = 0; r < kReaders; ++r) {
    EXPECT_EQ(wait_exit(readers[r]), 0) << slurp(path("reader-err" + std::to_string(r)));
    std::vector<json> events = events_of(slurp(path("reader" + std::to_string(r))));
    ASSERT_EQ(events.size(), 2000u) << "reader " << r;
    std::set<std::string> ids;
    std::map<std::string, int> next;  // per entity: the counter expected next
    for (const auto& e : events) {
      ids.insert(e["id"].get<std::string>());
      EXPECT_EQ(e["type"], "chat.message.created");
      EXPECT_EQ(e["producer"], "chat");
      const std::string entity = e["entity"];
      EXPECT_EQ(e["data"]["entity"], entity);
      EXPECT_EQ(e["data"]["n"], next[entity]) << "reader " << r << " entity " << entity;
      next[entity] = e["data"]["n"].get<int>() + 1;
    }
    EXPECT_EQ(ids.size(), 2000u) << "reader " << r << " saw a duplicate";
    EXPECT_EQ(next.size(), 2u * kEntities);
    for (const auto& [entity, n] : next) EXPECT_EQ(n, kPerPublisher / kEntities) << entity;
  }
  json s = stat();
  EXPECT_EQ(s["totals"]["published"], 2000);
  EXPECT_EQ(s["totals"]["delivered"], 6000);
  for (const auto& c : s["consumers"]) EXPECT_EQ(c["lag"], 0) << c.dump();
}

TEST_F(cli, DurableConsumerResumesWithoutLossOrRepeat) {
  create();
  std::string input;
  for (int i = 0; i < 12; ++i) input += event_line("chat.message.created", numbered("e", i % 5), i);
  ASSERT_EQ(run({"publish", bus_, "--jsonl", "--producer", "chat"}, input).code, 0);
  std::set<int> seen;
  for (int round = 0; round < 2; ++round) {
    Output o = run({"tail", bus_, "--consumer", "durable", "--count", "5", "--timeout-ms", "2000",
                    round == 0 ? "--from" : "--wait", round == 0 ? "earliest" : "yield"});
    ASSERT_EQ(o.code, 0) << o.err;
    std::vector<json> events = events_of(o.out);
    ASSERT_EQ(events.size(), 5u);
    for (const auto& e : events) EXPECT_TRUE(seen.insert(e["data"]["n"].get<int>()).second) << e;
  }
  EXPECT_EQ(seen.size(), 10u);
  Output o = run({"tail", bus_, "--consumer", "durable", "--count", "5", "--timeout-ms", "200"});
  EXPECT_EQ(o.code, 9) << "only 2 events were left";
  std::vector<json> events = events_of(o.out);
  EXPECT_EQ(events.size(), 2u);
  for (const auto& e : events) EXPECT_TRUE(seen.insert(e["data"]["n"].get<int>()).second) << e;
  EXPECT_EQ(seen.size(), 12u);
  json s = stat();
  ASSERT_EQ(s["consumers"].size(), 1u);
  EXPECT_EQ(s["consumers"][0]["name"], "durable");
  EXPECT_EQ(s["consumers"][0]["attached"], false);
  EXPECT_EQ(s["consumers"][0]["lag"], 0);
  EXPECT_EQ(s["consumers"][0]["delivered"], 12);
}

TEST_F(cli, OverwriteBusReportsGap) {
  create({"--partitions", "1", "--slots", "8", "--overflow", "overwrite"});
  Output o = run({"tail", bus_, "--consumer", "late", "--timeout-ms", "1"});  // registers it
  ASSERT_EQ(o.code, 0) << o.err;
  std::string input;
  for (int i = 0; i < 50; ++i) input += event_line("chat.message.created", "e", i);
  ASSERT_EQ(run({"publish", bus_, "--jsonl", "--producer", "chat"}, input).out, "published 50 refused 0\n");
  o = run({"tail", bus_, "--consumer", "late", "--from", "committed", "--timeout-ms", "200"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_NE(o.err.find("gap: 42 events lost (overwritten)"), std::string::npos) << o.err;
  std::vector<json> events = events_of(o.out);
  ASSERT_EQ(events.size(), 8u);
  for (int i = 0; i < 8; ++i) EXPECT_EQ(events[i]["data"]["n"], 42 + i);
  EXPECT_EQ(stat()["totals"]["gaps"], 42);
}

TEST_F(cli, RejectBusWithStalledConsumerRefusesAfterFullTimeout) {
  create({"--partitions", "1", "--slots", "8", "--overflow", "reject"});
  auto bus = evring::Bus::open(bus_);
  ASSERT_TRUE(bus.ok()) << bus.status().to_string();
  auto holder = (*bus)->consumer("holder");  // attached, never polls
  ASSERT_TRUE(holder.ok()) << holder.status().to_string();
  std::string input;
  for (int i = 0; i < 20; ++i) input += event_line("chat.message.created", numbered("e", i), i);
  Output o = run({"publish", bus_, "--jsonl", "--producer", "chat", "--full-timeout-ms", "100"}, input);
  EXPECT_EQ(o.code, 6);
  EXPECT_EQ(o.out, "published 8 refused 12\n");
  std::vector<std::string> errors = lines_of(o.err);
  ASSERT_EQ(errors.size(), 12u) << o.err;
  EXPECT_NE(errors[0].find("line 9: "), std::string::npos) << errors[0];
  EXPECT_NE(errors[0].find("full"), std::string::npos) << errors[0];
  EXPECT_EQ(stat()["totals"]["published"], 8);
}

TEST_F(cli, JsonlReportsMalformedLinesAndKeepsGoing) {
  create();
  std::string input = event_line("chat.message.created", "a", 0) + "{not json\n" +
                      R"({"type":"chat.message.created","entity":"b","producer":"chat"})" "\n" +
                      "\n" + R"({"type":"billing.invoice.paid","entity":"c"})" "\n" +
                      R"({"type":"chat.message.created","entity":"d","correlation":"zz"})" "\n";
  Output o = run({"publish", bus_, "--jsonl", "--producer", "chat"}, input);
  EXPECT_EQ(o.code, 6);
  EXPECT_EQ(o.out, "published 2 refused 3\n");
  std::vector<std::string> errors = lines_of(o.err);
  ASSERT_EQ(errors.size(), 3u) << o.err;
  EXPECT_EQ(errors[0].rfind("evring: line 2: ", 0), 0u) << errors[0];
  EXPECT_EQ(errors[1].rfind("evring: line 5: ", 0), 0u) << errors[1];
  EXPECT_NE(errors[1].find("billing"), std::string::npos) << errors[1];
  EXPECT_EQ(errors[2].rfind("evring: line 6: ", 0), 0u) << errors[2];
}

TEST_F(cli, FilterDeliversOnlyMatchingEventsAndEphemeralConsumerIsRemoved) {
  create();
  ASSERT_EQ(run({"publish", bus_, "--type", "billing.invoice.paid", "--producer", "billing",
                 "--entity", "i1", "--data", "1"}).code, 0);
  Output o = run({"publish", bus_, "--type", "chat.message.created", "--producer", "chat",
                  "--entity", "c1", "--data", R"({"text":"hello"})", "--correlation",
                  "4bf92f3577b34da6a3ce929d0e0e4736", "--causation",
                  "01890a5d-ac96-774b-bcce-b302099a8057", "--idempotency-key", "order-42",
                  "--classification", "confidential", "--revision", "7"});
  ASSERT_EQ(o.code, 0) << o.err;
  const std::string id = o.out.substr(0, o.out.find(' '));
  ASSERT_EQ(run({"publish", bus_, "--type", "chat.message.deleted", "--producer", "chat",
                 "--entity", "c1"}).code, 0);
  o = run({"tail", bus_, "--filter", "chat.>", "--from", "earliest", "--timeout-ms", "200"});
  ASSERT_EQ(o.code, 0) << o.err;
  std::vector<json> events = events_of(o.out);
  ASSERT_EQ(events.size(), 2u) << o.out;
  const json& e = events[0];
  EXPECT_EQ(e["id"], id);
  EXPECT_EQ(e["type"], "chat.message.created");
  EXPECT_EQ(e["version"], 1);
  EXPECT_EQ(e["producer"], "chat");
  EXPECT_EQ(e["entity"], "c1");
  EXPECT_EQ(e["correlation"], "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(e["causation"], "01890a5d-ac96-774b-bcce-b302099a8057");
  EXPECT_EQ(e["idempotency_key"].get<std::string>().size(), 36u);
  EXPECT_EQ(e["classification"], "confidential");
  EXPECT_EQ(e["content_type"], "json");
  EXPECT_EQ(e["revision"], 7);
  EXPECT_EQ(e["data"], json({{"text", "hello"}}));
  EXPECT_EQ(e["time"].get<std::string>().size(), 30u);  // 2024-05-01T12:34:56.123456789Z
  EXPECT_EQ(events[1]["type"], "chat.message.deleted");
  EXPECT_TRUE(events[1]["causation"].is_null());
  EXPECT_TRUE(events[1]["data"].is_null());
  EXPECT_FALSE(events[1].contains("revision"));
  EXPECT_TRUE(stat()["consumers"].empty()) << "the ephemeral tail consumer must be removed";
}

TEST_F(cli, HelpListsEveryFlagAndExitCodes) {
  const std::map<std::string, std::vector<std::string>> flags{
      {"create", {"--partitions", "--slots", "--slot-size", "--overflow", "--mode",
                  "--max-consumers", "--max-producers", "--dedup-window", "--dedup-bits-per-key"}},
      {"ls", {"--json"}},
      {"rm", {}},
      {"stat", {"--json"}},
      {"publish", {"--type", "--producer", "--entity", "--domains", "--data", "--data-file",
                   "--correlation", "--causation", "--idempotency-key", "--classification",
                   "--revision", "--jsonl", "--full-timeout-ms", "--exclusive"}},
      {"tail", {"--consumer", "--from", "--filter", "--count", "--timeout-ms", "--wait"}}};
  Output top = run({"--help"});
  ASSERT_EQ(top.code, 0);
  for (const auto& [verb, list] : flags) {
    EXPECT_NE(top.out.find(verb), std::string::npos) << verb;
    Output o = run({verb, "--help"});
    ASSERT_EQ(o.code, 0) << verb;
    for (const auto& flag : list) EXPECT_NE(o.out.find(flag), std::string::npos) << verb << " " << flag;
  }
  for (const char* code : {"0  ok", "2  bad usage", "3  bus missing", "4  bus exists",
                           "5  permission denied", "6  refused event", "7  corrupt",
                           "8  unavailable", "9  timeout"})
    EXPECT_NE(top.out.find(code), std::string::npos) << code;
  Output v = run({"--version"});
  EXPECT_EQ(v.code, 0);
  EXPECT_NE(v.out.find("mimalloc"), std::string::npos) << v.out;
  Output none = run({});
  EXPECT_EQ(none.code, 2);
}

TEST_F(cli, DedupWindowDropsDuplicatesAndStatCountsThem) {
  Output o = run({"create", bus_, "--partitions", "1", "--slots", "128", "--dedup-window", "64"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_NE(o.out.find(", dedup window 64 events"), std::string::npos) << o.out;
  json s = stat();
  EXPECT_EQ(s["config"]["dedup_window"], 64);
  EXPECT_EQ(s["config"]["dedup_window_ns"], 0);
  EXPECT_GT(s["config"]["dedup_bloom_words"].get<int>(), 0);
  EXPECT_EQ(s["totals"]["deduplicated"], 0);

  std::string input;
  for (int i = 0; i < 20; ++i) {
    json line{{"type", "chat.message.created"}, {"entity", numbered("e", i)},
              {"idempotency_key", numbered("key-", i % 10)}, {"data", {{"n", i}}}};
    input += line.dump() + "\n";
  }
  o = run({"publish", bus_, "--jsonl", "--producer", "chat"}, input);
  EXPECT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(o.out, "published 20 refused 0\n") << "duplicates count as published, not refused";
  EXPECT_TRUE(o.err.empty()) << o.err;

  s = stat();
  EXPECT_EQ(s["totals"]["deduplicated"], 10);
  ASSERT_EQ(s["partitions"].size(), 1u);
  EXPECT_EQ(s["partitions"][0]["deduplicated"], 10);
  EXPECT_EQ(s["partitions"][0]["head"], 20) << "dropped duplicates still took a slot";

  o = run({"tail", bus_, "--from", "earliest", "--timeout-ms", "300"});
  ASSERT_EQ(o.code, 0) << o.err;
  std::vector<json> events = events_of(o.out);
  ASSERT_EQ(events.size(), 10u) << o.out;
  std::set<std::string> keys;
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(events[i]["data"]["n"], i) << "the first of each key is the one kept";
    keys.insert(events[i]["idempotency_key"].get<std::string>());
  }
  EXPECT_EQ(keys.size(), 10u);

  // A single publish of a duplicate: reported, exit 0, nothing written.
  o = run({"publish", bus_, "--type", "chat.message.created", "--producer", "chat", "--entity",
           "x", "--idempotency-key", "key-3"});
  EXPECT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(o.out.rfind("duplicate: ", 0), 0u) << o.out;
  EXPECT_EQ(stat()["totals"]["deduplicated"], 11);

  o = run({"stat", bus_});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_NE(o.out.find("dedup window 64 events"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("DEDUPLICATED"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("deduplicated 11"), std::string::npos) << o.out;
}

TEST_F(cli, DedupWindowDurationUsesHalfTheSlots) {
  Output o = run({"create", bus_, "--slots", "64", "--dedup-window", "500ms",
                  "--dedup-bits-per-key", "4"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_NE(o.out.find(", dedup window 32 events or 500ms"), std::string::npos) << o.out;
  json s = stat();
  EXPECT_EQ(s["config"]["dedup_window"], 32);
  EXPECT_EQ(s["config"]["dedup_window_ns"], 500'000'000ull);
  EXPECT_EQ(s["config"]["dedup_bloom_words"], 2) << "32 keys x 4 bits = 128 bits";
  ASSERT_EQ(run({"rm", bus_}).code, 0);
  for (const auto& [text, ns] : std::vector<std::pair<std::string, std::uint64_t>>{
           {"10s", 10'000'000'000ull}, {"5m", 300'000'000'000ull}, {"250us", 250'000ull}}) {
    o = run({"create", bus_, "--slots", "64", "--dedup-window", text});
    ASSERT_EQ(o.code, 0) << text << ": " << o.err;
    EXPECT_EQ(stat()["config"]["dedup_window_ns"], ns) << text;
    ASSERT_EQ(run({"rm", bus_}).code, 0);
  }
  create();
  EXPECT_EQ(stat()["config"]["dedup_window"], 0) << "dedup is off by default";
}

TEST_F(cli, BadDedupWindowExits2NamingTheProblem) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases{
      {{"--slots", "128", "--dedup-window", "65"}, "64"},  // the limit: slots / 2
      {{"--slots", "128", "--dedup-window", "0"}, "at least 1"},
      {{"--dedup-window", "abc"}, "abc"},
      {{"--dedup-window", "10x"}, "10x"},
      {{"--dedup-window", "0ms"}, "0ms"},
      {{"--dedup-window", "-5"}, "-5"},
      {{"--dedup-window", "64", "--dedup-bits-per-key", "0"}, "1..64"},
      {{"--dedup-window", "64", "--dedup-bits-per-key", "65"}, "1..64"},
      {{"--dedup-bits-per-key", "8"}, "--dedup-window"},
  };
  for (const auto& [extra, mentions] : cases) {
    std::vector<std::string> args{"create", bus_};
    args.insert(args.end(), extra.begin(), extra.end());
    Output o = run(args);
    EXPECT_EQ(o.code, 2) << extra.back();
    expect_one_error_line(o, mentions);
    EXPECT_NE(::access(evring::Bus::object_path(bus_).c_str(), F_OK), 0) << extra.back();
  }
}

}  // namespace
}  // namespace evring_cli_test
