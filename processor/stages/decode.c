/* Decode tree.
 *
 * Each node mirrors one Avro schema node. Named types reached through a link
 * (recursive schemas) compile to role-less nodes that are shared, so the tree
 * may contain cycles; decoding bounds the recursion depth instead. A node
 * with role >= 0 writes its value to ev->role[role]; a union carrying a role
 * passes it to every branch (the null branch writes KN_VAL_NULL). */
#include "decode.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "avrobin.h"
#include "kn_alloc.h"

#define MAX_DEPTH 64
/* Items of zero-byte types (null, empty records) cost no input bytes, so a
 * hostile count could spin the CPU; cap the items one datum may declare. */
#define MAX_ITEMS (1u << 22)

enum dtype {
	D_NULL,
	D_BOOL,
	D_INT,
	D_LONG,
	D_FLOAT,
	D_DOUBLE,
	D_BYTES,
	D_STRING,
	D_FIXED,
	D_ENUM,
	D_RECORD,
	D_UNION,
	D_ARRAY,
	D_MAP,
};

struct dnode {
	enum dtype type;
	int role;	    /* -1: no role */
	uint32_t n;	    /* fields, branches, enum symbols, or fixed size */
	struct dnode **kid; /* record fields, union branches, array item, map value */
	struct dnode *next_owned;
};

struct link_memo {
	avro_schema_t schema;
	struct dnode *node;
};

struct kn_decoder {
	avro_schema_t schema;
	struct dnode *root;
	struct dnode *owned; /* every node, for destroy */
	struct link_memo memo[32];
	int n_memo;
};

struct compile_ctx {
	struct kn_decoder *d;
	const char *const *paths;
	bool found[KN_ROLE_COUNT];
	char *errstr;
	size_t errsz;
};

static struct dnode *node_new(struct kn_decoder *d, enum dtype t, uint32_t nkids)
{
	struct dnode *n = kn_calloc(1, sizeof(*n));

	if (!n)
		return NULL;
	n->type = t;
	n->role = -1;
	n->next_owned = d->owned;
	d->owned = n;
	if (nkids) {
		n->kid = kn_calloc(nkids, sizeof(*n->kid));
		if (!n->kid)
			return NULL;
	}
	return n;
}

/* Role whose path equals path, or -1. */
static int role_for_path(struct compile_ctx *c, const char *path)
{
	for (int r = 0; r < KN_ROLE_COUNT; r++)
		if (c->paths[r] && !strcmp(c->paths[r], path))
			return r;
	return -1;
}

static bool role_accepts(int role, enum dtype t)
{
	switch (kn_roles[role].type) {
	case KN_VAL_STR:
		return t == D_STRING || t == D_BYTES;
	case KN_VAL_LONG:
		return t == D_INT || t == D_LONG;
	case KN_VAL_DOUBLE:
		return t == D_DOUBLE || t == D_FLOAT || t == D_INT || t == D_LONG;
	case KN_VAL_BOOL:
		return t == D_BOOL;
	default:
		return false;
	}
}

static struct dnode *compile(struct compile_ctx *c, avro_schema_t s, const char *path, int role);

static struct dnode *compile_link(struct compile_ctx *c, avro_schema_t target)
{
	struct kn_decoder *d = c->d;

	for (int i = 0; i < d->n_memo; i++)
		if (d->memo[i].schema == target)
			return d->memo[i].node;
	if (d->n_memo == (int)(sizeof(d->memo) / sizeof(d->memo[0]))) {
		snprintf(c->errstr, c->errsz, "schema has too many recursive types");
		return NULL;
	}
	/* Recursive references carry no roles: compile with an empty path table. */
	static const char *const no_paths[KN_ROLE_COUNT];
	struct compile_ctx sub = {
		.d = d, .paths = no_paths, .errstr = c->errstr, .errsz = c->errsz};
	return compile(&sub, target, "\x01", -1);
}

static struct dnode *compile_record(struct compile_ctx *c, avro_schema_t s, const char *path)
{
	size_t nf = avro_schema_record_size(s);
	struct dnode *n = node_new(c->d, D_RECORD, (uint32_t)nf);
	struct kn_decoder *d = c->d;

	if (!n)
		return NULL;
	n->n = (uint32_t)nf;
	/* Memoize named records so a link back to this one terminates. */
	if (d->n_memo < (int)(sizeof(d->memo) / sizeof(d->memo[0])) && path[0] == '\x01') {
		d->memo[d->n_memo].schema = s;
		d->memo[d->n_memo++].node = n;
	}
	for (size_t i = 0; i < nf; i++) {
		const char *fname = avro_schema_record_field_name(s, (int)i);
		avro_schema_t fs = avro_schema_record_field_get_by_index(s, (int)i);
		char sub[512];
		int r;

		if (path[0] == '\x01')
			snprintf(sub, sizeof(sub), "\x01");
		else if (path[0])
			snprintf(sub, sizeof(sub), "%s.%s", path, fname);
		else
			snprintf(sub, sizeof(sub), "%s", fname);
		r = path[0] == '\x01' ? -1 : role_for_path(c, sub);
		n->kid[i] = compile(c, fs, sub, r);
		if (!n->kid[i])
			return NULL;
	}
	return n;
}

static struct dnode *compile_union(struct compile_ctx *c, avro_schema_t s, const char *path,
				   int role)
{
	size_t nb = avro_schema_union_size(s);
	struct dnode *n = node_new(c->d, D_UNION, (uint32_t)nb);

	if (!n)
		return NULL;
	n->n = (uint32_t)nb;
	n->role = role;
	for (size_t i = 0; i < nb; i++) {
		n->kid[i] = compile(c, avro_schema_union_branch(s, (int)i), path, role);
		if (!n->kid[i])
			return NULL;
	}
	return n;
}

static struct dnode *compile_leaf(struct compile_ctx *c, avro_schema_t s, const char *path,
				  int role)
{
	static const struct {
		avro_type_t at;
		enum dtype dt;
	} map[] = {{AVRO_NULL, D_NULL},	  {AVRO_BOOLEAN, D_BOOL},  {AVRO_INT32, D_INT},
		   {AVRO_INT64, D_LONG},  {AVRO_FLOAT, D_FLOAT},   {AVRO_DOUBLE, D_DOUBLE},
		   {AVRO_BYTES, D_BYTES}, {AVRO_STRING, D_STRING}, {AVRO_FIXED, D_FIXED},
		   {AVRO_ENUM, D_ENUM}};
	avro_type_t at = avro_typeof(s);

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		if (map[i].at != at)
			continue;
		if (role >= 0 && map[i].dt != D_NULL && !role_accepts(role, map[i].dt)) {
			snprintf(c->errstr, c->errsz,
				 "field '%s' cannot play role '%s': wrong Avro type", path,
				 kn_roles[role].name);
			return NULL;
		}
		struct dnode *n = node_new(c->d, map[i].dt, 0);
		if (!n)
			return NULL;
		n->role = role;
		if (at == AVRO_FIXED)
			n->n = (uint32_t)avro_schema_fixed_size(s);
		else if (at == AVRO_ENUM)
			n->n = (uint32_t)avro_schema_enum_number_of_symbols(s);
		if (role >= 0)
			c->found[role] = true;
		return n;
	}
	snprintf(c->errstr, c->errsz, "field '%s': unsupported Avro type %d", path, (int)at);
	return NULL;
}

static struct dnode *compile(struct compile_ctx *c, avro_schema_t s, const char *path, int role)
{
	struct dnode *n;

	switch (avro_typeof(s)) {
	case AVRO_LINK:
		return compile_link(c, avro_schema_link_target(s));
	case AVRO_RECORD:
		if (role >= 0)
			goto not_leaf;
		return compile_record(c, s, path);
	case AVRO_UNION:
		return compile_union(c, s, path, role);
	case AVRO_ARRAY:
	case AVRO_MAP:
		if (role >= 0)
			goto not_leaf;
		n = node_new(c->d, avro_typeof(s) == AVRO_ARRAY ? D_ARRAY : D_MAP, 1);
		if (!n)
			return NULL;
		/* Roles never reach inside containers: which element would it be? */
		n->kid[0] = compile(c,
				    avro_typeof(s) == AVRO_ARRAY ? avro_schema_array_items(s)
								 : avro_schema_map_values(s),
				    "\x01", -1);
		return n->kid[0] ? n : NULL;
	default:
		return compile_leaf(c, s, path, role);
	}
not_leaf:
	snprintf(c->errstr, c->errsz, "field '%s' cannot play role '%s': it is not a scalar", path,
		 kn_roles[role].name);
	return NULL;
}

void kn_decoder_destroy(struct kn_decoder *d)
{
	if (!d)
		return;
	while (d->owned) {
		struct dnode *n = d->owned;
		d->owned = n->next_owned;
		kn_free(n->kid);
		kn_free(n);
	}
	if (d->schema)
		avro_schema_decref(d->schema);
	kn_free(d);
}

int kn_decoder_new(avro_schema_t schema, const char *const role_paths[KN_ROLE_COUNT],
		   struct kn_decoder **out, char *errstr, size_t errstr_size)
{
	struct kn_decoder *d = kn_calloc(1, sizeof(*d));
	struct compile_ctx c = {
		.d = d, .paths = role_paths, .errstr = errstr, .errsz = errstr_size};

	*out = NULL;
	if (!d) {
		snprintf(errstr, errstr_size, "out of memory");
		return -ENOMEM;
	}
	d->schema = avro_schema_incref(schema);
	for (int r = 0; r < KN_ROLE_COUNT; r++)
		for (int q = r + 1; q < KN_ROLE_COUNT; q++)
			if (role_paths[r] && role_paths[q] &&
			    !strcmp(role_paths[r], role_paths[q])) {
				snprintf(errstr, errstr_size,
					 "field '%s' is mapped to two roles ('%s' and '%s')",
					 role_paths[r], kn_roles[r].name, kn_roles[q].name);
				goto fail;
			}
	if (avro_typeof(schema) != AVRO_RECORD) {
		snprintf(errstr, errstr_size, "top-level schema must be a record");
		goto fail;
	}
	d->root = compile(&c, schema, "", -1);
	if (!d->root)
		goto fail;
	for (int r = 0; r < KN_ROLE_COUNT; r++) {
		if (role_paths[r] && !c.found[r]) {
			snprintf(errstr, errstr_size, "role '%s': schema has no field '%s'",
				 kn_roles[r].name, role_paths[r]);
			goto fail;
		}
	}
	*out = d;
	return 0;
fail:
	kn_decoder_destroy(d);
	return -EINVAL;
}

/* ---- decoding ---- */

struct rd {
	const uint8_t *p, *end;
	uint32_t items;
	const char *why;
	struct kn_val sink; /* where fields without a role are read to */
};

__attribute__((cold, noinline)) static int fail(struct rd *r, const char *why)
{
	r->why = why;
	return -EBADMSG;
}

/* Inlined by force: one call per field otherwise (a fifth of the decoder's
 * time in B1). */
__attribute__((always_inline)) static inline int rd_long(struct rd *r, int64_t *v)
{
	int n = kn_avro_read_long(r->p, r->end, v);

	if (n <= 0) {
		*v = 0; /* callers return on the error; the compiler cannot see it */
		return fail(r, n == 0 ? "truncated" : "bad varint");
	}
	r->p += n;
	return 0;
}

static int rd_len(struct rd *r, int64_t *len)
{
	if (rd_long(r, len))
		return -EBADMSG;
	if (*len < 0)
		return fail(r, "negative length");
	if (*len > r->end - r->p)
		return fail(r, "truncated");
	return 0;
}

static int dec(const struct dnode *n, struct rd *r, struct kn_event *ev, int depth);

static int dec_blocks(const struct dnode *n, struct rd *r, struct kn_event *ev, int depth)
{
	for (;;) {
		const uint8_t *block_start = NULL;
		int64_t count, bytes = 0;

		if (rd_long(r, &count))
			return -EBADMSG;
		if (count == 0)
			return 0;
		if (count < 0) {
			if (count == INT64_MIN)
				return fail(r, "bad block count");
			count = -count;
			/* The writer gave the block's size too. Its items are still
			 * read one by one (skipping by size would accept garbage
			 * inside); they must fill it exactly. */
			if (rd_long(r, &bytes))
				return -EBADMSG;
			block_start = r->p;
		}
		if ((uint64_t)count > MAX_ITEMS - r->items)
			return fail(r, "too many items");
		r->items += (uint32_t)count;
		for (int64_t i = 0; i < count; i++) {
			int64_t klen;
			if (n->type == D_MAP) {
				if (rd_len(r, &klen))
					return -EBADMSG;
				r->p += klen;
			}
			if (dec(n->kid[0], r, ev, depth + 1))
				return -EBADMSG;
		}
		if (block_start && r->p - block_start != bytes)
			return fail(r, "bad block size");
	}
}

/* Reads a scalar into *out (a role's slot, or a sink). Each case stores
 * its fields straight into *out: building a struct kn_val on the stack and
 * copying it made every field pay a store-forwarding stall (the copy's
 * 16-byte load after narrower stores), a tenth of the whole pipeline. */
static int dec_scalar(const struct dnode *n, struct rd *r, struct kn_val *out)
{
	int64_t l;

	switch (n->type) {
	case D_NULL:
		out->type = KN_VAL_NULL;
		return 0;
	case D_BOOL:
		if (r->p >= r->end)
			return fail(r, "truncated");
		if (*r->p > 1)
			return fail(r, "bad boolean");
		out->type = KN_VAL_BOOL;
		out->b = *r->p++;
		return 0;
	case D_INT:
	case D_LONG:
		if (rd_long(r, &l))
			return -EBADMSG;
		if (n->type == D_INT && (l < INT32_MIN || l > INT32_MAX))
			return fail(r, "int out of range");
		/* A role that wants a double also takes an int/long field. */
		if (n->role >= 0 && kn_roles[n->role].type == KN_VAL_DOUBLE) {
			out->type = KN_VAL_DOUBLE;
			out->d = (double)l;
		} else {
			out->type = KN_VAL_LONG;
			out->l = l;
		}
		return 0;
	case D_FLOAT:
		if (r->end - r->p < 4)
			return fail(r, "truncated");
		out->type = KN_VAL_DOUBLE;
		out->d = kn_avro_get_float(r->p);
		r->p += 4;
		return 0;
	case D_DOUBLE:
		if (r->end - r->p < 8)
			return fail(r, "truncated");
		out->type = KN_VAL_DOUBLE;
		out->d = kn_avro_get_double(r->p);
		r->p += 8;
		return 0;
	case D_BYTES:
	case D_STRING:
		if (rd_len(r, &l))
			return -EBADMSG;
		out->type = KN_VAL_STR;
		out->s.p = (const char *)r->p;
		out->s.len = (uint32_t)l;
		r->p += l;
		return 0;
	case D_FIXED:
		if ((uint64_t)(r->end - r->p) < n->n)
			return fail(r, "truncated");
		r->p += n->n;
		out->type = KN_VAL_LONG; /* a role never names one (role_accepts) */
		return 0;
	case D_ENUM:
		if (rd_long(r, &l))
			return -EBADMSG;
		if (l < 0 || l >= n->n)
			return fail(r, "bad enum index");
		out->type = KN_VAL_LONG;
		return 0;
	default:
		return fail(r, "internal: not a scalar");
	}
}

/* A record's field at depth, as dec would read it, but a scalar or a union
 * of scalars (the ["null", T] fields of flat log records: nearly all) in
 * this frame, not in two more of dec. */
static inline int field(const struct dnode *k, struct rd *r, struct kn_event *ev, int depth)
{
	int64_t b;

	if (k->type == D_UNION) {
		if (depth > MAX_DEPTH)
			return fail(r, "nesting too deep");
		if (rd_long(r, &b))
			return -EBADMSG;
		if (b < 0 || b >= k->n)
			return fail(r, "bad union branch");
		k = k->kid[b];
		depth++;
	}
	if (k->type >= D_RECORD)
		return dec(k, r, ev, depth);
	if (depth > MAX_DEPTH)
		return fail(r, "nesting too deep");
	return dec_scalar(k, r, k->role >= 0 ? &ev->role[k->role] : &r->sink);
}

static int dec(const struct dnode *n, struct rd *r, struct kn_event *ev, int depth)
{
	if (depth > MAX_DEPTH)
		return fail(r, "nesting too deep");
	switch (n->type) {
	case D_RECORD:
		for (uint32_t i = 0; i < n->n; i++)
			if (field(n->kid[i], r, ev, depth + 1))
				return -EBADMSG;
		return 0;
	case D_UNION:
		return field(n, r, ev, depth);
	case D_ARRAY:
	case D_MAP:
		return dec_blocks(n, r, ev, depth);
	default:
		return dec_scalar(n, r, n->role >= 0 ? &ev->role[n->role] : &r->sink);
	}
}

int kn_decoder_decode_prefix(const struct kn_decoder *d, const uint8_t *buf, size_t len,
			     struct kn_event *ev, size_t *used, const char **why)
{
	struct rd r = {.p = buf, .end = buf + len};

	memset(ev->role, 0, sizeof(ev->role));
	if (dec(d->root, &r, ev, 0)) {
		*why = r.why;
		return -EBADMSG;
	}
	*used = (size_t)(r.p - buf);
	return 0;
}

int kn_decoder_decode(const struct kn_decoder *d, const uint8_t *buf, size_t len,
		      struct kn_event *ev, const char **why)
{
	size_t used;

	if (kn_decoder_decode_prefix(d, buf, len, ev, &used, why))
		return -EBADMSG;
	if (used != len) {
		*why = "trailing bytes";
		return -EBADMSG;
	}
	return 0;
}
