/* eos: the exactly-once commit strategy of the run loop (run.h), used when
 * aggregates are configured.
 *
 * One transactional producer (aggregate.transactional_id: a second instance
 * with the same id fences the first) writes, in each transaction, the
 * de-identified events and dead letters of the messages consumed since the
 * last one, the aggregate rows and summaries of the windows that closed, and
 * the input positions (send_offsets_to_transaction). Read the outputs with
 * isolation.level=read_committed.
 *
 * The consumer assigns itself every partition of the input topics: groups
 * are counted across the whole stream, never per partition, so there is one
 * aggregator per input; its group.id only stores offsets.
 *
 * Restart state lives in Kafka alone, in the offset-commit metadata of each
 * input partition ("kn1 w=<emitted_until> m=<max_ts> d=<deid_done>"):
 *   - the committed offset is the first one an open window still needs
 *     (kn_aggregator_checkpoint), so open windows are rebuilt by replay;
 *   - w: every window ending at or before it was already released; replayed
 *     events of those windows are skipped;
 *   - m: the partition's max event time just before the committed offset, so
 *     lateness decisions replay identically;
 *   - d: messages before it already have their de-identified output; the
 *     replay does not write them again.
 * After kill -9 at any point the committed output equals an uninterrupted
 * run's.
 *
 * Failures: every transactional call waits out an outage (in slices, so a
 * stop is seen) and gives up only at a stop's drain deadline (stop.h): the
 * open transaction is then left to be aborted and kn_run returns
 * KN_RUN_ABANDONED. transaction.timeout.ms defaults to 5 minutes, so a
 * shorter outage costs nothing. Being fenced (another instance initialised
 * the same transactional.id) is named as such: the instance stops
 * processing, /healthz answers 503 "fenced", and it stands by until stopped
 * (returning KN_RUN_FENCED) rather than exit and be restarted into fencing
 * the other. An idle instance still commits a transaction every
 * KN_TXN_HEARTBEAT_MS, which is how it learns it was fenced. */
#ifndef KN_EOS_H
#define KN_EOS_H

#include "run.h"

#define KN_TXN_HEARTBEAT_MS 5000

#endif
