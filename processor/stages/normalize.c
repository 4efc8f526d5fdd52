#include "normalize.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
}

static void trim(const char **p, size_t *len)
{
	while (*len && is_space(**p)) {
		(*p)++;
		(*len)--;
	}
	while (*len && is_space((*p)[*len - 1]))
		(*len)--;
}

/* Undoes what input methods and copy-paste put into typed identifiers:
 * full-width forms (U+FF01..U+FF5E) become ASCII, NBSP and the ideographic
 * space become spaces, zero-width characters (U+200B..U+200D, U+2060,
 * U+FEFF) go. Every mapping shortens, so out needs len bytes. Returns the
 * new length. Not NFKC, which would take ICU per identifier: ligatures
 * (U+FB01 in "oﬃce@...") and other compatibility forms stay as typed. */
static size_t basic_fold(const char *in, size_t len, char *out)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		const uint8_t *u = (const uint8_t *)in + i;
		bool three = len - i >= 3 && (u[1] & 0xc0) == 0x80 && (u[2] & 0xc0) == 0x80;
		if (three && u[0] == 0xef && u[1] == 0xbc && u[2] >= 0x81) {
			out[n++] = (char)(0x21 + u[2] - 0x81), i += 2; /* U+FF01..U+FF3F */
		} else if (three && u[0] == 0xef && u[1] == 0xbd && u[2] <= 0x9e) {
			out[n++] = (char)(0x60 + u[2] - 0x80), i += 2; /* U+FF40..U+FF5E */
		} else if (three && u[0] == 0xe3 && u[1] == 0x80 && u[2] == 0x80) {
			out[n++] = ' ', i += 2; /* U+3000 */
		} else if (len - i >= 2 && u[0] == 0xc2 && u[1] == 0xa0) {
			out[n++] = ' ', i += 1; /* U+00A0 */
		} else if (three &&
			   ((u[0] == 0xe2 && u[1] == 0x80 && u[2] >= 0x8b && u[2] <= 0x8d) ||
			    (u[0] == 0xe2 && u[1] == 0x81 && u[2] == 0xa0) ||
			    (u[0] == 0xef && u[1] == 0xbb && u[2] == 0xbf))) {
			i += 2; /* zero-width */
		} else {
			out[n++] = in[i];
		}
	}
	return n;
}

/* The address inside what mail clients copy: "mailto:a@b.c?subject=x",
 * "<a@b.c>", "<mailto:a@b.c>", "a@b.c." (a sentence's full stop), in any
 * nesting. */
static void unwrap_email(const char **p, size_t *len)
{
	for (size_t was = 0; was != *len;) {
		was = *len;
		trim(p, len);
		while (*len && (*p)[*len - 1] == '.')
			(*len)--;
		if (*len >= 2 && (*p)[0] == '<' && (*p)[*len - 1] == '>')
			(*p)++, *len -= 2;
		if (*len > 7 && !strncasecmp(*p, "mailto:", 7)) {
			const char *q = memchr(*p, '?', *len);
			*p += 7, *len -= 7;
			if (q)
				*len = (size_t)(q - *p);
		}
	}
}

static int norm_email(const char *raw, size_t len, char *out)
{
	size_t at = 0, n_at = 0;
	char buf[4 * KN_ID_MAX];
	const char *in = buf;

	if (len > sizeof(buf))
		return -EINVAL;
	len = basic_fold(raw, len, buf);
	unwrap_email(&in, &len);
	if (!len || len > KN_ID_MAX)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		char c = in[i];
		if (is_space(c))
			return -EINVAL;
		if (c == '@') {
			at = i;
			n_at++;
		}
		out[i] = lower(c);
	}
	if (n_at != 1 || at == 0 || at == len - 1)
		return -EINVAL;
	return (int)len;
}

/* Longest national significant number per calling code (ITU-T E.164 national
 * plans); a national-looking number longer than this must already carry the
 * country code. Regions not listed get 10. */
static size_t nsn_max(const char *cc)
{
	static const struct {
		const char *cc;
		size_t max;
	} t[] = {{"86", 11}, {"1", 10},	 {"44", 10}, {"81", 10}, {"82", 10}, {"852", 8},
		 {"853", 8}, {"886", 9}, {"91", 10}, {"49", 11}, {"33", 9},  {"65", 8},
		 {"60", 10}, {"61", 9},	 {"7", 10},  {"855", 9}, {"66", 9},  {"84", 10}};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (!strcmp(t[i].cc, cc))
			return t[i].max;
	return 10;
}

/* Whether the digits so far are an international prefix and a country
 * code (1 to 3 digits), where "(0)" marks the trunk prefix not dialled. */
static bool after_country_code(int plus, const char *d, size_t nd)
{
	size_t cc = plus ? nd : nd >= 2 && d[0] == '0' && d[1] == '0' ? nd - 2 : 0;

	return cc >= 1 && cc <= 3;
}

static int norm_phone(const char *raw, size_t len, char *out, const struct kn_norm_opts *o)
{
	char d[32], buf[4 * KN_ID_MAX];
	const char *in = buf;
	size_t nd = 0, cc_len = strlen(o->phone_cc);
	int plus = 0;

	if (len > sizeof(buf))
		return -EINVAL;
	len = basic_fold(raw, len, buf);
	trim(&in, &len);
	for (size_t i = 0; i < len; i++) {
		char c = in[i];
		/* "+86 (0)138...": the trunk prefix shown beside the country
		 * code, never dialled with it. */
		if (c == '(' && i + 2 < len && in[i + 1] == '0' && in[i + 2] == ')' &&
		    after_country_code(plus, d, nd)) {
			i += 2;
			continue;
		}
		if (c >= '0' && c <= '9') {
			if (nd == sizeof(d))
				return -EINVAL;
			d[nd++] = c;
		} else if (c == '+' && nd == 0 && !plus) {
			plus = 1;
		} else if (!(c == ' ' || c == '-' || c == '.' || c == '(' || c == ')' || c == '/' ||
			     c == '\t')) {
			return -EINVAL; /* letters, extensions, stray symbols */
		}
	}
	const char *num = d;
	size_t n = nd;
	if (!plus && n > 2 && d[0] == '0' && d[1] == '0') { /* 00: international prefix */
		plus = 1;
		num += 2;
		n -= 2;
	}
	out[0] = '+';
	size_t o_len = 1;
	if (!plus) {
		/* National number. Already carrying the country code? Then it is
		 * longer than any national number of that region would be. */
		int has_cc =
			n > cc_len && !memcmp(num, o->phone_cc, cc_len) && n > nsn_max(o->phone_cc);
		if (!has_cc) {
			if (n && num[0] == '0') { /* trunk prefix */
				num++;
				n--;
			}
			memcpy(out + 1, o->phone_cc, cc_len);
			o_len += cc_len;
		}
	}
	if (n == 0 || num[0] == '0')
		return -EINVAL;
	memcpy(out + o_len, num, n);
	o_len += n;
	if (o_len - 1 < 8 || o_len - 1 > 15) /* E.164: at most 15 digits */
		return -EINVAL;
	return (int)o_len;
}

/* norm_device's byte classes, built at compile time: 0 drops the byte
 * (spaces and the separators - : . _), otherwise 0x100 | the byte lower-
 * cased. A table lets the loop run without a branch per byte: device ids
 * are the longest identifiers of a record and one is in nearly every one. */
#define DEV_SKIP(c)                                                                                \
	((c) == ' ' || (c) == '\t' || (c) == '\n' || (c) == '\r' || (c) == '\f' || (c) == '\v' ||  \
	 (c) == '-' || (c) == ':' || (c) == '.' || (c) == '_')
#define DEV(c)	 (DEV_SKIP(c) ? 0 : 0x100 | ((c) >= 'A' && (c) <= 'Z' ? (c) + 32 : (c)))
#define DEV4(c)	 DEV(c), DEV((c) + 1), DEV((c) + 2), DEV((c) + 3)
#define DEV16(c) DEV4(c), DEV4((c) + 4), DEV4((c) + 8), DEV4((c) + 12)
#define DEV64(c) DEV16(c), DEV16((c) + 16), DEV16((c) + 32), DEV16((c) + 48)
static const uint16_t dev_class[256] = {DEV64(0), DEV64(64), DEV64(128), DEV64(192)};

static int norm_device(const char *in, size_t len, char *out)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned k = dev_class[(uint8_t)in[i]];
		/* (A NUL byte is kept, as any byte but the separators.) */
		if (n == KN_ID_MAX) { /* full: only separators may follow */
			if (k)
				return -EINVAL;
			continue;
		}
		out[n] = (char)k; /* written either way, kept only if k says so */
		n += k >> 8;
	}
	return n ? (int)n : -EINVAL;
}

static int norm_opaque(const char *in, size_t len, char *out)
{
	trim(&in, &len);
	if (!len || len > KN_ID_MAX)
		return -EINVAL;
	memcpy(out, in, len);
	return (int)len;
}

/* What logging systems write where an identifier is missing: "N/A",
 * "null", "-", "unknown", and zeros (an iOS device that limits ad tracking
 * reports the all-zero IDFA); for device ids also all f's and the ids many
 * devices share. Hashed, each would make every person without an
 * identifier one pseudonymous person. */
static bool placeholder(const char *s, int n, bool device)
{
	static const char *const words[] = {"-",      "--",	   "-1",      "n/a",   "na",
					    "nan",    "nil",	   "none",    "null",  "(null)",
					    "<null>", "undefined", "unknown", "empty", "anonymous"};
	/* Constant device ids many devices report: the MAC Android 6+ gives
	 * apps, and the Android ID of a batch of Android 2.2 devices. */
	static const char *const shared[] = {"020000000000", "9774d56d682e549c"};
	int same = 0;

	while (same < n && (s[same] == '0' || (device && (s[same] | 0x20) == 'f')) &&
	       s[same] == s[0])
		same++;
	if (same == n) /* all zeros (IDFA with tracking limited), all f */
		return true;
	for (size_t w = 0; device && w < sizeof(shared) / sizeof(shared[0]); w++)
		if ((size_t)n == strlen(shared[w]) && !strncasecmp(s, shared[w], (size_t)n))
			return true;
	for (size_t w = 0; w < sizeof(words) / sizeof(words[0]); w++) {
		size_t k = strlen(words[w]);
		if ((size_t)n == k && !strncasecmp(s, words[w], k))
			return true;
	}
	return false;
}

int kn_normalize(enum kn_id_kind kind, const char *in, size_t len, char *out,
		 const struct kn_norm_opts *opts)
{
	int n;

	switch (kind) {
	case KN_ID_EMAIL:
		return norm_email(in, len, out);
	case KN_ID_PHONE:
		return norm_phone(in, len, out, opts);
	case KN_ID_DEVICE:
		n = norm_device(in, len, out);
		break;
	case KN_ID_USER:
	case KN_ID_COOKIE:
		n = norm_opaque(in, len, out);
		break;
	default:
		return -EINVAL;
	}
	return n > 0 && placeholder(out, n, kind == KN_ID_DEVICE) ? -EINVAL : n;
}
