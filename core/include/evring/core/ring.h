#pragma once
// The partitioned multi-producer broadcast ring, over a memory region handed to it.
//
// Thread safety:
//  - RingRegion is a view; copying it is free; all its methods may be called from any thread.
//  - RingProducer: one per thread. Any number of RingProducers, in any number of processes,
//    may publish into the same partitions concurrently (lock-free claim by CAS), unless one
//    publishes exclusively (set_exclusive): then it alone claims there, with plain stores. A
//    producer alone on a partition is biased to it and claims with plain stores too, until
//    another producer revokes the bias, waiting for at most the holder's publish in progress.
//  - RingConsumer: one per thread; each consumer index belongs to exactly one RingConsumer at a
//    time (the shm registry enforces it). Consumers never write anything a producer writes.
//
// Ordering guarantee: events of one partition are delivered to every consumer in sequence
// order; the entity key picks the partition, so events of one entity arrive in publish order.
// Nothing is promised across partitions.
//
// Hot path (try_publish, try_claim/commit, poll): no exceptions, no allocation, no strings.
//
// The pieces: ring_region.h (the region, its configuration), producer.h, consumer.h.
#include "evring/core/consumer.h"  // IWYU pragma: export
#include "evring/core/producer.h"  // IWYU pragma: export
#include "evring/core/ring_region.h"  // IWYU pragma: export
