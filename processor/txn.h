/* txn: one Kafka transactional call, waited for with kanon's deadlines.
 *
 * librdkafka does not always keep the timeout a transactional call is
 * given: send_offsets_to_transaction waits for its request for as long as
 * socket.timeout.ms (60 s) when the coordinator does not answer
 * (librdkafka#5456). So each blocking call runs on a thread of its own, and
 * the caller waits for that thread instead, looking at the stop request
 * (stop.h) between slices: at the stop's drain deadline it walks away. The
 * call then goes on inside librdkafka with the producer; the producer (and
 * whatever its callbacks use) must not be destroyed: the process exits
 * first. A job walked away from frees itself when its call returns. */
#ifndef KN_TXN_H
#define KN_TXN_H

#include <stdbool.h>

#include <librdkafka/rdkafka.h>

#define KN_TXN_CALL_MS 10000 /* timeout passed to librdkafka; timed-out calls are resumed */

enum kn_txn_op {
	KN_TXN_INIT,
	KN_TXN_BEGIN,
	KN_TXN_SEND_OFFSETS,
	KN_TXN_COMMIT,
	KN_TXN_ABORT,
};

/* librdkafka's name of op ("commit_transaction"). */
const char *kn_txn_name(enum kn_txn_op op);

/* Runs op on prod (with offs and the consumer's group metadata for
 * KN_TXN_SEND_OFFSETS; both are copied) and waits for it until it returns
 * or the stop's drain deadline passes. Returns librdkafka's error (NULL:
 * done; the caller destroys it), or NULL with *orphaned set when it walked
 * away. KN_TXN_BEGIN is local and runs on the caller's thread. */
rd_kafka_error_t *kn_txn_call(rd_kafka_t *prod, enum kn_txn_op op,
			      const rd_kafka_topic_partition_list_t *offs, rd_kafka_t *consumer,
			      bool *orphaned);

#endif
