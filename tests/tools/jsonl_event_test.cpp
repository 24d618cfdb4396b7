// The `evring publish --jsonl` line parser (tools/jsonl_event.h): every refusal names its field.
#include "jsonl_event.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace evring::cli {
namespace {

using ::testing::HasSubstr;

Status parse(const std::string& line, EventSpec* spec, std::string_view producer = "") {
  return parse_jsonl_event(line, producer, spec);
}

// The refusal for `line`: asserts it is a usage error and returns its message.
std::string refusal(const std::string& line, std::string_view producer = "chat") {
  EventSpec spec;
  Status s = parse(line, &spec, producer);
  EXPECT_EQ(s.code(), Code::kInvalidArgument) << line;
  return s.message();
}

TEST(JsonlEvent, ParsesEveryFieldOfAFullLine) {
  EventSpec spec;
  ASSERT_TRUE(parse(R"({"type":"chat.message.created","producer":"chat","entity":"c-1",)"
                    R"("data":{"text":"hi"},"correlation":"4bf92f3577b34da6a3ce929d0e0e4736",)"
                    R"("causation":"0190f5b2-7d2a-7c1e-8a3b-1c2d3e4f5a6b","idempotency_key":"k1",)"
                    R"("classification":"confidential","revision":7})",
                    &spec)
                  .is_ok());
  EXPECT_EQ(spec.type, "chat.message.created");
  EXPECT_EQ(spec.producer, "chat");
  EXPECT_EQ(spec.entity, "c-1");
  EXPECT_EQ(spec.payload, R"({"text":"hi"})");
  EXPECT_EQ(spec.content_type, ContentType::kJson);
  EXPECT_EQ(spec.correlation, Id128::parse_trace_id("4bf92f3577b34da6a3ce929d0e0e4736").value());
  EXPECT_EQ(spec.causation, Id128::parse("0190f5b2-7d2a-7c1e-8a3b-1c2d3e4f5a6b").value());
  EXPECT_EQ(spec.idempotency, Id128::from_key_text("k1"));
  EXPECT_EQ(spec.classification, Classification::kConfidential);
  EXPECT_EQ(spec.revision, 7u);
}

TEST(JsonlEvent, ProducerDefaultsAndOptionalFieldsStayUnset) {
  EventSpec spec;
  ASSERT_TRUE(parse(R"({"type":"a.b.c","entity":"e","correlation":null})", &spec, "svc").is_ok());
  EXPECT_EQ(spec.producer, "svc");
  EXPECT_EQ(spec.content_type, ContentType::kRaw);
  EXPECT_TRUE(spec.payload.empty());
  EXPECT_EQ(spec.correlation, Id128{});
  EXPECT_FALSE(spec.classification.has_value());
  EXPECT_FALSE(spec.revision.has_value());
}

TEST(JsonlEvent, RefusesTextThatIsNotJson) {
  EXPECT_THAT(refusal(R"({"type":)"), HasSubstr("not valid JSON"));
  EXPECT_THAT(refusal("{'type': 1}"), HasSubstr("not valid JSON"));
}

TEST(JsonlEvent, RefusesJsonThatIsNotAnObject) {
  EXPECT_EQ(refusal("[1,2]"), "not a JSON object (a JSON array)");
  EXPECT_EQ(refusal("\"chat.message.created\""), "not a JSON object (a JSON string)");
}

TEST(JsonlEvent, RefusesDeeplyNestedJsonBeforeParsingIt) {
  const std::string deep = R"({"type":"a.b.c","entity":"e","data":)" + std::string(100000, '[');
  EXPECT_EQ(refusal(deep), "JSON nested deeper than 64 levels");
  // Brackets inside strings are text, not nesting.
  EventSpec spec;
  EXPECT_TRUE(parse(R"({"type":"a.b.c","entity":"e","data":")" + std::string(200, '[') + "\"}",
                    &spec, "svc")
                  .is_ok());
}

TEST(JsonlEvent, RefusesAFieldOfTheWrongJsonType) {
  for (const char* field : {"type", "producer", "entity", "correlation", "causation",
                            "idempotency_key", "classification"}) {
    std::string line = R"({"type":"a.b.c","entity":"e",")" + std::string(field) + R"(":42})";
    EXPECT_EQ(refusal(line), "\"" + std::string(field) + "\" must be a string, not number");
  }
}

TEST(JsonlEvent, RefusesMissingRequiredFields) {
  EXPECT_EQ(refusal(R"({"entity":"e"})"), "\"type\" is missing");
  EXPECT_EQ(refusal(R"({"type":"a.b.c"})"), "\"entity\" is missing");
  EXPECT_EQ(refusal(R"({"type":"a.b.c","entity":""})"), "\"entity\" is missing");
  EXPECT_EQ(refusal(R"({"type":"a.b.c","entity":"e"})", ""),
            "\"producer\" is missing (and no --producer default)");
}

TEST(JsonlEvent, RefusesInvalidTypeAndProducerNamesNamingTheField) {
  EXPECT_THAT(refusal(R"({"type":"Not A Name","entity":"e"})"), HasSubstr("\"type\": "));
  EXPECT_THAT(refusal(R"({"type":"a.b.c","entity":"e","producer":"bad service!"})"),
              HasSubstr("\"producer\": "));
}

TEST(JsonlEvent, RefusesMalformedIdsAndClassificationNamingTheField) {
  const std::string base = R"({"type":"a.b.c","entity":"e",)";
  EXPECT_THAT(refusal(base + R"("correlation":"xyz"})"), HasSubstr("correlation: "));
  EXPECT_THAT(refusal(base + R"("correlation":"00000000000000000000000000000000"})"),
              HasSubstr("correlation: "));
  EXPECT_THAT(refusal(base + R"("causation":"not-a-uuid"})"), HasSubstr("causation: "));
  EXPECT_THAT(refusal(base + R"("classification":"secret"})"), HasSubstr("classification: "));
}

TEST(JsonlEvent, RefusesARevisionThatIsNotANonNegativeInteger) {
  const std::string base = R"({"type":"a.b.c","entity":"e",)";
  for (const char* bad : {"-1", "1.5", "\"7\"", "true"})
    EXPECT_EQ(refusal(base + R"("revision":)" + bad + "}"),
              "\"revision\" must be a non-negative integer")
        << bad;
}

}  // namespace
}  // namespace evring::cli
