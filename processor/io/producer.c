#include "producer.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "kafka_rd.h"
#include "kn_alloc.h"
#include "log.h"
#include "stop.h"

#define MAX_TOPICS     8
#define TXN_CALL_MS    10000 /* timeout passed to librdkafka; timed-out calls are resumed */
#define CREATE_WAIT_MS 15000

struct kn_producer {
	rd_kafka_t *rk;
	rd_kafka_topic_t *topics[MAX_TOPICS];
	int n_topics;
	struct kn_producer_opts o;
	const struct kn_config *cfg;
	int64_t txn_started;	/* mono ms the open transaction began; 0: none */
	int64_t txn_timeout_ms; /* the producer's transaction.timeout.ms */
	char txn_id[256];	/* its transactional.id */
	bool orphaned;
	bool fenced; /* another producer took the transactional.id, or another
		      * group member the group.instance.id (txn_failed) */
	char error[512];
};

rd_kafka_t *kn_producer_handle(struct kn_producer *p)
{
	return p->rk;
}

/* Producers left to the process's exit (kn_producer_orphaned): reachable,
 * so leak checkers and readers of a core see why. */
static struct kn_producer *orphans[8];

/* ---- errors ---- */

static void set_error(struct kn_producer *p, const char *fmt, const char *what)
{
	if (!p->error[0])
		snprintf(p->error, sizeof(p->error), fmt, what);
}

/* A fatal error in words; KN_KAFKA_FENCED or KN_KAFKA_TXN_EXPIRED when it is
 * one of those (see the header), else -EIO. */
static int fatal(struct kn_producer *p, rd_kafka_resp_err_t code)
{
	char why[400] = "";

	if (code == RD_KAFKA_RESP_ERR__FATAL)
		code = rd_kafka_fatal_error(p->rk, why, sizeof(why));
	/* Fencing is a transactional producer's fate; an idempotent one with a
	 * fatal epoch error is just broken. */
	if (p->o.role != KN_CLIENT_TX_PRODUCER ||
	    (code != RD_KAFKA_RESP_ERR__FENCED && code != RD_KAFKA_RESP_ERR_PRODUCER_FENCED &&
	     code != RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH)) {
		set_error(p, "producer fatal error: %s", why[0] ? why : rd_kafka_err2str(code));
		return -EIO;
	}
	if (p->txn_started && kn_mono_ms() - p->txn_started >= p->txn_timeout_ms) {
		snprintf(p->error, sizeof(p->error),
			 "the broker aborted this instance's transaction: it was open for %lld s, "
			 "longer than transaction.timeout.ms (an outage?); its input is redone by "
			 "the next run",
			 (long long)((kn_mono_ms() - p->txn_started) / 1000));
		return KN_KAFKA_TXN_EXPIRED;
	}
	snprintf(p->error, sizeof(p->error),
		 "fenced: another kanon took over transactional.id '%s' (two instances with "
		 "one id? give each its own --instance); this one has stopped processing",
		 p->txn_id);
	p->fenced = true;
	return KN_KAFKA_FENCED;
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	struct kn_producer *p = opaque;
	struct kn_delivery d = {(uint64_t)(uintptr_t)m->_private,
				m->err ? -EIO : 0,
				m->err ? rd_kafka_err2str(m->err) : NULL,
				m->payload,
				m->key,
				m->len,
				m->key_len};

	(void)rk;
	if (m->err == RD_KAFKA_RESP_ERR__FATAL)
		fatal(p, m->err);
	if (p->o.on_delivery)
		p->o.on_delivery(p->o.opaque, &d);
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	struct kn_producer *p = opaque;

	(void)rk;
	if (err == RD_KAFKA_RESP_ERR__FATAL) {
		fatal(p, (rd_kafka_resp_err_t)err);
		kn_err("producer", "%s", p->error);
	} else {
		kn_warn("producer", "%s", reason);
	}
}

/* ---- life cycle ---- */

/* The producer's effective transaction.timeout.ms (fatal()). */
static int64_t txn_timeout(rd_kafka_t *rk)
{
	char v[32];
	size_t n = sizeof(v);

	if (rd_kafka_conf_get(rd_kafka_conf(rk), "transaction.timeout.ms", v, &n))
		return 60000;
	return strtoll(v, NULL, 10);
}

int kn_producer_new(const struct kn_config *c, const struct kn_producer_opts *o,
		    struct kn_producer **out, char *errstr, size_t errsz)
{
	struct kn_producer *p = kn_calloc(1, sizeof(*p));
	rd_kafka_conf_t *conf = NULL;
	char why[512];

	*out = NULL;
	if (!p) {
		snprintf(errstr, errsz, "out of memory");
		return -ENOMEM;
	}
	p->o = *o;
	p->cfg = c;
	if (!(conf = kn_kafka_client_conf(c, o->role, NULL, errstr, errsz)) ||
	    kn_kafka_conf_set_pairs(conf, o->extra, errstr, errsz))
		goto fail;
	rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
	rd_kafka_conf_set_error_cb(conf, error_cb);
	rd_kafka_conf_set_opaque(conf, p);
	if (!(p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why)))) {
		snprintf(errstr, errsz, "kafka producer: %s", why);
		goto fail;
	}
	p->txn_timeout_ms = txn_timeout(p->rk);
	size_t idn = sizeof(p->txn_id);
	if (rd_kafka_conf_get(rd_kafka_conf(p->rk), "transactional.id", p->txn_id, &idn))
		p->txn_id[0] = '\0';
	*out = p;
	return 0;
fail:
	if (conf)
		rd_kafka_conf_destroy(conf);
	kn_free(p);
	return -EINVAL;
}

void kn_producer_destroy(struct kn_producer *p, int64_t until)
{
	if (!p)
		return;
	if (p->orphaned) {
		kn_warn("producer", "a transactional call is still waiting for the broker: the "
				    "producer is left to the process's exit");
		/* The stages' producers may be left at the same moment. */
		for (size_t i = 0; i < sizeof(orphans) / sizeof(orphans[0]); i++) {
			struct kn_producer *none = NULL;
			if (__atomic_compare_exchange_n(&orphans[i], &none, p, false,
							__ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
				break;
		}
		return;
	}
	for (int i = 0; i < p->n_topics; i++)
		rd_kafka_topic_destroy(p->topics[i]);
	kn_kafka_destroy(p->rk, 0, until);
	kn_free(p);
}

int kn_producer_topic(struct kn_producer *p, const char *topic)
{
	if (p->n_topics == MAX_TOPICS ||
	    !(p->topics[p->n_topics] = rd_kafka_topic_new(p->rk, topic, NULL)))
		return -ENOMEM;
	return p->n_topics++;
}

/* ---- records ---- */

static rd_kafka_headers_t *dead_letter_headers(const struct kn_dead_letter *dl)
{
	char part[16], off[24], sid[16];
	rd_kafka_headers_t *h = rd_kafka_headers_new(6);

	snprintf(part, sizeof(part), "%" PRId32, dl->src_partition);
	snprintf(off, sizeof(off), "%" PRId64, dl->src_offset);
	snprintf(sid, sizeof(sid), "%" PRId32, dl->schema_id);
	rd_kafka_header_add(h, "kanon.reason", -1, dl->reason, -1);
	rd_kafka_header_add(h, "kanon.detail", -1, dl->detail ? dl->detail : "", -1);
	rd_kafka_header_add(h, "kanon.source.topic", -1, dl->src_topic, -1);
	rd_kafka_header_add(h, "kanon.source.partition", -1, part, -1);
	rd_kafka_header_add(h, "kanon.source.offset", -1, off, -1);
	if (dl->schema_id >= 0)
		rd_kafka_header_add(h, "kanon.schema_id", -1, sid, -1);
	return h;
}

static int produce(struct kn_producer *p, int topic, int32_t partition, const void *key,
		   size_t key_len, const void *val, size_t val_len, int64_t ts_ms,
		   const struct kn_dead_letter *dl, uint64_t token)
{
	rd_kafka_headers_t *h = dl ? dead_letter_headers(dl) : NULL;
	rd_kafka_resp_err_t err = rd_kafka_producev(
		p->rk, RD_KAFKA_V_RKT(p->topics[topic]), RD_KAFKA_V_PARTITION(partition),
		RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key, key_len),
		RD_KAFKA_V_VALUE((void *)val, val_len), RD_KAFKA_V_TIMESTAMP(ts_ms),
		RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_OPAQUE((void *)(uintptr_t)token), RD_KAFKA_V_END);

	if (!err)
		return 0;
	if (h)
		rd_kafka_headers_destroy(h); /* ownership passes only on success */
	if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
		return -EAGAIN;
	if (err == RD_KAFKA_RESP_ERR__FATAL || err == RD_KAFKA_RESP_ERR__FENCED)
		return fatal(p, err);
	set_error(p, "produce: %s", rd_kafka_err2str(err));
	return -EIO;
}

int kn_producer_send(struct kn_producer *p, int topic, const void *key, size_t key_len,
		     const void *val, size_t val_len, int64_t ts_ms,
		     const struct kn_dead_letter *dl, uint64_t token)
{
	return produce(p, topic, RD_KAFKA_PARTITION_UA, key, key_len, val, val_len, ts_ms, dl,
		       token);
}

static int produce_wait(struct kn_producer *p, int topic, int32_t partition, const void *key,
			size_t key_len, const void *val, size_t val_len, int64_t ts_ms,
			const struct kn_dead_letter *dl, uint64_t token)
{
	for (;;) {
		int err =
			produce(p, topic, partition, key, key_len, val, val_len, ts_ms, dl, token);
		if (err != -EAGAIN)
			return err;
		/* Local queue full: let deliveries drain, for as long as the
		 * broker takes before a stop, until its drain deadline after. */
		if (kn_stop_requested() && !kn_stop_drain_wait(INT64_MAX))
			return -ECANCELED;
		rd_kafka_poll(p->rk, 50);
	}
}

int kn_producer_send_wait(struct kn_producer *p, int topic, const void *key, size_t key_len,
			  const void *val, size_t val_len, int64_t ts_ms,
			  const struct kn_dead_letter *dl, uint64_t token)
{
	return produce_wait(p, topic, RD_KAFKA_PARTITION_UA, key, key_len, val, val_len, ts_ms, dl,
			    token);
}

int kn_producer_send_to(struct kn_producer *p, int topic, int32_t partition, const void *key,
			size_t key_len, const void *val, size_t val_len, uint64_t token)
{
	return produce_wait(p, topic, partition, key, key_len, val, val_len, 0, NULL, token);
}

void kn_producer_poll(struct kn_producer *p, int timeout_ms)
{
	rd_kafka_poll(p->rk, timeout_ms);
}

int kn_producer_flush(struct kn_producer *p, int64_t until)
{
	return kn_kafka_flush(p->rk, until);
}

int kn_producer_queued(const struct kn_producer *p)
{
	return rd_kafka_outq_len(p->rk);
}

const char *kn_producer_error(const struct kn_producer *p)
{
	return p->error[0] ? p->error : NULL;
}

bool kn_producer_fenced(const struct kn_producer *p)
{
	return p->fenced;
}

bool kn_producer_orphaned(const struct kn_producer *p)
{
	return p->orphaned;
}

/* ---- transactions ---- */

struct job {
	rd_kafka_t *rk;
	enum kn_txn_op op;
	rd_kafka_topic_partition_list_t *offs;	/* owned */
	rd_kafka_consumer_group_metadata_t *gm; /* owned */
	rd_kafka_error_t *result;
};

static const char *txn_name(enum kn_txn_op op)
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
		j->result = rd_kafka_init_transactions(j->rk, TXN_CALL_MS);
		break;
	case KN_TXN_BEGIN:
		j->result = rd_kafka_begin_transaction(j->rk);
		break;
	case KN_TXN_SEND_OFFSETS:
		j->result =
			rd_kafka_send_offsets_to_transaction(j->rk, j->offs, j->gm, TXN_CALL_MS);
		break;
	case KN_TXN_COMMIT:
		j->result = rd_kafka_commit_transaction(j->rk, TXN_CALL_MS);
		break;
	case KN_TXN_ABORT:
		j->result = rd_kafka_abort_transaction(j->rk, TXN_CALL_MS);
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

/* One attempt of op on a thread of its own (BEGIN is local: on the
 * caller's). Returns librdkafka's error (NULL: done), or NULL with
 * p->orphaned set when it walked away at the stop's drain deadline. */
static rd_kafka_error_t *attempt(struct kn_producer *p, enum kn_txn_op op, const struct kn_tp *offs,
				 int n, struct kn_consumer *group)
{
	struct job *j;
	rd_kafka_error_t *e;

	if (op == KN_TXN_BEGIN)
		return rd_kafka_begin_transaction(p->rk);
	if (!(j = kn_calloc(1, sizeof(*j))))
		return rd_kafka_error_new(RD_KAFKA_RESP_ERR__FAIL, "out of memory");
	j->rk = p->rk;
	j->op = op;
	if (op == KN_TXN_SEND_OFFSETS) {
		j->offs = rd_kafka_topic_partition_list_new(n);
		for (int i = 0; i < n; i++) {
			rd_kafka_topic_partition_t *tp = rd_kafka_topic_partition_list_add(
				j->offs, offs[i].topic, offs[i].partition);
			tp->offset = offs[i].offset;
			if (offs[i].meta) { /* freed with the list */
				tp->metadata = kn_malloc(offs[i].meta_len);
				if (tp->metadata)
					memcpy(tp->metadata, offs[i].meta, offs[i].meta_len);
				tp->metadata_size = tp->metadata ? offs[i].meta_len : 0;
			}
		}
		j->gm = rd_kafka_consumer_group_metadata(kn_consumer_handle(group));
	}
	if (!kn_stop_bounded(call, job_orphaned, j, INT64_MAX, true)) {
		p->orphaned = true;
		return NULL;
	}
	e = j->result;
	job_free(j);
	return e;
}

/* A call that failed for good: says why, aborts when required. An
 * abortable error whose abort went through leaves the producer usable:
 * KN_KAFKA_TXN_ABORTED, and p->error stays clear. */
static int txn_failed(struct kn_producer *p, enum kn_txn_op op, rd_kafka_error_t *e)
{
	bool abort = op != KN_TXN_ABORT && rd_kafka_error_txn_requires_abort(e);
	bool is_fatal = rd_kafka_error_is_fatal(e);
	/* send_offsets refused because another consumer joined the group
	 * under this instance's group.instance.id: fenced as surely as by a
	 * producer, though librdkafka reports it as abortable. */
	bool member_fenced = rd_kafka_error_code(e) == RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID;
	int err = is_fatal ? fatal(p, rd_kafka_error_code(e)) : -EIO;
	char why[512];

	snprintf(why, sizeof(why), "%s: %s%s", txn_name(op), rd_kafka_error_string(e),
		 is_fatal ? " (fatal)" : "");
	rd_kafka_error_destroy(e);
	if (member_fenced && err == -EIO) {
		snprintf(p->error, sizeof(p->error),
			 "fenced: another kanon joined the consumer group as this one's "
			 "group.instance.id (two instances with one id? give each its own "
			 "--instance); this one has stopped processing");
		p->fenced = true;
		err = KN_KAFKA_FENCED;
	}
	if (!is_fatal && abort) {
		kn_warn("producer", "%s: aborting the transaction", why);
		int a = kn_producer_txn(p, KN_TXN_ABORT, NULL, 0, NULL);
		if (!a && err == -EIO)
			return KN_KAFKA_TXN_ABORTED;
		if (a == KN_KAFKA_FENCED || a == KN_KAFKA_TXN_EXPIRED)
			err = a; /* what the abort met, not "-EIO" (p->error says it) */
	}
	if (err == -EIO && !p->error[0])
		snprintf(p->error, sizeof(p->error), "%s", why);
	kn_err("producer", "%s", p->error[0] ? p->error : why);
	if (abort && is_fatal)
		kn_producer_txn(p, KN_TXN_ABORT, NULL, 0, NULL);
	return err;
}

int kn_producer_txn(struct kn_producer *p, enum kn_txn_op op, const struct kn_tp *offs, int n,
		    struct kn_consumer *group)
{
	for (;;) {
		if (p->orphaned || (kn_stop_requested() && !kn_stop_drain_wait(INT64_MAX)))
			return -ECANCELED;
		rd_kafka_error_t *e = attempt(p, op, offs, n, group);
		if (p->orphaned)
			return -ECANCELED;
		if (!e)
			break;
		if (!rd_kafka_error_is_retriable(e))
			return txn_failed(p, op, e);
		/* Not a time-out: back off, serving delivery reports meanwhile
		 * (a timed-out call resumes where it left off). */
		if (rd_kafka_error_code(e) != RD_KAFKA_RESP_ERR__TIMED_OUT)
			rd_kafka_poll(p->rk, 100);
		rd_kafka_error_destroy(e);
	}
	if (op == KN_TXN_BEGIN)
		p->txn_started = kn_mono_ms();
	else if (op == KN_TXN_COMMIT || op == KN_TXN_ABORT)
		p->txn_started = 0;
	return 0;
}

/* ---- topics ---- */

/* Asks for all topics (see ensure_topics). */
static bool topic_exists(struct kn_producer *p, const char *name, int64_t until)
{
	const struct rd_kafka_metadata *md = NULL;
	bool ok = false;

	if (kn_kafka_metadata(p->rk, NULL, &md, until))
		return false;
	for (int i = 0; i < md->topic_cnt && !ok; i++)
		ok = !strcmp(md->topics[i].topic, name) && !md->topics[i].err &&
		     md->topics[i].partition_cnt > 0;
	rd_kafka_metadata_destroy(md);
	return ok;
}

/* Reads the CreateTopics result: 0, or -EIO naming the first refusal. */
static int created(rd_kafka_event_t *ev, char *errstr, size_t errsz)
{
	const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
	size_t n = 0;
	const rd_kafka_topic_result_t **r =
		res ? rd_kafka_CreateTopics_result_topics(res, &n) : NULL;
	int err = 0;

	for (size_t i = 0; i < n && !err; i++) {
		rd_kafka_resp_err_t te = rd_kafka_topic_result_error(r[i]);
		if (te && te != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
			snprintf(errstr, errsz, "creating %s: %s", rd_kafka_topic_result_name(r[i]),
				 rd_kafka_topic_result_error_string(r[i]));
			err = -EIO;
		}
	}
	return err;
}

static int partitions_of(struct kn_producer *p, const char *name, int64_t until);

int kn_producer_ensure_topics(struct kn_producer *p, const struct kn_new_topic *t, int n,
			      int64_t until, char *errstr, size_t errsz)
{
	rd_kafka_NewTopic_t *nt[MAX_TOPICS];
	rd_kafka_event_t *ev = NULL;
	int missing = 0, err;
	char why[256];

	for (int i = 0; i < n && missing < MAX_TOPICS; i++) {
		int parts = partitions_of(p, t[i].name, until);
		if (parts < 0) { /* no metadata until the deadline */
			for (int k = 0; k < missing; k++)
				rd_kafka_NewTopic_destroy(nt[k]);
			if (kn_stop_requested()) {
				snprintf(errstr, errsz, "stopped while starting");
				return -ECANCELED;
			}
			snprintf(errstr, errsz, "no broker at %s answers", p->cfg->brokers);
			return -ETIMEDOUT;
		}
		if (parts > 0)
			continue;
		nt[missing] =
			rd_kafka_NewTopic_new(t[i].name, t[i].partitions, -1, why, sizeof(why));
		for (const char *const *kv = t[i].config; kv && kv[0]; kv += 2)
			rd_kafka_NewTopic_set_config(nt[missing], kv[0], kv[1]);
		missing++;
	}
	if (!missing)
		return 0;
	rd_kafka_queue_t *q = rd_kafka_queue_new(p->rk);
	rd_kafka_CreateTopics(p->rk, nt, (size_t)missing, NULL, q);
	int64_t end = until < kn_mono_ms() + CREATE_WAIT_MS ? until : kn_mono_ms() + CREATE_WAIT_MS;
	while (!ev && kn_stop_wait(end))
		ev = rd_kafka_queue_poll(q, kn_stop_wait(end));
	if (ev) {
		err = created(ev, errstr, errsz);
		rd_kafka_event_destroy(ev);
		/* Created is not yet visible: the brokers' metadata follows the
		 * controller a moment later, and a caller that looks the topic up
		 * at once (another client, another thread) would find nothing. */
		for (int i = 0; !err && i < n; i++)
			while (!topic_exists(p, t[i].name, end) && kn_stop_wait(end) > 0)
				rd_kafka_poll(p->rk, 50);
	} else if (kn_stop_requested()) {
		snprintf(errstr, errsz, "stopped while starting");
		err = -ECANCELED;
	} else {
		snprintf(errstr, errsz, "creating topics: no answer within %d s",
			 CREATE_WAIT_MS / 1000);
		err = -ETIMEDOUT;
	}
	rd_kafka_NewTopic_destroy_array(nt, (size_t)missing);
	rd_kafka_queue_destroy(q);
	return err;
}

/* ---- describing a topic ---- */

static int partitions_of(struct kn_producer *p, const char *name, int64_t until)
{
	const struct rd_kafka_metadata *md = NULL;
	int n = -1;

	if (kn_kafka_metadata(p->rk, NULL, &md, until))
		return -1;
	for (int i = 0; i < md->topic_cnt; i++)
		if (!strcmp(md->topics[i].topic, name) && !md->topics[i].err)
			n = md->topics[i].partition_cnt;
	rd_kafka_metadata_destroy(md);
	return n < 0 ? 0 : n;
}

static void read_configs(const rd_kafka_DescribeConfigs_result_t *res, struct kn_topic_info *info)
{
	size_t nr = 0, nc = 0;
	const rd_kafka_ConfigResource_t **r = rd_kafka_DescribeConfigs_result_resources(res, &nr);
	const rd_kafka_ConfigEntry_t **e = nr ? rd_kafka_ConfigResource_configs(r[0], &nc) : NULL;

	for (size_t i = 0; i < nc; i++) {
		const char *name = rd_kafka_ConfigEntry_name(e[i]);
		const char *v = rd_kafka_ConfigEntry_value(e[i]);
		if (!v)
			continue;
		if (!strcmp(name, "cleanup.policy"))
			snprintf(info->cleanup_policy, sizeof(info->cleanup_policy), "%s", v);
		else if (!strcmp(name, "retention.ms"))
			info->retention_ms = strtoll(v, NULL, 10);
	}
}

int kn_producer_describe_topic(struct kn_producer *p, const char *topic, struct kn_topic_info *info,
			       int64_t until, char *errstr, size_t errsz)
{
	rd_kafka_ConfigResource_t *cr;
	rd_kafka_queue_t *q;
	rd_kafka_event_t *ev = NULL;
	int n = partitions_of(p, topic, until), err = 0;

	*info = (struct kn_topic_info){.retention_ms = -1};
	if (n < 0) {
		snprintf(errstr, errsz, "no broker at %s answers", p->cfg->brokers);
		return kn_stop_requested() ? -ECANCELED : -ETIMEDOUT;
	}
	if (!(info->exists = n > 0))
		return 0;
	info->partitions = n;
	cr = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic);
	q = rd_kafka_queue_new(p->rk);
	rd_kafka_DescribeConfigs(p->rk, &cr, 1, NULL, q);
	while (!ev && kn_stop_wait(until))
		ev = rd_kafka_queue_poll(q, kn_stop_wait(until));
	if (!ev) {
		snprintf(errstr, errsz, "%s: no answer to DescribeConfigs", topic);
		err = kn_stop_requested() ? -ECANCELED : -ETIMEDOUT;
	} else if (rd_kafka_event_error(ev)) {
		snprintf(errstr, errsz, "%s: %s", topic, rd_kafka_event_error_string(ev));
		err = -EIO;
	} else {
		read_configs(rd_kafka_event_DescribeConfigs_result(ev), info);
	}
	if (ev)
		rd_kafka_event_destroy(ev);
	rd_kafka_ConfigResource_destroy(cr);
	rd_kafka_queue_destroy(q);
	return err;
}
