// top: a live view of a bus's counters and per-consumer delivery latency (tools/INSPECT.md).
//
// Read-only mapping, relaxed/acquire loads only: it never writes the segment, so the only cost
// to producers is the cache traffic of reading their counter lines once per interval.
// On a terminal it clears and redraws each interval and quits on `q` (stdin in non-canonical
// mode, restored on exit) or Ctrl-C; when stdout is not a terminal it prints plain frames
// separated by a blank line, without escape codes.
#include <poll.h>
#include <signal.h>
#include <termios.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli_common.h"
#include "evring/core/histogram.h"
#include "evring/core/ring_layout.h"
#include "latency_render.h"
#include "evring/shm/bus.h"

namespace evring::cli {

void add_top_verb(CLI::App& app, VerbList& verbs);

namespace {

volatile sig_atomic_t g_top_stop = 0;
extern "C" void on_top_signal(int) { g_top_stop = 1; }

struct TopArgs {
  std::string bus, interval_ms = "1000", iterations;
};

// Puts a terminal stdin into non-canonical, no-echo mode; restores it when destroyed.
class RawStdin {
 public:
  RawStdin() {
    if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &saved_) != 0) return;
    termios raw = saved_;
    raw.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO);
    raw.c_cc[VMIN] = 1;
    raw.c_cc[VTIME] = 0;
    active_ = tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
  }
  ~RawStdin() {
    if (active_) tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
  }
  RawStdin(const RawStdin&) = delete;
  RawStdin& operator=(const RawStdin&) = delete;

 private:
  termios saved_{};
  bool active_ = false;
};

struct Snapshot {
  std::chrono::steady_clock::time_point at;
  std::vector<std::uint64_t> head, rejected, abandoned, deduplicated;
  std::vector<std::string> exclusive;  // holder of each partition: "-", "producer N" or "lane L?"
  struct ConsumerRow {
    ConsumerInfo info;
    std::uint64_t delivered = 0, lag = 0, gaps = 0, filtered = 0, corrupt = 0;
    // Cumulative delivery latency (validated copy of the segment's cells), or why not.
    std::optional<core::Histogram> latency;
    std::string latency_error;
  };
  std::vector<ConsumerRow> consumers;
};

Snapshot take(const Bus& bus) {
  const core::RingRegion& ring = bus.ring();
  const std::uint32_t parts = ring.config().partitions;
  Snapshot s;
  s.at = std::chrono::steady_clock::now();
  s.head.resize(parts), s.rejected.resize(parts), s.abandoned.resize(parts);
  s.deduplicated.resize(parts), s.exclusive.resize(parts);
  for (std::uint32_t p = 0; p < parts; ++p) {
    const core::PartitionHeader& ph = ring.partition(p);
    s.head[p] = ph.head.load(std::memory_order_relaxed);
    s.rejected[p] = ph.rejected.load(std::memory_order_relaxed);
    s.abandoned[p] = ph.abandoned.load(std::memory_order_relaxed);
    s.deduplicated[p] = ph.deduplicated.load(std::memory_order_relaxed);
    // The exclusive (or biased) holder's mark is lane + 1 (core/ring_layout.h); another process
    // wrote it.
    const std::uint32_t owner = ph.exclusive_owner.load(std::memory_order_relaxed);
    const std::uint32_t mark = core::owner_lane_mark(owner);
    s.exclusive[p] = owner == 0 ? "-"
                     : mark != 0 && mark - 1 < ring.config().producer_lanes
                         ? (core::owner_biased(owner) ? "biased " : "producer ") +
                               std::to_string(ring.lane(mark - 1).producer_id)
                         : "lane " + std::to_string(mark - 1) + "?";
  }
  for (ConsumerInfo& ci : bus.consumers()) {
    if (ci.index >= ring.config().max_consumers) continue;  // registry and ring disagree
    Snapshot::ConsumerRow row;
    for (std::uint32_t p = 0; p < parts; ++p) {
      const core::CursorLine& line = ring.cursor(ci.index, p);
      const std::uint64_t committed = line.committed.load(std::memory_order_acquire);
      row.lag += s.head[p] > committed ? s.head[p] - committed : 0;
      row.delivered += line.delivered.load(std::memory_order_relaxed);
      row.gaps += line.gaps.load(std::memory_order_relaxed);
      row.filtered += line.filtered.load(std::memory_order_relaxed);
      row.corrupt += line.corrupt.load(std::memory_order_relaxed);
    }
    auto latency = ci.latency_snapshot();
    if (latency.ok()) row.latency = std::move(latency.value());
    else row.latency_error = latency.status().message();
    row.info = std::move(ci);
    s.consumers.push_back(std::move(row));
  }
  return s;
}

std::string rate(std::uint64_t now, std::uint64_t before, double seconds, bool have_before) {
  if (!have_before || seconds <= 0) return "-";
  char buf[32];
  const double r = now >= before ? static_cast<double>(now - before) / seconds : 0.0;
  std::snprintf(buf, sizeof buf, "%.1f", r);
  return buf;
}

struct Latency {
  std::string p50 = "-", p99 = "-", p999 = "-";
};

// Percentiles of what `row` delivered since `before` (the previous frame's row of the same
// consumer), or of everything when there is no previous frame or the histogram was reset.
// "-" when nothing was delivered in the window; "corrupt" when the counts failed validation.
Latency interval_latency(const Snapshot::ConsumerRow& row, const Snapshot::ConsumerRow* before) {
  Latency out;
  if (!row.latency) {
    out.p50 = out.p99 = out.p999 = "corrupt";
    return out;
  }
  std::optional<core::Histogram> delta;
  if (before && before->latency) delta = latency_delta(*row.latency, *before->latency);
  const core::Histogram& h = delta ? *delta : *row.latency;
  if (h.count() == 0) return out;
  const LatencySummary s = summarize_latency(h);
  out.p50 = human_latency(s.p50_ns);
  out.p99 = human_latency(s.p99_ns);
  out.p999 = human_latency(s.p999_ns);
  return out;
}

std::string now_text() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return rfc3339_ns(static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ull +
                    static_cast<std::uint64_t>(ts.tv_nsec));
}

std::string render(const Bus& bus, const Snapshot& s, const Snapshot* prev, std::uint64_t interval_ms,
                   bool tty) {
  const core::RingConfig& c = bus.ring().config();
  const double secs = prev ? std::chrono::duration<double>(s.at - prev->at).count() : 0.0;
  std::string out;
  char line[512];
  auto add = [&](int n) { out.append(line, static_cast<std::size_t>(std::max(0, std::min(n, 511)))); };
  add(std::snprintf(line, sizeof line, "evring top: bus %s  %s  every %llu ms%s\n",
                    bus.name().c_str(), now_text().c_str(),
                    static_cast<unsigned long long>(interval_ms), tty ? "  (q quits)" : ""));
  add(std::snprintf(line, sizeof line, "%u partitions x %u slots of %u B, overflow %s\n\n",
                    c.partitions, c.slots_per_partition, c.slot_bytes,
                    std::string(overflow_name(c.overflow)).c_str()));
  add(std::snprintf(line, sizeof line, "%-9s %14s %12s %10s %10s %10s  %s\n", "PARTITION",
                    "HEAD", "PUBLISH/S", "REJECTED", "ABANDONED", "DEDUPED", "EXCLUSIVE"));
  std::uint64_t th = 0, tr = 0, ta = 0, td = 0, tph = 0;
  for (std::uint32_t p = 0; p < c.partitions; ++p) {
    const std::uint64_t ph = prev && p < prev->head.size() ? prev->head[p] : 0;
    add(std::snprintf(line, sizeof line, "%-9u %14llu %12s %10llu %10llu %10llu  %s\n", p,
                      static_cast<unsigned long long>(s.head[p]),
                      rate(s.head[p], ph, secs, prev != nullptr).c_str(),
                      static_cast<unsigned long long>(s.rejected[p]),
                      static_cast<unsigned long long>(s.abandoned[p]),
                      static_cast<unsigned long long>(s.deduplicated[p]),
                      s.exclusive[p].c_str()));
    th += s.head[p], tr += s.rejected[p], ta += s.abandoned[p], td += s.deduplicated[p], tph += ph;
  }
  add(std::snprintf(line, sizeof line, "%-9s %14llu %12s %10llu %10llu %10llu\n\n", "total",
                    static_cast<unsigned long long>(th), rate(th, tph, secs, prev != nullptr).c_str(),
                    static_cast<unsigned long long>(tr), static_cast<unsigned long long>(ta),
                    static_cast<unsigned long long>(td)));

  add(std::snprintf(line, sizeof line,
                    "delivery latency (now - publish time): %s\n",
                    prev ? "over the last interval" : "since each consumer was created"));
  add(std::snprintf(line, sizeof line,
                    "%-20s %-16s %-15s %11s %10s %8s %9s %8s %9s %9s %9s\n", "CONSUMER",
                    "FILTER", "STATE", "DELIVERED/S", "LAG", "GAPS", "FILTERED", "CORRUPT", "P50",
                    "P99", "P99.9"));
  if (s.consumers.empty()) out += "(no consumers)\n";
  for (const auto& row : s.consumers) {
    const Snapshot::ConsumerRow* before = nullptr;
    if (prev)
      for (const auto& r : prev->consumers)
        if (r.info.name == row.info.name) before = &r;
    const char* state = !row.info.attached ? "detached"
                        : row.info.alive   ? "attached/alive"
                                           : "attached/dead";
    const Latency lat = interval_latency(row, before);
    add(std::snprintf(line, sizeof line,
                      "%-20s %-16s %-15s %11s %10llu %8llu %9llu %8llu %9s %9s %9s\n",
                      row.info.name.c_str(), row.info.filter.empty() ? "*" : row.info.filter.c_str(),
                      state,
                      rate(row.delivered, before ? before->delivered : 0, secs, before != nullptr)
                          .c_str(),
                      static_cast<unsigned long long>(row.lag),
                      static_cast<unsigned long long>(row.gaps),
                      static_cast<unsigned long long>(row.filtered),
                      static_cast<unsigned long long>(row.corrupt), lat.p50.c_str(),
                      lat.p99.c_str(), lat.p999.c_str()));
    if (!row.latency_error.empty())
      add(std::snprintf(line, sizeof line, "  latency of '%s': %s\n", row.info.name.c_str(),
                        row.latency_error.c_str()));
  }
  return out;
}

// Waits up to `ms` for the interval to pass; true when the user asked to quit.
bool wait_interval(std::uint64_t ms, bool* stdin_open) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (!g_top_stop) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        until - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{STDIN_FILENO, POLLIN, 0};
    const int r = ::poll(&p, *stdin_open ? 1 : 0, static_cast<int>(left.count()));
    if (r < 0 && errno != EINTR) return false;
    if (r > 0) {
      char buf[64];
      const ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
      if (n <= 0) {
        *stdin_open = false;  // EOF (stdin is /dev/null or a closed pipe): just sleep
        continue;
      }
      for (ssize_t i = 0; i < n; ++i)
        if (buf[i] == 'q' || buf[i] == 'Q') return true;
    }
  }
  return true;
}

int run_top(const TopArgs& a) {
  auto interval = parse_uint(a.interval_ms, "--interval-ms");
  if (!interval.ok()) return fail(interval.status());
  if (*interval == 0 || *interval > 3600000)
    return fail(Status::invalid_argument("--interval-ms " + a.interval_ms +
                                         " must be between 1 and 3600000"));
  std::uint64_t iterations = 0;  // 0 = until q / Ctrl-C
  if (!a.iterations.empty()) {
    auto v = parse_uint(a.iterations, "--iterations");
    if (!v.ok()) return fail(v.status());
    if (*v == 0) return fail(Status::invalid_argument("--iterations must be at least 1"));
    iterations = *v;
  }
  auto opened = Bus::open(a.bus, Access::kReadOnly);
  if (!opened.ok()) return fail(opened.status());
  const Bus& bus = **opened;

  struct sigaction sa {};
  sa.sa_handler = on_top_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGHUP, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);

  const bool tty = isatty(STDOUT_FILENO) != 0;
  RawStdin raw;  // restored by its destructor on every return below
  bool stdin_open = true;
  std::unique_ptr<Snapshot> prev;
  int rc = kExitOk;
  if (tty) std::fputs("\033[?25l", stdout);  // hide the cursor while drawing
  for (std::uint64_t n = 0; !g_top_stop; ++n) {
    auto snap = std::make_unique<Snapshot>(take(bus));
    std::string frame = render(bus, *snap, prev.get(), *interval, tty);
    if (tty) frame = "\033[H\033[2J" + frame;
    else if (n > 0) frame = "\n" + frame;
    if (std::fputs(frame.c_str(), stdout) < 0 || std::fflush(stdout) != 0) {
      rc = kExitInternal;
      break;
    }
    prev = std::move(snap);
    if (iterations && n + 1 >= iterations) break;
    if (wait_interval(*interval, &stdin_open)) break;
  }
  if (tty) std::fputs("\033[?25h\n", stdout);  // show the cursor again
  if (std::fflush(stdout) != 0) rc = kExitInternal;
  if (rc != kExitOk) print_error("writing stdout failed");
  return rc;
}

}  // namespace

void add_top_verb(CLI::App& app, VerbList& verbs) {
  auto args = std::make_shared<TopArgs>();
  CLI::App* cmd = app.add_subcommand(
      "top",
      "Live view of partition heads, consumer lag/rates and delivery latency percentiles "
      "(read-only; q or Ctrl-C quits)");
  cmd->add_option("BUS", args->bus, "Bus name")->required();
  cmd->add_option("--interval-ms", args->interval_ms, "Refresh interval in ms (default 1000)");
  cmd->add_option("--iterations", args->iterations, "Stop after N refreshes (default: until q)");
  verbs.push_back({cmd, [args] { return run_top(*args); }});
}

}  // namespace evring::cli
