#include "container.h"

#include <bzlib.h>
#include <errno.h>
#include <lzma.h>
#include <snappy-c.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>
#include <zstd.h>

#include "kn_alloc.h"
#include "log.h"

enum codec {
	C_NULL,
	C_DEFLATE,
	C_SNAPPY,
	C_BZIP2,
	C_XZ,
	C_LZMA,
	C_ZSTD,
	C_COUNT
};

static const char *const codec_names[C_COUNT] = {"null", "deflate", "snappy",	"bzip2",
						 "xz",	 "lzma",    "zstandard"};

struct kn_container {
	FILE *fp;
	bool seekable; /* a regular file: damage can be skipped */
	bool done;     /* damage ran to the end */
	enum codec codec;
	avro_schema_t schema;
	uint8_t sync[16];
	int64_t pos; /* offset of the next byte fp gives */
	uint8_t *in; /* a block as stored */
	size_t in_cap;
	uint8_t *out; /* a block decompressed */
	size_t out_cap;
	size_t limit;	  /* what the block being decompressed may grow to */
	int64_t inflated; /* bytes decompressed so far, for the budget */
	z_stream z;
	bool z_ready;
	ZSTD_DCtx *zstd;
};

/* What a whole file may decompress to: a bzip2 block of 242 bytes takes a
 * second to grow to 256 MiB, so the cap per block alone would let a small
 * file take hours. Real files compress their records 3 to 30 times. */
#define BUDGET_BASE  (1ll << 30)
#define BUDGET_RATIO 200

/* ---- reading, with the offset kept by hand (ftello fails on a pipe) ---- */

static int rd(struct kn_container *c, void *buf, size_t n)
{
	size_t got = fread(buf, 1, n, c->fp);

	c->pos += (int64_t)got;
	return got == n ? 0 : -1;
}

/* An Avro long (zig-zag varint); -1 at the end or when longer than 10 bytes. */
static int rd_long(struct kn_container *c, int64_t *v)
{
	uint64_t u = 0;

	for (int shift = 0; shift < 70; shift += 7) {
		int ch = getc(c->fp);
		if (ch == EOF)
			return -1;
		c->pos++;
		u |= (uint64_t)(ch & 0x7f) << shift;
		if (!(ch & 0x80)) {
			*v = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
			return 0;
		}
	}
	return -1;
}

static int skip(struct kn_container *c, int64_t n)
{
	char buf[4096];

	if (c->seekable) {
		if (fseeko(c->fp, n, SEEK_CUR))
			return -1;
		c->pos += n;
		return 0;
	}
	for (; n > 0; n -= (int64_t)sizeof(buf))
		if (rd(c, buf, n < (int64_t)sizeof(buf) ? (size_t)n : sizeof(buf)))
			return -1;
	return 0;
}

/* ---- the header ---- */

/* One metadata entry; keeps avro.schema and avro.codec, skips the rest. */
static const char *header_entry(struct kn_container *c, char **schema, int64_t *schema_len,
				char codec[16])
{
	char key[16] = "";
	int64_t klen, vlen;

	if (rd_long(c, &klen) || klen < 0 || klen > KN_BLOCK_MAX)
		return "bad metadata key";
	if (klen < (int64_t)sizeof(key) ? rd(c, key, (size_t)klen) : skip(c, klen))
		return "truncated metadata";
	if (rd_long(c, &vlen) || vlen < 0 || vlen > KN_BLOCK_MAX)
		return "bad metadata value";
	if (klen == 11 && !memcmp(key, "avro.schema", 11)) {
		char *v = kn_malloc((size_t)vlen + 1);
		const char *why = NULL;
		if (!v)
			return "out of memory";
		if (rd(c, v, (size_t)vlen))
			why = "truncated metadata";
		/* Written twice (other readers take either): fine if the same. */
		else if (*schema && (*schema_len != vlen || memcmp(*schema, v, (size_t)vlen)))
			why = "two different avro.schema entries";
		if (why || *schema) {
			kn_free(v);
			return why;
		}
		*schema = v;
		*schema_len = vlen;
		return NULL;
	}
	if (klen == 10 && !memcmp(key, "avro.codec", 10)) {
		if (vlen >= 16)
			return "unknown avro.codec";
		memset(codec, 0, 16);
		return rd(c, codec, (size_t)vlen) ? "truncated metadata" : NULL;
	}
	return skip(c, vlen) ? "truncated metadata" : NULL;
}

static const char *read_header(struct kn_container *c, char **schema, int64_t *schema_len,
			       char codec[16])
{
	char magic[4];
	int64_t n, bytes;
	const char *why;

	if (rd(c, magic, 4) || memcmp(magic, "Obj\x01", 4))
		return "not an Avro container file (no 'Obj' magic)";
	while (!rd_long(c, &n) && n) {
		if (n < 0 && (n == INT64_MIN || (n = -n, rd_long(c, &bytes))))
			return "bad metadata block";
		for (int64_t i = 0; i < n; i++)
			if ((why = header_entry(c, schema, schema_len, codec)))
				return why;
	}
	if (rd(c, c->sync, 16))
		return "truncated header";
	if (!*schema)
		return "no avro.schema in the header";
	return NULL;
}

int kn_container_open_stream(FILE *fp, const char *name, struct kn_container **out, char *errstr,
			     size_t errstr_size)
{
	struct kn_container *c = kn_calloc(1, sizeof(*c));
	char *json = NULL, codec[16] = "null";
	int64_t json_len = 0;
	const char *why;

	*out = NULL;
	if (!c) {
		fclose(fp);
		return -ENOMEM;
	}
	c->fp = fp;
	/* A regular file (or a block device): damage can be searched past. */
	c->seekable = !fseeko(c->fp, 0, SEEK_CUR);
	if ((why = read_header(c, &json, &json_len, codec))) {
		snprintf(errstr, errstr_size, "%s: %s", name, why);
		goto fail;
	}
	c->codec = C_COUNT;
	for (int i = 0; i < C_COUNT; i++)
		if (!strcmp(codec, codec_names[i]) || (!*codec && i == C_NULL))
			c->codec = (enum codec)i;
	if (c->codec == C_COUNT) {
		for (char *p = codec; *p; p++) /* the name is the file's: print it tamed */
			if (*p < 0x20 || *p > 0x7e)
				*p = '?';
		snprintf(errstr, errstr_size,
			 "%s: avro.codec '%.15s' is not one kanon reads (null, deflate, snappy, "
			 "bzip2, xz, zstandard, lzma)",
			 name, codec);
		goto fail;
	}
	if (avro_schema_from_json_length(json, (size_t)json_len, &c->schema)) {
		/* avro-c quotes the file's schema text back: tamed */
		snprintf(errstr, errstr_size, "%s: avro.schema: %s", name, avro_strerror());
		kn_log_tame(errstr);
		goto fail;
	}
	kn_free(json);
	*out = c;
	return 0;
fail:
	kn_free(json);
	kn_container_close(c);
	return -EBADMSG;
}

int kn_container_open(const char *path, struct kn_container **out, char *errstr, size_t errstr_size)
{
	FILE *fp = fopen(path, "rb");
	struct stat st;

	*out = NULL;
	if (fp && !fstat(fileno(fp), &st) && S_ISDIR(st.st_mode)) { /* fopen takes one */
		fclose(fp);
		fp = NULL;
		errno = EISDIR;
	}
	if (!fp) {
		int err = errno;
		snprintf(errstr, errstr_size, "%s: %s", path, strerror(err));
		return -err;
	}
	return kn_container_open_stream(fp, path, out, errstr, errstr_size);
}

avro_schema_t kn_container_schema(const struct kn_container *c)
{
	return c->schema;
}

const char *kn_container_codec(const struct kn_container *c)
{
	return codec_names[c->codec];
}

void kn_container_close(struct kn_container *c)
{
	if (!c)
		return;
	if (c->fp)
		fclose(c->fp);
	if (c->schema)
		avro_schema_decref(c->schema);
	if (c->z_ready)
		inflateEnd(&c->z);
	ZSTD_freeDCtx(c->zstd);
	kn_free(c->in);
	kn_free(c->out);
	kn_free(c);
}

/* ---- decompression, bounded per block (KN_BLOCK_MAX) and per file ---- */

#define TOO_BIG	    "decompresses to more than 256 MiB"
#define OVER_BUDGET "decompresses past the file's budget (1 GiB + 200 times its size)"

/* The output space a block may fill: the buffer, up to the block's limit. */
static size_t room(const struct kn_container *c)
{
	return c->out_cap < c->limit ? c->out_cap : c->limit;
}

/* Doubles the output buffer; a reason when it may not grow. */
static const char *more_room(struct kn_container *c)
{
	size_t cap = c->out_cap ? c->out_cap * 2 : 64 * 1024;
	uint8_t *p;

	if (c->out_cap >= c->limit)
		return c->limit < KN_BLOCK_MAX ? OVER_BUDGET : TOO_BIG;
	if (cap > c->limit)
		cap = c->limit;
	if (!(p = kn_realloc(c->out, cap)))
		return "out of memory";
	c->out = p;
	c->out_cap = cap;
	return NULL;
}

static const char *inflate_block(struct kn_container *c, const uint8_t *in, size_t n, size_t *len)
{
	z_stream *z = &c->z;
	const char *why;

	if (!c->z_ready) {
		memset(z, 0, sizeof(*z));
		if (inflateInit2(z, -15) != Z_OK) /* raw deflate (RFC 1951), as the spec says */
			return "deflate: zlib would not start";
		c->z_ready = true;
	} else if (inflateReset(z) != Z_OK) {
		return "deflate: zlib would not reset";
	}
	z->next_in = (Bytef *)in;
	z->avail_in = (uInt)n;
	for (*len = 0;;) {
		if (*len == room(c) && (why = more_room(c)))
			return why;
		z->next_out = c->out + *len;
		z->avail_out = (uInt)(room(c) - *len);
		int rc = inflate(z, Z_NO_FLUSH);
		*len = (size_t)(z->next_out - c->out);
		if (rc == Z_STREAM_END)
			return NULL;
		if (rc == Z_BUF_ERROR && z->avail_out)
			return "deflate: truncated data";
		if (rc != Z_OK && rc != Z_BUF_ERROR)
			return "deflate: corrupt data";
	}
}

/* Avro's snappy: the compressed block, then the CRC-32 of the uncompressed
 * bytes, big-endian. */
static const char *unsnappy_block(struct kn_container *c, const uint8_t *in, size_t n, size_t *len)
{
	const char *why;

	if (n < 4)
		return "snappy: no checksum";
	if (snappy_uncompressed_length((const char *)in, n - 4, len) != SNAPPY_OK)
		return "snappy: corrupt data";
	if (*len > c->limit)
		return c->limit < KN_BLOCK_MAX ? OVER_BUDGET : TOO_BIG;
	while (c->out_cap < *len)
		if ((why = more_room(c)))
			return why;
	if (snappy_uncompress((const char *)in, n - 4, (char *)c->out, len) != SNAPPY_OK)
		return "snappy: corrupt data";
	uint32_t crc = (uint32_t)crc32(0, c->out, (uInt)*len);
	const uint8_t *t = in + n - 4;
	if (crc != ((uint32_t)t[0] << 24 | (uint32_t)t[1] << 16 | (uint32_t)t[2] << 8 | t[3]))
		return "snappy: checksum mismatch";
	return NULL;
}

static const char *bunzip_block(struct kn_container *c, const uint8_t *in, size_t n, size_t *len)
{
	bz_stream s = {0};
	const char *why = NULL;

	if (BZ2_bzDecompressInit(&s, 0, 0) != BZ_OK)
		return "bzip2: libbz2 would not start";
	s.next_in = (char *)in;
	s.avail_in = (unsigned)n;
	for (*len = 0; !why;) {
		if (*len == room(c) && (why = more_room(c)))
			break;
		s.next_out = (char *)c->out + *len;
		s.avail_out = (unsigned)(room(c) - *len);
		int rc = BZ2_bzDecompress(&s);
		*len = (size_t)((uint8_t *)s.next_out - c->out);
		if (rc == BZ_STREAM_END)
			break;
		if (rc != BZ_OK)
			why = "bzip2: corrupt data";
		else if (!s.avail_in && s.avail_out)
			why = "bzip2: truncated data";
	}
	BZ2_bzDecompressEnd(&s);
	return why;
}

/* The memory xz may use: the largest preset's dictionary (64 MiB, xz -9)
 * and its working state; a header asking for more is refused. */
#define XZ_MEMLIMIT (80u << 20)

/* xz: the .xz format (Java's and fastavro's "xz"); lzma: avro-c's codec of
 * that name, raw LZMA2 with the default preset's dictionary. */
static const char *unxz_block(struct kn_container *c, const uint8_t *in, size_t n, size_t *len)
{
	lzma_stream s = LZMA_STREAM_INIT;
	lzma_options_lzma opt;
	const char *why = NULL;
	lzma_ret rc;

	if (c->codec == C_XZ) {
		rc = lzma_stream_decoder(&s, XZ_MEMLIMIT, LZMA_CONCATENATED);
	} else {
		lzma_lzma_preset(&opt, LZMA_PRESET_DEFAULT);
		lzma_filter f[2] = {{LZMA_FILTER_LZMA2, &opt}, {LZMA_VLI_UNKNOWN, NULL}};
		rc = lzma_raw_decoder(&s, f);
	}
	if (rc != LZMA_OK)
		return "xz: liblzma would not start";
	s.next_in = in;
	s.avail_in = n;
	for (*len = 0; !why;) {
		if (*len == room(c) && (why = more_room(c)))
			break;
		s.next_out = c->out + *len;
		s.avail_out = room(c) - *len;
		rc = lzma_code(&s, LZMA_FINISH);
		*len = (size_t)(s.next_out - c->out);
		if (rc == LZMA_STREAM_END)
			break;
		if (rc == LZMA_BUF_ERROR && s.avail_out)
			why = "xz: truncated data";
		else if (rc != LZMA_OK && rc != LZMA_BUF_ERROR)
			why = rc == LZMA_MEMLIMIT_ERROR ? "xz: needs a dictionary over 64 MiB"
							: "xz: corrupt data";
	}
	lzma_end(&s);
	return why;
}

static const char *unzstd_block(struct kn_container *c, const uint8_t *in, size_t n, size_t *len)
{
	ZSTD_inBuffer ib = {in, n, 0};
	const char *why;

	if (!c->zstd && !(c->zstd = ZSTD_createDCtx()))
		return "out of memory";
	ZSTD_DCtx_reset(c->zstd, ZSTD_reset_session_only);
	for (*len = 0;;) {
		if (*len == room(c) && (why = more_room(c)))
			return why;
		ZSTD_outBuffer ob = {c->out, room(c), *len};
		size_t rc = ZSTD_decompressStream(c->zstd, &ob, &ib);
		*len = ob.pos;
		if (ZSTD_isError(rc))
			return "zstandard: corrupt data";
		if (!rc && ib.pos == ib.size)
			return NULL;
		if (ib.pos == ib.size && ob.pos < ob.size)
			return "zstandard: truncated data";
	}
}

static const char *decompress(struct kn_container *c, size_t n, const uint8_t **data, size_t *len)
{
	const char *why;

	switch (c->codec) {
	case C_NULL:
		*data = c->in;
		*len = n;
		return NULL;
	case C_DEFLATE:
		why = inflate_block(c, c->in, n, len);
		break;
	case C_SNAPPY:
		why = unsnappy_block(c, c->in, n, len);
		break;
	case C_BZIP2:
		why = bunzip_block(c, c->in, n, len);
		break;
	case C_XZ:
	case C_LZMA:
		why = unxz_block(c, c->in, n, len);
		break;
	case C_ZSTD:
		why = unzstd_block(c, c->in, n, len);
		break;
	default:
		why = "unknown codec";
	}
	*data = c->out; /* only now: the buffer may have moved */
	return why;
}

/* ---- blocks ---- */

/* The offset just past the first sync marker at or after from; -1: none. */
static int64_t find_sync(struct kn_container *c, int64_t from)
{
	uint8_t buf[64 * 1024];
	size_t keep = 0, got;

	if (fseeko(c->fp, from, SEEK_SET))
		return -1;
	while ((got = fread(buf + keep, 1, sizeof(buf) - keep, c->fp)) > 0) {
		size_t have = keep + got;
		uint8_t *hit = memmem(buf, have, c->sync, 16);
		if (hit)
			return from - (int64_t)keep + (hit - buf) + 16;
		keep = have < 15 ? have : 15; /* a marker may straddle two reads */
		memmove(buf, buf + have - keep, keep);
		from += (int64_t)got;
	}
	return -1;
}

/* The frame at start is damaged: the damage runs to the next sync marker. */
static int damaged(struct kn_container *c, int64_t start, struct kn_damage *d, const char *why,
		   char *errstr, size_t errstr_size)
{
	if (ferror(c->fp)) {
		snprintf(errstr, errstr_size, "read error at offset %lld: %s", (long long)c->pos,
			 strerror(errno));
		return -EIO;
	}
	snprintf(d->why, sizeof(d->why), "%s", why);
	d->offset = start;
	d->records = -1;
	int64_t next = c->seekable ? find_sync(c, start + 1) : -1;
	if (next < 0 || fseeko(c->fp, next, SEEK_SET)) {
		d->length = -1;
		c->done = true;
		return 2;
	}
	d->length = next - start;
	c->pos = next;
	return 2;
}

/* On a file, the frame is checked before the payload is read: a forged
 * size (one per 22 bytes of input) must not make each damaged frame read
 * the rest of the file. */
static const char *check_frame(struct kn_container *c, int64_t size)
{
	uint8_t end[16];
	int64_t at = c->pos;

	if (fseeko(c->fp, size, SEEK_CUR) || fread(end, 1, 16, c->fp) != 16)
		return "truncated block";
	if (memcmp(end, c->sync, 16))
		return "no sync marker where the block ends";
	return fseeko(c->fp, at, SEEK_SET) ? "cannot seek" : NULL;
}

static const char *read_payload(struct kn_container *c, int64_t size)
{
	uint8_t end[16];
	const char *why;

	if (c->seekable && (why = check_frame(c, size)))
		return why;
	if ((size_t)size > c->in_cap) {
		uint8_t *p = kn_realloc(c->in, (size_t)size);
		if (!p)
			return "out of memory";
		c->in = p;
		c->in_cap = (size_t)size;
	}
	if (rd(c, c->in, (size_t)size))
		return "truncated block";
	if (rd(c, end, 16) || memcmp(end, c->sync, 16))
		return "no sync marker where the block ends";
	return NULL;
}

int kn_container_next(struct kn_container *c, struct kn_block *b, struct kn_damage *d, char *errstr,
		      size_t errstr_size)
{
	int64_t start = c->pos, size;
	const char *why;
	int ch;

	if (c->done || (ch = getc(c->fp)) == EOF)
		return c->done || !ferror(c->fp) ? 0
						 : damaged(c, start, d, "", errstr, errstr_size);
	ungetc(ch, c->fp);
	b->offset = start;
	if (rd_long(c, &b->count) || b->count < 0)
		return damaged(c, start, d, "bad record count", errstr, errstr_size);
	if (rd_long(c, &size) || size < 0 || size > KN_BLOCK_MAX)
		return damaged(c, start, d, "bad block size", errstr, errstr_size);
	if ((why = read_payload(c, size)))
		return damaged(c, start, d, why, errstr, errstr_size);
	b->size = c->pos - start;
	if (!b->count) { /* nothing to read (an empty deflate block may be 0 bytes) */
		b->data = c->in;
		b->len = 0;
		return 1;
	}
	int64_t budget = BUDGET_BASE + BUDGET_RATIO * c->pos - c->inflated;
	c->limit = budget <= 0 ? 0 : budget < KN_BLOCK_MAX ? (size_t)budget : KN_BLOCK_MAX;
	why = decompress(c, (size_t)size, &b->data, &b->len);
	c->inflated += (int64_t)b->len;
	if (why) {
		/* The frame is sound: the damage is this block, whose record
		 * count is known, and no more. */
		snprintf(d->why, sizeof(d->why), "%s", why);
		d->offset = start;
		d->length = b->size;
		d->records = b->count;
		return 2;
	}
	return 1;
}
