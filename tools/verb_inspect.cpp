// inspect: dump raw ring slots of a bus for debugging (tools/INSPECT.md).
//
// Read-only: the bus is mapped with Access::kReadOnly and every slot is copied out under the
// slot word (seqlock: load word, copy, re-load word) before anything is decoded. The slot's
// bytes are untrusted: every length is clamped to the slot, and the envelope is only described
// field by field, never trusted, when decode_envelope() refuses it.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli_common.h"
#include "evring/codec/envelope.h"
#include "evring/core/ring_layout.h"
#include "evring/shm/bus.h"
#include "json_render.h"

namespace evring::cli {

void add_inspect_verb(CLI::App& app, VerbList& verbs);

namespace {

struct InspectArgs {
  std::string bus, partition, seq, last, format;
  bool json = false;
  CLI::Option* format_option = nullptr;  // not given: the text dump (or --json)
};

std::string_view state_name(std::uint64_t word) {
  switch (core::word_state(word)) {
    case core::SlotState::kEmpty: return "empty";
    case core::SlotState::kWriting: return "writing";
    case core::SlotState::kPublished: return "published";
    case core::SlotState::kAbandoned: return "abandoned";
    case core::SlotState::kPending: return "pending";
    case core::SlotState::kDuplicate: return "duplicate";
  }
  return "invalid";
}

std::string hex64(std::uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%016llx", static_cast<unsigned long long>(v));
  return buf;
}

// 16 bytes per line: offset, hex, ASCII.
std::vector<std::string> hex_dump(std::span<const std::byte> bytes) {
  std::vector<std::string> lines;
  for (std::size_t off = 0; off < bytes.size(); off += 16) {
    char buf[96];
    int n = std::snprintf(buf, sizeof buf, "%06zx ", off);
    std::string line(buf, static_cast<std::size_t>(n));
    std::string ascii;
    for (std::size_t i = 0; i < 16; ++i) {
      if (off + i < bytes.size()) {
        const auto b = static_cast<unsigned char>(bytes[off + i]);
        std::snprintf(buf, sizeof buf, " %02x", b);
        line += buf;
        ascii += (b >= 0x20 && b < 0x7f) ? static_cast<char>(b) : '.';
      } else {
        line += "   ";
      }
      if (i == 7) line += ' ';
    }
    line += "  |" + ascii + "|";
    lines.push_back(std::move(line));
  }
  return lines;
}

// Copies slot (p, seq) out consistently; false when it kept changing under us.
struct SlotCopy {
  std::uint64_t word = 0;
  std::uint32_t envelope_bytes = 0;  // as stored (may exceed the slot)
  std::uint16_t writer = 0;
  std::uint16_t elided = 0;          // header words the slot left out (ring_layout.h)
  // The envelope with its header expanded (core::expand_slot_envelope); where the length or the
  // elided bits cannot be right, the stored bytes as they are, clamped to the slot.
  std::vector<std::byte> envelope;
  bool expanded = false;
  bool torn = false;
};

SlotCopy copy_slot(const core::RingRegion& ring, std::uint32_t p, std::uint64_t seq) {
  SlotCopy c;
  core::SlotHeader& slot = ring.slot(p, seq);
  const std::size_t slot_bytes = ring.config().slot_bytes;
  const std::size_t max_env = ring.max_envelope_bytes();
  std::vector<std::uint64_t> raw(slot_bytes / 8);  // 8-aligned, as a SlotHeader must be
  for (int attempt = 0; attempt < 16; ++attempt) {
    c.word = slot.word.load(std::memory_order_acquire);
    raw[0] = c.word;  // atomic: never copied bytewise
    std::memcpy(raw.data() + 1, reinterpret_cast<const std::byte*>(&slot) + 8, slot_bytes - 8);
    std::atomic_thread_fence(std::memory_order_acquire);
    c.torn = slot.word.load(std::memory_order_relaxed) != c.word;
    if (!c.torn) break;
  }
  const auto& copied = *reinterpret_cast<const core::SlotHeader*>(raw.data());
  c.envelope_bytes = copied.envelope_bytes;
  c.writer = copied.writer;
  c.elided = copied.elided;
  c.envelope.resize(max_env);
  if (const std::size_t n = core::expand_slot_envelope(copied, max_env, c.envelope.data())) {
    c.envelope.resize(n);
    c.expanded = true;
  } else {
    const std::size_t stored = std::min<std::size_t>(c.envelope_bytes, max_env);
    std::memcpy(c.envelope.data(), core::RingRegion::envelope_of(copied), stored);
    c.envelope.resize(stored);
  }
  return c;
}

OrderedJson describe_envelope(const Bus& bus, const SlotCopy& c, NameCache& names) {
  OrderedJson e;
  EnvelopeView view{};
  const EnvelopeCheck check = decode_envelope(c.envelope, &view);
  e["check"] = std::string(describe(check));
  if (c.envelope.size() < kEnvelopeHeaderBytes) return e;

  // Header fields, also when the check failed: copied field by field, trusted for nothing.
  EnvelopeHeader h;
  std::memcpy(&h, c.envelope.data(), sizeof h);
  OrderedJson hj;
  hj["format_version"] = h.format_version;
  hj["header_bytes"] = h.header_bytes;
  hj["type_id"] = h.type_id;
  hj["schema_version"] = h.schema_version;
  hj["producer_id"] = h.producer_id;
  hj["classification"] =
      std::string(classification_name(static_cast<Classification>(h.classification)));
  hj["content_type"] = std::string(content_type_name(static_cast<ContentType>(h.content_type)));
  hj["flags"] = h.flags;
  hj["key_id"] = h.key_id;
  hj["timestamp_ns"] = h.timestamp_ns;
  hj["time"] = rfc3339_ns(h.timestamp_ns);
  hj["sequence"] = h.sequence;
  hj["event_id"] = h.event_id.to_uuid_string();
  hj["idempotency_key"] = h.idempotency_key.to_uuid_string();
  hj["correlation_id"] = h.correlation_id.to_hex();
  hj["causation_id"] = h.causation_id.to_uuid_string();
  hj["entity_key_hash"] = hex64(h.entity_key_hash);
  hj["entity_revision"] = h.entity_revision;
  hj["payload_bytes"] = h.payload_bytes;
  hj["entity_key_bytes"] = h.entity_key_bytes;
  hj["reserved"] = h.reserved;
  hj["origin_host"] = h.origin_host;
  char cs[16];
  std::snprintf(cs, sizeof cs, "0x%08x", h.checksum);
  hj["checksum"] = cs;
  e["header"] = std::move(hj);

  if (h.type_id == 0) {
    e["type"] = nullptr;
    e["type_error"] = "type id 0 is invalid";
  } else {
    Result<TypeInfo> t = bus.type_info(h.type_id);
    if (t.ok()) {
      e["type"] = t->name;
    } else {
      e["type"] = nullptr;
      e["type_error"] = t.status().to_string();
    }
  }
  const ProducerInfo* producer = names.producer(h.producer_id);
  e["producer"] = producer ? OrderedJson(producer->service) : OrderedJson(nullptr);

  // Key and payload: the validated spans when the check passed, else clamped to the slot.
  std::span<const std::byte> key, payload;
  if (check == EnvelopeCheck::kOk) {
    key = view.key;
    payload = view.payload;
  } else {
    const std::span<const std::byte> all(c.envelope);
    const std::size_t key_at = std::min<std::size_t>(
        std::max<std::size_t>(h.header_bytes, kEnvelopeHeaderBytes), all.size());
    const std::size_t key_n = std::min<std::size_t>(h.entity_key_bytes, all.size() - key_at);
    key = all.subspan(key_at, key_n);
    const std::size_t pay_at = key_at + key_n;
    payload = all.subspan(pay_at, std::min<std::size_t>(h.payload_bytes, all.size() - pay_at));
    if (key_n < h.entity_key_bytes || payload.size() < h.payload_bytes)
      e["clamped"] = "key/payload lengths exceed the slot; showing the bytes that fit";
  }
  e["entity"] = std::string(reinterpret_cast<const char*>(key.data()), key.size());
  if (!payload.empty() && static_cast<ContentType>(h.content_type) == ContentType::kJson) {
    OrderedJson data = OrderedJson::parse(reinterpret_cast<const char*>(payload.data()),
                                          reinterpret_cast<const char*>(payload.data()) +
                                              payload.size(),
                                          nullptr, /*allow_exceptions=*/false);
    if (!data.is_discarded()) {
      e["data"] = std::move(data);
      return e;
    }
  }
  e["data"] = nullptr;
  e["data_hex"] = hex_dump(payload);
  return e;
}

OrderedJson inspect_slot(const Bus& bus, std::uint32_t p, std::uint64_t seq, std::uint64_t head,
                         const SlotCopy& c, NameCache& names) {
  const core::RingRegion& ring = bus.ring();
  OrderedJson j;
  j["partition"] = p;
  j["sequence"] = seq;
  j["word"] = hex64(c.word);
  const std::uint64_t word_seq = core::word_sequence(c.word);
  j["word_sequence"] = word_seq;
  j["state"] = std::string(state_name(c.word));
  j["envelope_bytes"] = c.envelope_bytes;
  j["writer"] = c.writer;
  j["elided"] = c.elided;
  if (c.torn) j["torn"] = true;  // the slot changed during every copy attempt
  const bool empty = core::word_state(c.word) == core::SlotState::kEmpty && c.word == 0;
  if (seq >= head) {
    j["status"] = "not claimed yet (head " + std::to_string(head) + ")";
  } else if (empty) {
    j["status"] = "never written";
  } else if (word_seq > seq) {
    j["status"] = "overwritten by seq " + std::to_string(word_seq);
  } else if (word_seq < seq) {
    j["status"] = "not written yet (slot still holds seq " + std::to_string(word_seq) + ")";
  } else {
    j["status"] = "current";
  }
  if (c.envelope_bytes > ring.max_envelope_bytes())
    j["envelope_bytes_error"] = "exceeds the slot's " + std::to_string(ring.max_envelope_bytes()) +
                                " envelope bytes; clamped";
  else if (!core::elided_bits_valid(c.elided))
    j["envelope_bytes_error"] = "elided bits name header words no layout elides; shown as stored";
  else if (!c.expanded && core::word_state(c.word) == core::SlotState::kPublished)
    j["envelope_bytes_error"] = "too short for the " +
                                std::to_string(core::stored_header_bytes(c.elided)) +
                                " header bytes the slot stores, or a body longer than a slot's "
                                "envelope; shown as stored";
  if (core::word_state(c.word) == core::SlotState::kPublished)
    j["envelope"] = describe_envelope(bus, c, names);
  return j;
}

std::string field(const OrderedJson& j, const char* key) {
  if (!j.contains(key)) return "";
  const OrderedJson& v = j[key];
  return v.is_string() ? v.get<std::string>() : v.dump(-1, ' ', false,
                                                        nlohmann::detail::error_handler_t::replace);
}

void print_slot_text(const OrderedJson& s) {
  std::printf("partition %s seq %s: word %s (seq %s, %s) envelope %s B writer %s: %s%s\n",
              field(s, "partition").c_str(), field(s, "sequence").c_str(),
              field(s, "word").c_str(), field(s, "word_sequence").c_str(),
              field(s, "state").c_str(), field(s, "envelope_bytes").c_str(),
              field(s, "writer").c_str(), field(s, "status").c_str(),
              s.contains("torn") ? " (torn: changed during every read)" : "");
  if (s.contains("envelope_bytes_error"))
    std::printf("  envelope_bytes %s\n", field(s, "envelope_bytes_error").c_str());
  if (!s.contains("envelope")) return;
  const OrderedJson& e = s["envelope"];
  std::printf("  envelope: %s\n", field(e, "check").c_str());
  if (!e.contains("header")) return;
  std::printf("  type: %s\n", e["type"].is_null()
                                  ? ("? (" + field(e, "type_error") + ")").c_str()
                                  : field(e, "type").c_str());
  std::printf("  producer: %s\n", e["producer"].is_null() ? "?" : field(e, "producer").c_str());
  std::printf("  entity: %s\n", field(e, "entity").c_str());
  for (const auto& [k, v] : e["header"].items())
    std::printf("  %-18s %s\n", k.c_str(), field(e["header"], k.c_str()).c_str());
  if (e.contains("clamped")) std::printf("  note: %s\n", field(e, "clamped").c_str());
  if (!e["data"].is_null()) {
    std::printf("  data: %s\n", field(e, "data").c_str());
  } else if (e["data_hex"].empty()) {
    std::printf("  data: (empty)\n");
  } else {
    std::printf("  data (hex):\n");
    for (const auto& line : e["data_hex"]) std::printf("    %s\n", line.get<std::string>().c_str());
  }
}

struct SelectedSlot {
  std::uint32_t partition;
  std::uint64_t sequence;
  std::uint64_t head;  // of the partition, when the selection was made
};

// --format table / cloudevents: the selected slots that hold the event of their sequence, intact.
void print_slot_events(const Bus& bus, const std::vector<SelectedSlot>& selected,
                       std::optional<OutputFormat> format, NameCache& names) {
  static constexpr TableColumn kSlotColumn{"SLOT", 9, false};
  std::vector<TableColumn> columns{kSlotColumn};
  for (const TableColumn& col : event_table_columns()) columns.push_back(col);
  const bool table = format == OutputFormat::kTable;
  if (table) std::printf("%s\n", table_header(columns).c_str());
  std::size_t skipped = 0;
  for (const SelectedSlot& s : selected) {
    const SlotCopy c = copy_slot(bus.ring(), s.partition, s.sequence);
    const OrderedJson slot = inspect_slot(bus, s.partition, s.sequence, s.head, c, names);
    EnvelopeView view{};
    const bool published = core::word_state(c.word) == core::SlotState::kPublished;
    const bool current = !c.torn && published && slot["status"] == "current";
    const EnvelopeCheck check =
        current ? decode_envelope(c.envelope, &view) : EnvelopeCheck::kTruncated;
    const bool event = current && check == EnvelopeCheck::kOk;
    if (!table) {
      if (event)
        std::printf("%s\n",
                    dump_line(render_cloudevent(view, s.partition, s.sequence, bus.name(), names))
                        .c_str());
      else
        ++skipped;
      continue;
    }
    std::vector<std::string> cells;
    if (event) {
      cells = event_table_cells(view, s.partition, s.sequence, names);
      cells.insert(cells.begin(), "ok");
    } else {
      // Where the event would be: what the slot holds instead (or why it cannot be trusted).
      std::string what = c.torn ? "torn" : current ? "corrupt" : std::string(state_name(c.word));
      std::string why =
          current ? std::string(describe(check)) : slot["status"].get<std::string>();
      cells = {std::move(what), "-", std::to_string(s.partition), std::to_string(s.sequence),
               "-", "-", "-", std::move(why)};
    }
    std::printf("%s\n", table_line(columns, cells).c_str());
  }
  if (skipped)
    std::fprintf(stderr,
                 "evring: note: %zu selected slot(s) hold no intact event of their sequence "
                 "(see --format json)\n",
                 skipped);
}

int run_inspect(const InspectArgs& a) {
  std::uint64_t seq = 0, last = 5, part = 0;
  const bool has_seq = !a.seq.empty(), has_part = !a.partition.empty();
  if (has_seq && !a.last.empty()) return fail(Status::invalid_argument("--seq and --last exclude each other"));
  if (has_seq) {
    auto v = parse_uint(a.seq, "--seq");
    if (!v.ok()) return fail(v.status());
    seq = *v;
  }
  if (!a.last.empty()) {
    auto v = parse_uint(a.last, "--last");
    if (!v.ok()) return fail(v.status());
    last = *v;
  }
  if (has_part) {
    auto v = parse_uint(a.partition, "--partition");
    if (!v.ok()) return fail(v.status());
    part = *v;
  }
  // No --format and no --json: the text dump. --json is --format json.
  std::optional<OutputFormat> format;
  if (a.json) format = OutputFormat::kJson;
  if (a.format_option->count() > 0) {
    auto f = parse_output_format(a.format);
    if (!f.ok()) return fail(f.status());
    if (a.json && *f != OutputFormat::kJson)
      return fail(Status::invalid_argument("--json and --format " + a.format +
                                           " exclude each other (--json is --format json)"));
    format = *f;
  }
  auto opened = Bus::open(a.bus, Access::kReadOnly);
  if (!opened.ok()) return fail(opened.status());
  const Bus& bus = **opened;
  const core::RingRegion& ring = bus.ring();
  const core::RingConfig& cfg = ring.config();
  if (has_part && part >= cfg.partitions)
    return fail(Status::invalid_argument("--partition " + std::to_string(part) +
                                         " is out of range (the bus has " +
                                         std::to_string(cfg.partitions) + " partitions)"));
  last = std::min<std::uint64_t>(last, ring.capacity());

  NameCache names(bus);
  const std::uint32_t p_begin = has_part ? static_cast<std::uint32_t>(part) : 0;
  const std::uint32_t p_end = has_part ? p_begin + 1 : cfg.partitions;
  std::vector<SelectedSlot> selected;
  for (std::uint32_t p = p_begin; p < p_end; ++p) {
    const std::uint64_t head = ring.partition(p).head.load(std::memory_order_acquire);
    if (has_seq) {
      selected.push_back({p, seq, head});
      continue;
    }
    for (std::uint64_t s = head > last ? head - last : 0; s < head; ++s)
      selected.push_back({p, s, head});
  }

  if (format == OutputFormat::kTable || format == OutputFormat::kCloudEvents) {
    print_slot_events(bus, selected, format, names);
  } else {
    OrderedJson slots = OrderedJson::array();
    for (const SelectedSlot& s : selected)
      slots.push_back(inspect_slot(bus, s.partition, s.sequence, s.head,
                                   copy_slot(ring, s.partition, s.sequence), names));
    if (format == OutputFormat::kJson) {
      OrderedJson j;
      j["bus"] = bus.name();
      j["slots"] = std::move(slots);
      std::string out = j.dump(2, ' ', false, nlohmann::detail::error_handler_t::replace);
      std::printf("%s\n", out.c_str());
    } else {
      std::printf("bus %s: %u partitions, %u slots of %u B\n", bus.name().c_str(), cfg.partitions,
                  cfg.slots_per_partition, cfg.slot_bytes);
      if (slots.empty()) std::printf("(no slots selected: nothing published yet)\n");
      for (const auto& s : slots) print_slot_text(s);
    }
  }
  if (std::fflush(stdout) != 0 || std::ferror(stdout)) {
    print_error("writing stdout failed");
    return kExitInternal;
  }
  return kExitOk;
}

}  // namespace

void add_inspect_verb(CLI::App& app, VerbList& verbs) {
  auto args = std::make_shared<InspectArgs>();
  CLI::App* cmd = app.add_subcommand(
      "inspect", "Dump raw ring slots (word, state, envelope check, header, payload); read-only");
  cmd->add_option("BUS", args->bus, "Bus name")->required();
  cmd->add_option("--partition", args->partition, "Only this partition (default: all)")
      ->type_name("P");
  cmd->add_option("--seq", args->seq, "This sequence in each selected partition")->type_name("S");
  cmd->add_option("--last", args->last, "The last N sequences of each partition (default 5)")
      ->type_name("N");
  cmd->add_flag("--json", args->json,
                "Print one JSON object {bus, slots: [...]} (shape in tools/INSPECT.md); "
                "the same as --format json");
  args->format_option = cmd->add_option("--format", args->format,
                  "Output instead of the text dump: json (as --json), table (one row per slot) "
                  "or cloudevents (one CloudEvents 1.0 JSON object per intact event)")
      ->type_name(kOutputFormatNames);
  verbs.push_back({cmd, [args] { return run_inspect(*args); }});
}

}  // namespace evring::cli
