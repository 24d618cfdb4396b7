// Unit tests for evring/codec/names.h: event-name grammar, domains, services, patterns.
#include "evring/codec/names.h"

#include <gtest/gtest.h>

#include <string>

namespace evring {
namespace {

void expect_invalid(const Status& s, const std::string& must_mention) {
  EXPECT_EQ(s.code(), Code::kInvalidArgument) << s.to_string();
  EXPECT_NE(s.message().find(must_mention), std::string::npos)
      << "message '" << s.message() << "' should mention '" << must_mention << "'";
}

TEST(EventNameTest, AcceptsWellFormedNames) {
  for (const char* name : {"chat.message.created", "a.b", "sales.lead_2.updated", "x1.y_.z9",
                           "orders.line_item.price_changed"}) {
    EXPECT_TRUE(validate_event_name(name).is_ok()) << name << ": "
                                                   << validate_event_name(name).to_string();
  }
}

TEST(EventNameTest, AcceptsTheLongestNameAndRefusesOneByteMore) {
  std::string name = "a." + std::string(kMaxEventNameBytes - 2, 'b');
  ASSERT_EQ(name.size(), 127u);
  EXPECT_TRUE(validate_event_name(name).is_ok());
  name += "c";
  expect_invalid(validate_event_name(name), "longer than 127");
}

TEST(EventNameTest, UppercaseSegmentIsNamed) {
  Status s = validate_event_name("chat.Message.created");
  expect_invalid(s, "segment 2 'Message'");
  expect_invalid(s, "lowercase");
  expect_invalid(validate_event_name("chat.mesSage.created"), "segment 2 'mesSage' contains 'S'");
}

TEST(EventNameTest, EmptySegmentIsNamed) {
  expect_invalid(validate_event_name("chat..created"), "segment 2 '' is empty");
  expect_invalid(validate_event_name(".chat.created"), "segment 1 '' is empty");
  expect_invalid(validate_event_name("chat.created."), "segment 3 '' is empty");
  expect_invalid(validate_event_name(""), "empty");
}

TEST(EventNameTest, LeadingDigitOrUnderscoreIsNamed) {
  expect_invalid(validate_event_name("chat.1message"), "segment 2 '1message'");
  expect_invalid(validate_event_name("chat.1message"), "must start with a lowercase letter");
  expect_invalid(validate_event_name("_chat.message"), "segment 1 '_chat'");
}

TEST(EventNameTest, ForbiddenCharacterIsNamed) {
  expect_invalid(validate_event_name("chat.mes-sage"), "contains '-'");
  expect_invalid(validate_event_name("chat.message*"), "contains '*'");
  expect_invalid(validate_event_name("chat.>"), "segment 2 '>'");
}

TEST(EventNameTest, SingleSegmentIsRefused) {
  expect_invalid(validate_event_name("chat"), "at least two");
}

TEST(EventNameTest, DomainIsTheFirstSegment) {
  EXPECT_EQ(domain_of("chat.message.created"), "chat");
  EXPECT_EQ(domain_of("a.b"), "a");
}

TEST(DomainTest, DomainIsOneValidSegment) {
  EXPECT_TRUE(validate_domain("chat").is_ok());
  EXPECT_TRUE(validate_domain("sales_2").is_ok());
  expect_invalid(validate_domain("chat.message"), "contains '.'");
  expect_invalid(validate_domain("Chat"), "domain 'Chat'");
  expect_invalid(validate_domain(""), "empty");
  expect_invalid(validate_domain("9lives"), "lowercase");
}

TEST(ServiceNameTest, AcceptsLettersDigitsDotsDashesUnderscores) {
  for (const char* s : {"chat", "Chat-Svc", "billing.v2", "a", "9to5", "svc_1-x.y"})
    EXPECT_TRUE(validate_service_name(s).is_ok()) << s;
  EXPECT_TRUE(validate_service_name(std::string(kMaxServiceNameBytes, 'a')).is_ok());
}

TEST(ServiceNameTest, RefusesBadServiceNames) {
  expect_invalid(validate_service_name(""), "1..63");
  expect_invalid(validate_service_name(std::string(kMaxServiceNameBytes + 1, 'a')), "1..63");
  expect_invalid(validate_service_name("-svc"), "must start with a letter or digit");
  expect_invalid(validate_service_name(".svc"), "must start with a letter or digit");
  expect_invalid(validate_service_name("svc name"), "contains ' '");
  expect_invalid(validate_service_name("svc/x"), "contains '/'");
}

TEST(PatternTest, AcceptsWildcardsInTheirPlaces) {
  for (const char* p : {">", "chat.>", "*.created", "sales.lead.*", "*.*.>", "chat.message.created",
                        "chat"})
    EXPECT_TRUE(validate_pattern(p).is_ok()) << p << ": " << validate_pattern(p).to_string();
}

TEST(PatternTest, RefusesGreaterThanAnywhereButLast) {
  expect_invalid(validate_pattern("chat.>.created"), "'>' may only be the last segment");
  expect_invalid(validate_pattern(">.chat"), "'>' may only be the last segment");
  expect_invalid(validate_pattern("chat.>>"), "segment 2 '>>'");
  expect_invalid(validate_pattern("chat>"), "segment 1 'chat>'");
  expect_invalid(validate_pattern("chat.x>"), "segment 2 'x>'");
}

TEST(PatternTest, RefusesMalformedSegments) {
  expect_invalid(validate_pattern(""), "empty");
  expect_invalid(validate_pattern("chat..x"), "segment 2 '' is empty");
  expect_invalid(validate_pattern("Chat.>"), "segment 1 'Chat'");
  expect_invalid(validate_pattern("chat.**"), "segment 2 '**'");
  expect_invalid(validate_pattern(std::string(kMaxEventNameBytes + 1, 'a')), "too long");
}

TEST(PatternTest, TailWildcardMatchesOneOrMoreSegments) {
  EXPECT_TRUE(pattern_matches("chat.>", "chat.a"));
  EXPECT_TRUE(pattern_matches("chat.>", "chat.a.b"));
  EXPECT_TRUE(pattern_matches("chat.>", "chat.message.created.v2"));
  EXPECT_FALSE(pattern_matches("chat.>", "chat"));
  EXPECT_FALSE(pattern_matches("chat.>", "chatroom.a"));
  EXPECT_FALSE(pattern_matches("chat.>", "sales.chat.a"));
  EXPECT_FALSE(pattern_matches("chat.>", ""));
}

TEST(PatternTest, StarMatchesExactlyOneSegment) {
  EXPECT_TRUE(pattern_matches("sales.lead.*", "sales.lead.updated"));
  EXPECT_FALSE(pattern_matches("sales.lead.*", "sales.lead.a.b"));
  EXPECT_FALSE(pattern_matches("sales.lead.*", "sales.lead"));
  EXPECT_FALSE(pattern_matches("sales.lead.*", "sales.leads.updated"));
  EXPECT_TRUE(pattern_matches("*.created", "chat.created"));
  EXPECT_FALSE(pattern_matches("*.created", "chat.message.created"));
  EXPECT_TRUE(pattern_matches("*.*.>", "a.b.c"));
  EXPECT_FALSE(pattern_matches("*.*.>", "a.b"));
}

TEST(PatternTest, FullWildcardMatchesAnyNonEmptyName) {
  EXPECT_TRUE(pattern_matches(">", "chat.a"));
  EXPECT_TRUE(pattern_matches(">", "a.b.c.d"));
  EXPECT_FALSE(pattern_matches(">", ""));
}

TEST(PatternTest, LiteralPatternMatchesOnlyThatName) {
  EXPECT_TRUE(pattern_matches("chat.message.created", "chat.message.created"));
  EXPECT_FALSE(pattern_matches("chat.message.created", "chat.message.created.x"));
  EXPECT_FALSE(pattern_matches("chat.message.created", "chat.message"));
  EXPECT_FALSE(pattern_matches("chat.message.created", "chat.message.deleted"));
}

TEST(PatternTest, MalformedNamesNeverMatch) {
  EXPECT_FALSE(pattern_matches("chat.*", "chat."));
  EXPECT_FALSE(pattern_matches("*.x", ".x"));
  EXPECT_FALSE(pattern_matches("chat.*.x", "chat..x"));
}

}  // namespace
}  // namespace evring
