#pragma once
// Status / Result: the cold-path error vocabulary shared by every layer.
//
// The hot path (try_publish, claim/commit, poll) never builds a Status: it returns a small
// [[nodiscard]] enum (see core/producer.h). Status is for create/open/validate/decode, where a
// message naming the problem is worth a string.
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace evring {

// Codes name what was wrong. Values are stable: the CLI maps them to exit codes and the C ABI
// returns them negated.
enum class Code : std::uint8_t {
  kOk = 0,
  kInvalidArgument = 1,    // a caller's value is malformed (bad name, bad size, bad flag)
  kNotFound = 2,           // bus, consumer, producer or event type does not exist
  kAlreadyExists = 3,      // bus already exists
  kPermissionDenied = 4,   // OS refused (segment mode / owner)
  kLayoutMismatch = 5,     // segment magic / layout version is not ours
  kCorruption = 6,         // bytes from shared memory failed validation
  kPayloadTooLarge = 7,    // event does not fit in a slot
  kUnknownEventType = 8,   // type id / name not registered
  kDomainNotOwned = 9,     // producer publishing outside its domains
  kFull = 10,              // ring full (reject mode), registry full
  kResourceExhausted = 11, // out of registry entries, memory, ...
  kIoError = 12,           // an OS call failed for another reason (errno kept)
  kTimeout = 13,
  kPhiInClear = 14,        // reserved for the schema/PHI work
  kUnavailable = 15,       // bus is being created or is gone
};

std::string_view code_name(Code code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  static Status ok() { return Status(); }
  static Status invalid_argument(std::string msg) { return {Code::kInvalidArgument, std::move(msg)}; }
  static Status not_found(std::string msg) { return {Code::kNotFound, std::move(msg)}; }
  static Status already_exists(std::string msg) { return {Code::kAlreadyExists, std::move(msg)}; }
  static Status permission_denied(std::string msg) { return {Code::kPermissionDenied, std::move(msg)}; }
  static Status layout_mismatch(std::string msg) { return {Code::kLayoutMismatch, std::move(msg)}; }
  static Status corruption(std::string msg) { return {Code::kCorruption, std::move(msg)}; }
  static Status payload_too_large(std::string msg) { return {Code::kPayloadTooLarge, std::move(msg)}; }
  static Status unknown_event_type(std::string msg) { return {Code::kUnknownEventType, std::move(msg)}; }
  static Status domain_not_owned(std::string msg) { return {Code::kDomainNotOwned, std::move(msg)}; }
  static Status full(std::string msg) { return {Code::kFull, std::move(msg)}; }
  static Status resource_exhausted(std::string msg) { return {Code::kResourceExhausted, std::move(msg)}; }
  static Status timeout(std::string msg) { return {Code::kTimeout, std::move(msg)}; }
  static Status unavailable(std::string msg) { return {Code::kUnavailable, std::move(msg)}; }
  // Maps errno to the closest code and keeps it (sys_errno()) and its text in the message.
  static Status from_errno(int err, std::string context);

  Status(Code code, std::string msg, int sys_errno = 0)
      : code_(code), sys_errno_(sys_errno), message_(std::move(msg)) {}

  bool is_ok() const { return code_ == Code::kOk; }
  explicit operator bool() const { return is_ok(); }
  Code code() const { return code_; }
  int sys_errno() const { return sys_errno_; }
  const std::string& message() const { return message_; }
  // "<code name>: <message>"
  std::string to_string() const;

 private:
  Code code_ = Code::kOk;
  int sys_errno_ = 0;
  std::string message_;
};

// A value or a non-OK Status.
// REQUIRES: value() only when ok(); status() is OK when a value is held.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}          // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {}   // NOLINT: implicit by design
  bool ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &std::get<T>(v_); }
  const T* operator->() const { return &std::get<T>(v_); }
  T& operator*() & { return value(); }
  Status status() const { return ok() ? Status::ok() : std::get<Status>(v_); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace evring

#define EVRING_RETURN_IF_ERROR(expr)          \
  do {                                        \
    ::evring::Status evring_s_ = (expr);      \
    if (!evring_s_.is_ok()) return evring_s_; \
  } while (0)
