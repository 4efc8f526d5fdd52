/* kafka_rd: the librdkafka side of the transport, for processor/io/ (and
 * for programs that are librdkafka programs on purpose: bench/kn_copy.c,
 * kanon's client settings without kanon; tests of the configurations).
 * Nothing else includes it. */
#ifndef KN_KAFKA_RD_H
#define KN_KAFKA_RD_H

#include <librdkafka/rdkafka.h>
#include <sys/types.h>

#include "kafka.h"

/* The configuration of one of kanon's clients (kafka.h). group is the
 * consumer group of consumer roles (NULL: kafka.group_id). Returns a new
 * conf (caller owns it), or NULL with errstr naming the client and the
 * property librdkafka refused. */
rd_kafka_conf_t *kn_kafka_client_conf(const struct kn_config *c, enum kn_client role,
				      const char *group, char *errstr, size_t errstr_size);

/* Sets one property; NULL-safe message on failure. Returns 0 or -EINVAL. */
int kn_kafka_conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *errstr,
		      size_t errstr_size);
/* Sets name, value pairs (NULL-terminated list; NULL: none). */
int kn_kafka_conf_set_pairs(rd_kafka_conf_t *conf, const char *const *kv, char *errstr,
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

/* The librdkafka handle under a consumer (producer.c: the group metadata
 * of send_offsets_to_transaction). */
struct kn_consumer;
rd_kafka_t *kn_consumer_handle(struct kn_consumer *k);
/* The librdkafka handle under a producer (consumer.c: the queue of delivery
 * reports it serves while waiting for input). */
struct kn_producer;
rd_kafka_t *kn_producer_handle(struct kn_producer *p);

/* ---- bounded waits ---- */

/* Waits until the producer's queue is empty (delivery reports served), until
 * `until`, or until the stop's drain deadline. Returns 0 when empty,
 * -ETIMEDOUT or -ECANCELED (the stop cut it) with records still queued. */
int kn_kafka_flush(rd_kafka_t *rk, int64_t until);

/* Commits offsets (consumer; NULL: the current positions) and waits for the
 * broker's answer, bounded like kn_kafka_flush. Returns 0, -EIO (refused:
 * why says why), -ETIMEDOUT or -ECANCELED (no answer in time: the commit
 * may or may not have landed). */
int kn_kafka_commit(rd_kafka_t *rk, const rd_kafka_topic_partition_list_t *offsets, int64_t until,
		    char *why, size_t why_size);

/* Destroys a client (rd_kafka_destroy_flags), waiting for it until `until`
 * (0: no deadline of its own) or the stop deadline: past them it walks away
 * and the destruction goes on while the process exits (librdkafka can wait
 * long for a dead broker). Returns true when it finished. Accepts NULL. */
bool kn_kafka_destroy(rd_kafka_t *rk, int flags, int64_t until);

/* Closes a consumer and destroys it (bounded: kn_kafka_destroy). With leave
 * it first leaves the group (rebalance callbacks run here), but only when
 * at least KN_STOP_LEAVE_MS remain before both until and the stop deadline:
 * a started leave cannot be cut short. Without it (or without the time) the
 * group learns of the departure only after session.timeout.ms. until 0: no
 * deadline of its own. Returns true when it left. */
bool kn_kafka_close(rd_kafka_t *rk, bool leave, int64_t until);

/* Metadata of one topic (only != NULL) or all, bounded like kn_stop_wait.
 * Returns 0 with *md set (rd_kafka_metadata_destroy it), or an error code
 * (RD_KAFKA_RESP_ERR__TIMED_OUT when nothing answered in time). */
rd_kafka_resp_err_t kn_kafka_metadata(rd_kafka_t *rk, rd_kafka_topic_t *only,
				      const struct rd_kafka_metadata **md, int64_t until);
/* rd_kafka_committed (offsets and metadata into l), bounded the same way. */
rd_kafka_resp_err_t kn_kafka_committed(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *l,
				       int64_t until);

/* Partitions of topic from the cluster's metadata (bounded like
 * kn_kafka_metadata): the count, or -ENOENT (no such topic), -ETIMEDOUT
 * (no answer), -ECANCELED (a stop came first), -EIO (another error, named
 * in errstr). */
int kn_kafka_partition_count(rd_kafka_t *rk, const char *topic, int64_t until, char *errstr,
			     size_t errsz);

#endif
