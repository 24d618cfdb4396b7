// Tests for the registries of evring/shm/bus.h over real /dev/shm segments: producers and the
// domains they own, event types, consumers and their filters (the rest of the bus:
// bus_test.cpp).
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "evring/shm/bus.h"
#include "shm/test_bus.h"

namespace evring {
namespace {

using testing::drain_payloads;
using testing::expect_status;
using testing::small_options;
using testing::tag;
using testing::TestBus;

// ------------------------------------------------------------------------------ producers

TEST(BusProducerTest, DefaultDomainIsTheServiceName) {
  TestBus bus;
  ASSERT_TRUE(bus.ok());
  auto p = bus->producer("chat");
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  EXPECT_EQ((*p)->domains(), std::vector<std::string>{"chat"});
  EXPECT_EQ((*p)->service(), "chat");
  EXPECT_TRUE((*p)->resolve("chat.message.created").ok());
  auto info = bus->producer_info((*p)->id());
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->service, "chat");
  EXPECT_EQ(info->domains, std::vector<std::string>{"chat"});
  EXPECT_EQ(info->pid, ::getpid());
  EXPECT_TRUE(info->alive);
  expect_status(bus->producer_info(0).status(), Code::kNotFound);
  expect_status(bus->producer_info(15).status(), Code::kNotFound, "not registered");
}

TEST(BusProducerTest, ServiceThatIsNotAValidDomainMustNameItsDomains) {
  TestBus bus;
  ASSERT_TRUE(bus.ok());
  expect_status(bus->producer("Chat-Svc").status(), Code::kInvalidArgument, "'Chat-Svc'");
  expect_status(bus->producer("chat.svc").status(), Code::kInvalidArgument, "domain");
  expect_status(bus->producer("bad service").status(), Code::kInvalidArgument, "' '");
  expect_status(bus->producer("svc", {"Chat"}).status(), Code::kInvalidArgument, "domain 'Chat'");
  auto p = bus->producer("Chat-Svc", {"chat", "dm", "chat"});
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  EXPECT_EQ((*p)->domains(), (std::vector<std::string>{"chat", "dm"}));
}

// A typo in EVRING_CLOCK would otherwise stamp every event with the default clock unnoticed:
// the producer is refused, naming the variable, and nothing is registered.
TEST(BusProducerTest, ABadEvringClockIsRefusedAndRegistersNothing) {
  TestBus bus;
  ASSERT_TRUE(bus.ok());
  const char* saved = std::getenv("EVRING_CLOCK");
  const std::string restore = saved ? saved : "";
  ::setenv("EVRING_CLOCK", "rdtsc", 1);
  expect_status(bus->producer("shop").status(), Code::kInvalidArgument,
                "EVRING_CLOCK: clock mode 'rdtsc' is not one of auto, tsc, realtime");
  EXPECT_TRUE(bus->producers().empty());
  ::setenv("EVRING_CLOCK", "realtime", 1);
  auto p = bus->producer("shop");
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  if (saved)
    ::setenv("EVRING_CLOCK", restore.c_str(), 1);
  else
    ::unsetenv("EVRING_CLOCK");
}

TEST(BusProducerTest, DomainOwnedByAnotherServiceIsRefusedNamingTheOwner) {
  TestBus bus;
  ASSERT_TRUE(bus.ok());
  ASSERT_TRUE(bus->producer("billing", {"sales"}).ok());
  auto other = bus->producer("crm", {"crm", "sales"});
  ASSERT_FALSE(other.ok());
  expect_status(other.status(), Code::kDomainNotOwned, "domain 'sales' is owned by service 'billing'");
  EXPECT_TRUE(bus->producer("crm", {"crm"}).ok());
}

TEST(BusProducerTest, SameServiceWithOtherDomainsIsRefused) {
  TestBus bus;
  ASSERT_TRUE(bus.ok());
  auto first = bus->producer("billing", {"sales"});
  ASSERT_TRUE(first.ok());
  auto other = bus->producer("billing", {"invoices", "sales"});
  ASSERT_FALSE(other.ok());
  expect_status(other.status(), Code::kDomainNotOwned, "'billing' owns domains [sales]");
  auto same = bus->producer("billing", {"sales"});
  ASSERT_TRUE(same.ok()) << "the same service with the same domains may register again";
  EXPECT_EQ((*same)->id(), (*first)->id()) << "same process: the registry entry is reused";
}

TEST(BusProducerTest, ResolveOfAnotherDomainsEventIsRefusedNamingTheDomain) {
  TestBus bus;
  ASSERT_TRUE(bus.ok());
  auto chat = bus->producer("chat");
  ASSERT_TRUE(chat.ok());
  auto r = (*chat)->resolve("sales.lead.created");
  ASSERT_FALSE(r.ok());
  expect_status(r.status(), Code::kDomainNotOwned, "domain 'sales'");
  expect_status((*chat)->resolve("chat").status(), Code::kInvalidArgument, "two");
  EXPECT_FALSE(bus->find_type("sales.lead.created").ok()) << "a refused resolve registers nothing";
}

TEST(BusProducerTest, HotPathRefusesTypesTheProducerDidNotResolve) {
  TestBus bus;
  ASSERT_TRUE(bus.ok());
  auto sales = bus->producer("sales");
  auto chat = bus->producer("chat");
  ASSERT_TRUE(sales.ok() && chat.ok());
  auto lead = (*sales)->resolve("sales.lead.created");
  ASSERT_TRUE(lead.ok());
  EXPECT_EQ((*chat)->publish(lead.value(), "k", "x"), core::PublishResult::kUnknownType);
  EXPECT_EQ((*chat)->publish(0, "k", "x"), core::PublishResult::kUnknownType);
  EXPECT_EQ((*sales)->publish(lead.value(), "k", "x"), core::PublishResult::kOk);
}

TEST(BusProducerTest, ProducerRegistryFull) {
  BusOptions o = small_options();
  o.max_producers = 2;
  TestBus bus(o);
  ASSERT_TRUE(bus.ok());
  ASSERT_TRUE(bus->producer("a").ok());
  ASSERT_TRUE(bus->producer("b").ok());
  expect_status(bus->producer("c").status(), Code::kResourceExhausted, "full");
  EXPECT_EQ(bus->producers().size(), 2u);
}

TEST(BusProducerTest, PublishedEventCarriesTheResolvedTypeAndProducer) {
  TestBus bus;
  ASSERT_TRUE(bus.ok());
  auto consumer = bus->consumer("audit");
  ASSERT_TRUE(consumer.ok());
  auto p = bus->producer("chat");
  ASSERT_TRUE(p.ok());
  auto type = (*p)->resolve("chat.message.created", 3, Classification::kConfidential);
  ASSERT_TRUE(type.ok());
  ASSERT_EQ((*p)->publish(type.value(), "conv-1", "{\"t\":\"hi\"}", ContentType::kJson),
            core::PublishResult::kOk);
  int calls = 0;
  (void)(*consumer)->poll([&](const core::Event& e) {
    ++calls;
    EXPECT_EQ(e.view.header.type_id, type.value());
    EXPECT_EQ(e.view.header.schema_version, 3);
    EXPECT_EQ(e.view.header.classification, static_cast<std::uint8_t>(Classification::kConfidential));
    EXPECT_EQ(e.view.header.content_type, static_cast<std::uint8_t>(ContentType::kJson));
    EXPECT_EQ(e.view.header.producer_id, (*p)->id());
    EXPECT_EQ(e.view.key_text(), "conv-1");
    EXPECT_EQ(e.view.payload_text(), "{\"t\":\"hi\"}");
  });
  EXPECT_EQ(calls, 1);
}

// ------------------------------------------------------------------------------ event types

TEST(BusTypeTest, RegistrationIsIdempotentAndReadable) {
  TestBus bus;
  ASSERT_TRUE(bus.ok());
  auto a = bus->register_type("chat.message.created", 2, Classification::kRestricted);
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  auto b = bus->register_type("chat.message.deleted");
  ASSERT_TRUE(b.ok());
  EXPECT_NE(a.value(), b.value());
  auto again = bus->register_type("chat.message.created", 2, Classification::kRestricted);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again.value(), a.value());
  EXPECT_EQ(bus->find_type("chat.message.created").value(), a.value());
  auto info = bus->type_info(a.value());
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->name, "chat.message.created");
  EXPECT_EQ(info->schema_version, 2);
  EXPECT_EQ(info->classification, Classification::kRestricted);
  EXPECT_EQ(bus->types().size(), 2u);
  // Visible through another mapping too.
  auto other = Bus::open(bus.name());
  ASSERT_TRUE(other.ok());
  EXPECT_EQ((*other)->find_type("chat.message.deleted").value(), b.value());
}

TEST(BusTypeTest, RefusesBadTypesAndUnknownIds) {
  TestBus bus;
  ASSERT_TRUE(bus.ok());
  expect_status(bus->register_type("Chat.x").status(), Code::kInvalidArgument, "'Chat'");
  expect_status(bus->register_type("chat.x", 0).status(), Code::kInvalidArgument, "schema");
  expect_status(bus->find_type("chat.nothing").status(), Code::kUnknownEventType, "chat.nothing");
  expect_status(bus->type_info(0).status(), Code::kUnknownEventType);
  expect_status(bus->type_info(33).status(), Code::kUnknownEventType, "out of range");
  expect_status(bus->type_info(5).status(), Code::kUnknownEventType, "not registered");
}

TEST(BusTypeTest, TypeTableFull) {
  BusOptions o = small_options();
  o.max_types = 2;
  TestBus bus(o);
  ASSERT_TRUE(bus.ok());
  auto a = bus->register_type("a.one");
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(bus->register_type("a.two").ok());
  expect_status(bus->register_type("a.three").status(), Code::kResourceExhausted, "full");
  auto p = bus->producer("a");
  ASSERT_TRUE(p.ok());
  expect_status((*p)->resolve("a.four").status(), Code::kResourceExhausted, "full");
  auto again = bus->register_type("a.one");
  ASSERT_TRUE(again.ok()) << "an existing type resolves even when the table is full";
  EXPECT_EQ(again.value(), a.value());
}

// ------------------------------------------------------------------------------ consumers

TEST(BusConsumerTest, AttachingTheSameNameTwiceInOneProcessIsRefusedWhileTheFirstLives) {
  TestBus bus;
  ASSERT_TRUE(bus.ok());
  auto first = bus->consumer("worker");
  ASSERT_TRUE(first.ok()) << first.status().to_string();
  auto second = bus->consumer("worker");
  ASSERT_FALSE(second.ok());
  expect_status(second.status(), Code::kUnavailable, std::to_string(::getpid()));
  EXPECT_TRUE(bus->consumer("other").ok()) << "other names are independent";
  const std::uint32_t index = (*first)->index();
  first.value().reset();
  auto third = bus->consumer("worker");
  ASSERT_TRUE(third.ok()) << third.status().to_string();
  EXPECT_EQ((*third)->index(), index) << "the durable consumer keeps its index";
}

TEST(BusConsumerTest, RefusesBadConsumerNamesAndPatterns) {
  TestBus bus;
  ASSERT_TRUE(bus.ok());
  expect_status(bus->consumer("bad name").status(), Code::kInvalidArgument, "' '");
  Bus::ConsumerOptions o;
  o.filter = "chat.>.x";
  expect_status(bus->consumer("audit", o).status(), Code::kInvalidArgument, "'>'");
  EXPECT_TRUE(bus->consumers().empty()) << "refusals register nothing";
}

TEST(BusConsumerTest, ConsumerRegistryFull) {
  TestBus bus;  // 8 consumers
  ASSERT_TRUE(bus.ok());
  std::vector<std::unique_ptr<Consumer>> held;
  for (int i = 0; i < 8; ++i) {
    auto c = bus->consumer(tag("c", i));
    ASSERT_TRUE(c.ok()) << i;
    held.push_back(std::move(c.value()));
  }
  expect_status(bus->consumer("c8").status(), Code::kResourceExhausted, "full");
}

TEST(BusConsumerTest, FilterDeliversOnlyMatchingEventNames) {
  TestBus bus;
  ASSERT_TRUE(bus.ok());
  Bus::ConsumerOptions o;
  o.filter = "chat.>";
  auto consumer = bus->consumer("chat-audit", o);
  ASSERT_TRUE(consumer.ok());
  auto chat = bus->producer("chat");
  auto sales = bus->producer("sales");
  ASSERT_TRUE(chat.ok() && sales.ok());
  auto created = (*chat)->resolve("chat.message.created");
  auto lead = (*sales)->resolve("sales.lead.created");
  ASSERT_TRUE(created.ok() && lead.ok());
  ASSERT_EQ((*sales)->publish(lead.value(), "k", "lead"), core::PublishResult::kOk);
  ASSERT_EQ((*chat)->publish(created.value(), "k", "chat"), core::PublishResult::kOk);
  EXPECT_EQ(drain_payloads(**consumer), std::vector<std::string>{"chat"});
  std::uint64_t filtered = 0;
  for (std::uint32_t p = 0; p < bus->ring().config().partitions; ++p)
    filtered += bus->ring().cursor((*consumer)->index(), p).filtered.load();
  EXPECT_EQ(filtered, 1u);
  auto infos = bus->consumers();
  ASSERT_EQ(infos.size(), 1u);
  EXPECT_EQ(infos[0].filter, "chat.>");
  EXPECT_EQ(infos[0].name, "chat-audit");
  EXPECT_TRUE(infos[0].attached);
  EXPECT_TRUE(infos[0].alive);
}

TEST(BusConsumerTest, RemoveConsumerIsRefusedWhileAttachedAndForgetsItAfter) {
  TestBus bus;
  ASSERT_TRUE(bus.ok());
  auto p = bus->producer("chat");
  ASSERT_TRUE(p.ok());
  auto type = (*p)->resolve("chat.message.created");
  ASSERT_TRUE(type.ok());
  auto c = bus->consumer("worker");
  ASSERT_TRUE(c.ok());
  for (int i = 0; i < 3; ++i)
    ASSERT_EQ((*p)->publish(type.value(), "k", tag("e", i)), core::PublishResult::kOk);
  EXPECT_EQ(drain_payloads(**c).size(), 3u);
  expect_status(bus->remove_consumer("worker"), Code::kUnavailable, "attached");
  expect_status(bus->remove_consumer("nobody"), Code::kNotFound, "'nobody'");
  c.value().reset();
  EXPECT_TRUE(bus->remove_consumer("worker").is_ok());
  EXPECT_TRUE(bus->consumers().empty());
  expect_status(bus->remove_consumer("worker"), Code::kNotFound);
  // A consumer created again under that name is new: it starts at the earliest event.
  auto fresh = bus->consumer("worker");
  ASSERT_TRUE(fresh.ok());
  EXPECT_EQ(drain_payloads(**fresh).size(), 3u);
}

}  // namespace
}  // namespace evring
