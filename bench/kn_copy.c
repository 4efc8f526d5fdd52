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
 * record to last acknowledgement), CPU seconds.
 *
 *   kn_copy CONFIG IN_TOPIC OUT_TOPIC GROUP --latency
 *
 * B3's floor: copies a paced stream as it comes, and measures what kanon's
 * probes measure, per batch (one wait for input, up to processing.
 * batch_size records): its earliest Kafka timestamp to its last delivery
 * acknowledgement. It says "ready" on stderr once its first records are
 * acknowledged (group joined, output topic there), counts only what it
 * reads after that, and stops 3 s after the input stops. Prints one JSON
 * line: records, batches, e2e_p50_us, e2e_p99_us, e2e_p999_us, and the p50 and p99
 * of its consume (earliest timestamp to batch in hand) and ack (batch sent to
 * its last acknowledgement) stages. */
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
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

/* ---- --latency ---- */

#define SPANS 65536 /* batches in flight at most (a ring) */

struct span {
	int64_t min_ts; /* earliest Kafka timestamp, ms */
	int64_t sent;	/* when its last record was handed to librdkafka, us */
	int left;	/* records not yet acknowledged */
	bool measured;
};

struct lat {
	struct span span[SPANS];
	int64_t *e2e_us; /* one per acknowledged, measured batch */
	size_t n, cap;
	int64_t *in_us; /* earliest timestamp to the batch in hand, per batch */
	size_t n_in, cap_in;
	int64_t *ack_us; /* batch sent to its last acknowledgement */
	size_t n_ack, cap_ack;
	int64_t unacked;
};

static int64_t real_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

static void put(int64_t **v, size_t *n, size_t *cap, int64_t x)
{
	if (*n == *cap) {
		*cap = *cap ? 2 * *cap : 4096;
		if (!(*v = realloc(*v, *cap * sizeof(**v))))
			abort();
	}
	(*v)[(*n)++] = x;
}

static void on_delivery_lat(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	struct lat *l = opaque;
	struct span *s = &l->span[(uintptr_t)m->_private % SPANS];

	(void)rk;
	l->unacked--;
	if (--s->left || !s->measured)
		return;
	int64_t now = real_us();
	put(&l->e2e_us, &l->n, &l->cap, now - s->min_ts * 1000);
	put(&l->ack_us, &l->n_ack, &l->cap_ack, now - s->sent);
}

static int cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

static double pct(const int64_t *v, size_t n, double p)
{
	return n ? (double)v[(size_t)(p * (double)(n - 1))] : 0;
}

/* Copies as records come: the wait for input is short, so delivery reports
 * are served within a millisecond of their arrival (the floor, not a loop
 * kanon must match line for line). */
static int64_t copy_paced(rd_kafka_t *prod, rd_kafka_queue_t *q, rd_kafka_topic_t *out,
			  struct lat *l, int batch_max)
{
	rd_kafka_message_t **batch = calloc((size_t)batch_max, sizeof(*batch));
	int64_t copied = 0, warm = 0;
	uintptr_t id = 0;
	double start = now_s(), last_input = 0;
	bool ready = false;

	if (!batch)
		abort();
	while (copied ? now_s() - last_input < 3 || l->unacked : now_s() - start < 300) {
		ssize_t n = kn_kafka_consume_ready(q, 1, batch, (size_t)batch_max);
		struct span *s = &l->span[(id + 1) % SPANS];
		/* One count of its own until the batch is all sent: a delivery
		 * served while the queue is full cannot close it early. */
		*s = (struct span){INT64_MAX, 0, 1, false};
		for (ssize_t i = 0; i < n; i++) {
			rd_kafka_message_t *m = batch[i];
			if (!m->err) {
				int64_t ts = rd_kafka_message_timestamp(m, NULL);
				if (ts > 0 && ts < s->min_ts)
					s->min_ts = ts;
				s->left++, l->unacked++;
				/* Keyed like kanon's output (by person): the batch
				 * spreads over every partition, as kanon's does. */
				int64_t key = m->offset * 4 + m->partition;
				while (rd_kafka_produce(out, RD_KAFKA_PARTITION_UA,
							RD_KAFKA_MSG_F_COPY, m->payload, m->len,
							&key, sizeof(key), (void *)(id + 1)) == -1)
					rd_kafka_poll(prod, 10);
				*(ready ? &copied : &warm) += 1;
				rd_kafka_offset_store(m->rkt, m->partition, m->offset);
			}
			rd_kafka_message_destroy(m);
		}
		if (s->min_ts != INT64_MAX || n > 0) {
			id++;
			last_input = now_s();
			s->measured = ready && s->min_ts != INT64_MAX;
			s->sent = real_us();
			if (s->measured)
				put(&l->in_us, &l->n_in, &l->cap_in, s->sent - s->min_ts * 1000);
			if (!--s->left && s->measured) { /* acknowledged already */
				put(&l->e2e_us, &l->n, &l->cap, s->sent - s->min_ts * 1000);
				put(&l->ack_us, &l->n_ack, &l->cap_ack, 0);
			}
		}
		rd_kafka_poll(prod, 0);
		if (!ready && warm && !l->unacked) {
			ready = true;
			fprintf(stderr, "kn_copy: ready\n");
		}
	}
	free(batch);
	return copied;
}

static void latency(rd_kafka_t *prod, rd_kafka_queue_t *q, rd_kafka_topic_t *out, struct lat *l,
		    int batch_max)
{
	int64_t n = copy_paced(prod, q, out, l, batch_max);

	qsort(l->e2e_us, l->n, sizeof(*l->e2e_us), cmp64);
	qsort(l->in_us, l->n_in, sizeof(*l->in_us), cmp64);
	qsort(l->ack_us, l->n_ack, sizeof(*l->ack_us), cmp64);
	printf("{\"bench\":\"copy-latency\",\"records\":%" PRId64 ",\"batches\":%zu,"
	       "\"e2e_p50_us\":%.0f,\"e2e_p99_us\":%.0f,\"e2e_p999_us\":%.0f,"
	       "\"consume_p50_us\":%.0f,\"consume_p99_us\":%.0f,\"ack_p50_us\":%.0f,"
	       "\"ack_p99_us\":%.0f}\n",
	       n, l->n, pct(l->e2e_us, l->n, 0.5), pct(l->e2e_us, l->n, 0.99),
	       pct(l->e2e_us, l->n, 0.999), pct(l->in_us, l->n_in, 0.5),
	       pct(l->in_us, l->n_in, 0.99), pct(l->ack_us, l->n_ack, 0.5),
	       pct(l->ack_us, l->n_ack, 0.99));
	free(l->e2e_us);
	free(l->in_us);
	free(l->ack_us);
}

int main(int argc, char **argv)
{
	struct kn_config *c;
	char err[512];

	bool lat_mode = argc == 6 && !strcmp(argv[5], "--latency");
	struct lat *l = NULL;

	if (argc != 5 && !lat_mode) {
		fprintf(stderr, "usage: kn_copy CONFIG IN_TOPIC OUT_TOPIC GROUP [--latency]\n");
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
	if (lat_mode && !(l = calloc(1, sizeof(*l))))
		return die("latency", "out of memory");
	rd_kafka_conf_set_dr_msg_cb(pc, lat_mode ? on_delivery_lat : on_delivery);
	rd_kafka_conf_set_opaque(pc, lat_mode ? (void *)l : &failed);
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
	if (lat_mode) {
		latency(prod, q, out, l, (int)c->batch_size);
		free(l);
		goto done;
	}
	int64_t n = copy_all(cons, prod, q, out, &first);
	rd_kafka_flush(prod, 60000);
	double t1 = now_s();
	printf("{\"bench\":\"copy\",\"records\":%" PRId64
	       ",\"seconds\":%.3f,\"active_seconds\":%.3f,\"cpu_seconds\":%.3f,\"unacked\":%d,"
	       "\"failed\":%" PRId64 "}\n",
	       n, t1 - t0, t1 - first, cpu_s() - cpu0, rd_kafka_outq_len(prod), failed);
done:
	rd_kafka_commit(cons, NULL, 0);
	rd_kafka_queue_destroy(q);
	rd_kafka_topic_destroy(out);
	rd_kafka_consumer_close(cons);
	rd_kafka_destroy(cons);
	rd_kafka_destroy(prod);
	kn_config_destroy(c);
	return 0;
}
