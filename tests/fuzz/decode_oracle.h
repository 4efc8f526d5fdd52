/* decode_oracle.h: kanon's decoder against avro-c's, on random schemas.
 *
 * Shared by the differential test (tests/unit/test_decode_diff.c) and the
 * libFuzzer target (tests/fuzz/fuzz_decode.c). From a seed it builds a
 * random record schema (every Avro type, nested records, unions, arrays,
 * maps), maps random fields to kanon roles of a matching type, and writes
 * random conforming datums with avro-c. The oracle then holds kanon's
 * decoder to avro-c's generic reader on any bytes:
 *
 *   - kanon accepts  =>  avro-c reads the same bytes, to the last one, and
 *     every role kanon filled equals the value avro-c read at that path;
 *   - avro-c reads the bytes to the last one  =>  kanon accepts, unless it
 *     refuses for one of its documented stricter rules, where avro-c reads
 *     what the specification does not allow: a boolean byte other than 0
 *     or 1, an int beyond 32 bits, an enum index beyond the symbols, a
 *     negative string or bytes length, a block size its items do not fill;
 *     or kanon's nesting and item limits.
 *
 * Zero-byte array or map items (null) are never generated: avro-c would
 * loop over a forged block count of 2^60 such items for ever. */
#ifndef KN_DECODE_ORACLE_H
#define KN_DECODE_ORACLE_H

#include <avro.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"

/* Schemas are at most 3 levels deep, far below the buffers; a truncated one
 * would be refused by avro-c and reported, not used. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

struct orc_rng {
	uint64_t s;
};

static inline uint32_t orc_next(struct orc_rng *r)
{
	r->s ^= r->s << 13;
	r->s ^= r->s >> 7;
	r->s ^= r->s << 17;
	return (uint32_t)(r->s >> 11);
}

static inline uint32_t orc_below(struct orc_rng *r, uint32_t n)
{
	return n ? orc_next(r) % n : 0;
}

/* avro-c allocates a string's or array's declared size before reading it,
 * so a forged length costs it gigabytes (or an abort under ASan). Inputs
 * here are small: an allocation above 16 MiB is such a forgery and fails,
 * which is avro-c's own out-of-memory path (an error the oracle expects). */
static void *orc_capped_alloc(void *ud, void *p, size_t osize, size_t nsize)
{
	(void)ud, (void)osize;
	if (!nsize) {
		free(p);
		return NULL;
	}
	return nsize > (16u << 20) ? NULL : realloc(p, nsize);
}

static inline void orc_init(void)
{
	avro_set_allocator(orc_capped_alloc, NULL);
}

/* ---- random schemas ---- */

struct orc_schema {
	avro_schema_t schema;
	struct kn_decoder *dec;
	char *paths[KN_ROLE_COUNT];
	char json[16384];
	int names; /* for unique record/enum/fixed names */
};

enum {
	ORC_SCALAR,
	ORC_ANY
};

static void orc_type(struct orc_rng *r, struct orc_schema *o, char *out, size_t n, int depth,
		     bool item);

static void orc_record(struct orc_rng *r, struct orc_schema *o, char *out, size_t n, int depth)
{
	int fields = 1 + (int)orc_below(r, 5);
	size_t off = (size_t)snprintf(out, n, "{\"type\":\"record\",\"name\":\"R%d\",\"fields\":[",
				      o->names++);

	for (int i = 0; i < fields && off < n; i++) {
		char t[4096];
		orc_type(r, o, t, sizeof(t), depth + 1, false);
		off += (size_t)snprintf(out + off, n - off, "%s{\"name\":\"f%d\",\"type\":%s}",
					i ? "," : "", i, t);
	}
	if (off < n)
		snprintf(out + off, n - off, "]}");
}

static void orc_type(struct orc_rng *r, struct orc_schema *o, char *out, size_t n, int depth,
		     bool item)
{
	static const char *const prim[] = {"\"null\"",	"\"boolean\"", "\"int\"",   "\"long\"",
					   "\"float\"", "\"double\"",  "\"bytes\"", "\"string\""};
	uint32_t k = orc_below(r, depth >= 3 ? 8 : 14);
	char a[4096], b[4096];

	if (k < 8) {
		if (item && k == 0)
			k = 7; /* no zero-byte items */
		snprintf(out, n, "%s", prim[k]);
	} else if (k == 8) {
		snprintf(out, n,
			 "{\"type\":\"enum\",\"name\":\"E%d\",\"symbols\":[\"A\",\"B\",\"C\"]}",
			 o->names++);
	} else if (k == 9) {
		snprintf(out, n, "{\"type\":\"fixed\",\"name\":\"X%d\",\"size\":%u}", o->names++,
			 1 + orc_below(r, 8));
	} else if (k == 10) {
		orc_type(r, o, a, sizeof(a), depth + 1, true);
		snprintf(out, n, "{\"type\":\"array\",\"items\":%s}", a);
	} else if (k == 11) {
		orc_type(r, o, a, sizeof(a), depth + 1, true);
		snprintf(out, n, "{\"type\":\"map\",\"values\":%s}", a);
	} else if (k == 12) {
		/* A union of null and one non-union type, either order. */
		do
			orc_type(r, o, a, sizeof(a), depth + 1, false);
		while (a[0] == '[' || !strcmp(a, "\"null\""));
		if (orc_below(r, 2))
			snprintf(out, n, "[\"null\",%s]", a);
		else
			snprintf(out, n, "[%s,\"null\"]", a);
	} else {
		orc_record(r, o, b, sizeof(b), depth);
		snprintf(out, n, "%s", b);
	}
}

/* The family a role accepts and the Avro types that give it. */
static bool orc_role_fits(int role, avro_type_t t)
{
	switch (kn_roles[role].type) {
	case KN_VAL_STR:
		return t == AVRO_STRING || t == AVRO_BYTES;
	case KN_VAL_LONG:
		return t == AVRO_INT32 || t == AVRO_INT64;
	case KN_VAL_DOUBLE:
		return t == AVRO_DOUBLE || t == AVRO_FLOAT || t == AVRO_INT32 || t == AVRO_INT64;
	case KN_VAL_BOOL:
		return t == AVRO_BOOLEAN;
	default:
		return false;
	}
}

/* Maps scalar fields reachable through records (and nullable unions) to
 * random roles that accept them. */
static void orc_map_roles(struct orc_rng *r, struct orc_schema *o, avro_schema_t s,
			  const char *prefix)
{
	if (avro_typeof(s) == AVRO_UNION) {
		for (size_t b = 0; b < avro_schema_union_size(s); b++) {
			avro_schema_t br = avro_schema_union_branch(s, (int)b);
			if (avro_typeof(br) != AVRO_NULL)
				orc_map_roles(r, o, br, prefix);
		}
		return;
	}
	if (avro_typeof(s) == AVRO_RECORD) {
		for (size_t i = 0; i < avro_schema_record_size(s); i++) {
			char path[512];
			snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? "." : "",
				 avro_schema_record_field_name(s, (int)i));
			orc_map_roles(r, o, avro_schema_record_field_get_by_index(s, (int)i), path);
		}
		return;
	}
	for (int tries = 0; tries < 4; tries++) {
		int role = (int)orc_below(r, KN_ROLE_COUNT);
		if (!o->paths[role] && orc_role_fits(role, avro_typeof(s))) {
			o->paths[role] = strdup(prefix);
			return;
		}
	}
}

/* 0, or -1 when avro-c or kanon refused the generated schema (a generator
 * bug: the caller reports it). */
static int orc_schema_new(uint64_t seed, struct orc_schema *o, char *err, size_t errn)
{
	struct orc_rng r = {seed * 0x9E3779B97F4A7C15ULL + 1};

	memset(o, 0, sizeof(*o));
	orc_record(&r, o, o->json, sizeof(o->json), 0);
	if (avro_schema_from_json_length(o->json, strlen(o->json), &o->schema)) {
		snprintf(err, errn, "avro-c: %s: %s", avro_strerror(), o->json);
		return -1;
	}
	orc_map_roles(&r, o, o->schema, "");
	if (kn_decoder_new(o->schema, (const char *const *)o->paths, &o->dec, err, errn))
		return -1;
	return 0;
}

static void orc_schema_free(struct orc_schema *o)
{
	kn_decoder_destroy(o->dec);
	avro_schema_decref(o->schema);
	for (int i = 0; i < KN_ROLE_COUNT; i++)
		free(o->paths[i]);
}

/* ---- random conforming datums, written by avro-c ---- */

static void orc_fill(struct orc_rng *r, avro_value_t *v, int depth)
{
	char buf[64];
	size_t n;
	avro_value_t child;

	switch (avro_value_get_type(v)) {
	case AVRO_BOOLEAN:
		avro_value_set_boolean(v, (int)orc_below(r, 2));
		break;
	case AVRO_INT32:
		avro_value_set_int(v, (int32_t)orc_next(r) >> orc_below(r, 31));
		break;
	case AVRO_INT64:
		avro_value_set_long(v, (int64_t)((uint64_t)orc_next(r) << 32 | orc_next(r)) >>
					       orc_below(r, 63));
		break;
	case AVRO_FLOAT:
		avro_value_set_float(v, (float)orc_next(r) / 7.0f - 1e5f);
		break;
	case AVRO_DOUBLE:
		avro_value_set_double(v, (double)orc_next(r) / 3.0 - 1e8);
		break;
	case AVRO_STRING:
	case AVRO_BYTES:
		n = orc_below(r, sizeof(buf));
		for (size_t i = 0; i < n; i++)
			buf[i] = (char)('a' + orc_below(r, 26));
		buf[n] = '\0';
		if (avro_value_get_type(v) == AVRO_STRING)
			avro_value_set_string_len(v, buf, n + 1);
		else
			avro_value_set_bytes(v, buf, n);
		break;
	case AVRO_ENUM:
		avro_value_set_enum(v, (int)orc_below(r, 3));
		break;
	case AVRO_FIXED: {
		avro_schema_t s = avro_value_get_schema(v);
		n = (size_t)avro_schema_fixed_size(s);
		memset(buf, 'x', n);
		avro_value_set_fixed(v, buf, n);
		break;
	}
	case AVRO_ARRAY:
		for (uint32_t i = orc_below(r, depth > 3 ? 2 : 4); i > 0; i--) {
			avro_value_append(v, &child, NULL);
			orc_fill(r, &child, depth + 1);
		}
		break;
	case AVRO_MAP:
		for (uint32_t i = orc_below(r, depth > 3 ? 2 : 4); i > 0; i--) {
			snprintf(buf, sizeof(buf), "k%u", i);
			avro_value_add(v, buf, &child, NULL, NULL);
			orc_fill(r, &child, depth + 1);
		}
		break;
	case AVRO_UNION: {
		avro_schema_t s = avro_value_get_schema(v);
		avro_value_set_branch(v, (int)orc_below(r, (uint32_t)avro_schema_union_size(s)),
				      &child);
		orc_fill(r, &child, depth + 1);
		break;
	}
	case AVRO_RECORD:
		for (size_t i = 0; i < avro_schema_record_size(avro_value_get_schema(v)); i++) {
			avro_value_get_by_index(v, i, &child, NULL);
			orc_fill(r, &child, depth + 1);
		}
		break;
	default: /* null */
		avro_value_set_null(v);
		break;
	}
}

/* Writes one random datum of o's schema to buf; returns its length (0 is
 * a datum: a record of nulls), or (size_t)-1 when avro-c could not. */
static size_t orc_datum(struct orc_rng *r, const struct orc_schema *o, uint8_t *buf, size_t cap)
{
	avro_value_iface_t *iface = avro_generic_class_from_schema(o->schema);
	avro_writer_t w = avro_writer_memory((char *)buf, (int64_t)cap);
	avro_value_t v;
	size_t n = (size_t)-1;

	avro_generic_value_new(iface, &v);
	orc_fill(r, &v, 0);
	if (!avro_value_write(w, &v))
		n = (size_t)avro_writer_tell(w);
	avro_value_decref(&v);
	avro_writer_free(w);
	avro_value_iface_decref(iface);
	return n;
}

/* ---- the oracle ---- */

/* The value avro-c read at a dotted path (unions looked through); returns
 * 0 with *out set, 1 when the field itself holds null, 2 when a union on
 * the way to it does (kanon then leaves the role absent), -1: no path. */
static int orc_at(avro_value_t *root, const char *path, avro_value_t *out)
{
	char part[256];
	avro_value_t cur = *root, next;

	for (;;) {
		while (avro_value_get_type(&cur) == AVRO_UNION) {
			avro_value_get_current_branch(&cur, &next);
			cur = next;
		}
		if (avro_value_get_type(&cur) == AVRO_NULL)
			return *path ? 2 : 1;
		if (!*path)
			break;
		size_t n = strcspn(path, ".");
		snprintf(part, sizeof(part), "%.*s", (int)n, path);
		path += n + (path[n] == '.');
		if (avro_value_get_by_name(&cur, part, &next, NULL))
			return -1;
		cur = next;
	}
	*out = cur;
	return 0;
}

static int orc_same(const struct kn_val *k, avro_value_t *a, int null_on_way, char *err,
		    size_t errn, const char *path)
{
	const void *p;
	size_t n;
	int32_t i32;
	int64_t i64;
	float f;
	double d;
	int b;

	if (null_on_way == 1)
		return k->type == KN_VAL_NULL ? 0 : snprintf(err, errn, "%s: null expected", path);
	if (null_on_way == 2)
		return k->type == KN_VAL_ABSENT || k->type == KN_VAL_NULL
			       ? 0
			       : snprintf(err, errn, "%s: absent expected", path);
	switch (avro_value_get_type(a)) {
	case AVRO_STRING:
		avro_value_get_string(a, (const char **)&p, &n);
		n--; /* avro-c counts the NUL */
		goto bytes;
	case AVRO_BYTES:
		avro_value_get_bytes(a, &p, &n);
	bytes:
		return k->type == KN_VAL_STR && k->s.len == n && !memcmp(k->s.p, p, n)
			       ? 0
			       : snprintf(err, errn, "%s: string differs", path);
	case AVRO_INT32:
		avro_value_get_int(a, &i32);
		i64 = i32;
		goto integer;
	case AVRO_INT64:
		avro_value_get_long(a, &i64);
	integer:
		if (k->type == KN_VAL_DOUBLE)
			return k->d == (double)i64 ? 0 : snprintf(err, errn, "%s: differs", path);
		return k->type == KN_VAL_LONG && k->l == i64
			       ? 0
			       : snprintf(err, errn, "%s: integer differs", path);
	case AVRO_FLOAT:
		avro_value_get_float(a, &f);
		d = f;
		goto real;
	case AVRO_DOUBLE:
		avro_value_get_double(a, &d);
	real:
		return k->type == KN_VAL_DOUBLE && (k->d == d || (isnan(k->d) && isnan(d)))
			       ? 0
			       : snprintf(err, errn, "%s: double differs", path);
	case AVRO_BOOLEAN:
		avro_value_get_boolean(a, &b);
		return k->type == KN_VAL_BOOL && k->b == !!b
			       ? 0
			       : snprintf(err, errn, "%s: boolean differs", path);
	default:
		return snprintf(err, errn, "%s: unexpected type", path);
	}
}

static bool orc_kanon_stricter(const char *why)
{
	static const char *const rules[] = {
		"bad boolean",	  "int out of range", "bad enum index", "negative length",
		"bad block size", "nesting too deep", "too many items"};

	for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++)
		if (!strcmp(why, rules[i]))
			return true;
	return false;
}

/* 0 when kanon and avro-c agree on buf; else > 0 with err describing how. */
static int orc_check(const struct orc_schema *o, const uint8_t *buf, size_t len, char *err,
		     size_t errn)
{
	avro_value_iface_t *iface = avro_generic_class_from_schema(o->schema);
	avro_reader_t rd = avro_reader_memory((const char *)buf, (int64_t)len);
	struct kn_event ev;
	const char *why = "";
	avro_value_t v;
	int rc = 0;

	avro_generic_value_new(iface, &v);
	/* Read to the last byte: nothing left to skip (avro_reader_is_eof
	 * only knows file readers). */
	bool avro_ok = avro_value_read(rd, &v) == 0 && avro_skip(rd, 1) != 0;
	bool kanon_ok = kn_decoder_decode(o->dec, buf, len, &ev, &why) == 0;

	if (kanon_ok && !avro_ok) {
		rc = snprintf(err, errn, "kanon accepted what avro-c rejects");
	} else if (avro_ok && !kanon_ok && !orc_kanon_stricter(why)) {
		rc = snprintf(err, errn, "kanon rejected what avro-c reads: %s", why);
	} else if (kanon_ok) {
		for (int role = 0; role < KN_ROLE_COUNT && !rc; role++) {
			avro_value_t a;
			if (!o->paths[role])
				continue;
			int null_on_way = orc_at(&v, o->paths[role], &a);
			if (null_on_way < 0)
				rc = snprintf(err, errn, "%s: no such path", o->paths[role]);
			else
				rc = orc_same(&ev.role[role], &a, null_on_way, err, errn,
					      o->paths[role]);
		}
	}
	avro_value_decref(&v);
	avro_reader_free(rd);
	avro_value_iface_decref(iface);
	return rc;
}

#endif
