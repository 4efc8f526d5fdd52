#include "txrun.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aggregate.h"
#include "avrobin.h"
#include "clock.h"
#include "kafka_conf.h"
#include "kn_alloc.h"
#include "erasure.h"
#include "log.h"
#include "metrics.h"
#include "sink.h"
#include "stop.h"
#include "trace.h"
#include "txn.h"

#define START_TIMEOUT_MS 30000 /* metadata and committed offsets at start-up */

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
	int64_t txn_started;	/* mono ms the open transaction began */
	int64_t txn_timeout_ms; /* the producer's transaction.timeout.ms */
	int64_t last_progress;	/* mono ms of the last committed transaction */
	bool fenced;
	bool cancelled; /* a record could not be queued before a stop's deadline */
	bool orphaned;	/* a transactional call still runs: the producer is never freed (txn.h) */
	char err[512];
};

/* Delivery reports: the batch tag comes back as the message opaque. */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	struct tx *tx = opaque;

	(void)rk;
	if (!m->err && m->_private)
		kn_trace_delivered(tx->trace, (uint32_t)(uintptr_t)m->_private);
}

/* ---- transactions ---- */

/* Whether a fatal error means another producer with our transactional.id
 * took over. The coordinator also bumps the epoch when it aborts a
 * transaction that outlived transaction.timeout.ms (a long outage), which
 * librdkafka reports the same way: told apart by how long ours was open. */
static bool fenced_by_other(struct tx *tx, rd_kafka_resp_err_t code)
{
	char why[256];

	if (code == RD_KAFKA_RESP_ERR__FATAL)
		code = rd_kafka_fatal_error(tx->prod, why, sizeof(why));
	if (code != RD_KAFKA_RESP_ERR__FENCED && code != RD_KAFKA_RESP_ERR_PRODUCER_FENCED &&
	    code != RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH)
		return false;
	if (tx->txn_started && kn_mono_ms() - tx->txn_started >= tx->txn_timeout_ms) {
		snprintf(tx->err, sizeof(tx->err),
			 "the broker aborted this instance's transaction: it was open for %lld s, "
			 "longer than transaction.timeout.ms (an outage?); its input is redone by "
			 "the next run",
			 (long long)((kn_mono_ms() - tx->txn_started) / 1000));
		return false;
	}
	snprintf(tx->err, sizeof(tx->err),
		 "fenced: another kanon took over aggregate.transactional_id '%s' (two "
		 "instances with one id?); this one has stopped processing",
		 tx->cfg->transactional_id);
	tx->fenced = true;
	return true;
}

static int txn(struct tx *tx, enum kn_txn_op op, const rd_kafka_topic_partition_list_t *offs);

/* A failed call: says why in tx->err, aborts the transaction when required,
 * and returns KN_RUN_FENCED or -EIO. */
static int txn_fail(struct tx *tx, enum kn_txn_op op, rd_kafka_error_t *e)
{
	bool fenced = rd_kafka_error_is_fatal(e) && fenced_by_other(tx, rd_kafka_error_code(e));
	bool abort = op != KN_TXN_ABORT && rd_kafka_error_txn_requires_abort(e);

	if (!tx->err[0])
		snprintf(tx->err, sizeof(tx->err), "%s: %s%s", kn_txn_name(op),
			 rd_kafka_error_string(e), rd_kafka_error_is_fatal(e) ? " (fatal)" : "");
	rd_kafka_error_destroy(e);
	kn_err("txrun", "%s", tx->err);
	if (abort)
		txn(tx, KN_TXN_ABORT, NULL);
	return fenced ? KN_RUN_FENCED : -EIO;
}

/* Runs one transactional call (txn.h), retrying what librdkafka says is
 * retriable (a call that timed out resumes where it left off), for as long
 * as the broker takes: an outage is waited out. A stop cuts the wait at its
 * drain deadline; the open transaction is then left to the broker (or the
 * next instance's init_transactions) to abort, and its input is redone.
 * Returns 0, -EIO or KN_RUN_FENCED (tx->err says why), or -ECANCELED. */
static int txn(struct tx *tx, enum kn_txn_op op, const rd_kafka_topic_partition_list_t *offs)
{
	for (;;) {
		bool orphaned = false;
		if (tx->orphaned || (kn_stop_requested() && !kn_stop_drain_wait(INT64_MAX)))
			return -ECANCELED;
		rd_kafka_error_t *e = kn_txn_call(tx->prod, op, offs, tx->cons, &orphaned);
		if (orphaned) {
			tx->orphaned = true;
			return -ECANCELED;
		}
		if (!e)
			break;
		if (!rd_kafka_error_is_retriable(e))
			return txn_fail(tx, op, e);
		/* Not a time-out: back off, serving delivery reports meanwhile. */
		if (rd_kafka_error_code(e) != RD_KAFKA_RESP_ERR__TIMED_OUT)
			rd_kafka_poll(tx->prod, 100);
		rd_kafka_error_destroy(e);
	}
	if (op == KN_TXN_BEGIN)
		tx->txn_started = kn_mono_ms();
	return 0;
}

/* tag: the batch a record belongs to (kn_trace_tag), 0 for rows and
 * summaries; it comes back in the delivery report. */
/* ts_ms: the record's Kafka timestamp (0: now, for dead letters); for
 * outputs the event's time bucket or the window's end, never the
 * processing time, which would tell the event's time to the millisecond. */
static int produce(struct tx *tx, rd_kafka_topic_t *t, const void *key, size_t klen,
		   const void *val, size_t vlen, int64_t ts_ms, rd_kafka_headers_t *hdrs,
		   uint32_t tag)
{
	rd_kafka_resp_err_t err;

	for (;;) {
		err = rd_kafka_producev(
			tx->prod, RD_KAFKA_V_RKT(t), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
			RD_KAFKA_V_KEY(key, klen), RD_KAFKA_V_VALUE((void *)val, vlen),
			RD_KAFKA_V_TIMESTAMP(ts_ms), RD_KAFKA_V_HEADERS(hdrs),
			RD_KAFKA_V_OPAQUE((void *)(uintptr_t)tag), RD_KAFKA_V_END);
		if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
			break;
		/* Queue full: wait for deliveries, but not past a stop's drain
		 * deadline (the transaction is then abandoned, not committed). */
		if (kn_stop_requested() && !kn_stop_drain_wait(INT64_MAX)) {
			err = RD_KAFKA_RESP_ERR__QUEUE_FULL;
			break;
		}
		rd_kafka_poll(tx->prod, 50);
	}
	if (!err)
		return 0;
	if (hdrs)
		rd_kafka_headers_destroy(hdrs);
	if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
		tx->cancelled = true; /* the transaction lacks it: never commit it */
		return -ECANCELED;
	}
	if (fenced_by_other(tx, err))
		return KN_RUN_FENCED;
	if (!tx->err[0])
		snprintf(tx->err, sizeof(tx->err), "produce: %s", rd_kafka_err2str(err));
	return -EIO;
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
	if (!tx->err[0] &&
	    !produce(tx, tx->t_agg, key, kl, tx->abuf, n + KN_FRAME_LEN, row->window_end, NULL, 0))
		tx->rows++;
}

static void on_summary(void *opaque, const struct kn_agg_summary *s)
{
	struct tx *tx = opaque;
	char key[300];
	size_t n;

	kn_frame_put(tx->abuf, (int32_t)tx->cfg->agg_stats_schema_id);
	n = kn_encode_agg_summary(s, tx->cfg->agg_mode, &tx->cfg->agg_dp, tx->abuf + KN_FRAME_LEN);
	snprintf(key, sizeof(key), "%s|%" PRId64, s->def->name, s->window_start);
	if (!tx->err[0] && !produce(tx, tx->t_stats, key, strlen(key), tx->abuf, n + KN_FRAME_LEN,
				    s->window_end, NULL, 0))
		tx->summaries++;
	kn_info("aggregate", "%s window %" PRId64 ": %" PRIu64 " groups released", s->def->name,
		s->window_start, s->groups_released);
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

/* The producer's effective transaction.timeout.ms (fenced_by_other). */
static int64_t txn_timeout(rd_kafka_t *prod)
{
	char v[32];
	size_t n = sizeof(v);

	if (rd_kafka_conf_get(rd_kafka_conf(prod), "transaction.timeout.ms", v, &n))
		return 60000;
	return strtoll(v, NULL, 10);
}

static int make_clients(struct tx *tx, char *errstr, size_t errsz)
{
	const struct kn_config *c = tx->cfg;
	rd_kafka_conf_t *cc = kn_kafka_client_conf(c, KN_CLIENT_TX_CONSUMER, NULL, errstr, errsz);
	rd_kafka_conf_t *pc = kn_kafka_client_conf(c, KN_CLIENT_TX_PRODUCER, NULL, errstr, errsz);
	char why[512];
	int err;

	if (!cc || !pc)
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
	tx->txn_timeout_ms = txn_timeout(tx->prod);
	tx->q = rd_kafka_queue_get_consumer(tx->cons);
	tx->t_out = rd_kafka_topic_new(tx->prod, c->topic_output, NULL);
	tx->t_dlq = rd_kafka_topic_new(tx->prod, c->topic_dead_letter, NULL);
	tx->t_agg = rd_kafka_topic_new(tx->prod, c->agg_topic, NULL);
	tx->t_stats = rd_kafka_topic_new(tx->prod, c->agg_stats_topic, NULL);
	/* Fences any older instance with this transactional.id and aborts what
	 * it left open. */
	if ((err = txn(tx, KN_TXN_INIT, NULL))) {
		snprintf(errstr, errsz, "%s",
			 err == -ECANCELED ? "stopped while starting" : tx->err);
		return err;
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
		rd_kafka_resp_err_t err =
			kn_kafka_metadata(tx->cons, rkt, &md, kn_mono_ms() + START_TIMEOUT_MS);
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
		if (err == RD_KAFKA_RESP_ERR__TIMED_OUT && kn_stop_requested()) {
			snprintf(errstr, errsz, "stopped while starting");
			return -ECANCELED;
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
	err = kn_kafka_committed(tx->cons, l, kn_mono_ms() + START_TIMEOUT_MS);
	if (err == RD_KAFKA_RESP_ERR__TIMED_OUT && kn_stop_requested()) {
		snprintf(errstr, errsz, "stopped while starting");
		rd_kafka_topic_partition_list_destroy(l);
		return -ECANCELED;
	}
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
						const struct kn_keys *keys,
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
				 .mode = (enum kn_agg_mode)c->agg_mode,
				 .dp = c->agg_dp,
				 .noise_keys = keys,
				 .scope = c->release_scope,
				 .person = (enum kn_id_kind)c->agg_person,
				 .epoch_ms = c->epoch_ms,
				 .max_state_bytes = c->agg_max_state_bytes,
				 .n_partitions = n_parts};
	return kn_aggregator_new(*defs, c->n_aggs, &ao);
}

static int make_aggregator(struct tx *tx)
{
	tx->agg = kn_aggregator_from_config(tx->cfg, tx->n_parts, tx->st.keys, &tx->defs);
	return tx->agg ? 0 : -ENOMEM;
}

static int setup(struct tx *tx, char *errstr, size_t errsz)
{
	const struct kn_config *c = tx->cfg;
	int err = kn_stack_open(c, KN_STACK_MAINTAIN | KN_STACK_ERASURE, &tx->st, errstr, errsz);

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

/* Every transaction walked away from at a stop: still inside librdkafka
 * with the producer and tx (its callbacks' opaque), so both stay alive (and
 * reachable from here) until the process exits a moment later. */
static struct tx *orphans;

static void teardown(struct tx *tx)
{
	if (tx->q)
		rd_kafka_queue_destroy(tx->q);
	/* Assigned, never a group member: nothing to leave, nothing to wait for. */
	kn_kafka_close(tx->cons, false, 0);
	kn_metrics_stop(tx->metrics);
	kn_stack_close(&tx->st);
	if (tx->orphaned) {
		kn_warn("txrun", "a transactional call is still waiting for the broker: the "
				 "producer is left to the process's exit");
		orphans = tx;
		return;
	}
	rd_kafka_topic_t *ts[] = {tx->t_out, tx->t_dlq, tx->t_agg, tx->t_stats};
	for (size_t i = 0; i < 4; i++)
		if (ts[i])
			rd_kafka_topic_destroy(ts[i]);
	if (tx->prod)
		kn_kafka_destroy(tx->prod, 0, 0);
	kn_aggregator_destroy(tx->agg);
	kn_free(tx->defs);
	kn_free(tx->parts);
	kn_free(tx->first_part);
	kn_free(tx->batch);
	kn_free(tx->data);
	kn_free(tx->data_part);
	kn_batch_destroy(tx->b);
	kn_trace_destroy(tx->trace);
	kn_free(tx);
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

	return produce(tx, tx->t_dlq, NULL, 0, payload ? m->payload : NULL, payload ? m->len : 0, 0,
		       kn_dead_letter_headers(&dl), tag);
}

/* Offers every de-identified event to the aggregates, which decide what
 * they take (kn_agg_eligible). Returns how many were added, or -ENOMEM. */
static int aggregate_batch(struct tx *tx, const struct kn_batch *b)
{
	int added = 0;

	for (int i = 0; i < b->n; i++) {
		const rd_kafka_message_t *m = tx->data[i];
		if (b->rec[i].state != KN_REC_OUT)
			continue;
		int64_t written = rd_kafka_message_timestamp(m, NULL);
		switch (kn_aggregator_add(tx->agg, &b->deid[i],
					  b->rec[i].ev.role[KN_ROLE_TIMESTAMP].l, written,
					  tx->data_part[i], m->offset)) {
		case KN_AGG_ERROR:
			snprintf(tx->err, sizeof(tx->err), "aggregation: out of memory");
			return -ENOMEM;
		case KN_AGG_ADDED:
			added++;
			break;
		case KN_AGG_INELIGIBLE:
			tx->not_aggregated++;
			break;
		default:
			break;
		}
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
						r->key_len, b->arena + r->out_off, r->out_len,
						r->out_ts, NULL, tag)
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
	int64_t min_ts = INT64_MAX, now = kn_wall_ms();
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
		tx->parts[p].eof_since = kn_mono_ms();
	}
}

static bool all_eof(const struct tx *tx)
{
	for (int p = 0; p < tx->n_parts; p++)
		if (!tx->parts[p].eof)
			return false;
	return true;
}

/* The input positions to commit, with their restart metadata (see txrun.h). */
static rd_kafka_topic_partition_list_t *checkpoint(struct tx *tx)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(tx->n_parts);
	int64_t until = kn_aggregator_emitted_until(tx->agg);
	char meta[160];

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
	return l;
}

/* Closes due windows into the open transaction, commits it with the
 * checkpointed input offsets, and begins the next one. Returns 0, -EIO or
 * KN_RUN_FENCED (tx->err says why), or -ECANCELED (stopped first). */
static int commit_cycle(struct tx *tx, bool flush)
{
	struct kn_agg_sink sink = {on_row, on_summary, tx};
	rd_kafka_topic_partition_list_t *l;
	int64_t now = kn_mono_ms();
	uint64_t rows = tx->rows;
	struct kn_tspan cyc;
	int err;

	kn_trace_txn_begin(tx->trace, &cyc, tx->txn_records, tx->txn_min_ts);
	for (int p = 0; p < tx->n_parts; p++)
		if (tx->parts[p].eof && now - tx->parts[p].eof_since >= tx->cfg->agg_idle_ms)
			kn_aggregator_set_idle(tx->agg, p, true);
	if (kn_aggregator_advance(tx->agg, flush, &sink) < 0 && !tx->err[0])
		snprintf(tx->err, sizeof(tx->err), "aggregation: out of memory");
	if (tx->err[0])
		return tx->fenced ? KN_RUN_FENCED : -EIO;
	if (tx->cancelled)
		return -ECANCELED;
	kn_trace_txn_mark(tx->trace, &cyc, KN_STAGE_WINDOW, (uint32_t)(tx->rows - rows));
	l = checkpoint(tx);
	err = txn(tx, KN_TXN_SEND_OFFSETS, l);
	rd_kafka_topic_partition_list_destroy(l); /* frees the metadata strings */
	if (!err)
		err = txn(tx, KN_TXN_COMMIT, NULL);
	if (!err) {
		kn_trace_txn_mark(tx->trace, &cyc, KN_STAGE_COMMIT, tx->txn_records);
		tx->transactions++;
		tx->last_progress = kn_mono_ms();
		tx->txn_records = 0;
		tx->txn_min_ts = 0;
		tx->dirty = false;
		err = txn(tx, KN_TXN_BEGIN, NULL);
	}
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
	s->agg_suppressed_groups = m.groups_suppressed;
	s->agg_suppressed_events = m.events_suppressed;
	s->agg_windows_released = m.windows_closed;
	s->agg_dp = tx->cfg->agg_mode == KN_AGG_DP;
	s->agg_epsilon = tx->cfg->agg_dp.epsilon;
	s->agg_delta = tx->cfg->agg_dp.delta;
	s->agg_epsilon_spent = m.epsilon_spent;
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
	s->last_progress_ms = tx->last_progress;
	s->work_pending = tx->dirty || s->consumer_lag > 0;
	s->stall_ms = tx->cfg->stall_timeout_ms;
	s->healthy = !tx->err[0] && tx->n_parts > 0;
	snprintf(s->unhealthy_reason, sizeof(s->unhealthy_reason), "%.150s",
		 tx->err[0] ? tx->err : "no input partition");
	kn_metrics_publish(tx->metrics, s);
}

/* Fenced: another instance does the work now. Stay up, saying so on
 * /healthz, until asked to stop: exiting would have a supervisor restart
 * this instance, which would fence the other one in turn. */
static void stand_by(struct tx *tx)
{
	kn_err("txrun", "%s; standing by until stopped (exit code %d)", tx->err, KN_EXIT_FENCED);
	while (!kn_stop_requested()) {
		publish(tx);
		rd_kafka_poll(tx->prod, 200);
	}
}

static int loop(struct tx *tx)
{
	const struct kn_run_opts *o = tx->o;
	int64_t last = kn_mono_ms(), last_keys = 0, seen = 0;
	int err = txn(tx, KN_TXN_BEGIN, NULL);

	tx->last_progress = last;
	while (!err && !kn_stop_requested()) {
		if (kn_mono_ms() - last_keys >= KN_KEYS_CHECK_MS) {
			if ((err = kn_run_maintain_keys(tx->st.keys, tx->cfg, tx->err,
							sizeof(tx->err))))
				break;
			last_keys = kn_mono_ms();
		}
		ssize_t n =
			kn_kafka_consume_ready(tx->q, 100, tx->batch, (size_t)tx->cfg->batch_size);
		int64_t t0 = kn_mono_us();
		err = process_batch(tx, n);
		for (ssize_t i = 0; i < n; i++) {
			if (tx->batch[i]->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
				mark_eof(tx, tx->batch[i]);
			rd_kafka_message_destroy(tx->batch[i]);
		}
		seen += n > 0 ? n : 0;
		if (tx->b->n > 0) /* records, not just end-of-partition events */
			kn_hist_add(&tx->snap.batch, kn_mono_us() - t0);
		publish(tx);
		rd_kafka_poll(tx->prod, 0);
		rd_kafka_poll(tx->cons, 0); /* the main queue: statistics, errors */
		if (!err && tx->st.erasure && kn_erasure_poll(tx->st.erasure)) {
			snprintf(tx->err, sizeof(tx->err), "%s", kn_erasure_error(tx->st.erasure));
			err = -EIO;
		}
		if (err)
			break;
		bool drained = o->until_eof && n <= 0 && all_eof(tx);
		if (drained || (o->max_messages && seen >= o->max_messages))
			return commit_cycle(tx, drained);
		/* Idle, a transaction still goes out now and then: it is how a
		 * fenced instance finds out (the broker tells only who asks). */
		int64_t since = kn_mono_ms() - last;
		if (since >= tx->cfg->commit_interval_ms &&
		    (tx->dirty || since >= KN_TXN_HEARTBEAT_MS)) {
			err = commit_cycle(tx, false);
			last = kn_mono_ms();
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
	/* The endpoint first: /healthz says "starting" while Kafka connects. */
	err = o->metrics_addr ? kn_metrics_start(o->metrics_addr, &tx->metrics, errstr, errstr_size)
			      : 0;
	if (!err)
		err = setup(tx, errstr, errstr_size);
	if (err == -ECANCELED) { /* stopped before the first record: nothing to redo */
		kn_info("txrun", "stopped while starting");
		err = 0;
	} else if (!err) {
		kn_info("txrun",
			"exactly-once: %d partition(s) of %d topic(s), %d aggregate(s), "
			"transactional.id '%s'",
			tx->n_parts, c->n_inputs, c->n_aggs, c->transactional_id);
		err = loop(tx);
		kn_stop_settle(kn_run_exit_code(err));
		if (err == KN_RUN_FENCED && !o->until_eof)
			stand_by(tx);
		if (err == -ECANCELED)
			snprintf(errstr, errstr_size,
				 "stopped before the open transaction could be committed: its "
				 "input is redone on restart");
		else if (err)
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
	teardown(tx); /* frees tx */
	return err;
}
