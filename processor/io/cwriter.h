/* cwriter: writes Avro object container files, for `kanon process` and
 * `kanon gen --out-dir`.
 *
 * Why not avro-c's file writer: it writes into the header the schema as
 * avro-c re-serializes it, which drops every `logicalType`, `default` and
 * `doc` (Debian's avro-c 1.11). Readers that trust the file's schema
 * (fastavro, Spark, Hive, avro-tools) then see DeidEvent.time_bucket as a
 * plain long instead of a timestamp. This writer puts the schema text it is
 * given into the header byte for byte.
 *
 * Records arrive already encoded (Avro binary, no framing); a block is
 * written when it reaches 64 KiB, so memory stays bounded. The sync marker
 * is random per file, as the specification asks.
 *
 * Not thread-safe; one writer per file. */
#ifndef KN_CWRITER_H
#define KN_CWRITER_H

#include <stddef.h>
#include <stdio.h>

struct kn_cwriter;

/* Writes the header (magic, avro.schema = schema_json as given, avro.codec,
 * sync marker) to fp and returns the writer in *out. codec is "null" or
 * "deflate". fp stays the caller's: it flushes and closes it after
 * kn_cwriter_close, so that it sees whether the disk took the last bytes.
 * The caller checks that schema_json is a valid schema. Returns 0, -EINVAL
 * for an unknown codec, -ENOMEM, or the write's -errno. */
int kn_cwriter_open(FILE *fp, const char *schema_json, const char *codec, struct kn_cwriter **out);

/* Appends one encoded record. Returns 0, or the first failure (-errno) of
 * this writer, which stays: a later call fails the same way. */
int kn_cwriter_append(struct kn_cwriter *w, const void *datum, size_t len);

/* Writes the last block and frees w (NULL is fine). Returns 0, or the
 * first failure of this writer. */
int kn_cwriter_close(struct kn_cwriter *w);

#endif
