#include "schema.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "kn_alloc.h"
#include "log.h"

struct kn_schemas {
	struct kn_schema_entry *e; /* cap entries, never moved */
	int n_cfg;		   /* the configured ones come first */
	int n;			   /* published with release semantics */
	int cap;
	/* Refused for now (id -1: a free slot), a ring: next is the oldest. */
	struct kn_schema_entry refused[KN_SCHEMAS_REFUSED_MAX];
	int next_refused;
	const struct kn_config *c; /* for the roles of learned entries */
};

static int count(const struct kn_schemas *s)
{
	return __atomic_load_n(&s->n, __ATOMIC_ACQUIRE);
}

int kn_schema_read_file(const char *path, avro_schema_t *out, char **text_out, char *errstr,
			size_t errstr_size)
{
	FILE *f = fopen(path, "r");
	char *text = NULL;
	long len;
	int err = 0;

	if (!f) {
		err = -errno;
		snprintf(errstr, errstr_size, "%s: %s", path, strerror(errno));
		return err;
	}
	if (fseek(f, 0, SEEK_END) || (len = ftell(f)) < 0 || len > (1 << 20) ||
	    fseek(f, 0, SEEK_SET)) {
		snprintf(errstr, errstr_size, "%s: unreadable or larger than 1 MiB", path);
		err = -EINVAL;
		goto out;
	}
	text = kn_malloc((size_t)len + 1);
	if (!text || fread(text, 1, (size_t)len, f) != (size_t)len) {
		snprintf(errstr, errstr_size, "%s: read failed", path);
		err = -EIO;
		goto out;
	}
	text[len] = '\0';
	if (avro_schema_from_json_length(text, (size_t)len, out)) {
		snprintf(errstr, errstr_size, "%s: invalid Avro schema: %s", path, avro_strerror());
		kn_log_tame(errstr);
		err = -EINVAL;
	}
	if (!err && text_out)
		*text_out = text, text = NULL;
out:
	kn_free(text);
	fclose(f);
	return err;
}

int kn_schemas_load(const struct kn_config *c, struct kn_schemas **out, char *errstr,
		    size_t errstr_size)
{
	struct kn_schemas *s = kn_calloc(1, sizeof(*s));
	char why[400];
	int err = 0;

	*out = NULL;
	if (s) {
		s->cap = c->n_schemas + (c->registry_url[0] ? KN_SCHEMAS_LEARN_MAX : 0);
		s->c = c;
	}
	for (int i = 0; s && i < KN_SCHEMAS_REFUSED_MAX; i++)
		s->refused[i].id = -1;
	if (!s || !(s->e = kn_calloc((size_t)(s->cap ? s->cap : 1), sizeof(*s->e)))) {
		kn_free(s);
		snprintf(errstr, errstr_size, "out of memory");
		return -ENOMEM;
	}
	for (int i = 0; i < c->n_schemas; i++) {
		const struct kn_schema_cfg *sc = &c->schemas[i];
		struct kn_schema_entry *e = &s->e[s->n];
		err = kn_schema_read_file(sc->file, &e->schema, NULL, why, sizeof(why));
		if (!err) {
			s->n++;
			err = kn_decoder_new(e->schema, (const char *const *)sc->roles, &e->dec,
					     why, sizeof(why));
		}
		if (err) {
			snprintf(errstr, errstr_size, "%s:%d: schemas[] id %d: %s", c->path,
				 sc->line, (int)sc->id, why);
			kn_schemas_destroy(s);
			return err;
		}
		e->id = sc->id;
		e->type = sc->type;
	}
	s->n_cfg = s->n;
	*out = s;
	return 0;
}

void kn_schemas_destroy(struct kn_schemas *s)
{
	if (!s)
		return;
	for (int i = 0; i < s->n; i++) {
		kn_decoder_destroy(s->e[i].dec);
		if (s->e[i].schema)
			avro_schema_decref(s->e[i].schema);
	}
	kn_free(s->e);
	kn_free(s);
}

static struct kn_schema_entry *find(struct kn_schemas *s, int32_t id)
{
	int n = count(s);

	/* Configured entries without an id (registry mode) have id -1; a framing
	 * id is never negative. A handful of schemas: a scan beats hashing. */
	if (id < 0)
		return NULL;
	for (int i = 0; i < n; i++)
		if (s->e[i].id == id)
			return &s->e[i];
	for (int i = 0; s->cap > s->n_cfg && i < KN_SCHEMAS_REFUSED_MAX; i++)
		if (s->refused[i].id == id)
			return &s->refused[i];
	return NULL;
}

const struct kn_schema_entry *kn_schemas_find(const struct kn_schemas *s, int32_t id)
{
	return find((struct kn_schemas *)s, id);
}

/* id's slot among the refusals for now, or NULL. */
static struct kn_schema_entry *refused_slot(struct kn_schemas *s, int32_t id)
{
	for (int i = 0; i < KN_SCHEMAS_REFUSED_MAX; i++)
		if (s->refused[i].id == id)
			return &s->refused[i];
	return NULL;
}

static int append(struct kn_schemas *s, const struct kn_schema_entry *e)
{
	struct kn_schema_entry *was = find(s, e->id);

	if (was && was->retry_at_ms == 0)
		return -EEXIST;
	if (s->n >= s->cap)
		return -ENOSPC;
	if (was) /* refused for now: learned after all */
		was->id = -1;
	s->e[s->n] = *e;
	__atomic_store_n(&s->n, s->n + 1, __ATOMIC_RELEASE);
	return 0;
}

int kn_schemas_refuse(struct kn_schemas *s, int32_t id, const char *why, int64_t retry_at_ms)
{
	struct kn_schema_entry *slot = refused_slot(s, id), *was = find(s, id);

	if (was && !slot)
		return -EEXIST;
	if (!retry_at_ms) /* for good: with the learned ones */
		return append(s, &(struct kn_schema_entry){.id = id, .why = why});
	if (!slot) {
		slot = &s->refused[s->next_refused];
		s->next_refused = (s->next_refused + 1) % KN_SCHEMAS_REFUSED_MAX;
	}
	*slot = (struct kn_schema_entry){.id = id, .why = why, .retry_at_ms = retry_at_ms};
	return 0;
}

static int same_name(avro_schema_t a, avro_schema_t b)
{
	const char *na = avro_schema_namespace(a), *nb = avro_schema_namespace(b);

	return is_avro_record(a) && is_avro_record(b) &&
	       !strcmp(avro_schema_name(a), avro_schema_name(b)) &&
	       !strcmp(na ? na : "", nb ? nb : "");
}

int kn_schemas_learn(struct kn_schemas *s, int32_t id, const char *json, char *warn,
		     size_t warn_size)
{
	struct kn_schema_entry e = {.id = id};
	const struct kn_schema_cfg *sc = NULL;
	char why[400];
	int err;

	*warn = '\0';
	const struct kn_schema_entry *was = kn_schemas_find(s, id);
	if (was && was->retry_at_ms == 0)
		return -EEXIST;
	if (avro_schema_from_json_length(json, strlen(json), &e.schema)) {
		snprintf(warn, warn_size, "schema id %d: not a valid Avro schema: %s", (int)id,
			 avro_strerror());
		kn_log_tame(warn); /* avro-c quotes the registry's text back */
		e.schema = NULL;
		e.why = "registry schema invalid";
		return append(s, &e);
	}
	/* The configured schema of the same record: its type and roles. */
	for (int i = 0; i < s->n_cfg && !sc; i++)
		if (same_name(s->e[i].schema, e.schema))
			sc = &s->c->schemas[i], e.type = s->e[i].type;
	if (!sc) {
		const char *ns = is_avro_record(e.schema) ? avro_schema_namespace(e.schema) : NULL;
		snprintf(warn, warn_size,
			 "schema id %d is record '%s%s%s', whose full name no schemas[] file has",
			 (int)id, ns && *ns ? ns : "", ns && *ns ? "." : "",
			 is_avro_record(e.schema) ? avro_schema_name(e.schema) : "(not a record)");
		e.why = "record not configured";
	} else if ((err = kn_decoder_new(e.schema, (const char *const *)sc->roles, &e.dec, why,
					 sizeof(why)))) {
		snprintf(warn, warn_size, "schema id %d: %s", (int)id, why);
		e.why = "roles not in writer schema";
		if (err == -ENOMEM) {
			avro_schema_decref(e.schema);
			return err;
		}
	}
	if ((err = append(s, &e))) {
		kn_decoder_destroy(e.dec);
		avro_schema_decref(e.schema);
	}
	return err;
}

const struct kn_schema_entry *kn_schemas_match(const struct kn_schemas *s, avro_schema_t schema)
{
	for (int i = 0; i < s->n_cfg; i++)
		if (avro_schema_equal(s->e[i].schema, schema))
			return &s->e[i];
	return NULL;
}

int kn_schemas_count(const struct kn_schemas *s)
{
	return s->n_cfg;
}

int kn_schemas_total(const struct kn_schemas *s)
{
	return count(s);
}

const struct kn_schema_entry *kn_schemas_at(const struct kn_schemas *s, int i)
{
	return &s->e[i];
}
