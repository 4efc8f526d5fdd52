#include "eos.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "avrobin.h"
#include "clock.h"
#include "encode.h"
#include "engine.h"
#include "kn_alloc.h"
#include "log.h"
#include "stop.h"

#define START_TIMEOUT_MS 30000 /* metadata and committed offsets at start-up */
#define META_MAX	 160

struct tpart {
	const char *topic; /* the config's string */
	int32_t partition;
	int64_t position;  /* next offset to read; -1 before the first message */
	int64_t deid_done; /* offsets below it already have de-identified output */
	bool eof;
	int64_t eof_since;
};

struct eos {
	struct tpart *parts;
	int n_parts;
	int *first_part;     /* per input topic: index of its partition 0 in parts; -1: none */
	const char **topics; /* the input topics, as the consumer indexes them */
	struct kn_tp *tps;   /* n_parts: checkpoints, lag */
	char (*meta)[META_MAX];
	int t_agg, t_stats;
	uint8_t abuf[KN_FRAME_LEN + KN_AGG_MAX_BYTES];
	int64_t txn_min_ts; /* earliest Kafka timestamp in the open transaction */
	uint32_t txn_records;
	int64_t last_cycle; /* mono ms of the last commit cycle */
	bool dirty;	    /* the open transaction holds work */
	int out_err;	    /* first failure writing rows or summaries */
	uint64_t skipped, rows, summaries, transactions;
};

static struct eos *eos(struct kn_engine *e)
{
	return e->m;
}

/* Delivery reports: the batch tag comes back as the token. */
static void on_delivery(void *opaque, const struct kn_delivery *d)
{
	struct kn_engine *e = opaque;

	if (!d->err && d->token)
		kn_trace_delivered(e->trace, (uint32_t)d->token);
}

/* A failure of the transport, as the run's result: fenced stays fenced,
 * everything else but a stop is -EIO; e->err says why. */
static int failed(struct kn_engine *e, int err)
{
	if (err == -ECANCELED)
		return err;
	if (!e->err[0])
		snprintf(e->err, sizeof(e->err), "%s",
			 kn_producer_error(e->out) ? kn_producer_error(e->out) : "producer failed");
	return err == KN_KAFKA_FENCED ? KN_RUN_FENCED : -EIO;
}

/* ---- aggregate output ---- */

static void on_row(void *opaque, const struct kn_agg_row *row)
{
	struct kn_engine *e = opaque;
	struct eos *x = eos(e);
	char key[1024];
	size_t n, kl;

	kn_frame_put(x->abuf, (int32_t)e->cfg->agg_schema_id);
	n = kn_encode_agg_row(row, e->cfg->agg_window_ms,
			      kn_id_kind_name((enum kn_id_kind)e->cfg->agg_person),
			      x->abuf + KN_FRAME_LEN);
	kl = (size_t)snprintf(key, sizeof(key), "%s|%" PRId64, row->def->name, row->window_start);
	for (int d = 0; d < KN_DIMS && kl < sizeof(key); d++)
		if (row->def->dims & (1u << d))
			kl += (size_t)snprintf(key + kl, sizeof(key) - kl, "|%s",
					       row->dim[d] ? row->dim[d] : "");
	if (kl >= sizeof(key))
		kl = sizeof(key) - 1;
	if (!x->out_err &&
	    !(x->out_err = kn_producer_send_wait(e->out, x->t_agg, key, kl, x->abuf,
						 n + KN_FRAME_LEN, row->window_end, NULL, 0)))
		x->rows++;
}

static void on_summary(void *opaque, const struct kn_agg_summary *s)
{
	struct kn_engine *e = opaque;
	struct eos *x = eos(e);
	char key[300];
	size_t n;

	kn_frame_put(x->abuf, (int32_t)e->cfg->agg_stats_schema_id);
	n = kn_encode_agg_summary(s, e->cfg->agg_mode, &e->cfg->agg_dp, x->abuf + KN_FRAME_LEN);
	snprintf(key, sizeof(key), "%s|%" PRId64, s->def->name, s->window_start);
	if (!x->out_err &&
	    !(x->out_err = kn_producer_send_wait(e->out, x->t_stats, key, strlen(key), x->abuf,
						 n + KN_FRAME_LEN, s->window_end, NULL, 0)))
		x->summaries++;
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

static int clients(struct kn_engine *e, char *errstr, size_t errsz)
{
	const struct kn_config *c = e->cfg;
	struct eos *x = eos(e);
	struct kn_producer_opts po = {KN_CLIENT_TX_PRODUCER, on_delivery, e, NULL};
	struct kn_consumer_opts co = {
		.role = KN_CLIENT_TX_CONSUMER, .topics = x->topics, .n_topics = c->n_inputs};
	int err;

	if ((err = kn_producer_new(c, &po, &e->out, errstr, errsz)) ||
	    (err = kn_consumer_new(c, &co, &e->in, errstr, errsz)))
		return err;
	if ((e->t_out = kn_producer_topic(e->out, c->topic_output)) < 0 ||
	    (e->t_dlq = kn_producer_topic(e->out, c->topic_dead_letter)) < 0 ||
	    (x->t_agg = kn_producer_topic(e->out, c->agg_topic)) < 0 ||
	    (x->t_stats = kn_producer_topic(e->out, c->agg_stats_topic)) < 0) {
		snprintf(errstr, errsz, "out of memory");
		return -ENOMEM;
	}
	/* Fences any older instance with this transactional.id and aborts what
	 * it left open. */
	if ((err = kn_producer_txn(e->out, KN_TXN_INIT, NULL, 0, NULL))) {
		err = failed(e, err);
		snprintf(errstr, errsz, "%s",
			 err == -ECANCELED ? "stopped while starting" : e->err);
	}
	return err;
}

/* Every partition of every input topic, from the cluster's metadata. */
static int discover(struct kn_engine *e, char *errstr, size_t errsz)
{
	const struct kn_config *c = e->cfg;
	struct eos *x = eos(e);

	for (int i = 0; i < c->n_inputs; i++) {
		int n = kn_consumer_partitions(e->in, c->inputs[i].topic,
					       kn_mono_ms() + START_TIMEOUT_MS, errstr, errsz);
		x->first_part[i] = -1;
		if (n == -ENOENT) {
			/* Its records wait in Kafka; a restart after it exists reads them. */
			kn_warn("run", "input topic %s does not exist: not consumed until restart",
				c->inputs[i].topic);
			continue;
		}
		if (n == -ECANCELED) {
			snprintf(errstr, errsz, "stopped while starting");
			return n;
		}
		if (n < 0)
			return -ENOENT;
		struct tpart *np = kn_realloc(x->parts, sizeof(*np) * (size_t)(x->n_parts + n));
		if (!np)
			return -ENOMEM;
		x->parts = np;
		x->first_part[i] = x->n_parts;
		for (int p = 0; p < n; p++)
			x->parts[x->n_parts++] = (struct tpart){c->inputs[i].topic, p, -1, 0};
	}
	if (!x->n_parts) {
		snprintf(errstr, errsz, "none of the input topics exists");
		return -ENOENT;
	}
	x->tps = kn_calloc((size_t)x->n_parts, sizeof(*x->tps));
	x->meta = kn_calloc((size_t)x->n_parts, sizeof(*x->meta));
	return x->tps && x->meta ? 0 : -ENOMEM;
}

/* Reads committed offsets and their metadata, restores, and assigns. */
static int restore_and_assign(struct kn_engine *e, char *errstr, size_t errsz)
{
	struct eos *x = eos(e);
	int restored = 0, err;

	for (int p = 0; p < x->n_parts; p++)
		x->tps[p] = (struct kn_tp){x->parts[p].topic, x->parts[p].partition};
	err = kn_consumer_committed(e->in, x->tps, x->n_parts, kn_mono_ms() + START_TIMEOUT_MS,
				    errstr, errsz);
	if (err)
		return err;
	for (int p = 0; p < x->n_parts; p++) {
		struct kn_tp *tp = &x->tps[p];
		int64_t until, max_ts, done;
		if (tp->offset == KN_OFFSET_NONE) {
			tp->offset = KN_OFFSET_BEGINNING;
			continue;
		}
		x->parts[p].position = x->parts[p].deid_done = tp->offset;
		if (parse_meta(tp->meta, tp->meta_len, &until, &max_ts, &done)) {
			if (e->agg)
				kn_aggregator_restore(e->agg, p, max_ts, until);
			x->parts[p].deid_done = done;
			restored++;
		}
	}
	if (restored)
		kn_info("run",
			"restored from Kafka: %d partition(s), windows released up to %" PRId64,
			restored, e->agg ? kn_aggregator_emitted_until(e->agg) : 0);
	return kn_consumer_assign(e->in, x->tps, x->n_parts, errstr, errsz);
}

static int start(struct kn_engine *e, char *errstr, size_t errsz)
{
	const struct kn_config *c = e->cfg;
	struct eos *x = kn_calloc(1, sizeof(*x));
	int err;

	if (!x) {
		snprintf(errstr, errsz, "out of memory");
		return -ENOMEM;
	}
	e->m = x;
	x->topics = kn_calloc((size_t)c->n_inputs, sizeof(*x->topics));
	x->first_part = kn_calloc((size_t)c->n_inputs, sizeof(*x->first_part));
	if (!x->topics || !x->first_part) {
		snprintf(errstr, errsz, "out of memory");
		return -ENOMEM;
	}
	for (int i = 0; i < c->n_inputs; i++)
		x->topics[i] = c->inputs[i].topic;
	if ((err = clients(e, errstr, errsz)) || (err = discover(e, errstr, errsz)))
		return err;
	if (c->n_aggs &&
	    !(e->agg = kn_aggregator_from_config(c, x->n_parts, e->st.keys, &e->defs))) {
		snprintf(errstr, errsz, "out of memory");
		return -ENOMEM;
	}
	if ((err = restore_and_assign(e, errstr, errsz)))
		return err;
	if ((err = kn_producer_txn(e->out, KN_TXN_BEGIN, NULL, 0, NULL))) {
		err = failed(e, err);
		snprintf(errstr, errsz, "%s",
			 err == -ECANCELED ? "stopped while starting" : e->err);
		return err;
	}
	x->last_cycle = e->last_progress = kn_mono_ms();
	kn_info("run",
		"exactly-once: %d partition(s) of %d topic(s), %d aggregate(s), "
		"transactional.id '%s'",
		x->n_parts, c->n_inputs, c->n_aggs, c->transactional_id);
	return 0;
}

/* ---- the batch ---- */

static int part_of(const struct kn_engine *e, const struct kn_msg *m)
{
	const struct eos *x = e->m;
	int first = m->topic_idx >= 0 ? x->first_part[m->topic_idx] : -1;
	int p = first + m->partition;

	if (first < 0 || m->partition < 0 || p >= x->n_parts ||
	    x->parts[p].topic != x->topics[m->topic_idx])
		return -1; /* a partition added after start-up: picked up on restart */
	return p;
}

static bool accept(struct kn_engine *e, const struct kn_msg *m, int *part)
{
	return (*part = part_of(e, m)) >= 0;
}

/* Writes each record's de-identified event or dead letter into the open
 * transaction (unless an earlier run already did: a replay) and moves the
 * positions on. */
static int emit(struct kn_engine *e, uint32_t tag, uint32_t *queued)
{
	struct eos *x = eos(e);
	int err = 0;

	for (int i = 0; i < e->b->n && !err; i++) {
		const struct kn_msg *m = kn_engine_msg(e, i);
		int p = e->part_of[i];
		struct tpart *tp = &x->parts[p];
		if (e->b->rec[i].state == KN_REC_DROPPED)
			e->dropped++; /* withheld by the policy: no output anywhere */
		else if (m->offset < tp->deid_done)
			x->skipped++; /* replay: its de-identified output is already committed */
		else if (!(err = kn_engine_send(e, i, tag)))
			(*queued)++;
		tp->position = m->offset + 1;
		tp->eof = false;
		if (e->agg)
			kn_aggregator_set_idle(e->agg, p, false);
		if (m->ts_ms && (!x->txn_min_ts || m->ts_ms < x->txn_min_ts))
			x->txn_min_ts = m->ts_ms;
		x->txn_records++;
		x->dirty = true;
	}
	return err ? failed(e, err) : 0;
}

static void eof(struct kn_engine *e, const struct kn_msg *m)
{
	int p = part_of(e, m);
	struct eos *x = eos(e);

	if (p >= 0 && !x->parts[p].eof) {
		x->parts[p].eof = true;
		x->parts[p].eof_since = kn_mono_ms();
	}
}

/* ---- transactions ---- */

/* The input positions to commit, with their restart metadata (eos.h).
 * Returns the count written to x->tps. */
static int checkpoint(struct kn_engine *e)
{
	struct eos *x = eos(e);
	int64_t until = e->agg ? kn_aggregator_emitted_until(e->agg) : 0;
	int n = 0;

	for (int p = 0; p < x->n_parts; p++) {
		struct tpart *tp = &x->parts[p];
		int64_t off = tp->position, max_ts = 0;
		if (tp->position < 0)
			continue; /* never read, nothing committed before: nothing to say */
		if (e->agg)
			kn_aggregator_checkpoint(e->agg, p, tp->position, &off, &max_ts);
		/* A replay has not yet caught up with what an earlier run already
		 * wrote: never move deid_done backwards. */
		if (tp->position > tp->deid_done)
			tp->deid_done = tp->position;
		fmt_meta(x->meta[n], META_MAX, until, max_ts, tp->deid_done);
		x->tps[n] = (struct kn_tp){tp->topic, tp->partition, off, x->meta[n],
					   strlen(x->meta[n])};
		n++;
	}
	return n;
}

/* Closes due windows into the open transaction, commits it with the
 * checkpointed input offsets, and begins the next one. Returns 0, -EIO or
 * KN_RUN_FENCED (e->err says why), or -ECANCELED (stopped first). */
static int commit_cycle(struct kn_engine *e, bool flush)
{
	struct kn_agg_sink sink = {on_row, on_summary, e};
	struct eos *x = eos(e);
	int64_t now = kn_mono_ms();
	uint64_t rows = x->rows;
	struct kn_tspan cyc;
	int err;

	kn_trace_txn_begin(e->trace, &cyc, x->txn_records, x->txn_min_ts);
	if (e->agg) {
		for (int p = 0; p < x->n_parts; p++)
			if (x->parts[p].eof && now - x->parts[p].eof_since >= e->cfg->agg_idle_ms)
				kn_aggregator_set_idle(e->agg, p, true);
		if (kn_aggregator_advance(e->agg, flush, &sink) < 0) {
			snprintf(e->err, sizeof(e->err), "aggregation: out of memory");
			return -ENOMEM;
		}
	}
	if (x->out_err)
		return failed(e, x->out_err);
	kn_trace_txn_mark(e->trace, &cyc, KN_STAGE_WINDOW, (uint32_t)(x->rows - rows));
	int n = checkpoint(e);
	err = kn_producer_txn(e->out, KN_TXN_SEND_OFFSETS, x->tps, n, e->in);
	if (!err)
		err = kn_producer_txn(e->out, KN_TXN_COMMIT, NULL, 0, NULL);
	if (err)
		return failed(e, err);
	kn_trace_txn_mark(e->trace, &cyc, KN_STAGE_COMMIT, x->txn_records);
	x->transactions++;
	e->last_progress = kn_mono_ms();
	x->txn_records = 0;
	x->txn_min_ts = 0;
	x->dirty = false;
	err = kn_producer_txn(e->out, KN_TXN_BEGIN, NULL, 0, NULL);
	return err ? failed(e, err) : 0;
}

/* Idle, a transaction still goes out now and then: it is how a fenced
 * instance finds out (the broker tells only who asks). */
static int tick(struct kn_engine *e)
{
	struct eos *x = eos(e);
	int64_t since = kn_mono_ms() - x->last_cycle;
	int err = 0;

	if (since >= e->cfg->commit_interval_ms && (x->dirty || since >= KN_TXN_HEARTBEAT_MS)) {
		err = commit_cycle(e, false);
		x->last_cycle = kn_mono_ms();
	}
	return err;
}

static bool drained(struct kn_engine *e)
{
	struct eos *x = eos(e);

	for (int p = 0; p < x->n_parts; p++)
		if (!x->parts[p].eof)
			return false;
	return true;
}

static bool gave_up(struct kn_engine *e)
{
	(void)e; /* every partition is assigned by this instance itself */
	return false;
}

/* A stop or the end of input: commit what is done; open windows resume on
 * restart (drained: the input is complete, every window closes). */
static int finish(struct kn_engine *e, int err, bool done)
{
	if (!err)
		err = commit_cycle(e, done);
	if (err == -ECANCELED)
		snprintf(e->err, sizeof(e->err),
			 "stopped before the open transaction could be committed: its input is "
			 "redone on restart");
	return err;
}

static void health(struct kn_engine *e, struct kn_metrics_snapshot *s)
{
	struct eos *x = eos(e);
	int n = 0;

	s->agg_rows = x->rows;
	s->transactions = x->transactions;
	s->assigned = x->n_parts;
	/* Offsets go through the transaction, so librdkafka's own lag (based on
	 * its committed offsets) is unknown here: the cached high watermarks
	 * against the positions instead. */
	for (int p = 0; p < x->n_parts; p++)
		x->tps[n++] = (struct kn_tp){x->parts[p].topic, x->parts[p].partition,
					     x->parts[p].position};
	s->consumer_lag = kn_consumer_lag_of(e->in, x->tps, n);
	s->last_progress_ms = e->last_progress;
	s->work_pending = x->dirty || s->consumer_lag > 0;
	s->healthy = !e->err[0] && x->n_parts > 0;
	snprintf(s->unhealthy_reason, sizeof(s->unhealthy_reason), "%.150s",
		 e->err[0] ? e->err : "no input partition");
}

static void log_stats(struct kn_engine *e, char *buf, size_t size)
{
	struct eos *x = eos(e);
	struct kn_agg_metrics m = {0};

	if (e->agg)
		kn_aggregator_metrics(e->agg, &m);
	snprintf(buf, size,
		 " replayed=%" PRIu64 " not_aggregated=%" PRIu64 " aggregated=%" PRIu64
		 " late=%" PRIu64 " bounded=%" PRIu64 " rows=%" PRIu64 " summaries=%" PRIu64
		 " transactions=%" PRIu64 " open_windows=%" PRIu64 " state_bytes=%" PRIu64,
		 x->skipped, e->not_aggregated, m.added, m.late, m.bounded, x->rows, x->summaries,
		 x->transactions, m.open_windows, m.state_bytes);
}

static void destroy(struct kn_engine *e)
{
	struct eos *x = eos(e);

	kn_free(x->parts);
	kn_free(x->first_part);
	kn_free(x->topics);
	kn_free(x->tps);
	kn_free(x->meta);
	kn_free(x);
	e->m = NULL;
}

const struct kn_mode kn_mode_eos = {
	.name = "exactly-once",
	.start = start,
	.accept = accept,
	.emit = emit,
	.eof = eof,
	.tick = tick,
	.drained = drained,
	.gave_up = gave_up,
	.finish = finish,
	.health = health,
	.log_stats = log_stats,
	.destroy = destroy,
};
