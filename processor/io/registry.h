/* registry: a client of the Confluent Schema Registry REST API (v7), the one
 * that Confluent's registry, Apicurio's ccompat API and Karapace all serve.
 *
 * kanon asks it three things: the writer schema behind a framing id
 * (GET /schemas/ids/{id}), whether its own output schema is compatible with
 * a subject's latest version (POST /compatibility/subjects/{s}/versions/latest),
 * and the id of its output schema under a subject, registering it or only
 * looking it up (POST /subjects/{s}/versions, POST /subjects/{s}).
 *
 * HTTP and TLS are libcurl's: basic auth, a CA file, a client certificate.
 * Credentials never appear in a URL, an error string or a log line: they go
 * to libcurl as options, and a URL with userinfo is refused.
 *
 * Errors are sorted by what the caller should do about them:
 *   -EAGAIN  the registry could not answer (unreachable, timeout, 5xx, 429,
 *            a cancelled request): try again later; nothing is known
 *   -ENOENT  the registry itself answered (404 with its error_code 404xx)
 *            that the schema, subject or version does not exist
 *   -EACCES  the registry refused the credentials (401, 403)
 *   -EINVAL  any other answer that cannot be used (another 4xx, a
 *            malformed body, a schema that is not Avro or has references)
 * kn_registry_schema is stricter, because its answer decides the fate of
 * records: there only 40403 is -ENOENT and only a well-formed answer about
 * a schema kanon cannot use is -EINVAL; everything else is -EAGAIN.
 * errstr then says what happened, with the registry's own message.
 *
 * Not thread-safe: one client per thread (libcurl's easy handle, reused so
 * that the connection is kept alive). */
#ifndef KN_REGISTRY_H
#define KN_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kn_registry_opts {
	const char *url;       /* base URL, e.g. http://reg:8081 or .../apis/ccompat/v7 */
	const char *username;  /* basic auth; NULL or "": none */
	const char *password;  /* borrowed; never logged */
	const char *ca_file;   /* PEM bundle to verify the registry; NULL or "": system CAs */
	const char *cert_file; /* client certificate (mutual TLS); NULL or "": none */
	const char *key_file;  /* its private key */
	int64_t timeout_ms;    /* per request, connection included */
	bool (*cancel)(void);  /* true: abort the request under way (a stop) */
};

/* Checks a registry URL: http(s)://host[:port][/path], no userinfo, query,
 * fragment or spaces. Returns 0 or -EINVAL with errstr set. */
int kn_registry_check_url(const char *url, char *errstr, size_t errstr_size);

struct kn_registry;

/* Checks the options (a URL without userinfo, http or https) and prepares a
 * client; no request is made. Returns 0, -EINVAL or -ENOMEM (errstr set). */
int kn_registry_new(const struct kn_registry_opts *o, struct kn_registry **out, char *errstr,
		    size_t errstr_size);
void kn_registry_destroy(struct kn_registry *r);

/* The writer schema registered under id: *json receives its text (caller
 * frees with kn_free). */
int kn_registry_schema(struct kn_registry *r, int32_t id, char **json, char *errstr,
		       size_t errstr_size);

/* Whether schema_json may be added to subject under the subject's
 * compatibility rule: 0 compatible (or the subject has no version yet),
 * -EPERM not compatible (errstr lists the registry's reasons when it gives
 * them), or an error above. */
int kn_registry_compatible(struct kn_registry *r, const char *subject, const char *schema_json,
			   char *errstr, size_t errstr_size);

/* The subject of a topic's record values, Confluent's TopicNameStrategy
 * ("<topic>-value"), the name registry-aware clients look a topic's schema
 * up by. Writes it into buf (cut to size); returns buf. */
char *kn_registry_subject(const char *topic, char *buf, size_t size);

/* The id of schema_json under subject: registered as a new version when
 * register_it (idempotent: an identical schema keeps its id), else only
 * looked up (-ENOENT when the subject lacks it). */
int kn_registry_id(struct kn_registry *r, const char *subject, const char *schema_json,
		   int register_it, int32_t *id, char *errstr, size_t errstr_size);

#endif
