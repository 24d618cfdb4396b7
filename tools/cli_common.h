#pragma once
// Shared pieces of the `evring` command: exit codes, Status -> exit code, argument parsing
// helpers, human-readable formatting, and the verb registry that main() dispatches through.
#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "evring/codec/status.h"
#include "evring/core/ring.h"

namespace CLI {
class App;
}

namespace evring::cli {

// Exit codes: a stable contract (tools/README.md, `evring --help`).
enum ExitCode : int {
  kExitOk = 0,
  kExitInternal = 1,     // a bug or an unexpected OS error
  kExitUsage = 2,        // bad flags or arguments (names, JSON, ids, sizes)
  kExitNotFound = 3,     // the bus does not exist
  kExitExists = 4,       // the bus already exists
  kExitPermission = 5,   // the OS refused access
  kExitRefused = 6,      // an event was refused (domain, size, type, full)
  kExitCorrupt = 7,      // corrupt segment or layout version mismatch
  kExitUnavailable = 8,  // busy / unavailable (consumer attached elsewhere, registry full)
  kExitTimeout = 9,      // nothing arrived in time
};

// The epilog of `evring --help`.
extern const char* const kExitCodeHelp;

int exit_code_for(Code code);
// Prints `evring: <status>` (one line) on stderr; returns the status's exit code.
int fail(const Status& status);
// Prints `evring: <message>` (one line) on stderr.
void print_error(std::string_view message);

// A verb: its CLI11 subcommand and what runs when it was chosen.
struct Verb {
  CLI::App* command = nullptr;
  std::function<int()> run;
};
using VerbList = std::vector<Verb>;

void add_admin_verbs(CLI::App& app, VerbList& verbs);    // create, ls, rm, stat
void add_publish_verb(CLI::App& app, VerbList& verbs);   // publish
void add_tail_verb(CLI::App& app, VerbList& verbs);      // tail

// ---- parsing (errors are invalid_argument naming the flag and the text) ----

// Unsigned integer with an optional binary suffix: K/KiB (1024), M/MiB, G/GiB; case-insensitive.
Result<std::uint64_t> parse_size(std::string_view text, std::string_view flag);
// Plain unsigned decimal integer.
Result<std::uint64_t> parse_uint(std::string_view text, std::string_view flag);
// A positive duration: digits followed by a unit, ns, us, ms, s, m (minutes) or h; in ns.
Result<std::uint64_t> parse_duration_ns(std::string_view text, std::string_view flag);
// --dedup-window: a plain event count ("64") or a duration ("500ms", "10s", "5m").
struct DedupWindowArg {
  std::uint64_t events = 0;       // set when a count was given
  std::uint64_t duration_ns = 0;  // set when a duration was given
};
Result<DedupWindowArg> parse_dedup_window(std::string_view text, std::string_view flag);
// Octal permission bits such as 0600, 660 or 0o640 (0..0777).
Result<mode_t> parse_octal_mode(std::string_view text, std::string_view flag);
Result<core::Overflow> parse_overflow(std::string_view text);
std::string_view overflow_name(core::Overflow overflow);
// --format of `tail` and `inspect` (tools/README.md, "Output formats").
enum class OutputFormat { kJson, kTable, kCloudEvents };
// The values --format accepts, as help and errors list them: "json|table|cloudevents".
extern const char* const kOutputFormatNames;
// Invalid argument naming the text and listing the valid values.
Result<OutputFormat> parse_output_format(std::string_view text);
// Splits "a,b,,c" into {"a","b","c"} (surrounding blanks trimmed).
std::vector<std::string> split_list(std::string_view list);

// Fits an unsigned value into a narrower type or says which flag overflowed.
template <typename T>
Result<T> narrow(std::uint64_t value, std::string_view flag) {
  if (value > static_cast<std::uint64_t>(static_cast<T>(~T{0})))
    return Status::invalid_argument(std::string(flag) + " " + std::to_string(value) +
                                    " is out of range");
  return static_cast<T>(value);
}

// ---- formatting ----

// 8.6 MiB, 512 B, 1.0 GiB.
std::string human_bytes(std::uint64_t bytes);
// 0600
std::string octal_mode(mode_t mode);
// 500ms, 10s, 5m, 1500us: the largest unit that divides the value exactly.
std::string human_duration_ns(std::uint64_t ns);
// RFC 3339 UTC with nanoseconds: 2024-05-01T12:34:56.123456789Z.
std::string rfc3339_ns(std::uint64_t unix_ns);
// A hot-path refusal as a Status (context names the event), OK for kOk / kDuplicate.
Status publish_status(core::PublishResult result, std::string_view context);

}  // namespace evring::cli
