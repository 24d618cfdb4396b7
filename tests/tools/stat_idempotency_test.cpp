// evring stat shows the counters of a consumer's idempotency table (IdempotentHandler).
#include "evring/shm/idempotent.h"
#include "tools/cli_fixture.h"

namespace evring_cli_test {
namespace {

class stat_idempotency : public CliTest {};

TEST_F(stat_idempotency, StatReportsHandledAndSkippedDuplicates) {
  ASSERT_EQ(run({"create", bus_, "--partitions", "1", "--slots", "64"}).code, 0);
  auto bus = evring::Bus::open(bus_).value();
  {
    auto consumer = bus->consumer("billing").value();
    auto idem = evring::IdempotentHandler::attach(*consumer);
    ASSERT_TRUE(idem.ok()) << idem.status().to_string();
    auto producer = bus->producer("orders").value();
    auto type = producer->resolve("orders.order.placed").value();
    // Three events, two carrying the same idempotency key: one is skipped as a duplicate.
    for (const char* key : {"k-1", "k-2", "k-1"}) {
      evring::core::PublishRequest r;
      r.type_id = type;
      r.entity_key = "order";
      r.idempotency_key = evring::Id128::from_key_text(key);
      ASSERT_EQ(producer->try_publish(r), evring::core::PublishResult::kOk);
    }
    int calls = 0;
    auto handler = idem->wrap([&](const evring::core::Event&) { ++calls; });
    consumer->poll(handler, 10);
    EXPECT_EQ(calls, 2);
  }
  Output o = run({"stat", bus_, "--json"});
  ASSERT_EQ(o.code, 0) << o.err;
  json j = json::parse(o.out);
  ASSERT_EQ(j["consumers"].size(), 1u);
  const json& id = j["consumers"][0]["idempotency"];
  EXPECT_EQ(id["handled"], 2);
  EXPECT_EQ(id["duplicates_skipped"], 1);
  EXPECT_EQ(id["remembered"], 2);
  Output text = run({"stat", bus_});
  EXPECT_NE(text.out.find("idempotency table: 2 keys remembered"), std::string::npos) << text.out;
}

}  // namespace
}  // namespace evring_cli_test
