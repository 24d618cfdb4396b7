#pragma once
// Event-name grammar and subscription patterns.
//
//   name    := segment ("." segment)+            e.g. chat.message.created
//   segment := [a-z] [a-z0-9_]*                  lowercase; names say what happened (past tense)
//   pattern := psegment ("." psegment)* ["." ">"] | ">"
//   psegment:= segment | "*"                     "*" matches exactly one segment,
//                                                ">" (last only) matches one or more segments
// The first segment of a name is its domain: a producer may only publish names of the domains
// it registered as owning.
#include <string>
#include <string_view>

#include "evring/codec/status.h"

namespace evring {

inline constexpr std::size_t kMaxEventNameBytes = 127;
inline constexpr std::size_t kMaxServiceNameBytes = 63;

// OK, or invalid_argument naming the bad segment and why.
Status validate_event_name(std::string_view name);
// A domain is a single segment.
Status validate_domain(std::string_view domain);
// Service names: 1..63 of [A-Za-z0-9._-], starting with a letter or digit.
Status validate_service_name(std::string_view service);
Status validate_pattern(std::string_view pattern);

// The first segment. REQUIRES: validate_event_name(name) is OK.
std::string_view domain_of(std::string_view name);

// REQUIRES: validate_pattern(pattern) is OK. `name` may be anything (no match if malformed).
bool pattern_matches(std::string_view pattern, std::string_view name);

}  // namespace evring
