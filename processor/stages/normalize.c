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

static int norm_email(const char *in, size_t len, char *out)
{
	size_t at = 0, n_at = 0;

	trim(&in, &len);
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

static int norm_phone(const char *in, size_t len, char *out, const struct kn_norm_opts *o)
{
	char d[32];
	size_t nd = 0, cc_len = strlen(o->phone_cc);
	int plus = 0;

	trim(&in, &len);
	for (size_t i = 0; i < len; i++) {
		char c = in[i];
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
 * reports the all-zero IDFA). Hashed, each would make every person without
 * an identifier one pseudonymous person. */
static bool placeholder(const char *s, int n)
{
	static const char *const words[] = {"-",      "--",	   "-1",      "n/a",   "na",
					    "nan",    "nil",	   "none",    "null",  "(null)",
					    "<null>", "undefined", "unknown", "empty", "anonymous"};
	int zeros = 0;

	while (zeros < n && s[zeros] == '0')
		zeros++;
	if (zeros == n)
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
	return n > 0 && placeholder(out, n) ? -EINVAL : n;
}
