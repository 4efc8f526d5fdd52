#include "filemode.h"

#include <avro.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "container.h"
#include "cwriter.h"
#include "decode.h"
#include "run.h"
#include "schema.h"

struct fm {
	struct kn_stack st;	    /* no erasure: file mode has no Kafka */
	struct kn_schemas *schemas; /* = st.schemas */
	struct kn_pipeline *pipe;   /* = st.pipe */
	struct kn_schema_entry own; /* when the file's schema needs its own decoder */
	const struct kn_schema_entry *e;
	struct kn_container *in;
	struct kn_cwriter *writer;
	FILE *out_fp; /* the writer's stream, closed by us (fm_finish) */
	FILE *dead;
	const char *in_path, *out_path, *dead_path;
	/* Both are written under a temporary name beside them and renamed
	 * over OUT and DEAD only once complete, so an old file survives a
	 * failed run whole. A dead-letter path that is not a regular file
	 * (/dev/stderr, a FIFO) is written as it is: dead_tmp stays empty. */
	char out_tmp[PATH_MAX], dead_tmp[PATH_MAX], dead_real[PATH_MAX];
	struct kn_file_result *res;
	struct kn_event scratch; /* where a record is decoded to find its end */
	int64_t now;
	char *errstr;
	size_t errsz;
	int64_t lost;	      /* records known lost: in blocks that do not decompress or decode */
	int64_t losses;	      /* damaged parts: byte ranges and blocks */
	char first_loss[320]; /* what the first one was */
};

/* The config entry for the file's writer schema; may compile a decoder. */
static const struct kn_schema_entry *pick_schema(struct fm *f, const struct kn_config *c,
						 avro_schema_t ws, char *errstr, size_t errsz)
{
	const struct kn_schema_entry *e = kn_schemas_match(f->schemas, ws);
	const char *name = avro_schema_name(ws);

	if (e)
		return e;
	for (int i = 0; i < c->n_schemas; i++) {
		const struct kn_schema_entry *ce = kn_schemas_at(f->schemas, i);
		if (!name || strcmp(avro_schema_name(ce->schema), name))
			continue;
		f->own = *ce;
		if (kn_decoder_new(ws, (const char *const *)c->schemas[i].roles, &f->own.dec,
				   errstr, errsz))
			return NULL;
		return &f->own;
	}
	snprintf(errstr, errsz, "the file's schema (record '%s') matches no schema in %s",
		 name ? name : "?", c->path);
	return NULL;
}

/* The temporary files to remove should a signal end the run (SIGINT,
 * SIGTERM, SIGHUP): the handler unlinks them and dies of the signal. */
static const char *volatile doomed[2];

static void on_signal(int sig)
{
	for (int i = 0; i < 2; i++)
		if (doomed[i])
			unlink(doomed[i]);
	signal(sig, SIG_DFL);
	raise(sig);
}

static void catch_signals(struct sigaction old[3], bool on)
{
	static const int sigs[3] = {SIGINT, SIGTERM, SIGHUP};
	struct sigaction sa = {.sa_handler = on_signal};

	for (int i = 0; i < 3; i++)
		sigaction(sigs[i], on ? &sa : &old[i], on ? &old[i] : NULL);
}

/* "<path>.kanon-tmp-<pid>": beside path, so that rename() replaces it. */
static int tmp_name(char *buf, const char *path, char *errstr, size_t errsz)
{
	if (snprintf(buf, PATH_MAX, "%s.kanon-tmp-%ld", path, (long)getpid()) >= PATH_MAX) {
		snprintf(errstr, errsz, "%s: name too long", path);
		return -ENAMETOOLONG;
	}
	return 0;
}

/* The dead-letter file: under a temporary name if it is (or will be) a
 * regular file, else the stream itself. A symlink to a regular file is
 * followed, so that the file it names is replaced and the link stays. */
static int open_dead(struct fm *f, const char *dead, char *errstr, size_t errsz)
{
	struct stat st;
	const char *open_as = dead;

	f->dead_path = dead;
	if (!lstat(dead, &st) && S_ISLNK(st.st_mode) && realpath(dead, f->dead_real))
		f->dead_path = f->dead_real;
	if (stat(dead, &st) || S_ISREG(st.st_mode)) {
		if (tmp_name(f->dead_tmp, f->dead_path, errstr, errsz))
			return -ENAMETOOLONG;
		open_as = f->dead_tmp;
		doomed[1] = f->dead_tmp;
	}
	if (!(f->dead = fopen(open_as, "w"))) {
		snprintf(errstr, errsz, "%s: %s", open_as, strerror(errno));
		f->dead_tmp[0] = '\0';
		return -EIO;
	}
	return 0;
}

/* Flushes and closes fp, with its data on the disk if sync: a full or
 * failing disk is found here, not by the next reader. 0 or -errno. */
static int close_stream(FILE *fp, bool sync)
{
	int err = 0;

	/* errno is the caller's to clear: a write that failed before (inside
	 * avro-c) left its reason there */
	if (fflush(fp) || ferror(fp) || (sync && fsync(fileno(fp))))
		err = errno ? -errno : -EIO;
	if (fclose(fp) && !err)
		err = errno ? -errno : -EIO;
	return err;
}

/* Completes both files and, if keep (the run got to the end, perhaps
 * past damaged parts: the files are valid), renames them into place; on
 * any failure neither is renamed, the temporary ones go, and errstr says
 * why. Returns err, or the failure if keep. */
static int fm_finish(struct fm *f, int err, bool keep)
{
	const char *what = f->out_path;
	int e = 0, de = 0;

	/* The writer's close writes the last block; whether the disk took it
	 * is the stream's to say (close_stream flushes and syncs). */
	e = kn_cwriter_close(f->writer);
	f->writer = NULL;
	if (f->out_fp) {
		int ce = close_stream(f->out_fp, keep);
		e = e ? e : ce;
		f->out_fp = NULL;
	}
	if (f->dead) {
		errno = 0;
		de = close_stream(f->dead, keep && f->dead_tmp[0]);
		f->dead = NULL;
	}
	if (!e && de)
		e = de, what = f->dead_path;
	if (!e && keep && f->dead_tmp[0] && rename(f->dead_tmp, f->dead_path))
		e = -errno, what = f->dead_path;
	if (!e && keep && rename(f->out_tmp, f->out_path))
		e = -errno, what = f->out_path;
	if (e && keep)
		snprintf(f->errstr, f->errsz,
			 "writing %s failed: %s (%s, if it existed, is unchanged)", what,
			 strerror(-e), what);
	if (e || !keep) {
		if (f->out_tmp[0])
			remove(f->out_tmp);
		if (f->dead_tmp[0])
			remove(f->dead_tmp);
	}
	doomed[0] = doomed[1] = NULL;
	return e && keep ? e : err;
}

static int fm_open(struct fm *f, const struct kn_config *c, const char *dead, char *errstr,
		   size_t errsz)
{
	int err = kn_stack_open(c, KN_STACK_MAINTAIN, &f->st, errstr, errsz);

	if (err)
		return err;
	f->schemas = f->st.schemas;
	f->pipe = f->st.pipe;
	if ((err = kn_container_open(f->in_path, &f->in, errstr, errsz)))
		return err;
	if (!(f->e = pick_schema(f, c, kn_container_schema(f->in), errstr, errsz)))
		return -EINVAL;
	/* OUT is replaced only if it is a regular file: never a device, a
	 * directory or what a symlink points at. */
	struct stat st;
	if (!lstat(f->out_path, &st) && !S_ISREG(st.st_mode)) {
		snprintf(errstr, errsz,
			 "%s: exists and is not a regular file (kanon replaces only regular files)",
			 f->out_path);
		return -EINVAL;
	}
	if (tmp_name(f->out_tmp, f->out_path, errstr, errsz))
		return -ENAMETOOLONG;
	remove(f->out_tmp); /* a stale one of a killed run with our pid */
	doomed[0] = f->out_tmp;
	if (!(f->out_fp = fopen(f->out_tmp, "wxe"))) {
		snprintf(errstr, errsz, "%s: cannot create it beside %s: %s", f->out_tmp,
			 f->out_path, strerror(errno));
		f->out_tmp[0] = '\0';
		return -EIO;
	}
	if ((err = kn_cwriter_open(f->out_fp, kn_deid_schema_json, "deflate", &f->writer))) {
		snprintf(errstr, errsz, "%s: %s", f->out_tmp, strerror(-err));
		return err;
	}
	return dead ? open_dead(f, dead, errstr, errsz) : 0;
}

static void fm_close(struct fm *f)
{
	kn_container_close(f->in);
	if (f->own.dec)
		kn_decoder_destroy(f->own.dec);
	kn_stack_close(&f->st);
}

/* Counts a loss; the first one's description goes into the closing error. */
static void note_loss(struct fm *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note_loss(struct fm *f, const char *fmt, ...)
{
	va_list ap;

	if (f->losses++)
		return;
	va_start(ap, fmt);
	vsnprintf(f->first_loss, sizeof(f->first_loss), fmt, ap);
	va_end(ap);
}

/* Bytes that are no block, or a block that does not decompress (then its
 * record count is known, and they count as read and dead). */
static void lose_bytes(struct fm *f, const struct kn_damage *d)
{
	if (d->records >= 0) {
		f->lost += d->records;
		f->res->read += d->records;
		f->res->dead += d->records;
		note_loss(f, "the block at offset %lld (%lld records) cannot be read (%s)",
			  (long long)d->offset, (long long)d->records, d->why);
	} else if (d->length < 0) {
		note_loss(f, "the bytes from offset %lld on are not an Avro block (%s)",
			  (long long)d->offset, d->why);
	} else {
		note_loss(f, "the %lld bytes at offset %lld are not an Avro block (%s)",
			  (long long)d->length, (long long)d->offset, d->why);
	}
	if (!f->dead)
		return;
	if (d->records >= 0)
		fprintf(f->dead, "{\"index\": %lld, \"records\": %lld, ",
			(long long)(f->res->read - d->records), (long long)d->records);
	else
		fprintf(f->dead, "{\"records\": null, ");
	fprintf(f->dead,
		"\"offset\": %lld, \"bytes\": %lld, \"reason\": \"damaged_block\", \"detail\": "
		"\"%s\"}\n",
		(long long)d->offset, (long long)d->length, d->why);
}

/* A block whose records and bytes do not add up: how many records it held
 * is not known (those read from it were processed). */
static void lose_block(struct fm *f, const struct kn_block *b, const char *why)
{
	note_loss(f, "the block at offset %lld %s", (long long)b->offset, why);
	if (f->dead)
		fprintf(f->dead,
			"{\"records\": null, \"offset\": %lld, \"bytes\": %lld, \"reason\": "
			"\"damaged_block\", \"detail\": \"%s\"}\n",
			(long long)b->offset, (long long)b->size, why);
}

/* The records of a block from index i on cannot be told apart. */
static void lose_records(struct fm *f, const struct kn_block *b, int64_t i, const char *why)
{
	int64_t n = b->count - i;

	f->lost += n;
	f->res->read += n;
	f->res->dead += n;
	note_loss(f, "record %lld of the block at offset %lld does not decode (%s)", (long long)i,
		  (long long)b->offset, why);
	if (f->dead)
		fprintf(f->dead,
			"{\"index\": %lld, \"records\": %lld, \"offset\": %lld, \"reason\": "
			"\"decode_error\", \"detail\": \"record %lld of the block: %s\"}\n",
			(long long)(f->res->read - n), (long long)n, (long long)b->offset,
			(long long)i, why);
}

static int process_record(struct fm *f, const uint8_t *datum, size_t len)
{
	uint8_t out[KN_DEID_MAX_BYTES];
	struct kn_verdict v;
	size_t n;

	f->res->read++;
	n = kn_pipeline_process_datum(f->pipe, f->e, datum, len, f->now, out, &v);
	if (n) {
		f->res->written++;
		int err = kn_cwriter_append(f->writer, out, n);
		if (!err)
			return 0;
		snprintf(f->errstr, f->errsz,
			 "writing %s failed: %s (%s, if it existed, is unchanged)", f->out_path,
			 strerror(-err), f->out_path);
		return err;
	}
	if (v.dropped) {
		f->res->dropped++;
		return 0;
	}
	f->res->dead++;
	if (f->dead)
		fprintf(f->dead, "{\"index\": %lld, \"reason\": \"%s\", \"detail\": \"%s\"}\n",
			(long long)(f->res->read - 1), kn_dead_reason_name(v.reason),
			v.detail ? v.detail : "");
	return 0;
}

/* Splits a block into records with the writer schema's decoder. One that
 * does not decode hides where the next begins: the rest of the block is
 * lost, and said so. */
static int process_block(struct fm *f, const struct kn_block *b)
{
	size_t off = 0, used;
	char why_buf[96];
	const char *why;
	int err;

	/* Every schema kanon accepts takes a byte or more per record (the
	 * event_id and timestamp roles), so a larger count is not believed. */
	if ((uint64_t)b->count > b->len) {
		snprintf(why_buf, sizeof(why_buf), "claims %lld records in %zu bytes",
			 (long long)b->count, b->len);
		lose_block(f, b, why_buf);
		return 0;
	}
	for (int64_t i = 0; i < b->count; i++) {
		if (kn_decoder_decode_prefix(f->e->dec, b->data + off, b->len - off, &f->scratch,
					     &used, &why)) {
			lose_records(f, b, i, why);
			return 0;
		}
		if ((err = process_record(f, b->data + off, used)))
			return err;
		off += used;
	}
	if (off != b->len) {
		snprintf(why_buf, sizeof(why_buf), "has %zu bytes after its %lld records (read)",
			 b->len - off, (long long)b->count);
		lose_block(f, b, why_buf);
	}
	return 0;
}

int kn_filemode_process(const struct kn_config *c, const char *in_path, const char *out_path,
			const char *dead_path, struct kn_file_result *res, char *errstr,
			size_t errstr_size)
{
	struct fm f = {.in_path = in_path,
		       .out_path = out_path,
		       .res = res,
		       .errstr = errstr,
		       .errsz = errstr_size};
	struct kn_block b;
	struct kn_damage d;
	int err, rc = 0;

	struct sigaction old[3];

	memset(res, 0, sizeof(*res));
	f.now = (int64_t)time(NULL) * 1000;
	catch_signals(old, true);
	err = fm_open(&f, c, dead_path, errstr, errstr_size);
	while (!err && (rc = kn_container_next(f.in, &b, &d, errstr, errstr_size)) > 0) {
		if (rc == 2)
			lose_bytes(&f, &d);
		else
			err = process_block(&f, &b);
	}
	if (!err && rc < 0)
		err = rc;
	if (!err && f.losses) {
		snprintf(errstr, errstr_size,
			 "%s: %lld damaged part(s) skipped, the first: %s; %lld record(s) known "
			 "lost, counted as dead letters (every other block was processed; the "
			 "output is valid)",
			 in_path, (long long)f.losses, f.first_loss, (long long)f.lost);
		err = -EBADMSG;
	}
	err = fm_finish(&f, err, !err || (err == -EBADMSG && f.losses));
	catch_signals(old, false);
	fm_close(&f);
	return err;
}

/* path's canonical name, which may not exist yet: its directory resolved
 * (symlinks, "..") and its last component. */
static int canon(const char *path, char *buf, size_t sz)
{
	const char *slash = strrchr(path, '/');
	char dir[PATH_MAX], real[PATH_MAX];

	if (snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash == path ? 1 : slash - path) : 1,
		     slash ? path : ".") >= (int)sizeof(dir) ||
	    !realpath(dir, real))
		return -1;
	return snprintf(buf, sz, "%s/%s", strcmp(real, "/") ? real : "",
			slash ? slash + 1 : path) >= (int)sz
		       ? -1
		       : 0;
}

/* Whether a and b name one file: the same inode if both exist (hard and
 * symbolic links too), else the same canonical name. */
static bool same_file(const char *a, const char *b)
{
	struct stat sa, sb;
	char ca[2 * PATH_MAX], cb[2 * PATH_MAX];

	if (!stat(a, &sa) && !stat(b, &sb))
		return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
	return !canon(a, ca, sizeof(ca)) && !canon(b, cb, sizeof(cb)) && !strcmp(ca, cb);
}

int kn_filemode_check_paths(const char *in, const char *out, const char *dead, char *errstr,
			    size_t errsz)
{
	if (same_file(in, out))
		snprintf(errstr, errsz, "--output %s is the input file", out);
	else if (dead && same_file(in, dead))
		snprintf(errstr, errsz, "--dead-letter %s is the input file", dead);
	else if (dead && same_file(out, dead))
		snprintf(errstr, errsz, "--output and --dead-letter are one file (%s)", dead);
	else
		return 0;
	return -EINVAL;
}
