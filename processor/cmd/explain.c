#include "explain.h"

#include <string.h>

#include "aggregate.h"

static const char *epoch_text(const struct kn_config *c, char *buf, size_t n)
{
	if (!c->epoch_ms)
		snprintf(buf, n, "one key for all time (keys.epoch: never)");
	else
		snprintf(buf, n, "keys rotating every %lld h", (long long)(c->epoch_ms / 3600000));
	return buf;
}

/* Aggregate definitions using dimension dim, as "'a', 'b'" or NULL. */
static const char *aggs_using(const struct kn_config *c, int dim, char *buf, size_t n)
{
	size_t off = 0;

	buf[0] = '\0';
	for (int i = 0; i < c->n_aggs && off < n; i++)
		if (c->aggs[i].dims & (1u << dim))
			off += (size_t)snprintf(buf + off, n - off, "%s'%s'", off ? ", " : "",
						c->aggs[i].name);
	return buf[0] ? buf : NULL;
}

static void agg_line(FILE *f, const struct kn_config *c, int dim, const char *what)
{
	char names[512];

	if (!c->n_aggs)
		return;
	if (aggs_using(c, dim, names, sizeof(names)))
		fprintf(f,
			"        AdAggregate: %s (%s) in %s, released only for groups whose %s "
			"count of people reaches %s\n",
			what, kn_dim_name(dim), names, c->agg_mode == KN_AGG_DP ? "noisy" : "exact",
			c->agg_mode == KN_AGG_DP ? "the threshold and k" : "k");
	else
		fprintf(f, "        AdAggregate: not used\n");
}

static void explain_role(FILE *f, const struct kn_config *c, int role)
{
	char ep[128];
	const char *prf = kn_prf_name(c->prf);

	if (role >= KN_ROLE_ID_FIRST && role < KN_ROLE_ID_FIRST + KN_ID_KINDS) {
		int kind = role - KN_ROLE_ID_FIRST;
		fprintf(f,
			"        DeidEvent.%s_pid: normalized, keyed %s pseudonym (key kind %s), "
			"%s; "
			"never a minor's\n",
			kn_id_kind_name(kind), prf,
			c->link_kinds ? "shared" : kn_id_kind_name(kind),
			epoch_text(c, ep, sizeof(ep)));
		if (c->n_aggs)
			fprintf(f, "        AdAggregate: %s\n",
				kind == c->agg_person ? "identifies a person for distinct counts "
							"and contribution bounds; never emitted"
						      : "not used");
		return;
	}
	switch (role) {
	case KN_ROLE_EVENT_ID:
		fprintf(f, "        DeidEvent.event_key: keyed %s pseudonym (for de-duplication)\n",
			prf);
		break;
	case KN_ROLE_TIMESTAMP:
		fprintf(f,
			"        DeidEvent.time_bucket: start of its %lld-minute bucket; picks the "
			"key "
			"epoch; outside [%s, message time + %lld h] -> dead letter\n",
			(long long)(c->time_bucket_ms / 60000), "validate.ts_min",
			(long long)(c->ts_max_future_ms / 3600000));
		if (c->n_aggs)
			fprintf(f, "        AdAggregate: assigns the %lld-minute window\n",
				(long long)(c->agg_window_ms / 60000));
		break;
	case KN_ROLE_IP:
		fprintf(f,
			"        DeidEvent.ip_prefix: /%lld (IPv4) or /%lld (IPv6) prefix, only "
			"with "
			"location consent; not an address -> dead letter\n",
			(long long)c->ipv4_prefix, (long long)c->ipv6_prefix);
		agg_line(f, c, KN_DIM_IP_PREFIX, "the prefix");
		break;
	case KN_ROLE_LAT:
	case KN_ROLE_LON:
		fprintf(f,
			"        DeidEvent.geo_cell: geohash of %lld characters, only with "
			"location "
			"consent; out of range -> dead letter\n",
			(long long)c->geohash_precision);
		agg_line(f, c, KN_DIM_GEO, "a coarser geohash cell");
		break;
	case KN_ROLE_USER_AGENT:
		fprintf(f, "        DeidEvent.ua_browser, ua_browser_major, os_family, os_major: "
			   "families from a built-in table ('other' otherwise), majors of at most "
			   "3 digits\n");
		agg_line(f, c, KN_DIM_OS, "the OS family");
		break;
	case KN_ROLE_OS:
		fprintf(f, "        DeidEvent.os_family, os_major: a family from a built-in table "
			   "('other' otherwise), a major of at most 3 digits\n");
		agg_line(f, c, KN_DIM_OS, "the OS family");
		break;
	case KN_ROLE_APP_VERSION:
		fprintf(f,
			"        DeidEvent.app_version: 'major' or 'major.minor', each at most 3 "
			"digits, else 'other'\n");
		agg_line(f, c, KN_DIM_APP_VERSION, "major.minor");
		break;
	case KN_ROLE_URL:
	case KN_ROLE_CLICKED_URL:
	case KN_ROLE_REFERRER:
		fprintf(f,
			"        DeidEvent.%s: the host's registrable domain (ICANN Public "
			"Suffix List, IDNA A-labels); 'ip-literal' for an IP in any notation, "
			"'other' when its label carries an identifier; withheld when the host or "
			"path names a sensitive category in any spelling\n",
			role == KN_ROLE_REFERRER ? "referrer_domain" : "url_domain");
		if (role != KN_ROLE_REFERRER)
			agg_line(f, c, KN_DIM_URL_DOMAIN, "the host");
		break;
	case KN_ROLE_QUERY:
		fprintf(f,
			"        DeidEvent.query_category: a category of the taxonomy for the "
			"PII-scrubbed text (placeholders left out), 'other', or 'withheld' for "
			"sensitive text\n        a sensitive event (its text or a URL) keeps only "
			"its type, hour, key epoch, consents, 'withheld' and an event key of its "
			"own: no pseudonym, location, device field, query or URL\n        "
			"DeidEvent.query: "
			"%s\n",
			c->emit_scrubbed_query
				? "the folded text scrubbed of emails, phones, IDs, cards, IPs, "
				  "URLs and every number of 7 or more digits, in any spelling "
				  "(policy.emit_scrubbed_query)"
				: "not emitted");
		agg_line(f, c, KN_DIM_QUERY_CATEGORY, "the category (never 'withheld')");
		break;
	case KN_ROLE_STATUS:
		fprintf(f, "        DeidEvent.http_status: a number 0..999 (others -> dead "
			   "letter)\n");
		break;
	case KN_ROLE_BYTES:
		fprintf(f, "        never emitted\n");
		break;
	case KN_ROLE_BIRTH_YEAR:
		fprintf(f,
			"        never emitted; event year - birth year <= %lld makes the event a "
			"minor's: %s, never aggregated\n",
			(long long)c->minor_age,
			c->minors_in_deid ? "kept without identifiers, location or IP prefix "
					    "(policy.minors_in_deid)"
					  : "dropped from every output");
		break;
	case KN_ROLE_CONSENT_LOCATION:
		fprintf(f, "        false: no geo cell and no IP prefix in any output\n");
		break;
	case KN_ROLE_CONSENT_ADS:
		fprintf(f, "        DeidEvent.consent_ads; false: %s, never aggregated\n",
			c->ads_optout_in_deid
				? "kept in the de-identified stream"
				: "the event is dropped from the de-identified stream");
		break;
	case KN_ROLE_CONSENT_ANALYTICS:
		fprintf(f,
			"        DeidEvent.consent_analytics; false%s: the event is dropped from "
			"every output\n",
			c->missing_consent_allows ? "" : " or missing");
		break;
	}
}

static void walk(FILE *f, const struct kn_config *c, const struct kn_schema_cfg *sc,
		 avro_schema_t s, const char *prefix)
{
	for (size_t i = 0; i < avro_schema_record_size(s); i++) {
		const char *name = avro_schema_record_field_name(s, (int)i);
		avro_schema_t fs = avro_schema_record_field_get_by_index(s, (int)i);
		char path[512];
		snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? "." : "", name);
		for (size_t b = 0; avro_typeof(fs) == AVRO_UNION && b < avro_schema_union_size(fs);
		     b++)
			if (avro_typeof(avro_schema_union_branch(fs, (int)b)) == AVRO_RECORD)
				fs = avro_schema_union_branch(fs, (int)b);
		if (avro_typeof(fs) == AVRO_RECORD) {
			walk(f, c, sc, fs, path);
			continue;
		}
		int role = -1;
		for (int r = 0; r < KN_ROLE_COUNT && role < 0; r++)
			if (sc->roles[r] && !strcmp(sc->roles[r], path))
				role = r;
		if (role < 0) {
			fprintf(f, "  %-30s no role: dropped from every output\n", path);
			continue;
		}
		fprintf(f, "  %-30s role %s\n", path, kn_roles[role].name);
		explain_role(f, c, role);
	}
}

/* Every field kanon writes, and the rule that keeps it closed: a closed
 * vocabulary, a generalization with a checked shape, a pseudonym, a count,
 * or nothing. Nothing is copied from input. */
static void explain_outputs(FILE *f, const struct kn_config *c)
{
	static const char *const rows[][2] = {
		{"DeidEvent.event_type", "closed: device | access | search"},
		{"DeidEvent.event_key, *_pid", "pseudonyms: 32 hex characters of a keyed PRF"},
		{"DeidEvent.time_bucket, bucket_ms, key_epoch",
		 "numbers derived from the event time"},
		{"DeidEvent.geo_cell", "shape: geohash characters, the configured length"},
		{"DeidEvent.ip_prefix", "shape: a network/bits printed by inet_ntop; an IPv6 that "
					"carries an IPv4 is that IPv4's prefix"},
		{"DeidEvent.ua_browser, os_family", "closed: the built-in family tables, 'bot', "
						    "'other'"},
		{"DeidEvent.ua_browser_major, os_major", "numbers 0..999 or -1"},
		{"DeidEvent.app_version", "shape: 1-3 digits[.1-3 digits], or 'other'"},
		{"DeidEvent.url_domain, referrer_domain",
		 "shape: an ASCII registrable domain whose own label carries no identifier, "
		 "'ip-literal', or 'other'"},
		{"DeidEvent.http_status", "a number 0..999"},
		{"DeidEvent.consent_ads, consent_analytics", "booleans"},
		{"DeidEvent.query_category",
		 "closed: the taxonomy's categories, 'other', 'withheld'"},
		{"DeidEvent.query", "scrubbed, folded text; only with policy.emit_scrubbed_query"},
		{"AdAggregate.*", "the definitions' names and the DeidEvent values above, counts"},
		{"AggWindowStats.*", "the definitions' names, window times, counts"},
		{"dead-letter headers",
		 "closed reasons and details, source topic/partition/offset, "
		 "schema id"},
		{"record keys", "a pseudonym (events), definition|window|dimensions (aggregates)"},
		{"record timestamps", "the event's time bucket (events), the window's end "
				      "(aggregates): never the processing time"},
	};

	fprintf(f, "\nEvery output field, and what keeps it from carrying personal data:\n");
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		fprintf(f, "  %-42s %s\n", rows[i][0], rows[i][1]);
	fprintf(f, "  every string is valid UTF-8 (folded, or ASCII); %s\n",
		c->emit_scrubbed_query ? "search text IS emitted, scrubbed"
				       : "no free text is emitted");
}

/* How many windows of w ms one UTC day can touch. Windows and days both
 * start at multiples of their length from the Unix epoch, so a day starts
 * at an offset into a window that is a multiple of g = gcd(day, w); the
 * largest, w - g, touches the most: a 5 h window touches 6 windows on some
 * days, not 4.8. */
static int64_t windows_per_day(int64_t w)
{
	const int64_t day = 86400000;
	int64_t a = day, b = w;

	while (b) {
		int64_t t = a % b;
		a = b;
		b = t;
	}
	return (w - a + day - 1) / w + 1;
}

/* The release guarantee, with the numbers a privacy reviewer checks. */
static void explain_aggregates(FILE *f, const struct kn_config *c)
{
	const struct kn_dp_params *dp = &c->agg_dp;
	double per_day = (double)windows_per_day(c->agg_window_ms);

	fprintf(f,
		"Aggregates: '%s' pseudonyms define a person; per window a person counts in "
		"at most L0 = %lld groups over all %d definitions together and adds at most "
		"Linf = %lld events to each; only events with both ads and analytics consent, "
		"never a minor's, never a sensitive one (one rule for every definition).\n",
		kn_id_kind_name((enum kn_id_kind)c->agg_person), (long long)c->agg_max_groups,
		c->n_aggs, (long long)c->agg_max_events);
	if (c->agg_mode == KN_AGG_K_ANONYMITY) {
		fprintf(f, "Release: k-anonymity (exact counts of groups with >= k people). NO "
			   "differential privacy: definitions, windows and summaries side by side "
			   "can be subtracted to single people out.\n");
		return;
	}
	fprintf(f,
		"Release: (epsilon, delta)-differential privacy per person per window: epsilon "
		"= %g, delta = %.3g (budget %s, %s).\n"
		"  people count: + discrete Laplace, scale %.6g (= L0 / (epsilon/2))\n"
		"  event count:  + discrete Laplace, scale %.6g (= L0 x Linf / (epsilon/2))\n"
		"  a group is released iff its noisy people count >= %lld (threshold from "
		"delta and L0; a one-person group passes with probability %.3g) and >= its k\n"
		"  summaries hold only what the released rows imply; exact suppressed and "
		"bounded counts are in /metrics only\n"
		"  outside the guarantee (README, \"Outside the guarantee\"): stream time "
		"follows the data, so one person's event can make others' late and a "
		"window's timing and closed_early can show it; the state cap; idle "
		"partitions\n",
		dp->epsilon, dp->delta, c->agg_epsilon, c->agg_delta, dp->people_scale,
		dp->events_scale, (long long)dp->threshold, dp->delta_group);
	/* Sequential composition adds the deltas; a sum of 1 or more bounds
	 * nothing, and says so instead of printing a "probability" above 1. */
	double day_delta = per_day * dp->delta;
	fprintf(f,
		"  per UTC day (at most %g windows of %lld s touch one, sequential "
		"composition): epsilon = %g, ",
		per_day, (long long)(c->agg_window_ms / 1000), per_day * dp->epsilon);
	if (day_delta < 1)
		fprintf(f, "delta = %.3g per person\n", day_delta);
	else
		fprintf(f, "delta: no bound (the windows' deltas add up to %.3g >= 1)\n",
			day_delta);
	if (dp->threshold > 1000000000)
		fprintf(f,
			"  note: a group needs a noisy count of %lld people to be released: "
			"with this budget practically nothing ever is\n",
			(long long)dp->threshold);
}

void kn_policy_explain(const struct kn_config *c, const struct kn_schemas *s, FILE *f)
{
	fprintf(f, "kanon policy explain: %s\n\n", c->path);
	fprintf(f, "Every event: bad input -> dead letter (reason and source only; %s).\n",
		c->dlq_include_payload ? "the raw payload IS copied (dead_letter.include_payload)"
				       : "no field is copied");
	if (c->n_aggs)
		explain_aggregates(f, c);
	for (int i = 0; i < kn_schemas_count(s); i++) {
		const struct kn_schema_entry *e = kn_schemas_at(s, i);
		const struct kn_schema_cfg *sc = &c->schemas[i];
		char id[48] = "(ids from the schema registry)";
		if (e->id >= 0)
			snprintf(id, sizeof(id), "%d", (int)e->id);
		fprintf(f, "\nschema %s %s (%s logs, %s)\n", id, avro_schema_name(e->schema),
			kn_event_type_name(e->type), sc->file);
		walk(f, c, sc, e->schema, "");
	}
	explain_outputs(f, c);
}
