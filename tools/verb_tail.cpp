// tail: follow a bus, one event per line: evring's JSON object (default), a CloudEvents 1.0
// JSON object, or a row of an aligned table (--format, tools/README.md).
//
// Durable (--consumer NAME): auto-commit is off and the cursor is committed right after each
// event's line was written and flushed, so `--count N` runs neither lose nor repeat events.
// Ephemeral (no --consumer): a consumer named tail-<pid>, removed on exit.
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <memory>
#include <string>

#include "cli_common.h"
#include "evring/core/wait.h"
#include "evring/shm/bus.h"
#include "json_render.h"

namespace evring::cli {
namespace {

volatile sig_atomic_t g_stop = 0;
extern "C" void on_stop_signal(int) { g_stop = 1; }

void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: a blocking wait returns early
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  // A closed stdout (e.g. `| head`) is a write error we handle, not a fatal signal.
  signal(SIGPIPE, SIG_IGN);
}

struct TailArgs {
  std::string bus, consumer, from, filter, count, timeout_ms, wait = "block", format = "json";
};

Result<core::RingConsumer::Start> parse_from(std::string_view text) {
  if (text == "earliest") return core::RingConsumer::Start::kEarliest;
  if (text == "latest") return core::RingConsumer::Start::kLatest;
  if (text == "committed") return core::RingConsumer::Start::kCommitted;
  return Status::invalid_argument("--from '" + std::string(text) +
                                  "' must be earliest, latest or committed");
}

Result<core::WaitStrategy> parse_wait(std::string_view text) {
  if (text == "spin") return core::WaitStrategy::kSpin;
  if (text == "yield") return core::WaitStrategy::kYield;
  if (text == "block") return core::WaitStrategy::kBlock;
  return Status::invalid_argument("--wait '" + std::string(text) + "' must be spin, yield or block");
}

// True when stdout is a pipe whose reader went away (`evring tail ... | head -1`), so an idle
// tail notices without waiting for its next event.
bool stdout_closed() {
  pollfd p{STDOUT_FILENO, 0, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & (POLLERR | POLLHUP)) != 0;
}

bool is_ephemeral_name(std::string_view name) {
  if (name.size() <= 5 || name.substr(0, 5) != "tail-") return false;
  for (char c : name.substr(5))
    if (c < '0' || c > '9') return false;
  return true;
}

// Ephemeral consumers of tails that were killed before they could remove themselves.
void remove_dead_ephemeral_consumers(Bus& bus) {
  for (const ConsumerInfo& c : bus.consumers())
    if (is_ephemeral_name(c.name) && !c.alive) (void)bus.remove_consumer(c.name);
}

int run_tail(const TailArgs& a) {
  std::uint64_t count = 0, timeout_ms = 0;
  if (!a.count.empty()) {
    auto v = parse_uint(a.count, "--count");
    if (!v.ok()) return fail(v.status());
    count = *v;
  }
  if (!a.timeout_ms.empty()) {
    auto v = parse_uint(a.timeout_ms, "--timeout-ms");
    if (!v.ok()) return fail(v.status());
    timeout_ms = *v;
  }
  auto strategy = parse_wait(a.wait);
  if (!strategy.ok()) return fail(strategy.status());
  auto format = parse_output_format(a.format);
  if (!format.ok()) return fail(format.status());
  const bool ephemeral = a.consumer.empty();
  core::RingConsumer::Start start =
      ephemeral ? core::RingConsumer::Start::kLatest : core::RingConsumer::Start::kCommitted;
  if (!a.from.empty()) {
    auto f = parse_from(a.from);
    if (!f.ok()) return fail(f.status());
    start = *f;
  }
  if (Status s = Bus::validate_name(a.bus); !s.is_ok()) return fail(s);
  auto opened = Bus::open(a.bus);
  if (!opened.ok()) return fail(opened.status());
  std::shared_ptr<Bus> bus = std::move(opened.value());
  const std::string name = ephemeral ? "tail-" + std::to_string(getpid()) : a.consumer;
  if (ephemeral) remove_dead_ephemeral_consumers(*bus);

  install_signal_handlers();  // before attaching: a signal now still detaches cleanly
  auto attached = bus->consumer(name, {.filter = a.filter, .start = start, .auto_commit = false});
  if (!attached.ok()) return fail(attached.status());
  std::unique_ptr<Consumer> consumer = std::move(attached.value());

  NameCache names(*bus);
  bool write_failed = false;
  auto write_line = [&](std::string line) {
    line += '\n';
    if (std::fwrite(line.data(), 1, line.size(), stdout) != line.size() || std::fflush(stdout) != 0)
      write_failed = true;
  };
  auto print = [&](const core::Event& event) {
    switch (*format) {
      case OutputFormat::kJson: write_line(dump_line(render_event(event, names))); break;
      case OutputFormat::kCloudEvents:
        write_line(dump_line(
            render_cloudevent(event.view, event.partition, event.sequence, bus->name(), names)));
        break;
      case OutputFormat::kTable:
        write_line(table_line(event_table_columns(), event_table_cells(event.view, event.partition,
                                                                       event.sequence, names)));
        break;
    }
  };
  if (*format == OutputFormat::kTable) write_line(table_header(event_table_columns()));

  const std::uint64_t timeout_ns = timeout_ms * 1'000'000ull;
  std::uint64_t printed = 0, last_event_ns = core::monotonic_ns();
  bool timed_out = false;
  while (!g_stop && !write_failed && (count == 0 || printed < count)) {
    // One event per poll, so that the commit below covers exactly the events printed.
    core::PollResult r = consumer->poll(print, 1);
    if (r.gaps) {
      std::fflush(stdout);
      std::fprintf(stderr, "gap: %llu events lost (overwritten)\n",
                   static_cast<unsigned long long>(r.gaps));
    }
    if (write_failed) break;  // not committed: the next run sees this event again
    if (r.delivered || r.skipped || r.gaps) {
      // Skipped (filtered) slots are committed too, so a filtering consumer never holds a
      // reject-mode bus back.
      consumer->commit();
      if (r.delivered) {
        printed += r.delivered;
        last_event_ns = core::monotonic_ns();
      }
      continue;
    }
    if (stdout_closed()) break;
    std::uint64_t wait_ns = 100'000'000;  // wake up regularly to notice signals, closed stdout
    if (timeout_ms) {
      std::uint64_t now = core::monotonic_ns();
      if (now - last_event_ns >= timeout_ns) {
        timed_out = true;
        break;
      }
      wait_ns = std::min(wait_ns, timeout_ns - (now - last_event_ns));
    }
    (void)consumer->wait(*strategy, wait_ns);
  }
  consumer->commit();
  consumer.reset();  // detach: producers stop waiting for us
  if (ephemeral) {
    if (Status s = bus->remove_consumer(name); !s.is_ok()) return fail(s);
  }
  if (write_failed && errno != EPIPE) return fail(Status::from_errno(errno, "writing to stdout"));
  if (timed_out && count != 0 && printed < count)
    return fail(Status::timeout("received " + std::to_string(printed) + " of " +
                                std::to_string(count) + " events: none arrived for " +
                                std::to_string(timeout_ms) + " ms"));
  return kExitOk;
}

}  // namespace

void add_tail_verb(CLI::App& app, VerbList& verbs) {
  auto a = std::make_shared<TailArgs>();
  CLI::App* cmd = app.add_subcommand(
      "tail", "Follow a bus: one line per event (JSON, CloudEvents JSON or a table row)");
  cmd->add_option("BUS", a->bus, "Bus name")->required();
  cmd->add_option("--consumer", a->consumer,
                  "Durable consumer name: its cursor is committed after each printed event "
                  "(default: an ephemeral tail-<pid>, removed on exit)")
      ->type_name("NAME");
  cmd->add_option("--from", a->from,
                  "Where to start: earliest|latest|committed (default: committed with "
                  "--consumer, else latest)")
      ->type_name("WHERE");
  cmd->add_option("--filter", a->filter, "Event-name pattern, e.g. chat.> or sales.lead.*")
      ->type_name("PATTERN");
  cmd->add_option("--count", a->count, "Stop after N events (exit 9 if --timeout-ms ends it first)")
      ->type_name("N");
  cmd->add_option("--timeout-ms", a->timeout_ms, "Stop when no event arrived for this long")
      ->type_name("N");
  cmd->add_option("--wait", a->wait, "How to wait for events: spin|yield|block")
      ->type_name("STRATEGY")->capture_default_str();
  cmd->add_option("--format", a->format,
                  "Output: json (evring's event object), table (aligned columns, a header "
                  "first) or cloudevents (CloudEvents 1.0 JSON, structured mode)")
      ->type_name(kOutputFormatNames)->capture_default_str();
  verbs.push_back({cmd, [a] { return run_tail(*a); }});
}

}  // namespace evring::cli
