#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>
#include <yaml.h>

#include <sodium.h>

#include "aggregate.h"
#include "embedded.h"
#include "kn_alloc.h"
#include "log.h"
#include "normalize.h"
#include "registry.h"

enum opt_type {
	O_STR,
	O_PATH,
	O_INT,
	O_DURATION,
	O_EPOCH,
	O_BOOL,
	O_PRF,
	O_DATE,
	O_DIGITS,
	O_LEVEL,
	O_KIND,
	O_OPTSTR, /* a string that may be empty (unset) */
	O_OPTPATH /* a path that may be empty (unset) */
};

struct opt {
	const char *path;
	enum opt_type type;
	size_t off;
	int64_t min, max; /* O_INT; O_DURATION/O_EPOCH in ms */
	const char *def;
	const char *help;
};

#define OFF(f) offsetof(struct kn_config, f)
#define MIN_MS (60 * 1000LL)
#define DAY_MS (24 * 3600 * 1000LL)

/* The configuration, one row per scalar option. */
static const struct opt table[] = {
	{"kafka.brokers", O_STR, OFF(brokers), 0, 0, "127.0.0.1:39092",
	 "bootstrap.servers for the consumer and the producer"},
	{"kafka.group_id", O_STR, OFF(group_id), 0, 0, "kanon", "consumer group id"},
	{"topics.output", O_STR, OFF(topic_output), 0, 0, "kanon.deid.v1",
	 "de-identified events (DeidEvent, Confluent-framed Avro)"},
	{"topics.dead_letter", O_STR, OFF(topic_dead_letter), 0, 0, "kanon.deadletter.v1",
	 "rejected input: headers kanon.reason, kanon.detail, kanon.source.*"},
	{"topics.deid_schema_id", O_INT, OFF(deid_schema_id), 0, INT32_MAX, "100",
	 "schema id written in the framing of output records"},
	{"keys.file", O_PATH, OFF(key_file), 0, 0, "/var/lib/kanon/master.key",
	 "master key file from 'kanon keygen' (mode 0600 or stricter)"},
	{"keys.prf", O_PRF, OFF(prf), 0, 0, "siphash",
	 "siphash | hmac-sha256 | xxh3 (xxh3 is fast but not a cryptographic PRF)"},
	{"keys.epoch", O_EPOCH, OFF(epoch_ms), MIN_MS, 366 * DAY_MS, "1d",
	 "key epoch length; 'never' = one epoch, pseudonyms link across all time"},
	{"keys.retention", O_EPOCH, OFF(key_retention_ms), DAY_MS, 3660 * DAY_MS, "never",
	 "epoch keys older than this are destroyed (crypto-shredding); 'never' keeps them"},
	{"keys.link_kinds", O_BOOL, OFF(link_kinds), 0, 0, "false",
	 "true: one key for all identifier kinds (same value, same pseudonym)"},
	{"pseudonymize.phone_region", O_DIGITS, OFF(phone_region), 1, 3, "86",
	 "default country calling code for phone numbers without one"},
	{"generalize.geohash_precision", O_INT, OFF(geohash_precision), 1, 7, "5",
	 "geohash cell length (5 = ~4.9 x 4.9 km; 7 = ~153 m, the finest allowed)"},
	{"generalize.ipv4_prefix", O_INT, OFF(ipv4_prefix), 0, 24, "24",
	 "IPv4 prefix bits kept (at most 24)"},
	{"generalize.ipv6_prefix", O_INT, OFF(ipv6_prefix), 0, 64, "48",
	 "IPv6 prefix bits kept (at most 64)"},
	{"generalize.time_bucket", O_DURATION, OFF(time_bucket_ms), MIN_MS, DAY_MS, "1h",
	 "event time is emitted as the start of its bucket"},
	{"validate.ts_min", O_DATE, OFF(ts_min_ms), 0, 0, "2000-01-01",
	 "events before this date (UTC) are dead-lettered"},
	{"validate.ts_max_future", O_DURATION, OFF(ts_max_future_ms), 0, 30 * DAY_MS, "1d",
	 "events later than the Kafka message time (or now) plus this are dead-lettered"},
	{"validate.max_field_bytes", O_INT, OFF(max_field_bytes), 64, 1 << 20, "4096",
	 "a longer string in any mapped field dead-letters the record"},
	{"dead_letter.include_payload", O_BOOL, OFF(dlq_include_payload), 0, 0, "false",
	 "copy the raw (personal!) input into dead-letter records"},
	{"security.allow_core_dumps", O_BOOL, OFF(allow_core_dumps), 0, 0, "false",
	 "true: the process may dump core (a dump holds the raw records being processed)"},
	{"run.batch_size", O_INT, OFF(batch_size), 1, 100000, "2000",
	 "messages consumed per batch"},
	{"run.prefetch_memory_mb", O_INT, OFF(prefetch_mb), 16, 16384, "128",
	 "memory the consumer may fill ahead of the pipeline (MiB); sets librdkafka's "
	 "queued.max.messages.kbytes, max.partition.fetch.bytes and queued.min.messages "
	 "unless kafka.consumer.* sets them"},
	{"run.commit_interval", O_DURATION, OFF(commit_interval_ms), 100, 3600 * 1000LL, "1s",
	 "how often acknowledged input offsets are committed"},
	{"run.max_in_flight", O_INT, OFF(max_in_flight), 1000, 10000000, "200000",
	 "produced but unacknowledged records before consumption pauses"},
	{"run.assignment_wait", O_DURATION, OFF(assign_wait_ms), 1000, DAY_MS, "2m",
	 "--until-eof: how long to wait for input partitions (at start, or after losing them "
	 "in an outage) before giving up; keep it above the consumer's session.timeout.ms"},
	{"run.workers", O_INT, OFF(workers), 0, 256, "0",
	 "threads running the pipeline (0: one per core the process may use, less one left to "
	 "librdkafka's threads); every input partition always goes to the same one, so its "
	 "order is kept"},
	{"run.guarantee", O_STR, OFF(guarantee_name), 0, 0, "auto",
	 "at-least-once | exactly-once | auto (exactly-once when aggregates are configured, "
	 "which require it); exactly-once writes every output in Kafka transactions"},
	{"run.role", O_STR, OFF(role_name), 0, 0, "all",
	 "all | deid | bound | release: the aggregation stages this process runs (all: the "
	 "three, one thread each, through the internal topics); without aggregates only deid"},
	{"run.instance", O_STR, OFF(instance), 0, 0, "auto",
	 "this instance's name, unique per role (auto: the host name); its transactional.id "
	 "is aggregate.transactional_id plus role and name, so a restart under the same name "
	 "fences its predecessor at once"},
	{"schema_registry.url", O_OPTSTR, OFF(registry_url), 0, 0, "",
	 "Confluent-compatible Schema Registry (http[s]://host:port[/path]); empty: the static "
	 "schema ids of schemas[] and topics.*_schema_id only"},
	{"schema_registry.username", O_OPTSTR, OFF(registry_username), 0, 0, "",
	 "basic-auth user (empty: no authentication)"},
	{"schema_registry.password", O_OPTSTR, OFF(registry_password), 0, 0, "",
	 "basic-auth password (use ${VAR}; masked in every printout)"},
	{"schema_registry.ca_file", O_OPTPATH, OFF(registry_ca_file), 0, 0, "",
	 "PEM CA bundle that verifies the registry's certificate (empty: the system's)"},
	{"schema_registry.cert_file", O_OPTPATH, OFF(registry_cert_file), 0, 0, "",
	 "client certificate for mutual TLS (empty: none)"},
	{"schema_registry.key_file", O_OPTPATH, OFF(registry_key_file), 0, 0, "",
	 "the client certificate's private key"},
	{"schema_registry.timeout", O_DURATION, OFF(registry_timeout_ms), 100, 5 * MIN_MS, "10s",
	 "per request; a registry that does not answer is asked again (records wait, none is "
	 "dropped)"},
	{"schema_registry.startup_wait", O_DURATION, OFF(registry_startup_wait_ms), 1000, DAY_MS,
	 "2m", "how long start-up waits for an unreachable registry before giving up"},
	{"schema_registry.register_outputs", O_BOOL, OFF(registry_register), 0, 0, "true",
	 "register kanon's output schemas under <topic>-value (after a compatibility check); "
	 "false: only look their ids up (registered beforehand by someone allowed to)"},
	{"health.stall_timeout", O_DURATION, OFF(stall_timeout_ms), 1000, DAY_MS, "15s",
	 "/healthz answers 503 when input waits and nothing was delivered or committed "
	 "for this long"},
	{"log.level", O_LEVEL, OFF(log_level), 0, 0, "info", "error | warn | info | debug"},
	{"erasure.enabled", O_BOOL, OFF(erasure_enabled), 0, 0, "true",
	 "honour deletion requests (false only where they are handled upstream)"},
	{"erasure.requests_topic", O_STR, OFF(erasure_requests_topic), 0, 0,
	 "kanon.erasure.requests.v1",
	 "deletion requests: key = identifier kind, value = identifier"},
	{"erasure.state_topic", O_STR, OFF(erasure_state_topic), 0, 0, "kanon.erasure.state.v1",
	 "compacted topic of erased people's fingerprints (created if missing)"},
	{"policy.minor_age", O_INT, OFF(minor_age), 18, 25, "18",
	 "people this old or younger (by birth year) are minors; only stricter values"},
	{"policy.unknown_age_is_minor", O_BOOL, OFF(unknown_age_is_minor), 0, 0, "false",
	 "treat events without a birth year as a minor's"},
	{"policy.minors_in_deid", O_BOOL, OFF(minors_in_deid), 0, 0, "false",
	 "true: a minor's event reaches the de-identified stream without identifiers, "
	 "location or IP prefix (by default it reaches no output)"},
	{"policy.missing_consent_allows", O_BOOL, OFF(missing_consent_allows), 0, 0, "false",
	 "true: an event with no consent field counts as consenting (loosens the policy)"},
	{"policy.ads_optout_in_deid", O_BOOL, OFF(ads_optout_in_deid), 0, 0, "false",
	 "true: keep ads_personalization opt-outs in the de-identified stream"},
	{"policy.emit_scrubbed_query", O_BOOL, OFF(emit_scrubbed_query), 0, 0, "false",
	 "true: emit the PII-scrubbed query text (otherwise only its category)"},
	{"policy.sensitive_terms", O_PATH, OFF(sensitive_terms), 0, 0, "builtin",
	 "sensitive-category lexicon (deploy/policy/sensitive_terms.txt is built in)"},
	{"policy.query_taxonomy", O_PATH, OFF(query_taxonomy), 0, 0, "builtin",
	 "query category taxonomy (deploy/policy/query_taxonomy.txt is built in)"},
	{"aggregate.topic", O_STR, OFF(agg_topic), 0, 0, "kanon.adagg.v1",
	 "released groups (AdAggregate)"},
	{"aggregate.stats_topic", O_STR, OFF(agg_stats_topic), 0, 0, "kanon.adagg.stats.v1",
	 "per-window release/suppression summaries (AggWindowStats)"},
	{"aggregate.schema_id", O_INT, OFF(agg_schema_id), 0, INT32_MAX, "101",
	 "framing id of AdAggregate records"},
	{"aggregate.stats_schema_id", O_INT, OFF(agg_stats_schema_id), 0, INT32_MAX, "102",
	 "framing id of AggWindowStats records"},
	{"aggregate.transactional_id", O_STR, OFF(transactional_id), 0, 0, "kanon-aggregator",
	 "Kafka transactional.id; a second instance with the same id fences the first"},
	{"aggregate.window", O_DURATION, OFF(agg_window_ms), MIN_MS, DAY_MS, "1h",
	 "tumbling event-time window; must divide keys.epoch"},
	{"aggregate.lateness", O_DURATION, OFF(agg_lateness_ms), 0, DAY_MS, "5m",
	 "an event is late (dropped) once its window's end + this is at or behind its "
	 "partition's largest event time"},
	{"aggregate.person", O_KIND, OFF(agg_person), 0, 0, "user",
	 "identifier kind whose pseudonym defines a person: user|device|phone|email|cookie"},
	{"aggregate.max_events_per_person", O_INT, OFF(agg_max_events), 1, 1000000, "10",
	 "Linf: events one person adds to one group per window"},
	{"aggregate.max_groups_per_person", O_INT, OFF(agg_max_groups), 1, 1000, "4",
	 "L0: groups one person counts in per window, over all definitions together"},
	{"aggregate.privacy.mode", O_STR, OFF(agg_mode_name), 0, 0, "dp",
	 "dp: differentially private release (noise, private group selection); "
	 "k-anonymity: exact counts of groups with >= k people (open to differencing)"},
	{"aggregate.privacy.epsilon", O_STR, OFF(agg_epsilon), 0, 0, "1",
	 "epsilon per person per window, all definitions together (decimal, 0 < e <= 20)"},
	{"aggregate.privacy.delta", O_STR, OFF(agg_delta), 0, 0, "1e-6",
	 "delta per person per window: bounds the chance that a group of one person is "
	 "released (0 < d < 1)"},
	{"aggregate.max_state_bytes", O_INT, OFF(agg_max_state_bytes), 1 << 20, 1LL << 40,
	 "536870912", "open-window state cap; beyond it the oldest window closes early"},
	{"aggregate.contrib_topic", O_STR, OFF(contrib_topic), 0, 0, "auto",
	 "internal topic deid -> bound, keyed by person (auto: "
	 "<kafka.group_id>.agg-contrib: a deployment's, like its consumer groups)"},
	{"aggregate.partials_topic", O_STR, OFF(partials_topic), 0, 0, "auto",
	 "internal topic bound -> release, keyed by group (auto: "
	 "<kafka.group_id>.agg-partials)"},
	{"aggregate.contrib_partitions", O_INT, OFF(contrib_partitions), 1, 10000, "8",
	 "partitions of the contributions topic when kanon creates it: the most bound "
	 "instances that can share the work; fixed once windows are open"},
	{"aggregate.partials_partitions", O_INT, OFF(partials_partitions), 1, 10000, "4",
	 "partitions of the partial-tallies topic when kanon creates it: the most release "
	 "instances that can share the work"},
	{"aggregate.internal_retention", O_DURATION, OFF(internal_retention_ms), 3600 * 1000LL,
	 3660 * DAY_MS, "7d",
	 "retention.ms of the internal topics: longer than any window stays open plus the "
	 "longest outage of a stage"},
	{"aggregate.idle_timeout", O_DURATION, OFF(agg_idle_ms), 0, DAY_MS, "30s",
	 "a partition at its end this long stops holding the watermark back"},
};

#define N_OPTS (sizeof(table) / sizeof(table[0]))

struct ctx {
	struct kn_config *c;
	const char *file;
	char *dir;
	yaml_document_t *doc;
	char *errstr;
	size_t errsz;
	int seen[N_OPTS]; /* line that set it: > 0 the file, -1 --set */
};

static int err_at(struct ctx *x, int line, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static const struct opt *find_opt(const char *path);

static int err_at(struct ctx *x, int line, const char *key, const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!line) { /* a check of the whole: where was key set? */
		const struct opt *o = find_opt(key);
		line = o ? x->seen[o - table] : 0;
	}
	if (line > 0)
		snprintf(x->errstr, x->errsz, "%s:%d: %s: %s", x->file, line, key, msg);
	else
		snprintf(x->errstr, x->errsz, "%s: %s: %s", line < 0 ? "--set" : x->file, key, msg);
	return -EINVAL;
}

int kn_parse_duration(const char *s, int64_t *ms)
{
	static const struct {
		const char *unit;
		int64_t ms;
	} units[] = {{"ms", 1},	     {"s", 1000},     {"m", 60000},
		     {"h", 3600000}, {"d", 86400000}, {"", 1}};
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (end == s || errno || v < 0)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (!strcmp(end, units[i].unit)) {
			if (v > INT64_MAX / units[i].ms)
				return -EINVAL;
			*ms = v * units[i].ms;
			return 0;
		}
	}
	return -EINVAL;
}

static int parse_date(const char *s, int64_t *ms)
{
	struct tm tm = {0};
	const char *end = strptime(s, "%Y-%m-%d", &tm);

	if (!end || *end)
		return -EINVAL;
	int mday = tm.tm_mday, mon = tm.tm_mon;
	*ms = (int64_t)timegm(&tm) * 1000;
	/* timegm moves 2001-02-30 to March 2: a date that does not exist is
	 * refused, not silently replaced. */
	return tm.tm_mday == mday && tm.tm_mon == mon ? 0 : -EINVAL;
}

/* ${VAR} and ${VAR:-default}; anything else is copied. */
static int expand_env(struct ctx *x, int line, const char *key, const char *in, char **out)
{
	size_t cap = strlen(in) + 1, n = 0;
	char *buf = kn_malloc(cap);

	if (!buf)
		return -ENOMEM;
	for (const char *p = in; *p;) {
		const char *val = NULL, *close;
		size_t vlen;
		if (p[0] != '$' || p[1] != '{') {
			buf[n++] = *p++;
			continue;
		}
		close = strchr(p, '}');
		if (!close) {
			kn_free(buf);
			return err_at(x, line, key, "unterminated ${ in '%s'", in);
		}
		char name[128] = "";
		const char *def = NULL, *colon = strstr(p, ":-");
		size_t nlen = (size_t)((colon && colon < close ? colon : close) - (p + 2));
		if (nlen >= sizeof(name))
			nlen = sizeof(name) - 1;
		memcpy(name, p + 2, nlen);
		if (colon && colon < close)
			def = colon + 2;
		val = getenv(name);
		if (val && *val) {
			vlen = strlen(val);
		} else if (def) {
			val = def;
			vlen = (size_t)(close - def);
		} else {
			kn_free(buf);
			return err_at(x, line, key, "environment variable %s is not set", name);
		}
		char *nb = kn_realloc(buf, cap += vlen);
		if (!nb) {
			kn_free(buf);
			return -ENOMEM;
		}
		buf = nb;
		memcpy(buf + n, val, vlen);
		n += vlen;
		p = close + 1;
	}
	buf[n] = '\0';
	*out = buf;
	return 0;
}

static char *resolve_path(struct ctx *x, const char *v)
{
	if (v[0] == '/' || !x->dir)
		return kn_strdup(v);
	size_t n = strlen(x->dir) + strlen(v) + 2;
	char *p = kn_malloc(n);
	if (p)
		snprintf(p, n, "%s/%s", x->dir, v);
	return p;
}

static int set_str(char **dst, char *v)
{
	kn_free(*dst);
	*dst = v;
	return 0;
}

/* A duration in its largest whole unit: 86400000 is "1d", 90000 "90s". */
static void fmt_duration(int64_t v, char *buf, size_t n)
{
	static const struct {
		int64_t ms;
		const char *unit;
	} units[] = {{86400000, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}};

	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (v && v % units[i].ms == 0) {
			snprintf(buf, n, "%lld%s", (long long)(v / units[i].ms), units[i].unit);
			return;
		}
	snprintf(buf, n, "%lldms", (long long)v);
}

static int parse_bool(const char *v, bool *out)
{
	if (!strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "on"))
		*out = true;
	else if (!strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "off"))
		*out = false;
	else
		return -EINVAL;
	return 0;
}

/* Sets table row o from text raw (already env-expanded). Takes ownership of raw. */
static int set_opt(struct ctx *x, const struct opt *o, char *raw, int line)
{
	void *dst = (char *)x->c + o->off;
	int64_t v;
	char *end;
	enum kn_log_level lvl;

	switch (o->type) {
	case O_STR:
		if (!*raw)
			goto bad;
		return set_str(dst, raw);
	case O_OPTSTR:
		return set_str(dst, raw);
	case O_OPTPATH:
		if (!*raw)
			return set_str(dst, raw);
		/* fall through */
	case O_PATH: {
		if (!strcmp(raw, "builtin"))
			return set_str(dst, raw);
		char *p = resolve_path(x, raw);
		kn_free(raw);
		return p ? set_str(dst, p) : -ENOMEM;
	}
	case O_LEVEL:
		if (kn_log_parse_level(raw, &lvl))
			goto bad;
		return set_str(dst, raw);
	case O_KIND:
		for (v = 0; v < KN_ID_KINDS; v++)
			if (!strcmp(raw, kn_id_kind_name((enum kn_id_kind)v)))
				break;
		if (v == KN_ID_KINDS)
			goto bad;
		*(int64_t *)dst = v;
		break;
	case O_DIGITS:
		if (strlen(raw) < (size_t)o->min || strlen(raw) > (size_t)o->max ||
		    strspn(raw, "0123456789") != strlen(raw) || raw[0] == '0')
			goto bad;
		return set_str(dst, raw);
	case O_INT:
		errno = 0;
		v = strtoll(raw, &end, 10);
		if (end == raw || *end || errno || v < o->min || v > o->max)
			goto bad;
		*(int64_t *)dst = v;
		break;
	case O_EPOCH:
		if (!strcmp(raw, "never")) {
			*(int64_t *)dst = 0;
			break;
		}
		/* fall through */
	case O_DURATION:
		if (kn_parse_duration(raw, &v) || v < o->min || v > o->max)
			goto bad;
		*(int64_t *)dst = v;
		break;
	case O_BOOL:
		if (parse_bool(raw, dst))
			goto bad;
		break;
	case O_PRF:
		if (kn_prf_parse(raw, dst))
			goto bad;
		break;
	case O_DATE:
		if (parse_date(raw, &v))
			goto bad;
		*(int64_t *)dst = v;
		break;
	}
	kn_free(raw);
	return 0;
bad:;
	static const char *what[] = {
		[O_STR] = "must be a non-empty string",
		[O_PATH] = "must be a path",
		[O_INT] = "must be an integer in range",
		[O_BOOL] = "must be true or false",
		[O_PRF] = "must be siphash, hmac-sha256 or xxh3",
		[O_DATE] = "must be a date YYYY-MM-DD",
		[O_DIGITS] = "must be a country calling code (1-3 digits, e.g. 86)",
		[O_LEVEL] = "must be error, warn, info or debug",
		[O_KIND] = "must be user, device, phone, email or cookie",
	};
	if (o->type == O_INT) {
		err_at(x, line, o->path, "must be an integer %lld..%lld (got '%s')",
		       (long long)o->min, (long long)o->max, raw);
	} else if (o->type == O_DURATION || o->type == O_EPOCH) {
		char lo[24], hi[24];
		fmt_duration(o->min, lo, sizeof(lo));
		fmt_duration(o->max, hi, sizeof(hi));
		err_at(x, line, o->path,
		       "must be a duration from %s to %s%s, written with ms, s, m, h or d "
		       "(got '%s')",
		       lo, hi, o->type == O_EPOCH ? ", or 'never'" : "", raw);
	} else
		err_at(x, line, o->path, "%s (got '%s')", what[o->type], raw);
	kn_free(raw);
	return -EINVAL;
}

static const struct opt *find_opt(const char *path)
{
	for (size_t i = 0; i < N_OPTS; i++)
		if (!strcmp(table[i].path, path))
			return &table[i];
	return NULL;
}

/* Sets key (replacing it), or -EEXIST when it is there and !replace. */
static int kv_put(struct kn_kv **arr, int *n, const char *key, char *value, bool replace)
{
	for (int i = 0; i < *n; i++) {
		if (!strcmp((*arr)[i].key, key)) {
			if (!replace)
				return -EEXIST;
			kn_free((*arr)[i].value);
			(*arr)[i].value = value;
			return 0;
		}
	}
	struct kn_kv *na = kn_realloc(*arr, sizeof(**arr) * (size_t)(*n + 1));
	if (!na)
		return -ENOMEM;
	*arr = na;
	na[*n].key = kn_strdup(key);
	na[*n].value = value;
	if (!na[*n].key)
		return -ENOMEM;
	(*n)++;
	return 0;
}

/* Sets one dotted path from text. Used for the file and for --set. */
static int set_path(struct ctx *x, const char *path, const char *text, int line)
{
	const struct opt *o = find_opt(path);
	char *v;
	int err = expand_env(x, line, path, text, &v);

	if (err)
		return err;
	if (!strncmp(path, "kafka.consumer.", 15) || !strncmp(path, "kafka.producer.", 15)) {
		bool cons = path[6] == 'c';
		if (!strcmp(path + 15, "group.id") || !strcmp(path + 15, "transactional.id")) {
			kn_free(v);
			return err_at(x, line, path, "set by kanon: use %s instead",
				      path[15] == 'g' ? "kafka.group_id"
						      : "aggregate.transactional_id");
		}
		/* The file is read before any --set, so an entry that exists
		 * while reading the file came from the file. */
		err = kv_put(cons ? &x->c->consumer : &x->c->producer,
			     cons ? &x->c->n_consumer : &x->c->n_producer, path + 15, v, line <= 0);
		if (err)
			kn_free(v);
		if (err == -EEXIST)
			return err_at(x, line, path, "given twice in the file");
		return err;
	}
	if (!o) {
		kn_free(v);
		return err_at(x, line, path, "unknown option (see 'kanon check --describe')");
	}
	if (line > 0 && x->seen[o - table] > 0) {
		kn_free(v);
		return err_at(x, line, path, "given twice in the file (first at line %d)",
			      x->seen[o - table]);
	}
	x->seen[o - table] = line ? line : -1;
	return set_opt(x, o, v, line);
}

static const char *scalar(yaml_node_t *n)
{
	return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static int line_of(yaml_node_t *n)
{
	return (int)n->start_mark.line + 1;
}

static yaml_node_t *node(struct ctx *x, int i)
{
	return yaml_document_get_node(x->doc, i);
}

static int walk_map(struct ctx *x, yaml_node_t *m, const char *prefix);

static int walk_value(struct ctx *x, const char *path, yaml_node_t *v)
{
	if (v->type == YAML_MAPPING_NODE)
		return walk_map(x, v, path);
	if (v->type != YAML_SCALAR_NODE)
		return err_at(x, line_of(v), path, "expected a value or a mapping");
	return set_path(x, path, scalar(v), line_of(v));
}

static int parse_inputs(struct ctx *x, yaml_node_t *seq);
static int parse_schemas(struct ctx *x, yaml_node_t *seq);
static int parse_aggregates(struct ctx *x, yaml_node_t *seq);

static int walk_map(struct ctx *x, yaml_node_t *m, const char *prefix)
{
	for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *k = node(x, p->key), *v = node(x, p->value);
		char path[256];
		int err;
		if (!scalar(k))
			return err_at(x, line_of(k), prefix, "keys must be plain strings");
		snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? "." : "", scalar(k));
		if (!strcmp(path, "inputs"))
			err = parse_inputs(x, v);
		else if (!strcmp(path, "schemas"))
			err = parse_schemas(x, v);
		else if (!strcmp(path, "aggregates"))
			err = parse_aggregates(x, v);
		else
			err = walk_value(x, path, v);
		if (err)
			return err;
	}
	return 0;
}

static int parse_type(struct ctx *x, yaml_node_t *v, const char *key, enum kn_event_type *out)
{
	int t = scalar(v) ? kn_event_type_by_name(scalar(v)) : -1;

	if (t < 0)
		return err_at(x, line_of(v), key, "must be device, access or search");
	*out = (enum kn_event_type)t;
	return 0;
}

static int parse_inputs(struct ctx *x, yaml_node_t *seq)
{
	if (seq->type != YAML_SEQUENCE_NODE)
		return err_at(x, line_of(seq), "inputs", "expected a list of {topic, type}");
	for (yaml_node_item_t *it = seq->data.sequence.items.start;
	     it < seq->data.sequence.items.top; it++) {
		yaml_node_t *m = node(x, *it);
		struct kn_input_cfg in = {0};
		bool has_type = false;
		if (m->type != YAML_MAPPING_NODE)
			return err_at(x, line_of(m), "inputs[]", "expected {topic, type}");
		for (yaml_node_pair_t *p = m->data.mapping.pairs.start;
		     p < m->data.mapping.pairs.top; p++) {
			const char *k = scalar(node(x, p->key));
			yaml_node_t *v = node(x, p->value);
			if (k && !strcmp(k, "topic") && scalar(v)) {
				char *t;
				if (expand_env(x, line_of(v), "inputs[].topic", scalar(v), &t))
					return -EINVAL;
				kn_free(in.topic);
				in.topic = t;
			} else if (k && !strcmp(k, "type")) {
				if (parse_type(x, v, "inputs[].type", &in.type))
					goto fail;
				has_type = true;
			} else {
				kn_free(in.topic);
				return err_at(x, line_of(v), "inputs[]", "unknown key '%s'",
					      k ? k : "?");
			}
		}
		if (!in.topic || !has_type) {
			err_at(x, line_of(m), "inputs[]", "needs both 'topic' and 'type'");
			goto fail;
		}
		struct kn_input_cfg *na =
			kn_realloc(x->c->inputs, sizeof(*na) * (size_t)(x->c->n_inputs + 1));
		if (!na)
			goto fail;
		x->c->inputs = na;
		na[x->c->n_inputs++] = in;
		continue;
	fail:
		kn_free(in.topic);
		return -EINVAL;
	}
	return 0;
}

static int parse_roles(struct ctx *x, yaml_node_t *m, struct kn_schema_cfg *s)
{
	if (m->type != YAML_MAPPING_NODE)
		return err_at(x, line_of(m), "schemas[].roles", "expected role: field.path pairs");
	for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top;
	     p++) {
		const char *k = scalar(node(x, p->key));
		yaml_node_t *v = node(x, p->value);
		int r = k ? kn_role_by_name(k) : -1;
		if (r < 0)
			return err_at(x, line_of(v), "schemas[].roles",
				      "unknown role '%s' (see 'kanon check --describe')",
				      k ? k : "?");
		if (!scalar(v) || !*scalar(v))
			return err_at(x, line_of(v), k, "expected a field path");
		kn_free(s->roles[r]);
		s->roles[r] = kn_strdup(scalar(v));
		if (!s->roles[r])
			return -ENOMEM;
	}
	return 0;
}

static void schema_cfg_free(struct kn_schema_cfg *s)
{
	kn_free(s->file);
	for (int r = 0; r < KN_ROLE_COUNT; r++)
		kn_free(s->roles[r]);
}

static int parse_schema(struct ctx *x, yaml_node_t *m, struct kn_schema_cfg *s)
{
	bool has_id = false, has_type = false;

	s->line = line_of(m);
	for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top;
	     p++) {
		const char *k = scalar(node(x, p->key));
		yaml_node_t *v = node(x, p->value);
		char *end;
		if (k && !strcmp(k, "id") && scalar(v)) {
			long long id = strtoll(scalar(v), &end, 10);
			if (*end || end == scalar(v) || id < 0 || id > INT32_MAX)
				return err_at(x, line_of(v), "schemas[].id",
					      "must be an integer 0..2147483647");
			s->id = (int32_t)id;
			has_id = true;
		} else if (k && !strcmp(k, "file") && scalar(v)) {
			kn_free(s->file);
			s->file = resolve_path(x, scalar(v));
			if (!s->file)
				return -ENOMEM;
		} else if (k && !strcmp(k, "type")) {
			if (parse_type(x, v, "schemas[].type", &s->type))
				return -EINVAL;
			has_type = true;
		} else if (k && !strcmp(k, "roles")) {
			if (parse_roles(x, v, s))
				return -EINVAL;
		} else {
			return err_at(x, line_of(v), "schemas[]", "unknown key '%s'", k ? k : "?");
		}
	}
	if (!has_id)
		s->id = -1; /* registry mode only: check_registry says so otherwise */
	if (!has_type || !s->file)
		return err_at(x, s->line, "schemas[]", "needs 'file', 'type' and 'roles'");
	for (int r = KN_ROLE_EVENT_ID; r <= KN_ROLE_TIMESTAMP; r++)
		if (!s->roles[r])
			return err_at(x, s->line, "schemas[].roles", "role '%s' is required",
				      kn_roles[r].name);
	for (int i = 0; i < x->c->n_schemas && s->id >= 0; i++)
		if (x->c->schemas[i].id == s->id)
			return err_at(x, s->line, "schemas[].id", "schema id %d is listed twice",
				      (int)s->id);
	return 0;
}

static int parse_schemas(struct ctx *x, yaml_node_t *seq)
{
	if (seq->type != YAML_SEQUENCE_NODE)
		return err_at(x, line_of(seq), "schemas", "expected a list");
	for (yaml_node_item_t *it = seq->data.sequence.items.start;
	     it < seq->data.sequence.items.top; it++) {
		yaml_node_t *m = node(x, *it);
		struct kn_schema_cfg s = {0};
		if (m->type != YAML_MAPPING_NODE)
			return err_at(x, line_of(m), "schemas[]", "expected a mapping");
		if (parse_schema(x, m, &s)) {
			schema_cfg_free(&s);
			return -EINVAL;
		}
		struct kn_schema_cfg *na =
			kn_realloc(x->c->schemas, sizeof(*na) * (size_t)(x->c->n_schemas + 1));
		if (!na) {
			schema_cfg_free(&s);
			return -ENOMEM;
		}
		x->c->schemas = na;
		na[x->c->n_schemas++] = s;
	}
	return 0;
}

static int parse_dims(struct ctx *x, yaml_node_t *v, uint32_t *dims)
{
	if (v->type != YAML_SEQUENCE_NODE)
		return err_at(x, line_of(v), "aggregates[].dimensions", "expected a list");
	for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
	     it++) {
		yaml_node_t *d = node(x, *it);
		int dim = scalar(d) ? kn_dim_by_name(scalar(d)) : -1;
		if (dim < 0)
			return err_at(x, line_of(d), "aggregates[].dimensions",
				      "unknown dimension '%s' (event_type, geo_cell, ip_prefix, "
				      "os_family, app_version, url_domain, query_category)",
				      scalar(d) ? scalar(d) : "?");
		if (*dims & (1u << dim))
			return err_at(x, line_of(d), "aggregates[].dimensions",
				      "'%s' is listed twice", scalar(d));
		*dims |= 1u << dim;
	}
	return 0;
}

static int parse_agg_int(struct ctx *x, yaml_node_t *v, const char *key, int64_t lo, int64_t hi,
			 int64_t *out)
{
	char *end;
	long long n = scalar(v) ? strtoll(scalar(v), &end, 10) : 0;

	if (!scalar(v) || *end || end == scalar(v) || n < lo || n > hi)
		return err_at(x, line_of(v), key, "must be an integer %lld..%lld", (long long)lo,
			      (long long)hi);
	*out = n;
	return 0;
}

static int parse_aggregate(struct ctx *x, yaml_node_t *m, struct kn_agg_cfg *a)
{
	a->line = line_of(m);
	a->k = 50;
	a->geo_precision = 4;
	for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top;
	     p++) {
		const char *k = scalar(node(x, p->key));
		yaml_node_t *v = node(x, p->value);
		int err = 0;
		if (k && !strcmp(k, "name") && scalar(v)) {
			kn_free(a->name);
			if (!(a->name = kn_strdup(scalar(v))))
				return -ENOMEM;
		} else if (k && !strcmp(k, "dimensions")) {
			err = parse_dims(x, v, &a->dims);
		} else if (k && !strcmp(k, "k")) {
			err = parse_agg_int(x, v, "aggregates[].k", 2, 1000000, &a->k);
		} else if (k && !strcmp(k, "geo_precision")) {
			err = parse_agg_int(x, v, "aggregates[].geo_precision", 1, 7,
					    &a->geo_precision);
		} else {
			err = err_at(x, line_of(v), "aggregates[]", "unknown key '%s'",
				     k ? k : "?");
		}
		if (err)
			return err;
	}
	if (!a->name || !a->dims)
		return err_at(x, a->line, "aggregates[]", "needs 'name' and 'dimensions'");
	if (!a->name[0] || strlen(a->name) > KN_AGG_NAME_MAX ||
	    strspn(a->name, KN_AGG_NAME_CHARS) != strlen(a->name))
		return err_at(x, a->line, "aggregates[].name",
			      "'%s' must be 1 to %d characters of [A-Za-z0-9_.-]", a->name,
			      KN_AGG_NAME_MAX);
	return 0;
}

static int parse_aggregates(struct ctx *x, yaml_node_t *seq)
{
	if (seq->type != YAML_SEQUENCE_NODE)
		return err_at(x, line_of(seq), "aggregates", "expected a list");
	for (yaml_node_item_t *it = seq->data.sequence.items.start;
	     it < seq->data.sequence.items.top; it++) {
		yaml_node_t *m = node(x, *it);
		struct kn_agg_cfg a = {0};
		if (m->type != YAML_MAPPING_NODE)
			return err_at(x, line_of(m), "aggregates[]", "expected a mapping");
		if (x->c->n_aggs == KN_AGGS_MAX)
			return err_at(x, line_of(m), "aggregates", "at most %d definitions",
				      KN_AGGS_MAX);
		int err = parse_aggregate(x, m, &a);
		for (int i = 0; !err && i < x->c->n_aggs; i++)
			if (!strcmp(x->c->aggs[i].name, a.name))
				err = err_at(x, a.line, "aggregates[].name", "'%s' is listed twice",
					     a.name);
		struct kn_agg_cfg *na =
			err ? NULL
			    : kn_realloc(x->c->aggs, sizeof(*na) * (size_t)(x->c->n_aggs + 1));
		if (!na) {
			kn_free(a.name);
			return err ? err : -ENOMEM;
		}
		x->c->aggs = na;
		na[x->c->n_aggs++] = a;
	}
	return 0;
}

/* YAML allows a mapping to repeat a key, and libyaml keeps both: refuse it,
 * in every mapping of the document (options, inputs, schemas, roles,
 * aggregates), before anything reads a value. */
static int check_unique_keys(struct ctx *x, yaml_document_t *doc)
{
	for (yaml_node_t *m = doc->nodes.start; m < doc->nodes.top; m++) {
		if (m->type != YAML_MAPPING_NODE)
			continue;
		for (yaml_node_pair_t *p = m->data.mapping.pairs.start;
		     p < m->data.mapping.pairs.top; p++) {
			const char *k = scalar(node(x, p->key));
			for (yaml_node_pair_t *q = m->data.mapping.pairs.start; k && q < p; q++) {
				const char *k2 = scalar(node(x, q->key));
				if (k2 && !strcmp(k, k2))
					return err_at(x, line_of(node(x, p->key)), k,
						      "given twice in one mapping (first at "
						      "line %d)",
						      line_of(node(x, q->key)));
			}
		}
	}
	return 0;
}

/* The line of byte offset off in f (libyaml's reader errors, a control
 * character or bad UTF-8, give an offset and no line). */
static size_t line_at_offset(FILE *f, size_t off)
{
	size_t line = 1;
	int ch;

	rewind(f);
	for (size_t i = 0; i < off && (ch = getc(f)) != EOF; i++)
		line += ch == '\n';
	return line;
}

static int load_yaml(struct ctx *x, FILE *f)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	yaml_node_t *root;
	int err = 0;

	if (!yaml_parser_initialize(&parser))
		return -ENOMEM;
	yaml_parser_set_input_file(&parser, f);
	if (!yaml_parser_load(&parser, &doc)) {
		size_t line = parser.problem_mark.line + 1;
		if (parser.error == YAML_READER_ERROR) /* no mark: a byte offset */
			line = line_at_offset(f, parser.problem_offset);
		snprintf(x->errstr, x->errsz, "%s:%zu: YAML syntax error: %s", x->file, line,
			 parser.problem ? parser.problem : "?");
		yaml_parser_delete(&parser);
		return -EINVAL;
	}
	x->doc = &doc;
	root = yaml_document_get_root_node(&doc);
	if (!root)
		err = err_at(x, 1, "(document)", "empty configuration");
	else if (root->type != YAML_MAPPING_NODE)
		err = err_at(x, line_of(root), "(document)", "top level must be a mapping");
	else if (!(err = check_unique_keys(x, &doc)))
		err = walk_map(x, root, "");
	x->doc = NULL;
	yaml_document_delete(&doc);
	if (!err) { /* a second document would be ignored: refused (a bare "---" is none) */
		if (!yaml_parser_load(&parser, &doc)) {
			err = err_at(x, (int)parser.problem_mark.line + 1, "(document)",
				     "YAML syntax error: %s",
				     parser.problem ? parser.problem : "?");
		} else {
			yaml_node_t *r2 = yaml_document_get_root_node(&doc);
			if (r2 && !(r2->type == YAML_SCALAR_NODE && !r2->data.scalar.length))
				err = err_at(x, 0, "(document)",
					     "more than one YAML document ('---'): kanon reads "
					     "one");
			yaml_document_delete(&doc);
		}
	}
	yaml_parser_delete(&parser);
	return err;
}

static int apply_defaults(struct ctx *x)
{
	for (size_t i = 0; i < N_OPTS; i++) {
		if (x->seen[i])
			continue;
		char *v = kn_strdup(table[i].def);
		if (!v || set_opt(x, &table[i], v, 0))
			return -EINVAL;
	}
	return 0;
}

/* run.guarantee: the run loop's commit strategy. Aggregates restart from
 * state kept in the transactions' offset metadata, so they need
 * exactly-once. */
static int check_guarantee(struct ctx *x)
{
	struct kn_config *c = x->c;

	if (!strcmp(c->guarantee_name, "auto"))
		c->exactly_once = c->n_aggs > 0;
	else if (!strcmp(c->guarantee_name, "exactly-once"))
		c->exactly_once = true;
	else if (!strcmp(c->guarantee_name, "at-least-once"))
		c->exactly_once = false;
	else
		return err_at(x, 0, "run.guarantee",
			      "'%s' is none of at-least-once, exactly-once, auto",
			      c->guarantee_name);
	if (c->n_aggs && !c->exactly_once)
		return err_at(x, 0, "run.guarantee",
			      "aggregates need exactly-once (their state restarts from the "
			      "transactions' offset metadata): remove them or use exactly-once");
	return 0;
}

/* aggregate.privacy.*: the mode, and for dp the noise and threshold that
 * the budget and the contribution bounds imply (kn_dp_params). */
static int check_privacy(struct ctx *x)
{
	struct kn_config *c = x->c;
	struct kn_dp_budget b = {.l0 = c->agg_max_groups, .linf = c->agg_max_events};
	char *end;

	if (!strcmp(c->agg_mode_name, "dp"))
		c->agg_mode = KN_AGG_DP;
	else if (!strcmp(c->agg_mode_name, "k-anonymity"))
		c->agg_mode = KN_AGG_K_ANONYMITY;
	else
		return err_at(x, 0, "aggregate.privacy.mode", "'%s' is neither dp nor k-anonymity",
			      c->agg_mode_name);
	if (kn_dp_parse_epsilon(c->agg_epsilon, &b.eps_num, &b.eps_den))
		return err_at(x, 0, "aggregate.privacy.epsilon",
			      "'%s' is not a decimal in (0, %d] with at most 6 decimals",
			      c->agg_epsilon, KN_DP_MAX_EPSILON);
	errno = 0;
	b.delta = strtod(c->agg_delta, &end);
	if (end == c->agg_delta || *end || errno || !(b.delta > 0 && b.delta < 1))
		return err_at(x, 0, "aggregate.privacy.delta", "'%s' is not a number in (0, 1)",
			      c->agg_delta);
	if (kn_dp_params(&b, &c->agg_dp))
		return err_at(x, 0, "aggregate.privacy.epsilon",
			      "this budget with max_groups_per_person %lld and "
			      "max_events_per_person %lld gives a noise scale beyond the sampler",
			      (long long)b.l0, (long long)b.linf);
	return 0;
}

static void hash_str(crypto_generichash_state *st, const char *s)
{
	crypto_generichash_update(st, (const uint8_t *)(s ? s : "\x01"), s ? strlen(s) + 1 : 1);
}

static void hash_int(crypto_generichash_state *st, int64_t v)
{
	char b[24];

	snprintf(b, sizeof(b), "%lld", (long long)v);
	hash_str(st, b);
}

/* A lexicon's text: the built-in one, or the file's (unreadable, its path:
 * the policy then refuses it anyway). */
static void hash_lexicon(crypto_generichash_state *st, const char *path, const char *builtin)
{
	uint8_t buf[4096];
	size_t n;
	FILE *f;

	if (!strcmp(path, "builtin") || !(f = fopen(path, "r"))) {
		hash_str(st, strcmp(path, "builtin") ? path : builtin);
		return;
	}
	while ((n = fread(buf, 1, sizeof(buf), f)))
		crypto_generichash_update(st, buf, n);
	fclose(f);
	hash_str(st, "");
}

/* The noise of a release is bound to its scope (aggregate.c): the
 * deployment (two pipelines sharing a key file cannot share a
 * transactional id: one would fence the other) and every setting outside
 * aggregate.* that shapes the counts: which events are eligible (policy,
 * its lexicons, validation, input types, schema roles) and who a person is and
 * what a group holds (keys, pseudonymize, generalize). A release of a
 * window under another such setting then draws unrelated noise, so two
 * releases never differ by exactly the true difference. */
static int bind_release(struct kn_config *c)
{
	crypto_generichash_state st;
	uint8_t h[16];
	char hex[2 * sizeof(h) + 1];

	crypto_generichash_init(&st, NULL, 0, sizeof(h));
	hash_str(&st, "kn-scope-v1");
	int64_t v[] = {c->prf,
		       c->link_kinds,
		       c->geohash_precision,
		       c->ipv4_prefix,
		       c->ipv6_prefix,
		       c->time_bucket_ms,
		       c->ts_min_ms,
		       c->ts_max_future_ms,
		       c->max_field_bytes,
		       c->minor_age,
		       c->unknown_age_is_minor,
		       c->minors_in_deid,
		       c->missing_consent_allows,
		       c->ads_optout_in_deid,
		       c->agg_max_state_bytes,
		       c->agg_idle_ms,
		       c->erasure_enabled};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		hash_int(&st, v[i]);
	hash_str(&st, c->phone_region);
	hash_lexicon(&st, c->sensitive_terms, KN_EMBED_SENSITIVE);
	hash_lexicon(&st, c->query_taxonomy, KN_EMBED_TAXONOMY);
	for (int i = 0; i < c->n_inputs; i++) /* the types, not the topics' names */
		hash_int(&st, c->inputs[i].type);
	for (int i = 0; i < c->n_schemas; i++) {
		hash_int(&st, c->schemas[i].type);
		for (int r = 0; r < KN_ROLE_COUNT; r++)
			hash_str(&st, c->schemas[i].roles[r]);
	}
	crypto_generichash_final(&st, h, sizeof(h));
	sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
	size_t n = strlen(c->transactional_id) + sizeof(hex) + 1;
	if (!(c->release_scope = kn_malloc(n)))
		return -ENOMEM;
	snprintf(c->release_scope, n, "%s|%s", c->transactional_id, hex);
	return 0;
}

/* Replaces an "auto" topic name by <group id>.<suffix>: the internal
 * topics belong to a deployment as its consumer groups do (two runs that
 * share a group would share its offsets too). */
static int derive_topic(struct ctx *x, char **topic, const char *suffix)
{
	if (strcmp(*topic, "auto"))
		return 0;
	size_t n = strlen(x->c->group_id) + strlen(suffix) + 2;
	char *t = kn_malloc(n);
	if (!t)
		return -ENOMEM;
	snprintf(t, n, "%s.%s", x->c->group_id, suffix);
	kn_free(*topic);
	*topic = t;
	return 0;
}

/* run.role, run.instance and the internal topics. */
static int check_topology(struct ctx *x)
{
	static const char *const roles[] = {"all", "deid", "bound", "release"};
	struct kn_config *c = x->c;
	int err;

	c->role = -1;
	for (int i = 0; i < 4; i++)
		if (!strcmp(c->role_name, roles[i]))
			c->role = i;
	if (c->role < 0)
		return err_at(x, 0, "run.role", "'%s' is none of all, deid, bound, release",
			      c->role_name);
	if (c->role >= KN_RUN_BOUND && !c->n_aggs)
		return err_at(x, 0, "run.role",
			      "%s is a stage of the aggregates, and none are configured",
			      c->role_name);
	for (const char *p = c->instance; *p; p++)
		if (!(isalnum((unsigned char)*p) || *p == '-' || *p == '_' || *p == '.'))
			return err_at(x, 0, "run.instance",
				      "'%s': only letters, digits, '-', '_' and '.'", c->instance);
	if (!strcmp(c->instance, "auto")) {
		char host[256] = "";
		if (gethostname(host, sizeof(host) - 1) || !host[0])
			snprintf(host, sizeof(host), "kanon");
		kn_free(c->instance);
		if (!(c->instance = kn_strdup(host)))
			return -ENOMEM;
	}
	if ((err = derive_topic(x, &c->contrib_topic, "agg-contrib")) ||
	    (err = derive_topic(x, &c->partials_topic, "agg-partials")))
		return err;
	if (c->n_aggs &&
	    c->internal_retention_ms < c->agg_window_ms + c->agg_lateness_ms + 3600 * 1000LL)
		return err_at(x, 0, "aggregate.internal_retention",
			      "shorter than a window plus its lateness plus an hour: open windows "
			      "would lose contributions before they close");
	for (int i = 0; i < c->n_inputs; i++)
		if (!strcmp(c->inputs[i].topic, c->contrib_topic) ||
		    !strcmp(c->inputs[i].topic, c->partials_topic))
			return err_at(x, 0, "inputs[].topic", "'%s' is an internal topic",
				      c->inputs[i].topic);
	return 0;
}

/* schemas[] without ids need a registry. */
static int check_registry(struct ctx *x)
{
	const struct kn_config *c = x->c;

	for (int i = 0; i < c->n_schemas && !c->registry_url[0]; i++)
		if (c->schemas[i].id < 0)
			return err_at(x, c->schemas[i].line, "schemas[].id",
				      "required without schema_registry.url");
	char why[200];
	if (c->registry_url[0] && kn_registry_check_url(c->registry_url, why, sizeof(why)))
		return err_at(x, 0, "schema_registry.url", "%s", why);
	if (!c->registry_username[0] && c->registry_password[0])
		return err_at(x, 0, "schema_registry.password", "set, but no username");
	if (!c->registry_cert_file[0] != !c->registry_key_file[0])
		return err_at(x, 0, "schema_registry.cert_file",
			      "cert_file and key_file go together");
	/* Read at the first request otherwise, as a TLS failure that looks
	 * like an outage: a path that cannot be read is a config error now,
	 * as librdkafka's ssl.ca.location is. */
	const struct {
		const char *key, *path;
	} files[] = {{"schema_registry.ca_file", c->registry_ca_file},
		     {"schema_registry.cert_file", c->registry_cert_file},
		     {"schema_registry.key_file", c->registry_key_file}};
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		if (files[i].path[0] && access(files[i].path, R_OK))
			return err_at(x, 0, files[i].key, "%s: %s", files[i].path, strerror(errno));
	return 0;
}

/* A name Kafka accepts for a topic: 1 to 249 of [A-Za-z0-9._-], not "." or
 * "..". Checked here, so a typo is a config error and not a broker error
 * after connecting. */
static bool topic_name_ok(const char *t)
{
	size_t n = strlen(t);

	return n && n <= 249 && strspn(t, KN_AGG_NAME_CHARS) == n && strcmp(t, ".") &&
	       strcmp(t, "..");
}

/* Every topic kanon reads or writes has one role: an output that is also an
 * input would loop, erasure state written into an input or an output would
 * reach consumers that never expect it, and one input listed twice would
 * be read twice. */
static int check_topics(struct ctx *x)
{
	const struct kn_config *c = x->c;
	const char **name = kn_calloc((size_t)c->n_inputs + 8, sizeof(*name));
	const char **opt = kn_calloc((size_t)c->n_inputs + 8, sizeof(*opt));
	int n = 0, err = 0;

	if (!name || !opt) {
		err = err_at(x, 0, "inputs", "out of memory");
		goto out;
	}
	for (int i = 0; i < c->n_inputs; i++)
		name[n] = c->inputs[i].topic, opt[n++] = "inputs[].topic";
	name[n] = c->topic_output, opt[n++] = "topics.output";
	name[n] = c->topic_dead_letter, opt[n++] = "topics.dead_letter";
	if (c->erasure_enabled) {
		name[n] = c->erasure_requests_topic, opt[n++] = "erasure.requests_topic";
		name[n] = c->erasure_state_topic, opt[n++] = "erasure.state_topic";
	}
	if (c->n_aggs) {
		name[n] = c->agg_topic, opt[n++] = "aggregate.topic";
		name[n] = c->agg_stats_topic, opt[n++] = "aggregate.stats_topic";
		name[n] = c->contrib_topic, opt[n++] = "aggregate.contrib_topic";
		name[n] = c->partials_topic, opt[n++] = "aggregate.partials_topic";
	}
	for (int i = 0; i < n && !err; i++) {
		if (!topic_name_ok(name[i])) {
			err = err_at(x, 0, opt[i],
				     "'%.300s' is not a Kafka topic name (1 to 249 of A-Z a-z 0-9 "
				     ". _ -)",
				     name[i]);
			break;
		}
		for (int j = 0; j < i && !err; j++)
			if (!strcmp(name[i], name[j]))
				err = err_at(x, 0, opt[i],
					     "'%s' is also %s: every topic needs a role of its "
					     "own (an output that is an input would loop)",
					     name[i], opt[j]);
	}
out:
	kn_free(name);
	kn_free(opt);
	return err;
}

/* Without a registry the framing ids are the only way a reader tells the
 * schemas apart: one id, one schema. */
static int check_schema_ids(struct ctx *x)
{
	const struct kn_config *c = x->c;
	const struct {
		int64_t id;
		const char *opt;
	} out[] = {{c->deid_schema_id, "topics.deid_schema_id"},
		   {c->agg_schema_id, "aggregate.schema_id"},
		   {c->agg_stats_schema_id, "aggregate.stats_schema_id"}};
	int n_out = c->n_aggs ? 3 : 1;

	if (c->registry_url[0])
		return 0; /* ids come from the registry */
	for (int i = 0; i < n_out; i++) {
		for (int j = 0; j < i; j++)
			if (out[i].id == out[j].id)
				return err_at(x, 0, out[i].opt, "%lld is also %s",
					      (long long)out[i].id, out[j].opt);
		for (int k = 0; k < c->n_schemas; k++)
			if (c->schemas[k].id == out[i].id)
				return err_at(x, c->schemas[k].line, out[i].opt,
					      "%lld is also the id of an input schema",
					      (long long)out[i].id);
	}
	return 0;
}

static int check_whole(struct ctx *x)
{
	if (!x->c->n_inputs)
		return err_at(x, 0, "inputs", "at least one input topic is required");
	if (!x->c->n_schemas)
		return err_at(x, 0, "schemas", "at least one schema is required");
	for (int i = 0; i < x->c->n_aggs; i++) {
		const struct kn_agg_cfg *a = &x->c->aggs[i];
		if ((a->dims & (1u << KN_DIM_GEO)) && a->geo_precision > x->c->geohash_precision)
			return err_at(x, a->line, "aggregates[].geo_precision",
				      "%lld is finer than generalize.geohash_precision (%lld)",
				      (long long)a->geo_precision,
				      (long long)x->c->geohash_precision);
	}
	if (!kn_phone_region_valid(x->c->phone_region))
		return err_at(x, 0, "pseudonymize.phone_region",
			      "'%s' is no E.164 country calling code (86 for China, 1 for "
			      "North America, 44 for the UK, ...)",
			      x->c->phone_region);
	int err = check_privacy(x);
	if (err || (err = check_guarantee(x)) || (err = check_topology(x)) ||
	    (err = check_registry(x)))
		return err;
	if (x->c->n_aggs && x->c->epoch_ms && x->c->epoch_ms % x->c->agg_window_ms)
		return err_at(x, 0, "aggregate.window",
			      "must divide keys.epoch, so no window straddles two key epochs");
	/* The session a crashed member's partitions wait out: the operator's,
	 * else librdkafka's 45 s at least once (an exactly-once instance is a
	 * static member: its restart takes them back at once). */
	const char *session = x->c->exactly_once ? NULL : "45000 (librdkafka's default)";
	int64_t session_ms = x->c->exactly_once ? 0 : 45000;
	for (int i = 0; i < x->c->n_consumer; i++) {
		const struct kn_kv *p = &x->c->consumer[i];
		if (!strcmp(p->key, "session.timeout.ms") &&
		    !kn_parse_duration(p->value, &session_ms))
			session = p->value;
	}
	if (session && session_ms >= x->c->assign_wait_ms)
		return err_at(x, 0, "run.assignment_wait",
			      "%lld ms is not longer than kafka.consumer.session.timeout.ms "
			      "(%s): a restart after a crash would give up before the "
			      "group hands back the partitions",
			      (long long)x->c->assign_wait_ms, session);
	if ((err = check_topics(x)) || (err = check_schema_ids(x)))
		return err;
	return bind_release(x->c);
}

int kn_config_load(const char *path, const char *const *overrides, int n_overrides,
		   struct kn_config **out, char *errstr, size_t errstr_size)
{
	struct ctx x = {.file = path, .errstr = errstr, .errsz = errstr_size};
	FILE *f;
	int err;

	*out = NULL;
	f = fopen(path, "r");
	if (!f) {
		err = -errno;
		snprintf(errstr, errstr_size, "%s: %s", path, strerror(errno));
		return err;
	}
	x.c = kn_calloc(1, sizeof(*x.c));
	const char *slash = strrchr(path, '/');
	/* Paths in the file are relative to its directory, made absolute so
	 * that the printed config (check) loads from anywhere. */
	char *rel = slash ? kn_strndup(path, (size_t)(slash - path ? slash - path : 1))
			  : kn_strdup(".");
	char *abs = rel ? realpath(rel, NULL) : NULL;
	x.dir = abs ? kn_strdup(abs) : rel ? kn_strdup(rel) : NULL;
	free(abs);
	kn_free(rel);
	if (!x.c || !x.dir || !(x.c->path = kn_strdup(path))) {
		err = -ENOMEM;
		snprintf(errstr, errstr_size, "out of memory");
		goto out;
	}
	err = load_yaml(&x, f);
	/* --set paths are the command line's: relative to the working
	 * directory, as every other path argument is. */
	char *file_dir = x.dir, *cwd = realpath(".", NULL);
	x.dir = cwd; /* absolute too, for the printed config (NULL: as given) */
	for (int i = 0; !err && i < n_overrides; i++) {
		const char *eq = strchr(overrides[i], '=');
		char key[256];
		if (!eq || eq == overrides[i] || (size_t)(eq - overrides[i]) >= sizeof(key)) {
			err = err_at(&x, -1, overrides[i], "expected key=value");
			break;
		}
		memcpy(key, overrides[i], (size_t)(eq - overrides[i]));
		key[eq - overrides[i]] = '\0';
		err = set_path(&x, key, eq + 1, -1);
	}
	x.dir = file_dir;
	free(cwd);
	if (!err)
		err = apply_defaults(&x);
	if (!err)
		err = check_whole(&x);
out:
	fclose(f);
	kn_free(x.dir);
	if (err) {
		kn_config_destroy(x.c);
		return err;
	}
	*out = x.c;
	return 0;
}

void kn_config_destroy(struct kn_config *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < N_OPTS; i++) {
		enum opt_type t = table[i].type;
		if (t == O_STR || t == O_PATH || t == O_DIGITS || t == O_LEVEL || t == O_OPTSTR ||
		    t == O_OPTPATH)
			kn_free(*(char **)((char *)c + table[i].off));
	}
	kn_free(c->release_scope);
	for (int i = 0; i < c->n_consumer; i++) {
		kn_free(c->consumer[i].key);
		kn_free(c->consumer[i].value);
	}
	for (int i = 0; i < c->n_producer; i++) {
		kn_free(c->producer[i].key);
		kn_free(c->producer[i].value);
	}
	for (int i = 0; i < c->n_inputs; i++)
		kn_free(c->inputs[i].topic);
	for (int i = 0; i < c->n_schemas; i++)
		schema_cfg_free(&c->schemas[i]);
	for (int i = 0; i < c->n_aggs; i++)
		kn_free(c->aggs[i].name);
	kn_free(c->aggs);
	kn_free(c->consumer);
	kn_free(c->producer);
	kn_free(c->inputs);
	kn_free(c->schemas);
	kn_free(c->path);
	kn_free(c);
}

bool kn_config_is_secret(const char *p)
{
	static const char *words[] = {"password",
				      "secret",
				      "jaas",
				      "key.pem",
				      "token",
				      "credentials",
				      "sasl.oauthbearer.config"};

	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strstr(p, words[i]))
			return true;
	return false;
}

static void fmt_value(const struct kn_config *c, const struct opt *o, char *buf, size_t n)
{
	const void *src = (const char *)c + o->off;
	int64_t v;

	switch (o->type) {
	case O_STR:
	case O_PATH:
	case O_DIGITS:
	case O_LEVEL:
	case O_OPTSTR:
	case O_OPTPATH:
		/* A password is a secret: say only whether one is set. */
		snprintf(buf, n, "\"%s\"",
			 strstr(o->path, "password") && **(char *const *)src ? "********"
									     : *(char *const *)src);
		break;
	case O_INT:
		snprintf(buf, n, "%lld", (long long)*(const int64_t *)src);
		break;
	case O_EPOCH:
	case O_DURATION:
		v = *(const int64_t *)src;
		if (o->type == O_EPOCH && v == 0)
			snprintf(buf, n, "never");
		else
			fmt_duration(v, buf, n);
		break;
	case O_BOOL:
		snprintf(buf, n, "%s", *(const bool *)src ? "true" : "false");
		break;
	case O_KIND:
		snprintf(buf, n, "%s", kn_id_kind_name((enum kn_id_kind) * (const int64_t *)src));
		break;
	case O_PRF:
		snprintf(buf, n, "%s", kn_prf_name(*(const enum kn_prf *)src));
		break;
	case O_DATE: {
		time_t t = (time_t)(*(const int64_t *)src / 1000);
		struct tm tm;
		gmtime_r(&t, &tm);
		strftime(buf, n, "%Y-%m-%d", &tm);
		break;
	}
	}
}

static void print_props(FILE *f, const char *name, const struct kn_kv *kv, int n)
{
	fprintf(f, "  %s:%s\n", name, n ? "" : " {}");
	for (int i = 0; i < n; i++)
		fprintf(f, "    %s: \"%s\"\n", kv[i].key,
			kn_config_is_secret(kv[i].key) ? "********" : kv[i].value);
}

static void print_aggs(const struct kn_config *c, FILE *f)
{
	fprintf(f, "aggregates:%s\n", c->n_aggs ? "" : " []");
	for (int i = 0; i < c->n_aggs; i++) {
		const struct kn_agg_cfg *a = &c->aggs[i];
		fprintf(f, "  - name: %s\n    k: %lld\n    geo_precision: %lld\n    dimensions: [",
			a->name, (long long)a->k, (long long)a->geo_precision);
		for (int d = 0, first = 1; d < KN_DIMS; d++)
			if (a->dims & (1u << d)) {
				fprintf(f, "%s%s", first ? "" : ", ", kn_dim_name(d));
				first = 0;
			}
		fprintf(f, "]\n");
	}
}

void kn_config_print(const struct kn_config *c, FILE *f)
{
	char section[64] = "", val[512];

	fprintf(f, "# effective configuration of %s (secrets masked)\n", c->path);
	for (size_t i = 0; i < N_OPTS; i++) {
		const struct opt *o = &table[i];
		const char *dot = strchr(o->path, '.');
		size_t slen = (size_t)(dot - o->path);
		if (strlen(section) != slen || strncmp(section, o->path, slen)) {
			if (!strcmp(section, "kafka")) {
				print_props(f, "consumer", c->consumer, c->n_consumer);
				print_props(f, "producer", c->producer, c->n_producer);
			}
			snprintf(section, sizeof(section), "%.*s", (int)slen, o->path);
			fprintf(f, "%s:\n", section);
		}
		fmt_value(c, o, val, sizeof(val));
		fprintf(f, "  %s: %s\n", dot + 1, val);
	}
	fprintf(f, "inputs:\n");
	for (int i = 0; i < c->n_inputs; i++)
		fprintf(f, "  - {topic: \"%s\", type: %s}\n", c->inputs[i].topic,
			kn_event_type_name(c->inputs[i].type));
	fprintf(f, "schemas:\n");
	for (int i = 0; i < c->n_schemas; i++) {
		const struct kn_schema_cfg *s = &c->schemas[i];
		if (s->id >= 0)
			fprintf(f, "  - id: %d\n   ", (int)s->id);
		else
			fprintf(f, "  -"); /* ids from the schema registry */
		fprintf(f, " type: %s\n    file: \"%s\"\n    roles:\n", kn_event_type_name(s->type),
			s->file);
		for (int r = 0; r < KN_ROLE_COUNT; r++)
			if (s->roles[r])
				fprintf(f, "      %s: %s\n", kn_roles[r].name, s->roles[r]);
	}
	print_aggs(c, f);
}

void kn_config_describe(FILE *f)
{
	static const char *tname[] = {
		"string", "path",   "integer", "duration", "duration|never", "bool",	  "prf",
		"date",	  "digits", "level",   "id kind",  "string|empty",   "path|empty"};

	fprintf(f, "Options (YAML path, type, default):\n");
	for (size_t i = 0; i < N_OPTS; i++) {
		fprintf(f, "  %-30s %-15s %-28s %s", table[i].path, tname[table[i].type],
			table[i].def, table[i].help);
		if (table[i].type == O_INT)
			fprintf(f, " [%lld..%lld]", (long long)table[i].min,
				(long long)table[i].max);
		fputc('\n', f);
	}
	fprintf(f, "  %-30s %-15s %-28s %s\n", "kafka.consumer.<property>", "string", "",
		"librdkafka consumer property, passed through");
	fprintf(f, "  %-30s %-15s %-28s %s\n", "kafka.producer.<property>", "string", "",
		"librdkafka producer property, passed through");
	fprintf(f, "\ninputs: list of {topic, type: device|access|search}\n");
	fprintf(f, "schemas: list of {id, file (.avsc), type, roles: {ROLE: field.path}}\n"
		   "  id may be left out with schema_registry.url: framing ids are then looked "
		   "up in the registry\n  and matched to the entry of the same record name\n");
	fprintf(f, "aggregates: list of {name, dimensions: [DIM...], k (default 50, >= 2), "
		   "geo_precision (default 4)}\n  dimensions: event_type geo_cell ip_prefix "
		   "os_family app_version url_domain query_category\n");
	fprintf(f, "\nRoles (what a schema field means to kanon):\n");
	for (int r = 0; r < KN_ROLE_COUNT; r++)
		fprintf(f, "  %-18s %s\n", kn_roles[r].name, kn_roles[r].help);
}

int kn_config_weaknesses(const struct kn_config *c, const char **out, int max)
{
	const struct {
		bool on;
		const char *what;
	} w[] = {
		{c->prf == KN_PRF_XXH3, "keys.prf is xxh3, which is not a cryptographic PRF: "
					"pseudonyms may be reversible"},
		{!c->epoch_ms, "keys.epoch is never: pseudonyms link one person across all time"},
		{c->link_kinds, "keys.link_kinds: one pseudonym links a person's identifier kinds"},
		{c->emit_scrubbed_query, "policy.emit_scrubbed_query: search text (scrubbed) "
					 "is emitted"},
		{c->dlq_include_payload, "dead_letter.include_payload: raw personal records "
					 "are copied into dead letters"},
		{c->registry_password[0] && !strncmp(c->registry_url, "http://", 7),
		 "schema_registry: the password goes over plain http:// (use https://)"},
		{c->minors_in_deid, "policy.minors_in_deid: minors' events reach the "
				    "de-identified stream (without identifiers)"},
		{c->missing_consent_allows, "policy.missing_consent_allows: events without a "
					    "consent field count as consenting"},
		{c->ads_optout_in_deid, "policy.ads_optout_in_deid: ad opt-outs reach the "
					"de-identified stream"},
		{c->allow_core_dumps, "security.allow_core_dumps: a core dump would hold raw "
				      "records"},
		{strcmp(c->sensitive_terms, "builtin") != 0,
		 "policy.sensitive_terms replaces the built-in list: events it does not name "
		 "are not withheld as sensitive"},
		{c->n_aggs && c->agg_mode == KN_AGG_K_ANONYMITY,
		 "aggregate.privacy.mode is k-anonymity: exact counts, open to differencing "
		 "between definitions, windows and summaries"},
		{c->n_aggs && c->agg_mode == KN_AGG_DP && c->agg_dp.epsilon > 2,
		 "aggregate.privacy.epsilon is above 2 per window"},
		{c->n_aggs && c->agg_mode == KN_AGG_DP && c->agg_dp.delta > 1e-5,
		 "aggregate.privacy.delta is above 1e-5: a group of one person may be released"},
	};
	int n = 0;

	for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++)
		if (w[i].on && n < max)
			out[n++] = w[i].what;
	return n;
}
