#include "pipeline.h"

#include <string.h>

#include "avrobin.h"
#include "erasure.h"
#include "generalize.h"
#include "kn_alloc.h"
#include "pseudonymize.h"

struct kn_pipeline {
	const struct kn_schemas *schemas;
	struct kn_keys *keys;
	struct kn_policy *policy;
	struct kn_erasure *erasure;
	int32_t deid_schema_id;
	struct kn_validate_opts vopts;
	struct kn_pseudo_opts popts;
	struct kn_gen_opts gopts;
	struct kn_ua_cache *ua_cache;
	struct kn_rec rec;   /* scratch for the one-record calls */
	struct kn_deid deid; /* scratch, reused */
	struct kn_pipeline_stats st;
};

struct kn_pipeline *kn_pipeline_new(const struct kn_config *c, const struct kn_schemas *schemas,
				    struct kn_keys *keys, char *errstr, size_t errstr_size)
{
	struct kn_pipeline *p = kn_calloc(1, sizeof(*p));

	if (!p) {
		snprintf(errstr, errstr_size, "out of memory");
		return NULL;
	}
	if (kn_policy_new(c, &p->policy, errstr, errstr_size)) {
		kn_free(p);
		return NULL;
	}
	if (!(p->ua_cache = kn_ua_cache_new())) {
		snprintf(errstr, errstr_size, "out of memory");
		kn_pipeline_destroy(p);
		return NULL;
	}
	p->schemas = schemas;
	p->keys = keys;
	p->deid_schema_id = (int32_t)c->deid_schema_id;
	p->vopts = (struct kn_validate_opts){c->ts_min_ms, c->ts_max_future_ms, c->max_field_bytes};
	p->popts.epoch_ms = c->epoch_ms;
	p->popts.link_kinds = c->link_kinds;
	snprintf(p->popts.norm.phone_cc, sizeof(p->popts.norm.phone_cc), "%s", c->phone_region);
	p->gopts = (struct kn_gen_opts){(int)c->geohash_precision, (int)c->ipv4_prefix,
					(int)c->ipv6_prefix, c->time_bucket_ms};
	return p;
}

void kn_pipeline_destroy(struct kn_pipeline *p)
{
	if (!p)
		return;
	kn_policy_destroy(p->policy);
	kn_ua_cache_destroy(p->ua_cache);
	kn_free(p);
}

static void rec_dead(struct kn_pipeline *p, struct kn_rec *r, enum kn_dead_reason why,
		     const char *detail)
{
	r->state = KN_REC_DEAD;
	r->v.reason = why;
	r->v.detail = detail;
	p->st.dead[why]++;
}

static void rec_drop(struct kn_pipeline *p, struct kn_rec *r, enum kn_drop_reason why)
{
	r->state = KN_REC_DROPPED;
	r->v.dropped = true;
	r->v.drop = why;
	p->st.dropped[why]++;
}

/* Stage 1: unframe (when framed), decode, validate. */
static void rec_decode(struct kn_pipeline *p, struct kn_rec *r, bool framed)
{
	enum kn_dead_reason why_r;
	const uint8_t *datum = r->msg;
	size_t len = r->len;
	const char *why;
	int64_t id;

	p->st.in++;
	r->state = KN_REC_LIVE;
	r->v = (struct kn_verdict){.schema_id = r->e ? r->e->id : -1};
	r->out_len = 0;
	r->key_len = 0;
	if (framed) {
		if (!r->msg || !r->len)
			return rec_dead(p, r, KN_DEAD_EMPTY, "value");
		id = kn_frame_get(r->msg, r->len);
		if (id < 0)
			return rec_dead(p, r, KN_DEAD_FRAMING,
					r->len < KN_FRAME_LEN ? "too short" : "magic byte");
		r->v.schema_id = (int32_t)id;
		r->e = kn_schemas_find(p->schemas, (int32_t)id);
		if (!r->e)
			return rec_dead(p, r, KN_DEAD_UNKNOWN_SCHEMA, "schema id");
		if (!r->e->dec) /* learned from the registry as unusable */
			return rec_dead(p, r, KN_DEAD_UNKNOWN_SCHEMA, r->e->why);
		if (r->expected_type >= 0 && (int)r->e->type != r->expected_type)
			return rec_dead(p, r, KN_DEAD_WRONG_TOPIC, kn_event_type_name(r->e->type));
		datum += KN_FRAME_LEN;
		len -= KN_FRAME_LEN;
	}
	r->ev.type = r->e->type;
	r->ev.schema_id = r->e->id;
	if (kn_decoder_decode(r->e->dec, datum, len, &r->ev, &why))
		return rec_dead(p, r, KN_DEAD_DECODE, why);
	if (kn_validate(&p->vopts, &r->ev, r->ref_ms, &why_r, &why))
		return rec_dead(p, r, why_r, why);
}

/* Whether the record's IP is not an address. Stage 3 finds it for what it
 * generalizes; a record the policy withholds is looked at here, so that
 * malformed input is a dead letter whatever the policy says of it. */
static bool bad_ip(const struct kn_pipeline *p, const struct kn_event *ev)
{
	const struct kn_val *ip = &ev->role[KN_ROLE_IP];
	char prefix[KN_PREFIX_MAX];

	return ip->type == KN_VAL_STR &&
	       kn_ip_prefix(ip->s.p, ip->s.len, p->gopts.ipv4_prefix, p->gopts.ipv6_prefix, prefix);
}

/* Stage 2: consent, minors, erasure requests. */
static void rec_admit(struct kn_pipeline *p, struct kn_rec *r)
{
	if (r->state != KN_REC_LIVE)
		return;
	if (!kn_policy_admit(p->policy, &r->ev, &r->minor, &r->v.drop)) {
		if (!p->erasure || !kn_erasure_match(p->erasure, &r->ev, &p->popts.norm))
			return;
		r->v.drop = KN_DROP_ERASED;
	}
	if (bad_ip(p, &r->ev))
		return rec_dead(p, r, KN_DEAD_BAD_IP, kn_roles[KN_ROLE_IP].name);
	rec_drop(p, r, r->v.drop);
}

/* A withheld sensitive event keeps an event key, for downstream
 * deduplication, but not the one its id gives: an id an upstream reuses
 * across logs (one request in the access and the search log) would link it
 * to the person's events that were kept. A keyed PRF of the key under a
 * tag: unique per event, linked to nothing. */
static void rekey_withheld(struct kn_pipeline *p, struct kn_deid *d)
{
	char in[9 + KN_PID_HEX_LEN] = "withheld:";
	uint8_t mac[KN_PRF_BYTES];

	memcpy(in + 9, d->event_key, KN_PID_HEX_LEN);
	if (!d->has_event_key ||
	    kn_keys_prf(p->keys, d->key_epoch, KN_DOMAIN_EVENT, in, sizeof(in), mac)) {
		d->has_event_key = false;
		return;
	}
	kn_pid_hex(mac, d->event_key);
}

/* Stage 3: pseudonymize, generalize, the policy's finishing rules
 * (location, sensitive categories, search text), encode. out has room for
 * KN_FRAME_LEN + KN_DEID_MAX_BYTES bytes. */
static void rec_deid(struct kn_pipeline *p, struct kn_rec *r, struct kn_deid *d, uint8_t *out,
		     bool framed)
{
	bool geo_withheld;
	const char *key;
	size_t klen, n;

	if (r->state != KN_REC_LIVE)
		return;
	d->minor = r->minor;
	/* A minor's identifiers are removed, not pseudonymized. */
	if (kn_pseudonymize(&p->popts, p->keys, &r->ev, d, !d->minor, p->st.invalid_id))
		/* older than key retention: nothing may be produced */
		return rec_drop(p, r, KN_DROP_KEY_RETIRED);
	if (kn_generalize_event(&p->gopts, p->ua_cache, &r->ev, d, &geo_withheld))
		return rec_dead(p, r, KN_DEAD_BAD_IP, kn_roles[KN_ROLE_IP].name);
	p->st.geo_withheld += geo_withheld;
	kn_policy_finish(p->policy, &r->ev, d);
	if (d->sensitive)
		rekey_withheld(p, d);
	p->st.out++;
	n = kn_encode_deid(d, framed ? out + KN_FRAME_LEN : out);
	if (framed) {
		kn_frame_put(out, p->deid_schema_id);
		n += KN_FRAME_LEN;
	}
	r->state = KN_REC_OUT;
	r->out_len = (uint32_t)n;
	r->out_ts = d->time_bucket_ms;
	key = kn_deid_key(d, &klen);
	memcpy(r->key, key ? key : "", klen);
	r->key_len = (uint8_t)klen;
}

size_t kn_pipeline_process_datum(struct kn_pipeline *p, const struct kn_schema_entry *e,
				 const uint8_t *datum, size_t len, int64_t ref_ms, uint8_t *out,
				 struct kn_verdict *v)
{
	struct kn_rec *r = &p->rec;

	r->msg = datum;
	r->len = len;
	r->e = e;
	r->ref_ms = ref_ms;
	rec_decode(p, r, false);
	rec_admit(p, r);
	rec_deid(p, r, &p->deid, out, false);
	*v = r->v;
	return r->out_len;
}

size_t kn_pipeline_process(struct kn_pipeline *p, const uint8_t *msg, size_t len, int expected_type,
			   int64_t ref_ms, uint8_t *out, struct kn_verdict *v)
{
	struct kn_rec *r = &p->rec;

	r->msg = msg;
	r->len = len;
	r->e = NULL;
	r->expected_type = expected_type;
	r->ref_ms = ref_ms;
	rec_decode(p, r, true);
	rec_admit(p, r);
	rec_deid(p, r, &p->deid, out, true);
	*v = r->v;
	return r->out_len;
}

struct kn_batch *kn_batch_new(int cap, bool keep_deid)
{
	struct kn_batch *b = kn_calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	b->cap = cap;
	b->rec = kn_calloc((size_t)cap, sizeof(*b->rec));
	/* Sized for the worst case; pages that are never written are never
	 * backed by memory, so the usual few hundred bytes per record cost
	 * only that. */
	b->arena_cap = (size_t)cap * (KN_FRAME_LEN + KN_DEID_MAX_BYTES);
	b->arena = kn_malloc(b->arena_cap);
	if (keep_deid)
		b->deid = kn_calloc((size_t)cap, sizeof(*b->deid));
	if (!b->rec || !b->arena || (keep_deid && !b->deid)) {
		kn_batch_destroy(b);
		return NULL;
	}
	return b;
}

void kn_batch_destroy(struct kn_batch *b)
{
	if (!b)
		return;
	kn_free(b->rec);
	kn_free(b->arena);
	kn_free(b->deid);
	kn_free(b);
}

int kn_pipeline_decode(struct kn_pipeline *p, struct kn_batch *b)
{
	int live = 0;

	for (int i = 0; i < b->n; i++) {
		/* The message after next into the cache while this one decodes:
		 * a record's first touch was a fifth of the decoder's time. */
		if (i + 2 < b->n)
			for (size_t o = 0; o < b->rec[i + 2].len && o < 512; o += 64)
				__builtin_prefetch(b->rec[i + 2].msg + o);
		b->rec[i].e = NULL;
		rec_decode(p, &b->rec[i], true);
		live += b->rec[i].state == KN_REC_LIVE;
	}
	return live;
}

int kn_pipeline_admit(struct kn_pipeline *p, struct kn_batch *b)
{
	int live = 0;

	for (int i = 0; i < b->n; i++) {
		rec_admit(p, &b->rec[i]);
		live += b->rec[i].state == KN_REC_LIVE;
	}
	return live;
}

int kn_pipeline_deidentify(struct kn_pipeline *p, struct kn_batch *b)
{
	size_t off = 0;
	int out = 0;

	for (int i = 0; i < b->n; i++) {
		struct kn_rec *r = &b->rec[i];
		/* The arena holds cap worst cases, so this always fits. */
		rec_deid(p, r, b->deid ? &b->deid[i] : &p->deid, b->arena + off, true);
		r->out_off = (uint32_t)off;
		off += r->out_len;
		out += r->state == KN_REC_OUT;
	}
	return out;
}

void kn_pipeline_set_erasure(struct kn_pipeline *p, struct kn_erasure *e)
{
	p->erasure = e;
}

const char *kn_deid_key(const struct kn_deid *d, size_t *len)
{
	static const int order[] = {KN_ID_USER, KN_ID_DEVICE, KN_ID_COOKIE, KN_ID_PHONE,
				    KN_ID_EMAIL};

	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		if (d->has_pid[order[i]]) {
			*len = KN_PID_HEX_LEN;
			return d->pid[order[i]];
		}
	}
	*len = 0;
	return NULL;
}

const struct kn_deid *kn_pipeline_last(const struct kn_pipeline *p)
{
	return &p->deid;
}

const struct kn_event *kn_pipeline_last_event(const struct kn_pipeline *p)
{
	return &p->rec.ev;
}

const struct kn_pipeline_stats *kn_pipeline_stats(const struct kn_pipeline *p)
{
	return &p->st;
}

const struct kn_policy_stats *kn_pipeline_policy_stats(const struct kn_pipeline *p)
{
	return kn_policy_stats(p->policy);
}

void kn_pipeline_stats_add(struct kn_pipeline_stats *to, const struct kn_pipeline_stats *from)
{
	to->in += from->in;
	to->out += from->out;
	to->geo_withheld += from->geo_withheld;
	for (int i = 0; i < KN_DEAD_REASONS; i++)
		to->dead[i] += from->dead[i];
	for (int i = 0; i < KN_ID_KINDS; i++)
		to->invalid_id[i] += from->invalid_id[i];
	for (int i = 0; i < KN_DROP_REASONS; i++)
		to->dropped[i] += from->dropped[i];
}
