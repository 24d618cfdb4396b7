#include "evring/codec/names.h"

namespace evring {
namespace {

bool is_lower(char c) { return c >= 'a' && c <= 'z'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Empty when valid, otherwise why.
std::string segment_problem(std::string_view seg) {
  if (seg.empty()) return "is empty";
  if (!is_lower(seg[0])) return "must start with a lowercase letter";
  for (char c : seg)
    if (!is_lower(c) && !is_digit(c) && c != '_')
      return std::string("contains '") + c + "' (allowed: a-z, 0-9, _)";
  return {};
}

template <typename Fn>
void for_each_segment(std::string_view s, Fn&& fn) {
  std::size_t start = 0;
  int index = 0;
  while (true) {
    std::size_t dot = s.find('.', start);
    std::string_view seg = s.substr(start, dot == std::string_view::npos ? s.npos : dot - start);
    if (!fn(seg, index++, dot == std::string_view::npos)) return;
    if (dot == std::string_view::npos) return;
    start = dot + 1;
  }
}

}  // namespace

Status validate_event_name(std::string_view name) {
  if (name.empty()) return Status::invalid_argument("event name is empty");
  if (name.size() > kMaxEventNameBytes)
    return Status::invalid_argument("event name '" + std::string(name) + "' is longer than " +
                                    std::to_string(kMaxEventNameBytes) + " bytes");
  Status result;
  int segments = 0;
  for_each_segment(name, [&](std::string_view seg, int index, bool) {
    ++segments;
    std::string why = segment_problem(seg);
    if (why.empty()) return true;
    result = Status::invalid_argument("event name '" + std::string(name) + "': segment " +
                                      std::to_string(index + 1) + " '" + std::string(seg) +
                                      "' " + why);
    return false;
  });
  if (!result.is_ok()) return result;
  if (segments < 2)
    return Status::invalid_argument("event name '" + std::string(name) +
                                    "' needs at least two dot-separated segments "
                                    "(domain.action, e.g. chat.message.created)");
  return Status::ok();
}

Status validate_domain(std::string_view domain) {
  std::string why = segment_problem(domain);
  if (why.empty()) return Status::ok();
  return Status::invalid_argument("domain '" + std::string(domain) + "' " + why);
}

Status validate_service_name(std::string_view service) {
  if (service.empty() || service.size() > kMaxServiceNameBytes)
    return Status::invalid_argument("service name '" + std::string(service) + "' must be 1.." +
                                    std::to_string(kMaxServiceNameBytes) + " bytes");
  auto ok_char = [](char c) {
    return is_lower(c) || is_digit(c) || (c >= 'A' && c <= 'Z') || c == '.' || c == '_' ||
           c == '-';
  };
  if (!ok_char(service[0]) || service[0] == '.' || service[0] == '_' || service[0] == '-')
    return Status::invalid_argument("service name '" + std::string(service) +
                                    "' must start with a letter or digit");
  for (char c : service)
    if (!ok_char(c))
      return Status::invalid_argument("service name '" + std::string(service) +
                                      "' contains '" + std::string(1, c) +
                                      "' (allowed: A-Z a-z 0-9 . _ -)");
  return Status::ok();
}

Status validate_pattern(std::string_view pattern) {
  if (pattern.empty()) return Status::invalid_argument("pattern is empty");
  if (pattern.size() > kMaxEventNameBytes)
    return Status::invalid_argument("pattern '" + std::string(pattern) + "' is too long");
  Status result;
  for_each_segment(pattern, [&](std::string_view seg, int index, bool last) {
    if (seg == "*") return true;
    if (seg == ">") {
      if (last) return true;
      result = Status::invalid_argument("pattern '" + std::string(pattern) +
                                        "': '>' may only be the last segment");
      return false;
    }
    std::string why = segment_problem(seg);
    if (why.empty()) return true;
    result = Status::invalid_argument("pattern '" + std::string(pattern) + "': segment " +
                                      std::to_string(index + 1) + " '" + std::string(seg) +
                                      "' " + why);
    return false;
  });
  return result;
}

std::string_view domain_of(std::string_view name) { return name.substr(0, name.find('.')); }

bool pattern_matches(std::string_view pattern, std::string_view name) {
  while (true) {
    std::size_t pdot = pattern.find('.');
    std::string_view pseg = pattern.substr(0, pdot);
    if (pseg == ">") return !name.empty();
    std::size_t ndot = name.find('.');
    std::string_view nseg = name.substr(0, ndot);
    if (nseg.empty()) return false;
    if (pseg != "*" && pseg != nseg) return false;
    bool plast = pdot == std::string_view::npos, nlast = ndot == std::string_view::npos;
    if (plast || nlast) return plast && nlast;
    pattern.remove_prefix(pdot + 1);
    name.remove_prefix(ndot + 1);
  }
}

}  // namespace evring
