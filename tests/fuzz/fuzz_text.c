/* libFuzzer target: every function that reads a record's free text (the
 * folder, the query scrubber, the identifier normalizer, the sensitive and
 * taxonomy lexicons, and the URL, user agent, OS, app version and IP
 * generalizers) on arbitrary bytes. Beyond
 * memory errors (ASan/UBSan), it aborts when an output breaks the promise
 * its header makes: text that is not valid UTF-8 or overruns its buffer,
 * a scrubbed query that keeps a run of 9 or more digits, a category or a
 * generalized value outside its closed vocabulary or checked shape.
 * tests/fuzz/run.sh builds and runs it from seeds of every field kind
 * (text_seeds.txt). */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fold.h"
#include "generalize.h"
#include "normalize.h"
#include "policy.h"
#include "scrub.h"

static struct kn_policy *pol; /* the built-in lexicons */

static bool valid_utf8(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + n;

	while (p < end) {
		int len = 0;
		if (*p < 0x80)
			len = 1;
		else if ((*p & 0xe0) == 0xc0)
			len = 2;
		else if ((*p & 0xf0) == 0xe0)
			len = 3;
		else if ((*p & 0xf8) == 0xf0)
			len = 4;
		if (!len || end - p < len || (len == 2 && *p < 0xc2) || (len == 4 && *p > 0xf4))
			return false;
		for (int i = 1; i < len; i++)
			if ((p[i] & 0xc0) != 0x80)
				return false;
		if ((len == 3 && *p == 0xe0 && p[1] < 0xa0) ||
		    (len == 3 && *p == 0xed && p[1] > 0x9f) ||
		    (len == 4 && *p == 0xf0 && p[1] < 0x90) ||
		    (len == 4 && *p == 0xf4 && p[1] > 0x8f))
			return false; /* overlong, surrogate, beyond U+10FFFF */
		p += len;
	}
	return true;
}

/* Printable ASCII of at most max bytes, NUL-terminated within cap; inner
 * spaces only where allowed ("Samsung Internet"). */
static bool ascii_within(const char *s, size_t cap, size_t max, bool spaces)
{
	size_t n = strnlen(s, cap);

	if (n == cap || n > max || (n && (s[0] == ' ' || s[n - 1] == ' ')))
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < (spaces ? 0x20 : 0x21) || s[i] > 0x7e)
			return false;
	return true;
}

static void check_fold(const char *in, size_t n)
{
	char out[KN_FOLD_IN_MAX * 4];
	unsigned flags[] = {0, KN_FOLD_URL, KN_FOLD_SQUEEZE, KN_FOLD_URL | KN_FOLD_SQUEEZE};

	for (size_t f = 0; f < sizeof(flags) / sizeof(flags[0]); f++) {
		size_t cap = f % 2 ? 64 : sizeof(out); /* a small buffer cuts, at a boundary */
		size_t len = kn_fold(in, n, out, cap, flags[f]);
		if (len >= cap || out[len] || !valid_utf8(out, len))
			abort();
		/* Squeezed, a control character (NUL too) is a separator. */
		if ((flags[f] & KN_FOLD_SQUEEZE) && strlen(out) != len)
			abort();
	}
}

static void check_scrub(const char *in, size_t n)
{
	char out[KN_SCRUB_MAX];
	size_t len = kn_scrub_query(in, n, out, NULL), run = 0;

	if (len >= KN_SCRUB_MAX || out[len] || strlen(out) != len || !valid_utf8(out, len))
		abort();
	for (size_t i = 0; i < len; i++) { /* an 8-digit date may stay; nothing longer */
		run = out[i] >= '0' && out[i] <= '9' ? run + 1 : 0;
		if (run >= 9 || (unsigned char)out[i] < 0x20 || out[i] == 0x7f ||
		    ((unsigned char)out[i] == 0xc2 && (unsigned char)out[i + 1] <= 0x9f))
			abort(); /* C0, DEL, C1 */
	}
}

static void check_normalize(const char *in, size_t n)
{
	static const struct kn_norm_opts opts = {"86"};
	char out[KN_ID_MAX];

	for (int k = 0; k < KN_ID_KINDS; k++) {
		int len = kn_normalize((enum kn_id_kind)k, in, n, out, &opts);
		if (len == 0 || len > KN_ID_MAX)
			abort();
		if (len < 0) /* not an identifier of that kind */
			continue;
		/* Canonical forms are bytes for the PRF (opaque ids stay as they
		 * were); the shapes the header promises: */
		if (k == KN_ID_PHONE) { /* E.164: "+", 8 to 15 digits, ";ext=N" */
			const char *ext = memchr(out, ';', (size_t)len);
			int e164 = ext ? (int)(ext - out) : len;
			if (out[0] != '+' || e164 < 9 || e164 > 16 ||
			    (ext && (len - e164 < 6 || len - e164 > 12 || memcmp(ext, ";ext=", 5))))
				abort();
			for (int i = 1; i < len; i++)
				if ((out[i] < '0' || out[i] > '9') && (i < e164 || i >= e164 + 5))
					abort();
		}
		if (k == KN_ID_EMAIL) { /* local@domain, no space, lower case */
			const char *at = memchr(out, '@', (size_t)len);
			if (!at || at == out || at == out + len - 1 ||
			    memchr(out, ' ', (size_t)len))
				abort();
			for (int i = 0; i < len; i++)
				if (out[i] >= 'A' && out[i] <= 'Z')
					abort();
		}
	}
}

static bool family_ok(const char *f)
{
	return ascii_within(f, KN_FAMILY_MAX, KN_FAMILY_MAX - 1, true);
}

static bool major_ok(int32_t m)
{
	return m >= -1 && m <= 999;
}

/* "major" or "major.minor", 1-3 digits each, "other", or "". */
static bool version_ok(const char *v)
{
	size_t i = 0, d = 0, dots = 0;

	if (!strcmp(v, "other") || !*v)
		return true;
	for (; v[i]; i++) {
		if (v[i] >= '0' && v[i] <= '9' && ++d <= 3)
			continue;
		if (v[i] == '.' && d && !dots++ && v[i + 1]) {
			d = 0;
			continue;
		}
		return false;
	}
	return d > 0;
}

/* A registrable domain as A-labels, "ip-literal" or "other". */
static bool domain_ok(const char *s)
{
	size_t n = strnlen(s, KN_HOST_MAX + 1);

	if (n == KN_HOST_MAX + 1 || !n || s[0] == '.' || s[n - 1] == '.' || !strchr(s, '.'))
		return !strcmp(s, "ip-literal") || !strcmp(s, "other");
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-' ||
		      s[i] == '.'))
			return false;
	return true;
}

static void check_generalize(const char *in, size_t n)
{
	char out[KN_HOST_MAX + 1], fam[KN_FAMILY_MAX], ver[KN_VERSION_MAX], pre[KN_PREFIX_MAX];
	struct kn_agent a;
	int32_t major;

	if (!kn_url_domain(in, n, out) && !domain_ok(out))
		abort();
	kn_ua_parse(in, n, &a);
	if (!family_ok(a.browser) || !family_ok(a.os) || !major_ok(a.browser_major) ||
	    !major_ok(a.os_major))
		abort();
	kn_os_parse(in, n, fam, &major);
	if (!family_ok(fam) || !major_ok(major))
		abort();
	kn_app_version(in, n, ver);
	if (!version_ok(ver))
		abort();
	if (!kn_ip_prefix(in, n, 24, 48, pre) &&
	    (!ascii_within(pre, KN_PREFIX_MAX, KN_PREFIX_MAX - 1, false) || !strchr(pre, '/')))
		abort();
}

/* A category: a lexicon's name (lower-case words), or none. */
static bool category_ok(const char *c)
{
	if (!c)
		return true;
	for (const char *p = c; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || *p == '_' || *p == '-' || *p == ' '))
			return false;
	return *c && strlen(c) < 64;
}

static void check_lexicons(const char *in, size_t n)
{
	if (!category_ok(kn_policy_sensitive(pol, in, n)) ||
	    !category_ok(kn_policy_categorize(pol, in, n)))
		abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static struct kn_config c = {.sensitive_terms = "builtin", .query_taxonomy = "builtin"};
	char err[256];

	(void)argc;
	(void)argv;
	if (kn_fold_init(err, sizeof(err)) || kn_policy_new(&c, &pol, err, sizeof(err)))
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;

	check_fold(in, size);
	check_scrub(in, size);
	check_normalize(in, size);
	check_lexicons(in, size);
	check_generalize(in, size);
	return 0;
}
