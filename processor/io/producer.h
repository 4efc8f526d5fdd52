/* producer: writing Kafka, in kanon's terms.
 *
 * Every producer is idempotent (acks=all, ordered, no duplicates from
 * retries). Each record carries an opaque token that comes back in its
 * delivery report (the at-least-once loop turns it into an ack in
 * engine/offsets.c). Dead letters are records whose headers say why
 * (kanon.reason, kanon.detail, kanon.source.topic, kanon.source.partition,
 * kanon.source.offset, kanon.schema_id) and whose value is the input only
 * with dead_letter.include_payload.
 *
 * Transactions (KN_CLIENT_TX_PRODUCER): kn_producer_txn runs one call and
 * waits out an outage (retrying what the broker calls retriable, in slices,
 * so a stop is seen) until it succeeds, fails for good, or a stop's drain
 * deadline passes. librdkafka does not always keep the timeout a call is
 * given (send_offsets_to_transaction waits for as long as socket.timeout.ms
 * when the coordinator does not answer, librdkafka#5456), so each call runs
 * on a thread of its own; one that is walked away from goes on inside
 * librdkafka, and the producer is then never freed (the process exits
 * first): kn_producer_orphaned says so, and whatever its delivery callback
 * uses must stay alive too.
 *
 * Errors are translated here: KN_KAFKA_FENCED when another producer took
 * the transactional.id (or, in KN_TXN_SEND_OFFSETS, another group member
 * the group.instance.id), KN_KAFKA_TXN_EXPIRED when the broker aborted a
 * transaction that outlived transaction.timeout.ms (told apart from fencing
 * by how long ours was open: the broker reports both alike), -EIO for the
 * rest, with kn_producer_error saying why. */
#ifndef KN_PRODUCER_H
#define KN_PRODUCER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "kafka.h"

struct kn_producer;
struct kn_consumer;

/* A delivery report. err is 0 or -EIO; reason is librdkafka's text (no
 * payload, no key material); payload and key are the record's, for a
 * caller that produces it again. */
struct kn_delivery {
	uint64_t token;
	int err;
	const char *reason;
	const void *payload, *key;
	size_t len, key_len;
};
typedef void(kn_delivery_cb)(void *opaque, const struct kn_delivery *d);

struct kn_producer_opts {
	enum kn_client role;
	kn_delivery_cb *on_delivery; /* may be NULL */
	void *opaque;
	const char *const *extra; /* name, value pairs over the role's (NULL-terminated) */
};

int kn_producer_new(const struct kn_config *c, const struct kn_producer_opts *o,
		    struct kn_producer **out, char *errstr, size_t errsz);
/* Frees, waiting for librdkafka until `until` (0: no deadline of its own) or
 * the stop deadline; records still queued are dropped, so flush first
 * (they stay unacknowledged). An orphaned producer is left to the process's
 * exit. Accepts NULL. */
void kn_producer_destroy(struct kn_producer *p, int64_t until);

/* A handle for topic (>= 0), or -ENOMEM. */
int kn_producer_topic(struct kn_producer *p, const char *topic);

struct kn_dead_letter {
	const char *reason, *detail;
	const char *src_topic;
	int32_t src_partition;
	int64_t src_offset;
	int32_t schema_id; /* -1: unknown */
};

/* Queues a record (copied) with Kafka timestamp ts_ms (0: now), as a dead
 * letter with dl's headers when dl is not NULL. Returns 0, -EAGAIN when the
 * local queue is full (serve kn_producer_poll and retry), or -EIO,
 * KN_KAFKA_FENCED, KN_KAFKA_TXN_EXPIRED (kn_producer_error says why). */
int kn_producer_send(struct kn_producer *p, int topic, const void *key, size_t key_len,
		     const void *val, size_t val_len, int64_t ts_ms,
		     const struct kn_dead_letter *dl, uint64_t token);
/* kn_producer_send, waiting for queue space as long as the broker takes, but
 * not past a stop's drain deadline: then -ECANCELED (the record is not
 * queued). */
int kn_producer_send_wait(struct kn_producer *p, int topic, const void *key, size_t key_len,
			  const void *val, size_t val_len, int64_t ts_ms,
			  const struct kn_dead_letter *dl, uint64_t token);

/* kn_producer_send_wait into the given partition (not the partitioner's),
 * timestamped now. */
int kn_producer_send_to(struct kn_producer *p, int topic, int32_t partition, const void *key,
			size_t key_len, const void *val, size_t val_len, uint64_t token);

/* Serves delivery reports for at most timeout_ms. */
void kn_producer_poll(struct kn_producer *p, int timeout_ms);
/* Waits until all queued records are delivered, until `until` or the stop's
 * drain deadline. Returns 0, or -ETIMEDOUT / -ECANCELED with records still
 * queued. */
int kn_producer_flush(struct kn_producer *p, int64_t until);
int kn_producer_queued(const struct kn_producer *p);
/* Non-NULL after a failure that ends the producer's usefulness (a fatal
 * error, a refused record): a description. */
const char *kn_producer_error(const struct kn_producer *p);
/* Whether this producer was fenced (see the file comment), whichever call
 * met it first (a delivery report, the error callback, a transaction call
 * that then failed otherwise). */
bool kn_producer_fenced(const struct kn_producer *p);

/* ---- transactions ---- */

enum kn_txn_op {
	KN_TXN_INIT, /* fences older producers with the id, aborts what they left open */
	KN_TXN_BEGIN,
	KN_TXN_SEND_OFFSETS, /* the consumer group's positions, with their metadata */
	KN_TXN_COMMIT,
	KN_TXN_ABORT,
};

/* Runs op (see the file comment). For KN_TXN_SEND_OFFSETS: offs[0..n) and
 * the consumer whose group they belong to. Returns 0, -ECANCELED (a stop
 * came first, or a call was walked away from), KN_KAFKA_TXN_ABORTED (an
 * abortable error: aborted, the producer goes on; rewind to what was
 * committed), KN_KAFKA_FENCED, KN_KAFKA_TXN_EXPIRED or -EIO; then
 * kn_producer_error says why, and a transaction that needs an abort was
 * aborted. */
int kn_producer_txn(struct kn_producer *p, enum kn_txn_op op, const struct kn_tp *offs, int n,
		    struct kn_consumer *group);
/* True once a transactional call was walked away from (see above). */
bool kn_producer_orphaned(const struct kn_producer *p);

/* ---- topics ---- */

struct kn_new_topic {
	const char *name;
	int partitions;
	const char *const *config; /* name, value pairs (NULL-terminated; NULL: none) */
};

/* Creates the topics that do not exist yet (broker's replication factor);
 * existing ones are left as they are. It looks at the whole cluster's
 * metadata, never at one missing topic's: naming it in a metadata request
 * would have a broker with auto.create.topics.enable create it with its
 * defaults. Returns 0, or -EIO / -ETIMEDOUT / -ECANCELED with errstr set. */
int kn_producer_ensure_topics(struct kn_producer *p, const struct kn_new_topic *t, int n,
			      int64_t until, char *errstr, size_t errsz);

/* What the cluster says about a topic. */
struct kn_topic_info {
	bool exists;
	int partitions;
	char cleanup_policy[64];
	int64_t retention_ms; /* -1: forever */
};

/* Describes topic (metadata and DescribeConfigs). Returns 0 (also when it
 * does not exist: info->exists false), or -EIO / -ETIMEDOUT / -ECANCELED
 * with errstr set. */
int kn_producer_describe_topic(struct kn_producer *p, const char *topic, struct kn_topic_info *info,
			       int64_t until, char *errstr, size_t errsz);

#endif
