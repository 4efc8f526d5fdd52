/* schema: the input schemas this instance accepts, keyed by the Confluent
 * schema id in each message's framing. Each entry owns its avro-c schema and
 * the decoder compiled for its roles.
 *
 * The configured schemas (schemas[] in the config) are loaded at start-up.
 * With a Schema Registry, more entries are learned while running: the writer
 * schema behind a new framing id is fetched (by the engine, engine/sreg.h)
 * and handed to kn_schemas_learn, which matches it to the configured schema
 * of the same record name and compiles a decoder for the writer's own layout
 * with that schema's roles. An id that cannot be used is learned too, as an
 * entry without a decoder and with the reason, so that its records become
 * dead letters without asking again. An id the registry said it lacks is
 * kept apart (KN_SCHEMAS_REFUSED_MAX, oldest replaced first) with a time to
 * ask again, since registries that replicate can lag behind the producer.
 *
 * Threads: lookups may come from any thread; learning and refusing only
 * while no other thread looks up (the run loop does it between batches,
 * with its workers parked). */
#ifndef KN_SCHEMA_H
#define KN_SCHEMA_H

#include <avro.h>
#include <stddef.h>

#include "config.h"
#include "decode.h"

struct kn_schema_entry {
	int32_t id;
	enum kn_event_type type;
	avro_schema_t schema;
	struct kn_decoder *dec; /* NULL: records of this id are dead letters ... */
	const char *why;	/* ... with this static detail */
	int64_t retry_at_ms;	/* refused for now: ask again from then (mono ms); 0: never */
};

/* Learned ids beyond the configured ones (a subject's versions over time),
 * and ids refused for now (garbage ids are bounded too). */
#define KN_SCHEMAS_LEARN_MAX   1024
#define KN_SCHEMAS_REFUSED_MAX 256

struct kn_schemas;

/* Parses every schemas[] file of c and compiles its decoder. Returns 0, or a
 * negative errno with errstr naming the file (and line of the config entry). */
int kn_schemas_load(const struct kn_config *c, struct kn_schemas **out, char *errstr,
		    size_t errstr_size);
void kn_schemas_destroy(struct kn_schemas *s);

/* The entry for a schema id (configured or learned), or NULL. */
const struct kn_schema_entry *kn_schemas_find(const struct kn_schemas *s, int32_t id);
/* The entry whose schema equals schema (same canonical form), or NULL.
 * For container files, which carry their writer schema instead of an id. */
const struct kn_schema_entry *kn_schemas_match(const struct kn_schemas *s, avro_schema_t schema);
/* Learns the writer schema json (the registry's text) under id, in place of
 * a refusal for now. Returns 0 with the entry added (with a decoder, or
 * without one and why set: *warn then says what is wrong with it, for the
 * log), -EEXIST when id is known otherwise, -ENOSPC when
 * KN_SCHEMAS_LEARN_MAX ids were learned, -ENOMEM. */
int kn_schemas_learn(struct kn_schemas *s, int32_t id, const char *json, char *warn,
		     size_t warn_size);
/* Refuses id: its records are dead letters with why (static), until
 * retry_at_ms (mono ms) when it is worth asking again (0: for good). A
 * refusal for now replaces the oldest one when KN_SCHEMAS_REFUSED_MAX are
 * held. Returns 0, or -EEXIST when id is learned or configured. */
int kn_schemas_refuse(struct kn_schemas *s, int32_t id, const char *why, int64_t retry_at_ms);
/* The configured schemas (schemas[], in order): entries 0..count-1. */
int kn_schemas_count(const struct kn_schemas *s);
/* Configured and learned. */
int kn_schemas_total(const struct kn_schemas *s);
const struct kn_schema_entry *kn_schemas_at(const struct kn_schemas *s, int i);

/* Reads and parses an .avsc file. With text, *text is the file as written
 * (NUL-terminated, the caller's to kn_free), for a container file's header.
 * Returns 0 or a negative errno (errstr set). */
int kn_schema_read_file(const char *path, avro_schema_t *out, char **text, char *errstr,
			size_t errstr_size);

#endif
