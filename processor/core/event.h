/* event: what the pipeline stages pass to each other.
 *
 * A decoded input record is a struct kn_event: one slot per *role* (what a
 * field means to kanon), not per schema field. The decoder fills the slots
 * from whatever field the config maps to each role, so every later stage is
 * schema-independent. String slots point into the Kafka message buffer
 * (zero-copy): a kn_event is valid only while that buffer lives.
 *
 * The de-identified result is a struct kn_deid: only generalized values and
 * pseudonyms, in fixed-size inline buffers so a batch of them never touches
 * the heap. */
#ifndef KN_EVENT_H
#define KN_EVENT_H

#include <stdbool.h>
#include <stdint.h>

/* Identifier kinds: each is normalized its own way and pseudonymized under
 * its own derived key (domain separation). */
enum kn_id_kind {
	KN_ID_USER,
	KN_ID_DEVICE,
	KN_ID_PHONE,
	KN_ID_EMAIL,
	KN_ID_COOKIE,
	KN_ID_KINDS
};

const char *kn_id_kind_name(enum kn_id_kind kind);

/* Roles a schema field can play. Identifier roles come first, in kn_id_kind
 * order, so KN_ROLE_ID_FIRST + kind is the role of that identifier. */
enum kn_role {
	KN_ROLE_ID_USER,
	KN_ROLE_ID_DEVICE,
	KN_ROLE_ID_PHONE,
	KN_ROLE_ID_EMAIL,
	KN_ROLE_ID_COOKIE,
	KN_ROLE_EVENT_ID,
	KN_ROLE_TIMESTAMP,
	KN_ROLE_IP,
	KN_ROLE_LAT,
	KN_ROLE_LON,
	KN_ROLE_USER_AGENT,
	KN_ROLE_OS,
	KN_ROLE_APP_VERSION,
	KN_ROLE_URL,
	KN_ROLE_REFERRER,
	KN_ROLE_CLICKED_URL,
	KN_ROLE_QUERY,
	KN_ROLE_STATUS,
	KN_ROLE_BYTES,
	KN_ROLE_BIRTH_YEAR,
	KN_ROLE_CONSENT_LOCATION,
	KN_ROLE_CONSENT_ADS,
	KN_ROLE_CONSENT_ANALYTICS,
	KN_ROLE_COUNT
};

#define KN_ROLE_ID_FIRST KN_ROLE_ID_USER

/* What Avro type family a role accepts (checked when the config is loaded). */
enum kn_val_type {
	KN_VAL_ABSENT = 0, /* role not mapped, or field not decoded */
	KN_VAL_NULL,	   /* mapped field held null */
	KN_VAL_STR,
	KN_VAL_LONG, /* int or long */
	KN_VAL_DOUBLE,
	KN_VAL_BOOL,
};

struct kn_role_info {
	const char *name;      /* config key under schemas[].roles */
	enum kn_val_type type; /* required family */
	const char *help;
};

/* Table of all roles, indexed by enum kn_role. */
extern const struct kn_role_info kn_roles[KN_ROLE_COUNT];
/* Returns the role named name, or -1. */
int kn_role_by_name(const char *name);

struct kn_val {
	enum kn_val_type type;
	union {
		struct {
			const char *p; /* not NUL-terminated; points into the message */
			uint32_t len;
		} s;
		int64_t l;
		double d;
		bool b;
	};
};

enum kn_event_type {
	KN_EV_DEVICE,
	KN_EV_ACCESS,
	KN_EV_SEARCH,
	KN_EV_TYPES
};
const char *kn_event_type_name(enum kn_event_type t);
int kn_event_type_by_name(const char *name); /* -1 if unknown */

struct kn_event {
	enum kn_event_type type;
	int32_t schema_id;
	struct kn_val role[KN_ROLE_COUNT];
};

/* Sizes of the inline output buffers; the generalizers never write more. */
#define KN_PID_HEX_LEN 32 /* 128-bit pseudonym as lower-case hex */
#define KN_GEOHASH_MAX 12
#define KN_PREFIX_MAX  64  /* "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128" fits */
#define KN_HOST_MAX    253 /* DNS name limit */
#define KN_FAMILY_MAX  24
#define KN_QUERY_MAX   1024 /* = KN_SCRUB_MAX */
#define KN_VERSION_MAX 24

struct kn_deid {
	enum kn_event_type type;
	int64_t time_bucket_ms; /* start of the bucket, UTC */
	int64_t bucket_size_ms;
	int64_t key_epoch;
	bool has_event_key;
	char event_key[KN_PID_HEX_LEN + 1];
	bool has_pid[KN_ID_KINDS];
	char pid[KN_ID_KINDS][KN_PID_HEX_LEN + 1];
	char geo_cell[KN_GEOHASH_MAX + 1];     /* "" when absent */
	char ip_prefix[KN_PREFIX_MAX];	       /* "" when absent */
	char ua_browser[KN_FAMILY_MAX];	       /* "" when no UA */
	int32_t ua_browser_major;	       /* -1 when unknown */
	char os_family[KN_FAMILY_MAX];	       /* "" when unknown */
	int32_t os_major;		       /* -1 when unknown */
	char app_version[KN_VERSION_MAX];      /* major.minor, "" when absent */
	char url_domain[KN_HOST_MAX + 1];      /* "" when absent */
	char referrer_domain[KN_HOST_MAX + 1]; /* "" when absent */
	int32_t http_status;		       /* -1 when absent */
	int8_t consent_ads;		       /* -1 unknown, 0/1 */
	int8_t consent_analytics;	       /* -1 unknown, 0/1 */
	char query_category[KN_FAMILY_MAX];    /* "" when no query; "withheld" */
	char query[KN_QUERY_MAX];	       /* scrubbed; emitted only if configured */
	bool emit_query;
	/* Policy marks, never emitted. */
	bool minor;	/* identifiers removed; never aggregated */
	bool sensitive; /* query and URLs withheld; never an aggregation dimension */
};

#endif
