#include "erasure.h"

#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "kafka_conf.h"
#include "kn_alloc.h"
#include "log.h"
#include "pseudonymize.h"
#include "stop.h"

#define LOAD_TIMEOUT_MS	 30000
#define CLOSE_TIMEOUT_MS 8000

struct fp {
	uint64_t a, b; /* the 128-bit fingerprint; a == 0 && b == 0 marks an empty slot */
};

struct kn_erasure {
	const struct kn_config *c;
	struct kn_keys *keys;
	struct kn_norm_opts norm;
	rd_kafka_t *state_cons, *req_cons, *prod;
	rd_kafka_topic_t *state_rkt;
	bool served;	  /* requests consumed whose offsets are not committed yet */
	char failed[300]; /* a state record could not be written: commit nothing more */
	struct fp *set;
	uint32_t cap;
	struct kn_erasure_stats st;
};

int kn_erasure_fingerprint(struct kn_keys *keys, enum kn_id_kind kind, const char *id, size_t len,
			   const struct kn_norm_opts *norm, uint8_t out[KN_PRF_BYTES])
{
	char buf[KN_ID_MAX + 2];
	int n = kn_normalize(kind, id, len, buf + 2, norm);

	if (n < 0)
		return -EINVAL;
	buf[0] = (char)('0' + kind); /* kind || 0 || canonical form */
	buf[1] = '\0';
	kn_keys_prf(keys, 0, KN_DOMAIN_ERASE, buf, (size_t)n + 2, out);
	return 0;
}

static struct fp fp_of(const uint8_t b[KN_PRF_BYTES])
{
	struct fp f;

	memcpy(&f.a, b, 8);
	memcpy(&f.b, b + 8, 8);
	if (!f.a && !f.b)
		f.b = 1;
	return f;
}

static bool set_has(const struct kn_erasure *e, struct fp f)
{
	if (!e->cap)
		return false;
	for (uint32_t i = (uint32_t)f.a & (e->cap - 1);; i = (i + 1) & (e->cap - 1)) {
		if (!e->set[i].a && !e->set[i].b)
			return false;
		if (e->set[i].a == f.a && e->set[i].b == f.b)
			return true;
	}
}

static int set_add(struct kn_erasure *e, struct fp f)
{
	if (set_has(e, f))
		return 0;
	if ((e->st.erased_people + 1) * 2 > e->cap) {
		uint32_t ncap = e->cap ? e->cap * 2 : 1024;
		struct fp *ns = kn_calloc(ncap, sizeof(*ns));
		if (!ns)
			return -ENOMEM;
		for (uint32_t i = 0; i < e->cap; i++) {
			struct fp g = e->set[i];
			if (!g.a && !g.b)
				continue;
			uint32_t j = (uint32_t)g.a & (ncap - 1);
			while (ns[j].a || ns[j].b)
				j = (j + 1) & (ncap - 1);
			ns[j] = g;
		}
		kn_free(e->set);
		e->set = ns;
		e->cap = ncap;
	}
	uint32_t i = (uint32_t)f.a & (e->cap - 1);
	while (e->set[i].a || e->set[i].b)
		i = (i + 1) & (e->cap - 1);
	e->set[i] = f;
	e->st.erased_people++;
	return 0;
}

bool kn_erasure_match(struct kn_erasure *e, const struct kn_event *ev,
		      const struct kn_norm_opts *norm)
{
	uint8_t out[KN_PRF_BYTES];

	if (!e->st.erased_people)
		return false;
	for (int k = 0; k < KN_ID_KINDS; k++) {
		const struct kn_val *v = &ev->role[KN_ROLE_ID_FIRST + k];
		if (v->type == KN_VAL_STR &&
		    !kn_erasure_fingerprint(e->keys, (enum kn_id_kind)k, v->s.p, v->s.len, norm,
					    out) &&
		    set_has(e, fp_of(out)))
			return true;
	}
	return false;
}

/* A state record: key = 32 hex characters of the fingerprint. */
static void apply_state(struct kn_erasure *e, const rd_kafka_message_t *m)
{
	uint8_t b[KN_PRF_BYTES];

	if (m->key_len != 2 * KN_PRF_BYTES)
		return;
	for (int i = 0; i < KN_PRF_BYTES; i++) {
		unsigned v;
		if (sscanf((const char *)m->key + 2 * i, "%2x", &v) != 1)
			return;
		b[i] = (uint8_t)v;
	}
	set_add(e, fp_of(b));
}

static int parse_request(const rd_kafka_message_t *m, enum kn_id_kind *kind, const char **id,
			 size_t *len)
{
	const char *k = m->key, *v = m->payload;
	size_t klen = m->key_len, vlen = m->len;

	if (!v)
		return -EINVAL;
	if (!k) { /* "kind:identifier" */
		const char *colon = memchr(v, ':', vlen);
		if (!colon)
			return -EINVAL;
		k = v;
		klen = (size_t)(colon - v);
		vlen -= klen + 1;
		v = colon + 1;
	}
	for (int i = 0; i < KN_ID_KINDS; i++) {
		const char *name = kn_id_kind_name((enum kn_id_kind)i);
		if (strlen(name) == klen && !memcmp(name, k, klen)) {
			*kind = (enum kn_id_kind)i;
			*id = v;
			*len = vlen;
			return 0;
		}
	}
	return -EINVAL;
}

/* Queues one state record (waiting briefly for queue space). A refusal
 * marks the erasure state failed: from then on no request is committed, so
 * the next run reads them again. Returns 0 or -EIO. */
static int produce_state(struct kn_erasure *e, const void *val, size_t vlen, const void *key,
			 size_t klen)
{
	rd_kafka_resp_err_t err;

	for (int tries = 0;; tries++) {
		if (!rd_kafka_produce(e->state_rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY,
				      (void *)val, vlen, key, klen, NULL))
			return 0;
		err = rd_kafka_last_error();
		if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || tries >= 100 || kn_stop_requested())
			break;
		rd_kafka_poll(e->prod, 10);
	}
	if (!e->failed[0])
		snprintf(e->failed, sizeof(e->failed), "erasure state topic %s: %s",
			 e->c->erasure_state_topic, rd_kafka_err2str(err));
	return -EIO;
}

static void serve_request(struct kn_erasure *e, rd_kafka_message_t *m)
{
	enum kn_id_kind kind;
	const char *id;
	size_t len;
	uint8_t b[KN_PRF_BYTES];
	char hex[2 * KN_PRF_BYTES + 1];

	e->st.requests++;
	if (parse_request(m, &kind, &id, &len) ||
	    kn_erasure_fingerprint(e->keys, kind, id, len, &e->norm, b)) {
		/* Never log the identifier itself. */
		kn_warn("erasure",
			"request at %s [%d] offset %lld is not 'kind:identifier' with a "
			"valid identifier; ignored",
			rd_kafka_topic_name(m->rkt), m->partition, (long long)m->offset);
		e->st.bad_requests++;
		return;
	}
	kn_pid_hex(b, hex);
	set_add(e, fp_of(b));
	produce_state(e, kn_id_kind_name(kind), strlen(kn_id_kind_name(kind)), hex,
		      2 * KN_PRF_BYTES);
}

/* A state record that failed is produced again: its request is committed
 * only once every state record before the commit is durable. */
static void state_delivered(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	struct kn_erasure *e = opaque;

	if (!m->err)
		return;
	kn_warn("erasure", "state record not delivered (%s): producing it again",
		rd_kafka_err2str(m->err));
	produce_state(e, m->payload, m->len, m->key, m->key_len);
	(void)rk;
}

int kn_erasure_poll(struct kn_erasure *e)
{
	rd_kafka_message_t *m;
	int n = 0;

	while (n++ < 10000 && (m = rd_kafka_consumer_poll(e->state_cons, 0))) {
		if (!m->err)
			apply_state(e, m);
		rd_kafka_message_destroy(m);
	}
	while (!e->failed[0] && (m = rd_kafka_consumer_poll(e->req_cons, 0))) {
		if (!m->err) {
			serve_request(e, m);
			e->served = true;
		}
		rd_kafka_message_destroy(m);
	}
	/* The state record is durable before the request counts as done; never
	 * wait for it here (a broker outage would stall the pipeline): commit
	 * on a later poll, once the producer's queue is empty. */
	rd_kafka_poll(e->prod, 0);
	if (e->failed[0])
		return -EIO;
	if (e->served && rd_kafka_outq_len(e->prod) == 0) {
		rd_kafka_resp_err_t err = rd_kafka_commit(e->req_cons, NULL, 1);
		e->served = err && err != RD_KAFKA_RESP_ERR__NO_OFFSET;
	}
	return 0;
}

const char *kn_erasure_error(const struct kn_erasure *e)
{
	return e->failed[0] ? e->failed : NULL;
}

/* Creates the topics if missing: requests with the broker's defaults, state
 * compacted. An existing topic is left as it is. */
/* Asks for all topics: a metadata request naming a missing topic would make
 * a broker with auto.create.topics.enable create it, uncompacted. */
static bool topic_exists(rd_kafka_t *rk, const char *name)
{
	const struct rd_kafka_metadata *md = NULL;
	bool ok = false;

	if (kn_kafka_metadata(rk, NULL, &md, kn_mono_ms() + 10000))
		return false;
	for (int i = 0; i < md->topic_cnt && !ok; i++)
		ok = !strcmp(md->topics[i].topic, name) && !md->topics[i].err &&
		     md->topics[i].partition_cnt > 0;
	rd_kafka_metadata_destroy(md);
	return ok;
}

static int create_topics(struct kn_erasure *e, char *errstr, size_t errsz)
{
	rd_kafka_NewTopic_t *t[2];
	rd_kafka_queue_t *q;
	char why[256];
	int err = 0;

	if (topic_exists(e->prod, e->c->erasure_requests_topic) &&
	    topic_exists(e->prod, e->c->erasure_state_topic))
		return 0;
	q = rd_kafka_queue_new(e->prod);
	t[0] = rd_kafka_NewTopic_new(e->c->erasure_requests_topic, 1, -1, why, sizeof(why));
	t[1] = rd_kafka_NewTopic_new(e->c->erasure_state_topic, 1, -1, why, sizeof(why));
	rd_kafka_NewTopic_set_config(t[1], "cleanup.policy", "compact");
	rd_kafka_CreateTopics(e->prod, t, 2, NULL, q);
	rd_kafka_event_t *ev = NULL;
	for (int64_t until = kn_mono_ms() + 15000; !ev && kn_stop_wait(until);)
		ev = rd_kafka_queue_poll(q, kn_stop_wait(until));
	const rd_kafka_CreateTopics_result_t *res =
		ev ? rd_kafka_event_CreateTopics_result(ev) : NULL;
	size_t n = 0;
	const rd_kafka_topic_result_t **r =
		res ? rd_kafka_CreateTopics_result_topics(res, &n) : NULL;
	for (size_t i = 0; i < n; i++) {
		rd_kafka_resp_err_t te = rd_kafka_topic_result_error(r[i]);
		if (te && te != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
			snprintf(errstr, errsz, "creating %s: %s", rd_kafka_topic_result_name(r[i]),
				 rd_kafka_topic_result_error_string(r[i]));
			err = -EIO;
		}
	}
	if (!ev && kn_stop_requested()) {
		snprintf(errstr, errsz, "stopped while starting");
		err = -ECANCELED;
	} else if (!ev) {
		snprintf(errstr, errsz, "creating the erasure topics: no answer within 15 s");
		err = -ETIMEDOUT;
	}
	if (ev)
		rd_kafka_event_destroy(ev);
	rd_kafka_NewTopic_destroy_array(t, 2);
	rd_kafka_queue_destroy(q);
	return err;
}

static rd_kafka_t *consumer(struct kn_erasure *e, const char *group, bool eof, char *errstr,
			    size_t errsz)
{
	rd_kafka_conf_t *conf =
		kn_kafka_client_conf(e->c, KN_CLIENT_ERASURE_CONSUMER, group, errstr, errsz);
	rd_kafka_t *rk;

	if (!conf)
		return NULL;
	if (kn_kafka_conf_set(conf, "enable.partition.eof", eof ? "true" : "false", errstr,
			      errsz)) {
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, errsz);
	if (!rk)
		rd_kafka_conf_destroy(conf);
	else
		rd_kafka_poll_set_consumer(rk);
	return rk;
}

/* Assigns every partition of the state topic from the start and reads to its end. */
static int load_state(struct kn_erasure *e, char *errstr, size_t errsz)
{
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(e->state_cons, e->c->erasure_state_topic, NULL);
	rd_kafka_resp_err_t err = kn_kafka_metadata(e->state_cons, rkt, &md, kn_mono_ms() + 10000);
	int parts = 0, eofs = 0;

	if (!err && md->topic_cnt == 1 && !md->topics[0].err)
		parts = md->topics[0].partition_cnt;
	if (md)
		rd_kafka_metadata_destroy(md);
	rd_kafka_topic_destroy(rkt);
	if (!parts && kn_stop_requested()) {
		snprintf(errstr, errsz, "stopped while starting");
		return -ECANCELED;
	}
	if (!parts) {
		snprintf(errstr, errsz, "erasure state topic %s: %s", e->c->erasure_state_topic,
			 err ? rd_kafka_err2str(err) : "no partitions");
		return -EIO;
	}
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(parts);
	for (int p = 0; p < parts; p++)
		rd_kafka_topic_partition_list_add(l, e->c->erasure_state_topic, p)->offset =
			RD_KAFKA_OFFSET_BEGINNING;
	rd_kafka_assign(e->state_cons, l);
	rd_kafka_topic_partition_list_destroy(l);
	for (int64_t until = kn_mono_ms() + LOAD_TIMEOUT_MS; eofs < parts && kn_stop_wait(until);) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(e->state_cons, 100);
		if (!m)
			continue;
		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
			eofs++;
		else if (!m->err)
			apply_state(e, m);
		rd_kafka_message_destroy(m);
	}
	if (eofs < parts && kn_stop_requested()) {
		snprintf(errstr, errsz, "stopped while starting");
		return -ECANCELED;
	}
	if (eofs < parts) {
		snprintf(errstr, errsz, "erasure state topic %s: not read to its end within %d s",
			 e->c->erasure_state_topic, LOAD_TIMEOUT_MS / 1000);
		return -ETIMEDOUT;
	}
	return 0;
}

int kn_erasure_new(const struct kn_config *c, struct kn_keys *keys, struct kn_erasure **out,
		   char *errstr, size_t errstr_size)
{
	struct kn_erasure *e = kn_calloc(1, sizeof(*e));
	char group[512];
	int err = -EINVAL;

	*out = NULL;
	if (!e) {
		snprintf(errstr, errstr_size, "out of memory");
		return -ENOMEM;
	}
	e->c = c;
	e->keys = keys;
	snprintf(e->norm.phone_cc, sizeof(e->norm.phone_cc), "%s", c->phone_region);
	rd_kafka_conf_t *pc =
		kn_kafka_client_conf(c, KN_CLIENT_ERASURE_PRODUCER, NULL, errstr, errstr_size);
	if (!pc)
		goto fail_conf;
	rd_kafka_conf_set_dr_msg_cb(pc, state_delivered);
	rd_kafka_conf_set_opaque(pc, e);
	e->prod = rd_kafka_new(RD_KAFKA_PRODUCER, pc, errstr, errstr_size);
	if (!e->prod)
		goto fail_conf;
	pc = NULL;
	/* Topics first: a handle on a missing topic would have the broker
	 * auto-create it, uncompacted. */
	if ((err = create_topics(e, errstr, errstr_size)))
		goto fail;
	e->state_rkt = rd_kafka_topic_new(e->prod, c->erasure_state_topic, NULL);
	snprintf(group, sizeof(group), "%s-erasure-state", c->group_id);
	e->state_cons = consumer(e, group, true, errstr, errstr_size);
	snprintf(group, sizeof(group), "%s-erasure", c->group_id);
	e->req_cons = consumer(e, group, false, errstr, errstr_size);
	err = -EINVAL;
	if (!e->state_cons || !e->req_cons)
		goto fail;
	rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(sub, c->erasure_requests_topic, RD_KAFKA_PARTITION_UA);
	rd_kafka_subscribe(e->req_cons, sub);
	rd_kafka_topic_partition_list_destroy(sub);
	if ((err = load_state(e, errstr, errstr_size)))
		goto fail;
	kn_info("erasure", "%llu erased people known (state topic %s, requests from %s)",
		(unsigned long long)e->st.erased_people, c->erasure_state_topic,
		c->erasure_requests_topic);
	*out = e;
	return 0;
fail_conf:
	if (pc)
		rd_kafka_conf_destroy(pc);
fail:
	kn_erasure_destroy(e);
	return err;
}

void kn_erasure_destroy(struct kn_erasure *e)
{
	int64_t until = kn_mono_ms() + CLOSE_TIMEOUT_MS;

	if (!e)
		return;
	/* Requests whose state is durable are committed; the rest are read
	 * again by the next run. Every wait is bounded (stop.h). */
	if (e->prod && !kn_kafka_flush(e->prod, until) && e->served && e->req_cons &&
	    !e->failed[0]) {
		char why[256];
		if (kn_kafka_commit(e->req_cons, NULL, until, why, sizeof(why)))
			kn_warn("erasure", "committing served requests: %s", why);
	}
	kn_kafka_close(e->req_cons, true, until);
	kn_kafka_close(e->state_cons, false, until);
	if (e->state_rkt)
		rd_kafka_topic_destroy(e->state_rkt);
	if (e->prod)
		kn_kafka_destroy(e->prod, 0, until);
	kn_free(e->set);
	kn_free(e);
}

const struct kn_erasure_stats *kn_erasure_stats(const struct kn_erasure *e)
{
	return &e->st;
}
