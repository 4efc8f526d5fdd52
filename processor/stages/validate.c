#include "validate.h"

#include <errno.h>
#include <math.h>

#include "clock.h"

const char *kn_dead_reason_name(enum kn_dead_reason r)
{
	static const char *n[KN_DEAD_REASONS] = {
		[KN_DEAD_EMPTY] = "empty_value",
		[KN_DEAD_FRAMING] = "bad_framing",
		[KN_DEAD_UNKNOWN_SCHEMA] = "unknown_schema",
		[KN_DEAD_WRONG_TOPIC] = "wrong_schema_for_topic",
		[KN_DEAD_DECODE] = "decode_error",
		[KN_DEAD_MISSING] = "missing_field",
		[KN_DEAD_TOO_LONG] = "field_too_long",
		[KN_DEAD_RANGE] = "out_of_range",
		[KN_DEAD_BAD_IP] = "invalid_ip",
	};
	return (unsigned)r < KN_DEAD_REASONS ? n[r] : "?";
}

static int reject(enum kn_dead_reason r, int role, enum kn_dead_reason *reason, const char **detail)
{
	*reason = r;
	*detail = kn_roles[role].name;
	return -EINVAL;
}

int kn_validate(const struct kn_validate_opts *o, const struct kn_event *ev, int64_t ref_ms,
		enum kn_dead_reason *reason, const char **detail)
{
	const struct kn_val *v = ev->role;

	if (v[KN_ROLE_EVENT_ID].type != KN_VAL_STR || v[KN_ROLE_EVENT_ID].s.len == 0)
		return reject(KN_DEAD_MISSING, KN_ROLE_EVENT_ID, reason, detail);
	if (v[KN_ROLE_TIMESTAMP].type != KN_VAL_LONG)
		return reject(KN_DEAD_MISSING, KN_ROLE_TIMESTAMP, reason, detail);
	for (int r = 0; r < KN_ROLE_COUNT; r++)
		if (v[r].type == KN_VAL_STR && v[r].s.len > o->max_field_bytes)
			return reject(KN_DEAD_TOO_LONG, r, reason, detail);

	int64_t ts = v[KN_ROLE_TIMESTAMP].l;
	if (ts < o->ts_min_ms || ts > ref_ms + o->ts_max_future_ms)
		return reject(KN_DEAD_RANGE, KN_ROLE_TIMESTAMP, reason, detail);
	if (v[KN_ROLE_LAT].type == KN_VAL_DOUBLE &&
	    !(isfinite(v[KN_ROLE_LAT].d) && fabs(v[KN_ROLE_LAT].d) <= 90))
		return reject(KN_DEAD_RANGE, KN_ROLE_LAT, reason, detail);
	if (v[KN_ROLE_LON].type == KN_VAL_DOUBLE &&
	    !(isfinite(v[KN_ROLE_LON].d) && fabs(v[KN_ROLE_LON].d) <= 180))
		return reject(KN_DEAD_RANGE, KN_ROLE_LON, reason, detail);
	if (v[KN_ROLE_BIRTH_YEAR].type == KN_VAL_LONG &&
	    (v[KN_ROLE_BIRTH_YEAR].l < 1900 || v[KN_ROLE_BIRTH_YEAR].l > kn_utc_year(ts)))
		return reject(KN_DEAD_RANGE, KN_ROLE_BIRTH_YEAR, reason, detail);
	if (v[KN_ROLE_STATUS].type == KN_VAL_LONG &&
	    (v[KN_ROLE_STATUS].l < 0 || v[KN_ROLE_STATUS].l > 999))
		return reject(KN_DEAD_RANGE, KN_ROLE_STATUS, reason, detail);
	return 0;
}
