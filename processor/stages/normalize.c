#include "normalize.h"

#include <errno.h>
#include <idn2.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "phone_plan.h"

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
		if (u[0] < 0x80) { /* ASCII, nearly every byte */
			out[n++] = in[i];
			continue;
		}
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
		if (*len >= 2 && (*p)[*len - 1] == '>') { /* "<a@b.c>", "Name <a@b.c>" */
			const char *lt = memrchr(*p, '<', *len - 1);
			if (lt) {
				*len -= (size_t)(lt + 1 - *p) + 1;
				*p = lt + 1;
			}
		}
		if (*len > 7 && !strncasecmp(*p, "mailto:", 7)) {
			const char *q = memchr(*p, '?', *len);
			*p += 7, *len -= 7;
			if (q)
				*len = (size_t)(q - *p);
		}
	}
}

/* RFC 5322's atext, and '.': what a local part may hold unquoted. */
static bool atext(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+/=?^_`{|}~.-", c)) || (c & 0x80);
}

/* The domain in[0..len) of an address as IDNA's A-labels (libidn2, UTS #46:
 * "bücher.de", "BÜCHER.DE" and "bücher。de" are xn--bcher-kva.de) into out
 * (cap bytes); its length, or 0 when IDNA refuses it (then it is kept as
 * typed). Only a domain with a byte >= 0x80 comes here. */
static size_t email_domain(const char *in, size_t len, char *out, size_t cap)
{
	char d[4 * KN_ID_MAX + 1], *a = NULL;
	size_t n = 0;

	if (len >= sizeof(d))
		return 0;
	memcpy(d, in, len);
	d[len] = '\0';
	if (idn2_to_ascii_8z(d, &a, IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL) == IDN2_OK ||
	    idn2_to_ascii_8z(d, &a, IDN2_NFC_INPUT | IDN2_TRANSITIONAL) == IDN2_OK) {
		n = strlen(a);
		if (n <= cap)
			memcpy(out, a, n);
		else
			n = 0;
	}
	idn2_free(a);
	return n;
}

static int norm_email(const char *raw, size_t len, char *out)
{
	char buf[4 * KN_ID_MAX];
	const char *in = buf;
	size_t at = 0, n_at = 0, la = 0, lb, o = 0, k;
	bool high = false;

	if (len > sizeof(buf))
		return -EINVAL;
	len = basic_fold(raw, len, buf);
	unwrap_email(&in, &len);
	for (size_t i = 0; i < len; i++) {
		if (is_space(in[i]))
			return -EINVAL;
		if (in[i] == '@')
			at = i, n_at++;
		high |= n_at && (in[i] & 0x80); /* in the domain (one '@' at most) */
	}
	if (n_at != 1 || at == 0 || at == len - 1)
		return -EINVAL;
	lb = at;					   /* the local part: in[la..lb) */
	if (lb > 2 && in[0] == '"' && in[lb - 1] == '"') { /* "user"@ is user@ */
		bool plain = true;
		for (size_t i = 1; i + 1 < lb && plain; i++)
			plain = atext(in[i]);
		if (plain)
			la = 1, lb--;
	}
	if (lb - la + 1 > KN_ID_MAX)
		return -EINVAL;
	for (size_t i = la; i < lb; i++)
		out[o++] = lower(in[i]);
	out[o++] = '@';
	if (high && (k = email_domain(in + at + 1, len - at - 1, out + o, KN_ID_MAX - o)))
		return (int)(o + k);
	if (o + len - at - 1 > KN_ID_MAX)
		return -EINVAL;
	for (size_t i = at + 1; i < len; i++)
		out[o++] = lower(in[i]);
	return (int)o;
}

/* The plan of the country calling code at d[0..n) (E.164's codes are
 * prefix-free: at most one of d's first 1, 2 or 3 digits is one), or NULL;
 * *cc_len gets the code's length. */
static const struct phone_plan *plan_at(const char *d, size_t n, size_t *cc_len)
{
	unsigned v = 0;

	for (size_t k = 0; k < 3 && k < n; k++) {
		v = v * 10 + (unsigned)(d[k] - '0');
		size_t lo = 0, hi = sizeof(phone_plans) / sizeof(phone_plans[0]);
		while (lo < hi) {
			size_t mid = (lo + hi) / 2;
			if (phone_plans[mid].cc == v) {
				*cc_len = k + 1;
				return &phone_plans[mid];
			}
			if (phone_plans[mid].cc < v)
				lo = mid + 1;
			else
				hi = mid;
		}
	}
	return NULL;
}

/* The longest national number a region's people usually write (ITU-T
 * E.164 national plans), below the plan's longest, which counts rare
 * service numbers: a national-looking number longer than this already
 * carries the country code ("86 10 1234 5678", "7 495 123 45 67"). */
static size_t usual_max(const struct phone_plan *plan)
{
	static const struct {
		uint16_t cc;
		uint8_t max;
	} t[] = {{86, 11}, {1, 10},  {44, 10}, {81, 10}, {82, 10}, {852, 8},
		 {853, 8}, {886, 9}, {91, 10}, {49, 11}, {33, 9},  {65, 8},
		 {60, 10}, {61, 9},  {7, 10},  {855, 9}, {66, 9},  {84, 10}};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (t[i].cc == plan->cc)
			return t[i].max;
	return plan->max;
}

bool kn_phone_region_valid(const char *cc)
{
	size_t n = strlen(cc), k;

	for (k = 0; k < n; k++)
		if (cc[k] < '0' || cc[k] > '9')
			return false;
	return n && plan_at(cc, n, &k) && k == n;
}

/* Whether the digits so far are an international prefix and a country
 * code, where "(0)" marks the trunk prefix not dialled; not for a code
 * whose numbers start with 0 (Italy's "+39 (0)6..." dials the 0). */
static bool after_country_code(int plus, const char *d, size_t nd)
{
	size_t cc = plus ? nd : nd >= 2 && d[0] == '0' && d[1] == '0' ? nd - 2 : 0, k;
	const struct phone_plan *plan = cc >= 1 && cc <= 3 ? plan_at(d + nd - cc, cc, &k) : NULL;

	return plan && k == cc && !plan->zero;
}

/* Bytes of a separator people put between digit groups at in[i], or 0:
 * " -.()/", and the dashes word processors and input methods substitute
 * (U+2010-2015, U+2212 minus, U+30FC ー, U+00B7 middle dot). */
static size_t phone_sep(const char *in, size_t len, size_t i)
{
	const uint8_t *u = (const uint8_t *)in + i;
	size_t left = len - i;

	if (strchr(" -.()/\t", in[i]) && in[i])
		return 1;
	if (left >= 3 && u[0] == 0xe2 && u[1] == 0x80 && u[2] >= 0x90 && u[2] <= 0x95)
		return 3;
	if (left >= 3 && ((u[0] == 0xe2 && u[1] == 0x88 && u[2] == 0x92) ||
			  (u[0] == 0xe3 && u[1] == 0x83 && u[2] == 0xbc)))
		return 3;
	return left >= 2 && u[0] == 0xc2 && u[1] == 0xb7 ? 2 : 0;
}

/* A label before the number ("tel:", "Tel.", "phone:", "电话：", "手机"):
 * its length with the spaces after it, or 0. */
static size_t phone_label(const char *in, size_t len)
{
	static const char *const labels[] = {"tel", "phone", "mobile", "电话", "手机"};
	size_t k = 0;

	if (!len || (in[0] >= '0' && in[0] <= '9') || in[0] == '+' || in[0] == '(')
		return 0; /* most numbers: no label */

	for (size_t w = 0; w < sizeof(labels) / sizeof(labels[0]) && !k; w++) {
		size_t n = strlen(labels[w]);
		if (len > n && !strncasecmp(in, labels[w], n))
			k = n;
	}
	if (!k || (in[k] != ':' && in[k] != '.' && in[k] != ' ' &&
		   !(in[k] >= '0' && in[k] <= '9') && in[k] != '+'))
		return 0;
	if (in[k] == ':' || in[k] == '.')
		k++;
	while (k < len && in[k] == ' ')
		k++;
	return k;
}

/* An extension after the number at in[i..len): "ext 12", "ext.12", "x12",
 * "#12", ";ext=12" (RFC 3966), ",12", "转12", then nothing else. Its digits
 * go to ext (at most 7); returns their count, or 0 when in[i..] is none. */
static size_t phone_ext(const char *in, size_t len, size_t i, char ext[8])
{
	static const char *const marks[] = {";ext=", "ext.", "ext", "x", "#", ",", "转"};
	size_t k = 0, n = 0;

	while (i < len && in[i] == ' ')
		i++;
	for (size_t w = 0; w < sizeof(marks) / sizeof(marks[0]) && !k; w++) {
		size_t m = strlen(marks[w]);
		if (len - i >= m && !strncasecmp(in + i, marks[w], m))
			k = m;
	}
	if (!k)
		return 0;
	for (i += k; i < len && in[i] == ' '; i++)
		;
	for (; i < len && in[i] >= '0' && in[i] <= '9'; i++) {
		if (n == 7)
			return 0;
		ext[n++] = in[i];
	}
	while (i < len && in[i] == ' ')
		i++;
	return i == len ? n : 0;
}

/* The digits of a phone number into d (32), an extension into ext (*next
 * its length); *plus when it began with '+'. Returns the digit count, or -1
 * for anything that is no phone number (letters, stray symbols). */
static int phone_digits(const char *in, size_t len, char d[32], int *plus, char ext[8],
			size_t *next)
{
	size_t nd = 0, k;

	*plus = 0;
	*next = 0;
	for (size_t i = phone_label(in, len); i < len; i++) {
		char c = in[i];
		/* "+86 (0)138...": the trunk prefix shown beside the country
		 * code, never dialled with it. */
		if (c == '(' && i + 2 < len && in[i + 1] == '0' && in[i + 2] == ')' &&
		    after_country_code(*plus, d, nd)) {
			i += 2;
			continue;
		}
		if (c >= '0' && c <= '9') {
			if (nd == 32)
				return -1;
			d[nd++] = c;
		} else if (c == '+' && nd == 0 && !*plus) {
			*plus = 1;
		} else if ((k = phone_sep(in, len, i))) {
			i += k - 1;
		} else if (nd >= 7 && (*next = phone_ext(in, len, i, ext))) {
			break;
		} else {
			return -1; /* letters, stray symbols */
		}
	}
	return (int)nd;
}

/* Writes "+<cc><nsn>[;ext=N]" to out; -EINVAL when the national
 * significant number nsn[0..sn) does not fit the code's plan (length, a
 * leading 0, zeros only), or the whole is not 8 to 15 digits (E.164's
 * longest; shorter ones are service numbers, no person's). */
static int phone_e164(const struct phone_plan *plan, const char *cc, size_t cn, const char *nsn,
		      size_t sn, const char *ext, size_t next, char *out)
{
	size_t o = 0, zeros = 0;

	while (zeros < sn && nsn[zeros] == '0')
		zeros++;
	if (sn < plan->min || sn > plan->max || cn + sn < 8 || cn + sn > 15 || zeros == sn ||
	    (zeros && !plan->zero))
		return -EINVAL;
	out[o++] = '+';
	memcpy(out + o, cc, cn);
	o += cn;
	memcpy(out + o, nsn, sn);
	o += sn;
	if (next) {
		memcpy(out + o, ";ext=", 5);
		memcpy(out + o + 5, ext, next);
		o += 5 + next;
	}
	return (int)o;
}

/* E.164 ("+<code><national number>") of a phone number, with ";ext=N" when
 * it has an extension (the desk, not the switchboard: another person). */
static int norm_phone(const char *raw, size_t len, char *out, const struct kn_norm_opts *o)
{
	char d[32], ext[8], buf[4 * KN_ID_MAX];
	const char *in = buf, *num = d;
	const struct phone_plan *plan;
	size_t n, cc_len, next;
	int plus, nd;

	if (len > sizeof(buf))
		return -EINVAL;
	len = basic_fold(raw, len, buf);
	trim(&in, &len);
	if ((nd = phone_digits(in, len, d, &plus, ext, &next)) <= 0)
		return -EINVAL;
	n = (size_t)nd;
	if (!plus && n > 2 && d[0] == '0' && d[1] == '0') { /* 00: international prefix */
		plus = 1;
		num += 2;
		n -= 2;
	}
	if (!plus) {
		/* A national number, unless it already carries the region's
		 * code: then it is longer than the region's national numbers. */
		size_t rn = strlen(o->phone_cc), tn;
		if (!(plan = plan_at(o->phone_cc, rn, &cc_len)))
			return -EINVAL;
		if (!(n > usual_max(plan) && n > rn && !memcmp(num, o->phone_cc, rn))) {
			tn = strlen(plan->trunk);
			if (tn && n > tn && !memcmp(num, plan->trunk, tn))
				num += tn, n -= tn; /* the trunk prefix */
			return phone_e164(plan, o->phone_cc, rn, num, n, ext, next, out);
		}
	}
	if (!(plan = plan_at(num, n, &cc_len)))
		return -EINVAL;
	const char *nsn = num + cc_len;
	size_t sn = n - cc_len;
	/* "+86 010...": a trunk 0 written after the code anyway */
	if (sn && nsn[0] == '0' && !strcmp(plan->trunk, "0") && !plan->zero)
		nsn++, sn--;
	return phone_e164(plan, num, cc_len, nsn, sn, ext, next, out);
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

/* What wraps a device id in some logs: "{...}" (Windows GUIDs) and
 * "urn:uuid:" (RFC 4122's URN). */
static void unwrap_device(const char **p, size_t *len)
{
	trim(p, len);
	if (*len > 9 && ((*p)[0] | 0x20) == 'u' && !strncasecmp(*p, "urn:uuid:", 9))
		*p += 9, *len -= 9;
	if (*len >= 2 && (*p)[0] == '{' && (*p)[*len - 1] == '}')
		(*p)++, *len -= 2;
}

static int norm_device(const char *in, size_t len, char *out, uint8_t *high)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned k = dev_class[(uint8_t)in[i]];
		*high |= (uint8_t)in[i];
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
struct word {
	const char *s;
	int n;
};
#define WORD(lit)                                                                                  \
	{                                                                                          \
		lit, sizeof(lit) - 1                                                               \
	}

static bool placeholder(const char *s, int n, bool device)
{
	static const struct word words[] = {WORD("-"),	     WORD("--"),     WORD("-1"),
					    WORD("n/a"),     WORD("na"),     WORD("nan"),
					    WORD("nil"),     WORD("none"),   WORD("null"),
					    WORD("(null)"),  WORD("<null>"), WORD("undefined"),
					    WORD("unknown"), WORD("empty"),  WORD("anonymous")};
	/* Constant device ids many devices report: the MAC Android 6+ gives
	 * apps, and the Android ID of a batch of Android 2.2 devices. */
	static const struct word shared[] = {WORD("020000000000"), WORD("9774d56d682e549c")};
	int same = 0;

	while (same < n && (s[same] == '0' || (device && (s[same] | 0x20) == 'f')) &&
	       s[same] == s[0])
		same++;
	if (same == n) /* all zeros (IDFA with tracking limited), all f */
		return true;
	if (n > 16) /* longer than every word below: the common case */
		return false;
	for (size_t w = 0; device && w < sizeof(shared) / sizeof(shared[0]); w++)
		if (n == shared[w].n && !strncasecmp(s, shared[w].s, (size_t)n))
			return true;
	/* the first letter first ('|' 0x20 keeps '-', '(' and '<' as they are) */
	for (size_t w = 0; w < sizeof(words) / sizeof(words[0]); w++)
		if (n == words[w].n && (s[0] | 0x20) == words[w].s[0] &&
		    !strncasecmp(s, words[w].s, (size_t)n))
			return true;
	return false;
}

/* A device id: unwrapped, placeholders (as typed: "-1") refused, then
 * norm_device; one with full-width forms (any byte >= 0x80, which is rare)
 * once more after basic_fold. */
static int device_id(const char *in, size_t len, char *out)
{
	char buf[4 * KN_ID_MAX];
	uint8_t high = 0;
	int n;

	unwrap_device(&in, &len);
	if (len > sizeof(buf) || placeholder(in, (int)len, true))
		return -EINVAL;
	n = norm_device(in, len, out, &high);
	if (high & 0x80) {
		len = basic_fold(in, len, buf);
		in = buf;
		unwrap_device(&in, &len);
		n = norm_device(in, len, out, &high);
	}
	return n > 0 && placeholder(out, n, true) ? -EINVAL : n;
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
		return device_id(in, len, out);
	case KN_ID_USER:
	case KN_ID_COOKIE:
		n = norm_opaque(in, len, out);
		break;
	default:
		return -EINVAL;
	}
	return n > 0 && placeholder(out, n, false) ? -EINVAL : n;
}
