#include "registry.h"

#include <curl/curl.h>
#include <errno.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "kn_alloc.h"
#include "log.h"

/* A registry answer larger than this is not a schema we want. */
#define BODY_MAX (4u << 20)

struct body {
	char *p;
	size_t n, cap;
	int too_big;
};

struct kn_registry {
	CURL *h;
	struct curl_slist *headers;
	char *base; /* without a trailing slash */
	struct body b;
	bool (*cancel)(void);
	int code; /* the registry's error_code in the last error answer; 0: none */
};

/* libcurl's progress callback: a non-zero return aborts the transfer, so a
 * stop does not wait out a registry that hangs. */
static int on_progress(void *opaque, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	struct kn_registry *r = opaque;

	(void)dt, (void)dn, (void)ut, (void)un;
	return r->cancel && r->cancel();
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init(void)
{
	/* Once per process, before any handle; libcurl's own cleanup is left
	 * to exit (other libraries in the process may share OpenSSL). */
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *opaque)
{
	struct body *b = opaque;
	size_t n = size * nmemb;

	if (b->n + n + 1 > BODY_MAX) {
		b->too_big = 1;
		return 0; /* aborts the transfer */
	}
	if (b->n + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->n + n + 1)
			cap *= 2;
		char *p = kn_realloc(b->p, cap);
		if (!p)
			return 0;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->n, data, n);
	b->n += n;
	b->p[b->n] = '\0';
	return n;
}

static int set_opts(struct kn_registry *r, const struct kn_registry_opts *o)
{
	CURL *h = r->h;
	int bad = 0;

	bad |= curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)o->timeout_ms) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)o->timeout_ms) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_WRITEDATA, &r->b) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_HTTPHEADER, r->headers) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_XFERINFODATA, r) != CURLE_OK;
	if (o->username && *o->username) {
		bad |= curl_easy_setopt(h, CURLOPT_HTTPAUTH, CURLAUTH_BASIC) != CURLE_OK;
		bad |= curl_easy_setopt(h, CURLOPT_USERNAME, o->username) != CURLE_OK;
		bad |= curl_easy_setopt(h, CURLOPT_PASSWORD, o->password ? o->password : "") !=
		       CURLE_OK;
	}
	if (o->ca_file && *o->ca_file)
		bad |= curl_easy_setopt(h, CURLOPT_CAINFO, o->ca_file) != CURLE_OK;
	if (o->cert_file && *o->cert_file)
		bad |= curl_easy_setopt(h, CURLOPT_SSLCERT, o->cert_file) != CURLE_OK;
	if (o->key_file && *o->key_file)
		bad |= curl_easy_setopt(h, CURLOPT_SSLKEY, o->key_file) != CURLE_OK;
	return bad ? -EINVAL : 0;
}

/* http(s)://host[:port][/path], without userinfo (credentials belong in
 * their own options, where they are not logged with the URL). */
int kn_registry_check_url(const char *url, char *errstr, size_t errstr_size)
{
	const char *rest = !strncmp(url, "http://", 7)	  ? url + 7
			   : !strncmp(url, "https://", 8) ? url + 8
							  : NULL;

	if (!rest || !*rest) {
		snprintf(errstr, errstr_size,
			 "schema registry URL must start with http:// or "
			 "https://");
		return -EINVAL;
	}
	if (memchr(rest, '@', strcspn(rest, "/"))) {
		snprintf(errstr, errstr_size,
			 "schema registry URL must not carry credentials: set "
			 "schema_registry.username and .password");
		return -EINVAL;
	}
	if (strpbrk(url, " \t\r\n?#")) {
		snprintf(errstr, errstr_size, "schema registry URL: no spaces, query or fragment");
		return -EINVAL;
	}
	/* The rest as curl will read it (a port above 65535, an empty host). */
	CURLU *u = curl_url();
	CURLUcode uc = u ? curl_url_set(u, CURLUPART_URL, url, 0) : CURLUE_OUT_OF_MEMORY;
	curl_url_cleanup(u);
	if (uc != CURLUE_OK) {
		snprintf(errstr, errstr_size, "schema registry URL: %s", curl_url_strerror(uc));
		return -EINVAL;
	}
	return 0;
}

int kn_registry_new(const struct kn_registry_opts *o, struct kn_registry **out, char *errstr,
		    size_t errstr_size)
{
	struct kn_registry *r;
	size_t n;
	int err;

	*out = NULL;
	if ((err = kn_registry_check_url(o->url, errstr, errstr_size)))
		return err;
	pthread_once(&curl_once, curl_init);
	if (!(r = kn_calloc(1, sizeof(*r))) || !(r->base = kn_strdup(o->url)) ||
	    !(r->h = curl_easy_init()))
		goto oom;
	r->cancel = o->cancel;
	n = strlen(r->base);
	while (n && r->base[n - 1] == '/')
		r->base[--n] = '\0';
	r->headers = curl_slist_append(NULL, "Accept: application/vnd.schemaregistry.v1+json, "
					     "application/json");
	if (!r->headers ||
	    !curl_slist_append(r->headers, "Content-Type: application/vnd.schemaregistry.v1+json"))
		goto oom;
	if (set_opts(r, o)) {
		snprintf(errstr, errstr_size, "schema registry: libcurl refused an option");
		kn_registry_destroy(r);
		return -EINVAL;
	}
	*out = r;
	return 0;
oom:
	kn_registry_destroy(r);
	snprintf(errstr, errstr_size, "out of memory");
	return -ENOMEM;
}

void kn_registry_destroy(struct kn_registry *r)
{
	if (!r)
		return;
	if (r->h)
		curl_easy_cleanup(r->h);
	curl_slist_free_all(r->headers);
	kn_free(r->b.p);
	kn_free(r->base);
	kn_free(r);
}

/* The registry's own error text ({"error_code": N, "message": "..."}),
 * or the start of the body. */
static void error_text(const struct body *b, int *code, char *out, size_t n)
{
	struct json_object *j = b->n ? json_tokener_parse(b->p) : NULL, *v;

	*code = 0;
	if (j && json_object_is_type(j, json_type_object) &&
	    json_object_object_get_ex(j, "error_code", &v) && json_object_is_type(v, json_type_int))
		*code = json_object_get_int(v);
	if (j && json_object_is_type(j, json_type_object) &&
	    json_object_object_get_ex(j, "message", &v) && json_object_is_type(v, json_type_string))
		snprintf(out, n, "%.300s", json_object_get_string(v));
	else
		snprintf(out, n, "%.200s", b->n ? b->p : "(empty body)");
	json_object_put(j);
	kn_log_tame(out); /* the registry's words, quoted */
}

/* One request: GET when body is NULL, else POST. Returns 0 with the answer
 * in r->b on a 2xx, else the error class of registry.h. */
static int request(struct kn_registry *r, const char *path, const char *body, const char *what,
		   char *errstr, size_t errstr_size)
{
	char url[2048], msg[400];
	long status = 0;
	CURLcode rc;

	if (snprintf(url, sizeof(url), "%s%s", r->base, path) >= (int)sizeof(url)) {
		snprintf(errstr, errstr_size, "%s: URL too long", what);
		return -EINVAL;
	}
	r->b.n = 0;
	r->b.too_big = 0;
	curl_easy_setopt(r->h, CURLOPT_URL, url);
	if (body) {
		curl_easy_setopt(r->h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(r->h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	} else {
		curl_easy_setopt(r->h, CURLOPT_HTTPGET, 1L);
	}
	r->code = 0;
	rc = curl_easy_perform(r->h);
	curl_easy_setopt(r->h, CURLOPT_POSTFIELDS, NULL); /* body is the caller's */
	if (rc != CURLE_OK) {
		snprintf(errstr, errstr_size, "%s: %s", what,
			 r->b.too_big ? "answer larger than 4 MiB" : curl_easy_strerror(rc));
		return r->b.too_big ? -EINVAL : -EAGAIN;
	}
	curl_easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &status);
	if (status >= 200 && status < 300 && r->b.n)
		return 0;
	error_text(&r->b, &r->code, msg, sizeof(msg));
	snprintf(errstr, errstr_size, "%s: HTTP %ld%s%s", what, status, *msg ? ": " : "", msg);
	if (status >= 500 || status == 429 || status == 408 || status < 200)
		return -EAGAIN;
	if (status == 401 || status == 403)
		return -EACCES;
	/* Only the registry's own "not found" (error_code 404xx) is an answer
	 * about the schema; a 404 from a proxy or a wrong path is not. */
	if (status == 404 && r->code >= 40400 && r->code <= 40499)
		return -ENOENT;
	return -EINVAL;
}

static struct json_object *parse(const struct body *b, const char *what, char *errstr,
				 size_t errstr_size)
{
	struct json_object *j = json_tokener_parse(b->p);

	if (j && json_object_is_type(j, json_type_object))
		return j;
	json_object_put(j);
	snprintf(errstr, errstr_size, "%s: the answer is not a JSON object", what);
	return NULL;
}

int kn_registry_schema(struct kn_registry *r, int32_t id, char **json, char *errstr,
		       size_t errstr_size)
{
	char path[64], what[64];
	struct json_object *j, *schema, *v;
	int err;

	*json = NULL;
	snprintf(path, sizeof(path), "/schemas/ids/%d", (int)id);
	snprintf(what, sizeof(what), "schema registry: schema id %d", (int)id);
	err = request(r, path, NULL, what, errstr, errstr_size);
	/* Only a registry's definite answer decides an id's records: "no such
	 * id" (40403), or a schema kanon cannot use. Anything else (a
	 * redirect, another 4xx, a body that is not the registry's JSON) says
	 * something about the way to the registry: the records wait. */
	if (err == -ENOENT)
		return r->code == 40403 ? -ENOENT : -EAGAIN;
	if (err == -EINVAL)
		return -EAGAIN;
	if (err)
		return err;
	if (!(j = parse(&r->b, what, errstr, errstr_size)))
		return -EAGAIN;
	if (!json_object_object_get_ex(j, "schema", &schema) ||
	    !json_object_is_type(schema, json_type_string)) {
		snprintf(errstr, errstr_size, "%s: the answer has no schema", what);
		err = -EAGAIN;
	} else if (json_object_object_get_ex(j, "schemaType", &v) &&
		   !json_object_is_type(v, json_type_null) &&
		   (!json_object_is_type(v, json_type_string) ||
		    strcmp(json_object_get_string(v), "AVRO"))) {
		snprintf(errstr, errstr_size, "%s: a %.20s schema, not Avro", what,
			 json_object_is_type(v, json_type_string) ? json_object_get_string(v)
								  : "?");
		err = -EINVAL;
	} else if (json_object_object_get_ex(j, "references", &v) &&
		   !json_object_is_type(v, json_type_null) &&
		   (!json_object_is_type(v, json_type_array) || json_object_array_length(v) > 0)) {
		snprintf(errstr, errstr_size, "%s: schema references are not supported", what);
		err = -EINVAL;
	} else if (!(*json = kn_strdup(json_object_get_string(schema)))) {
		snprintf(errstr, errstr_size, "out of memory");
		err = -ENOMEM;
	}
	json_object_put(j);
	return err;
}

/* {"schema": "<text>"}; caller frees. */
static char *schema_body(const char *schema_json)
{
	struct json_object *j = json_object_new_object(), *v = json_object_new_string(schema_json);
	char *out = NULL;

	if (j && v && !json_object_object_add(j, "schema", v))
		out = kn_strdup(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
	else
		json_object_put(v); /* not taken over by j */
	json_object_put(j);
	return out;
}

/* A subject name from a topic name: Kafka's topic characters need no escaping. */
static int subject_ok(const char *subject, char *errstr, size_t errstr_size)
{
	if (!*subject || strspn(subject, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
					 "0123456789._-") != strlen(subject)) {
		snprintf(errstr, errstr_size,
			 "schema registry: subject '%.200s' has characters "
			 "outside [A-Za-z0-9._-]",
			 subject);
		return -EINVAL;
	}
	return 0;
}

/* Why a schema is not compatible, as the registry words it: Confluent's
 * verbose answer lists "messages"; Apicurio's ccompat API gives one
 * "reason" string instead. Tamed: the registry's text. */
static void reasons(struct json_object *j, char *out, size_t n)
{
	struct json_object *m;
	size_t off = 0;

	*out = '\0';
	if (json_object_object_get_ex(j, "messages", &m) &&
	    json_object_is_type(m, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(m) && off < n; i++) {
			const char *t = json_object_get_string(json_object_array_get_idx(m, i));
			off += (size_t)snprintf(out + off, n - off, "%s%.300s", i ? "; " : ": ",
						t ? t : "?");
		}
	} else if (json_object_object_get_ex(j, "reason", &m) &&
		   json_object_is_type(m, json_type_string)) {
		snprintf(out, n, ": %.900s", json_object_get_string(m));
	}
	kn_log_tame(out);
}

int kn_registry_compatible(struct kn_registry *r, const char *subject, const char *schema_json,
			   char *errstr, size_t errstr_size)
{
	char path[512], what[400], why[1200];
	struct json_object *j, *v;
	char *body;
	int err;

	if ((err = subject_ok(subject, errstr, errstr_size)))
		return err;
	snprintf(path, sizeof(path), "/compatibility/subjects/%s/versions/latest?verbose=true",
		 subject);
	snprintf(what, sizeof(what), "schema registry: compatibility with '%s'", subject);
	if (!(body = schema_body(schema_json))) {
		snprintf(errstr, errstr_size, "out of memory");
		return -ENOMEM;
	}
	err = request(r, path, body, what, errstr, errstr_size);
	kn_free(body);
	if (err == -ENOENT) /* no such subject or version yet: anything goes */
		return 0;
	if (err)
		return err;
	if (!(j = parse(&r->b, what, errstr, errstr_size)))
		return -EINVAL;
	if (!json_object_object_get_ex(j, "is_compatible", &v)) {
		snprintf(errstr, errstr_size, "%s: the answer has no is_compatible", what);
		err = -EINVAL;
	} else if (!json_object_get_boolean(v)) {
		reasons(j, why, sizeof(why));
		snprintf(errstr, errstr_size, "%s: not compatible%s", what, why);
		err = -EPERM;
	}
	json_object_put(j);
	return err;
}

char *kn_registry_subject(const char *topic, char *buf, size_t size)
{
	snprintf(buf, size, "%s-value", topic);
	return buf;
}

int kn_registry_id(struct kn_registry *r, const char *subject, const char *schema_json,
		   int register_it, int32_t *id, char *errstr, size_t errstr_size)
{
	char path[512], what[400];
	struct json_object *j, *v;
	char *body;
	int err;

	if ((err = subject_ok(subject, errstr, errstr_size)))
		return err;
	snprintf(path, sizeof(path), "/subjects/%s%s", subject, register_it ? "/versions" : "");
	snprintf(what, sizeof(what), "schema registry: %s '%s'",
		 register_it ? "registering under" : "looking up in", subject);
	if (!(body = schema_body(schema_json))) {
		snprintf(errstr, errstr_size, "out of memory");
		return -ENOMEM;
	}
	err = request(r, path, body, what, errstr, errstr_size);
	kn_free(body);
	if (err)
		return err;
	if (!(j = parse(&r->b, what, errstr, errstr_size)))
		return -EINVAL;
	if (!json_object_object_get_ex(j, "id", &v) || !json_object_is_type(v, json_type_int) ||
	    json_object_get_int64(v) < 0 || json_object_get_int64(v) > INT32_MAX) {
		snprintf(errstr, errstr_size, "%s: the answer has no valid id", what);
		err = -EINVAL;
	} else {
		*id = (int32_t)json_object_get_int64(v);
	}
	json_object_put(j);
	return err;
}
