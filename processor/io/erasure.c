#include "erasure.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "consumer.h"
#include "kn_alloc.h"
#include "log.h"
#include "producer.h"
#include "pseudonymize.h"
#include "stop.h"

#define LOAD_TIMEOUT_MS	 30000
#define CLOSE_TIMEOUT_MS 8000
#define POLL_BATCH	 256

struct fp {
	uint64_t a, b; /* the 128-bit fingerprint; a == 0 && b == 0 marks an empty slot */
};

struct kn_erasure {
	const struct kn_config *c;
	struct kn_keys *keys;
	struct kn_norm_opts norm;
	struct kn_consumer *state_cons, *req_cons;
	struct kn_producer *prod;
	int t_state;		  /* the producer's handle of the state topic */
	const char *req_topic[1]; /* what the request consumer subscribes to */
	struct kn_msg msgs[POLL_BATCH];
	bool served;	  /* requests consumed whose offsets are not committed yet */
	char failed[300]; /* a state record could not be written: commit nothing more */
	struct fp *set;
	uint32_t cap;
	struct kn_erasure_stats st;
	uint64_t unserved; /* requests read by start-up's scan */
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
static void apply_state(struct kn_erasure *e, const struct kn_msg *m)
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

static int parse_request(const struct kn_msg *m, enum kn_id_kind *kind, const char **id,
			 size_t *len)
{
	const char *k = (const char *)m->key, *v = (const char *)m->payload;
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
	int err;

	for (int tries = 0;; tries++) {
		err = kn_producer_send(e->prod, e->t_state, key, klen, val, vlen, 0, NULL, 0);
		if (err != -EAGAIN || tries >= 100 || kn_stop_requested())
			break;
		kn_producer_poll(e->prod, 10);
	}
	if (!err)
		return 0;
	if (!e->failed[0])
		snprintf(e->failed, sizeof(e->failed), "erasure state topic %s: %s",
			 e->c->erasure_state_topic,
			 err == -EAGAIN		      ? "local queue full"
			 : kn_producer_error(e->prod) ? kn_producer_error(e->prod)
						      : "refused");
	return -EIO;
}

static void serve_request(struct kn_erasure *e, const struct kn_msg *m)
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
			m->topic, m->partition, (long long)m->offset);
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
static void state_delivered(void *opaque, const struct kn_delivery *d)
{
	struct kn_erasure *e = opaque;

	if (!d->err)
		return;
	kn_warn("erasure", "state record not delivered (%s): producing it again", d->reason);
	produce_state(e, d->payload, d->len, d->key, d->key_len);
}

int kn_erasure_poll(struct kn_erasure *e)
{
	int n, total = 0;

	while (total < 10000 && (n = kn_consumer_poll(e->state_cons, e->msgs, POLL_BATCH, 0)) > 0) {
		for (int i = 0; i < n; i++)
			if (!e->msgs[i].eof)
				apply_state(e, &e->msgs[i]);
		kn_consumer_release(e->state_cons, e->msgs, n);
		total += n;
	}
	while (!e->failed[0] && (n = kn_consumer_poll(e->req_cons, e->msgs, POLL_BATCH, 0)) > 0) {
		for (int i = 0; i < n; i++) {
			if (e->msgs[i].eof)
				continue;
			serve_request(e, &e->msgs[i]);
			e->served = true;
		}
		kn_consumer_release(e->req_cons, e->msgs, n);
	}
	/* The state record is durable before the request counts as done; never
	 * wait for it here (a broker outage would stall the pipeline): commit
	 * on a later poll, once the producer's queue is empty. */
	kn_producer_poll(e->prod, 0);
	if (e->failed[0])
		return -EIO;
	if (e->served && kn_producer_queued(e->prod) == 0)
		e->served = kn_consumer_commit(e->req_cons, NULL, 0, 0) != 0;
	return 0;
}

const char *kn_erasure_error(const struct kn_erasure *e)
{
	return e->failed[0] ? e->failed : NULL;
}

/* A request's fingerprint taken in without serving it (start-up's scan):
 * the instance whose group owns the request serves it, and says so if it
 * is malformed. */
static void take_request(struct kn_erasure *e, const struct kn_msg *m)
{
	enum kn_id_kind kind;
	const char *id;
	size_t len;
	uint8_t b[KN_PRF_BYTES];

	e->unserved++;
	if (!parse_request(m, &kind, &id, &len) &&
	    !kn_erasure_fingerprint(e->keys, kind, id, len, &e->norm, b))
		set_add(e, fp_of(b));
}

/* Assigns every partition of topic to k, from the start or (committed)
 * from k's group's committed offsets, and reads to its end, each record
 * through take (apply_state or take_request). */
static int read_to_end(struct kn_erasure *e, struct kn_consumer *k, const char *topic,
		       bool committed, void (*take)(struct kn_erasure *, const struct kn_msg *),
		       char *errstr, size_t errsz)
{
	struct kn_tp tps[64];
	int parts, eofs = 0, err;

	parts = kn_consumer_partitions(k, topic, kn_mono_ms() + 10000, errstr, errsz);
	if (parts == -ECANCELED) {
		snprintf(errstr, errsz, "stopped while starting");
		return parts;
	}
	if (parts == -ENOENT)
		snprintf(errstr, errsz, "%s: no such topic", topic);
	if (parts < 0) {
		char why[300];
		snprintf(why, sizeof(why), "%s", errstr);
		snprintf(errstr, errsz, "erasure topic %s: %s", topic, why);
		return -EIO;
	}
	if (parts > 64)
		parts = 64; /* kanon creates them with one; more is someone else's doing */
	for (int p = 0; p < parts; p++)
		tps[p] = (struct kn_tp){topic, p, KN_OFFSET_BEGINNING};
	if (committed &&
	    (err = kn_consumer_committed(k, tps, parts, kn_mono_ms() + 10000, errstr, errsz)))
		return err;
	for (int p = 0; p < parts; p++)
		if (tps[p].offset == KN_OFFSET_NONE)
			tps[p].offset = KN_OFFSET_BEGINNING;
	if ((err = kn_consumer_assign(k, tps, parts, errstr, errsz)))
		return err;
	for (int64_t until = kn_mono_ms() + LOAD_TIMEOUT_MS; eofs < parts && kn_stop_wait(until);) {
		int n = kn_consumer_poll(k, e->msgs, POLL_BATCH, 100);
		for (int i = 0; i < n; i++) {
			if (e->msgs[i].eof)
				eofs++;
			else
				take(e, &e->msgs[i]);
		}
		kn_consumer_release(k, e->msgs, n);
	}
	if (eofs < parts && kn_stop_requested()) {
		snprintf(errstr, errsz, "stopped while starting");
		return -ECANCELED;
	}
	if (eofs < parts) {
		snprintf(errstr, errsz, "erasure topic %s: not read to its end within %d s", topic,
			 LOAD_TIMEOUT_MS / 1000);
		return -ETIMEDOUT;
	}
	return 0;
}

/* Start-up: the whole state, then the requests not served yet (from the
 * request group's committed offsets on: served ones are in the state). A
 * request that no instance has served yet (kanon was down when it came, or
 * another instance's group member serves it a moment later) is honoured
 * from this run's first record: events read before its state record
 * arrives are not let through. The scan takes the request group's id
 * only to read its offsets: it joins no group, commits nothing and is
 * closed at once; one that cannot finish in time (a flood of
 * requests) is said and left: those requests hold once served. */
static int load_state(struct kn_erasure *e, char *errstr, size_t errsz)
{
	static const char *const eof_on[] = {"enable.partition.eof", "true", NULL};
	char group[512], why[400];
	struct kn_consumer *scan = NULL;
	int err = read_to_end(e, e->state_cons, e->c->erasure_state_topic, false, apply_state,
			      errstr, errsz);

	if (err)
		return err;
	snprintf(group, sizeof(group), "%s-erasure", e->c->group_id);
	struct kn_consumer_opts so = {
		.role = KN_CLIENT_ERASURE_CONSUMER, .group = group, .extra = eof_on};
	if (!(err = kn_consumer_new(e->c, &so, &scan, why, sizeof(why))))
		err = read_to_end(e, scan, e->c->erasure_requests_topic, true, take_request, why,
				  sizeof(why));
	kn_consumer_close(scan, false, kn_mono_ms() + CLOSE_TIMEOUT_MS);
	if (err == -ECANCELED) {
		snprintf(errstr, errsz, "%s", why);
		return err;
	}
	if (err)
		kn_warn("erasure",
			"unserved requests not all read at start (%s): those left hold once "
			"served",
			why);
	return 0;
}

/* The producer, the topics (created if missing: requests with the broker's
 * defaults, state compacted) and both consumers. */
static int connect(struct kn_erasure *e, char *errstr, size_t errsz)
{
	static const char *const compact[] = {"cleanup.policy", "compact", NULL};
	static const char *const eof_on[] = {"enable.partition.eof", "true", NULL};
	static const char *const eof_off[] = {"enable.partition.eof", "false", NULL};
	const struct kn_config *c = e->c;
	struct kn_new_topic t[] = {{c->erasure_requests_topic, 1, NULL},
				   {c->erasure_state_topic, 1, compact}};
	struct kn_producer_opts po = {KN_CLIENT_ERASURE_PRODUCER, state_delivered, e, NULL};
	char state_group[512], req_group[512];
	int err;

	snprintf(state_group, sizeof(state_group), "%s-erasure-state", c->group_id);
	snprintf(req_group, sizeof(req_group), "%s-erasure", c->group_id);
	e->req_topic[0] = c->erasure_requests_topic;
	struct kn_consumer_opts so = {
		.role = KN_CLIENT_ERASURE_CONSUMER, .group = state_group, .extra = eof_on};
	struct kn_consumer_opts ro = {.role = KN_CLIENT_ERASURE_CONSUMER,
				      .group = req_group,
				      .topics = e->req_topic,
				      .n_topics = 1,
				      .subscribe = true,
				      .extra = eof_off};
	if ((err = kn_producer_new(c, &po, &e->prod, errstr, errsz)))
		return err;
	/* Topics first: a handle on a missing topic would have the broker
	 * auto-create it, uncompacted. */
	/* The broker may be down at start: waited out as the input's
	 * assignment is (run.assignment_wait), then said. */
	if ((err = kn_producer_ensure_topics(e->prod, t, 2, kn_mono_ms() + c->assign_wait_ms,
					     errstr, errsz)))
		return err;
	if ((e->t_state = kn_producer_topic(e->prod, c->erasure_state_topic)) < 0) {
		snprintf(errstr, errsz, "out of memory");
		return -ENOMEM;
	}
	if ((err = kn_consumer_new(c, &so, &e->state_cons, errstr, errsz)) ||
	    (err = kn_consumer_new(c, &ro, &e->req_cons, errstr, errsz)))
		return err;
	return 0;
}

int kn_erasure_new(const struct kn_config *c, struct kn_keys *keys, struct kn_erasure **out,
		   char *errstr, size_t errstr_size)
{
	struct kn_erasure *e = kn_calloc(1, sizeof(*e));
	int err;

	*out = NULL;
	if (!e) {
		snprintf(errstr, errstr_size, "out of memory");
		return -ENOMEM;
	}
	e->c = c;
	e->keys = keys;
	snprintf(e->norm.phone_cc, sizeof(e->norm.phone_cc), "%s", c->phone_region);
	if ((err = connect(e, errstr, errstr_size)) || (err = load_state(e, errstr, errstr_size))) {
		kn_erasure_destroy(e);
		return err;
	}
	kn_info("erasure",
		"%llu erased people known (state topic %s, requests from %s; %llu not served "
		"yet)",
		(unsigned long long)e->st.erased_people, c->erasure_state_topic,
		c->erasure_requests_topic, (unsigned long long)e->unserved);
	*out = e;
	return 0;
}

void kn_erasure_destroy(struct kn_erasure *e)
{
	int64_t until = kn_mono_ms() + CLOSE_TIMEOUT_MS;

	if (!e)
		return;
	/* Requests whose state is durable are committed; the rest are read
	 * again by the next run. Every wait is bounded (stop.h). */
	if (e->prod && !kn_producer_flush(e->prod, until) && e->served && e->req_cons &&
	    !e->failed[0] && kn_consumer_commit(e->req_cons, NULL, 0, until))
		kn_warn("erasure", "committing served requests failed: they are served again");
	kn_consumer_close(e->req_cons, true, until);
	kn_consumer_close(e->state_cons, false, until);
	kn_producer_destroy(e->prod, until);
	kn_free(e->set);
	kn_free(e);
}

const struct kn_erasure_stats *kn_erasure_stats(const struct kn_erasure *e)
{
	return &e->st;
}
