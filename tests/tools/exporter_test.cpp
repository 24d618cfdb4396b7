// `evring exporter` (tools/README.md): the built binary serves a bus with traffic; the test
// scrapes it over HTTP with a plain socket, parses the Prometheus text exposition and checks
// series against what it published and what the segment holds; then the error cases.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>

#include <chrono>
#include <cmath>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "cli_fixture.h"

namespace evring_cli_test {
namespace {

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

// One exposition line: name{k="v",...} value  (or name value). Comments are skipped by the
// caller. Label values may hold \" \\ \n escapes.
bool parse_sample(const std::string& line, Sample* s) {
  std::size_t i = 0;
  while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
  s->name = line.substr(0, i);
  s->labels.clear();
  if (i < line.size() && line[i] == '{') {
    ++i;
    while (i < line.size() && line[i] != '}') {
      const std::size_t eq = line.find('=', i);
      if (eq == std::string::npos || eq + 1 >= line.size() || line[eq + 1] != '"') return false;
      std::string key = line.substr(i, eq - i), value;
      std::size_t j = eq + 2;
      for (; j < line.size() && line[j] != '"'; ++j) {
        if (line[j] == '\\' && j + 1 < line.size()) ++j;
        value += line[j];
      }
      if (j >= line.size()) return false;
      s->labels[key] = value;
      i = j + 1;
      if (i < line.size() && line[i] == ',') ++i;
    }
    if (i >= line.size()) return false;
    ++i;  // '}'
  }
  if (i >= line.size() || line[i] != ' ') return false;
  const std::string v = line.substr(i + 1);
  if (v == "+Inf") s->value = INFINITY;
  else s->value = std::stod(v);
  return true;
}

class ExporterTest : public CliTest {
 protected:
  void TearDown() override {
    stop_exporter();
    CliTest::TearDown();
  }

  // A port nobody listens on right now (the kernel's pick for port 0).
  static int free_port() {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    close(fd);
    return ntohs(a.sin_port);
  }

  // GET /metrics; the body, or "" when nothing answers.
  static std::string http_get(int port, const std::string& path = "/metrics") {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      close(fd);
      return "";
    }
    const std::string req = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (send(fd, req.data(), req.size(), 0) != static_cast<ssize_t>(req.size())) {
      close(fd);
      return "";
    }
    std::string resp;
    char buf[8192];
    for (ssize_t n; (n = recv(fd, buf, sizeof buf, 0)) > 0;) resp.append(buf, static_cast<std::size_t>(n));
    close(fd);
    const std::size_t body = resp.find("\r\n\r\n");
    if (resp.rfind("HTTP/1.", 0) != 0 || body == std::string::npos) return "";
    EXPECT_NE(resp.substr(0, resp.find('\r')).find("200"), std::string::npos) << resp;
    return resp.substr(body + 4);
  }

  void start_exporter(const std::vector<std::string>& buses, int port) {
    std::vector<std::string> args{"exporter"};
    args.insert(args.end(), buses.begin(), buses.end());
    args.insert(args.end(), {"--listen", "127.0.0.1:" + std::to_string(port)});
    exporter_out_ = path("exporter.out");
    exporter_ = spawn(args, "", exporter_out_, path("exporter.err"));
    for (int i = 0; i < 100; ++i) {
      if (slurp(exporter_out_).find("serving") != std::string::npos) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ADD_FAILURE() << "exporter did not start: " << slurp(path("exporter.err"));
  }
  int stop_exporter() {
    if (exporter_ <= 0) return -1;
    kill(exporter_, SIGTERM);
    const int code = wait_exit(exporter_);
    exporter_ = -1;
    return code;
  }

  std::vector<Sample> scrape(int port) {
    const std::string body = http_get(port);
    EXPECT_FALSE(body.empty()) << "no answer from the exporter";
    std::vector<Sample> out;
    for (const std::string& line : lines_of(body)) {
      if (line[0] == '#') continue;
      Sample s;
      EXPECT_TRUE(parse_sample(line, &s)) << "unparseable line: " << line;
      out.push_back(s);
    }
    return out;
  }

  // The value of the one series `name` whose labels are exactly `labels`; NaN (and a failure)
  // when there is not exactly one.
  static double value(const std::vector<Sample>& samples, const std::string& name,
                      const std::map<std::string, std::string>& labels) {
    double v = NAN;
    int found = 0;
    for (const Sample& s : samples)
      if (s.name == name && s.labels == labels) v = s.value, ++found;
    EXPECT_EQ(found, 1) << name << " with " << labels.size() << " labels";
    return v;
  }

  pid_t exporter_ = -1;
  std::string exporter_out_;
};
using exporter = ExporterTest;  // lowercase suite: `ctest -R exporter`

TEST_F(exporter, ServesCountersLagAndLatencyHistogramsOfABusWithTraffic) {
  create({"--partitions", "2", "--slots", "64"});
  constexpr int kPublished = 7, kConsumed = 4;
  constexpr std::uint64_t kAgeNs = 20'000'000;  // events stamped 20 ms in the past
  std::uint64_t heads[2] = {0, 0}, committed[2] = {0, 0};
  {
    auto bus = evring::Bus::open(bus_);
    ASSERT_TRUE(bus.ok());
    auto consumer = (*bus)->consumer("audit");  // before publishing: it sees every event
    ASSERT_TRUE(consumer.ok());
    auto producer = (*bus)->producer("chat", {"chat"});
    ASSERT_TRUE(producer.ok());
    auto type = (*producer)->resolve("chat.message.created");
    ASSERT_TRUE(type.ok());
    for (int i = 0; i < kPublished; ++i) {
      const std::string key = numbered("conv-", i);
      evring::core::PublishRequest r;
      r.type_id = *type;
      r.entity_key = key;
      r.timestamp_ns = evring::unix_now_ns() - kAgeNs;
      ASSERT_EQ((*producer)->try_publish(r), evring::core::PublishResult::kOk);
    }
    std::size_t got = 0;
    while (got < kConsumed)
      got += (*consumer)->poll([](const evring::core::Event&) {}, kConsumed - got).delivered;
    const evring::core::RingRegion& ring = (*bus)->ring();
    for (std::uint32_t p = 0; p < 2; ++p) {
      heads[p] = ring.partition(p).head.load();
      committed[p] = ring.cursor((*consumer)->index(), p).committed.load();
    }
  }
  ASSERT_EQ(heads[0] + heads[1], static_cast<std::uint64_t>(kPublished));
  ASSERT_NE(heads[0], 0u) << "keys spread over both partitions";
  ASSERT_NE(heads[1], 0u) << "keys spread over both partitions";

  const int port = free_port();
  start_exporter({bus_}, port);
  const std::vector<Sample> s = scrape(port);
  const std::string b = bus_;

  EXPECT_EQ(value(s, "evring_bus_up", {{"bus", b}}), 1);
  EXPECT_EQ(value(s, "evring_read_errors", {{"bus", b}}), 0);
  double published = 0, lag = 0, delivered = 0;
  for (std::uint32_t p = 0; p < 2; ++p) {
    const std::string part = std::to_string(p);
    EXPECT_EQ(value(s, "evring_published_total", {{"bus", b}, {"partition", part}}), heads[p]);
    EXPECT_EQ(value(s, "evring_partition_head", {{"bus", b}, {"partition", part}}), heads[p]);
    EXPECT_EQ(value(s, "evring_rejected_total", {{"bus", b}, {"partition", part}}), 0);
    const std::map<std::string, std::string> cp{{"bus", b}, {"consumer", "audit"}, {"partition", part}};
    EXPECT_EQ(value(s, "evring_consumer_committed", cp), committed[p]);
    EXPECT_EQ(value(s, "evring_consumer_lag", cp), heads[p] - committed[p]) << "lag = head - cursor";
    published += value(s, "evring_published_total", {{"bus", b}, {"partition", part}});
    lag += value(s, "evring_consumer_lag", cp);
    delivered += value(s, "evring_consumer_delivered_total", cp);
  }
  EXPECT_EQ(published, kPublished);
  EXPECT_EQ(lag, kPublished - kConsumed);
  EXPECT_EQ(delivered, kConsumed);

  const std::map<std::string, std::string> who{{"bus", b}, {"consumer", "audit"}};
  EXPECT_EQ(value(s, "evring_consumer_attached", who), 0) << "its process let go of it";
  EXPECT_EQ(value(s, "evring_consumer_delivery_latency_seconds_count", who), kConsumed);
  const double sum = value(s, "evring_consumer_delivery_latency_seconds_sum", who);
  EXPECT_GE(sum, kConsumed * 0.020 * 0.99) << "each event was at least 20 ms old";
  EXPECT_LT(sum, kConsumed * 10.0);
  auto bucket = [&](const std::string& le) {
    auto labels = who;
    labels["le"] = le;
    return value(s, "evring_consumer_delivery_latency_seconds_bucket", labels);
  };
  EXPECT_EQ(bucket("0.01"), 0) << "nothing faster than the 20 ms age";
  EXPECT_EQ(bucket("10"), kConsumed);
  EXPECT_EQ(bucket("+Inf"), kConsumed);
  double previous = 0;
  for (const Sample& x : s)
    if (x.name == "evring_consumer_delivery_latency_seconds_bucket") {
      EXPECT_GE(x.value, previous) << "buckets are cumulative, le=" << x.labels.at("le");
      previous = x.value;
    }

  EXPECT_EQ(value(s, "evring_producer_alive", {{"bus", b}, {"producer", "chat"}, {"id", "1"}}), 1)
      << "the producer registered from this (running) process";
  EXPECT_EQ(value(s, "evring_event_type_info",
                  {{"bus", b}, {"event_type", "chat.message.created"}, {"id", "1"},
                   {"schema_version", "1"}, {"classification", "internal"}}),
            1);
  EXPECT_EQ(value(s, "evring_idempotency_handled_total", who), 0);

  // The exporter reads at scrape time: a bus removed meanwhile is reported down, not stale.
  ASSERT_TRUE(evring::Bus::remove(bus_).is_ok());
  const std::vector<Sample> after = scrape(port);
  EXPECT_EQ(value(after, "evring_bus_up", {{"bus", b}}), 0);
  for (const Sample& x : after) EXPECT_NE(x.name, "evring_published_total") << "stale series";
  EXPECT_EQ(stop_exporter(), 0) << "SIGTERM ends it cleanly";
}

TEST_F(exporter, ServesSeveralBusesLabelledByBus) {
  create({"--partitions", "1", "--slots", "16"});
  const std::string other = bus_ + "-b";
  ASSERT_EQ(run({"create", other, "--partitions", "1", "--slots", "16"}).code, 0);
  ASSERT_EQ(run({"publish", other, "--type", "chat.x", "--producer", "chat", "--entity", "k"}).code, 0);
  const int port = free_port();
  start_exporter({bus_, other}, port);
  const std::vector<Sample> s = scrape(port);
  EXPECT_EQ(value(s, "evring_published_total", {{"bus", bus_}, {"partition", "0"}}), 0);
  EXPECT_EQ(value(s, "evring_published_total", {{"bus", other}, {"partition", "0"}}), 1);
  EXPECT_EQ(value(s, "evring_bus_info", {{"bus", other}, {"overflow", "reject"}, {"partitions", "1"},
                                         {"slots", "16"}, {"slot_bytes", "512"}}),
            1);
  (void)evring::Bus::remove(other);
}

TEST_F(exporter, ServesTheExclusiveHolderOfEachPartition) {
  create({"--partitions", "2", "--slots", "16"});
  const ExclusiveHolder holder = hold_exclusively("conv-held");
  ASSERT_TRUE(holder.producer);
  const std::uint32_t held = holder.partition;
  const int port = free_port();
  start_exporter({bus_}, port);
  const std::vector<Sample> s = scrape(port);
  EXPECT_EQ(value(s, "evring_partition_exclusive_producer",
                  {{"bus", bus_}, {"partition", std::to_string(held)}}),
            holder.producer->id());
  EXPECT_EQ(value(s, "evring_partition_exclusive_producer",
                  {{"bus", bus_}, {"partition", std::to_string(1 - held)}}),
            0)
      << "shared";
  EXPECT_EQ(stop_exporter(), 0);
}

TEST_F(exporter, ServesTheBiasedHolderAndRevocationsOfEachPartition) {
  create({"--partitions", "2", "--slots", "16"});
  const ExclusiveHolder holder = hold_biased("conv-held");
  ASSERT_TRUE(holder.producer);
  const std::string held = std::to_string(holder.partition);
  const int port = free_port();
  start_exporter({bus_}, port);
  const std::vector<Sample> s = scrape(port);
  EXPECT_EQ(value(s, "evring_partition_biased_producer", {{"bus", bus_}, {"partition", held}}),
            holder.producer->id());
  EXPECT_EQ(value(s, "evring_partition_exclusive_producer", {{"bus", bus_}, {"partition", held}}),
            0)
      << "a bias is not an exclusive hold";
  EXPECT_EQ(value(s, "evring_bias_revocations_total", {{"bus", bus_}, {"partition", held}}), 0);
  EXPECT_EQ(stop_exporter(), 0);
}

TEST_F(exporter, PortInUseIsAClearError) {
  create({"--partitions", "1", "--slots", "16"});
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  const std::string port = std::to_string(ntohs(a.sin_port));
  Output o = run({"exporter", bus_, "--listen", "127.0.0.1:" + port});
  close(fd);
  EXPECT_EQ(o.code, 8) << o.err;
  expect_one_error_line(o, "port " + port + " is already in use");
}

TEST_F(exporter, BadListenAddressesAreUsageErrors) {
  create({"--partitions", "1", "--slots", "16"});
  const struct {
    std::string listen, mentions;
  } cases[] = {
      {"localhost:9464", "not an IPv4 address"},
      {"127.0.0.1", "IPV4:PORT"},
      {"9464", "IPV4:PORT"},
      {"127.0.0.1:", "--listen port"},
      {"127.0.0.1:http", "--listen port"},
      {"127.0.0.1:0", "port must be 1..65535"},
      {"127.0.0.1:70000", "port must be 1..65535"},
      {"192.0.2.1:9464", "192.0.2.1 is not an address of this host"},  // TEST-NET-1
  };
  for (const auto& c : cases) {
    Output o = run({"exporter", bus_, "--listen", c.listen});
    EXPECT_EQ(o.code, 2) << c.listen << ": " << o.err;
    expect_one_error_line(o, c.mentions);
  }
  Output missing = run({"exporter", bus_});
  EXPECT_EQ(missing.code, 2) << missing.err;
  expect_one_error_line(missing, "--listen");
}

TEST_F(exporter, MissingBusIsAClearError) {
  create({"--partitions", "1", "--slots", "16"});
  const int port = free_port();
  Output o = run({"exporter", bus_, "no-such-bus-" + std::to_string(getpid()), "--listen",
                  "127.0.0.1:" + std::to_string(port)});
  EXPECT_EQ(o.code, 3) << o.err;
  expect_one_error_line(o, "does not exist");
  EXPECT_TRUE(http_get(port).empty()) << "nothing may listen after the error";
  Output bad = run({"exporter", "bad/name", "--listen", "127.0.0.1:" + std::to_string(port)});
  EXPECT_EQ(bad.code, 2) << bad.err;
  expect_one_error_line(bad, "bad/name");
  Output twice = run({"exporter", bus_, bus_, "--listen", "127.0.0.1:" + std::to_string(port)});
  EXPECT_EQ(twice.code, 2) << twice.err;
  expect_one_error_line(twice, "bus '" + bus_ + "' is named twice");
}

}  // namespace
}  // namespace evring_cli_test
