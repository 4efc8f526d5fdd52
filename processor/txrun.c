#include "txrun.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "aggregate.h"
#include "avrobin.h"
#include "kafka_conf.h"
#include "kn_alloc.h"
#include "erasure.h"
#include "log.h"
#include "metrics.h"
#include "sink.h"
#include "trace.h"

#define TXN_TIMEOUT_MS 60000

struct tpart {
	const char *topic; /* the config's string */
	int32_t partition;
	int64_t position;  /* next offset to read; -1 before the first message */
	int64_t deid_done; /* offsets below it already have de-identified output */
	bool eof;
	int64_t eof_since;
};

struct tx {
	const struct kn_config *cfg;
	const struct kn_run_opts *o;
	struct kn_stack st;
	struct kn_pipeline *pipe; /* = st.pipe */
	struct kn_agg_def *defs;
	struct kn_aggregator *agg;
	rd_kafka_t *cons, *prod;
	rd_kafka_queue_t *q;
	rd_kafka_topic_t *t_out, *t_dlq, *t_agg, *t_stats;
	struct kn_metrics *metrics;
	struct kn_metrics_snapshot snap;
	struct tpart *parts;
	int n_parts;
	int *first_part;		 /* per input topic: index of its partition 0 in parts */
	rd_kafka_message_t **batch;	 /* as consumed */
	struct kn_batch *b;		 /* its records, for the pipeline */
	const rd_kafka_message_t **data; /* b's messages */
	int *data_part;			 /* b's partitions (index in parts) */
	struct kn_trace *trace;
	int64_t txn_min_ts; /* earliest Kafka timestamp in the open transaction */
	uint32_t txn_records;
	uint8_t abuf[KN_FRAME_LEN + KN_AGG_MAX_BYTES];
	bool dirty;
	uint64_t produced, dead, dropped, skipped, rows, summaries, not_aggregated, transactions;
	uint64_t suppressed_groups;
	char err[512];
};

static int64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t now_ms(void)
{
	return now_us() / 1000;
}

/* Delivery reports: the batch tag comes back as the message opaque. */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	struct tx *tx = opaque;

	(void)rk;
	if (!m->err && m->_private)
		kn_trace_delivered(tx->trace, (uint32_t)(uintptr_t)m->_private);
}

/* Runs a transactional call, retrying while librdkafka says it may.
 * Returns 0 or -EIO with tx->err set (aborting first when required). */
#define TXN(tx, what, call)                                                                        \
	({                                                                                         \
		rd_kafka_error_t *e_;                                                              \
		while ((e_ = (call)) && rd_kafka_error_is_retriable(e_))                           \
			rd_kafka_error_destroy(e_);                                                \
		int r_ = e_ ? txn_fail(tx, what, e_) : 0;                                          \
		r_;                                                                                \
	})

static int txn_fail(struct tx *tx, const char *what, rd_kafka_error_t *e)
{
	snprintf(tx->err, sizeof(tx->err), "%s: %s%s", what, rd_kafka_error_string(e),
		 rd_kafka_error_is_fatal(e) ? " (fatal: another instance may have fenced this one)"
					    : "");
	if (rd_kafka_error_txn_requires_abort(e)) {
		rd_kafka_error_t *a = rd_kafka_abort_transaction(tx->prod, TXN_TIMEOUT_MS);
		if (a)
			rd_kafka_error_destroy(a);
	}
	rd_kafka_error_destroy(e);
	return -EIO;
}

/* tag: the batch a record belongs to (kn_trace_tag), 0 for rows and
 * summaries; it comes back in the delivery report. */
static int produce(struct tx *tx, rd_kafka_topic_t *t, const void *key, size_t klen,
		   const void *val, size_t vlen, rd_kafka_headers_t *hdrs, uint32_t tag)
{
	rd_kafka_resp_err_t err;

	for (;;) {
		err = rd_kafka_producev(
			tx->prod, RD_KAFKA_V_RKT(t), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
			RD_KAFKA_V_KEY(key, klen), RD_KAFKA_V_VALUE((void *)val, vlen),
			RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE((void *)(uintptr_t)tag),
			RD_KAFKA_V_END);
		if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
			break;
		rd_kafka_poll(tx->prod, 50);
	}
	if (err) {
		if (hdrs)
			rd_kafka_headers_destroy(hdrs);
		snprintf(tx->err, sizeof(tx->err), "produce: %s", rd_kafka_err2str(err));
		return -EIO;
	}
	return 0;
}

/* ---- aggregate output ---- */

static void on_row(void *opaque, const struct kn_agg_row *row)
{
	struct tx *tx = opaque;
	char key[1024];
	size_t n, kl;

	kn_frame_put(tx->abuf, (int32_t)tx->cfg->agg_schema_id);
	n = kn_encode_agg_row(row, tx->cfg->agg_window_ms,
			      kn_id_kind_name((enum kn_id_kind)tx->cfg->agg_person),
			      tx->abuf + KN_FRAME_LEN);
	kl = (size_t)snprintf(key, sizeof(key), "%s|%" PRId64, row->def->name, row->window_start);
	for (int d = 0; d < KN_DIMS && kl < sizeof(key); d++)
		if (row->def->dims & (1u << d))
			kl += (size_t)snprintf(key + kl, sizeof(key) - kl, "|%s",
					       row->dim[d] ? row->dim[d] : "");
	if (kl >= sizeof(key))
		kl = sizeof(key) - 1;
	if (!tx->err[0] && !produce(tx, tx->t_agg, key, kl, tx->abuf, n + KN_FRAME_LEN, NULL, 0))
		tx->rows++;
}

static void on_summary(void *opaque, const struct kn_agg_summary *s)
{
	struct tx *tx = opaque;
	char key[300];
	size_t n;

	kn_frame_put(tx->abuf, (int32_t)tx->cfg->agg_stats_schema_id);
	n = kn_encode_agg_summary(s, tx->abuf + KN_FRAME_LEN);
	snprintf(key, sizeof(key), "%s|%" PRId64, s->def->name, s->window_start);
	if (!tx->err[0] &&
	    !produce(tx, tx->t_stats, key, strlen(key), tx->abuf, n + KN_FRAME_LEN, NULL, 0))
		tx->summaries++;
	kn_info("aggregate",
		"%s window %" PRId64 ": %" PRIu64 " groups released, %" PRIu64
		" suppressed (%" PRIu64 " events), %" PRIu64 " events bounded",
		s->def->name, s->window_start, s->groups_released, s->groups_suppressed,
		s->events_suppressed, s->events_bounded);
}

/* ---- restart state in offset-commit metadata ---- */

static void fmt_meta(char *buf, size_t n, int64_t until, int64_t max_ts, int64_t deid_done)
{
	snprintf(buf, n, "kn1 w=%" PRId64 " m=%" PRId64 " d=%" PRId64, until, max_ts, deid_done);
}

static bool parse_meta(const char *m, size_t len, int64_t *until, int64_t *max_ts,
		       int64_t *deid_done)
{
	char buf[256];

	if (!m || !len || len >= sizeof(buf))
		return false;
	memcpy(buf, m, len);
	buf[len] = '\0';
	return sscanf(buf, "kn1 w=%" SCNd64 " m=%" SCNd64 " d=%" SCNd64, until, max_ts,
		      deid_done) == 3;
}

/* ---- set-up ---- */

static int make_clients(struct tx *tx, char *errstr, size_t errsz)
{
	const struct kn_config *c = tx->cfg;
	rd_kafka_conf_t *cc = kn_kafka_conf_new(c, NULL, 0, errstr, errsz), *pc = NULL;
	char why[512];

	if (!cc || kn_kafka_conf_set(cc, "group.id", c->group_id, errstr, errsz) ||
	    kn_kafka_conf_set(cc, "auto.offset.reset", "earliest", errstr, errsz) ||
	    kn_kafka_conf_set(cc, "isolation.level", "read_committed", errstr, errsz) ||
	    kn_kafka_conf_set(cc, "client.id", "kanon-tx-consumer", errstr, errsz))
		goto fail;
	for (int i = 0; i < c->n_consumer; i++)
		if (kn_kafka_conf_set(cc, c->consumer[i].key, c->consumer[i].value, errstr, errsz))
			goto fail;
	if (kn_kafka_conf_set(cc, "enable.auto.commit", "false", errstr, errsz) ||
	    kn_kafka_conf_set(cc, "enable.partition.eof", "true", errstr, errsz))
		goto fail;
	pc = kn_kafka_conf_new(c, NULL, 0, errstr, errsz);
	if (!pc || kn_kafka_conf_set(pc, "linger.ms", "20", errstr, errsz) ||
	    kn_kafka_conf_set(pc, "compression.type", "lz4", errstr, errsz) ||
	    kn_kafka_conf_set(pc, "client.id", "kanon-tx-producer", errstr, errsz))
		goto fail;
	for (int i = 0; i < c->n_producer; i++)
		if (kn_kafka_conf_set(pc, c->producer[i].key, c->producer[i].value, errstr, errsz))
			goto fail;
	if (kn_kafka_conf_set(pc, "transactional.id", c->transactional_id, errstr, errsz) ||
	    kn_kafka_conf_set(pc, "enable.idempotence", "true", errstr, errsz))
		goto fail;
	rd_kafka_conf_set_dr_msg_cb(pc, on_delivery);
	rd_kafka_conf_set_opaque(pc, tx);
	tx->cons = rd_kafka_new(RD_KAFKA_CONSUMER, cc, why, sizeof(why));
	if (!tx->cons) {
		snprintf(errstr, errsz, "kafka consumer: %s", why);
		goto fail;
	}
	cc = NULL;
	tx->prod = rd_kafka_new(RD_KAFKA_PRODUCER, pc, why, sizeof(why));
	if (!tx->prod) {
		snprintf(errstr, errsz, "kafka producer: %s", why);
		goto fail;
	}
	pc = NULL;
	tx->q = rd_kafka_queue_get_consumer(tx->cons);
	tx->t_out = rd_kafka_topic_new(tx->prod, c->topic_output, NULL);
	tx->t_dlq = rd_kafka_topic_new(tx->prod, c->topic_dead_letter, NULL);
	tx->t_agg = rd_kafka_topic_new(tx->prod, c->agg_topic, NULL);
	tx->t_stats = rd_kafka_topic_new(tx->prod, c->agg_stats_topic, NULL);
	/* Fences any older instance with this transactional.id and aborts what
	 * it left open. */
	if (TXN(tx, "init_transactions", rd_kafka_init_transactions(tx->prod, TXN_TIMEOUT_MS))) {
		snprintf(errstr, errsz, "%s", tx->err);
		return -EIO;
	}
	return 0;
fail:
	if (cc)
		rd_kafka_conf_destroy(cc);
	if (pc)
		rd_kafka_conf_destroy(pc);
	return -EINVAL;
}

/* Every partition of every input topic, from the cluster's metadata. */
static int discover(struct tx *tx, char *errstr, size_t errsz)
{
	const struct kn_config *c = tx->cfg;

	tx->first_part = kn_calloc((size_t)c->n_inputs, sizeof(int));
	if (!tx->first_part)
		return -ENOMEM;
	for (int i = 0; i < c->n_inputs; i++) {
		rd_kafka_topic_t *rkt = rd_kafka_topic_new(tx->cons, c->inputs[i].topic, NULL);
		const struct rd_kafka_metadata *md = NULL;
		rd_kafka_resp_err_t err = rd_kafka_metadata(tx->cons, 0, rkt, &md, 10000);
		int n = 0;
		if (!err && md->topic_cnt == 1 && !md->topics[0].err)
			n = md->topics[0].partition_cnt;
		else if (!err)
			err = md->topic_cnt ? md->topics[0].err : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
		if (md)
			rd_kafka_metadata_destroy(md);
		rd_kafka_topic_destroy(rkt);
		if (err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
		    err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC) {
			/* Its records wait in Kafka; a restart after it exists reads them. */
			kn_warn("txrun",
				"input topic %s does not exist: not consumed until restart",
				c->inputs[i].topic);
			tx->first_part[i] = -1;
			continue;
		}
		if (err) {
			snprintf(errstr, errsz, "input topic %s: %s", c->inputs[i].topic,
				 rd_kafka_err2str(err));
			return -ENOENT;
		}
		struct tpart *np = kn_realloc(tx->parts, sizeof(*np) * (size_t)(tx->n_parts + n));
		if (!np)
			return -ENOMEM;
		tx->parts = np;
		tx->first_part[i] = tx->n_parts;
		for (int p = 0; p < n; p++)
			tx->parts[tx->n_parts++] = (struct tpart){c->inputs[i].topic, p, -1, 0};
	}
	return 0;
}

/* Reads committed offsets and their metadata, restores, and assigns. */
static int restore_and_assign(struct tx *tx, char *errstr, size_t errsz)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(tx->n_parts);
	rd_kafka_resp_err_t err;
	int restored = 0;

	for (int i = 0; i < tx->n_parts; i++)
		rd_kafka_topic_partition_list_add(l, tx->parts[i].topic, tx->parts[i].partition);
	err = rd_kafka_committed(tx->cons, l, 30000);
	if (err) {
		snprintf(errstr, errsz, "reading committed offsets: %s", rd_kafka_err2str(err));
		rd_kafka_topic_partition_list_destroy(l);
		return -EIO;
	}
	if (!tx->n_parts) {
		snprintf(errstr, errsz, "none of the input topics exists");
		rd_kafka_topic_partition_list_destroy(l);
		return -ENOENT;
	}
	for (int i = 0; i < l->cnt; i++) {
		rd_kafka_topic_partition_t *tp = &l->elems[i];
		struct tpart *p = &tx->parts[i];
		int64_t until, max_ts, done;
		if (tp->offset < 0) {
			tp->offset = RD_KAFKA_OFFSET_BEGINNING;
			continue;
		}
		p->position = tp->offset;
		p->deid_done = tp->offset;
		if (parse_meta(tp->metadata, tp->metadata_size, &until, &max_ts, &done)) {
			kn_aggregator_restore(tx->agg, i, max_ts, until);
			p->deid_done = done;
			restored++;
		}
	}
	if (restored)
		kn_info("txrun",
			"restored from Kafka: %d partition(s), windows released up to %" PRId64,
			restored, kn_aggregator_emitted_until(tx->agg));
	err = rd_kafka_assign(tx->cons, l);
	rd_kafka_topic_partition_list_destroy(l);
	if (err) {
		snprintf(errstr, errsz, "assign: %s", rd_kafka_err2str(err));
		return -EIO;
	}
	return 0;
}

struct kn_aggregator *kn_aggregator_from_config(const struct kn_config *c, int n_parts,
						struct kn_agg_def **defs)
{
	*defs = kn_calloc((size_t)c->n_aggs, sizeof(**defs));
	if (!*defs)
		return NULL;
	for (int i = 0; i < c->n_aggs; i++)
		(*defs)[i] = (struct kn_agg_def){c->aggs[i].name, c->aggs[i].dims,
						 (int)c->aggs[i].geo_precision, c->aggs[i].k};
	struct kn_agg_opts ao = {.window_ms = c->agg_window_ms,
				 .lateness_ms = c->agg_lateness_ms,
				 .max_events_per_person = c->agg_max_events,
				 .max_groups_per_person = c->agg_max_groups,
				 .exact_limit = (uint32_t)c->agg_exact_limit,
				 .person = (enum kn_id_kind)c->agg_person,
				 .epoch_ms = c->epoch_ms,
				 .max_state_bytes = c->agg_max_state_bytes,
				 .n_partitions = n_parts};
	return kn_aggregator_new(*defs, c->n_aggs, &ao);
}

static int make_aggregator(struct tx *tx)
{
	tx->agg = kn_aggregator_from_config(tx->cfg, tx->n_parts, &tx->defs);
	return tx->agg ? 0 : -ENOMEM;
}

static int setup(struct tx *tx, char *errstr, size_t errsz)
{
	const struct kn_config *c = tx->cfg;
	int err = kn_stack_open(c, true, &tx->st, errstr, errsz);

	if (err)
		return err;
	tx->pipe = tx->st.pipe;
	tx->batch = kn_calloc((size_t)c->batch_size, sizeof(*tx->batch));
	tx->data = kn_calloc((size_t)c->batch_size, sizeof(*tx->data));
	tx->data_part = kn_calloc((size_t)c->batch_size, sizeof(*tx->data_part));
	tx->b = kn_batch_new((int)c->batch_size, true);
	tx->trace = kn_trace_new();
	if (!tx->batch || !tx->data || !tx->data_part || !tx->b || !tx->trace) {
		snprintf(errstr, errsz, "out of memory");
		return -ENOMEM;
	}
	if ((err = make_clients(tx, errstr, errsz)) || (err = discover(tx, errstr, errsz)))
		return err;
	if ((err = make_aggregator(tx))) {
		snprintf(errstr, errsz, "out of memory");
		return err;
	}
	return restore_and_assign(tx, errstr, errsz);
}

static void teardown(struct tx *tx)
{
	if (tx->q)
		rd_kafka_queue_destroy(tx->q);
	if (tx->cons) {
		rd_kafka_consumer_close(tx->cons);
		rd_kafka_destroy(tx->cons);
	}
	rd_kafka_topic_t *ts[] = {tx->t_out, tx->t_dlq, tx->t_agg, tx->t_stats};
	for (size_t i = 0; i < 4; i++)
		if (ts[i])
			rd_kafka_topic_destroy(ts[i]);
	if (tx->prod)
		rd_kafka_destroy(tx->prod);
	kn_metrics_stop(tx->metrics);
	kn_aggregator_destroy(tx->agg);
	kn_free(tx->defs);
	kn_free(tx->parts);
	kn_free(tx->first_part);
	kn_free(tx->batch);
	kn_free(tx->data);
	kn_free(tx->data_part);
	kn_batch_destroy(tx->b);
	kn_trace_destroy(tx->trace);
	kn_stack_close(&tx->st);
}

/* ---- the loop ---- */

static int part_of(struct tx *tx, const rd_kafka_message_t *m, int *input)
{
	const char *name = rd_kafka_topic_name(m->rkt);

	for (int i = 0; i < tx->cfg->n_inputs; i++) {
		if (strcmp(tx->cfg->inputs[i].topic, name))
			continue;
		*input = i;
		if (tx->first_part[i] < 0)
			return -1;
		int p = tx->first_part[i] + m->partition;
		return p < tx->n_parts && tx->parts[p].topic == tx->cfg->inputs[i].topic ? p : -1;
	}
	return -1;
}

static int dead_letter(struct tx *tx, const rd_kafka_message_t *m, const struct kn_verdict *v,
		       uint32_t tag)
{
	bool payload = tx->cfg->dlq_include_payload;
	struct kn_dead_letter dl = {
		.reason = kn_dead_reason_name(v->reason),
		.detail = v->detail,
		.src_topic = rd_kafka_topic_name(m->rkt),
		.src_partition = m->partition,
		.src_offset = m->offset,
		.schema_id = v->schema_id,
	};

	return produce(tx, tx->t_dlq, NULL, 0, payload ? m->payload : NULL, payload ? m->len : 0,
		       kn_dead_letter_headers(&dl), tag);
}

/* Advertiser aggregates take only events with both consents explicitly
 * given, and never a minor's. Returns how many were added, or -ENOMEM. */
static int aggregate_batch(struct tx *tx, const struct kn_batch *b)
{
	int added = 0;

	for (int i = 0; i < b->n; i++) {
		const struct kn_deid *d = &b->deid[i];
		const rd_kafka_message_t *m = tx->data[i];
		if (b->rec[i].state != KN_REC_OUT)
			continue;
		if (!(d->consent_ads == 1 && d->consent_analytics == 1 && !d->minor)) {
			tx->not_aggregated++;
			continue;
		}
		if (kn_aggregator_add(tx->agg, d, b->rec[i].ev.role[KN_ROLE_TIMESTAMP].l,
				      tx->data_part[i], m->offset) == KN_AGG_ERROR) {
			snprintf(tx->err, sizeof(tx->err), "aggregation: out of memory");
			return -ENOMEM;
		}
		added++;
	}
	return added;
}

/* Writes each record's de-identified event or dead letter into the open
 * transaction (unless an earlier run already did: a replay) and moves the
 * positions on. *queued counts the records written. */
static int produce_batch(struct tx *tx, const struct kn_batch *b, uint32_t tag, uint32_t *queued)
{
	int err = 0;

	for (int i = 0; i < b->n && !err; i++) {
		const struct kn_rec *r = &b->rec[i];
		const rd_kafka_message_t *m = tx->data[i];
		struct tpart *tp = &tx->parts[tx->data_part[i]];
		if (r->state == KN_REC_DROPPED) {
			tx->dropped++; /* withheld by the policy: no output anywhere */
		} else if (m->offset < tp->deid_done) {
			tx->skipped++; /* replay: its de-identified output is already committed */
		} else {
			err = r->state == KN_REC_OUT
				      ? produce(tx, tx->t_out, r->key_len ? r->key : NULL,
						r->key_len, b->arena + r->out_off, r->out_len, NULL,
						tag)
				      : dead_letter(tx, m, &r->v, tag);
			r->state == KN_REC_OUT ? tx->produced++ : tx->dead++;
			*queued += !err;
		}
		tp->position = m->offset + 1;
		tp->eof = false;
		kn_aggregator_set_idle(tx->agg, tx->data_part[i], false);
		tx->dirty = true;
	}
	return err;
}

/* Sorts the consumed batch: the records of known partitions go to the
 * pipeline's batch, errors are logged, end-of-partition events wait. */
static int64_t gather(struct tx *tx, ssize_t n)
{
	int64_t min_ts = INT64_MAX, now = (int64_t)time(NULL) * 1000;
	struct kn_batch *b = tx->b;
	int input;

	b->n = 0;
	for (ssize_t i = 0; i < n; i++) {
		rd_kafka_message_t *m = tx->batch[i];
		int p;
		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
			continue; /* marked after the batch: it follows the partition's records */
		if (m->err) {
			kn_warn("txrun", "consume: %s", rd_kafka_message_errstr(m));
			continue;
		}
		if ((p = part_of(tx, m, &input)) < 0)
			continue; /* a partition added after start-up: picked up on restart */
		int64_t ts = rd_kafka_message_timestamp(m, NULL);
		tx->data[b->n] = m;
		tx->data_part[b->n] = p;
		b->rec[b->n++] = (struct kn_rec){.msg = m->payload,
						 .len = m->len,
						 .expected_type = (int)tx->cfg->inputs[input].type,
						 .ref_ms = ts > 0 ? ts : now};
		if (ts > 0 && ts < min_ts)
			min_ts = ts;
	}
	return min_ts == INT64_MAX ? 0 : min_ts;
}

/* One consumed batch through every step, each step's end marked. */
static int process_batch(struct tx *tx, ssize_t n)
{
	struct kn_batch *b = tx->b;
	int64_t min_ts = gather(tx, n);
	struct kn_tspan span;
	uint32_t queued = 0;
	int added, err;

	if (!b->n)
		return 0;
	kn_trace_begin(tx->trace, &span, (uint32_t)b->n, min_ts);
	kn_trace_mark(tx->trace, &span, KN_STAGE_DECODE, (uint32_t)kn_pipeline_decode(tx->pipe, b));
	kn_trace_mark(tx->trace, &span, KN_STAGE_POLICY, (uint32_t)kn_pipeline_admit(tx->pipe, b));
	kn_trace_mark(tx->trace, &span, KN_STAGE_DEID,
		      (uint32_t)kn_pipeline_deidentify(tx->pipe, b));
	if ((added = aggregate_batch(tx, b)) < 0)
		return added;
	kn_trace_mark(tx->trace, &span, KN_STAGE_AGGREGATE, (uint32_t)added);
	err = produce_batch(tx, b, kn_trace_tag(&span), &queued);
	kn_trace_mark(tx->trace, &span, KN_STAGE_PRODUCE, queued);
	kn_trace_await(tx->trace, &span, queued);
	if (min_ts && (!tx->txn_min_ts || min_ts < tx->txn_min_ts))
		tx->txn_min_ts = min_ts;
	tx->txn_records += (uint32_t)b->n;
	return err;
}

static void mark_eof(struct tx *tx, const rd_kafka_message_t *m)
{
	int input, p = part_of(tx, m, &input);

	if (p >= 0 && !tx->parts[p].eof) {
		tx->parts[p].eof = true;
		tx->parts[p].eof_since = now_ms();
	}
}

static bool all_eof(const struct tx *tx)
{
	for (int p = 0; p < tx->n_parts; p++)
		if (!tx->parts[p].eof)
			return false;
	return true;
}

/* Closes due windows into the open transaction, commits it with the
 * checkpointed input offsets, and begins the next one. */
static int commit_cycle(struct tx *tx, bool flush)
{
	struct kn_agg_sink sink = {on_row, on_summary, tx};
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(tx->n_parts);
	int64_t now = now_ms(), until;
	uint64_t rows = tx->rows;
	struct kn_tspan cyc;
	char meta[160];
	int err;

	kn_trace_txn_begin(tx->trace, &cyc, tx->txn_records, tx->txn_min_ts);
	for (int p = 0; p < tx->n_parts; p++)
		if (tx->parts[p].eof && now - tx->parts[p].eof_since >= tx->cfg->agg_idle_ms)
			kn_aggregator_set_idle(tx->agg, p, true);
	if (kn_aggregator_advance(tx->agg, flush, &sink) < 0 && !tx->err[0])
		snprintf(tx->err, sizeof(tx->err), "aggregation: out of memory");
	if (tx->err[0]) {
		rd_kafka_topic_partition_list_destroy(l);
		return -EIO;
	}
	kn_trace_txn_mark(tx->trace, &cyc, KN_STAGE_WINDOW, (uint32_t)(tx->rows - rows));
	until = kn_aggregator_emitted_until(tx->agg);
	for (int p = 0; p < tx->n_parts; p++) {
		int64_t off, max_ts;
		if (tx->parts[p].position < 0)
			continue; /* never read, nothing committed before: nothing to say */
		kn_aggregator_checkpoint(tx->agg, p, tx->parts[p].position, &off, &max_ts);
		/* A replay has not yet caught up with what an earlier run already
		 * wrote: never move deid_done backwards. */
		if (tx->parts[p].position > tx->parts[p].deid_done)
			tx->parts[p].deid_done = tx->parts[p].position;
		fmt_meta(meta, sizeof(meta), until, max_ts, tx->parts[p].deid_done);
		rd_kafka_topic_partition_t *tp = rd_kafka_topic_partition_list_add(
			l, tx->parts[p].topic, tx->parts[p].partition);
		tp->offset = off;
		tp->metadata = kn_strdup(meta);
		tp->metadata_size = strlen(meta);
	}
	rd_kafka_consumer_group_metadata_t *gm = rd_kafka_consumer_group_metadata(tx->cons);
	err = TXN(tx, "send_offsets_to_transaction",
		  rd_kafka_send_offsets_to_transaction(tx->prod, l, gm, TXN_TIMEOUT_MS));
	rd_kafka_consumer_group_metadata_destroy(gm);
	rd_kafka_topic_partition_list_destroy(l); /* frees the metadata strings */
	if (!err)
		err = TXN(tx, "commit_transaction",
			  rd_kafka_commit_transaction(tx->prod, TXN_TIMEOUT_MS));
	if (!err)
		err = TXN(tx, "begin_transaction", rd_kafka_begin_transaction(tx->prod));
	if (!err)
		kn_trace_txn_mark(tx->trace, &cyc, KN_STAGE_COMMIT, tx->txn_records);
	tx->transactions += !err;
	tx->txn_records = 0;
	tx->txn_min_ts = 0;
	tx->dirty = false;
	return err;
}

static void publish(struct tx *tx)
{
	struct kn_metrics_snapshot *s = &tx->snap;
	struct kn_agg_metrics m;

	if (!tx->metrics)
		return;
	kn_aggregator_metrics(tx->agg, &m);
	s->pipe = *kn_pipeline_stats(tx->pipe);
	s->policy = *kn_pipeline_policy_stats(tx->pipe);
	s->produced = tx->produced;
	s->dead_lettered = tx->dead;
	s->trace = *kn_trace_stats(tx->trace);
	s->aggregating = true;
	s->agg_late = m.late;
	s->agg_bounded = m.bounded;
	s->agg_rows = tx->rows;
	s->agg_suppressed_groups = tx->suppressed_groups;
	s->open_windows = m.open_windows;
	s->state_bytes = m.state_bytes;
	s->transactions = tx->transactions;
	s->assigned = tx->n_parts;
	/* Offsets go through the transaction, so librdkafka's own lag (based on
	 * its committed offsets) is unknown here: use the cached high
	 * watermarks against the positions instead. */
	s->consumer_lag = 0;
	for (int p = 0; p < tx->n_parts; p++) {
		int64_t lo, hi;
		if (rd_kafka_get_watermark_offsets(tx->cons, tx->parts[p].topic,
						   tx->parts[p].partition, &lo, &hi) ||
		    hi < 0) {
			s->consumer_lag = -1;
			break;
		}
		int64_t pos = tx->parts[p].position < 0 ? lo : tx->parts[p].position;
		s->consumer_lag += hi > pos ? hi - pos : 0;
	}
	s->healthy = !tx->err[0] && tx->n_parts > 0;
	snprintf(s->unhealthy_reason, sizeof(s->unhealthy_reason), "%.150s",
		 tx->err[0] ? tx->err : "no input partition");
	kn_metrics_publish(tx->metrics, s);
}

static int loop(struct tx *tx)
{
	const struct kn_run_opts *o = tx->o;
	int64_t last = now_ms(), last_keys = 0, seen = 0;
	int err = TXN(tx, "begin_transaction", rd_kafka_begin_transaction(tx->prod));

	while (!err && !*o->stop) {
		if (now_ms() - last_keys >= KN_KEYS_CHECK_MS) {
			if ((err = kn_run_maintain_keys(tx->st.keys, tx->cfg, tx->err,
							sizeof(tx->err))))
				break;
			last_keys = now_ms();
		}
		ssize_t n =
			kn_kafka_consume_ready(tx->q, 100, tx->batch, (size_t)tx->cfg->batch_size);
		int64_t t0 = now_us();
		err = process_batch(tx, n);
		for (ssize_t i = 0; i < n; i++) {
			if (tx->batch[i]->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
				mark_eof(tx, tx->batch[i]);
			rd_kafka_message_destroy(tx->batch[i]);
		}
		seen += n > 0 ? n : 0;
		if (tx->b->n > 0) /* records, not just end-of-partition events */
			kn_hist_add(&tx->snap.batch, now_us() - t0);
		publish(tx);
		rd_kafka_poll(tx->prod, 0);
		rd_kafka_poll(tx->cons, 0); /* the main queue: statistics, errors */
		if (tx->st.erasure)
			kn_erasure_poll(tx->st.erasure);
		if (err)
			break;
		bool drained = o->until_eof && n <= 0 && all_eof(tx);
		if (drained || (o->max_messages && seen >= o->max_messages))
			return commit_cycle(tx, drained);
		if (now_ms() - last >= tx->cfg->commit_interval_ms && tx->dirty) {
			err = commit_cycle(tx, false);
			last = now_ms();
		}
	}
	/* A stop (SIGTERM): commit what is done; open windows resume on restart. */
	return err ? err : commit_cycle(tx, false);
}

int kn_txrun(const struct kn_config *c, const struct kn_run_opts *o, char *errstr,
	     size_t errstr_size)
{
	struct tx *tx = kn_calloc(1, sizeof(*tx));
	struct kn_agg_metrics m;
	int err;

	if (!tx) {
		snprintf(errstr, errstr_size, "out of memory");
		return -ENOMEM;
	}
	tx->cfg = c;
	tx->o = o;
	err = setup(tx, errstr, errstr_size);
	if (!err && o->metrics_addr)
		err = kn_metrics_start(o->metrics_addr, &tx->metrics, errstr, errstr_size);
	if (!err) {
		kn_info("txrun",
			"exactly-once: %d partition(s) of %d topic(s), %d aggregate(s), "
			"transactional.id '%s'",
			tx->n_parts, c->n_inputs, c->n_aggs, c->transactional_id);
		err = loop(tx);
		if (err)
			snprintf(errstr, errstr_size, "%s", tx->err);
		kn_aggregator_metrics(tx->agg, &m);
		kn_info("txrun",
			"deid=%" PRIu64 " dead_letter=%" PRIu64 " dropped=%" PRIu64
			" replayed=%" PRIu64 " not_aggregated=%" PRIu64 " aggregated=%" PRIu64
			" late=%" PRIu64 " bounded=%" PRIu64 " rows=%" PRIu64 " summaries=%" PRIu64
			" transactions=%" PRIu64 " open_windows=%" PRIu64 " state_bytes=%" PRIu64,
			tx->produced, tx->dead, tx->dropped, tx->skipped, tx->not_aggregated,
			m.added, m.late, m.bounded, tx->rows, tx->summaries, tx->transactions,
			m.open_windows, m.state_bytes);
		if (o->stats)
			*o->stats = *kn_pipeline_stats(tx->pipe);
	}
	teardown(tx);
	kn_free(tx);
	return err;
}
