/* gen: deterministic synthetic DeviceLog / AccessLog / SearchLog records.
 *
 * Same seed, same records, byte for byte. The population is realistic on the
 * axes kanon cares about: users drawn from a Zipf law (a few heavy users,
 * a long tail), 1-3 devices each, home coordinates around real Chinese
 * cities, IPv4 and IPv6 addresses, phone numbers and emails written in the
 * varied ways people type them (so normalization matters), a few percent of
 * events without consent, some minors. Records are written by avro-c itself
 * (avro_value_write), framed for Kafka with the configured schema ids, or
 * with schema_registry.url with the ids the registry gives each input
 * schema registered under <topic>-value, and in container files of kanon's
 * own writer (cwriter.h) for --out-dir.
 *
 * Malformed records (--malformed) cover the dead-letter reasons: unframed,
 * unknown schema id, truncated Avro, latitude 999, a timestamp in the year
 * 3000, an empty value. */
#ifndef KN_GEN_H
#define KN_GEN_H

#include <stdint.h>

#include "config.h"

struct kn_gen_opts {
	uint64_t seed;
	int64_t count;	     /* good records per log type */
	int64_t users;	     /* population size */
	int64_t malformed;   /* extra malformed records per log type (Kafka only) */
	int64_t start_ms;    /* first event time */
	int64_t span_ms;     /* events spread over [start, start + span) */
	unsigned types;	     /* bit per enum kn_event_type */
	const char *out_dir; /* container files here, or NULL for Kafka */
	int64_t rate;	     /* Kafka: records/s over all types, 0: as fast as possible */
	int64_t pool;	     /* Kafka: the first pool good records of a type, sent again and
				again (0: every record made anew) */
};

struct kn_gen_result {
	int64_t written[KN_EV_TYPES];
	int64_t malformed[KN_EV_TYPES];
};

/* Generates to the config's input topics (the first topic, and the first
 * schema with an id, or with a registry the first schema, of each type) or
 * to <out_dir>/<type>.avro (the first schema of the type; the file's header
 * holds its .avsc as written).
 * Returns 0 or a negative errno with errstr set: -EINVAL when the config
 * cannot do it (no schema or topic of a type, a schema that does not fit),
 * -EIO when the registry refuses or cannot be asked, another when writing
 * or delivering fails. */
int kn_gen_run(const struct kn_config *c, const struct kn_gen_opts *o, struct kn_gen_result *res,
	       char *errstr, size_t errstr_size);

#endif
