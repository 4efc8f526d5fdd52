#include "policy.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "embedded.h"
#include "kn_alloc.h"

#define MAX_TEXT 4096

struct term {
	const char *s; /* lower-cased */
	size_t len;
	int category;
};

struct lexicon {
	char **categories;
	int n_categories;
	struct term *terms;
	int n_terms;
	char *text; /* owns every string above */
};

struct kn_policy {
	const struct kn_config *c;
	struct lexicon sensitive, taxonomy;
	struct kn_policy_stats st;
	char lower[MAX_TEXT];
};

const char *kn_drop_reason_name(enum kn_drop_reason r)
{
	static const char *n[] = {"no_analytics_consent", "no_ads_consent", "erased",
				  "key_retired"};

	return (unsigned)r < KN_DROP_REASONS ? n[r] : "?";
}

static size_t lower_ascii(char *dst, const char *src, size_t n)
{
	if (n > MAX_TEXT)
		n = MAX_TEXT;
	for (size_t i = 0; i < n; i++)
		dst[i] = src[i] >= 'A' && src[i] <= 'Z' ? (char)(src[i] + 32) : src[i];
	return n;
}

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	char *e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

/* Parses "category: term, term" lines. text is taken over by the lexicon. */
static int lexicon_parse(struct lexicon *lx, char *text, const char *name, char *errstr,
			 size_t errsz)
{
	int line = 0;

	lx->text = text;
	for (char *save = NULL, *l = strtok_r(text, "\n", &save); l;
	     l = strtok_r(NULL, "\n", &save)) {
		line++;
		l = trim(l);
		if (!*l || *l == '#')
			continue;
		char *colon = strchr(l, ':');
		if (!colon) {
			snprintf(errstr, errsz, "%s:%d: expected 'category: term, term'", name,
				 line);
			return -EINVAL;
		}
		*colon = '\0';
		char **nc =
			kn_realloc(lx->categories, sizeof(*nc) * (size_t)(lx->n_categories + 1));
		if (!nc)
			return -ENOMEM;
		lx->categories = nc;
		nc[lx->n_categories] = trim(l);
		for (char *s2 = NULL, *t = strtok_r(colon + 1, ",", &s2); t;
		     t = strtok_r(NULL, ",", &s2)) {
			t = trim(t);
			if (!*t)
				continue;
			struct term *nt =
				kn_realloc(lx->terms, sizeof(*nt) * (size_t)(lx->n_terms + 1));
			if (!nt)
				return -ENOMEM;
			lx->terms = nt;
			lower_ascii(t, t, strlen(t));
			nt[lx->n_terms++] = (struct term){t, strlen(t), lx->n_categories};
		}
		lx->n_categories++;
	}
	return 0;
}

static int lexicon_load(struct lexicon *lx, const char *path, const char *builtin, char *errstr,
			size_t errsz)
{
	char *text;

	if (!strcmp(path, "builtin")) {
		text = kn_strdup(builtin);
	} else {
		FILE *f = fopen(path, "r");
		long n;
		if (!f) {
			snprintf(errstr, errsz, "%s: %s", path, strerror(errno));
			return -ENOENT;
		}
		fseek(f, 0, SEEK_END);
		n = ftell(f);
		fseek(f, 0, SEEK_SET);
		text = n >= 0 && n < (1 << 22) ? kn_malloc((size_t)n + 1) : NULL;
		if (text && fread(text, 1, (size_t)n, f) == (size_t)n)
			text[n] = '\0';
		else if (text) {
			kn_free(text);
			text = NULL;
		}
		fclose(f);
	}
	if (!text) {
		snprintf(errstr, errsz, "%s: unreadable", path);
		return -EIO;
	}
	return lexicon_parse(lx, text, path, errstr, errsz);
}

static void lexicon_free(struct lexicon *lx)
{
	kn_free(lx->categories);
	kn_free(lx->terms);
	kn_free(lx->text);
}

/* Index of the first category (in file order) with a term in lowered text. */
static int lexicon_match(const struct lexicon *lx, const char *lowered, size_t n)
{
	int best = -1;

	for (int i = 0; i < lx->n_terms; i++) {
		const struct term *t = &lx->terms[i];
		if ((best < 0 || t->category < best) && memmem(lowered, n, t->s, t->len))
			best = t->category;
	}
	return best;
}

int kn_policy_new(const struct kn_config *c, struct kn_policy **out, char *errstr,
		  size_t errstr_size)
{
	struct kn_policy *p = kn_calloc(1, sizeof(*p));
	int err;

	*out = NULL;
	if (!p) {
		snprintf(errstr, errstr_size, "out of memory");
		return -ENOMEM;
	}
	p->c = c;
	err = lexicon_load(&p->sensitive, c->sensitive_terms, KN_EMBED_SENSITIVE, errstr,
			   errstr_size);
	if (!err)
		err = lexicon_load(&p->taxonomy, c->query_taxonomy, KN_EMBED_TAXONOMY, errstr,
				   errstr_size);
	if (err) {
		kn_policy_destroy(p);
		return err;
	}
	*out = p;
	return 0;
}

void kn_policy_destroy(struct kn_policy *p)
{
	if (!p)
		return;
	lexicon_free(&p->sensitive);
	lexicon_free(&p->taxonomy);
	kn_free(p);
}

const char *kn_policy_sensitive(const struct kn_policy *p, const char *text, size_t len)
{
	struct kn_policy *mp = (struct kn_policy *)p; /* scratch buffer only */
	size_t n = lower_ascii(mp->lower, text, len);
	int i = lexicon_match(&p->sensitive, mp->lower, n);

	return i < 0 ? NULL : p->sensitive.categories[i];
}

const char *kn_policy_categorize(const struct kn_policy *p, const char *text, size_t len)
{
	if (kn_policy_sensitive(p, text, len))
		return "withheld";
	int i = lexicon_match(&p->taxonomy, p->lower, len > MAX_TEXT ? MAX_TEXT : len);
	return i < 0 ? "other" : p->taxonomy.categories[i];
}

static int consent(const struct kn_val *v, bool missing_allows)
{
	return v->type == KN_VAL_BOOL ? v->b : missing_allows;
}

int kn_policy_admit(struct kn_policy *p, const struct kn_event *ev, bool *minor,
		    enum kn_drop_reason *why)
{
	const struct kn_config *c = p->c;
	const struct kn_val *by = &ev->role[KN_ROLE_BIRTH_YEAR];

	if (!consent(&ev->role[KN_ROLE_CONSENT_ANALYTICS], c->missing_consent_allows)) {
		*why = KN_DROP_NO_ANALYTICS;
		p->st.dropped[*why]++;
		return -1;
	}
	if (!c->ads_optout_in_deid &&
	    !consent(&ev->role[KN_ROLE_CONSENT_ADS], c->missing_consent_allows)) {
		*why = KN_DROP_NO_ADS;
		p->st.dropped[*why]++;
		return -1;
	}
	if (by->type == KN_VAL_LONG) {
		time_t t = (time_t)(ev->role[KN_ROLE_TIMESTAMP].l / 1000);
		struct tm tm;
		gmtime_r(&t, &tm);
		*minor = tm.tm_year + 1900 - by->l <= c->minor_age;
	} else {
		*minor = c->unknown_age_is_minor;
	}
	p->st.minors += *minor;
	return 0;
}

/* Does a URL's host or path name something sensitive? The query string and
 * fragment are not looked at: they were never going to be emitted. */
static const char *url_sensitive(struct kn_policy *p, const struct kn_val *v)
{
	size_t n = 0;

	if (v->type != KN_VAL_STR)
		return NULL;
	while (n < v->s.len && v->s.p[n] != '?' && v->s.p[n] != '#')
		n++;
	return kn_policy_sensitive(p, v->s.p, n);
}

void kn_policy_finish(struct kn_policy *p, const struct kn_event *ev, struct kn_deid *d)
{
	const struct kn_val *q = &ev->role[KN_ROLE_QUERY];
	const struct kn_val *loc = &ev->role[KN_ROLE_CONSENT_LOCATION];
	struct kn_scrub_counts sc;

	if (!(loc->type == KN_VAL_BOOL && loc->b)) {
		d->geo_cell[0] = '\0';
		d->ip_prefix[0] = '\0';
		p->st.no_location_consent++;
	}
	d->query[0] = d->query_category[0] = '\0';
	d->emit_query = p->c->emit_scrubbed_query;
	d->sensitive = (q->type == KN_VAL_STR && kn_policy_sensitive(p, q->s.p, q->s.len)) ||
		       url_sensitive(p, &ev->role[KN_ROLE_URL]) ||
		       url_sensitive(p, &ev->role[KN_ROLE_CLICKED_URL]) ||
		       url_sensitive(p, &ev->role[KN_ROLE_REFERRER]);
	if (d->sensitive) {
		p->st.sensitive++;
		d->url_domain[0] = d->referrer_domain[0] = '\0';
		snprintf(d->query_category, sizeof(d->query_category), "withheld");
		return;
	}
	if (q->type != KN_VAL_STR)
		return;
	kn_scrub_query(q->s.p, q->s.len, d->query, &sc);
	p->st.scrubbed.url += sc.url;
	p->st.scrubbed.email += sc.email;
	p->st.scrubbed.ip += sc.ip;
	p->st.scrubbed.cn_id += sc.cn_id;
	p->st.scrubbed.card += sc.card;
	p->st.scrubbed.phone += sc.phone;
	p->st.scrubbed.num += sc.num;
	snprintf(d->query_category, sizeof(d->query_category), "%s",
		 kn_policy_categorize(p, d->query, strlen(d->query)));
}

const struct kn_policy_stats *kn_policy_stats(const struct kn_policy *p)
{
	return &p->st;
}
