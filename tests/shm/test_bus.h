#pragma once
// Test scaffolding for shm tests: unique bus names (pid + test name), an RAII bus that is
// removed at the end of the test, a guard for names a test creates itself, small options, and
// fork helpers whose children never return into GoogleTest.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "evring/shm/bus.h"

namespace evring::testing {

// The status has `code` and, when must_mention is given, a message that contains it.
inline void expect_status(const Status& s, Code code, const std::string& must_mention = "") {
  EXPECT_EQ(s.code(), code) << s.to_string();
  if (!must_mention.empty()) {
    EXPECT_NE(s.message().find(must_mention), std::string::npos)
        << "message '" << s.message() << "' should mention '" << must_mention << "'";
  }
}

// The payloads a consumer polls until nothing more comes (at most 1000 polls).
inline std::vector<std::string> drain_payloads(Consumer& consumer) {
  std::vector<std::string> out;
  for (int i = 0; i < 1000; ++i) {
    auto r = consumer.poll([&](const core::Event& e) { out.emplace_back(e.view.payload_text()); });
    if (r.delivered == 0 && r.skipped == 0 && r.gaps == 0) break;
  }
  return out;
}

// "<prefix><i>" (written this way because GCC 12 warns, falsely, on "literal" + to_string()).
inline std::string tag(std::string_view prefix, long i) {
  std::string s(prefix);
  s += std::to_string(i);
  return s;
}

// "t<pid>-<test name>", made of allowed characters and at most 48 of them.
inline std::string unique_bus_name(std::string_view suffix = "") {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string test = info ? info->name() : "notest";
  test += suffix;
  std::string name = tag("t", ::getpid());
  name += '-';
  for (char c : test) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-' || c == '.';
    name += ok ? c : '_';
  }
  if (name.size() > 48) {
    // Keep the end too: names differing only in their tail must stay distinct.
    const std::string tail = name.substr(name.size() - 16);
    name = name.substr(0, 32) + tail;
  }
  return name;
}

inline bool object_exists(std::string_view bus) {
  return ::access(Bus::object_path(bus).c_str(), F_OK) == 0;
}

// Removes a bus name at scope exit (whether or not it was created).
class BusNameGuard {
 public:
  explicit BusNameGuard(std::string name) : name_(std::move(name)) { (void)Bus::remove(name_); }
  ~BusNameGuard() { (void)Bus::remove(name_); }
  BusNameGuard(const BusNameGuard&) = delete;
  BusNameGuard& operator=(const BusNameGuard&) = delete;
  const std::string& name() const { return name_; }

 private:
  std::string name_;
};

inline BusOptions small_options(std::uint32_t partitions = 2, std::uint32_t slots = 64,
                                core::Overflow overflow = core::Overflow::kReject) {
  BusOptions o;
  o.ring.partitions = partitions;
  o.ring.slots_per_partition = slots;
  o.ring.slot_bytes = 512;
  o.ring.max_consumers = 8;
  o.ring.overflow = overflow;
  o.max_producers = 16;
  o.max_types = 32;
  o.consumer_grace_ms = 0;  // tests of sweeping want a dead consumer detached at once
  return o;
}

// A freshly created bus, removed (unlinked) when the test ends.
class TestBus {
 public:
  explicit TestBus(const BusOptions& options = small_options(), std::string_view suffix = "")
      : guard_(unique_bus_name(suffix)) {
    auto bus = Bus::create(guard_.name(), options);
    if (!bus.ok()) {
      ADD_FAILURE() << "creating test bus " << guard_.name() << ": " << bus.status().to_string();
      return;
    }
    bus_ = std::move(bus.value());
  }
  const std::string& name() const { return guard_.name(); }
  Bus& operator*() const { return *bus_; }
  Bus* operator->() const { return bus_.get(); }
  const std::shared_ptr<Bus>& shared() const { return bus_; }
  bool ok() const { return bus_ != nullptr; }
  // Drops this process's mapping (e.g. before truncating the object under it).
  void unmap() { bus_.reset(); }

 private:
  BusNameGuard guard_;  // declared first: destroyed last, after the mapping is dropped
  std::shared_ptr<Bus> bus_;
};

// Forks; the child runs fn() and _exits with its return value (1 on an exception). The child
// never returns into GoogleTest and runs no atexit handlers or static destructors.
template <typename Fn>
pid_t fork_child(Fn&& fn) {
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    int code = 1;
    try {
      code = fn();
    } catch (...) {
      code = 1;
    }
    ::_exit(code);
  }
  return pid;
}

// Waits for a child at most `timeout`; kills it (SIGKILL) when it is late. Returns the exit
// code, 128 + signal when killed by a signal, or -1 on timeout.
inline int wait_child(pid_t pid, std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (true) {
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) return -2;
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -3;
}

}  // namespace evring::testing
