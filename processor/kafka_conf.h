/* kafka_conf: builds librdkafka configurations from kanon's config: the
 * brokers, the pass-through properties (kafka.consumer.* / kafka.producer.*),
 * a log callback that routes librdkafka's logs into log.c, and the one
 * consume helper both run loops use. */
#ifndef KN_KAFKA_CONF_H
#define KN_KAFKA_CONF_H

#include <librdkafka/rdkafka.h>

#include "config.h"

/* Returns a new conf (caller owns it), or NULL with errstr naming the
 * property librdkafka refused. props/n are applied last, so they win. */
rd_kafka_conf_t *kn_kafka_conf_new(const struct kn_config *c, const struct kn_kv *props, int n,
				   char *errstr, size_t errstr_size);

/* Sets one property; NULL-safe message on failure. Returns 0 or -EINVAL. */
int kn_kafka_conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *errstr,
		      size_t errstr_size);

/* Total consumer lag (messages) from a librdkafka statistics JSON document:
 * the sum of every assigned partition's "consumer_lag" (unknown ones, -1,
 * are skipped). Returns -1 when the document has none. */
int64_t kn_kafka_stats_lag(const char *json, size_t len);

/* Waits at most timeout_ms for one message, then takes whatever else is
 * already fetched, up to max in all, without waiting again. librdkafka's
 * consume_batch waits until the batch is *full* or the timeout passes, so
 * at moderate rates every batch would add up to timeout_ms of latency;
 * under load the queue is full anyway and batches still come out whole.
 * Returns the count (0: nothing arrived). */
ssize_t kn_kafka_consume_ready(rd_kafka_queue_t *q, int timeout_ms, rd_kafka_message_t **msgs,
			       size_t max);

#endif
