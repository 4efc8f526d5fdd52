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
	struct kn_event ev;  /* scratch, reused */
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
	kn_free(p);
}

static size_t dead(struct kn_pipeline *p, struct kn_verdict *v, enum kn_dead_reason r,
		   const char *detail)
{
	v->reason = r;
	v->detail = detail;
	p->st.dead[r]++;
	return 0;
}

static size_t run_stages(struct kn_pipeline *p, const struct kn_schema_entry *e,
			 const uint8_t *datum, size_t len, int64_t ref_ms, uint8_t *out,
			 struct kn_verdict *v)
{
	enum kn_dead_reason r;
	const char *why;
	bool geo_withheld;

	p->ev.type = e->type;
	p->ev.schema_id = e->id;
	if (kn_decoder_decode(e->dec, datum, len, &p->ev, &why))
		return dead(p, v, KN_DEAD_DECODE, why);
	if (kn_validate(&p->vopts, &p->ev, ref_ms, &r, &why))
		return dead(p, v, r, why);
	if (kn_policy_admit(p->policy, &p->ev, &p->deid, &v->drop)) {
		v->dropped = true;
		p->st.dropped[v->drop]++;
		return 0;
	}
	if (p->erasure && kn_erasure_match(p->erasure, &p->ev, &p->popts.norm)) {
		v->dropped = true;
		v->drop = KN_DROP_ERASED;
		p->st.dropped[v->drop]++;
		return 0;
	}
	/* A minor's identifiers are removed, not pseudonymized. */
	if (kn_pseudonymize(&p->popts, p->keys, &p->ev, &p->deid, !p->deid.minor,
			    p->st.invalid_id)) {
		v->dropped = true; /* older than key retention: nothing may be produced */
		v->drop = KN_DROP_KEY_RETIRED;
		p->st.dropped[v->drop]++;
		return 0;
	}
	if (kn_generalize_event(&p->gopts, &p->ev, &p->deid, &geo_withheld))
		return dead(p, v, KN_DEAD_BAD_IP, kn_roles[KN_ROLE_IP].name);
	p->st.geo_withheld += geo_withheld;
	kn_policy_finish(p->policy, &p->ev, &p->deid);
	p->st.out++;
	return kn_encode_deid(&p->deid, out);
}

size_t kn_pipeline_process_datum(struct kn_pipeline *p, const struct kn_schema_entry *e,
				 const uint8_t *datum, size_t len, int64_t ref_ms, uint8_t *out,
				 struct kn_verdict *v)
{
	p->st.in++;
	v->schema_id = e->id;
	v->dropped = false;
	return run_stages(p, e, datum, len, ref_ms, out, v);
}

size_t kn_pipeline_process(struct kn_pipeline *p, const uint8_t *msg, size_t len, int expected_type,
			   int64_t ref_ms, uint8_t *out, struct kn_verdict *v)
{
	const struct kn_schema_entry *e;
	int64_t id;
	size_t n;

	p->st.in++;
	v->schema_id = -1;
	v->dropped = false;
	if (!msg || !len)
		return dead(p, v, KN_DEAD_EMPTY, "value");
	id = kn_frame_get(msg, len);
	if (id < 0)
		return dead(p, v, KN_DEAD_FRAMING, len < KN_FRAME_LEN ? "too short" : "magic byte");
	v->schema_id = (int32_t)id;
	e = kn_schemas_find(p->schemas, (int32_t)id);
	if (!e)
		return dead(p, v, KN_DEAD_UNKNOWN_SCHEMA, "schema id");
	if (expected_type >= 0 && (int)e->type != expected_type)
		return dead(p, v, KN_DEAD_WRONG_TOPIC, kn_event_type_name(e->type));
	n = run_stages(p, e, msg + KN_FRAME_LEN, len - KN_FRAME_LEN, ref_ms, out + KN_FRAME_LEN, v);
	if (!n)
		return 0;
	kn_frame_put(out, p->deid_schema_id);
	return n + KN_FRAME_LEN;
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
	return &p->ev;
}

const struct kn_pipeline_stats *kn_pipeline_stats(const struct kn_pipeline *p)
{
	return &p->st;
}

const struct kn_policy_stats *kn_pipeline_policy_stats(const struct kn_pipeline *p)
{
	return kn_policy_stats(p->policy);
}
