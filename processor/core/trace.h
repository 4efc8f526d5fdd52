/* trace: where a running kanon's time goes, seen two ways.
 *
 * 1. USDT probes (provider "kanon", sys/sdt.h) at every stage boundary of a
 *    batch. Each fires once per batch, never per record, with three
 *    arguments: the batch id (1, 2, ... per process), a record count, and
 *    the earliest Kafka message timestamp of the batch (ms, 0 if unknown):
 *
 *      batch_consumed    the batch is in hand (count: messages)
 *      batch_decoded     unframed, decoded, validated (count: still live)
 *      batch_policy      consent, minors, erasures applied (count: admitted)
 *      batch_deid        pseudonymized, generalized, encoded (count: out)
 *      batch_aggregated  added to the open windows (exactly-once mode)
 *      batch_produced    every output handed to the producer
 *      batch_acked       the last delivery report of the batch arrived
 *
 *    and once per transaction (exactly-once mode), with a cycle id in place
 *    of the batch id and the records in the transaction as the count:
 *
 *      txn_begin         closing due windows starts
 *      windows_emitted   due windows closed and their rows produced
 *      txn_committed     offsets sent and the transaction committed
 *
 *    Every probe has a semaphore: with no tracer attached it costs one
 *    predictable branch per batch. `kanon lat` (bpf/) attaches to them.
 *
 * 2. The same intervals measured in-process into log2 histograms, which
 *    the metrics endpoint exports, so the numbers exist without root.
 *
 * One kn_trace per run loop, used from that loop's thread only. */
#ifndef KN_TRACE_H
#define KN_TRACE_H

#include <stdbool.h>
#include <stdint.h>

/* The interval that ends at a boundary; the probe of the same name marks
 * its end. */
enum kn_stage {
	KN_STAGE_CONSUME,   /* earliest Kafka timestamp -> batch in hand */
	KN_STAGE_DECODE,    /* -> batch_decoded */
	KN_STAGE_POLICY,    /* -> batch_policy */
	KN_STAGE_DEID,	    /* -> batch_deid */
	KN_STAGE_AGGREGATE, /* -> batch_aggregated */
	KN_STAGE_PRODUCE,   /* -> batch_produced */
	KN_STAGE_ACK,	    /* batch_produced -> batch_acked */
	KN_STAGE_WINDOW,    /* txn_begin -> windows_emitted */
	KN_STAGE_COMMIT,    /* windows_emitted -> txn_committed */
	KN_STAGES
};

const char *kn_stage_name(enum kn_stage s);

#define KN_LAT_BUCKETS 32 /* bucket b counts values < 2^b us; the last: the rest */

struct kn_hist {
	uint64_t bucket[KN_LAT_BUCKETS];
	uint64_t sum_us, count;
};

void kn_hist_add(struct kn_hist *h, int64_t us);

struct kn_trace_stats {
	struct kn_hist stage[KN_STAGES];
	struct kn_hist end_to_end; /* earliest Kafka timestamp -> batch acked */
	uint64_t batches;	   /* batches consumed (non-empty) */
	uint64_t batches_acked;
};

/* A batch (or, for the transaction stages, a commit cycle) in progress. */
struct kn_tspan {
	uint64_t id;
	uint32_t n;
	int64_t min_ts; /* ms; 0: unknown */
	int64_t t_ns;	/* monotonic time of the last boundary */
};

struct kn_trace;

struct kn_trace *kn_trace_new(void);
void kn_trace_destroy(struct kn_trace *t);
const struct kn_trace_stats *kn_trace_stats(const struct kn_trace *t);

/* A non-empty batch of n messages is in hand: assigns b's id, fires
 * batch_consumed, and starts counting its delivery reports. */
void kn_trace_begin(struct kn_trace *t, struct kn_tspan *b, uint32_t n, int64_t min_ts);
/* b finished the stage s (DECODE .. PRODUCE): fires its probe, records the
 * interval. */
void kn_trace_mark(struct kn_trace *t, struct kn_tspan *b, enum kn_stage s, uint32_t count);
/* After batch_produced: the batch is acked when `outstanding` delivery
 * reports tagged kn_trace_tag(b) have come back (counting those that came
 * back already; at once if 0). */
void kn_trace_await(struct kn_trace *t, const struct kn_tspan *b, uint32_t outstanding);
static inline uint32_t kn_trace_tag(const struct kn_tspan *b)
{
	return (uint32_t)b->id;
}
/* One successful delivery report of the batch tagged tag. */
void kn_trace_delivered(struct kn_trace *t, uint32_t tag);

/* Commit cycles (exactly-once mode): txn_begin, then windows_emitted with
 * the rows produced, then txn_committed. */
void kn_trace_txn_begin(struct kn_trace *t, struct kn_tspan *c, uint32_t records, int64_t min_ts);
void kn_trace_txn_mark(struct kn_trace *t, struct kn_tspan *c, enum kn_stage s, uint32_t count);

/* The commit cycle of an aggregation stage (engine/stage.c), from any
 * thread: stage_begin when it starts closing windows, stage_committed when
 * its transaction is committed, each with a process-wide cycle id, the
 * stage (KN_TRACE_BOUND, KN_TRACE_RELEASE) and a count (records read since
 * the last cycle; records written). */
enum {
	KN_TRACE_BOUND = 1,
	KN_TRACE_RELEASE = 2
};
void kn_trace_stage_begin(struct kn_tspan *c, int stage, uint32_t records);
void kn_trace_stage_end(const struct kn_tspan *c, int stage, uint32_t written);

#endif
