/* pipeline: one input message through every stage, in order:
 *
 *   unframe -> decode -> validate -> pseudonymize -> generalize -> encode
 *
 * It owns no I/O: the Kafka loop (run.c) and the file mode (filemode.c) both
 * call it, so the same bytes give the same output either way. A message
 * either becomes one encoded DeidEvent or a dead-letter verdict with a
 * reason; nothing is silently dropped. No allocation per message. */
#ifndef KN_PIPELINE_H
#define KN_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "encode.h"
#include "keys.h"
#include "policy.h"
#include "schema.h"
#include "validate.h"

struct kn_pipeline_stats {
	uint64_t in;
	uint64_t out;
	uint64_t dead[KN_DEAD_REASONS];
	uint64_t invalid_id[KN_ID_KINDS];  /* identifiers that did not normalize */
	uint64_t geo_withheld;		   /* coordinates dropped: no location consent */
	uint64_t dropped[KN_DROP_REASONS]; /* withheld from every output by the policy */
};

struct kn_verdict {
	bool dropped;		  /* by the policy: no output at all, not a dead letter */
	enum kn_drop_reason drop; /* when dropped */
	enum kn_dead_reason reason;
	const char *detail; /* static string */
	int32_t schema_id;  /* -1 when unknown */
};

struct kn_pipeline;

/* Borrows c, schemas and keys: they must outlive the pipeline. Loads the
 * policy's lexicons; returns NULL with errstr set on failure. */
struct kn_pipeline *kn_pipeline_new(const struct kn_config *c, const struct kn_schemas *schemas,
				    struct kn_keys *keys, char *errstr, size_t errstr_size);
void kn_pipeline_destroy(struct kn_pipeline *p);

struct kn_erasure;
/* Drops events of erased people from now on (e borrowed; NULL: none). */
void kn_pipeline_set_erasure(struct kn_pipeline *p, struct kn_erasure *e);

/* Processes one Confluent-framed message. expected_type is the log type of
 * the topic it came from (-1: any). ref_ms bounds future timestamps (the
 * message's Kafka timestamp). Returns the encoded length (> 0) written to
 * out (KN_FRAME_LEN + KN_DEID_MAX_BYTES bytes, framed), or 0 when the message
 * is dead-lettered or dropped by the policy (v says which and why). */
size_t kn_pipeline_process(struct kn_pipeline *p, const uint8_t *msg, size_t len, int expected_type,
			   int64_t ref_ms, uint8_t *out, struct kn_verdict *v);

/* The same for an unframed datum of a known schema (container files);
 * writes the unframed DeidEvent. */
size_t kn_pipeline_process_datum(struct kn_pipeline *p, const struct kn_schema_entry *e,
				 const uint8_t *datum, size_t len, int64_t ref_ms, uint8_t *out,
				 struct kn_verdict *v);

/* Kafka record key for a de-identified event: the most stable pseudonym it
 * has (user, device, cookie, phone, email), so one person's events share a
 * partition downstream. NULL with *len 0 when it has none. */
const char *kn_deid_key(const struct kn_deid *d, size_t *len);

/* The most recent successful result (valid until the next call). */
const struct kn_deid *kn_pipeline_last(const struct kn_pipeline *p);
/* The decoded input of the most recent message (string views into it). */
const struct kn_event *kn_pipeline_last_event(const struct kn_pipeline *p);
const struct kn_pipeline_stats *kn_pipeline_stats(const struct kn_pipeline *p);
const struct kn_policy_stats *kn_pipeline_policy_stats(const struct kn_pipeline *p);

#endif
