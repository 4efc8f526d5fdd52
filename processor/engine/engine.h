/* engine: the run loop's insides, shared by run.c (the loop) and its two
 * commit strategies, alo.c (at-least-once) and eos.c (exactly-once).
 *
 * The loop owns the batch: it polls up to run.batch_size messages, asks the
 * strategy which records belong to the batch, and splits them into one
 * share per worker by partition. The workers run decode, policy and
 * de-identification over their shares at once (workers.h), one step at a
 * time; then, share by share on the loop's thread, the strategy hands the
 * events to the aggregates (when there are any) and writes the results. After
 * every batch the strategy's tick commits when due. Every partition's
 * records stay in one share in consumed order, so the strategies see each
 * partition in order, as with one worker. Only the pipeline steps run on
 * other threads; the strategies' callbacks (delivery reports, rebalances)
 * are served from inside the transport's poll calls on the loop's thread. */
#ifndef KN_ENGINE_H
#define KN_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "aggregate.h"
#include "consumer.h"
#include "metrics.h"
#include "pipeline.h"
#include "producer.h"
#include "run.h"
#include "trace.h"

struct kn_engine;

/* A commit strategy. Hooks return 0 or a negative errno with e->err set
 * (-ECANCELED: a stop cut the work short; what was not committed is redone
 * by the next run). */
struct kn_mode {
	const char *name;
	/* Creates e->in, e->out and the topic handles, and restores what the
	 * strategy keeps; may create e->agg. -ECANCELED: stopped while starting. */
	int (*start)(struct kn_engine *e, char *errstr, size_t errsz);
	/* Whether record m is processed; *part: its input partition index. */
	bool (*accept)(struct kn_engine *e, const struct kn_msg *m, int *part);
	/* With aggregates: hands the share's de-identified events on to them
	 * (before emit); *added counts those taken. NULL: none. */
	int (*aggregate)(struct kn_engine *e, uint32_t *added);
	/* Writes the batch's results (e->b, in consumed order); tag is the
	 * batch's trace tag; *queued counts records written. */
	int (*emit)(struct kn_engine *e, uint32_t tag, uint32_t *queued);
	/* An end-of-partition mark, after the batch that came before it. */
	void (*eof)(struct kn_engine *e, const struct kn_msg *m);
	/* After every batch: commits when due, reports a failure. */
	int (*tick)(struct kn_engine *e);
	/* --until-eof: everything assigned is read and done. */
	bool (*drained)(struct kn_engine *e);
	/* --until-eof: no partition for too long (e->err says why). */
	bool (*gave_up)(struct kn_engine *e);
	/* The way out after the loop ended with err: commit what is done
	 * (drained: the input is complete). Returns the run's result. */
	int (*finish)(struct kn_engine *e, int err, bool drained);
	/* The strategy's part of the metrics snapshot: assignment, lag,
	 * progress, health. */
	void (*health)(struct kn_engine *e, struct kn_metrics_snapshot *s);
	/* Logs its counters at the end. */
	void (*log_stats)(struct kn_engine *e, char *buf, size_t size);
	/* Frees the strategy's state (clients are closed by the loop). */
	void (*destroy)(struct kn_engine *e);
};

extern const struct kn_mode kn_mode_alo, kn_mode_eos;

/* --until-eof and no partition for run.assignment_wait (a gave_up hook):
 * says why in e->err. */
bool kn_engine_unassigned_too_long(struct kn_engine *e);

/* One pipeline worker (workers.h): its pipeline and its share of a batch,
 * every record of a partition in the same share, in consumed order. */
struct kn_worker {
	struct kn_pipeline *pipe; /* worker 0's is the stack's */
	struct kn_batch *b;
	int *msg_of, *part_of; /* as in struct kn_engine */
	int count;	       /* what the last step returned */
};

struct kn_engine {
	const struct kn_config *cfg;
	const struct kn_run_opts *o;
	const struct kn_mode *mode;
	void *m; /* the strategy's state */
	struct kn_stack st;
	struct kn_consumer *in;
	struct kn_producer *out;
	int t_out, t_dlq; /* producer topic handles */
	bool leave;	  /* leave the consumer group at the close */
	struct kn_metrics *metrics;
	struct kn_metrics_snapshot snap;
	struct kn_trace *trace;
	struct kn_msg *msgs; /* as consumed */
	struct kn_workers *pool;
	struct kn_worker *wk;
	int n_wk;
	/* The share being aggregated and emitted (one worker's, in turn): */
	struct kn_batch *b; /* the records, after the pipeline */
	int *msg_of;	    /* b->rec[i] is msgs[msg_of[i]] */
	int *part_of;	    /* and has this input partition index */
	uint64_t produced, dead, dropped, not_aggregated;
	int64_t last_progress;	     /* mono ms of the last delivery or commit */
	struct kn_registry *reg;     /* schema registry (sreg.h); NULL: static ids */
	int64_t registry_down_since; /* mono ms; 0: answering */
	char err[512];
};

/* Record i of the current share, consumed as this message. */
static inline const struct kn_msg *kn_engine_msg(const struct kn_engine *e, int i)
{
	return &e->msgs[e->msg_of[i]];
}

/* Writes the result of record i of the current share (its de-identified
 * event, or its dead letter) with token, waiting for queue space up to the
 * stop's drain deadline.
 * Returns 0, -ECANCELED (not queued) or the producer's error. */
int kn_engine_send(struct kn_engine *e, int i, uint64_t token);

#endif
