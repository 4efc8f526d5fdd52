#include "consumer.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "clock.h"
#include "kafka_rd.h"
#include "kn_alloc.h"
#include "log.h"
#include "stop.h"

#define MAX_ASSIGNED 4096

struct assigned {
	char topic[256];
	int32_t partition;
	bool eof;
	int64_t start; /* on_assign's start offset (KN_OFFSET_NONE: committed) */
};

struct kn_consumer {
	rd_kafka_t *rk;
	rd_kafka_queue_t *q;
	const struct kn_config *cfg;
	struct kn_consumer_opts o; /* o.group: our copy; o.extra: not kept */
	char *group;
	rd_kafka_message_t **raw; /* poll's scratch */
	int raw_cap;
	struct assigned *a;
	int n_assigned;
	int n_eof;   /* entries of a[] at their end */
	bool lost;   /* a fatal consumer error: nothing more comes */
	bool fenced; /* that error: another member took our group.instance.id */
	bool ever_assigned;
	int64_t unassigned_since;   /* mono ms the last partition went; 0 while holding some */
	int64_t last_commit;	    /* mono ms of the last commit the broker accepted */
	int64_t lag;		    /* from the last statistics, -1 unknown */
	rd_kafka_topic_t *last_rkt; /* cache for topic_idx */
	int last_idx;
	rd_kafka_topic_partition_list_t *committed; /* the last kn_consumer_committed's */
	uint64_t assignments;			    /* assignments so far (on_assign) */
	int bell;				    /* eventfd rung by q and serve_q; -1: none */
	rd_kafka_t *serve;			    /* o.serve's handle */
	rd_kafka_queue_t *serve_q;		    /* its main queue: the delivery reports */
};

rd_kafka_t *kn_consumer_handle(struct kn_consumer *k)
{
	return k->rk;
}

/* ---- assignment bookkeeping ---- */

static void track(struct kn_consumer *k, const char *topic, int32_t partition, bool add)
{
	int j;

	for (j = 0; j < k->n_assigned; j++)
		if (k->a[j].partition == partition && !strcmp(k->a[j].topic, topic))
			break;
	if (add && j == k->n_assigned && k->n_assigned < MAX_ASSIGNED) {
		snprintf(k->a[j].topic, sizeof(k->a[j].topic), "%s", topic);
		k->a[j].partition = partition;
		k->a[j].eof = false;
		k->a[j].start = KN_OFFSET_NONE;
		k->n_assigned++;
	} else if (!add && j < k->n_assigned) {
		k->n_eof -= k->a[j].eof;
		k->a[j] = k->a[--k->n_assigned];
	}
}

static void track_list(struct kn_consumer *k, const rd_kafka_topic_partition_list_t *l, bool add)
{
	for (int i = 0; i < l->cnt; i++)
		track(k, l->elems[i].topic, l->elems[i].partition, add);
	if (k->n_assigned) {
		k->ever_assigned = true;
		k->unassigned_since = 0;
	} else if (!k->unassigned_since) {
		k->unassigned_since = kn_mono_ms();
	}
}

/* A record clears its partition's end mark, an end-of-partition event sets
 * it. Records are the common case and no mark is set while the input flows:
 * then there is nothing to look up. */
static void mark_eof(struct kn_consumer *k, const char *topic, int32_t partition, bool eof)
{
	if (!eof && !k->n_eof)
		return;
	for (int j = 0; j < k->n_assigned; j++) {
		if (k->a[j].partition == partition && !strcmp(k->a[j].topic, topic)) {
			k->n_eof += (int)eof - (int)k->a[j].eof;
			k->a[j].eof = eof;
			return;
		}
	}
}

/* ---- callbacks (served by kn_consumer_poll) ---- */

static int stats_cb(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
	(void)rk;
	((struct kn_consumer *)opaque)->lag = kn_kafka_stats_lag(json, len);
	return 0; /* librdkafka frees json */
}

/* Asynchronous commits answer here. */
static void commit_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
		      rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
	struct kn_consumer *k = opaque;

	(void)rk, (void)offsets;
	if (!err)
		k->last_commit = kn_mono_ms();
	else if (err != RD_KAFKA_RESP_ERR__NO_OFFSET)
		kn_warn("consumer", "commit: %s", rd_kafka_err2str(err));
}

static void revoked(struct kn_consumer *k, const rd_kafka_topic_partition_list_t *parts, bool lost)
{
	struct kn_tp tp[256];

	/* In slices: the hook gets every partition, whatever the count. */
	for (int i = 0; i < parts->cnt;) {
		int n = 0;
		for (; i < parts->cnt && n < 256; i++, n++)
			tp[n] = (struct kn_tp){parts->elems[i].topic, parts->elems[i].partition,
					       parts->elems[i].offset};
		k->o.on_revoke(k->o.opaque, tp, n, lost);
	}
}

/* Asks on_assign where each newly assigned partition starts, and sets it. */
static void starts(struct kn_consumer *k, rd_kafka_topic_partition_list_t *parts)
{
	struct kn_tp *tp = kn_calloc((size_t)parts->cnt + 1, sizeof(*tp));

	k->assignments++;
	if (!tp) {
		kn_err("consumer", "assign: out of memory");
		return;
	}
	for (int i = 0; i < parts->cnt; i++)
		tp[i] = (struct kn_tp){parts->elems[i].topic, parts->elems[i].partition,
				       KN_OFFSET_NONE};
	k->o.on_assign(k->o.opaque, tp, parts->cnt);
	for (int i = 0; i < parts->cnt; i++) {
		if (tp[i].offset == KN_OFFSET_NONE)
			continue;
		parts->elems[i].offset = tp[i].offset;
		for (int j = 0; j < k->n_assigned; j++)
			if (k->a[j].partition == tp[i].partition &&
			    !strcmp(k->a[j].topic, tp[i].topic))
				k->a[j].start = tp[i].offset;
	}
	kn_free(tp);
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
			 rd_kafka_topic_partition_list_t *parts, void *opaque)
{
	struct kn_consumer *k = opaque;
	/* NULL once the consumer is out of the group: the revoke that closing
	 * a consumer still in its first join delivers (then unassigning all is
	 * right). Comparing it unchecked crashed an early SIGTERM. */
	const char *proto = rd_kafka_rebalance_protocol(rk);
	bool coop = proto && !strcmp(proto, "COOPERATIVE");
	rd_kafka_error_t *e = NULL;

	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		kn_info("consumer", "assigned %d partition(s)", parts->cnt);
		track_list(k, parts, true);
		if (k->o.on_assign)
			starts(k, parts);
		if (coop)
			e = rd_kafka_incremental_assign(rk, parts);
		else
			rd_kafka_assign(rk, parts);
	} else {
		bool lost = rd_kafka_assignment_lost(rk);
		kn_info("consumer", "%s %d partition(s)", lost ? "lost" : "revoking", parts->cnt);
		/* Lost partitions belong to someone else already: committing for
		 * them would fail; the hook still drains what is in flight. */
		if (k->o.on_revoke)
			revoked(k, parts, lost);
		track_list(k, parts, false);
		if (coop)
			e = rd_kafka_incremental_unassign(rk, parts);
		else
			rd_kafka_assign(rk, NULL);
	}
	if (e) {
		kn_err("consumer", "rebalance: %s", rd_kafka_error_string(e));
		rd_kafka_error_destroy(e);
	}
}

/* ---- life cycle ---- */

static int subscribe(struct kn_consumer *k, char *errstr, size_t errsz)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(k->o.n_topics);
	rd_kafka_resp_err_t err;

	for (int i = 0; i < k->o.n_topics; i++)
		rd_kafka_topic_partition_list_add(l, k->o.topics[i], RD_KAFKA_PARTITION_UA);
	err = rd_kafka_subscribe(k->rk, l);
	rd_kafka_topic_partition_list_destroy(l);
	if (err) {
		snprintf(errstr, errsz, "subscribe: %s", rd_kafka_err2str(err));
		return -EINVAL;
	}
	return 0;
}

/* Waiting on the input queue alone would leave delivery reports queued
 * until the next record arrives: at a paced load that is the gap between
 * two fetches, and a batch's acknowledgement (its end to end latency, and
 * at-least-once, its offsets) would wait for it. Both queues ring one
 * eventfd instead when something is put on them, and the wait ends on
 * either. */
static int ring_on_arrival(struct kn_consumer *k, struct kn_producer *p)
{
	static const uint64_t one = 1; /* an eventfd takes 8-byte writes */

	if ((k->bell = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
		return -1;
	k->serve = kn_producer_handle(p);
	k->serve_q = rd_kafka_queue_get_main(k->serve);
	rd_kafka_queue_io_event_enable(k->q, k->bell, &one, sizeof(one));
	rd_kafka_queue_io_event_enable(k->serve_q, k->bell, &one, sizeof(one));
	return 0;
}

/* Input, and meanwhile deliveries, for at most timeout_ms. The bell is
 * silenced before the queues are looked at, so what arrives after the look
 * rings it again and the poll() below returns at once. */
static ssize_t wait_input(struct kn_consumer *k, int max, int timeout_ms)
{
	int64_t until = kn_mono_ms() + timeout_ms;
	uint64_t rung;
	ssize_t n;
	int left;

	if (k->bell < 0)
		return kn_kafka_consume_ready(k->q, timeout_ms, k->raw, (size_t)max);
	for (;;) {
		if (read(k->bell, &rung, sizeof(rung)) < 0 && errno != EAGAIN)
			return kn_kafka_consume_ready(k->q, timeout_ms, k->raw, (size_t)max);
		rd_kafka_poll(k->serve, 0);
		if ((n = kn_kafka_consume_ready(k->q, 0, k->raw, (size_t)max)) ||
		    (left = (int)(until - kn_mono_ms())) <= 0)
			return n;
		struct pollfd pfd = {.fd = k->bell, .events = POLLIN};
		if (poll(&pfd, 1, left) < 0 && errno == EINTR)
			return 0; /* a signal: let the caller look at its stop flag */
	}
}

int kn_consumer_new(const struct kn_config *c, const struct kn_consumer_opts *o,
		    struct kn_consumer **out, char *errstr, size_t errsz)
{
	struct kn_consumer *k = kn_calloc(1, sizeof(*k));
	rd_kafka_conf_t *conf = NULL;
	char why[512];

	*out = NULL;
	if (!k || !(k->a = kn_calloc(MAX_ASSIGNED, sizeof(*k->a)))) {
		snprintf(errstr, errsz, "out of memory");
		kn_free(k);
		return -ENOMEM;
	}
	k->cfg = c;
	k->o = *o;
	k->o.extra = NULL;
	k->o.group = k->group = kn_strdup(o->group ? o->group : c->group_id);
	k->lag = -1;
	k->last_idx = -1;
	k->unassigned_since = kn_mono_ms();
	k->bell = -1;
	if (!k->group) {
		snprintf(errstr, errsz, "out of memory");
		goto fail;
	}
	if (!(conf = kn_kafka_client_conf(c, o->role, k->group, errstr, errsz)) ||
	    kn_kafka_conf_set_pairs(conf, o->extra, errstr, errsz))
		goto fail;
	/* A cooperative assignor would revoke some partitions and keep others:
	 * on_assign's exact restart takes every partition at once. */
	if (o->on_assign && kn_kafka_conf_set(conf, "partition.assignment.strategy",
					      "range,roundrobin", why, sizeof(why))) {
		snprintf(errstr, errsz, "%s", why);
		goto fail;
	}
	if (o->subscribe)
		rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
	rd_kafka_conf_set_stats_cb(conf, stats_cb);
	rd_kafka_conf_set_offset_commit_cb(conf, commit_cb);
	rd_kafka_conf_set_opaque(conf, k);
	if (!(k->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof(why)))) {
		snprintf(errstr, errsz, "kafka consumer: %s", why);
		goto fail;
	}
	conf = NULL; /* owned by k->rk now */
	rd_kafka_poll_set_consumer(k->rk);
	k->q = rd_kafka_queue_get_consumer(k->rk);
	if (o->serve && ring_on_arrival(k, o->serve)) {
		snprintf(errstr, errsz, "eventfd: %s", strerror(errno));
		goto fail;
	}
	if (o->subscribe && subscribe(k, errstr, errsz))
		goto fail;
	*out = k;
	return 0;
fail:
	if (conf)
		rd_kafka_conf_destroy(conf);
	kn_consumer_close(k, false, 0);
	return -EINVAL;
}

void kn_consumer_close(struct kn_consumer *k, bool leave, int64_t until)
{
	if (!k)
		return;
	if (k->bell >= 0) {
		rd_kafka_queue_io_event_enable(k->q, -1, NULL, 0);
		rd_kafka_queue_io_event_enable(k->serve_q, -1, NULL, 0);
		rd_kafka_queue_destroy(k->serve_q);
		close(k->bell);
	}
	if (k->q)
		rd_kafka_queue_destroy(k->q);
	if (k->rk && leave && !kn_kafka_close(k->rk, true, until))
		kn_warn("consumer",
			"closed without leaving group '%s': its partitions return to the "
			"group after session.timeout.ms",
			k->group);
	else if (k->rk && !leave)
		kn_kafka_close(k->rk, false, until);
	if (k->committed)
		rd_kafka_topic_partition_list_destroy(k->committed);
	kn_free(k->raw);
	kn_free(k->a);
	kn_free(k->group);
	kn_free(k);
}

/* ---- assign mode ---- */

int kn_consumer_partitions(struct kn_consumer *k, const char *topic, int64_t until, char *errstr,
			   size_t errsz)
{
	return kn_kafka_partition_count(k->rk, topic, until, errstr, errsz);
}

int kn_consumer_committed(struct kn_consumer *k, struct kn_tp *tps, int n, int64_t until,
			  char *errstr, size_t errsz)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
	rd_kafka_resp_err_t err;

	for (int i = 0; i < n; i++)
		rd_kafka_topic_partition_list_add(l, tps[i].topic, tps[i].partition);
	err = kn_kafka_committed(k->rk, l, until);
	if (err) {
		bool stopped = err == RD_KAFKA_RESP_ERR__TIMED_OUT && kn_stop_requested();
		snprintf(errstr, errsz, "%s",
			 stopped ? "stopped while starting" : rd_kafka_err2str(err));
		rd_kafka_topic_partition_list_destroy(l);
		return stopped ? -ECANCELED : -EIO;
	}
	for (int i = 0; i < n; i++) {
		const rd_kafka_topic_partition_t *tp = &l->elems[i];
		tps[i].offset = tp->offset >= 0 ? tp->offset : KN_OFFSET_NONE;
		tps[i].meta = tp->metadata;
		tps[i].meta_len = tp->metadata_size;
	}
	if (k->committed)
		rd_kafka_topic_partition_list_destroy(k->committed);
	k->committed = l; /* holds the metadata handed out */
	return 0;
}

int kn_consumer_assign(struct kn_consumer *k, const struct kn_tp *tps, int n, char *errstr,
		       size_t errsz)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
	rd_kafka_resp_err_t err;

	for (int i = 0; i < n; i++)
		rd_kafka_topic_partition_list_add(l, tps[i].topic, tps[i].partition)->offset =
			tps[i].offset == KN_OFFSET_NONE ? RD_KAFKA_OFFSET_BEGINNING : tps[i].offset;
	err = rd_kafka_assign(k->rk, l);
	if (!err) {
		k->n_assigned = k->n_eof = 0;
		track_list(k, l, true);
	}
	rd_kafka_topic_partition_list_destroy(l);
	if (err) {
		snprintf(errstr, errsz, "assign: %s", rd_kafka_err2str(err));
		return -EIO;
	}
	return 0;
}

/* ---- reading ---- */

static int topic_idx(struct kn_consumer *k, rd_kafka_topic_t *rkt)
{
	if (rkt == k->last_rkt)
		return k->last_idx;
	const char *name = rd_kafka_topic_name(rkt);
	k->last_rkt = rkt;
	for (k->last_idx = 0; k->last_idx < k->o.n_topics; k->last_idx++)
		if (!strcmp(k->o.topics[k->last_idx], name))
			return k->last_idx;
	return k->last_idx = -1;
}

/* A message as kanon sees it; false for errors (logged here). */
static bool convert(struct kn_consumer *k, rd_kafka_message_t *m, struct kn_msg *out)
{
	if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
		kn_warn("consumer", "%s [%d]: %s", m->rkt ? rd_kafka_topic_name(m->rkt) : "-",
			m->partition, rd_kafka_message_errstr(m));
		if (m->err == RD_KAFKA_RESP_ERR__FATAL) {
			char why[256];
			k->lost = true;
			k->fenced = rd_kafka_fatal_error(k->rk, why, sizeof(why)) ==
				    RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID;
		}
		return false;
	}
	*out = (struct kn_msg){.payload = m->payload,
			       .len = m->len,
			       .key = m->key,
			       .key_len = m->key_len,
			       .topic = rd_kafka_topic_name(m->rkt),
			       .topic_idx = topic_idx(k, m->rkt),
			       .partition = m->partition,
			       .offset = m->offset,
			       .eof = m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF,
			       .held = m};
	if (!out->eof) {
		int64_t ts = rd_kafka_message_timestamp(m, NULL);
		out->ts_ms = ts > 0 ? ts : 0;
	}
	if (k->n_assigned)
		mark_eof(k, out->topic, m->partition, out->eof);
	return true;
}

/* Every assigned partition back to its start (on_assign's). */
static void restart(struct kn_consumer *k)
{
	struct kn_tp tp[256];
	int n = 0;

	for (int j = 0; j < k->n_assigned; j++) {
		if (k->a[j].start == KN_OFFSET_NONE)
			continue;
		tp[n++] = (struct kn_tp){k->a[j].topic, k->a[j].partition, k->a[j].start};
		if (n == 256 || j == k->n_assigned - 1) {
			kn_consumer_seek(k, tp, n);
			n = 0;
		}
	}
	if (n)
		kn_consumer_seek(k, tp, n);
}

int kn_consumer_seek(struct kn_consumer *k, const struct kn_tp *tps, int n)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
	rd_kafka_error_t *e;
	int err = 0;

	for (int i = 0; i < n; i++)
		rd_kafka_topic_partition_list_add(l, tps[i].topic, tps[i].partition)->offset =
			tps[i].offset == KN_OFFSET_NONE ? RD_KAFKA_OFFSET_BEGINNING : tps[i].offset;
	if ((e = rd_kafka_seek_partitions(k->rk, l, 5000))) {
		kn_warn("consumer", "seek: %s", rd_kafka_error_string(e));
		rd_kafka_error_destroy(e);
		err = -EIO;
	}
	for (int i = 0; i < l->cnt && !err; i++)
		if (l->elems[i].err) {
			kn_warn("consumer", "seek %s [%d]: %s", l->elems[i].topic,
				l->elems[i].partition, rd_kafka_err2str(l->elems[i].err));
			err = -EIO;
		}
	/* The partition's position moves: its end mark no longer holds. */
	for (int i = 0; i < n; i++)
		mark_eof(k, tps[i].topic, tps[i].partition, false);
	rd_kafka_topic_partition_list_destroy(l);
	return err;
}

int kn_consumer_poll(struct kn_consumer *k, struct kn_msg *msgs, int max, int timeout_ms)
{
	ssize_t n;
	int kept = 0;

	if (max > k->raw_cap) {
		rd_kafka_message_t **r = kn_realloc(k->raw, sizeof(*r) * (size_t)max);
		if (!r)
			return 0;
		k->raw = r;
		k->raw_cap = max;
	}
	uint64_t before = k->assignments;
	n = wait_input(k, max, timeout_ms);
	if (k->assignments != before) {
		/* Some records may predate the new assignment: drop them all and
		 * read every partition again from where on_assign said. */
		for (ssize_t i = 0; i < n; i++)
			rd_kafka_message_destroy(k->raw[i]);
		restart(k);
		return 0;
	}
	for (ssize_t i = 0; i < n; i++) {
		if (convert(k, k->raw[i], &msgs[kept]))
			kept++;
		else
			rd_kafka_message_destroy(k->raw[i]);
	}
	return kept;
}

void kn_consumer_release(struct kn_consumer *k, struct kn_msg *msgs, int n)
{
	(void)k;
	for (int i = 0; i < n; i++)
		rd_kafka_message_destroy(msgs[i].held);
}

int kn_consumer_commit(struct kn_consumer *k, const struct kn_tp *tps, int n, int64_t until)
{
	rd_kafka_topic_partition_list_t *l;
	rd_kafka_resp_err_t err;
	char why[256];
	int res = 0;

	if (tps && !n)
		return 0;
	l = tps ? rd_kafka_topic_partition_list_new(n) : NULL;
	for (int i = 0; tps && i < n; i++)
		rd_kafka_topic_partition_list_add(l, tps[i].topic, tps[i].partition)->offset =
			tps[i].offset;
	if (!until) {
		err = rd_kafka_commit(k->rk, l, 1);
		if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET) {
			kn_warn("consumer", "commit: %s", rd_kafka_err2str(err));
			res = -EIO;
		}
	} else if ((res = kn_kafka_commit(k->rk, l, until, why, sizeof(why)))) {
		kn_warn("consumer", "commit: %s", why);
	} else {
		k->last_commit = kn_mono_ms();
	}
	if (l)
		rd_kafka_topic_partition_list_destroy(l);
	return res;
}

/* ---- state ---- */

bool kn_consumer_at_eof(const struct kn_consumer *k)
{
	return k->n_assigned && k->n_eof == k->n_assigned;
}

bool kn_consumer_healthy(const struct kn_consumer *k)
{
	return !k->lost;
}

bool kn_consumer_fenced(const struct kn_consumer *k)
{
	return k->fenced;
}

int kn_consumer_assigned(const struct kn_consumer *k)
{
	return k->n_assigned;
}

bool kn_consumer_ever_assigned(const struct kn_consumer *k)
{
	return k->ever_assigned;
}

int64_t kn_consumer_unassigned_since(const struct kn_consumer *k)
{
	return k->n_assigned ? 0 : k->unassigned_since;
}

int64_t kn_consumer_last_commit(const struct kn_consumer *k)
{
	return k->last_commit;
}

int64_t kn_consumer_lag(const struct kn_consumer *k)
{
	return k->lag;
}

int64_t kn_consumer_lag_of(struct kn_consumer *k, const struct kn_tp *tps, int n)
{
	int64_t lag = 0, lo, hi;

	for (int i = 0; i < n; i++) {
		if (rd_kafka_get_watermark_offsets(k->rk, tps[i].topic, tps[i].partition, &lo,
						   &hi) ||
		    hi < 0)
			return -1;
		int64_t pos = tps[i].offset < 0 ? lo : tps[i].offset;
		lag += hi > pos ? hi - pos : 0;
	}
	return lag;
}

int kn_consumer_watermarks(struct kn_consumer *k, const char *topic, int32_t partition, int64_t *lo,
			   int64_t *hi, int64_t until)
{
	int w;

	while ((w = kn_stop_wait(until)) > 0)
		if (!rd_kafka_query_watermark_offsets(k->rk, topic, partition, lo, hi, w))
			return 0;
	return -EIO;
}

void kn_consumer_diagnose(struct kn_consumer *k, char *buf, size_t size)
{
	const struct rd_kafka_metadata *md = NULL;
	size_t off = 0;

	if (k->ever_assigned) {
		snprintf(buf, size,
			 "the group took this instance's partitions away (the broker was "
			 "unreachable for longer than session.timeout.ms, or the group rebalanced) "
			 "and gave none back");
		return;
	}
	if (kn_kafka_metadata(k->rk, NULL, &md, kn_mono_ms() + 5000)) {
		snprintf(buf, size, "no broker at %s answers", k->cfg->brokers);
		return;
	}
	for (int i = 0; i < k->o.n_topics; i++) {
		bool found = false;
		for (int t = 0; t < md->topic_cnt && !found; t++)
			found = !strcmp(md->topics[t].topic, k->o.topics[i]) &&
				!md->topics[t].err && md->topics[t].partition_cnt > 0;
		if (!found && off < size)
			off += (size_t)snprintf(
				buf + off, size - off, "%s%s",
				off ? ", " : "input topic(s) missing: ", k->o.topics[i]);
	}
	rd_kafka_metadata_destroy(md);
	if (!off)
		snprintf(buf, size,
			 "the input topics exist, but group '%s' gave this instance no partition: "
			 "a crashed member still holds them until session.timeout.ms passes, or "
			 "other members hold them all",
			 k->group);
}
