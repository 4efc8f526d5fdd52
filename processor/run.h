/* run: the Kafka consume -> pipeline -> produce loop (`kanon run`).
 *
 * Delivery is at-least-once: an input offset is committed only after the
 * record it produced (de-identified or dead-letter) is acknowledged by the
 * broker (offsets.c). On SIGINT/SIGTERM the loop stops consuming, flushes the
 * producer, commits what was acknowledged and returns within
 * KN_RUN_SHUTDOWN_MS. A delivery failure stops the loop without committing
 * past the failed record, so a restart redoes it. */
#ifndef KN_RUN_H
#define KN_RUN_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "pipeline.h"

#define KN_RUN_SHUTDOWN_MS    8000
#define KN_RUN_ASSIGN_WAIT_MS 30000 /* --until-eof with nothing to read gives up */
#define KN_KEYS_CHECK_MS      60000 /* key retention and retirements by others */

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

/* Opens everything in order. Returns 0 or a negative errno with errstr set;
 * on failure what was opened is closed. */
int kn_stack_open(const struct kn_config *c, bool with_erasure, struct kn_stack *s, char *errstr,
		  size_t errsz);
/* Closes in reverse order; accepts a zeroed or half-open stack. */
void kn_stack_close(struct kn_stack *s);

/* Applies keys.retention and follows the key file (both run loops).
 * Returns 0 or -EIO with errstr set. */
int kn_run_maintain_keys(struct kn_keys *keys, const struct kn_config *c, char *errstr,
			 size_t errsz);

struct kn_run_opts {
	bool until_eof;			 /* return once every assigned partition is drained */
	int64_t max_messages;		 /* stop after this many (0: no limit) */
	volatile sig_atomic_t *stop;	 /* set by a signal handler */
	struct kn_pipeline_stats *stats; /* out: pipeline counters at exit (may be NULL) */
	const char *metrics_addr;	 /* serve /metrics and /healthz here (NULL: off) */
};

/* Runs until stopped. Returns 0 on a clean stop, or a negative errno with
 * errstr set (start-up failure or fatal delivery error). */
int kn_run(const struct kn_config *c, const struct kn_run_opts *o, char *errstr,
	   size_t errstr_size);

#endif
