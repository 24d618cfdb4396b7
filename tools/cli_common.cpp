#include "cli_common.h"

#include <cstdio>
#include <ctime>
#include <limits>

namespace evring::cli {

const char* const kExitCodeHelp =
    "Exit codes:\n"
    "  0  ok\n"
    "  1  internal error\n"
    "  2  bad usage: unknown flag, invalid argument (bus/event name, JSON, id, size)\n"
    "  3  bus missing\n"
    "  4  bus exists\n"
    "  5  permission denied\n"
    "  6  refused event: domain not owned, too large, unknown type, bus full\n"
    "  7  corrupt segment or layout version mismatch\n"
    "  8  unavailable / busy (e.g. consumer attached by another process, registry full)\n"
    "  9  timeout\n"
    "Every error is one line on stderr starting with 'evring: '.";

int exit_code_for(Code code) {
  switch (code) {
    case Code::kOk: return kExitOk;
    case Code::kInvalidArgument: return kExitUsage;
    case Code::kNotFound: return kExitNotFound;
    case Code::kAlreadyExists: return kExitExists;
    case Code::kPermissionDenied: return kExitPermission;
    case Code::kLayoutMismatch:
    case Code::kCorruption: return kExitCorrupt;
    case Code::kPayloadTooLarge:
    case Code::kUnknownEventType:
    case Code::kDomainNotOwned:
    case Code::kFull:
    case Code::kPhiInClear: return kExitRefused;
    case Code::kResourceExhausted:
    case Code::kUnavailable: return kExitUnavailable;
    case Code::kTimeout: return kExitTimeout;
    case Code::kIoError: return kExitInternal;
  }
  return kExitInternal;
}

void print_error(std::string_view message) {
  std::string line = "evring: ";
  for (char c : message) line += (c == '\n' || c == '\r') ? ' ' : c;  // one line, always
  line += '\n';
  std::fflush(stdout);
  std::fputs(line.c_str(), stderr);
}

int fail(const Status& status) {
  print_error(status.to_string());
  return exit_code_for(status.code());
}

namespace {

std::string quoted(std::string_view flag, std::string_view text) {
  return std::string(flag) + " '" + std::string(text) + "'";
}

// Digits only; no sign, no blanks. Overflow is an error.
bool parse_digits(std::string_view text, std::uint64_t* out) {
  if (text.empty()) return false;
  std::uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    auto d = static_cast<std::uint64_t>(c - '0');
    if (v > (std::numeric_limits<std::uint64_t>::max() - d) / 10) return false;
    v = v * 10 + d;
  }
  *out = v;
  return true;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

}  // namespace

Result<std::uint64_t> parse_uint(std::string_view text, std::string_view flag) {
  std::uint64_t v = 0;
  if (!parse_digits(text, &v))
    return Status::invalid_argument(quoted(flag, text) + " is not a non-negative integer");
  return v;
}

Result<std::uint64_t> parse_duration_ns(std::string_view text, std::string_view flag) {
  std::size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  const std::string_view unit = text.substr(digits);
  std::uint64_t multiplier = 0;
  if (unit == "ns") multiplier = 1;
  else if (unit == "us") multiplier = 1'000;
  else if (unit == "ms") multiplier = 1'000'000;
  else if (unit == "s") multiplier = 1'000'000'000;
  else if (unit == "m") multiplier = 60'000'000'000;
  else if (unit == "h") multiplier = 3'600'000'000'000;
  std::uint64_t v = 0;
  if (multiplier == 0 || !parse_digits(text.substr(0, digits), &v))
    return Status::invalid_argument(quoted(flag, text) +
                                    " is not a duration (a number with ns, us, ms, s, m or h)");
  if (v == 0) return Status::invalid_argument(quoted(flag, text) + " must be more than zero");
  if (v > std::numeric_limits<std::uint64_t>::max() / multiplier)
    return Status::invalid_argument(quoted(flag, text) + " is too long");
  return v * multiplier;
}

Result<DedupWindowArg> parse_dedup_window(std::string_view text, std::string_view flag) {
  DedupWindowArg out;
  std::uint64_t v = 0;
  if (parse_digits(text, &v)) {
    if (v == 0)
      return Status::invalid_argument(quoted(flag, text) +
                                      " must be at least 1 event (omit the flag to disable dedup)");
    out.events = v;
    return out;
  }
  auto ns = parse_duration_ns(text, flag);
  if (!ns.ok())
    return Status::invalid_argument(quoted(flag, text) +
                                    " is neither an event count (N) nor a duration (500ms, 10s, 5m)");
  out.duration_ns = *ns;
  return out;
}

Result<std::uint64_t> parse_size(std::string_view text, std::string_view flag) {
  std::size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  std::string_view suffix = text.substr(digits);
  std::uint64_t multiplier = 1;
  if (suffix.empty()) multiplier = 1;
  else if (iequals(suffix, "k") || iequals(suffix, "kib")) multiplier = 1ull << 10;
  else if (iequals(suffix, "m") || iequals(suffix, "mib")) multiplier = 1ull << 20;
  else if (iequals(suffix, "g") || iequals(suffix, "gib")) multiplier = 1ull << 30;
  else
    return Status::invalid_argument(quoted(flag, text) +
                                    " is not a size (a number, optionally with K, M or G)");
  std::uint64_t v = 0;
  if (!parse_digits(text.substr(0, digits), &v))
    return Status::invalid_argument(quoted(flag, text) + " is not a size");
  if (v > std::numeric_limits<std::uint64_t>::max() / multiplier)
    return Status::invalid_argument(quoted(flag, text) + " is too large");
  return v * multiplier;
}

Result<mode_t> parse_octal_mode(std::string_view text, std::string_view flag) {
  std::string_view digits = text;
  if (digits.size() > 2 && digits[0] == '0' && (digits[1] == 'o' || digits[1] == 'O'))
    digits.remove_prefix(2);
  if (digits.empty() || digits.size() > 4)
    return Status::invalid_argument(quoted(flag, text) + " is not an octal mode like 0600");
  unsigned v = 0;
  for (char c : digits) {
    if (c < '0' || c > '7')
      return Status::invalid_argument(quoted(flag, text) + " is not an octal mode like 0600");
    v = v * 8 + static_cast<unsigned>(c - '0');
  }
  if (v > 0777)
    return Status::invalid_argument(quoted(flag, text) +
                                    ": only permission bits (0..0777) may be set");
  return static_cast<mode_t>(v);
}

Result<core::Overflow> parse_overflow(std::string_view text) {
  if (text == "reject") return core::Overflow::kReject;
  if (text == "overwrite") return core::Overflow::kOverwrite;
  return Status::invalid_argument(quoted("--overflow", text) + " must be reject or overwrite");
}

const char* const kOutputFormatNames = "json|table|cloudevents";

Result<OutputFormat> parse_output_format(std::string_view text) {
  if (text == "json") return OutputFormat::kJson;
  if (text == "table") return OutputFormat::kTable;
  if (text == "cloudevents") return OutputFormat::kCloudEvents;
  return Status::invalid_argument(quoted("--format", text) +
                                  " is not an output format: use json, table or cloudevents");
}

std::string_view overflow_name(core::Overflow overflow) {
  switch (overflow) {
    case core::Overflow::kReject: return "reject";
    case core::Overflow::kOverwrite: return "overwrite";
  }
  return "invalid";
}

std::vector<std::string> split_list(std::string_view list) {
  std::vector<std::string> out;
  while (true) {
    std::size_t comma = list.find(',');
    std::string_view item = list.substr(0, comma);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (!item.empty()) out.emplace_back(item);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return out;
}

std::string human_bytes(std::uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  if (bytes < 1024) return std::to_string(bytes) + " B";
  double v = static_cast<double>(bytes);
  int unit = 0;
  while (v >= 1024.0 && unit < 4) {
    v /= 1024.0;
    ++unit;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f %s", v, kUnits[unit]);
  return buf;
}

std::string octal_mode(mode_t mode) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode));
  return buf;
}

std::string human_duration_ns(std::uint64_t ns) {
  static constexpr struct { std::uint64_t ns; const char* unit; } kUnits[] = {
      {3'600'000'000'000, "h"}, {60'000'000'000, "m"}, {1'000'000'000, "s"},
      {1'000'000, "ms"},        {1'000, "us"}};
  if (ns == 0) return "0s";
  for (const auto& u : kUnits)
    if (ns % u.ns == 0) return std::to_string(ns / u.ns) + u.unit;
  return std::to_string(ns) + "ns";
}

std::string rfc3339_ns(std::uint64_t unix_ns) {
  const auto seconds = static_cast<std::time_t>(unix_ns / 1'000'000'000ull);
  const auto nanos = static_cast<unsigned>(unix_ns % 1'000'000'000ull);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%09uZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, nanos);
  return buf;
}

Status publish_status(core::PublishResult result, std::string_view context) {
  std::string msg = std::string(context) + ": " + std::string(core::describe(result));
  switch (result) {
    case core::PublishResult::kOk:
    case core::PublishResult::kDuplicate: return Status::ok();
    case core::PublishResult::kFull: return Status::full(msg);
    case core::PublishResult::kTooLarge: return Status::payload_too_large(msg);
    case core::PublishResult::kUnknownType: return Status::unknown_event_type(msg);
    case core::PublishResult::kDomainNotOwned: return Status::domain_not_owned(msg);
    case core::PublishResult::kRevoked:
    case core::PublishResult::kExclusive:
    case core::PublishResult::kBusy: return Status::unavailable(msg);
  }
  return Status(Code::kUnavailable, msg);
}

}  // namespace evring::cli
