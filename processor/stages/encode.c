#include "encode.h"

#include <string.h>

#include "aggregate.h"
#include "avrobin.h"
#include "embedded.h" /* generated from schemas/DeidEvent.avsc */

const char kn_deid_schema_json[] = KN_DEID_SCHEMA_JSON;
const char kn_agg_schema_json[] = KN_AGG_SCHEMA_JSON;
const char kn_agg_stats_schema_json[] = KN_AGG_STATS_SCHEMA_JSON;

struct wr {
	uint8_t *p;
};

static void put_long(struct wr *w, int64_t v)
{
	w->p += kn_avro_put_long(w->p, v);
}

static void put_str(struct wr *w, const char *s, size_t n)
{
	put_long(w, (int64_t)n);
	memcpy(w->p, s, n);
	w->p += n;
}

/* ["null","string"]: the empty string stands for null in struct kn_deid. */
static void put_opt_str(struct wr *w, const char *s)
{
	size_t n = strlen(s);

	if (!n) {
		*w->p++ = 0; /* branch 0: null */
		return;
	}
	*w->p++ = 2; /* zig-zag of branch 1 */
	put_str(w, s, n);
}

/* A pseudonym (32 hex digits, length known), or null. */
static void put_opt_pid(struct wr *w, bool present, const char *pid)
{
	if (!present) {
		*w->p++ = 0;
		return;
	}
	*w->p++ = 2;
	put_str(w, pid, KN_PID_HEX_LEN);
}

/* ["null","int"]: negative stands for null (versions/status are >= 0). */
static void put_opt_int(struct wr *w, int32_t v)
{
	if (v < 0) {
		*w->p++ = 0;
		return;
	}
	*w->p++ = 2;
	put_long(w, v);
}

static void put_opt_bool(struct wr *w, int8_t v)
{
	if (v < 0) {
		*w->p++ = 0;
		return;
	}
	*w->p++ = 2;
	*w->p++ = (uint8_t)(v != 0);
}

size_t kn_encode_deid(const struct kn_deid *d, uint8_t *buf)
{
	struct wr w = {buf};
	const char *type = kn_event_type_name(d->type);

	put_str(&w, type, strlen(type));
	put_opt_pid(&w, d->has_event_key, d->event_key);
	put_long(&w, d->time_bucket_ms);
	put_long(&w, d->bucket_size_ms);
	put_long(&w, d->key_epoch);
	for (int k = 0; k < KN_ID_KINDS; k++) /* user, device, phone, email, cookie */
		put_opt_pid(&w, d->has_pid[k], d->pid[k]);
	put_opt_str(&w, d->geo_cell);
	put_opt_str(&w, d->ip_prefix);
	put_opt_str(&w, d->ua_browser);
	put_opt_int(&w, d->ua_browser_major);
	put_opt_str(&w, d->os_family);
	put_opt_int(&w, d->os_major);
	put_opt_str(&w, d->app_version);
	put_opt_str(&w, d->url_domain);
	put_opt_str(&w, d->referrer_domain);
	put_opt_int(&w, d->http_status);
	put_opt_bool(&w, d->consent_ads);
	put_opt_bool(&w, d->consent_analytics);
	put_opt_str(&w, d->query_category);
	put_opt_str(&w, d->emit_query ? d->query : "");
	return (size_t)(w.p - buf);
}

/* ["null", "double"]: branch 1 is an IEEE 754 double, little-endian. */
static void put_opt_double(struct wr *w, bool present, double v)
{
	uint64_t bits;

	put_long(w, present);
	if (!present)
		return;
	memcpy(&bits, &v, 8);
	for (int i = 0; i < 8; i++)
		*w->p++ = (uint8_t)(bits >> (8 * i));
}

static void put_cstr(struct wr *w, const char *s)
{
	put_str(w, s, strlen(s));
}

size_t kn_encode_agg_row(const struct kn_agg_row *r, int64_t window_ms, const char *person_kind,
			 uint8_t *buf)
{
	struct wr w = {buf};

	put_cstr(&w, r->def->name);
	put_long(&w, r->window_start);
	put_long(&w, r->window_end);
	put_long(&w, window_ms);
	put_long(&w, r->def->k);
	put_cstr(&w, person_kind);
	put_long(&w, r->key_epoch);
	for (int d = 0; d < KN_DIMS; d++) /* schema order = enum kn_dim order */
		put_opt_str(&w, r->dim[d] ? r->dim[d] : "");
	put_long(&w, (int64_t)r->events);
	put_long(&w, (int64_t)r->users);
	*w.p++ = r->users_exact;
	return (size_t)(w.p - buf);
}

size_t kn_encode_agg_summary(const struct kn_agg_summary *s, int mode,
			     const struct kn_dp_params *dp, uint8_t *buf)
{
	struct wr w = {buf};
	bool is_dp = mode == KN_AGG_DP;
	int64_t threshold = s->def->k;

	if (is_dp && dp->threshold > threshold)
		threshold = dp->threshold;
	put_cstr(&w, s->def->name);
	put_long(&w, s->window_start);
	put_long(&w, s->window_end);
	put_long(&w, s->def->k);
	put_cstr(&w, is_dp ? "dp" : "k-anonymity");
	put_opt_double(&w, is_dp, is_dp ? dp->epsilon : 0);
	put_opt_double(&w, is_dp, is_dp ? dp->delta : 0);
	put_long(&w, threshold);
	put_long(&w, (int64_t)s->groups_released);
	put_long(&w, (int64_t)s->events_released);
	*w.p++ = s->early;
	return (size_t)(w.p - buf);
}
