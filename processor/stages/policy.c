#include "policy.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "clock.h"
#include "embedded.h"
#include "fold.h"
#include "kn_alloc.h"
#include "url.h"

#define MAX_TEXT 4096

struct term {
	const char *s; /* folded and squeezed (fold.h), like the text it is matched in */
	size_t len;
	int category;
	bool ascii; /* matched only at the start of a word, so "std" is not in "bestdeal" */
	bool whole; /* ...and to a word's end: its last word has at most four letters */
	bool glued; /* "term*" in the file: in a host name, also a glued word's prefix */
};

/* Terms are found through their first two bytes: a text of n bytes costs n
 * bucket looks and a memcmp per term that shares them, not a scan per term
 * (a few hundred terms made that 3 us a query). */
#define BUCKETS 1024

struct lexicon {
	char **categories;
	int n_categories;
	struct term *terms;
	int n_terms;
	char *text;   /* owns the category names */
	char *folded; /* owns the terms */
	int *next;    /* per term: the next one in its bucket, or -1 */
	int *single;  /* the (rare) one-byte terms: looked for at every position */
	int n_single;
	int head[BUCKETS]; /* first term of each bucket, or -1 */
};

struct kn_policy {
	const struct kn_config *c;
	struct lexicon sensitive, taxonomy;
	struct kn_policy_stats st;
	char folded[MAX_TEXT];
};

const char *kn_drop_reason_name(enum kn_drop_reason r)
{
	static const char *n[] = {"no_analytics_consent", "no_ads_consent", "erased", "key_retired",
				  "minor"};

	return (unsigned)r < KN_DROP_REASONS ? n[r] : "?";
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

static unsigned bucket(const char *s)
{
	return ((unsigned char)s[0] * 31u + (unsigned char)s[1]) % BUCKETS;
}

/* Buckets the folded terms; a term may not be empty (it would match all). */
static int lexicon_index(struct lexicon *lx)
{
	lx->next = kn_malloc(sizeof(int) * (size_t)(lx->n_terms + 1));
	lx->single = kn_malloc(sizeof(int) * (size_t)(lx->n_terms + 1));
	if (!lx->next || !lx->single)
		return -ENOMEM;
	for (int b = 0; b < BUCKETS; b++)
		lx->head[b] = -1;
	/* Backwards, so a bucket lists its terms in file order. */
	for (int i = lx->n_terms - 1; i >= 0; i--) {
		const struct term *t = &lx->terms[i];
		if (t->len == 1) {
			lx->single[lx->n_single++] = i;
		} else if (t->len > 1) {
			unsigned b = bucket(t->s);
			lx->next[i] = lx->head[b];
			lx->head[b] = i;
		}
	}
	return 0;
}

/* Whether every word of an ASCII term has at least three letters. */
static bool long_words(const char *s, size_t n)
{
	size_t w = 0;

	for (size_t i = 0; i <= n; i++) {
		if (i < n && s[i] != ' ') {
			w++;
			continue;
		}
		if (w < 3)
			return false;
		w = 0;
	}
	return true;
}

/* A term of several English words is also looked for with its words joined:
 * hosts and CamelCase paths have no spaces ("plannedparenthood.org",
 * "/MentalHealth"), when every word has three letters or more ("in debt"
 * joined would be in "indebted to you"). The copy goes after the folded
 * originals and ends as its last word did. */
static int lexicon_join(struct lexicon *lx, size_t off)
{
	int n = lx->n_terms;

	for (int i = 0; i < n; i++) {
		const struct term *t = &lx->terms[i];
		if (!t->ascii || !memchr(t->s, ' ', t->len) || !long_words(t->s, t->len))
			continue;
		struct term *nt = kn_realloc(lx->terms, sizeof(*nt) * (size_t)(lx->n_terms + 1));
		if (!nt)
			return -ENOMEM;
		lx->terms = nt;
		t = &nt[i];
		char *j = lx->folded + off;
		size_t len = 0;
		for (size_t k = 0; k < t->len; k++)
			if (t->s[k] != ' ')
				j[len++] = t->s[k];
		j[len] = '\0';
		nt[lx->n_terms++] = (struct term){j, len, t->category, true, t->whole, false};
		off += len + 1;
	}
	return 0;
}

/* Folds every term the way texts are folded before matching. */
static int lexicon_fold(struct lexicon *lx)
{
	size_t cap = 0, off = 0;
	int err;

	for (int i = 0; i < lx->n_terms; i++) /* NFKC may grow a term; and its joined copy */
		cap += 2 * (4 * lx->terms[i].len + 1);
	if (!(lx->folded = kn_malloc(cap ? cap : 1)))
		return -ENOMEM;
	for (int i = 0; i < lx->n_terms; i++) {
		struct term *t = &lx->terms[i];
		size_t n = kn_fold(t->s, t->len, lx->folded + off, 4 * t->len + 1, KN_FOLD_SQUEEZE);
		t->s = lx->folded + off;
		t->len = n;
		for (size_t k = 0; k < n; k++)
			t->ascii &= !((unsigned char)t->s[k] & 0x80);
		const char *sp = memrchr(t->s, ' ', n);
		t->whole = n - (sp ? (size_t)(sp - t->s) + 1 : 0) <= 4;
		off += n + 1;
	}
	if ((err = lexicon_join(lx, off)))
		return err;
	return lexicon_index(lx);
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
		if (strlen(trim(l)) >= KN_FAMILY_MAX) {
			snprintf(errstr, errsz, "%s:%d: category name longer than %d bytes", name,
				 line, KN_FAMILY_MAX - 1);
			return -EINVAL;
		}
		char **nc =
			kn_realloc(lx->categories, sizeof(*nc) * (size_t)(lx->n_categories + 1));
		if (!nc)
			return -ENOMEM;
		lx->categories = nc;
		nc[lx->n_categories] = trim(l);
		for (char *s2 = NULL, *t = strtok_r(colon + 1, ",", &s2); t;
		     t = strtok_r(NULL, ",", &s2)) {
			t = trim(t);
			size_t tl = strlen(t);
			bool glued = tl > 1 && t[tl - 1] == '*';
			if (glued)
				t[--tl] = '\0';
			if (!tl)
				continue;
			struct term *nt =
				kn_realloc(lx->terms, sizeof(*nt) * (size_t)(lx->n_terms + 1));
			if (!nt)
				return -ENOMEM;
			lx->terms = nt;
			nt[lx->n_terms++] =
				(struct term){t, tl, lx->n_categories, true, false, glued};
		}
		lx->n_categories++;
	}
	return lexicon_fold(lx);
}

static int lexicon_load(struct lexicon *lx, const char *path, const char *builtin, char *errstr,
			size_t errsz)
{
	char *text;

	if (!strcmp(path, "builtin")) {
		text = kn_strdup(builtin);
	} else {
		struct stat st;
		FILE *f = NULL;
		long n;
		if (stat(path, &st)) {
			snprintf(errstr, errsz, "%s: %s", path, strerror(errno));
			return -ENOENT;
		}
		if (!S_ISREG(st.st_mode)) { /* a FIFO would hang fopen */
			snprintf(errstr, errsz, "%s: not a regular file", path);
			return -EINVAL;
		}
		if (!(f = fopen(path, "r"))) {
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
	int err = lexicon_parse(lx, text, path, errstr, errsz);
	if (!err && !lx->n_terms) { /* an empty list would switch a rule off silently */
		snprintf(errstr, errsz, "%s: no 'category: term, ...' line", path);
		return -EINVAL;
	}
	return err;
}

/* lexicon_load, its error naming the option (opt) that gave the path. */
static int lexicon_load_opt(struct lexicon *lx, const char *opt, const char *path,
			    const char *builtin, char *errstr, size_t errsz)
{
	char why[512];
	int err = lexicon_load(lx, path, builtin, why, sizeof(why));

	if (err)
		snprintf(errstr, errsz, "%s: %s", opt, why);
	return err;
}

static void lexicon_free(struct lexicon *lx)
{
	kn_free(lx->categories);
	kn_free(lx->terms);
	kn_free(lx->text);
	kn_free(lx->folded);
	kn_free(lx->next);
	kn_free(lx->single);
}

static bool ascii_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool ascii_alnum(char c)
{
	return (c >= '0' && c <= '9') || ascii_alpha(c);
}

/* Whether text[i, n) is the end of a word after an inflection: plural,
 * past, gerund, agent, or LGBT's Q ("gays", "jailed", "lgbtq"). */
static bool inflected_end(const char *text, size_t n, size_t i)
{
	static const char *const sfx[] = {"s", "es", "ed", "ing", "er", "ers", "q", "qia"};

	for (size_t k = 0; k < sizeof(sfx) / sizeof(sfx[0]); k++) {
		size_t l = strlen(sfx[k]);
		if (l <= n - i && !memcmp(text + i, sfx[k], l) &&
		    (i + l == n || !ascii_alnum(text[i + l])))
			return true;
	}
	return false;
}

/* Words that begin with a glued term ("term*" in the lexicon) by chance:
 * in a host name, where labels glue words, such a term is a prefix
 * ("gayhealth.com", "sexshop.com", "hivplus.com"), except before these. */
static bool benign_host_word(const char *w, size_t n)
{
	/* A trailing '$': that word whole, not a prefix ("gaya" is not
	 * "gayasian", "sexto" not "sextoys"). */
	static const char *const words[] = {
		"hive",	       "hivi$",	  "hivos$", "gaylord",	 "gaynor",  "gayatri",
		"gayathri",    "gaydon",  "gayle$", "gaya$",	 "gaye$",   "gayety",
		"sexton",      "sextant", "sextet", "sextuplet", "sexism",  "sexist",
		"sexagesimal", "sexta$",  "sexto$", "sexenio",	 "sextio$", "sexpistol",
		"aidsland",    "ivfuture"};

	for (size_t k = 0; k < sizeof(words) / sizeof(words[0]); k++) {
		size_t l = strlen(words[k]);
		bool whole = words[k][l - 1] == '$';
		l -= whole;
		if (l <= n && !memcmp(w, words[k], l) && (!whole || l == n || !ascii_alnum(w[l])))
			return true;
	}
	return false;
}

/* Does t occur at text + i of folded text: anywhere for CJK terms; for
 * ASCII ones at a word start (so longer terms are stems: "psychiatr" finds
 * "psychiatrist"), and to a word's end, inflections allowed, when its last
 * word is short ("gay" is in "gays" but not in "gaydon", "std" not in
 * "standard", "na org" not in "na organic"). In a host name (host) a glued
 * term is also a prefix ("gayhealth") unless the word is a
 * benign_host_word, and one of four letters or more starts after digits
 * too ("91porn"). */
static bool term_at(const struct term *t, const char *text, size_t n, size_t i, bool host)
{
	if (t->len > n - i || memcmp(text + i, t->s, t->len))
		return false;
	if (!t->ascii)
		return true;
	size_t e = i + t->len;
	bool glued = host && t->glued && t->len >= 3;
	bool starts = i == 0 ||
		      !(glued && t->len >= 4 ? ascii_alpha(text[i - 1]) : ascii_alnum(text[i - 1]));
	bool ends = e == n || !ascii_alnum(text[e]) || inflected_end(text, n, e) ||
		    (glued && !benign_host_word(text + i, n - i));
	return starts && (!t->whole || ends);
}

/* Index of the first category (in file order) with a term in folded text
 * (a host name's, with host). */
static int lexicon_match(const struct lexicon *lx, const char *folded, size_t n, bool host)
{
	int best = -1;

	for (size_t i = 0; i < n && best != 0; i++) {
		for (int k = 0; k < lx->n_single; k++) {
			const struct term *t = &lx->terms[lx->single[k]];
			if ((best < 0 || t->category < best) && term_at(t, folded, n, i, host))
				best = t->category;
		}
		if (i + 1 == n)
			break;
		for (int k = lx->head[bucket(folded + i)]; k >= 0; k = lx->next[k]) {
			const struct term *t = &lx->terms[k];
			if ((best < 0 || t->category < best) && term_at(t, folded, n, i, host))
				best = t->category;
		}
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
	err = kn_fold_init(errstr, errstr_size);
	if (!err)
		err = lexicon_load_opt(&p->sensitive, "policy.sensitive_terms", c->sensitive_terms,
				       KN_EMBED_SENSITIVE, errstr, errstr_size);
	if (!err)
		err = lexicon_load_opt(&p->taxonomy, "policy.query_taxonomy", c->query_taxonomy,
				       KN_EMBED_TAXONOMY, errstr, errstr_size);
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

/* A text the fold could not take whole (over KN_FOLD_IN_MAX bytes, or one
 * that NFKC grows past the fold's output: U+FDFA, 3 bytes, becomes 33) is
 * also folded in pieces that fit, each overlapping the last by more than a
 * term's spelling. */
#define PIECE	      320
#define PIECE_OVERLAP 96

/* Where a piece may end at or before s + i (i > 128): after an ASCII byte
 * that is neither a letter, a digit nor a '%' within 64 bytes back, so a
 * cut makes no word start or end that the text does not have and splits
 * no run of escapes (a GBK pair); else at a character's start. */
static size_t piece_cut(const char *s, size_t i)
{
	for (size_t k = i; k + 64 > i; k--)
		if (!ascii_alnum(s[k - 1]) && s[k - 1] != '%' && !((unsigned char)s[k - 1] & 0x80))
			return k;
	for (int k = 0; k < 3 && ((unsigned char)s[i] & 0xc0) == 0x80; k++)
		i--;
	return s[i - 1] == '%' ? i - 1 : s[i - 2] == '%' ? i - 2 : i;
}

/* The index of a sensitive category in text folded whole, or -1; *cut: the
 * fold did not take all of it. */
static int sensitive_fold(struct kn_policy *p, const char *text, size_t len, unsigned flags,
			  bool host, bool *cut)
{
	size_t n = kn_fold(text, len, p->folded, sizeof(p->folded), flags | KN_FOLD_SQUEEZE);
	int i;

	*cut = len > KN_FOLD_IN_MAX || n + 8 >= sizeof(p->folded);
	i = lexicon_match(&p->sensitive, p->folded, n, host);
	/* escapes that read as UTF-8 and as GBK alike: both ways */
	if (i < 0 && (flags & KN_FOLD_URL) &&
	    memchr(text, '%', len < KN_FOLD_IN_MAX ? len : KN_FOLD_IN_MAX) &&
	    kn_fold_gbk_ambiguous(text, len)) {
		n = kn_fold(text, len, p->folded, sizeof(p->folded),
			    flags | KN_FOLD_GBK | KN_FOLD_SQUEEZE);
		i = lexicon_match(&p->sensitive, p->folded, n, host);
	}
	return i;
}

/* The sensitive category folded text matches (read as a host name's, with
 * host), or NULL; a text the fold cut is read in pieces as well, so that no
 * padding hides a term behind it. */
static const char *sensitive_in(struct kn_policy *p, const char *text, size_t len, unsigned flags,
				bool host)
{
	bool cut, ignored;
	int i = sensitive_fold(p, text, len, flags, host, &cut);

	/* A piece ends at most 66 bytes short of PIECE after its start, and
	 * the next starts at most PIECE_OVERLAP + 66 before that end: always
	 * forward. */
	for (size_t at = 0; i < 0 && cut && len > PIECE;) {
		size_t end = at + PIECE < len ? piece_cut(text, at + PIECE) : len;
		i = sensitive_fold(p, text + at, end - at, flags, host, &ignored);
		if (end == len)
			break;
		at = piece_cut(text, end - PIECE_OVERLAP);
	}
	return i < 0 ? NULL : p->sensitive.categories[i];
}

const char *kn_policy_sensitive(const struct kn_policy *p, const char *text, size_t len)
{
	/* Percent- and punycode-decoded too: people paste URLs and hosts into
	 * search boxes. The cast: only the scratch buffer is written. */
	return sensitive_in((struct kn_policy *)p, text, len, KN_FOLD_URL, false);
}

/* Placeholders (<PHONE>, <CARD>, ...) are scrubbed data, not words: they
 * are never matched against the taxonomy ("phone" is a tech term). */
static size_t drop_placeholders(const char *in, size_t len, char *out)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		const char *end;
		if (in[i] == '<' && (end = memchr(in + i, '>', len - i)) && end - in - i <= 8 &&
		    end - in - i >= 3) {
			size_t k = i + 1;
			while (k < (size_t)(end - in) &&
			       ((in[k] >= 'A' && in[k] <= 'Z') || in[k] == '_'))
				k++;
			if (k == (size_t)(end - in)) {
				out[n++] = ' ';
				i = k;
				continue;
			}
		}
		out[n++] = in[i];
	}
	return n;
}

const char *kn_policy_categorize(const struct kn_policy *p, const char *text, size_t len)
{
	struct kn_policy *mp = (struct kn_policy *)p; /* scratch buffer only */
	char words[MAX_TEXT];
	size_t n;

	if (len > MAX_TEXT)
		len = MAX_TEXT;
	/* One fold serves both lexicons: the sensitive check sees exactly the
	 * text the taxonomy sees (callers check the unscrubbed text as well). */
	n = drop_placeholders(text, len, words);
	n = kn_fold(words, n, mp->folded, sizeof(mp->folded), KN_FOLD_SQUEEZE);
	if (lexicon_match(&p->sensitive, mp->folded, n, false) >= 0)
		return "withheld";
	int i = lexicon_match(&p->taxonomy, mp->folded, n, false);
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
		*minor = kn_utc_year(ev->role[KN_ROLE_TIMESTAMP].l) - by->l <= c->minor_age;
	} else {
		*minor = c->unknown_age_is_minor;
	}
	p->st.minors += *minor;
	if (*minor && !c->minors_in_deid) {
		*why = KN_DROP_MINOR;
		p->st.dropped[*why]++;
		return -1;
	}
	return 0;
}

/* A URL's text up to its query string, as logged. */
static const char *url_text_sensitive(struct kn_policy *p, const char *u, size_t len)
{
	size_t n = 0;

	while (n < len && u[n] != '?' && u[n] != '#')
		n++;
	return sensitive_in(p, u, n, KN_FOLD_URL, false);
}

/* Does a URL name something sensitive before its query string? It is read
 * as a browser reads it (url.h: tabs and newlines inside deleted,
 * "http:\\host" and "x://a\\@host" hosts as a browser finds them; and
 * "mailto:a@host" too). All of
 * it is read as text (userinfo, host and path: "http://pornhub.com@x/"
 * too), and its host once more as a host name (term_at: its labels glue
 * words). The query string and fragment are not looked at: they were
 * never going to be emitted. A URL too long to clean whole is read as
 * logged, too. */
static const char *url_sensitive(struct kn_policy *p, const struct kn_val *v)
{
	char buf[KN_URL_CLEAN_MAX];
	const char *u, *cat;
	size_t n, cut = 0, at, hn;

	if (v->type != KN_VAL_STR)
		return NULL;
	n = kn_url_clean(v->s.p, v->s.len, buf, sizeof(buf), &u);
	if (u == buf && n == sizeof(buf) && (cat = url_text_sensitive(p, v->s.p, v->s.len)))
		return cat;
	while (cut < n && u[cut] != '?' && u[cut] != '#')
		cut++;
	if ((cat = sensitive_in(p, u, cut, KN_FOLD_URL, false)))
		return cat;
	hn = kn_url_host_span(u, cut, KN_URL_ANY_HOST, &at, NULL);
	return hn ? sensitive_in(p, u + at, hn, KN_FOLD_URL, true) : NULL;
}

/* A query is checked decoded (kn_policy_sensitive: people paste URLs, and
 * logs escape text) and, when it holds an escape, as typed too: decoding can
 * also hide a term in a longer word ("hiv%61" is "hiva"). The scrubber
 * decodes, so its output cannot stand in for the text as typed. */
static bool query_sensitive(struct kn_policy *p, const char *s, size_t n)
{
	return kn_policy_sensitive(p, s, n) ||
	       ((memchr(s, '%', n) || memchr(s, '&', n)) && sensitive_in(p, s, n, 0, false));
}

/* A sensitive event keeps nothing that points to a person: kept with its
 * pseudonyms, the category "withheld" would itself be the sensitive fact
 * ("this person touched health, religion, sex life..."), and its user
 * agent, OS and app version would link it back within its hour. What stays
 * is its type, hour, key epoch and consents: a count of such events (and
 * an event key of its own: pipeline.c re-keys it, as only it holds keys). */
static void withhold(struct kn_policy *p, struct kn_deid *d)
{
	p->st.sensitive++;
	for (int k = 0; k < KN_ID_KINDS; k++)
		d->has_pid[k] = false, d->pid[k][0] = '\0';
	d->geo_cell[0] = d->ip_prefix[0] = '\0';
	d->ua_browser[0] = d->os_family[0] = d->app_version[0] = '\0';
	d->ua_browser_major = d->os_major = d->http_status = -1;
	d->query[0] = '\0';
	d->url_domain[0] = d->referrer_domain[0] = '\0';
	memcpy(d->query_category, "withheld", sizeof("withheld"));
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
	if (d->minor) /* kept only with policy.minors_in_deid: never where a child is */
		d->geo_cell[0] = d->ip_prefix[0] = '\0';
	d->query[0] = d->query_category[0] = '\0';
	d->emit_query = p->c->emit_scrubbed_query;
	d->sensitive = (q->type == KN_VAL_STR && query_sensitive(p, q->s.p, q->s.len)) ||
		       url_sensitive(p, &ev->role[KN_ROLE_URL]) ||
		       url_sensitive(p, &ev->role[KN_ROLE_CLICKED_URL]) ||
		       url_sensitive(p, &ev->role[KN_ROLE_REFERRER]);
	if (d->sensitive) {
		withhold(p, d);
		return;
	}
	if (q->type != KN_VAL_STR)
		return;
	size_t qlen = kn_scrub_query(q->s.p, q->s.len, d->query, &sc);
	p->st.scrubbed.url += sc.url;
	p->st.scrubbed.email += sc.email;
	p->st.scrubbed.ip += sc.ip;
	p->st.scrubbed.id += sc.id;
	p->st.scrubbed.cn_id += sc.cn_id;
	p->st.scrubbed.card += sc.card;
	p->st.scrubbed.phone += sc.phone;
	p->st.scrubbed.num += sc.num;
	const char *cat = kn_policy_categorize(p, d->query, qlen);
	/* The scrubbed text is checked too: scrubbing can join a term that an
	 * identifier split ("艾13812345678滋病" is "艾<PHONE>滋病"). */
	if (!strcmp(cat, "withheld")) {
		d->sensitive = true;
		withhold(p, d);
		return;
	}
	size_t n = strnlen(cat, sizeof(d->query_category) - 1);
	memcpy(d->query_category, cat, n); /* names fit: lexicon_parse */
	d->query_category[n] = '\0';
}

const struct kn_policy_stats *kn_policy_stats(const struct kn_policy *p)
{
	return &p->st;
}

void kn_policy_stats_add(struct kn_policy_stats *to, const struct kn_policy_stats *from)
{
	for (int i = 0; i < KN_DROP_REASONS; i++)
		to->dropped[i] += from->dropped[i];
	to->minors += from->minors;
	to->sensitive += from->sensitive;
	to->no_location_consent += from->no_location_consent;
	to->scrubbed.url += from->scrubbed.url;
	to->scrubbed.email += from->scrubbed.email;
	to->scrubbed.ip += from->scrubbed.ip;
	to->scrubbed.id += from->scrubbed.id;
	to->scrubbed.cn_id += from->scrubbed.cn_id;
	to->scrubbed.card += from->scrubbed.card;
	to->scrubbed.phone += from->scrubbed.phone;
	to->scrubbed.num += from->scrubbed.num;
}
