/* kafka: the Kafka transport as the rest of kanon sees it.
 *
 * processor/io/ is the only place that includes librdkafka: consumer.h
 * (reading), producer.h (writing, transactions, topic creation) and this
 * file (client configurations, the mock cluster). Their headers speak in
 * kanon's terms (struct kn_msg, struct kn_tp, negative errnos) and translate
 * librdkafka's errors where they happen.
 *
 * Configurations: every client kanon makes is one of enum kn_client, built
 * in three layers (kanon's defaults, then the operator's kafka.consumer.* /
 * kafka.producer.*, then what the delivery guarantee depends on, which wins)
 * by one function (kafka_rd.h), so `kanon check` can build them all and
 * refuse a bad property before anything connects. librdkafka's logs are
 * routed into log.c.
 *
 * Deadlines: every blocking call of the transport waits in slices and gives
 * up at its own deadline or at the stop's (stop.h), whichever comes first:
 * a broker that is frozen or gone delays a stop by no more than the stop
 * budget. Deadlines are monotonic ms (clock.h). */
#ifndef KN_KAFKA_H
#define KN_KAFKA_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

enum kn_client {
	KN_CLIENT_CONSUMER,	    /* at-least-once input (engine/alo.c) */
	KN_CLIENT_PRODUCER,	    /* at-least-once output (engine/alo.c) */
	KN_CLIENT_TX_CONSUMER,	    /* exactly-once input (engine/eos.c) */
	KN_CLIENT_TX_PRODUCER,	    /* exactly-once output, transactional (engine/eos.c) */
	KN_CLIENT_ERASURE_CONSUMER, /* deletion requests and erasure state (io/erasure.c) */
	KN_CLIENT_ERASURE_PRODUCER, /* erasure state records (io/erasure.c) */
	KN_CLIENT_GEN_PRODUCER,	    /* synthetic input (cmd/gen.c) */
	KN_CLIENT_READER,	    /* reading outputs back: the demo (read_committed) */
	KN_CLIENTS
};

/* Errors the transport names besides plain errnos. */
/* another producer took the transactional.id, or another group member the
 * group.instance.id */
#define KN_KAFKA_FENCED (-ESTALE)
#define KN_KAFKA_TXN_EXPIRED                                                                       \
	(-ETIME) /* the broker aborted a transaction that outlived
					  transaction.timeout.ms (an outage) */
/* An abortable transaction error (the group moved on and took the
 * partitions, say): the transaction was aborted and the producer is usable.
 * Go back to the committed offsets and carry on. */
#define KN_KAFKA_TXN_ABORTED (-ECONNABORTED)

/* Start positions for kn_consumer_assign, and "nothing committed". */
#define KN_OFFSET_BEGINNING (-2)
#define KN_OFFSET_END	    (-1)
#define KN_OFFSET_NONE	    (-1001)

/* A topic partition with a position: what is assigned, committed, revoked. */
struct kn_tp {
	const char *topic;
	int32_t partition;
	int64_t offset;	  /* next offset to read (or a KN_OFFSET_*) */
	const char *meta; /* commit metadata (NULL: none); see kn_consumer_committed */
	size_t meta_len;
};

/* Builds every client's configuration (librdkafka validates names, types
 * and ranges), and makes the clients `kanon run` would make, without a
 * broker, for the combinations librdkafka checks only then. Returns 0 or
 * -EINVAL with errstr set naming the client and the property. No network
 * I/O. */
int kn_kafka_check_conf(const struct kn_config *c, char *errstr, size_t errstr_size);

/* librdkafka's version ("2.0.2"). */
const char *kn_kafka_version(void);

/* ---- librdkafka's in-process mock cluster (the demo, fault tests) ---- */

struct kn_mock;

/* Starts a cluster of `brokers` brokers; *bootstraps (valid until
 * kn_mock_destroy) is its address. Returns 0 or -EINVAL with errstr set. */
int kn_mock_new(int brokers, struct kn_mock **out, const char **bootstraps, char *errstr,
		size_t errsz);
/* Creates a topic (the mock cluster has no CreateTopics of its own).
 * Returns 0 or -EIO. */
int kn_mock_topic(struct kn_mock *m, const char *topic, int partitions);
/* Messages in topic's partitions 0..partitions-1 (high minus low
 * watermark); -1 when a partition did not answer. */
int64_t kn_mock_count(struct kn_mock *m, const char *topic, int partitions);
void kn_mock_destroy(struct kn_mock *m);

#endif
