#pragma once
#include <string_view>
// Fixture for the `evring` CLI tests: runs the built binary (EVRING_BINARY) as child processes
// over real buses in /dev/shm, capturing stdout, stderr and the exit code through files.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "evring/shm/bus.h"
#include "gtest/gtest.h"

namespace evring_cli_test {

using nlohmann::json;

struct Output {
  int code = -1;
  std::string out, err;
};

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// prefix + n, without operator+ on a temporary (GCC 12 reports a false -Wrestrict on that).
// The envelope a slot holds, its header expanded (the slot may elide header words:
// core/ring_layout.h, SlotElide). Empty when the slot's bytes cannot be expanded.
inline std::vector<std::byte> expanded_envelope(const evring::core::RingRegion& ring,
                                                const evring::core::SlotHeader& slot) {
  std::vector<std::byte> env(ring.max_envelope_bytes());
  env.resize(evring::core::expand_slot_envelope(slot, ring.max_envelope_bytes(), env.data()));
  return env;
}

// Rewrites a slot's event the way a damaged or foreign segment could hold it: `change` edits
// its full header, then the envelope is re-sealed and stored whole (nothing elided), so the
// checksum still holds.
template <typename Change>
void rewrite_slot_event(const evring::core::RingRegion& ring, evring::core::SlotHeader& slot,
                        Change change) {
  std::vector<std::byte> env = expanded_envelope(ring, slot);
  ASSERT_GE(env.size(), evring::kEnvelopeHeaderBytes);
  evring::EnvelopeHeader h;
  std::memcpy(&h, env.data(), sizeof h);
  change(h);
  std::memcpy(env.data(), &h, sizeof h);
  evring::seal_envelope(env);
  std::memcpy(evring::core::RingRegion::envelope_of(slot), env.data(), env.size());
  slot.envelope_bytes = static_cast<std::uint32_t>(env.size());
  slot.elided = 0;
}

inline std::string numbered(std::string prefix, int n) {
  prefix += std::to_string(n);
  return prefix;
}

inline std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(line);
  return out;
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string_view(EVRING_BINARY).empty())
      GTEST_SKIP() << "the evring tool was not built (EVRING_BUILD_TOOLS=OFF)";
    char dir[] = "/tmp/evring-cli-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    bus_ = "cli-" + std::string(info->name()).substr(0, 24) + "-" + std::to_string(getpid());
  }
  void TearDown() override {
    (void)evring::Bus::remove(bus_);
    std::system(("rm -rf '" + dir_ + "'").c_str());
  }

  std::string path(const std::string& name) const { return dir_ + "/" + name; }

  // Starts `evring args...` with stdin/stdout/stderr redirected to files ("" = /dev/null).
  pid_t spawn(const std::vector<std::string>& args, const std::string& in,
              const std::string& out, const std::string& err) {
    pid_t pid = fork();
    if (pid == 0) {
      auto redirect = [](const std::string& file, int fd, int flags) {
        int f = open(file.empty() ? "/dev/null" : file.c_str(), flags, 0600);
        if (f < 0 || dup2(f, fd) < 0) _exit(120);
        close(f);
      };
      redirect(in, 0, O_RDONLY);
      redirect(out, 1, O_WRONLY | O_CREAT | O_TRUNC);
      redirect(err, 2, O_WRONLY | O_CREAT | O_TRUNC);
      std::vector<char*> argv{const_cast<char*>(EVRING_BINARY)};
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      execv(EVRING_BINARY, argv.data());
      _exit(127);
    }
    return pid;
  }
  static int wait_exit(pid_t pid) {
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  Output run(const std::vector<std::string>& args, const std::string& stdin_text = "") {
    const std::string n = std::to_string(runs_++);
    const std::string in = path("in" + n), out = path("out" + n), err = path("err" + n);
    std::ofstream(in, std::ios::binary) << stdin_text;
    Output o;
    o.code = wait_exit(spawn(args, in, out, err));
    o.out = slurp(out);
    o.err = slurp(err);
    return o;
  }

  // Every error is exactly one line on stderr starting with "evring: ".
  static void expect_one_error_line(const Output& o, const std::string& mentions) {
    EXPECT_EQ(lines_of(o.err).size(), 1u) << o.err;
    EXPECT_EQ(o.err.rfind("evring: ", 0), 0u) << o.err;
    EXPECT_NE(o.err.find(mentions), std::string::npos) << "stderr should name '" << mentions
                                                      << "': " << o.err;
  }

  void create(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args{"create", bus_};
    args.insert(args.end(), extra.begin(), extra.end());
    Output o = run(args);
    ASSERT_EQ(o.code, 0) << o.err;
  }

  json stat() {
    Output o = run({"stat", bus_, "--json"});
    EXPECT_EQ(o.code, 0) << o.err;
    return json::parse(o.out);
  }

  std::vector<json> events_of(const std::string& out) {
    std::vector<json> events;
    for (const auto& line : lines_of(out)) events.push_back(json::parse(line));
    return events;
  }

  // A producer "chat" of this test's bus that publishes exclusively, after publishing one
  // event keyed `key`: it holds `partition` until it is destroyed or lets go.
  struct ExclusiveHolder {
    std::shared_ptr<evring::Bus> bus;
    std::unique_ptr<evring::Producer> producer;
    std::uint32_t partition = 0;
  };
  ExclusiveHolder hold_exclusively(const std::string& key) { return hold(key, false); }
  // The same producer publishing alone into the partition until it is biased to it
  // (core::RingProducer::set_bias_policy): held until another producer publishes there.
  ExclusiveHolder hold_biased(const std::string& key) { return hold(key, true); }
  ExclusiveHolder hold(const std::string& key, bool biased) {
    ExclusiveHolder h;
    auto bus = evring::Bus::open(bus_);
    EXPECT_TRUE(bus.ok()) << bus.status().to_string();
    if (!bus.ok()) return h;
    h.bus = std::move(bus.value());
    auto producer = h.bus->producer("chat", {"chat"});
    EXPECT_TRUE(producer.ok()) << producer.status().to_string();
    if (!producer.ok()) return h;
    h.producer = std::move(producer.value());
    auto type = h.producer->resolve("chat.message.created");
    EXPECT_TRUE(type.ok());
    constexpr std::uint32_t kRun = 4;
    if (biased)
      h.producer->set_bias_policy(kRun, evring::core::RingProducer::kBiasCooldownNs);
    else
      h.producer->set_exclusive(true);
    for (std::uint32_t i = 0; i < (biased ? kRun + 1 : 1); ++i)
      EXPECT_EQ(h.producer->publish(type.ok() ? *type : 0, key, "{}"),
                evring::core::PublishResult::kOk);
    h.partition = h.bus->ring().partition_of(
        evring::entity_key_hash(std::as_bytes(std::span(key.data(), key.size()))));
    return h;
  }

  static std::string event_line(const std::string& type, const std::string& entity, int n) {
    return json{{"type", type}, {"entity", entity}, {"data", {{"entity", entity}, {"n", n}}}}.dump() +
           "\n";
  }

  std::string dir_, bus_;
  int runs_ = 0;
};
// Lowercase suite name so that `ctest -R cli` selects these tests.
using cli = CliTest;

}  // namespace evring_cli_test
