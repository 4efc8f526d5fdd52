/* pipeline: input messages through every stage, in three steps:
 *
 *   decode:      unframe -> decode -> validate
 *   admit:       policy admission (consent, minors) -> erasure requests
 *   deidentify:  pseudonymize -> generalize -> policy finish -> encode
 *
 * It owns no I/O: the Kafka run loop (engine/run.c) and the file mode
 * (filemode.c) all call it, so the same bytes give the same output either
 * way. A message becomes one encoded DeidEvent, a dead-letter verdict with a
 * reason, or a policy drop with a reason; nothing is silently lost. No
 * allocation per message.
 *
 * Two ways in: one message at a time (kn_pipeline_process), or a whole batch
 * one step at a time (kn_pipeline_decode/admit/deidentify on a kn_batch).
 * The batch form exists so that a batch has a moment when it has *finished*
 * a step: the run loops mark those moments with probes and stage latency
 * histograms. Both forms run the same per-record code. */
#ifndef KN_PIPELINE_H
#define KN_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "event.h"
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

/* A record on its way through a batch. */
enum kn_rec_state {
	KN_REC_LIVE,	/* still going */
	KN_REC_DEAD,	/* dead letter: v.reason, v.detail */
	KN_REC_DROPPED, /* withheld by the policy: v.drop */
	KN_REC_OUT,	/* encoded: arena[out_off .. out_off + out_len) */
};

struct kn_rec {
	/* Set by the caller. msg is borrowed: it must live until the batch
	 * is done (the decoded event points into it). */
	const uint8_t *msg;
	size_t len;
	int expected_type; /* log type of the topic, -1: any */
	int64_t ref_ms;	   /* the message's Kafka timestamp */
	/* Set by the pipeline. */
	enum kn_rec_state state;
	struct kn_verdict v;
	uint32_t out_off, out_len; /* framed DeidEvent in the batch arena */
	int64_t out_ts;		   /* its Kafka timestamp: the time bucket, never the
				    * processing time (which would undo the bucket) */
	uint8_t key_len;	   /* record key (kn_deid_key); 0: none */
	char key[KN_PID_HEX_LEN];
	bool minor;
	const struct kn_schema_entry *e;
	struct kn_event ev; /* the decoded input (views into msg) */
};

struct kn_batch {
	struct kn_rec *rec; /* n used of cap */
	int n, cap;
	uint8_t *arena; /* encoded outputs */
	size_t arena_cap;
	struct kn_deid *deid; /* per record when kept (aggregation), else NULL */
};

/* A batch of up to cap records; keep_deid keeps each record's kn_deid for
 * the caller (the aggregator reads them). NULL when out of memory. */
struct kn_batch *kn_batch_new(int cap, bool keep_deid);
void kn_batch_destroy(struct kn_batch *b);

/* The three steps, in this order, over rec[0..n). Each returns how many
 * records are still live (decode, admit) or were encoded (deidentify). */
int kn_pipeline_decode(struct kn_pipeline *p, struct kn_batch *b);
int kn_pipeline_admit(struct kn_pipeline *p, struct kn_batch *b);
int kn_pipeline_deidentify(struct kn_pipeline *p, struct kn_batch *b);

/* The most recent one-message result (valid until the next call). */
const struct kn_deid *kn_pipeline_last(const struct kn_pipeline *p);
/* The decoded input of the most recent one-message call (string views into it). */
const struct kn_event *kn_pipeline_last_event(const struct kn_pipeline *p);
const struct kn_pipeline_stats *kn_pipeline_stats(const struct kn_pipeline *p);
/* to += from, counter by counter (the run loop's workers each count their own). */
void kn_pipeline_stats_add(struct kn_pipeline_stats *to, const struct kn_pipeline_stats *from);
const struct kn_policy_stats *kn_pipeline_policy_stats(const struct kn_pipeline *p);

#endif
