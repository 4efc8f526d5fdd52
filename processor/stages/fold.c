/* Folding runs in UTF-16, ICU's native form: UTF-8 in (invalid bytes
 * substituted), NFKC_Casefold, then one pass that maps digits and Han
 * characters, then the optional squeeze, then UTF-8 out. The traditional to
 * simplified table covers the CJK Unified Ideographs (and Extension A) and
 * the compatibility ideographs of the BMP; ICU's transliterator maps each of
 * them to at most one character, and building the table costs ~7 ms once,
 * where running the transliterator on every text cost ~4.5 us each. */
#include "fold.h"

#include <errno.h>
#include <idn2.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unicode/uchar.h>
#include <unicode/ucnv.h>
#include <unicode/unorm2.h>
#include <unicode/uscript.h>
#include <unicode/ustring.h>
#include <unicode/utf16.h>
#include <unicode/utf8.h>
#include <unicode/utrans.h>

#define U16_MAX (4 * KN_FOLD_IN_MAX) /* NFKC rarely grows text 4-fold */

static pthread_once_t once = PTHREAD_ONCE_INIT;
static const UNormalizer2 *nfkc_cf;
static uint16_t *han; /* [0x10000]: simplified form, 0 when unchanged */
static char init_error[256];

static void han_range(UTransliterator *t, UChar32 lo, UChar32 hi)
{
	for (UChar32 c = lo; c <= hi; c++) {
		UChar buf[8] = {(UChar)c};
		int32_t len = 1, limit = 1;
		UErrorCode e = U_ZERO_ERROR;
		utrans_transUChars(t, buf, &len, 8, 0, &limit, &e);
		if (U_SUCCESS(e) && len == 1 && buf[0] != c)
			han[c] = buf[0];
	}
}

static void init(void)
{
	UErrorCode e = U_ZERO_ERROR;
	UChar id[32];
	UTransliterator *t;

	nfkc_cf = unorm2_getNFKCCasefoldInstance(&e);
	if (U_FAILURE(e)) {
		snprintf(init_error, sizeof(init_error), "ICU NFKC_Casefold: %s", u_errorName(e));
		return;
	}
	u_uastrcpy(id, "Traditional-Simplified");
	t = utrans_openU(id, -1, UTRANS_FORWARD, NULL, 0, NULL, &e);
	han = calloc(0x10000, sizeof(*han));
	if (U_FAILURE(e) || !han) {
		snprintf(init_error, sizeof(init_error), "ICU Traditional-Simplified: %s",
			 han ? u_errorName(e) : "out of memory");
		nfkc_cf = NULL;
	} else {
		han_range(t, 0x3400, 0x9FFF);
		han_range(t, 0xF900, 0xFAFF);
	}
	if (t)
		utrans_close(t);
}

int kn_fold_init(char *errstr, size_t errstr_size)
{
	pthread_once(&once, init);
	if (!nfkc_cf) {
		snprintf(errstr, errstr_size,
			 "text folding unavailable: %s (is libicu72 installed?)", init_error);
		return -EIO;
	}
	return 0;
}

bool kn_fold_is_cjk(int cp)
{
	UErrorCode e = U_ZERO_ERROR;
	UScriptCode s = uscript_getScript(cp, &e);

	return s == USCRIPT_HAN || s == USCRIPT_HIRAGANA || s == USCRIPT_KATAKANA ||
	       s == USCRIPT_HANGUL;
}

bool kn_fold_is_numeral(int cp)
{
	/* 〇零一二三四五六七八九, 幺两 (spoken 1 and 2), 壹贰叁参肆伍陆柒捌玖
	 * (financial), 洞拐勾 (radio-style 0, 7, 9). */
	static const int set[] = {0x3007, 0x96F6, 0x4E00, 0x4E8C, 0x4E09, 0x56DB, 0x4E94,
				  0x516D, 0x4E03, 0x516B, 0x4E5D, 0x5E7A, 0x4E24, 0x58F9,
				  0x8D30, 0x53C1, 0x53C2, 0x8086, 0x4F0D, 0x9646, 0x67D2,
				  0x634C, 0x7396, 0x6D1E, 0x62D0, 0x52FE};

	for (size_t k = 0; k < sizeof(set) / sizeof(set[0]); k++)
		if (set[k] == cp)
			return true;
	return false;
}

/* ---- URLs: %XX and punycode first ---- */

/* Appends code point cp as UTF-8 at out; returns the bytes written. */
static size_t put_utf8(char *out, int32_t cp)
{
	size_t n = 0;

	if (U_IS_SURROGATE(cp))
		cp = 0xFFFD;
	U8_APPEND_UNSAFE(out, n, cp);
	return n;
}

/* An HTML character reference at in[i] ("&#64;", "&#x40;", "&commat;"; the
 * numeric ones also without their ';', as browsers read them): its code
 * point, with *n its length; -1 if none. UTF-8 of the code point is never
 * longer than the reference. */
static int32_t char_ref(const char *in, size_t len, size_t i, size_t *n)
{
	static const struct {
		const char *name;
		int32_t cp;
	} named[] = {{"amp;", '&'},    {"lt;", '<'},	{"gt;", '>'},	  {"quot;", '"'},
		     {"apos;", '\''},  {"nbsp;", 0xA0}, {"commat;", '@'}, {"period;", '.'},
		     {"num;", '#'},    {"colon;", ':'}, {"sol;", '/'},	  {"lowbar;", '_'},
		     {"hyphen;", '-'}, {"plus;", '+'},	{"percnt;", '%'}};
	size_t j = i + 1;
	int32_t cp = 0;
	int h, digits = 0;

	if (j >= len)
		return -1;
	if (in[j] != '#') {
		for (size_t k = 0; k < sizeof(named) / sizeof(named[0]); k++) {
			size_t m = strlen(named[k].name);
			if (len - j >= m && !memcmp(in + j, named[k].name, m)) {
				*n = 1 + m;
				return named[k].cp;
			}
		}
		return -1;
	}
	bool hex = ++j < len && (in[j] | 0x20) == 'x';
	for (j += hex; j < len && digits < 7; j++, digits++) {
		if ((h = hex ? kn_hexval(in[j])
			     : (in[j] >= '0' && in[j] <= '9' ? in[j] - '0' : -1)) < 0)
			break;
		cp = cp * (hex ? 16 : 10) + h;
	}
	if (!digits || cp <= 0 || cp > 0x10FFFF || U_IS_SURROGATE(cp))
		return -1;
	*n = j - i + (j < len && in[j] == ';');
	return cp;
}

/* Whether s[0..n) is UTF-8 but for a character cut at the start of the
 * text (head) or at its end (tail): logs cut URLs, and a piece of a long
 * text is cut too. Inside a text a run has no such excuse (GBK's bytes
 * A1-BF look like UTF-8's continuation bytes). One whole character at
 * least (B0 AC, a GBK 艾, is no more than a cut). */
static bool utf8_but_edges(const char *s, size_t n, bool head, bool tail)
{
	size_t a = 0, b = n;

	while (head && a < n && a < 3 && ((unsigned char)s[a] & 0xc0) == 0x80)
		a++;
	for (size_t k = 1; tail && k <= 3 && k <= b - a; k++) {
		unsigned char c = (unsigned char)s[b - k];
		if ((c & 0xc0) == 0xc0) { /* a lead byte: is its sequence whole? */
			if ((size_t)(c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2) > k)
				b -= k;
			break;
		}
	}
	if (a >= b)
		return false;
	for (int32_t i = (int32_t)a; i < (int32_t)b;) {
		UChar32 c;
		U8_NEXT(s, i, (int32_t)b, c);
		if (c < 0)
			return false;
	}
	return true;
}

/* Whether s[0..n) is UTF-8 of two-byte characters only (U+0080-U+07FF:
 * Latin, Greek, Cyrillic, Hebrew, Arabic...), which GBK's Chinese can be
 * too: 医院 in GBK, D2 BD D4 BA, is "ҽԺ" as UTF-8. */
static bool two_byte_utf8(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i += 2) {
		unsigned char a = (unsigned char)s[i], b = i + 1 < n ? (unsigned char)s[i + 1] : 0;
		if (a < 0xc2 || a > 0xdf || (b & 0xc0) != 0x80)
			return false;
	}
	return n > 0;
}

/* Whether u[0..m) (UTF-8) is Han throughout. */
static bool all_han(const char *u, int32_t m)
{
	UErrorCode e = U_ZERO_ERROR;

	for (int32_t i = 0; i < m;) {
		UChar32 c;
		U8_NEXT(u, i, m, c);
		if (c < 0 || uscript_getScript(c, &e) != USCRIPT_HAN)
			return false;
	}
	return m > 0;
}

/* s[0..n) read as GB18030 into u (cap bytes): its length, or 0 when it
 * does not convert cleanly. */
static int32_t from_gbk(const char *s, size_t n, char *u, size_t cap)
{
	UErrorCode e = U_ZERO_ERROR;
	int32_t m = ucnv_convert("UTF-8", "GB18030", u, (int32_t)cap, s, (int32_t)n, &e);

	if (U_FAILURE(e) || m <= 0 || (size_t)m > 3 * n / 2 || memchr(u, 0x1a, (size_t)m) ||
	    memmem(u, (size_t)m, "\xef\xbf\xbd", 3))
		return 0;
	return m;
}

/* The bytes of a run of %XX escapes of 0x80 and above, out[from..n), when
 * they are GB18030 (GBK) rather than UTF-8, as a Chinese site may have
 * escaped its text (%B0%AC%D7%CC%B2%A1 is 艾滋病): as UTF-8, in place. Only
 * a run of an even number of bytes (GBK's characters are two or four) that
 * is not UTF-8 but for a character cut at the text's start or end
 * (utf8_but_edges; head, tail: the run touches them), and converts whole:
 * else it is left to UTF-8 (and U+FFFD). With gbk (the second reading of an
 * ambiguous run, kn_fold_gbk_ambiguous), also a run that is UTF-8 of
 * two-byte characters and GB18030 of Han only. Returns the new end. UTF-8
 * takes at most half the escapes' length, so the write position still
 * never passes the read position. */
static size_t gbk_run(char *out, size_t from, size_t n, bool head, bool tail, bool gbk)
{
	char u[KN_FOLD_IN_MAX];
	bool utf8;
	int32_t m;

	if (n - from < 2 || (n - from) % 2)
		return n;
	utf8 = utf8_but_edges(out + from, n - from, head, tail);
	if (utf8 && !(gbk && two_byte_utf8(out + from, n - from)))
		return n;
	if (!(m = from_gbk(out + from, n - from, u, sizeof(u))) || (utf8 && !all_han(u, m)))
		return n; /* not GB18030 either */
	memcpy(out + from, u, (size_t)m);
	return from + (size_t)m;
}

bool kn_fold_gbk_ambiguous(const char *in, size_t len)
{
	char run[KN_FOLD_IN_MAX / 3 + 1], u[KN_FOLD_IN_MAX];
	size_t n = 0;

	if (len > KN_FOLD_IN_MAX)
		len = KN_FOLD_IN_MAX;
	for (size_t i = 0; i <= len; i++) {
		if (i + 2 < len && in[i] == '%' && kn_hexval(in[i + 1]) >= 8 &&
		    kn_hexval(in[i + 2]) >= 0) {
			run[n++] = (char)(kn_hexval(in[i + 1]) << 4 | kn_hexval(in[i + 2]));
			i += 2;
			continue;
		}
		int32_t m;
		if (n >= 2 && n % 2 == 0 && two_byte_utf8(run, n) &&
		    (m = from_gbk(run, n, u, sizeof(u))) && all_han(u, m))
			return true;
		n = 0;
	}
	return false;
}

/* Decodes %XX, the %uXXXX some encoders still write, and HTML character
 * references into out (never longer than in; out may be in: the write
 * position never passes the read position). */
static size_t percent_decode(const char *in, size_t len, char *out, bool gbk)
{
	size_t n = 0, rn, run = SIZE_MAX; /* run: where the current %XX run's bytes start */
	bool head = false;		  /* ...and whether it is the text's start */

	for (size_t i = 0; i < len; i++) {
		int h, l, cp = 0, k;
		int32_t ref;
		bool esc = in[i] == '%' && i + 2 < len && kn_hexval(in[i + 1]) >= 0 &&
			   kn_hexval(in[i + 2]) >= 0;
		/* a run: escaped bytes of 0x80 and above, side by side */
		if (run != SIZE_MAX && !(esc && kn_hexval(in[i + 1]) >= 8)) {
			n = gbk_run(out, run, n, head, false, gbk);
			run = SIZE_MAX;
		}
		if (in[i] == '&' && (ref = char_ref(in, len, i, &rn)) >= 0) {
			n += put_utf8(out + n, ref);
			i += rn - 1;
			continue;
		}
		if (esc) {
			h = kn_hexval(in[i + 1]);
			l = kn_hexval(in[i + 2]);
			if (run == SIZE_MAX && h >= 8)
				run = n, head = i == 0;
			out[n++] = (char)(h << 4 | l);
			i += 2;
			continue;
		}
		if (in[i] == '%' && i + 5 < len && (in[i + 1] | 0x20) == 'u') {
			for (k = 2; k < 6 && (h = kn_hexval(in[i + k])) >= 0; k++)
				cp = cp << 4 | h;
			int lo = 0, m = 0;
			if (k == 6 && U_IS_LEAD(cp) && i + 11 < len && in[i + 6] == '%' &&
			    (in[i + 7] | 0x20) == 'u') { /* %uD83D%uDE00: one character */
				for (m = 8; m < 12 && (h = kn_hexval(in[i + m])) >= 0; m++)
					lo = lo << 4 | h;
				if (m == 12 && U_IS_TRAIL(lo)) {
					n += put_utf8(out + n,
						      (int32_t)U16_GET_SUPPLEMENTARY(cp, lo));
					i += 11;
					continue;
				}
			}
			if (k == 6) {
				n += put_utf8(out + n, cp);
				i += 5;
				continue;
			}
		}
		out[n++] = in[i];
	}
	return run == SIZE_MAX ? n : gbk_run(out, run, n, head, true, gbk);
}

/* Percent-decoding until nothing changes (at most three rounds): a term
 * encoded twice (%25E8%2589...) is still the term. */
static size_t percent_decode_all(const char *in, size_t len, char *out, bool gbk)
{
	size_t n = percent_decode(in, len, out, gbk);

	for (int round = 1; round < 3 && (memchr(out, '%', n) || memchr(out, '&', n)); round++) {
		size_t m = percent_decode(out, n, out, gbk);
		if (m == n)
			break;
		n = m;
	}
	return n;
}

static bool label_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-';
}

static bool has_punycode(const char *s, size_t len)
{
	for (const char *p = s; (p = memchr(p, '-', len - (size_t)(p - s))); p++)
		if (p - s >= 2 && p + 1 < s + len && p[1] == '-' && (p[-1] | 0x20) == 'n' &&
		    (p[-2] | 0x20) == 'x')
			return true;
	return false;
}

/* Replaces every punycode label ("xn--" at a label start) with its Unicode
 * form; labels that do not decode stay as they are. */
static size_t punycode_decode(const char *in, size_t len, char *out, size_t cap)
{
	size_t n = 0, i = 0;

	while (i < len && n < cap) {
		size_t j = i;
		bool start = i == 0 || !label_char(in[i - 1]);
		while (j < len && label_char(in[j]))
			j++;
		char label[64], *u = NULL;
		if (start && j - i > 4 && j - i < sizeof(label) &&
		    !strncasecmp(in + i, "xn--", 4)) {
			memcpy(label, in + i, j - i);
			label[j - i] = '\0';
			if (idn2_to_unicode_8z8z(label, &u, 0) == IDN2_OK && n + strlen(u) <= cap) {
				memcpy(out + n, u, strlen(u));
				n += strlen(u);
				idn2_free(u);
				i = j;
				continue;
			}
			idn2_free(u);
		}
		if (j == i)
			j = i + 1;
		if (n + (j - i) > cap)
			break;
		memcpy(out + n, in + i, j - i);
		n += j - i;
		i = j;
	}
	return n;
}

/* ---- the squeeze ---- */

/* The length of an HTML tag of inline text ("<br>", "</b>", "<span
 * class=x>") at s[i], or 0: markup between the letters of a word is a
 * separator. Only these names: "<gay> bar" or "<hiv test>" is a word in
 * brackets, not markup. */
static int32_t tag_len(const UChar *s, int32_t i, int32_t n)
{
	static const char *const names[] = {"br",     "b",    "i",     "u",   "s",    "em",
					    "strong", "span", "font",  "p",   "div",  "a",
					    "sub",    "sup",  "small", "big", "mark", "del",
					    "ins",    "wbr",  "code",  "tt",  "hr",   "img"};
	int32_t k = i + 1, name;
	char lower[8];

	if (k < n && s[k] == '/')
		k++;
	for (name = 0; k + name < n && name < 7 &&
		       ((s[k + name] >= 'a' && s[k + name] <= 'z') ||
			(s[k + name] >= 'A' && s[k + name] <= 'Z'));
	     name++)
		lower[name] = (char)(s[k + name] | 0x20);
	if (!name || k + name >= n ||
	    (s[k + name] != '>' && s[k + name] != ' ' && s[k + name] != '/'))
		return 0;
	lower[name] = '\0';
	size_t w = 0;
	while (w < sizeof(names) / sizeof(names[0]) && strcmp(names[w], lower))
		w++;
	if (w == sizeof(names) / sizeof(names[0]))
		return 0;
	/* Closed at once ("<b>", "<br/>", "<br />"), or attributes with an
	 * '=' ("<span class=x>"): "<i have hiv>" is words in brackets. */
	bool attr = false;
	for (k += name; k < n && k - i <= 64; k++) {
		if (s[k] == '>')
			return attr || s[k - 1] == '/' || k == i + 1 + name + (s[i + 1] == '/')
				       ? k + 1 - i
				       : 0;
		if (s[k] == '<' || s[k] < 0x20 || s[k] > 0x7e)
			return 0;
		attr |= s[k] == '=';
	}
	return 0;
}

static bool word_char(UChar32 c)
{
	if (c < 0x80) /* most text: no ICU property lookup */
		return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z');
	if (kn_fold_is_filler(c))
		return false;
	int8_t t = u_charType(c);
	return u_isalnum(c) || t == U_NON_SPACING_MARK || t == U_COMBINING_SPACING_MARK ||
	       t == U_ENCLOSING_MARK;
}

struct tok {
	int32_t start, end, cps; /* UTF-16 indices; code points */
	UChar32 first, last;
};

/* Whether the separators between a and b vanish (see fold.h). */
static bool joined(const struct tok *a, const struct tok *b)
{
	return (kn_fold_is_cjk(a->last) && kn_fold_is_cjk(b->first)) ||
	       (a->cps == 1 && b->cps == 1 && !kn_fold_is_cjk(a->first) &&
		!kn_fold_is_cjk(b->first));
}

/* Squeezes s[0..n) into d; returns the new length (never longer). */
static int32_t squeeze(const UChar *s, int32_t n, UChar *d)
{
	struct tok prev = {0}, cur;
	int32_t i = 0, m = 0;
	bool have = false;

	while (i < n) {
		UChar32 c;
		int32_t at = i, tag = s[i] == '<' ? tag_len(s, i, n) : 0;
		if (tag) {
			i += tag;
			continue;
		}
		U16_NEXT(s, i, n, c);
		if (!word_char(c))
			continue;
		/* A token: word characters up to the next separator. */
		cur = (struct tok){at, i, 1, c, c};
		while (i < n) {
			int32_t k = i;
			U16_NEXT(s, k, n, c);
			if (!word_char(c))
				break;
			cur.end = i = k;
			cur.cps++;
			cur.last = c;
		}
		if (have && !joined(&prev, &cur))
			d[m++] = ' ';
		memcpy(d + m, s + cur.start, (size_t)(cur.end - cur.start) * sizeof(UChar));
		m += cur.end - cur.start;
		prev = cur;
		have = true;
	}
	return m;
}

/* ---- folding ---- */

static size_t fold_ascii(const char *in, size_t len, char *out, size_t cap, unsigned flags)
{
	UChar s[KN_FOLD_IN_MAX], d[KN_FOLD_IN_MAX];
	size_t n = len < cap - 1 ? len : cap - 1;

	if (!(flags & KN_FOLD_SQUEEZE)) {
		for (size_t i = 0; i < n; i++)
			out[i] = in[i] >= 'A' && in[i] <= 'Z' ? (char)(in[i] + 32) : in[i];
		out[n] = '\0';
		return n;
	}
	for (size_t i = 0; i < len; i++)
		s[i] = (UChar)(in[i] >= 'A' && in[i] <= 'Z' ? in[i] + 32 : in[i]);
	int32_t m = squeeze(s, (int32_t)len, d);
	n = (size_t)m < cap - 1 ? (size_t)m : cap - 1;
	for (size_t i = 0; i < n; i++)
		out[i] = (char)d[i];
	out[n] = '\0';
	return n;
}

/* The ASCII digit a character stands for, or -1: decimal digits of any
 * script (supplementary planes included: Osmanya, Adlam, ...), the
 * Hangzhou numerals U+3021..3029 with U+3007, and other single-digit
 * numbers, all of which write phone numbers as well as any digit does. */
static int digit_of(UChar32 c)
{
	if (c == 0x3007)
		return 0;
	if (c >= 0x3021 && c <= 0x3029)
		return (int)(c - 0x3020);
	if (c >= 0x80 && u_charType(c) == U_DECIMAL_DIGIT_NUMBER)
		return u_charDigitValue(c);
	/* Digits in dress that NFKC leaves alone: dingbat and double-circled
	 * digits (❶ ➊ ⓵ ⓿), which spell numbers as well as any digit does. */
	if (c >= 0x80 && u_charType(c) == U_OTHER_NUMBER) {
		double v = u_getNumericValue(c);
		if (v >= 0 && v <= 9 && v == (int)v)
			return (int)v;
	}
	return -1;
}

/* Digits of any script to ASCII, traditional Han to simplified, in place.
 * Returns the new length (a supplementary digit shrinks to one unit). */
static int32_t map_chars(UChar *s, int32_t n)
{
	int32_t w = 0;

	for (int32_t i = 0; i < n;) {
		int32_t start = i;
		UChar32 c;
		U16_NEXT(s, i, n, c);
		int d = digit_of(c);
		if (d >= 0) {
			s[w++] = (UChar)('0' + d);
		} else if (c < 0x10000 && han[c]) {
			s[w++] = han[c];
		} else {
			while (start < i)
				s[w++] = s[start++];
		}
	}
	return w;
}

/* UTF-16 to UTF-8, stopping before a character that would not fit. */
static size_t to_utf8(const UChar *s, int32_t n, char *out, size_t cap)
{
	size_t m = 0;

	for (int32_t i = 0; i < n;) {
		UChar32 c;
		U16_NEXT(s, i, n, c);
		if (U_IS_SURROGATE(c))
			c = 0xFFFD; /* an unpaired surrogate is not a character */
		if (m + (size_t)U8_LENGTH(c) > cap - 1)
			break;
		U8_APPEND_UNSAFE(out, m, c);
	}
	out[m] = '\0';
	return m;
}

/* NFKC_Casefold of s[0..n) into d (U16_MAX units): all of it, or when it
 * would grow past d (U+FDFA alone becomes 18 characters), the longest
 * prefix that fits, to within one chunk. Chunks end where the normalizer
 * says text before and after is independent, so folding them one by one
 * gives what folding the whole would: a term early in a long text is seen
 * whatever follows it. */
static int32_t normalize_prefix(const UChar *s, int32_t n, UChar *d)
{
	int32_t dn = 0;

	for (int32_t i = 0; i < n;) {
		int32_t end = i + 256 < n ? i + 256 : n;
		while (end < n) {
			UChar32 c;
			U16_GET(s, 0, end, n, c); /* the whole code point, not a surrogate */
			if (!U16_IS_TRAIL(s[end]) && unorm2_hasBoundaryBefore(nfkc_cf, c))
				break;
			end++;
		}
		UErrorCode e = U_ZERO_ERROR;
		int32_t m = unorm2_normalize(nfkc_cf, s + i, end - i, d + dn, U16_MAX - dn, &e);
		if (U_FAILURE(e)) /* overflow: what came before is whole */
			break;
		dn += m;
		i = end;
	}
	return dn;
}

size_t kn_fold(const char *in, size_t len, char *out, size_t cap, unsigned flags)
{
	char pre[2 * KN_FOLD_IN_MAX], tmp[KN_FOLD_IN_MAX];
	UChar s[KN_FOLD_IN_MAX], d[U16_MAX], q[U16_MAX];
	UErrorCode e = U_ZERO_ERROR;
	int32_t sn, dn;
	bool ascii = true;

	if (!cap)
		return 0;
	if (len > KN_FOLD_IN_MAX)
		len = KN_FOLD_IN_MAX;
	/* Most text has nothing to decode: two scans spare two copies. */
	if ((flags & KN_FOLD_URL) && (memchr(in, '%', len) || memchr(in, '&', len))) {
		len = percent_decode_all(in, len, tmp, flags & KN_FOLD_GBK);
		in = tmp;
	}
	if ((flags & KN_FOLD_URL) && has_punycode(in, len)) {
		len = punycode_decode(in, len, pre, KN_FOLD_IN_MAX);
		in = pre;
	}
	for (size_t i = 0; i < len && ascii; i++)
		ascii = !((unsigned char)in[i] & 0x80);
	if (ascii)
		return fold_ascii(in, len, out, cap, flags);
	u_strFromUTF8WithSub(s, KN_FOLD_IN_MAX, &sn, in, (int32_t)len, 0xFFFD, NULL, &e);
	if (U_FAILURE(e))
		sn = 0;
	dn = normalize_prefix(s, sn, d);
	dn = map_chars(d, dn);
	if (flags & KN_FOLD_SQUEEZE)
		return to_utf8(q, squeeze(d, dn, q), out, cap);
	return to_utf8(d, dn, out, cap);
}
