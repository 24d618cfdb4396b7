// `evring tail|inspect --format json|table|cloudevents` and the --json shapes of the read-only
// verbs (tools/README.md, tools/INSPECT.md), run as child processes over real buses.
#include <ctime>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "cli_fixture.h"
#include "evring/codec/envelope.h"
#include "evring/core/ring_layout.h"

namespace evring_cli_test {
namespace {

// What the test published through the library, to compare every rendered field against.
struct Published {
  std::string type, entity;
  std::string payload;
  evring::ContentType content = evring::ContentType::kRaw;
  evring::Classification classification = evring::Classification::kInternal;
  std::uint16_t schema_version = 1;
  evring::Id128 correlation, causation, idempotency;
  std::uint64_t revision = 0;  // 0: no kHasRevision flag
  std::uint64_t timestamp_ns = 0;
  evring::core::PublishReceipt receipt;
};

evring::Id128 id_of(const std::string& text) {
  auto id = evring::Id128::parse(text);
  EXPECT_TRUE(id.ok()) << text;
  return id.ok() ? *id : evring::Id128{};
}

std::string base64_decode(const std::string& text) {
  static const std::string kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  EXPECT_EQ(text.size() % 4, 0u) << "base64 with padding: " << text;
  std::string out;
  std::uint32_t bits = 0;
  int nbits = 0;
  for (char c : text) {
    if (c == '=') break;
    const std::size_t v = kAlphabet.find(c);
    EXPECT_NE(v, std::string::npos) << "not base64: " << text;
    if (v == std::string::npos) return out;
    bits = bits << 6 | static_cast<std::uint32_t>(v);
    nbits += 6;
    if (nbits >= 8) {
      nbits -= 8;
      out += static_cast<char>(bits >> nbits & 0xFF);
    }
  }
  return out;
}

// RFC 3339 with nanoseconds in UTC, as the spec's `time` attribute, back to ns since the epoch;
// 0 when the text is not of that form.
std::uint64_t rfc3339_to_ns(const std::string& text) {
  static const std::regex kTime(
      R"(^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\.(\d{9})Z$)");
  std::smatch m;
  if (!std::regex_match(text, m, kTime)) return 0;
  std::tm tm{};
  tm.tm_year = std::stoi(m[1]) - 1900;
  tm.tm_mon = std::stoi(m[2]) - 1;
  tm.tm_mday = std::stoi(m[3]);
  tm.tm_hour = std::stoi(m[4]);
  tm.tm_min = std::stoi(m[5]);
  tm.tm_sec = std::stoi(m[6]);
  return static_cast<std::uint64_t>(timegm(&tm)) * 1'000'000'000ull + std::stoull(m[7]);
}

// The UUID of an id without its dashes: 32 lowercase hex digits.
std::string hex_of(const std::string& uuid) {
  std::string out;
  for (char c : uuid)
    if (c != '-') out += c;
  return out;
}

// Byte offset of a column's title in the header line (rows are ASCII in these tests).
std::size_t column_at(const std::string& header, const std::string& title) {
  return header.find(title);
}

class FormatTest : public CliTest {
 protected:
  // Publishes through the library so that every envelope field is known to the test.
  void publish(Published& e) {
    auto bus = evring::Bus::open(bus_);
    ASSERT_TRUE(bus.ok()) << bus.status().to_string();
    auto producer = (*bus)->producer("chat", {"chat"});
    ASSERT_TRUE(producer.ok()) << producer.status().to_string();
    auto type = (*producer)->resolve(e.type, e.schema_version, e.classification);
    ASSERT_TRUE(type.ok()) << type.status().to_string();
    evring::core::PublishRequest r;
    r.type_id = *type;
    r.schema_version = e.schema_version;
    r.classification = e.classification;
    r.content_type = e.content;
    r.entity_key = e.entity;
    r.payload = std::as_bytes(std::span(e.payload.data(), e.payload.size()));
    r.correlation_id = e.correlation;
    r.causation_id = e.causation;
    r.idempotency_key = e.idempotency;
    if (e.revision) {
      r.flags = evring::kHasRevision;
      r.entity_revision = e.revision;
    }
    r.timestamp_ns = e.timestamp_ns;
    ASSERT_EQ((*producer)->try_publish(r, &e.receipt), evring::core::PublishResult::kOk);
  }

  std::vector<json> tail_lines(const std::string& format, int count) {
    Output o = run({"tail", bus_, "--from", "earliest", "--count", std::to_string(count),
                    "--timeout-ms", "2000", "--format", format});
    EXPECT_EQ(o.code, 0) << o.err;
    return events_of(o.out);
  }

  // Every attribute of a CloudEvent against what was published.
  void expect_cloudevent(const json& ce, const Published& e) {
    SCOPED_TRACE(ce.dump());
    EXPECT_EQ(ce.at("specversion"), "1.0");
    EXPECT_EQ(ce.at("id"), e.receipt.event_id.to_uuid_string());
    EXPECT_EQ(ce.at("source"), "evring://" + bus_ + "/chat");
    EXPECT_EQ(ce.at("type"), e.type);
    EXPECT_EQ(ce.at("subject"), e.entity);
    const std::string time = ce.at("time");
    EXPECT_EQ(rfc3339_to_ns(time), e.timestamp_ns) << time;
    EXPECT_EQ(ce.at("evringpartition"), e.receipt.partition);
    EXPECT_EQ(ce.at("evringsequence"), std::to_string(e.receipt.sequence));
    EXPECT_EQ(ce.at("evringversion"), e.schema_version);
    if (e.revision) EXPECT_EQ(ce.at("evringrevision"), std::to_string(e.revision));
    else EXPECT_FALSE(ce.contains("evringrevision"));
    // W3C traceparent: version 00, the correlation id as trace-id, the event id's last 8
    // bytes as parent-id, sampled.
    const std::string tp = ce.at("traceparent");
    EXPECT_TRUE(std::regex_match(tp, std::regex("^00-[0-9a-f]{32}-[0-9a-f]{16}-01$"))) << tp;
    EXPECT_EQ(tp.substr(3, 32), e.correlation.to_hex());
    EXPECT_EQ(tp.substr(36, 16), hex_of(e.receipt.event_id.to_uuid_string()).substr(16));
    if (e.causation.is_zero()) EXPECT_FALSE(ce.contains("causationid"));
    else EXPECT_EQ(ce.at("causationid"), e.causation.to_uuid_string());
    EXPECT_EQ(ce.at("idempotencykey"), e.idempotency.is_zero()
                                           ? e.receipt.event_id.to_uuid_string()
                                           : e.idempotency.to_uuid_string());
    EXPECT_EQ(ce.at("classification"), std::string(evring::classification_name(e.classification)));
    // Data: a JSON value for JSON payloads, base64 of the exact bytes otherwise, never both.
    if (e.payload.empty()) {
      EXPECT_FALSE(ce.contains("data"));
      EXPECT_FALSE(ce.contains("data_base64"));
      EXPECT_FALSE(ce.contains("datacontenttype"));
    } else if (e.content == evring::ContentType::kJson) {
      EXPECT_EQ(ce.at("datacontenttype"), "application/json");
      EXPECT_EQ(ce.at("data"), json::parse(e.payload));
      EXPECT_FALSE(ce.contains("data_base64"));
    } else {
      EXPECT_EQ(ce.at("datacontenttype"), "application/octet-stream");
      EXPECT_EQ(base64_decode(ce.at("data_base64")), e.payload);
      EXPECT_FALSE(ce.contains("data"));
    }
    if (e.content == evring::ContentType::kSchema)
      EXPECT_EQ(ce.at("dataschema"), "evring://" + bus_ + "/types/" + e.type + "/versions/" +
                                         std::to_string(e.schema_version));
    else
      EXPECT_FALSE(ce.contains("dataschema"));
    // Attribute names: lowercase ASCII letters and digits, at most 20 characters (CloudEvents
    // 1.0, "Attribute Naming Convention"); data_base64 is a member of the JSON format, not an
    // attribute.
    const std::set<std::string> known{
        "specversion", "id", "source", "type", "time", "subject", "datacontenttype",
        "dataschema", "data", "data_base64", "evringpartition", "evringsequence", "evringversion",
        "evringrevision", "traceparent", "causationid", "idempotencykey", "classification"};
    for (const auto& [name, value] : ce.items()) {
      EXPECT_TRUE(known.count(name)) << "undocumented attribute " << name;
      if (name == "data_base64") continue;
      EXPECT_TRUE(std::regex_match(name, std::regex("^[a-z0-9]{1,20}$"))) << name;
    }
  }

  Published json_event() {
    Published e;
    e.type = "chat.message.created";
    e.entity = "conv-7";
    e.payload = R"({"text":"hello","n":[1,2,3],"nested":{"ok":true}})";
    e.content = evring::ContentType::kJson;
    e.classification = evring::Classification::kConfidential;
    e.schema_version = 3;
    e.correlation = id_of("4bf92f3577b34da6a3ce929d0e0e4736");
    e.causation = id_of("0190a5c0-1111-7000-8000-00000000000a");
    e.idempotency = id_of("0190a5c0-2222-7000-8000-00000000000b");
    e.revision = 42;
    e.timestamp_ns = 1714566896123456789ull;  // 2024-05-01T12:34:56.123456789Z
    return e;
  }

  Published raw_event() {
    Published e;
    e.type = "chat.attachment.uploaded";
    e.entity = "conv-8";
    e.payload = std::string("\x00\x01\xff\xfe binary\n\x80", 13);
    e.content = evring::ContentType::kRaw;
    e.classification = evring::Classification::kPublic;
    e.correlation = id_of("0af7651916cd43dd8448eb211c80319c");
    e.timestamp_ns = 1714566896000000001ull;
    return e;
  }
};
using format = FormatTest;  // lowercase suite: `ctest -R format`

TEST_F(format, TailCloudEventsCarriesEveryPublishedField) {
  create({"--partitions", "2", "--slots", "16"});
  Published js = json_event(), raw = raw_event();
  ASSERT_NO_FATAL_FAILURE(publish(js));
  ASSERT_NO_FATAL_FAILURE(publish(raw));
  std::vector<json> ces = tail_lines("cloudevents", 2);
  ASSERT_EQ(ces.size(), 2u);
  std::map<std::string, json> by_id;
  for (const json& ce : ces) by_id[ce.at("id")] = ce;
  ASSERT_TRUE(by_id.count(js.receipt.event_id.to_uuid_string()));
  ASSERT_TRUE(by_id.count(raw.receipt.event_id.to_uuid_string()));
  expect_cloudevent(by_id[js.receipt.event_id.to_uuid_string()], js);
  expect_cloudevent(by_id[raw.receipt.event_id.to_uuid_string()], raw);
}

TEST_F(format, SchemaEncodedAndEmptyPayloadsInCloudEvents) {
  create({"--partitions", "1", "--slots", "16"});
  Published schema = raw_event();
  schema.type = "chat.message.encoded";
  schema.entity = "conv-9";
  schema.content = evring::ContentType::kSchema;
  schema.schema_version = 2;
  schema.payload = std::string("\x02\x00\x00\x00\x2a\x00", 6);
  Published empty = raw_event();
  empty.type = "chat.message.deleted";
  empty.payload.clear();
  ASSERT_NO_FATAL_FAILURE(publish(schema));
  ASSERT_NO_FATAL_FAILURE(publish(empty));
  std::vector<json> ces = tail_lines("cloudevents", 2);
  ASSERT_EQ(ces.size(), 2u);
  expect_cloudevent(ces[0], schema);  // one partition: publish order
  expect_cloudevent(ces[1], empty);
}

TEST_F(format, OddEntityKeysAndPayloadsThatAreNotWhatTheyClaim) {
  create({"--partitions", "1", "--slots", "16"});
  Published bad_json = json_event();
  bad_json.payload = "{not json";  // labelled JSON, but not: sent as bytes
  Published bad_key = raw_event();
  bad_key.entity = std::string("k\xff\xfe\x01", 4);  // not UTF-8, and a control character
  ASSERT_NO_FATAL_FAILURE(publish(bad_json));
  ASSERT_NO_FATAL_FAILURE(publish(bad_key));
  std::vector<json> ces = tail_lines("cloudevents", 2);
  ASSERT_EQ(ces.size(), 2u);
  EXPECT_EQ(ces[0].at("datacontenttype"), "application/octet-stream");
  EXPECT_EQ(base64_decode(ces[0].at("data_base64")), bad_json.payload);
  EXPECT_FALSE(ces[0].contains("data"));
  // Invalid UTF-8 in the subject is replaced by U+FFFD: the line stays valid JSON.
  EXPECT_EQ(ces[1].at("subject"), "k\xef\xbf\xbd\xef\xbf\xbd\x01");
  Output o = run({"tail", bus_, "--from", "earliest", "--count", "2", "--timeout-ms", "2000",
                  "--format", "table"});
  ASSERT_EQ(o.code, 0) << o.err;
  std::vector<std::string> lines = lines_of(o.out);
  ASSERT_EQ(lines.size(), 3u) << o.out;
  const std::size_t entity_at = column_at(lines[0], "ENTITY");
  const std::size_t data_at = column_at(lines[0], "DATA");
  EXPECT_EQ(lines[1].substr(data_at), "0x7b6e6f74206a736f6e");  // "{not json" in hex
  EXPECT_EQ(lines[2].compare(entity_at, 5, "k??? "), 0) << lines[2];
}

// Ids that do not resolve and a zero correlation id, written into a slot and re-sealed, the way
// a damaged or foreign segment could hold them: still valid CloudEvents.
TEST_F(format, InspectRendersUnresolvedIdsAndSkipsCorruptSlots) {
  create({"--partitions", "1", "--slots", "8"});
  Published a = json_event(), b = raw_event();
  ASSERT_NO_FATAL_FAILURE(publish(a));
  ASSERT_NO_FATAL_FAILURE(publish(b));
  {
    auto bus = evring::Bus::open(bus_);
    ASSERT_TRUE(bus.ok()) << bus.status().to_string();
    const evring::core::RingRegion& ring = (*bus)->ring();
    ASSERT_NO_FATAL_FAILURE(rewrite_slot_event(ring, ring.slot(0, 0), [](evring::EnvelopeHeader& h) {
      h.type_id = 99;
      h.producer_id = 9;
      h.correlation_id = evring::Id128{};
    }));
    // seq 1: a scribbled payload byte, which only the checksum notices.
    evring::core::SlotHeader& slot1 = ring.slot(0, 1);
    std::byte* env1 = evring::core::RingRegion::envelope_of(slot1);
    env1[evring::core::stored_header_bytes(slot1.elided) + b.entity.size()] ^= std::byte{0x40};
  }
  Output o = run({"inspect", bus_, "--format", "cloudevents"});
  ASSERT_EQ(o.code, 0) << o.err;
  std::vector<json> ces = events_of(o.out);
  ASSERT_EQ(ces.size(), 1u) << o.out;
  EXPECT_EQ(ces[0].at("source"), "evring://" + bus_ + "/producer-id/9");
  EXPECT_EQ(ces[0].at("type"), "type-id:99");
  EXPECT_FALSE(ces[0].contains("traceparent")) << "an all-zero trace-id is invalid";
  EXPECT_EQ(ces[0].at("id"), a.receipt.event_id.to_uuid_string());
  EXPECT_NE(o.err.find("1 selected slot(s) hold no intact event"), std::string::npos) << o.err;

  o = run({"inspect", bus_, "--format", "table"});
  ASSERT_EQ(o.code, 0) << o.err;
  std::vector<std::string> lines = lines_of(o.out);
  ASSERT_EQ(lines.size(), 3u) << o.out;
  std::istringstream row0(lines[1]);
  std::string slot, time, part, seq, type, producer;
  row0 >> slot >> time >> part >> seq >> type >> producer;
  EXPECT_EQ(slot, "ok");
  EXPECT_EQ(type, "type-id:99");
  EXPECT_EQ(producer, "producer-id:9");
  EXPECT_EQ(lines[2].rfind("corrupt ", 0), 0u) << lines[2];
  EXPECT_NE(lines[2].find("checksum"), std::string::npos) << lines[2];
}

TEST_F(format, JsonIsTheDefaultAndUnchanged) {
  create({"--partitions", "1", "--slots", "16"});
  Published js = json_event(), raw = raw_event();
  ASSERT_NO_FATAL_FAILURE(publish(js));
  ASSERT_NO_FATAL_FAILURE(publish(raw));
  Output plain = run({"tail", bus_, "--from", "earliest", "--count", "2", "--timeout-ms", "2000"});
  Output json_fmt = run({"tail", bus_, "--from", "earliest", "--count", "2", "--timeout-ms",
                         "2000", "--format", "json"});
  ASSERT_EQ(plain.code, 0) << plain.err;
  ASSERT_EQ(json_fmt.code, 0) << json_fmt.err;
  EXPECT_EQ(plain.out, json_fmt.out);
  // The documented keys, in the documented order (tools/README.md, "tail").
  std::vector<json> events = events_of(plain.out);
  ASSERT_EQ(events.size(), 2u);
  // nlohmann::json sorts keys when parsing: check the order on the raw line.
  const std::string first = lines_of(plain.out)[0];
  std::size_t at = 0;
  for (const char* key : {"id", "type", "type_id", "version", "producer", "producer_id", "time",
                          "time_ns", "partition", "sequence", "entity", "correlation", "causation",
                          "idempotency_key", "classification", "content_type", "flags",
                          "revision", "data", "data_encoding"}) {
    const std::size_t next = first.find("\"" + std::string(key) + "\":", at);
    ASSERT_NE(next, std::string::npos) << key << " missing or out of order: " << first;
    at = next;
  }
  EXPECT_EQ(events[0].size(), 20u) << first;
  EXPECT_EQ(events[0].at("id"), js.receipt.event_id.to_uuid_string());
  EXPECT_EQ(events[0].at("time_ns"), js.timestamp_ns);
  EXPECT_EQ(events[0].at("time"), "2024-05-01T12:34:56.123456789Z");
  EXPECT_EQ(events[0].at("data"), json::parse(js.payload));
  EXPECT_EQ(events[1].at("data_encoding"), "base64");
  EXPECT_EQ(base64_decode(events[1].at("data")), raw.payload);
}

TEST_F(format, TableHasAHeaderAndOneAlignedLinePerEvent) {
  create({"--partitions", "1", "--slots", "16"});
  Published js = json_event(), raw = raw_event();
  js.payload = json{{"text", std::string(200, 'x')}}.dump();  // longer than the DATA column
  ASSERT_NO_FATAL_FAILURE(publish(js));
  ASSERT_NO_FATAL_FAILURE(publish(raw));
  Published odd = raw_event();
  odd.entity = "tab\there";  // a control character must not break the line
  ASSERT_NO_FATAL_FAILURE(publish(odd));
  Output o = run({"tail", bus_, "--from", "earliest", "--count", "3", "--timeout-ms", "2000",
                  "--format", "table"});
  ASSERT_EQ(o.code, 0) << o.err;
  std::vector<std::string> lines = lines_of(o.out);
  ASSERT_EQ(lines.size(), 4u) << o.out;
  const std::string& header = lines[0];
  EXPECT_TRUE(std::regex_match(
      header, std::regex(R"(^TIME +PART +SEQUENCE TYPE +PRODUCER +ENTITY +DATA$)")))
      << header;
  const std::size_t type_at = column_at(header, "TYPE"), entity_at = column_at(header, "ENTITY");
  const std::size_t data_at = column_at(header, "DATA"), producer_at = column_at(header, "PRODUCER");
  const std::size_t seq_end = column_at(header, "SEQUENCE") + 8;
  const Published* published[] = {&js, &raw, &odd};
  for (int i = 0; i < 3; ++i) {
    const std::string& line = lines[static_cast<std::size_t>(i) + 1];
    const Published& e = *published[i];
    SCOPED_TRACE(line);
    EXPECT_EQ(line[30], ' ') << "TIME is 30 characters wide";
    std::istringstream cols(line);
    std::string time, part, seq;
    cols >> time >> part >> seq;
    EXPECT_EQ(rfc3339_to_ns(time), e.timestamp_ns);
    EXPECT_EQ(part, std::to_string(e.receipt.partition));
    EXPECT_EQ(seq, std::to_string(e.receipt.sequence));
    EXPECT_EQ(line[seq_end - 1], seq.back()) << "SEQUENCE is right-aligned under its title";
    EXPECT_EQ(line.compare(type_at, e.type.size(), e.type), 0);
    EXPECT_EQ(line.compare(producer_at, 4, "chat"), 0);
    EXPECT_EQ(line[entity_at - 1], ' ');
    EXPECT_EQ(line[data_at - 1], ' ');
  }
  EXPECT_EQ(lines[1].compare(entity_at, 6, "conv-7"), 0);
  // JSON data is shown compact and cut to the 48-character column with "...".
  EXPECT_EQ(lines[1].substr(data_at), "{\"text\":\"" + std::string(36, 'x') + "...");
  // Raw bytes are shown in hex.
  EXPECT_EQ(lines[2].substr(data_at), "0x0001fffe2062696e6172790a80");
  // The tab of the entity key became '?': the line keeps its columns.
  EXPECT_EQ(lines[3].compare(entity_at, 8, "tab?here"), 0);
  EXPECT_EQ(lines[3].find('\t'), std::string::npos);
}

TEST_F(format, BadFormatIsAUsageErrorListingTheValidOnes) {
  create({"--partitions", "1", "--slots", "16"});
  for (const std::string bad : {"xml", "JSON", "", "cloudevent"}) {
    for (const std::string verb : {"tail", "inspect"}) {
      std::vector<std::string> args{verb, bus_, "--format", bad};
      if (verb == "tail") args.insert(args.end(), {"--timeout-ms", "10"});
      Output o = run(args);
      EXPECT_EQ(o.code, 2) << verb << " --format '" << bad << "'";
      expect_one_error_line(o, "--format '" + bad + "'");
      EXPECT_NE(o.err.find("json, table or cloudevents"), std::string::npos) << o.err;
      EXPECT_TRUE(o.out.empty()) << o.out;
    }
  }
  // inspect: --json is --format json; with another format it is a usage error.
  Output o = run({"inspect", bus_, "--json", "--format", "table"});
  EXPECT_EQ(o.code, 2);
  expect_one_error_line(o, "--json and --format table");
  // The format is checked before the bus is opened: a missing bus still says bad usage.
  o = run({"tail", "no-such-bus-h6b", "--format", "yaml"});
  EXPECT_EQ(o.code, 2);
  expect_one_error_line(o, "yaml");
}

TEST_F(format, InspectCloudEventsOnASlot) {
  create({"--partitions", "1", "--slots", "16"});
  Published js = json_event(), raw = raw_event();
  ASSERT_NO_FATAL_FAILURE(publish(js));
  ASSERT_NO_FATAL_FAILURE(publish(raw));
  Output o = run({"inspect", bus_, "--seq", "1", "--format", "cloudevents"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_TRUE(o.err.empty()) << o.err;
  std::vector<json> ces = events_of(o.out);
  ASSERT_EQ(ces.size(), 1u) << o.out;
  expect_cloudevent(ces[0], raw);
  // The same event through tail renders the same object.
  std::vector<json> tailed = tail_lines("cloudevents", 2);
  ASSERT_EQ(tailed.size(), 2u);
  EXPECT_EQ(tailed[1], ces[0]);
  // Default selection: every intact event, in sequence order.
  o = run({"inspect", bus_, "--format", "cloudevents"});
  ASSERT_EQ(o.code, 0) << o.err;
  ces = events_of(o.out);
  ASSERT_EQ(ces.size(), 2u);
  expect_cloudevent(ces[0], js);
  // A slot without an event prints nothing and says so on stderr; still exit 0.
  o = run({"inspect", bus_, "--seq", "5", "--format", "cloudevents"});
  EXPECT_EQ(o.code, 0) << o.err;
  EXPECT_TRUE(o.out.empty()) << o.out;
  EXPECT_NE(o.err.find("1 selected slot(s) hold no intact event"), std::string::npos) << o.err;
}

TEST_F(format, InspectTableShowsEventsAndWhatOtherSlotsHold) {
  create({"--partitions", "1", "--slots", "4", "--overflow", "overwrite"});
  for (int i = 0; i < 6; ++i) {
    Published e = raw_event();
    e.entity = numbered("k", i);
    e.timestamp_ns += static_cast<std::uint64_t>(i);
    ASSERT_NO_FATAL_FAILURE(publish(e));
  }
  Output o = run({"inspect", bus_, "--seq", "0", "--format", "table"});
  ASSERT_EQ(o.code, 0) << o.err;
  std::vector<std::string> lines = lines_of(o.out);
  ASSERT_EQ(lines.size(), 2u) << o.out;
  EXPECT_EQ(lines[0].rfind("SLOT ", 0), 0u) << lines[0];
  EXPECT_NE(lines[0].find("TIME"), std::string::npos);
  EXPECT_EQ(lines[1].rfind("published ", 0), 0u) << lines[1];
  EXPECT_NE(lines[1].find("overwritten by seq 4"), std::string::npos) << lines[1];
  o = run({"inspect", bus_, "--last", "2", "--format", "table"});
  ASSERT_EQ(o.code, 0) << o.err;
  lines = lines_of(o.out);
  ASSERT_EQ(lines.size(), 3u) << o.out;
  for (int i = 1; i <= 2; ++i) {
    std::istringstream cols(lines[static_cast<std::size_t>(i)]);
    std::string slot, time, part, seq, type, producer, entity;
    cols >> slot >> time >> part >> seq >> type >> producer >> entity;
    EXPECT_EQ(slot, "ok");
    EXPECT_EQ(part, "0");
    EXPECT_EQ(seq, std::to_string(3 + i));
    EXPECT_EQ(type, "chat.attachment.uploaded");
    EXPECT_EQ(producer, "chat");
    EXPECT_EQ(entity, numbered("k", 3 + i));
  }
}

TEST_F(format, InspectFormatJsonIsTheJsonFlag) {
  create({"--partitions", "2", "--slots", "16"});
  Published js = json_event();
  ASSERT_NO_FATAL_FAILURE(publish(js));
  Output flag = run({"inspect", bus_, "--json"});
  Output fmt = run({"inspect", bus_, "--format", "json"});
  Output both = run({"inspect", bus_, "--json", "--format", "json"});
  ASSERT_EQ(flag.code, 0) << flag.err;
  ASSERT_EQ(fmt.code, 0) << fmt.err;
  ASSERT_EQ(both.code, 0) << both.err;
  EXPECT_EQ(flag.out, fmt.out);
  EXPECT_EQ(flag.out, both.out);
  // Shape (tools/INSPECT.md), field by field.
  json j = json::parse(flag.out);
  EXPECT_EQ(j.at("bus"), bus_);
  json slot;
  for (const json& s : j.at("slots"))
    if (s.at("state") == "published") slot = s;
  ASSERT_TRUE(slot.is_object()) << flag.out;
  EXPECT_EQ(slot.at("partition"), js.receipt.partition);
  EXPECT_EQ(slot.at("sequence"), js.receipt.sequence);
  EXPECT_EQ(slot.at("word_sequence"), js.receipt.sequence);
  EXPECT_EQ(std::stoull(slot.at("word").get<std::string>(), nullptr, 16),
            js.receipt.sequence << 3 | 2u);
  EXPECT_EQ(slot.at("status"), "current");
  EXPECT_GT(slot.at("envelope_bytes").get<std::uint64_t>(), 128u);
  EXPECT_EQ(slot.at("writer"), 1);
  const json& env = slot.at("envelope");
  EXPECT_EQ(env.at("check"), "ok");
  EXPECT_EQ(env.at("type"), js.type);
  EXPECT_EQ(env.at("producer"), "chat");
  EXPECT_EQ(env.at("entity"), js.entity);
  EXPECT_EQ(env.at("data"), json::parse(js.payload));
  const json& h = env.at("header");
  EXPECT_EQ(h.at("format_version"), 3);
  EXPECT_EQ(h.at("header_bytes"), 128);
  EXPECT_EQ(h.at("type_id"), 1);
  EXPECT_EQ(h.at("schema_version"), js.schema_version);
  EXPECT_EQ(h.at("producer_id"), 1);
  EXPECT_EQ(h.at("classification"), "confidential");
  EXPECT_EQ(h.at("content_type"), "json");
  EXPECT_EQ(h.at("flags"), evring::kHasRevision);
  EXPECT_EQ(h.at("key_id"), 0);
  EXPECT_EQ(h.at("timestamp_ns"), js.timestamp_ns);
  EXPECT_EQ(h.at("time"), "2024-05-01T12:34:56.123456789Z");
  EXPECT_EQ(h.at("sequence"), js.receipt.sequence);
  EXPECT_EQ(h.at("event_id"), js.receipt.event_id.to_uuid_string());
  EXPECT_EQ(h.at("idempotency_key"), js.idempotency.to_uuid_string());
  EXPECT_EQ(h.at("correlation_id"), js.correlation.to_hex());
  EXPECT_EQ(h.at("causation_id"), js.causation.to_uuid_string());
  EXPECT_TRUE(std::regex_match(h.at("entity_key_hash").get<std::string>(),
                               std::regex("^0x[0-9a-f]{16}$")));
  EXPECT_EQ(h.at("entity_revision"), js.revision);
  EXPECT_EQ(h.at("payload_bytes"), js.payload.size());
  EXPECT_EQ(h.at("entity_key_bytes"), js.entity.size());
  EXPECT_EQ(h.at("reserved"), 0);
  EXPECT_EQ(h.at("origin_host"), 0);
  EXPECT_TRUE(std::regex_match(h.at("checksum").get<std::string>(),
                               std::regex("^0x[0-9a-f]{8}$")));
}

TEST_F(format, LsAndStatJsonHaveTheDocumentedShape) {
  create({"--partitions", "2", "--slots", "16", "--slot-size", "512", "--overflow", "overwrite",
          "--max-consumers", "4", "--max-producers", "3", "--mode", "0640"});
  // Published by a process that has exited, so that no member of the bus is alive.
  Output o = run({"publish", bus_, "--type", "chat.message.created", "--producer", "chat",
                  "--entity", "conv-7", "--classification", "confidential"});
  ASSERT_EQ(o.code, 0) << o.err;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(o.out, m, std::regex(R"(partition (\d+) sequence 0)"))) << o.out;
  const std::uint32_t partition = static_cast<std::uint32_t>(std::stoul(m[1]));
  o = run({"ls", "--json"});
  ASSERT_EQ(o.code, 0) << o.err;
  json mine;
  for (const json& b : json::parse(o.out))
    if (b.at("name") == bus_) mine = b;
  ASSERT_TRUE(mine.is_object()) << o.out;
  EXPECT_EQ(mine.at("path"), "/dev/shm/evring." + bus_);
  EXPECT_GT(mine.at("bytes").get<std::uint64_t>(), 2u * 16u * 512u);
  EXPECT_EQ(mine.at("ok"), true);
  EXPECT_EQ(mine.at("partitions"), 2);
  EXPECT_EQ(mine.at("slots"), 16);
  EXPECT_EQ(mine.at("slot_size"), 512);
  EXPECT_EQ(mine.at("overflow"), "overwrite");
  EXPECT_EQ(mine.at("max_consumers"), 4);
  EXPECT_GT(mine.at("creator_pid").get<int>(), 0);
  EXPECT_EQ(mine.at("creator_alive"), false);
  EXPECT_EQ(mine.at("live_members"), 0);
  EXPECT_EQ(mine.at("stale"), true);

  json s = stat();
  EXPECT_EQ(s.at("bus"), bus_);
  EXPECT_EQ(s.at("bytes"), mine.at("bytes"));
  EXPECT_GT(rfc3339_to_ns(s.at("created")), 0u) << s.at("created");
  EXPECT_EQ(s.at("creator_pid"), mine.at("creator_pid"));
  const json& c = s.at("config");
  EXPECT_EQ(c.at("partitions"), 2);
  EXPECT_EQ(c.at("slots"), 16);
  EXPECT_EQ(c.at("slot_size"), 512);
  EXPECT_EQ(c.at("overflow"), "overwrite");
  EXPECT_EQ(c.at("max_consumers"), 4);
  EXPECT_EQ(c.at("max_producers"), 3);
  EXPECT_GT(c.at("max_types").get<int>(), 0);
  EXPECT_EQ(c.at("mode"), "0640");
  EXPECT_EQ(c.at("dedup_window"), 0);
  EXPECT_EQ(c.at("dedup_window_ns"), 0);
  EXPECT_EQ(c.at("dedup_bloom_words"), 0);
  ASSERT_EQ(s.at("partitions").size(), 2u);
  for (std::uint32_t p = 0; p < 2; ++p) {
    const json& part = s.at("partitions").at(p);
    EXPECT_EQ(part.at("partition"), p);
    EXPECT_EQ(part.at("head"), p == partition ? 1 : 0);
    EXPECT_EQ(part.at("rejected"), 0);
    EXPECT_EQ(part.at("abandoned"), 0);
    EXPECT_EQ(part.at("deduplicated"), 0);
  }
  const json& t = s.at("totals");
  EXPECT_EQ(t.at("published"), 1);
  EXPECT_EQ(t.at("rejected"), 0);
  EXPECT_EQ(t.at("abandoned"), 0);
  EXPECT_EQ(t.at("deduplicated"), 0);
  EXPECT_EQ(t.at("gaps"), 0);
  EXPECT_EQ(t.at("delivered"), 0);
  ASSERT_EQ(s.at("producers").size(), 1u);
  EXPECT_EQ(s.at("producers")[0].at("id"), 1);
  EXPECT_EQ(s.at("producers")[0].at("service"), "chat");
  EXPECT_EQ(s.at("producers")[0].at("domains"), json::array({"chat"}));
  EXPECT_EQ(s.at("producers")[0].at("alive"), false);
  EXPECT_TRUE(s.at("producers")[0].contains("pid"));
  ASSERT_EQ(s.at("types").size(), 1u);
  EXPECT_EQ(s.at("types")[0].at("id"), 1);
  EXPECT_EQ(s.at("types")[0].at("name"), "chat.message.created");
  EXPECT_EQ(s.at("types")[0].at("version"), 1);
  EXPECT_EQ(s.at("types")[0].at("classification"), "confidential");

  // A consumer row, after a durable tail read the event.
  o = run({"tail", bus_, "--consumer", "reader", "--from", "earliest", "--count", "1",
           "--timeout-ms", "2000"});
  ASSERT_EQ(o.code, 0) << o.err;
  s = stat();
  ASSERT_EQ(s.at("consumers").size(), 1u);
  const json& r = s.at("consumers")[0];
  EXPECT_EQ(r.at("name"), "reader");
  EXPECT_EQ(r.at("filter"), "");
  EXPECT_TRUE(r.contains("pid"));
  EXPECT_EQ(r.at("attached"), false);
  EXPECT_EQ(r.at("alive"), false);
  EXPECT_GT(rfc3339_to_ns(r.at("last_seen")), 0u) << r.at("last_seen");
  EXPECT_EQ(r.at("lag"), 0);
  EXPECT_EQ(r.at("delivered"), 1);
  EXPECT_EQ(r.at("gaps"), 0);
  EXPECT_EQ(r.at("filtered"), 0);
  EXPECT_EQ(r.at("corrupt"), 0);
  ASSERT_EQ(r.at("partitions").size(), 2u);
  const json& rp = r.at("partitions").at(partition);
  EXPECT_EQ(rp.at("partition"), partition);
  EXPECT_EQ(rp.at("committed"), 1);
  EXPECT_EQ(rp.at("lag"), 0);
  EXPECT_EQ(rp.at("delivered"), 1);
  EXPECT_EQ(rp.at("gaps"), 0);
  EXPECT_EQ(rp.at("filtered"), 0);
  EXPECT_EQ(rp.at("corrupt"), 0);
  EXPECT_EQ(s.at("totals").at("delivered"), 1);
}

}  // namespace
}  // namespace evring_cli_test
