#include "evring/codec/status.h"

#include <cerrno>
#include <cstring>

namespace evring {

std::string_view code_name(Code code) {
  switch (code) {
    case Code::kOk: return "ok";
    case Code::kInvalidArgument: return "invalid argument";
    case Code::kNotFound: return "not found";
    case Code::kAlreadyExists: return "already exists";
    case Code::kPermissionDenied: return "permission denied";
    case Code::kLayoutMismatch: return "layout version mismatch";
    case Code::kCorruption: return "corruption";
    case Code::kPayloadTooLarge: return "payload too large";
    case Code::kUnknownEventType: return "unknown event type";
    case Code::kDomainNotOwned: return "domain not owned";
    case Code::kFull: return "full";
    case Code::kResourceExhausted: return "resource exhausted";
    case Code::kIoError: return "i/o error";
    case Code::kTimeout: return "timeout";
    case Code::kPhiInClear: return "phi in clear";
    case Code::kUnavailable: return "unavailable";
  }
  return "unknown";
}

Status Status::from_errno(int err, std::string context) {
  Code code = Code::kIoError;
  switch (err) {
    case EACCES:
    case EPERM: code = Code::kPermissionDenied; break;
    case ENOENT: code = Code::kNotFound; break;
    case EEXIST: code = Code::kAlreadyExists; break;
    case EINVAL:
    case ENAMETOOLONG: code = Code::kInvalidArgument; break;
    case ENOMEM:
    case ENOSPC: code = Code::kResourceExhausted; break;
    case ETIMEDOUT: code = Code::kTimeout; break;
    default: break;
  }
  context += ": ";
  context += std::strerror(err);
  return Status(code, std::move(context), err);
}

std::string Status::to_string() const {
  if (is_ok()) return "ok";
  std::string out(code_name(code_));
  out += ": ";
  out += message_;
  return out;
}

}  // namespace evring
