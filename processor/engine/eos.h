/* eos: the exactly-once commit strategy of the run loop (run.h): the
 * de-identification stage of the aggregation topology (stage.h), and the
 * whole job when run.guarantee is exactly-once without aggregates.
 *
 * The consumer group assigns the input partitions (an eager assignor, and
 * static membership under the instance's name, so a restart takes its
 * partitions back at once). One transactional producer per instance
 * (stage.h's kn_topology_txn_id) writes, in each transaction, the
 * de-identified events and dead letters of the records consumed since the
 * last one, with aggregates their contributions and the input partitions'
 * marks, and the input positions with the group's metadata
 * (send_offsets_to_transaction, KIP-447: a member the group has moved on
 * from cannot commit). Read the outputs with isolation.level=read_committed.
 *
 * Rebalances: before partitions are revoked the open transaction commits
 * (lost ones: it aborts); on assignment each partition starts at its
 * committed offset, restored from the metadata there; a poll during which
 * the group rebalanced hands out nothing (consumer.h). An abortable error
 * (the transaction was aborted) sends every partition back to its
 * committed offset and the loop goes on.
 *
 * Restart state per input partition, in its offset-commit metadata
 * ("kd1 m=<stream time> d=<deid_done> u=<released>"): m makes the lateness
 * rule replay identically; d and u carry over the single-process format
 * before the topology ("kn1 w= m= d=", read too), whose committed offset
 * could lie before outputs already written.
 *
 * Failures: every transactional call waits out an outage (in slices, so a
 * stop is seen) and gives up only at a stop's drain deadline (stop.h): the
 * open transaction is then left to be aborted and kn_run returns
 * KN_RUN_ABANDONED. transaction.timeout.ms defaults to 5 minutes, so a
 * shorter outage costs nothing. Being fenced (another instance initialised
 * the same transactional.id, or joined under the same name) is named as
 * such: the instance stops processing, /healthz answers 503 "fenced", and
 * it stands by until stopped (returning KN_RUN_FENCED) rather than exit and
 * be restarted into fencing the other. An idle instance still commits a
 * transaction every KN_TXN_HEARTBEAT_MS, which is how it learns it was
 * fenced. */
#ifndef KN_EOS_H
#define KN_EOS_H

#include "run.h"

#define KN_TXN_HEARTBEAT_MS 5000

#endif
