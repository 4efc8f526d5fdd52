/* source: the Kafka consumer side. Subscribes to the configured input topics
 * in one consumer group, hands out batches of messages, and commits the
 * positions the caller says are safe. Auto-commit and auto offset store are
 * off: only offsets.c decides what is committed.
 *
 * Rebalances: before partitions are revoked the source calls the caller's
 * revoke hook (run.c flushes the producer and commits there), so no
 * acknowledged work is lost and no unacknowledged offset is committed.
 * librdkafka errors are translated here and nowhere else. */
#ifndef KN_SOURCE_H
#define KN_SOURCE_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>

#include "config.h"
#include "offsets.h"

struct kn_source;

/* Called from inside kn_source_poll_batch on revocation, with the partitions
 * about to go. */
typedef void(kn_source_revoke_cb)(void *opaque, const rd_kafka_topic_partition_list_t *parts);

/* Creates the consumer and subscribes. Returns 0 or a negative errno with
 * errstr set (bad librdkafka property names the property). */
int kn_source_new(const struct kn_config *c, kn_source_revoke_cb *on_revoke, void *opaque,
		  struct kn_source **out, char *errstr, size_t errstr_size);
/* Closes the consumer (leaves the group) and frees it. Accepts NULL. */
void kn_source_destroy(struct kn_source *s);

/* Fills msgs with up to max messages (waiting at most timeout_ms). Partition
 * EOF events and consumer errors are handled here and not returned. Returns
 * the count (0 on timeout); the caller destroys each message. */
int kn_source_poll_batch(struct kn_source *s, rd_kafka_message_t **msgs, int max, int timeout_ms);

/* Log type of the input topic a message came from. */
enum kn_event_type kn_source_topic_type(struct kn_source *s, rd_kafka_topic_t *rkt);

/* Commits positions; sync waits for the broker. Returns 0 or -EIO. */
int kn_source_commit(struct kn_source *s, const struct kn_commit *c, int n, bool sync);

/* True when partitions are assigned and every one is at its end. */
bool kn_source_at_eof(const struct kn_source *s);
/* False after the group took the assignment away or a fatal error. */
bool kn_source_healthy(const struct kn_source *s);
int kn_source_assigned(const struct kn_source *s);
/* Messages behind the partitions' ends, from librdkafka's statistics
 * (every 5 s); -1 until known. */
int64_t kn_source_lag(const struct kn_source *s);

#endif
