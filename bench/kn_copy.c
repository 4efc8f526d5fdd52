/* kn_copy: the physical limit of consume + produce on the broker, with
 * kanon's own client settings (kafka_conf.c: the same consumer prefetch,
 * lz4, idempotence, linger, batch size), as B2's baseline.
 *
 *   kn_copy CONFIG IN_TOPIC OUT_TOPIC GROUP
 *
 * Subscribes GROUP to IN_TOPIC, produces every record's key and value, as
 * they are, to OUT_TOPIC, commits offsets asynchronously every second, and
 * stops once every assigned partition has reached its end and every record
 * is acknowledged. Prints one JSON line: records, seconds (wall, start-up
 * and group join included, as B2 times `kanon run`), active_seconds (first
 * record to last acknowledgement), CPU seconds. */
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "config.h"
#include "kafka_rd.h"

#define BATCH 2000

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + t.tv_nsec / 1e9;
}

static double cpu_s(void)
{
	struct rusage u;

	getrusage(RUSAGE_SELF, &u);
	return (double)u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + (double)u.ru_stime.tv_sec +
	       u.ru_stime.tv_usec / 1e6;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	(void)rk;
	if (m->err)
		++*(int64_t *)opaque;
}

static int die(const char *what, const char *why)
{
	fprintf(stderr, "kn_copy: %s: %s\n", what, why);
	return 1;
}

/* Consumes batches from q until every assigned partition is at its end,
 * producing each record to out. Returns the records copied. */
static int64_t copy_all(rd_kafka_t *cons, rd_kafka_t *prod, rd_kafka_queue_t *q,
			rd_kafka_topic_t *out, double *first)
{
	rd_kafka_message_t *batch[BATCH];
	int64_t copied = 0, eofs = 0, assigned = -1;
	double last_commit = now_s();

	while (assigned < 0 || eofs < assigned) {
		ssize_t n = rd_kafka_consume_batch_queue(q, 500, batch, BATCH);
		for (ssize_t i = 0; i < n; i++) {
			rd_kafka_message_t *m = batch[i];
			if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
				eofs++;
			} else if (!m->err) {
				if (!copied)
					*first = now_s();
				while (rd_kafka_produce(out, RD_KAFKA_PARTITION_UA,
							RD_KAFKA_MSG_F_COPY, m->payload, m->len,
							m->key, m->key_len, NULL) == -1)
					rd_kafka_poll(prod, 10); /* queue full: wait for acks */
				copied++;
				rd_kafka_offset_store(m->rkt, m->partition, m->offset);
			}
			rd_kafka_message_destroy(m);
		}
		rd_kafka_poll(prod, 0);
		if (assigned < 0) {
			rd_kafka_topic_partition_list_t *a = NULL;
			if (!rd_kafka_assignment(cons, &a) && a->cnt > 0)
				assigned = a->cnt;
			if (a)
				rd_kafka_topic_partition_list_destroy(a);
		}
		if (now_s() - last_commit >= 1) {
			rd_kafka_commit(cons, NULL, 1);
			last_commit = now_s();
		}
	}
	return copied;
}

int main(int argc, char **argv)
{
	struct kn_config *c;
	char err[512];

	if (argc != 5) {
		fprintf(stderr, "usage: kn_copy CONFIG IN_TOPIC OUT_TOPIC GROUP\n");
		return 2;
	}
	if (kn_config_load(argv[1], NULL, 0, &c, err, sizeof(err)))
		return die(argv[1], err);
	rd_kafka_conf_t *cc =
		kn_kafka_client_conf(c, KN_CLIENT_CONSUMER, argv[4], err, sizeof(err));
	rd_kafka_conf_t *pc =
		cc ? kn_kafka_client_conf(c, KN_CLIENT_PRODUCER, NULL, err, sizeof(err)) : NULL;
	if (!cc || !pc)
		return die("kafka config", err);
	int64_t failed = 0;
	rd_kafka_conf_set_dr_msg_cb(pc, on_delivery);
	rd_kafka_conf_set_opaque(pc, &failed);
	rd_kafka_t *cons = rd_kafka_new(RD_KAFKA_CONSUMER, cc, err, sizeof(err));
	rd_kafka_t *prod = cons ? rd_kafka_new(RD_KAFKA_PRODUCER, pc, err, sizeof(err)) : NULL;
	if (!cons || !prod)
		return die("kafka client", err);
	rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(sub, argv[2], RD_KAFKA_PARTITION_UA);
	if (rd_kafka_subscribe(cons, sub))
		return die("subscribe", argv[2]);
	rd_kafka_topic_partition_list_destroy(sub);
	rd_kafka_topic_t *out = rd_kafka_topic_new(prod, argv[3], NULL);
	rd_kafka_queue_t *q = rd_kafka_queue_get_consumer(cons);

	double t0 = now_s(), first = t0, cpu0 = cpu_s();
	int64_t n = copy_all(cons, prod, q, out, &first);
	rd_kafka_flush(prod, 60000);
	double t1 = now_s();
	printf("{\"bench\":\"copy\",\"records\":%" PRId64
	       ",\"seconds\":%.3f,\"active_seconds\":%.3f,\"cpu_seconds\":%.3f,\"unacked\":%d,"
	       "\"failed\":%" PRId64 "}\n",
	       n, t1 - t0, t1 - first, cpu_s() - cpu0, rd_kafka_outq_len(prod), failed);
	rd_kafka_commit(cons, NULL, 0);
	rd_kafka_queue_destroy(q);
	rd_kafka_topic_destroy(out);
	rd_kafka_consumer_close(cons);
	rd_kafka_destroy(cons);
	rd_kafka_destroy(prod);
	kn_config_destroy(c);
	return 0;
}
