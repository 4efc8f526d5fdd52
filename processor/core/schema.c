#include "schema.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "kn_alloc.h"

struct kn_schemas {
	struct kn_schema_entry *e;
	int n;
};

int kn_schema_read_file(const char *path, avro_schema_t *out, char *errstr, size_t errstr_size)
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
		err = -EINVAL;
	}
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
	if (!s || !(s->e = kn_calloc((size_t)c->n_schemas, sizeof(*s->e)))) {
		kn_free(s);
		snprintf(errstr, errstr_size, "out of memory");
		return -ENOMEM;
	}
	for (int i = 0; i < c->n_schemas; i++) {
		const struct kn_schema_cfg *sc = &c->schemas[i];
		struct kn_schema_entry *e = &s->e[s->n];
		err = kn_schema_read_file(sc->file, &e->schema, why, sizeof(why));
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
	*out = s;
	return 0;
}

void kn_schemas_destroy(struct kn_schemas *s)
{
	if (!s)
		return;
	for (int i = 0; i < s->n; i++) {
		kn_decoder_destroy(s->e[i].dec);
		avro_schema_decref(s->e[i].schema);
	}
	kn_free(s->e);
	kn_free(s);
}

const struct kn_schema_entry *kn_schemas_find(const struct kn_schemas *s, int32_t id)
{
	/* A handful of schemas: a scan beats hashing. */
	for (int i = 0; i < s->n; i++)
		if (s->e[i].id == id)
			return &s->e[i];
	return NULL;
}

const struct kn_schema_entry *kn_schemas_match(const struct kn_schemas *s, avro_schema_t schema)
{
	for (int i = 0; i < s->n; i++)
		if (avro_schema_equal(s->e[i].schema, schema))
			return &s->e[i];
	return NULL;
}

int kn_schemas_count(const struct kn_schemas *s)
{
	return s->n;
}

const struct kn_schema_entry *kn_schemas_at(const struct kn_schemas *s, int i)
{
	return &s->e[i];
}
