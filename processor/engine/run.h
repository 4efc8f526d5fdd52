/* run: `kanon run`, the one Kafka loop: consume a batch, run it through
 * the pipeline (and, with aggregates, their contributions), write its results,
 * commit, again. What "commit" means is the loop's commit strategy:
 *
 * At-least-once (engine/alo.c; without aggregates): the consumer group
 * assigns partitions; an input offset is committed only after the record it
 * produced (de-identified or dead-letter) is acknowledged by the broker
 * (offsets.c). A delivery failure stops the loop without committing past
 * the failed record, so a restart redoes it.
 *
 * Exactly-once (engine/eos.c; with aggregates): one transaction at a time
 * holds the outputs of the records consumed since the last one, the
 * contributions and marks for the aggregation stages, and the input
 * positions with the restart state (eos.h). The aggregates themselves are
 * computed by the bound and release stages (stage.h): run.role picks which
 * stages a process runs, all three by default.
 *
 * Stopping (SIGINT/SIGTERM, stop.h): the loop stops consuming, delivers and
 * commits what it can, and leaves, every step bounded by the stop budget
 * whatever the broker does. kn_run returns 0 when everything consumed was
 * delivered and committed, KN_RUN_ABANDONED when the broker did not let it
 * (the next run redoes the rest).
 *
 * Outages: a lost assignment is waited out. With --until-eof the loop gives
 * up only after run.assignment_wait without any partition, and says why
 * (assignment taken away, topics missing, no broker, group gives none). */
#ifndef KN_RUN_H
#define KN_RUN_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "pipeline.h"

#define KN_RUN_SHUTDOWN_MS 8000	 /* flush/commit/close bound outside a stop */
#define KN_KEYS_CHECK_MS   60000 /* key retention and retirements by others */

/* kn_run's results besides 0 and plain failures (main.c maps them to the
 * exit codes of stop.h). */
#define KN_RUN_ABANDONED (-ECANCELED) /* stopped with uncommitted work: redone on restart */
#define KN_RUN_FENCED	 (-ESTALE)    /* exactly-once: a newer instance holds the id */

struct kn_keys;
struct kn_schemas;
struct kn_erasure;

/* What every front end needs before the first record: the keys (with
 * retention applied), the schemas, the pipeline with its policy, and (for
 * the Kafka loops) the erasure state. */
struct kn_stack {
	struct kn_keys *keys;
	struct kn_schemas *schemas;
	struct kn_pipeline *pipe;
	struct kn_erasure *erasure; /* NULL without with_erasure or erasure.enabled */
};

#define KN_STACK_MAINTAIN 1u /* apply keys.retention now (may rewrite the key file) */
#define KN_STACK_ERASURE  2u /* connect to Kafka for the erasure state */

/* Opens everything in order: the key file, the schemas and the pipeline
 * (local files only), then what `what` asks for. Returns 0 or a negative
 * errno with errstr set; on failure what was opened is closed. */
int kn_stack_open(const struct kn_config *c, unsigned what, struct kn_stack *s, char *errstr,
		  size_t errsz);
/* Closes in reverse order; accepts a zeroed or half-open stack. */
void kn_stack_close(struct kn_stack *s);

/* Applies keys.retention and follows the key file (the run loop); a
 * read-only key file is warned about (KN_KEYS_IN_MEMORY). Returns 0 or -EIO
 * with errstr set. */
int kn_run_maintain_keys(struct kn_keys *keys, const struct kn_config *c, char *errstr,
			 size_t errsz);

/* Everything `kanon run` checks before any network I/O, so a configuration
 * error is refused before anything connects: every Kafka client's
 * properties (librdkafka validates them), the metrics address, the key
 * file, the schemas and the policy files. `kanon check` runs the same.
 * Returns 0 or a negative errno with errstr set. */
int kn_run_preflight(const struct kn_config *c, const char *metrics_addr, char *errstr,
		     size_t errsz);

struct kn_run_opts {
	bool until_eof;			 /* return once every assigned partition is drained */
	int64_t max_messages;		 /* stop after this many (0: no limit) */
	struct kn_pipeline_stats *stats; /* out: pipeline counters at exit (may be NULL) */
	const char *metrics_addr;	 /* serve /metrics and /healthz here (NULL: off) */
};

/* The exit code (stop.h's enum kn_exit) of kn_run's result. */
int kn_run_exit_code(int err);

/* Runs until stopped (kn_stop_request) or, with until_eof, drained.
 * Returns 0, KN_RUN_ABANDONED (see above), or a negative errno with errstr
 * set (start-up failure, fatal delivery error, --until-eof gave up). */
int kn_run(const struct kn_config *c, const struct kn_run_opts *o, char *errstr,
	   size_t errstr_size);

struct kn_agg_def;
struct kn_aggregator;
/* The config's aggregate definitions (kn_free() them; they borrow the
 * config's strings). NULL when out of memory. */
struct kn_agg_def *kn_agg_defs_from_config(const struct kn_config *c);
/* An aggregator for stage (enum kn_agg_stage) that the config's aggregate
 * section describes, over n_parts upstream partitions; defs must outlive
 * it. NULL when out of memory. */
struct kn_aggregator *kn_aggregator_from_config(const struct kn_config *c,
						const struct kn_agg_def *defs, int n_parts,
						const struct kn_keys *keys, int stage);

#endif
