/* schema: the registry of input schemas this instance accepts, keyed by the
 * Confluent schema id in each message's framing. Each entry owns the avro-c
 * schema parsed from its .avsc and the decoder compiled for its roles.
 * Built once at start-up; read-only afterwards. */
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
	struct kn_decoder *dec;
};

struct kn_schemas;

/* Parses every schemas[] file of c and compiles its decoder. Returns 0, or a
 * negative errno with errstr naming the file (and line of the config entry). */
int kn_schemas_load(const struct kn_config *c, struct kn_schemas **out, char *errstr,
		    size_t errstr_size);
void kn_schemas_destroy(struct kn_schemas *s);

/* The entry for a schema id, or NULL. */
const struct kn_schema_entry *kn_schemas_find(const struct kn_schemas *s, int32_t id);
/* The entry whose schema equals schema (same canonical form), or NULL.
 * For container files, which carry their writer schema instead of an id. */
const struct kn_schema_entry *kn_schemas_match(const struct kn_schemas *s, avro_schema_t schema);
int kn_schemas_count(const struct kn_schemas *s);
const struct kn_schema_entry *kn_schemas_at(const struct kn_schemas *s, int i);

/* Reads and parses an .avsc file. Returns 0 or a negative errno (errstr set). */
int kn_schema_read_file(const char *path, avro_schema_t *out, char *errstr, size_t errstr_size);

#endif
