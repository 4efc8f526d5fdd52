/* sink: the Kafka producer side. Idempotent producer (acks=all, ordered,
 * no duplicates from retries); every record carries an opaque token that
 * comes back in the delivery report, which the caller turns into an ack in
 * offsets.c. Records go to the de-identified topic or the dead-letter topic.
 * Its configuration is KN_CLIENT_PRODUCER's (kafka_conf.h). */
#ifndef KN_SINK_H
#define KN_SINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "config.h"

struct kn_sink;

/* Delivery report: err is 0 on success, else a negative errno; reason is
 * librdkafka's text (no payload, no key material). */
typedef void(kn_sink_dr_cb)(void *opaque, uint64_t token, int err, const char *reason);

int kn_sink_new(const struct kn_config *c, kn_sink_dr_cb *cb, void *opaque, struct kn_sink **out,
		char *errstr, size_t errstr_size);
/* Frees at once: records still queued are dropped, so flush first (they
 * stay unacknowledged, and their input is redone). Accepts NULL. */
void kn_sink_destroy(struct kn_sink *s);

/* Queues a de-identified record with Kafka timestamp ts_ms (its time
 * bucket). Returns 0, -EAGAIN when the local queue is full (serve
 * kn_sink_poll and retry), or -EIO (fatal; see kn_sink_error). */
int kn_sink_produce(struct kn_sink *s, const void *key, size_t key_len, const void *val,
		    size_t val_len, int64_t ts_ms, uint64_t token);

struct kn_dead_letter {
	const char *reason, *detail;
	const char *src_topic;
	int32_t src_partition;
	int64_t src_offset;
	int32_t schema_id;   /* -1: unknown */
	const void *payload; /* NULL unless dead_letter.include_payload */
	size_t payload_len;
};

/* The dead-letter headers of dl (caller owns them, or passes them on to
 * librdkafka with the record). */
rd_kafka_headers_t *kn_dead_letter_headers(const struct kn_dead_letter *dl);

/* Queues a dead-letter record (headers kanon.reason, kanon.detail,
 * kanon.source.topic, kanon.source.partition, kanon.source.offset,
 * kanon.schema_id). Same returns as kn_sink_produce. */
int kn_sink_dead_letter(struct kn_sink *s, const struct kn_dead_letter *dl, uint64_t token);

/* Serves delivery reports for at most timeout_ms. */
void kn_sink_poll(struct kn_sink *s, int timeout_ms);
/* Waits until all queued records are delivered, until `until` (monotonic
 * ms) or the stop's drain deadline. Returns 0, or -ETIMEDOUT / -ECANCELED
 * with records still queued (kn_kafka_flush). */
int kn_sink_flush(struct kn_sink *s, int64_t until);
/* Non-NULL after a fatal producer error: a description. */
const char *kn_sink_error(const struct kn_sink *s);
int kn_sink_queued(const struct kn_sink *s);

#endif
