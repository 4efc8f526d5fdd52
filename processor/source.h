/* source: the Kafka consumer side. Subscribes to the configured input topics
 * in one consumer group, hands out batches of messages, and commits the
 * positions the caller says are safe. Auto-commit and auto offset store are
 * off: only offsets.c decides what is committed.
 *
 * Rebalances: before partitions are revoked the source calls the caller's
 * revoke hook (run.c flushes the producer and commits there), so no
 * acknowledged work is lost and no unacknowledged offset is committed. A
 * lost assignment (the group moved on while the broker was unreachable) is
 * not an error: the group assigns partitions again when the member rejoins.
 * Commits and the close are bounded (kafka_conf.h, stop.h). */
#ifndef KN_SOURCE_H
#define KN_SOURCE_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>

#include "config.h"
#include "offsets.h"

struct kn_source;

/* Called from inside kn_source_poll_batch (and the close) on revocation, with
 * the partitions about to go; lost: they already belong to another member,
 * so committing for them would fail. */
typedef void(kn_source_revoke_cb)(void *opaque, const rd_kafka_topic_partition_list_t *parts,
				  bool lost);

/* Creates the consumer and subscribes. Returns 0 or a negative errno with
 * errstr set (bad librdkafka property names the property). */
int kn_source_new(const struct kn_config *c, kn_source_revoke_cb *on_revoke, void *opaque,
		  struct kn_source **out, char *errstr, size_t errstr_size);
/* Closes the consumer and frees it; with leave it leaves the group first
 * when there is time for it before until (kn_kafka_close). Accepts NULL. */
void kn_source_destroy(struct kn_source *s, bool leave, int64_t until);

/* Fills msgs with up to max messages (waiting at most timeout_ms). Partition
 * EOF events and consumer errors are handled here and not returned. Returns
 * the count (0 on timeout); the caller destroys each message. */
int kn_source_poll_batch(struct kn_source *s, rd_kafka_message_t **msgs, int max, int timeout_ms);

/* Log type of the input topic a message came from. */
enum kn_event_type kn_source_topic_type(struct kn_source *s, rd_kafka_topic_t *rkt);

/* Commits positions. until 0: asynchronously (returns 0 or -EIO when the
 * request could not be made); else waits for the broker's answer until then
 * (monotonic ms) or the stop's drain deadline: 0, -EIO, -ETIMEDOUT or
 * -ECANCELED (kn_kafka_commit). */
int kn_source_commit(struct kn_source *s, const struct kn_commit *c, int n, int64_t until);

/* True when partitions are assigned and every one is at its end. */
bool kn_source_at_eof(const struct kn_source *s);
/* False after a fatal consumer error. */
bool kn_source_healthy(const struct kn_source *s);
int kn_source_assigned(const struct kn_source *s);
bool kn_source_ever_assigned(const struct kn_source *s);
/* Monotonic ms of the last commit the broker accepted (0: none yet). */
int64_t kn_source_last_commit(const struct kn_source *s);
/* Monotonic ms since which no partition is assigned (since creation, or
 * since the last one was revoked or lost); 0 while some are. */
int64_t kn_source_unassigned_since(const struct kn_source *s);
/* Why nothing is assigned, in words for an operator: the assignment was
 * taken away, the input topics are missing (asks the broker, at most 5 s),
 * no broker answers, or the group gives this member nothing. */
void kn_source_diagnose(struct kn_source *s, char *buf, size_t size);
/* Messages behind the partitions' ends, from librdkafka's statistics
 * (every 5 s); -1 until known. */
int64_t kn_source_lag(const struct kn_source *s);

#endif
