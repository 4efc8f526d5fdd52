#include "txn.h"

#include "kn_alloc.h"
#include "stop.h"

struct job {
	rd_kafka_t *prod;
	enum kn_txn_op op;
	rd_kafka_topic_partition_list_t *offs;	/* a copy, owned */
	rd_kafka_consumer_group_metadata_t *gm; /* owned */
	rd_kafka_error_t *result;
};

const char *kn_txn_name(enum kn_txn_op op)
{
	static const char *const n[] = {"init_transactions", "begin_transaction",
					"send_offsets_to_transaction", "commit_transaction",
					"abort_transaction"};

	return n[op];
}

static void call(void *arg)
{
	struct job *j = arg;

	switch (j->op) {
	case KN_TXN_INIT:
		j->result = rd_kafka_init_transactions(j->prod, KN_TXN_CALL_MS);
		break;
	case KN_TXN_BEGIN:
		j->result = rd_kafka_begin_transaction(j->prod);
		break;
	case KN_TXN_SEND_OFFSETS:
		j->result = rd_kafka_send_offsets_to_transaction(j->prod, j->offs, j->gm,
								 KN_TXN_CALL_MS);
		break;
	case KN_TXN_COMMIT:
		j->result = rd_kafka_commit_transaction(j->prod, KN_TXN_CALL_MS);
		break;
	case KN_TXN_ABORT:
		j->result = rd_kafka_abort_transaction(j->prod, KN_TXN_CALL_MS);
		break;
	}
}

static void job_free(void *arg)
{
	struct job *j = arg;

	if (j->offs)
		rd_kafka_topic_partition_list_destroy(j->offs);
	if (j->gm)
		rd_kafka_consumer_group_metadata_destroy(j->gm);
	kn_free(j);
}

/* A job walked away from: its result is nobody's. */
static void job_orphaned(void *arg)
{
	struct job *j = arg;

	if (j->result)
		rd_kafka_error_destroy(j->result);
	job_free(j);
}

rd_kafka_error_t *kn_txn_call(rd_kafka_t *prod, enum kn_txn_op op,
			      const rd_kafka_topic_partition_list_t *offs, rd_kafka_t *consumer,
			      bool *orphaned)
{
	struct job *j;
	rd_kafka_error_t *e;

	*orphaned = false;
	if (op == KN_TXN_BEGIN)
		return rd_kafka_begin_transaction(prod);
	if (!(j = kn_calloc(1, sizeof(*j))))
		return rd_kafka_error_new(RD_KAFKA_RESP_ERR__FAIL, "out of memory");
	j->prod = prod;
	j->op = op;
	if (op == KN_TXN_SEND_OFFSETS) {
		j->offs = rd_kafka_topic_partition_list_copy(offs);
		j->gm = rd_kafka_consumer_group_metadata(consumer);
	}
	if (!kn_stop_bounded(call, job_orphaned, j, INT64_MAX, true)) {
		*orphaned = true;
		return NULL;
	}
	e = j->result;
	job_free(j);
	return e;
}
