#include "sreg.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "embedded.h" /* the output schemas, as compiled in */
#include "kn_alloc.h"
#include "log.h"
#include "stop.h"

int kn_sreg_open(const struct kn_config *c, struct kn_registry **out, char *errstr,
		 size_t errstr_size)
{
	struct kn_registry_opts o = {c->registry_url,	     c->registry_username,
				     c->registry_password,   c->registry_ca_file,
				     c->registry_cert_file,  c->registry_key_file,
				     c->registry_timeout_ms, kn_stop_requested};

	*out = NULL;
	return c->registry_url[0] ? kn_registry_new(&o, out, errstr, errstr_size) : 0;
}

/* One output: compatible with its subject, then its id (dry: registers
 * nothing, and *id is -1 where it would have). */
static int output_id(struct kn_registry *r, const struct kn_config *c, const char *topic,
		     const char *schema, bool dry, int32_t *id, char *errstr, size_t errstr_size)
{
	char subject[300];
	int err;

	*id = -1;
	kn_registry_subject(topic, subject, sizeof(subject));
	if (c->registry_register &&
	    (err = kn_registry_compatible(r, subject, schema, errstr, errstr_size)))
		return err;
	if (dry && c->registry_register)
		return 0;
	err = kn_registry_id(r, subject, schema, c->registry_register, id, errstr, errstr_size);
	if (err == -ENOENT && !c->registry_register)
		snprintf(errstr + strlen(errstr), errstr_size - strlen(errstr),
			 " (schema_registry.register_outputs is false: register kanon's schema "
			 "under '%s' first)",
			 subject);
	return err;
}

/* Asks again while the registry does not answer, until deadline or a stop. */
static int output_id_wait(struct kn_registry *r, const struct kn_config *c, const char *topic,
			  const char *schema, bool dry, int32_t *id, char *errstr,
			  size_t errstr_size)
{
	int64_t deadline = kn_mono_ms() + (dry ? 0 : c->registry_startup_wait_ms), pause = 200;
	bool said = false;
	int err;

	while ((err = output_id(r, c, topic, schema, dry, id, errstr, errstr_size)) == -EAGAIN &&
	       !dry) {
		if (!said)
			kn_warn("registry", "%s; asking again for up to %lld s", errstr,
				(long long)(c->registry_startup_wait_ms / 1000));
		said = true;
		for (int64_t t = kn_mono_ms() + pause; kn_mono_ms() < t;) {
			if (kn_stop_requested())
				return -ECANCELED;
			kn_sleep_ms(50);
		}
		if (kn_mono_ms() >= deadline)
			return err;
		pause = pause * 2 > 5000 ? 5000 : pause * 2;
	}
	return err;
}

int kn_sreg_outputs(struct kn_registry *r, const struct kn_config *c, int role, bool dry,
		    struct kn_config *ids, char *errstr, size_t errstr_size)
{
	const struct {
		bool mine;
		const char *topic, *schema, *name;
		int64_t *id;
	} out[] = {
		{role == KN_RUN_ALL || role == KN_RUN_DEID, c->topic_output, KN_DEID_SCHEMA_JSON,
		 "DeidEvent", &ids->deid_schema_id},
		{c->n_aggs && (role == KN_RUN_ALL || role == KN_RUN_RELEASE), c->agg_topic,
		 KN_AGG_SCHEMA_JSON, "AdAggregate", &ids->agg_schema_id},
		{c->n_aggs && (role == KN_RUN_ALL || role == KN_RUN_RELEASE), c->agg_stats_topic,
		 KN_AGG_STATS_SCHEMA_JSON, "AggWindowStats", &ids->agg_stats_schema_id},
	};
	char subject[300];
	int32_t id;
	int err;

	for (size_t i = 0; i < sizeof(out) / sizeof(out[0]); i++) {
		if (!out[i].mine)
			continue;
		if ((err = output_id_wait(r, c, out[i].topic, out[i].schema, dry, &id, errstr,
					  errstr_size)))
			return err;
		if (dry)
			continue;
		*out[i].id = id;
		kn_info("registry", "%s on %s is schema id %d (subject %s)", out[i].name,
			out[i].topic, (int)id,
			kn_registry_subject(out[i].topic, subject, sizeof(subject)));
	}
	return 0;
}

int kn_sreg_learn(struct kn_registry *r, struct kn_schemas *s, int32_t id, char *errstr,
		  size_t errstr_size)
{
	char warn[600];
	char *json;
	int err = kn_registry_schema(r, id, &json, errstr, errstr_size);

	if (err == -EACCES) /* a credentials problem, not the id's: hold */
		err = -EAGAIN;
	if (err == -EAGAIN || err == -ENOENT || err == -ENOMEM)
		return err;
	if (!err) {
		err = kn_schemas_learn(s, id, json, warn, sizeof(warn));
		kn_free(json);
		if (!err && warn[0])
			kn_warn("registry", "%s: its records go to the dead-letter topic", warn);
		else if (!err)
			kn_info("registry", "schema id %d learned", (int)id);
	} else {
		/* A well-formed answer about a schema kanon cannot use (not
		 * Avro, references): its records are dead letters for good. */
		kn_warn("registry", "%s: its records go to the dead-letter topic", errstr);
		err = kn_schemas_refuse(s, id, "registry schema unusable", 0);
	}
	if (err == -ENOSPC) {
		kn_warn("registry",
			"more than %d schema ids learned: records of id %d go to the dead-letter "
			"topic",
			KN_SCHEMAS_LEARN_MAX, (int)id);
		err = kn_schemas_refuse(s, id, "too many schema ids",
					kn_mono_ms() + KN_SREG_RETRY_MS);
	}
	return err == -EEXIST ? 0 : err;
}

int kn_sreg_check(const struct kn_config *c, char *errstr, size_t errstr_size)
{
	struct kn_registry *r;
	struct kn_config ids = *c;
	int err = kn_sreg_open(c, &r, errstr, errstr_size);

	if (!err && r)
		err = kn_sreg_outputs(r, c, c->n_aggs ? c->role : KN_RUN_DEID, true, &ids, errstr,
				      errstr_size);
	kn_registry_destroy(r);
	return err;
}
