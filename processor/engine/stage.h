/* stage: the advertiser aggregates as a topology of Kafka consumer groups,
 * so that many kanon instances compute what one would.
 *
 *   input topics ──deid──> contributions ──bound──> partial tallies ──release──> aggregate rows
 *   (N partitions)  (run.c,  (keyed by person,  (stage.c)  (keyed by group,  (stage.c)  and summaries
 *                   eos.c)   every partition             every partition
 *                            gets every input            gets every bound
 *                            partition's marks)          partition's marks)
 *
 *   deid     the pipeline (eos.c). Each eligible, on-time event becomes a
 *            contribution (exchange.h) in the partition of its person; the
 *            lateness rule is applied per input partition, whose stream time
 *            is published to every contributions partition as a mark.
 *   bound    one aggregator per contributions partition (KN_AGG_BOUND): a
 *            person's events all meet there, so the contribution bounds are
 *            exact. A window closes when the marks of every input partition
 *            have passed it; its exact tallies go to the partial-tallies
 *            partition of (definition, window), followed by this partition's
 *            own mark, to every partition.
 *   release  one aggregator per partial-tallies partition (KN_AGG_RELEASE):
 *            sums a group's tallies once every bound partition has passed
 *            the window, then releases it (dp.h; the noise is keyed by the
 *            group, so it does not matter which instance releases it) with
 *            its definition's summary, which is complete because all of a
 *            definition's groups of a window share one partition.
 *
 * Every stage is a consumer group (group.id kafka.group_id, + ".bound",
 * + ".release") whose instances come and go; each writes in transactions
 * tied to its group (KIP-447): its outputs and its input positions commit
 * together, so a rebalance, a scale-up or a kill -9 neither loses nor
 * duplicates anything. A stage's state is rebuilt on assignment: the
 * committed offset of a partition is the first one an open window still
 * needs, and its metadata (exchange.h's state) holds the end of the last
 * window released there and every upstream partition's stream time.
 *
 * run.role picks the stages of a process; all (the default) runs the three,
 * bound and release on threads of their own, through the same topics. */
#ifndef KN_STAGE_H
#define KN_STAGE_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "metrics.h"
#include "producer.h"
#include "run.h"

/* Runs the bound or release stage until stopped or, with o->until_eof,
 * until every input partition has ended and everything is released.
 * metrics may be NULL. Returns as kn_run does. */
int kn_stage_run(const struct kn_config *c, enum kn_run_role role, const struct kn_run_opts *o,
		 struct kn_metrics *metrics, char *errstr, size_t errsz);

/* The transactional.id of a stage of this instance: for run.role all the
 * stages' fixed ids (deid keeps aggregate.transactional_id itself), else
 * <aggregate.transactional_id>-<stage>-<run.instance>. */
void kn_topology_txn_id(const struct kn_config *c, enum kn_run_role stage, char *buf, size_t n);
/* The consumer group of a stage. */
void kn_topology_group(const struct kn_config *c, enum kn_run_role stage, char *buf, size_t n);
/* Creates the internal topics that are missing. Returns 0 or a negative
 * errno with errstr set. */
int kn_topology_ensure(struct kn_producer *p, const struct kn_config *c, char *errstr,
		       size_t errsz);
/* `kanon check --kafka`: the internal topics as the cluster has them. A
 * missing one is fine (created at start); a compacted one, or one whose
 * retention is shorter than a window plus its lateness plus an hour, is
 * refused; a partition count other than the config's is said (the topic's
 * is what counts). Returns 0, or -EINVAL (refused; errstr names every
 * refused topic) or another negative errno (no answer) with errstr set. */
int kn_topology_check(const struct kn_config *c, char *errstr, size_t errsz);
/* Where a person's contributions go, and a definition's window's tallies. */
int32_t kn_topology_person_partition(uint64_t person, int n);
int32_t kn_topology_group_partition(const char *def, int64_t window_start, int n);

#endif
