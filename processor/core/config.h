/* config: the one YAML file, parsed against one declarative table.
 *
 * Every scalar option is a row of kn_config_table (config.c): dotted path,
 * type, range, default and help. The same table validates the file, applies
 * --set overrides, prints the effective config (`kanon check`) and documents
 * itself (`kanon check --describe`). librdkafka properties are not
 * re-invented: kafka.consumer.* and kafka.producer.* pass through verbatim.
 *
 * Values may reference the environment: ${VAR} or ${VAR:-default}.
 * Relative file paths are resolved against the config file's directory.
 * A key given twice in the file (in any mapping, or as one dotted path
 * spelled two ways) is an error, not a silent override; --set overrides.
 * Errors name the file, line, key and what is wrong. */
#ifndef KN_CONFIG_H
#define KN_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "dp.h"
#include "event.h"
#include "keys.h"

struct kn_kv {
	char *key;
	char *value;
};

struct kn_input_cfg {
	char *topic;
	enum kn_event_type type;
};

struct kn_schema_cfg {
	int32_t id; /* -1: none (registry mode: matched by record name) */
	char *file; /* resolved path */
	enum kn_event_type type;
	char *roles[KN_ROLE_COUNT]; /* dotted field path, or NULL */
	int line;
};

#define KN_AGGS_MAX	  64
#define KN_AGG_NAME_MAX	  64
#define KN_AGG_NAME_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-"

struct kn_agg_cfg {
	char *name;
	uint32_t dims; /* bit (1 << enum kn_dim) per dimension */
	int64_t geo_precision;
	int64_t k;
	int line;
};

/* run.role: which stages of the topology this process runs. */
enum kn_run_role {
	KN_RUN_ALL,
	KN_RUN_DEID,
	KN_RUN_BOUND,
	KN_RUN_RELEASE
};

struct kn_config {
	char *path;
	/* kafka */
	char *brokers;
	char *group_id;
	struct kn_kv *consumer;
	int n_consumer;
	struct kn_kv *producer;
	int n_producer;
	/* topics */
	char *topic_output;
	char *topic_dead_letter;
	int64_t deid_schema_id; /* framing id of output records */
	/* keys and pseudonymization */
	char *key_file;
	enum kn_prf prf;
	int64_t epoch_ms; /* 0: a single epoch 0 (pseudonyms link across time) */
	bool link_kinds;
	int64_t key_retention_ms; /* 0: keys are never destroyed automatically */
	char *phone_region;
	/* generalization */
	int64_t geohash_precision;
	int64_t ipv4_prefix;
	int64_t ipv6_prefix;
	int64_t time_bucket_ms;
	/* validation */
	int64_t ts_min_ms;
	int64_t ts_max_future_ms;
	int64_t max_field_bytes;
	bool dlq_include_payload;
	bool allow_core_dumps;
	/* run loop */
	int64_t batch_size;
	int64_t prefetch_mb; /* consumer prefetch budget (kafka_conf.c derives from it) */
	int64_t commit_interval_ms;
	int64_t max_in_flight;
	int64_t assign_wait_ms;	  /* --until-eof: how long to wait without partitions */
	int64_t workers;	  /* run.workers: pipeline threads (0: one per core) */
	char *guarantee_name;	  /* run.guarantee as written */
	bool exactly_once;	  /* run.guarantee, resolved: the run loop's commit strategy */
	int64_t stall_timeout_ms; /* /healthz: no progress this long while input waits */
	/* schema registry (io/registry.h); url "" = the static ids only */
	char *registry_url;
	char *registry_username;
	char *registry_password; /* a secret: never printed */
	char *registry_ca_file, *registry_cert_file, *registry_key_file; /* "" = unset */
	int64_t registry_timeout_ms;
	int64_t registry_startup_wait_ms;
	bool registry_register; /* register outputs, or only look their ids up */
	char *log_level;
	/* deletion requests */
	bool erasure_enabled;
	char *erasure_requests_topic;
	char *erasure_state_topic;
	/* privacy policy */
	int64_t minor_age;
	bool unknown_age_is_minor;
	bool minors_in_deid;
	bool missing_consent_allows;
	bool ads_optout_in_deid;
	bool emit_scrubbed_query;
	char *sensitive_terms; /* path or "builtin" */
	char *query_taxonomy;  /* path or "builtin" */
	/* aggregation (exactly-once mode, on when aggregates are defined) */
	char *agg_topic;
	char *agg_stats_topic;
	int64_t agg_schema_id;
	int64_t agg_stats_schema_id;
	char *transactional_id;
	int64_t agg_window_ms;
	int64_t agg_lateness_ms;
	int64_t agg_person; /* enum kn_id_kind */
	int64_t agg_max_events;
	int64_t agg_max_groups;
	char *agg_mode_name, *agg_epsilon, *agg_delta;
	int agg_mode;		    /* enum kn_agg_mode */
	struct kn_dp_params agg_dp; /* derived by the loader (mode dp) */
	char *release_scope;	    /* the transactional id: binds the noise */
	int64_t agg_max_state_bytes;
	int64_t agg_idle_ms;
	/* the aggregation topology (engine/stage.h) */
	char *role_name;	       /* run.role as written */
	int role;		       /* enum kn_run_role */
	char *instance;		       /* run.instance, resolved (the host name by default) */
	char *contrib_topic;	       /* deid -> bound: contributions, keyed by person */
	char *partials_topic;	       /* bound -> release: partial tallies, keyed by group */
	int64_t contrib_partitions;    /* when kanon creates it */
	int64_t partials_partitions;   /* when kanon creates it */
	int64_t internal_retention_ms; /* retention.ms of both */
	struct kn_agg_cfg *aggs;
	int n_aggs;

	struct kn_input_cfg *inputs;
	int n_inputs;
	struct kn_schema_cfg *schemas;
	int n_schemas;
};

/* Loads path, then applies overrides ("a.b=value", n_overrides of them).
 * Returns 0, or -EINVAL/-ENOENT/-ENOMEM with errstr like
 * "kanon.yaml:12: generalize.geohash_precision: must be 1..12 (got 40)". */
int kn_config_load(const char *path, const char *const *overrides, int n_overrides,
		   struct kn_config **out, char *errstr, size_t errstr_size);
void kn_config_destroy(struct kn_config *c);

/* Prints the effective configuration as YAML; secrets in kafka properties
 * are masked. */
void kn_config_print(const struct kn_config *c, FILE *f);
/* Prints every option with its type, range, default and help. */
void kn_config_describe(FILE *f);

/* The options in force that weaken the privacy promise, as one sentence
 * each (at most max into out). Returns how many. */
int kn_config_weaknesses(const struct kn_config *c, const char **out, int max);

/* True for librdkafka property names that hold secrets (passwords, keys). */
bool kn_config_is_secret(const char *kafka_prop);

/* Parses "250ms", "30s", "5m", "1h", "1d" (or plain milliseconds).
 * Returns 0 or -EINVAL. */
int kn_parse_duration(const char *s, int64_t *ms);

#endif
