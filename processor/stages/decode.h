/* decode: Avro binary datum -> struct kn_event, driven by a compiled schema.
 *
 * avro-c stays the source of truth for schemas: it parses the .avsc and we
 * walk its avro_schema_t once, at start-up, to build a small decode tree in
 * which every field that plays a role (config: schemas[].roles) knows its
 * slot in struct kn_event. Decoding then walks the tree over the raw bytes:
 * no allocation, strings are views into the input, fields without a role are
 * skipped (still checked item by item: a block size the writer gave must
 * match its items).
 *
 * Every read is bounds-checked; malformed input returns an error with a
 * static reason string and never reads outside [buf, buf+len). */
#ifndef KN_DECODE_H
#define KN_DECODE_H

#include <avro.h>
#include <stddef.h>
#include <stdint.h>

#include "event.h"

struct kn_decoder;

/* Compiles schema (borrowed; the decoder takes its own reference) for the given
 * role paths: role_paths[r] is a dotted field path ("consent.location") or
 * NULL when role r is not mapped. Unions are transparent in paths.
 * Returns 0, or -EINVAL with errstr naming the role and path. */
int kn_decoder_new(avro_schema_t schema, const char *const role_paths[KN_ROLE_COUNT],
		   struct kn_decoder **out, char *errstr, size_t errstr_size);
void kn_decoder_destroy(struct kn_decoder *d);

/* Decodes exactly one datum that must span all of buf[0..len). Resets every
 * role slot of ev first (unmapped roles are KN_VAL_ABSENT). Returns 0, or
 * -EBADMSG with *why set to a static reason ("truncated", "trailing bytes",
 * ...). Strings in ev point into buf. */
int kn_decoder_decode(const struct kn_decoder *d, const uint8_t *buf, size_t len,
		      struct kn_event *ev, const char **why);

/* The same for a datum at the start of buf[0..len) that other data may
 * follow (the records of an Avro container block): *used says where it
 * ends. */
int kn_decoder_decode_prefix(const struct kn_decoder *d, const uint8_t *buf, size_t len,
			     struct kn_event *ev, size_t *used, const char **why);

#endif
