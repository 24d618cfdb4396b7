// publish: one event from flags, or a stream of JSON lines from stdin (--jsonl).
#include <cerrno>
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

#include "cli_common.h"
#include "evring/codec/names.h"
#include "evring/shm/bus.h"
#include "json_render.h"
#include "jsonl_event.h"

namespace evring::cli {
namespace {

using Json = nlohmann::json;

struct PublishArgs {
  std::string bus, type, producer, entity, domains, data, data_file;
  std::string correlation, causation, idempotency_key, classification, revision;
  std::string full_timeout_ms;
  bool jsonl = false;
  bool exclusive = false;   // hold each partition published to while the command runs
  bool data_given = false;  // --data was present (even empty: "" is not valid JSON)
};

Status set_json_payload(EventSpec* spec, std::string_view text, std::string_view what) {
  try {
    spec->payload = Json::parse(text).dump();
  } catch (const Json::exception& e) {
    return Status::invalid_argument(std::string(what) + " is not valid JSON: " + e.what());
  }
  spec->content_type = ContentType::kJson;
  return Status::ok();
}

// Registers producers and resolves types once per name; publishes with a bounded retry on Full.
class Publisher {
 public:
  Publisher(std::shared_ptr<Bus> bus, std::string default_producer,
            std::vector<std::string> default_domains, std::uint64_t full_timeout_ms,
            bool exclusive)
      : bus_(std::move(bus)),
        default_producer_(std::move(default_producer)),
        default_domains_(std::move(default_domains)),
        full_timeout_ms_(full_timeout_ms),
        exclusive_(exclusive) {}

  Status publish(const EventSpec& spec, core::PublishReceipt* receipt, bool* duplicate) {
    auto producer = producer_for(spec.producer);
    if (!producer.ok()) return producer.status();
    Producer& p = **producer;
    const std::string what = "event '" + spec.type + "' of '" + spec.entity + "'";
    auto type = type_for(p, spec.type, spec.classification);
    if (!type.ok()) return type.status();
    core::PublishRequest r;
    r.type_id = *type;
    r.schema_version = p.schema_version_of(*type);
    const Classification registered = p.classification_of(*type);
    if (spec.classification && *spec.classification < registered)
      return Status::invalid_argument(
          "classification " + std::string(classification_name(*spec.classification)) +
          " would downgrade '" + spec.type + "', registered as " +
          std::string(classification_name(registered)));
    r.classification = spec.classification.value_or(registered);
    r.content_type = spec.content_type;
    r.entity_key = spec.entity;
    r.payload = std::as_bytes(std::span(spec.payload.data(), spec.payload.size()));
    r.correlation_id = spec.correlation;
    r.causation_id = spec.causation;
    r.idempotency_key = spec.idempotency;
    if (spec.revision) {
      r.flags |= kHasRevision;
      r.entity_revision = *spec.revision;
    }
    const std::size_t room = core::max_body_bytes(bus_->ring().config().slot_bytes);
    if (spec.entity.size() + spec.payload.size() > room || spec.entity.size() > 0xFFFF)
      return Status::payload_too_large(what + ": entity key (" + std::to_string(spec.entity.size()) +
                                       " B) + payload (" + std::to_string(spec.payload.size()) +
                                       " B) exceed the " + std::to_string(room) +
                                       " B a slot of this bus holds");
    using Clock = std::chrono::steady_clock;
    const auto deadline = Clock::now() + std::chrono::milliseconds(full_timeout_ms_);
    auto backoff = std::chrono::microseconds(20);
    for (int revoked = 0;;) {
      core::PublishResult result = p.try_publish(r, receipt);
      // Revoked: the claimed slot was abandoned before it was written; nothing went out.
      if (result == core::PublishResult::kRevoked && ++revoked <= 3) continue;
      // Full, or Busy (an exclusive take, or a bias whose holder is stopped mid-publish): both
      // pass; wait for them up to --full-timeout-ms.
      if ((result == core::PublishResult::kFull || result == core::PublishResult::kBusy) &&
          Clock::now() < deadline) {
        std::this_thread::sleep_for(backoff);
        backoff = std::min(backoff * 2, std::chrono::microseconds(1000));
        continue;
      }
      *duplicate = result == core::PublishResult::kDuplicate;
      return publish_status(result, what);
    }
  }

 private:
  Result<Producer*> producer_for(const std::string& service) {
    if (auto it = producers_.find(service); it != producers_.end()) return it->second.get();
    if (auto it = refused_.find(service); it != refused_.end()) return it->second;
    // --domains belongs to the --producer service (to every service when none was named).
    std::vector<std::string> domains;
    if (default_producer_.empty() || service == default_producer_) domains = default_domains_;
    auto p = bus_->producer(service, domains);
    if (!p.ok()) {
      refused_.emplace(service, p.status());
      return p.status();
    }
    // Each partition is taken at its first publish and given back when the producer goes (at
    // exit); a partition another live producer holds refuses the event (exit 8).
    (*p)->set_exclusive(exclusive_);
    return producers_.emplace(service, std::move(p.value())).first->second.get();
  }

  Result<std::uint16_t> type_for(Producer& p, const std::string& type,
                                 std::optional<Classification> classification) {
    const std::string key = p.service() + '\n' + type;
    if (auto it = types_.find(key); it != types_.end()) return it->second;
    auto id = p.resolve(type, 1, classification.value_or(Classification::kInternal));
    if (id.ok()) types_.emplace(key, *id);
    return id;
  }

  std::shared_ptr<Bus> bus_;
  std::string default_producer_;
  std::vector<std::string> default_domains_;
  std::uint64_t full_timeout_ms_;
  bool exclusive_;
  std::map<std::string, std::unique_ptr<Producer>> producers_;
  std::map<std::string, Status> refused_;
  std::map<std::string, std::uint16_t> types_;
};

Result<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    int err = errno;
    return Status::invalid_argument("--data-file '" + path + "': " + std::strerror(err));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return Status::invalid_argument("--data-file '" + path + "': read error");
  return text.str();
}

Status spec_from_flags(const PublishArgs& a, EventSpec* spec) {
  for (auto [value, flag] : {std::pair{&a.type, "--type"}, std::pair{&a.producer, "--producer"},
                             std::pair{&a.entity, "--entity"}})
    if (value->empty())
      return Status::invalid_argument(std::string(flag) + " is required (or use --jsonl)");
  EVRING_RETURN_IF_ERROR(validate_event_name(a.type));
  EVRING_RETURN_IF_ERROR(validate_service_name(a.producer));
  spec->type = a.type;
  spec->producer = a.producer;
  spec->entity = a.entity;
  EVRING_RETURN_IF_ERROR(parse_event_options(spec, "--", a.correlation, a.causation,
                                             a.idempotency_key, a.classification));
  if (!a.revision.empty()) {
    auto rev = parse_uint(a.revision, "--revision");
    if (!rev.ok()) return rev.status();
    spec->revision = *rev;
  }
  if (a.data_given) return set_json_payload(spec, a.data, "--data");
  if (!a.data_file.empty()) {
    auto text = read_file(a.data_file);
    if (!text.ok()) return text.status();
    return set_json_payload(spec, *text, "--data-file '" + a.data_file + "'");
  }
  return Status::ok();
}

int run_jsonl(Publisher& publisher, const std::string& default_producer) {
  std::ios::sync_with_stdio(false);
  std::string line;
  std::uint64_t line_no = 0, published = 0, refused = 0;
  while (std::getline(std::cin, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;  // blank
    EventSpec spec;
    core::PublishReceipt receipt;
    bool duplicate = false;
    Status s = parse_jsonl_event(line, default_producer, &spec);
    if (s.is_ok()) s = publisher.publish(spec, &receipt, &duplicate);
    if (s.is_ok()) {
      ++published;  // a duplicate is already on the bus: accepted, not refused
      continue;
    }
    ++refused;
    print_error("line " + std::to_string(line_no) + ": " + s.to_string());
  }
  std::printf("published %llu refused %llu\n", static_cast<unsigned long long>(published),
              static_cast<unsigned long long>(refused));
  return refused == 0 ? kExitOk : kExitRefused;
}

int run_publish(const PublishArgs& a, bool full_timeout_given) {
  std::uint64_t full_timeout_ms = a.jsonl ? 5000 : 0;
  if (full_timeout_given) {
    auto v = parse_uint(a.full_timeout_ms, "--full-timeout-ms");
    if (!v.ok()) return fail(v.status());
    full_timeout_ms = *v;
  }
  EventSpec spec;
  if (!a.jsonl) {
    if (Status s = spec_from_flags(a, &spec); !s.is_ok()) return fail(s);
  }
  if (Status s = Bus::validate_name(a.bus); !s.is_ok()) return fail(s);
  auto bus = Bus::open(a.bus);
  if (!bus.ok()) return fail(bus.status());
  Publisher publisher(std::move(bus.value()), a.producer, split_list(a.domains), full_timeout_ms,
                      a.exclusive);
  if (a.jsonl) return run_jsonl(publisher, a.producer);

  core::PublishReceipt receipt;
  bool duplicate = false;
  if (Status s = publisher.publish(spec, &receipt, &duplicate); !s.is_ok()) return fail(s);
  if (duplicate) {
    std::printf("duplicate: an event with this idempotency key is on the bus; nothing written\n");
    return kExitOk;
  }
  std::printf("%s partition %u sequence %llu\n", receipt.event_id.to_uuid_string().c_str(),
              receipt.partition, static_cast<unsigned long long>(receipt.sequence));
  return kExitOk;
}

}  // namespace

void add_publish_verb(CLI::App& app, VerbList& verbs) {
  auto a = std::make_shared<PublishArgs>();
  CLI::App* cmd = app.add_subcommand(
      "publish", "Publish one event from flags, or JSON lines from stdin with --jsonl");
  cmd->add_option("BUS", a->bus, "Bus name")->required();
  auto* type = cmd->add_option("--type", a->type, "Event type, domain.entity.action")->type_name("NAME");
  cmd->add_option("--producer", a->producer,
                  "Service publishing (registered or reused); the default producer with --jsonl")
      ->type_name("SERVICE");
  auto* entity = cmd->add_option("--entity", a->entity, "Entity key (picks the partition)")->type_name("KEY");
  cmd->add_option("--domains", a->domains,
                  "Comma-separated domains the --producer service owns (default: its own name)")
      ->type_name("LIST");
  auto* data = cmd->add_option("--data", a->data, "Payload: a JSON document")->type_name("JSON");
  auto* file = cmd->add_option("--data-file", a->data_file, "Payload: a file holding a JSON document")
                   ->type_name("PATH");
  data->excludes(file);
  auto* corr = cmd->add_option("--correlation", a->correlation,
                               "Correlation id: a W3C trace-id, 32 hex digits (default: new)")
                   ->type_name("HEX32");
  auto* caus = cmd->add_option("--causation", a->causation, "Event id (UUID) of the cause")->type_name("UUID");
  auto* idem = cmd->add_option("--idempotency-key", a->idempotency_key,
                               "Idempotency key: an id, or any text (hashed); default: the event id")
                   ->type_name("KEY");
  auto* cls = cmd->add_option("--classification", a->classification,
                              "public|internal|confidential|restricted (default: the type's)")
                  ->type_name("LEVEL");
  auto* rev = cmd->add_option("--revision", a->revision, "Entity revision")->type_name("N");
  auto* jsonl = cmd->add_flag("--jsonl", a->jsonl,
                              "Read one JSON object per line from stdin: {\"type\", \"producer\", "
                              "\"entity\", \"data\", optional \"correlation\", \"causation\", "
                              "\"idempotency_key\", \"classification\", \"revision\"}");
  for (CLI::Option* o : {type, entity, data, file, corr, caus, idem, cls, rev}) jsonl->excludes(o);
  cmd->add_flag("--exclusive", a->exclusive,
                "Hold each partition published to for this command alone until it exits (no "
                "locked instruction per event); a partition another producer holds refuses (8)");
  auto* timeout = cmd->add_option("--full-timeout-ms", a->full_timeout_ms,
                                  "While the bus is full (reject mode), retry this long before "
                                  "refusing (default 5000 with --jsonl, else 0)")
                      ->type_name("MS");
  verbs.push_back({cmd, [a, timeout, data] {
                     a->data_given = data->count() > 0;
                     return run_publish(*a, timeout->count() > 0);
                   }});
}

}  // namespace evring::cli
