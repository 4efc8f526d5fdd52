/* container: reads Avro object container files block by block, for
 * `kanon process`.
 *
 * Why not avro-c's file reader: one damaged byte ends the whole file there
 * (it cannot skip to the next block), a block of no records makes it replay
 * the block before, and Debian's avro-c 1.11 grows its deflate and lzma
 * buffers without bound (a few megabytes of input can ask for all memory).
 * This reader:
 *  - checks every block's frame (record count, byte size, sync marker) and,
 *    when one is damaged, reports the unreadable byte range and resumes at
 *    the next sync marker, so that one bad block costs only its own records
 *    (a pipe cannot be searched: there the damage runs to the end);
 *  - decompresses the codecs of the Avro specification (null, deflate,
 *    snappy, bzip2, xz, zstandard) and avro-c's own "lzma", each bounded by
 *    KN_BLOCK_MAX decompressed bytes per block.
 * It does not split a block into records: only a decoder for the writer
 * schema knows where one ends (decode.h: kn_decoder_decode_prefix).
 *
 * Not thread-safe; one reader per file. */
#ifndef KN_CONTAINER_H
#define KN_CONTAINER_H

#include <avro.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* The largest block, compressed or not. Writers flush every 16-64 KiB by
 * default (avro-c, fastavro, Java); a block above this is taken as damage. */
#define KN_BLOCK_MAX (256u << 20)

struct kn_container;

struct kn_block {
	int64_t offset;	     /* of the block's first byte in the file */
	int64_t size;	     /* bytes it takes in the file, sync marker included */
	int64_t count;	     /* records the block says it holds (>= 0) */
	const uint8_t *data; /* decompressed; valid until the next call */
	size_t len;
};

struct kn_damage {
	int64_t offset;	 /* first unreadable byte */
	int64_t length;	 /* -1: up to the end of the input */
	int64_t records; /* the records it held: a block whose frame is sound but
			  * whose data does not decompress; -1: not known */
	char why[192];
};

/* Opens path (a regular file, or a pipe read once) and reads its header:
 * magic, metadata, sync marker. Returns 0, or a negative errno with errstr:
 * -ENOENT/-EACCES/... the file, -EBADMSG not a container file kanon can
 * read (bad magic, no or bad avro.schema, unknown avro.codec). */
int kn_container_open(const char *path, struct kn_container **out, char *errstr,
		      size_t errstr_size);

/* The same over an open stream, which c then owns (closed also on failure);
 * name is for messages. For tests and the fuzz target (fmemopen). */
int kn_container_open_stream(FILE *fp, const char *name, struct kn_container **out, char *errstr,
			     size_t errstr_size);

/* The writer schema from the header; borrowed, lives as long as c. */
avro_schema_t kn_container_schema(const struct kn_container *c);
const char *kn_container_codec(const struct kn_container *c);

/* The next block. Returns 1 with *b filled; 0 at the end of the input; 2
 * when bytes could not be read as a block: *d says which and why, and the
 * next call resumes after them. -EIO (errstr) when reading itself failed. */
int kn_container_next(struct kn_container *c, struct kn_block *b, struct kn_damage *d, char *errstr,
		      size_t errstr_size);

void kn_container_close(struct kn_container *c); /* NULL is fine */

#endif
