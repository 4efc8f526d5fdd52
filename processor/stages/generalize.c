#include "generalize.h"

#include <arpa/inet.h>
#include <errno.h>
#include <idn2.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unicode/uchar.h>
#include <unicode/utf8.h>
#include <xxhash.h>

#include "fold.h"
#include "kn_alloc.h"
#include "url.h"

/* A string literal into out (which holds at least the literal): the hot
 * paths use no printf. */
#define SET_LIT(out, lit) memcpy((out), lit, sizeof(lit))

/* ---- geohash ---- */

/* The index of the cell of v among the 2^n equal cells of [lo, lo + span]
 * (the last one closed): what n steps of geohash's bisection find. The
 * float estimate is corrected against the exact edges lo + q * step (short
 * dyadic fractions, so computed without rounding), which makes it equal to
 * the bisection even a hair from an edge; with no branch per bit, as the
 * bits of real coordinates are coin flips to a branch predictor. */
static uint64_t cell(double v, double lo, double span, int n)
{
	double step = span / (double)(1ull << n);
	int64_t max = (int64_t)(1ull << n) - 1, q = (int64_t)((v - lo) / step);

	q = q < 0 ? 0 : q > max ? max : q;
	while (q < max && v >= lo + (double)(q + 1) * step)
		q++;
	while (q > 0 && v < lo + (double)q * step)
		q--;
	return (uint64_t)q;
}

/* Bit i of x to bit 2i (x below 2^32). */
static uint64_t spread(uint64_t x)
{
	x = (x | x << 16) & 0x0000ffff0000ffffull;
	x = (x | x << 8) & 0x00ff00ff00ff00ffull;
	x = (x | x << 4) & 0x0f0f0f0f0f0f0f0full;
	x = (x | x << 2) & 0x3333333333333333ull;
	return (x | x << 1) & 0x5555555555555555ull;
}

int kn_geohash(double lat, double lon, int precision, char *out)
{
	static const char b32[] = "0123456789bcdefghjkmnpqrstuvwxyz";

	if (precision < 1 || precision > KN_GEOHASH_MAX || !isfinite(lat) || !isfinite(lon) ||
	    lat < -90 || lat > 90 || lon < -180 || lon > 180)
		return -EINVAL;
	/* Bits alternate from the top, longitude first: with an odd count the
	 * last (lowest) bit is longitude's, with an even one latitude's. */
	int n = 5 * precision, n_lon = (n + 1) / 2, n_lat = n / 2;
	uint64_t x = spread(cell(lon, -180, 360, n_lon)), y = spread(cell(lat, -90, 180, n_lat));
	uint64_t all = n % 2 ? x | y << 1 : y | x << 1;
	for (int i = 0; i < precision; i++)
		out[i] = b32[(all >> (5 * (precision - 1 - i))) & 31];
	out[precision] = '\0';
	return 0;
}

/* ---- IP prefixes ---- */

static void mask_bits(uint8_t *a, int nbytes, int bits)
{
	for (int i = 0; i < nbytes; i++) {
		int keep = bits - 8 * i;
		if (keep >= 8)
			continue;
		a[i] &= keep <= 0 ? 0 : (uint8_t)(0xff << (8 - keep));
	}
}

/* Appends "/" bits at out[n] and terminates. */
static void put_bits(char *out, size_t n, int bits)
{
	out[n++] = '/';
	if (bits >= 100)
		out[n++] = (char)('0' + bits / 100);
	if (bits >= 10)
		out[n++] = (char)('0' + bits / 10 % 10);
	out[n++] = (char)('0' + bits % 10);
	out[n] = '\0';
}

/* Dotted-decimal IPv4 exactly as glibc's inet_pton(AF_INET) takes it: four
 * decimal octets of at most 255, no leading zeros, nothing else. The hot
 * path (every access log) without a copy to terminate the string. */
static bool parse_v4(const char *s, size_t len, uint8_t a[4])
{
	size_t i = 0;

	for (int o = 0; o < 4; o++) {
		unsigned v = 0, digits = 0;
		if (o && (i >= len || s[i++] != '.'))
			return false;
		while (i < len && s[i] >= '0' && s[i] <= '9') {
			if (digits && !v) /* "01": a leading zero */
				return false;
			v = v * 10 + (unsigned)(s[i++] - '0');
			if (++digits > 3 || v > 255)
				return false;
		}
		if (!digits)
			return false;
		a[o] = (uint8_t)v;
	}
	return i == len;
}

/* a as dotted decimal, then "/" bits; no printf on the hot path. */
static void put_v4_prefix(char *out, const uint8_t a[4], int bits)
{
	size_t n = 0;

	for (int o = 0; o < 4; o++) {
		if (o)
			out[n++] = '.';
		if (a[o] >= 100)
			out[n++] = (char)('0' + a[o] / 100);
		if (a[o] >= 10)
			out[n++] = (char)('0' + a[o] / 10 % 10);
		out[n++] = (char)('0' + a[o] % 10);
	}
	put_bits(out, n, bits);
}

/* a as RFC 5952 text (what inet_ntop writes for every address that is not
 * one with an IPv4 inside, which embedded_v4 takes first), then "/" bits:
 * lower-case hex groups, the first longest run of two or more zero groups
 * as "::". No printf on the hot path. */
static void put_v6_prefix(char *out, const uint8_t a[16], int bits)
{
	static const char hex[] = "0123456789abcdef";
	unsigned g[8];
	int best = -1, best_len = 1, n = 0;

	for (int i = 0; i < 8; i++)
		g[i] = (unsigned)a[2 * i] << 8 | a[2 * i + 1];
	for (int i = 0, run; i < 8; i += run ? run : 1) {
		for (run = 0; i + run < 8 && !g[i + run]; run++)
			;
		if (run > best_len)
			best = i, best_len = run;
	}
	for (int i = 0; i < 8; i++) {
		if (i == best) {
			out[n++] = ':';
			out[n++] = ':';
			i += best_len - 1;
			continue;
		}
		if (i && i != best + best_len)
			out[n++] = ':';
		for (int sh = 12, lead = 1; sh >= 0; sh -= 4) {
			unsigned d = g[i] >> sh & 15;
			if (lead && !d && sh)
				continue;
			lead = 0;
			out[n++] = hex[d];
		}
	}
	put_bits(out, (size_t)n, bits);
}

static bool zeros(const uint8_t *a, int n)
{
	for (int i = 0; i < n; i++)
		if (a[i])
			return false;
	return true;
}

/* The IPv4 address an IPv6 address carries, if any: IPv4-mapped
 * (::ffff:a.b.c.d), IPv4-translated (::ffff:0:a.b.c.d), IPv4-compatible
 * (::a.b.c.d), 6to4 (2002:aabb:ccdd::/16), Teredo (2001::/32, the client's
 * address inverted in the last 32 bits), NAT64 (64:ff9b::/96, and the
 * local-use 64:ff9b:1::/48 with the RFC 6052 /48 layout). */
static bool embedded_v4(const uint8_t a[16], uint8_t v4[4])
{
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	static const uint8_t translated[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0};
	static const uint8_t nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
	static const uint8_t nat64_local[6] = {0, 0x64, 0xff, 0x9b, 0, 1};

	if (!memcmp(a, mapped, 12) || !memcmp(a, translated, 12) || !memcmp(a, nat64, 12) ||
	    (zeros(a, 12) && !zeros(a + 12, 3))) { /* not :: nor ::1 */
		memcpy(v4, a + 12, 4);
		return true;
	}
	if (a[0] == 0x20 && a[1] == 0x02) {
		memcpy(v4, a + 2, 4);
		return true;
	}
	if (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0 && a[3] == 0) {
		for (int i = 0; i < 4; i++)
			v4[i] = (uint8_t)~a[12 + i];
		return true;
	}
	/* RFC 8215's local-use block: RFC 6052's layouts within it, the /48
	 * one (bits 64-71, the u-octet, zero) or the /96 one (after zeros) */
	if (!memcmp(a, nat64_local, 6) && !a[8]) {
		if (zeros(a + 6, 6))
			memcpy(v4, a + 12, 4);
		else
			v4[0] = a[6], v4[1] = a[7], v4[2] = a[9], v4[3] = a[10];
		return true;
	}
	return false;
}

/* How much of an IPv6 address outside global unicast (2000::/3) says no
 * more than its kind: a unique-local /48 (fc00::/7) is a random 40-bit id
 * of one site, a link-local one holds the interface's MAC-derived bits. */
static int v6_block_bits(const uint8_t *a)
{
	if ((a[0] & 0xe0) == 0x20)
		return 128; /* global unicast: the configured prefix */
	if ((a[0] & 0xfe) == 0xfc)
		return 7;
	if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80)
		return 10; /* link-local */
	if (a[0] == 0xfe && (a[1] & 0xc0) == 0xc0)
		return 10; /* site-local (deprecated) */
	if (a[0] == 0xff)
		return 8; /* multicast */
	return 3;	  /* reserved blocks */
}

/* The address in what access logs write around one: blanks, a port
 * ("1.2.3.4:8080", "[2001:db8::1]:443"), brackets, an IPv6 zone ("%eth0",
 * which names an interface, not a host). Narrows ip[0..*len). */
static void unwrap_ip(const char **ip, size_t *len)
{
	const char *s = *ip, *e = s + *len, *c;

	while (s < e && (*s == ' ' || *s == '\t'))
		s++;
	while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	if (s < e && *s == '[' && (c = memchr(s, ']', (size_t)(e - s)))) {
		const char *p = c + 1; /* nothing, or ":port" */
		if (p < e && *p == ':')
			for (p++; p < e && *p >= '0' && *p <= '9'; p++)
				;
		if (p == e)
			s++, e = c;
	} else if ((c = memchr(s, ':', (size_t)(e - s))) &&
		   !memchr(c + 1, ':', (size_t)(e - c - 1)) &&
		   memchr(s, '.', (size_t)(c - s))) { /* one ':' after a dotted IPv4 */
		const char *p = c + 1;
		while (p < e && *p >= '0' && *p <= '9')
			p++;
		if (p == e && p - c >= 2 && p - c <= 6)
			e = c;
	}
	if ((c = memchr(s, '%', (size_t)(e - s))) && memchr(s, ':', (size_t)(c - s)))
		e = c;
	*ip = s;
	*len = (size_t)(e - s);
}

int kn_ip_prefix(const char *ip, size_t len, int v4_bits, int v6_bits, char *out)
{
	char buf[INET6_ADDRSTRLEN + 1];
	uint8_t a[16], v4[4];

	unwrap_ip(&ip, &len);
	if (len == 0 || len >= sizeof(buf))
		return -EINVAL;
	if (!memchr(ip, ':', len)) {
		if (!parse_v4(ip, len, a))
			return -EINVAL;
	} else {
		memcpy(buf, ip, len);
		buf[len] = '\0';
		if (inet_pton(AF_INET6, buf, a) != 1)
			return -EINVAL;
		if (!embedded_v4(a, v4)) {
			int bits = v6_bits < v6_block_bits(a) ? v6_bits : v6_block_bits(a);
			mask_bits(a, 16, bits);
			put_v6_prefix(out, a, bits);
			return 0;
		}
		memcpy(a, v4, 4); /* generalized as the IPv4 it carries */
	}
	mask_bits(a, 4, v4_bits);
	put_v4_prefix(out, a, v4_bits);
	return 0;
}

int64_t kn_time_bucket(int64_t ts_ms, int64_t bucket_ms)
{
	int64_t q = ts_ms / bucket_ms;

	if (ts_ms % bucket_ms < 0)
		q--;
	return q * bucket_ms;
}

/* ---- user agents ---- */

/* Finds needle in hay[0..len); returns a pointer just past it, or NULL. */
static const char *find(const char *hay, size_t len, const char *needle)
{
	size_t n = strlen(needle);
	const char *p = memmem(hay, len, needle, n);

	return p ? p + n : NULL;
}

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
}

static char lower_at(const char *s, size_t len, size_t i)
{
	return i < len ? lower(s[i]) : '\0';
}

static bool letter_at(const char *s, size_t len, size_t i)
{
	char c = lower_at(s, len, i);
	return c >= 'a' && c <= 'z';
}

/* Crawlers announce themselves with "bot" or "bots" at a word's end
 * (Googlebot/, PetalBot;, yandex.com/bots, not "bottle"), "spider" or
 * "crawl", in any case; link previewers and archivers with their own
 * names. A phone brand that ends in "bot" (CUBOT) is none. One pass,
 * comparing only where a word's first two letters match. */
static const char *const bot_words[] = {
	"bot",	     "spider",	 "crawl",	  "slurp",    "archiver",
	"preview",   "heritrix", "findlinks",	  "qwantify", "facebookexternalhit",
	"whatsapp/", "teoma",	 "inspectiontool"};
static uint16_t bot_starts[26]; /* per first letter, a bit per word that starts so */
static pthread_once_t bot_once = PTHREAD_ONCE_INIT;

static void bot_index(void)
{
	for (size_t w = 0; w < sizeof(bot_words) / sizeof(bot_words[0]); w++)
		bot_starts[bot_words[w][0] - 'a'] |= (uint16_t)(1u << w);
}

static bool is_bot(const char *ua, size_t len)
{
	pthread_once(&bot_once, bot_index);
	for (size_t i = 0; i + 3 <= len; i++) {
		char c = lower(ua[i]);
		if (c < 'a' || c > 'z' || !bot_starts[c - 'a'])
			continue;
		for (unsigned m = bot_starts[c - 'a']; m; m &= m - 1) {
			const char *word = bot_words[__builtin_ctz(m)];
			size_t n = strlen(word), k = 1;
			if (i + n > len || lower(ua[i + 1]) != word[1])
				continue;
			while (k < n && lower(ua[i + k]) == word[k])
				k++;
			if (k < n)
				continue;
			if (word == bot_words[0] &&
			    (letter_at(ua, len, i + 3 + (lower_at(ua, len, i + 3) == 's')) ||
			     (i >= 2 && lower(ua[i - 2]) == 'c' && lower(ua[i - 1]) == 'u')))
				continue; /* "bottle", "CUBOT"; "bots" is one */
			return true;
		}
	}
	return false;
}

/* Leading decimal number at p (bounded by end), or -1. A major version has
 * at most three digits: anything longer is not a version (and could be an
 * identifier), so it is unknown. */
static int32_t major_at(const char *p, const char *end)
{
	int32_t v = -1;

	while (p && p < end && *p >= '0' && *p <= '9') {
		v = (v < 0 ? 0 : v) * 10 + (*p++ - '0');
		if (v > 999)
			return -1;
	}
	return v;
}

static void set_family(char *dst, const char *name)
{
	size_t n = strlen(name); /* one of the vocabulary's literals */

	if (n >= KN_FAMILY_MAX)
		n = KN_FAMILY_MAX - 1;

	memcpy(dst, name, n);
	dst[n] = '\0';
}

/* Browser product tokens ("Name/version"), most specific first: many
 * browsers also claim "Chrome/" and "Safari/", so the earliest entry found
 * anywhere in the string wins. */
#define B(tok, fam)                                                                                \
	{                                                                                          \
		tok, sizeof(tok) - 1, fam                                                          \
	}
static const struct {
	const char *token;
	size_t len;
	const char *family;
} browsers[] = {
	B("Edg", "Edge"),
	B("EdgA", "Edge"),
	B("EdgiOS", "Edge"),
	B("Edge", "Edge"), /* EdgeHTML: Windows 10, Xbox */
	B("OPR", "Opera"),
	B("OPiOS", "Opera"),
	B("OPT", "Opera"),   /* Opera Touch */
	B("Opera", "Opera"), /* Presto, Opera Mini */
	B("SamsungBrowser", "Samsung Internet"),
	B("MicroMessenger", "WeChat"),
	B("MQQBrowser", "QQ Browser"),
	B("QQBrowser", "QQ Browser"),
	B("UCBrowser", "UC Browser"),
	B("baiduboxapp", "Baidu"),
	B("baidubrowser", "Baidu"),
	B("BIDUBrowser", "Baidu"),
	B("UBrowser", "UC Browser"), /* UC's desktop browser */
	B("HuaweiBrowser", "Huawei Browser"),
	B("MiuiBrowser", "MIUI Browser"),
	B("YaBrowser", "Yandex"),
	B("FxiOS", "Firefox"),
	B("Firefox", "Firefox"),
	B("CriOS", "Chrome"),
	B("Chrome", "Chrome"),
	B("okhttp", "okhttp"),
	B("curl", "curl"),
	B("Dalvik", "Dalvik"), /* Android's own HTTP client: an app, not a browser */
};

#undef B
#define N_BROWSERS (int)(sizeof(browsers) / sizeof(browsers[0]))

static int is_token_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* One pass over the '/'s: the product name before each is looked up. */
static int best_browser(const char *ua, size_t len, const char **ver)
{
	int best = N_BROWSERS;
	const char *p = ua, *end = ua + len;

	while ((p = memchr(p, '/', (size_t)(end - p)))) {
		const char *s = p;
		while (s > ua && is_token_char(s[-1]))
			s--;
		size_t n = (size_t)(p - s);
		for (int i = 0; i < best; i++) {
			if (browsers[i].len == n && !memcmp(browsers[i].token, s, n)) {
				best = i;
				*ver = p + 1;
				break;
			}
		}
		p++;
	}
	return best;
}

static void ua_browser(const char *ua, size_t len, struct kn_agent *a)
{
	const char *end = ua + len, *p, *ver = NULL;
	int b;

	if (is_bot(ua, len)) {
		set_family(a->browser, "bot");
		return;
	}
	b = best_browser(ua, len, &ver);
	if (b < N_BROWSERS) {
		/* An app's embedded view says Chrome and marks itself "; wv)",
		 * or, on Android, "Version/4.0" beside it as the old stock
		 * views did (the Chrome app never does). */
		bool chrome = !strcmp(browsers[b].family, "Chrome");
		bool wv = chrome && (find(ua, len, "; wv)") ||
				     (find(ua, len, "Android") && find(ua, len, "Version/")));

		set_family(a->browser, wv ? "Android WebView" : browsers[b].family);
		/* Presto's Opera says Opera/9.80 and its version after */
		if (browsers[b].len == 5 && !memcmp(browsers[b].token, "Opera", 5) &&
		    (p = find(ua, len, "Version/")))
			ver = p;
		a->browser_major = major_at(ver, end);
		return;
	}
	/* names that come without "/version" right after them */
	if (find(ua, len, "UCWEB") || find(ua, len, "baidubrowser") ||
	    find(ua, len, "Opera Mini")) {
		set_family(a->browser, find(ua, len, "UCWEB")	       ? "UC Browser"
				       : find(ua, len, "baidubrowser") ? "Baidu"
								       : "Opera");
		return;
	}
	if ((p = find(ua, len, "MSIE ")) ||
	    (find(ua, len, "Trident/") && (p = find(ua, len, "rv:")))) {
		set_family(a->browser, "IE");
		a->browser_major = major_at(p, end);
		return;
	}
	if (find(ua, len, "Safari/") || find(ua, len, "AppleWebKit/")) {
		set_family(a->browser, "Safari");
		p = find(ua, len, "Version/");
		a->browser_major = p ? major_at(p, end) : -1;
		return;
	}
	set_family(a->browser, "other");
}

/* An app's own HTTP client on Apple's systems says "CFNetwork/c Darwin/N":
 * as uap-core reads it, macOS 10 for an old Mac (Darwin 9 to 13 on i386 or
 * x86_64, CFNetwork 720 and 760, Darwin 15 to 17 on x86_64), else iOS in
 * the release that ships Darwin N (uap-core's table, where Darwin 14 to 19
 * also ask for the CFNetwork of that release; 17, 18 and 26 for Darwin 23
 * to 25, Apple's releases, where uap-core 0.18 gives none). cf and d point
 * past "CFNetwork/" and "Darwin/". */
static void darwin_os(const char *ua, size_t len, const char *cf, const char *d, struct kn_agent *a)
{
	static const int8_t ios[] = {[9] = 1,	[10] = 4,  [11] = 5,  [13] = 6,	 [20] = 14,
				     [21] = 15, [22] = 16, [23] = 17, [24] = 18, [25] = 26};
	static const struct {
		int16_t darwin, cf_lo, cf_hi, ios;
	} by_cf[] = {{14, 600, 699, 7},	  {14, 700, 799, 8},  {15, 700, 799, 9},
		     {16, 800, 899, 10},  {17, 800, 999, 11}, {18, 900, 999, 12},
		     {19, 1000, 1199, 13}};
	const char *end = ua + len;
	int32_t n = major_at(d, end), c = 0;
	bool x86 = find(ua, len, "(x86_64)") || find(ua, len, "(i386)");

	for (const char *p = cf; p < end && *p >= '0' && *p <= '9' && c < 100000; p++)
		c = c * 10 + (*p - '0');
	if ((x86 && n >= 9 && n <= 13) ||
	    (c != 808 && (c == 720 || c == 760 ||
			  (x86 && (n == 16 || n == 17 || (n == 15 && c / 100 == 8)))))) {
		set_family(a->os, "macOS");
		a->os_major = 10;
		return;
	}
	set_family(a->os, "iOS");
	a->os_major = c == 808 ? 10 : n >= 0 && n < (int32_t)sizeof(ios) && ios[n] ? ios[n] : -1;
	for (size_t i = 0; i < sizeof(by_cf) / sizeof(by_cf[0]) && c != 808; i++)
		if (n == by_cf[i].darwin && c >= by_cf[i].cf_lo && c <= by_cf[i].cf_hi)
			a->os_major = by_cf[i].ios;
}

static void ua_os(const char *ua, size_t len, struct kn_agent *a)
{
	const char *end = ua + len, *p, *cf;

	/* "HarmonyOS 4" and "OpenHarmony 4.1": one search */
	if ((p = find(ua, len, "Harmony")) && ((end - p >= 2 && p[0] == 'O' && p[1] == 'S') ||
					       (p - ua >= 11 && !memcmp(p - 11, "Open", 4)))) {
		p += p[0] == 'O' && p[1] == 'S' ? 2 : 0;
		set_family(a->os, "HarmonyOS");
		a->os_major = (p < end && *p == ' ') ? major_at(p + 1, end) : -1;
	} else if ((p = find(ua, len, "Android"))) {
		/* Windows Phone 10 says Android too */
		bool wp = find(ua, len, "Windows Phone");
		set_family(a->os, wp ? "Windows" : "Android");
		a->os_major = !wp && p < end && *p == ' ' ? major_at(p + 1, end) : -1;
	} else if ((p = find(ua, len, "iPhone OS ")) || (p = find(ua, len, "CPU OS ")) ||
		   (p = find(ua, len, "; iOS ")) || (p = find(ua, len, "(iOS "))) {
		set_family(a->os, "iOS");
		a->os_major = major_at(p, end);
	} else if ((cf = find(ua, len, "CFNetwork/")) && (p = find(ua, len, " Darwin/"))) {
		darwin_os(ua, len, cf, p, a);
	} else if ((p = find(ua, len, "Windows NT "))) {
		set_family(a->os, "Windows");
		a->os_major = major_at(p, end);
	} else if ((p = find(ua, len, "Mac OS X "))) {
		set_family(a->os, "macOS");
		a->os_major = major_at(p, end);
	} else if (find(ua, len, "iPhone") || find(ua, len, "iPad") || find(ua, len, "iPod")) {
		set_family(a->os, "iOS"); /* an app's "(iPhone; ...)" without a version */
	} else if (find(ua, len, "CrOS ")) {
		set_family(a->os, "ChromeOS");
	} else if (find(ua, len, "Linux") || find(ua, len, "linux")) {
		set_family(a->os, "Linux");
	} else if (find(ua, len, "Windows")) {
		set_family(a->os, "Windows");
	} else {
		set_family(a->os, "other");
	}
}

void kn_ua_parse(const char *ua, size_t len, struct kn_agent *out)
{
	/* Real user agents are short; a huge one gains nothing past 1 KiB. */
	if (len > 1024)
		len = 1024;
	out->browser_major = -1;
	out->os_major = -1;
	ua_browser(ua, len, out);
	ua_os(ua, len, out);
}

void kn_os_parse(const char *os, size_t len, char family[KN_FAMILY_MAX], int32_t *major)
{
	static const struct {
		const char *prefix, *family;
	} fam[] = {{"android", "Android"},     {"ios", "iOS"},
		   {"iphone os", "iOS"},       {"ipados", "iOS"},
		   {"harmonyos", "HarmonyOS"}, {"windows", "Windows"},
		   {"macos", "macOS"},	       {"mac os x", "macOS"},
		   {"linux", "Linux"},	       {"chromeos", "ChromeOS"}};
	const char *end = os + len, *p;

	*major = -1;
	for (size_t i = 0; i < sizeof(fam) / sizeof(fam[0]); i++) {
		/* Per record: the first letter (every prefix is lower case)
		 * rules out most families before any library call. */
		if (!len || (os[0] | 0x20) != fam[i].prefix[0])
			continue;
		size_t n = strlen(fam[i].prefix);
		if (len >= n && !strncasecmp(os, fam[i].prefix, n) &&
		    (len == n || os[n] == ' ' || os[n] == '/' || os[n] == '_')) {
			set_family(family, fam[i].family);
			p = os + n;
			while (p < end && (*p == ' ' || *p == '/' || *p == '_'))
				p++;
			*major = major_at(p, end);
			return;
		}
	}
	set_family(family, "other");
}

/* Digits at *p, at most 3 of them: their count, or 0 when there are none or
 * more than three. */
static size_t short_number(const char **p, const char *end)
{
	const char *s = *p;

	while (*p < end && **p >= '0' && **p <= '9')
		(*p)++;
	return *p - s <= 3 ? (size_t)(*p - s) : 0;
}

void kn_app_version(const char *v, size_t len, char out[KN_VERSION_MAX])
{
	const char *end = v + len, *p = v, *major, *minor = NULL;
	size_t nmaj, nmin = 0, n = 0;

	out[0] = '\0';
	if (!len)
		return;
	if (*p == 'v' || *p == 'V')
		p++;
	major = p;
	nmaj = short_number(&p, end);
	if (nmaj && p + 1 < end && *p == '.' && p[1] >= '0' && p[1] <= '9') {
		minor = ++p;
		nmin = short_number(&p, end);
		if (!nmin)
			nmaj = 0;
	}
	/* What follows must end the version ("5.2.13-beta" is 5.2), not
	 * continue it as letters or digits. */
	if (nmaj && p < end && !strchr(".-+_ ()", *p))
		nmaj = 0;
	if (!nmaj) {
		SET_LIT(out, "other");
		return;
	}
	memcpy(out, major, nmaj);
	n = nmaj;
	if (nmin) {
		out[n++] = '.';
		memcpy(out + n, minor, nmin);
		n += nmin;
	}
	out[n] = '\0';
}

/* ---- URL host ---- */

static int host_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
	       c == '_' || c >= 0x80;
}

/* A host's %XX escapes decoded into out (cap bytes), as browsers decode
 * them before IDNA ("%65xample.com" is example.com). Returns the length, or
 * 0 for a '%' that starts no escape (a forbidden host character). */
static size_t host_unescape(const char *h, size_t n, char *out, size_t cap)
{
	size_t k = 0;

	for (size_t i = 0; i < n && k < cap; i++) {
		if (h[i] != '%') {
			out[k++] = h[i];
			continue;
		}
		if (i + 2 >= n)
			return 0;
		int hi = kn_hexval(h[i + 1]), lo = kn_hexval(h[i + 2]);
		if (hi < 0 || lo < 0)
			return 0;
		out[k++] = (char)(hi << 4 | lo);
		i += 2;
	}
	return k;
}

int kn_url_host(const char *url, size_t len, char *out)
{
	char clean[KN_URL_CLEAN_MAX], unesc[KN_HOST_MAX * 3 + 1];
	const char *u;
	size_t a, e, n = 0;
	bool port_valid;

	len = kn_url_clean(url, len, clean, sizeof(clean), &u);
	url = u;
	e = kn_url_host_span(url, len, 0, &a, &port_valid);
	e += a;
	if (a < e && url[a] == '[') {
		SET_LIT(out, "ip-literal");
		return 0;
	}
	if (!port_valid)
		return -EINVAL;
	if (memchr(url + a, '%', e - a)) {
		if (e - a > sizeof(unesc) ||
		    !(e = host_unescape(url + a, e - a, unesc, sizeof(unesc))))
			return -EINVAL;
		url = unesc, a = 0;
	}
	while (e > a && url[e - 1] == '.')
		e--;
	if (e == a || e - a > KN_HOST_MAX)
		return -EINVAL;
	for (size_t i = a; i < e; i++) {
		unsigned char c = (unsigned char)url[i];
		if (c >= 'A' && c <= 'Z')
			c += 32;
		if (!host_char(c) || (c == '.' && (n == 0 || out[n - 1] == '.')))
			return -EINVAL;
		out[n++] = (char)c;
	}
	out[n] = '\0';
	uint8_t v4[4];
	if (parse_v4(out, n, v4))
		SET_LIT(out, "ip-literal");
	return 0;
}

/* ---- URL domain: what a host may tell ---- */

static bool all_digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return n > 0;
}

/* "192-168-10-36": four dash-separated numbers (sslip.io and friends). */
static bool dashed_quad(const char *s, size_t n)
{
	int parts = 0;
	size_t i = 0;

	while (i <= n) {
		size_t j = i;
		while (j < n && s[j] != '-')
			j++;
		if (j - i < 1 || j - i > 3 || !all_digits(s + i, j - i))
			return false;
		parts++;
		i = j + 1;
	}
	return parts == 4;
}

/* A host that is an IPv4 address in any notation inet_aton-like parsers
 * accept (decimal 3232238108, hex 0xC0A80A1E, octal or zero-padded
 * 192.168.010.029, shortened 10.1), or a name that spells one out
 * (1.2.3.4.nip.io, 1-2-3-4.sslip.io). */
static bool ip_in_host(const char *h)
{
	const char *lab[128];
	size_t len[128];
	int n = 0, numeric = 0, run = 0;

	for (const char *p = h; *p && n < 128;) {
		const char *e = strchr(p, '.');
		lab[n] = p;
		len[n] = e ? (size_t)(e - p) : strlen(p);
		n++;
		p = e ? e + 1 : p + strlen(p);
	}
	for (int i = 0; i < n; i++) {
		bool num = all_digits(lab[i], len[i]) ||
			   (len[i] > 2 && !strncmp(lab[i], "0x", 2) &&
			    strspn(lab[i] + 2, "0123456789abcdef") == len[i] - 2);
		numeric += num;
		run = num && all_digits(lab[i], len[i]) && len[i] <= 3 ? run + 1 : 0;
		if (run == 4 || dashed_quad(lab[i], len[i]))
			return true;
	}
	return numeric == n && n <= 4;
}

/* A label that carries an identifier rather than a name: a run of 7 or
 * more digits (phones, IDs, accounts, IPs), '-', '_' or any other
 * character that is not a letter between them not breaking the run, or a
 * long hex string (hashes, device ids, 0x IPs; a MAC written in groups,
 * 00-1a-2b-3c-4d-5e, when 12 or more). Looked at after folding, so
 * full-width digits count, and Chinese numerals count as digits
 * (一三八一二三四五六七八 is a phone number). */
static bool identifier_label(const char *l, size_t n)
{
	char f[256];
	size_t m = kn_fold(l, n, f, sizeof(f), 0), run = 0, hex = 0, hexdigits = 0;
	size_t digits = 0, like = 0, like_digits = 0;
	bool grouped = false; /* the hex run went on across a separator */

	if (m > 2 && f[0] == '0' && f[1] == 'x' && strspn(f + 2, "0123456789abcdef") >= 6)
		return true;
	for (size_t i = 0; i < m;) {
		int32_t c;
		U8_NEXT(f, i, m, c);
		if ((run || hex) && c >= 0 && !u_isalnum(c) && !kn_fold_is_numeral(c)) {
			grouped |= hex > 0;
			continue; /* '-', '_', '・' or any other mark between digits */
		}
		bool digit = (c >= '0' && c <= '9') || kn_fold_is_numeral(c);
		run = digit ? run + 1 : 0;
		digits += digit;
		/* Letters that pass for digits (l38OO138OOO is 13800138000):
		 * a run of them as long as a phone, with real digits in it
		 * (shorter, it is hello2024 and school2023). */
		bool looks = digit || c == 'o' || c == 'l' || c == 'i';
		like = looks ? like + 1 : 0;
		like_digits = looks ? like_digits + digit : 0;
		if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) {
			hex++;
			hexdigits += c <= '9';
		} else {
			hex = hexdigits = 0;
			grouped = false;
		}
		if (run >= 7 || (hex >= 10 && hexdigits >= 3 && !grouped) ||
		    (hex >= 12 && hexdigits >= 4) || (like >= 10 && like_digits >= 3))
			return true;
	}
	/* Digits cut apart by letters (138x1234x5678): names have few. */
	return digits >= 8;
}

/* A registrable domain in a namespace for people's names (john.smith.name,
 * dupont.nom.fr, *.nom.br): the name is the person. */
static bool personal_namespace(const char *reg)
{
	for (const char *p = strchr(reg, '.'); p; p = strchr(p, '.')) {
		p++;
		size_t n = strcspn(p, ".");
		if ((n == 3 && !strncmp(p, "nom", 3)) || (n == 4 && !strncmp(p, "name", 4)))
			return true;
	}
	return false;
}

/* Whether an A-label is what IDNA2008 makes of what it spells: one that
 * decodes to an unassigned or disallowed code point, or that a registry
 * would not have encoded so, carries bytes of its own choosing
 * (xn--138123-45678a). */
static bool valid_alabel(const char *l, size_t n)
{
	char label[KN_HOST_MAX + 1], *uni = NULL, *back = NULL;
	bool ok;

	if (n > KN_HOST_MAX)
		return false;
	memcpy(label, l, n);
	label[n] = '\0';
	ok = idn2_to_unicode_8z8z(label, &uni, 0) == IDN2_OK &&
	     idn2_to_ascii_8z(uni, &back, IDN2_NONTRANSITIONAL) == IDN2_OK &&
	     !strcasecmp(back, label);
	idn2_free(uni);
	idn2_free(back);
	return ok;
}

/* Every A-label of reg valid, and its decoded form in *uni (idn2_free it). */
static bool valid_alabels(const char *reg, char **uni)
{
	*uni = NULL;
	for (const char *p = reg; *p;) {
		size_t n = strcspn(p, ".");
		if (n > 4 && !strncasecmp(p, "xn--", 4) && !valid_alabel(p, n))
			return false;
		p += n + (p[n] == '.');
	}
	return idn2_to_unicode_8z8z(reg, uni, 0) == IDN2_OK;
}

/* Whether any label of a dotted name carries an identifier (under a
 * wildcard suffix such as *.ck the registrable domain has three labels, and
 * the middle one is as free as the first). */
static bool identifier_labels(const char *name)
{
	for (const char *p = name;;) {
		const char *dot = strchr(p, '.');
		size_t n = dot ? (size_t)(dot - p) : strlen(p);
		const char *l = p;
		if (n > 4 && !strncmp(l, "xn--", 4)) {
			/* An A-label: only its basic part (the ASCII before the last
			 * '-') is text; the rest is base-36 noise that would look
			 * like hex or digits by chance (xn--i1b6b1a6a2e is .संगठन). */
			const char *dash = memrchr(l + 4, '-', n - 4);
			l += 4;
			n = dash ? (size_t)(dash - l) : 0;
		}
		if (identifier_label(l, n))
			return true;
		if (!dot)
			return false;
		p = dot + 1;
	}
}

/* The shape of a registered domain: labels of letters, digits and inner
 * hyphens, none empty. A host's own labels may carry '_'
 * (my_host.example.com) and IDNA maps NBSP to a space; a registered
 * domain's do not: no registry issues one, so it is no domain at all. */
static bool ldh_name(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		bool start = !i || s[i - 1] == '.', end = i + 1 == n || s[i + 1] == '.';
		if ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9'))
			continue;
		if ((s[i] == '-' || s[i] == '.') && !start && !end)
			continue;
		return false;
	}
	return n > 0;
}

/* The registrable domain of ascii (A-labels) into out, or "other" when one
 * of its labels carries an identifier. Only a punycode label is decoded
 * (and allocates): the common ASCII host costs no allocation. */
static void emit_domain(const char *ascii, char *out)
{
	const char *reg = kn_url_registrable(ascii);
	size_t n = reg ? strlen(reg) : 0;
	char *uni = NULL;
	bool id;

	if (!reg || n > KN_HOST_MAX || !memchr(reg, '.', n) || !ldh_name(reg, n)) {
		SET_LIT(out, "other");
		return;
	}
	/* What is emitted is checked (punycode moves a label's ASCII to the
	 * front: 138张1234三5678 is xn--13812345678-up8qg19o), and so is what
	 * it spells (一三八... has no ASCII digit). */
	id = identifier_labels(reg) || personal_namespace(reg);
	if (!id && strstr(reg, "xn--"))
		id = !valid_alabels(reg, &uni) || identifier_labels(uni);
	idn2_free(uni);
	if (id)
		SET_LIT(out, "other");
	else
		memcpy(out, reg, n + 1);
}

/* Whether url is an Android app's referrer, "android-app://com.tencent.mm/":
 * its host is the app's package name, a domain written backwards. The
 * scheme read as kn_url_clean reads it (tabs and newlines anywhere gone). */
static bool android_app(const char *url, size_t len)
{
	static const char scheme[] = "android-app:";
	size_t i = 0, k = 0;

	while (i < len && (unsigned char)url[i] <= 0x20)
		i++;
	for (; i < len && k < sizeof(scheme) - 1; i++) {
		if (url[i] == '\t' || url[i] == '\n' || url[i] == '\r')
			continue;
		if ((url[i] | 0x20) != scheme[k++])
			return false;
	}
	return k == sizeof(scheme) - 1;
}

/* host's labels in the other order, in place: com.tencent.mm is
 * mm.tencent.com. false (host untouched) when it is too long to be a name. */
static bool reverse_labels(char *host)
{
	char tmp[KN_HOST_MAX + 1];
	size_t n = strlen(host), k = 0;

	if (n > KN_HOST_MAX)
		return false;
	for (size_t e = n; e > 0;) {
		size_t b = e;
		while (b > 0 && host[b - 1] != '.')
			b--;
		if (k)
			tmp[k++] = '.';
		memcpy(tmp + k, host + b, e - b);
		k += e - b;
		e = b ? b - 1 : 0;
	}
	memcpy(host, tmp, k);
	host[k] = '\0';
	return true;
}

int kn_url_domain(const char *url, size_t len, char *out)
{
	char host[KN_HOST_MAX + 1], *ascii = NULL;
	int err = kn_url_host(url, len, host);
	bool plain = true, app = android_app(url, len);

	if (err)
		return err;
	if (!strcmp(host, "ip-literal") || ip_in_host(host))
		return SET_LIT(out, "ip-literal"), 0;
	for (const char *p = host; *p && plain; p++)
		plain = !((unsigned char)*p & 0x80);
	if (plain) { /* already lower case, LDH and '_' (kn_url_host) */
		if (app && !reverse_labels(host))
			return SET_LIT(out, "other"), 0;
		emit_domain(host, out);
		return 0;
	}
	/* One canonical form: IDNA2008 A-labels. Anything IDNA refuses (bytes
	 * that are not UTF-8 included) is "other". */
	if (idn2_to_ascii_8z(host, &ascii, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT) == IDN2_OK ||
	    idn2_to_ascii_8z(host, &ascii, IDN2_TRANSITIONAL | IDN2_NFC_INPUT) == IDN2_OK) {
		size_t an = strlen(ascii);
		for (char *p = ascii; *p; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p += 32;
		/* The root's dot, as IDNA maps it from 。 or ．: without this,
		 * "nas.local。" would escape the unknown-suffix rule below. */
		while (an && ascii[an - 1] == '.')
			ascii[--an] = '\0';
		/* IDNA maps full-width digits and ideographic dots: an IP may
		 * only show now. */
		if (ip_in_host(ascii))
			SET_LIT(out, "ip-literal");
		else if (app && !reverse_labels(ascii)) /* after IDNA: 。 is a dot now */
			SET_LIT(out, "other");
		else
			emit_domain(ascii, out);
	} else {
		SET_LIT(out, "other");
	}
	idn2_free(ascii);
	return 0;
}

/* ---- whole events ---- */

static void host_of(const struct kn_val *v, char *out)
{
	out[0] = '\0';
	if (v->type == KN_VAL_STR && kn_url_domain(v->s.p, v->s.len, out))
		out[0] = '\0';
}

struct ua_slot {
	XXH128_hash_t key; /* {0, 0}: empty */
	struct kn_agent agent;
};

struct kn_ua_cache {
	struct ua_slot slot[KN_UA_CACHE_SLOTS];
};

struct kn_ua_cache *kn_ua_cache_new(void)
{
	return kn_calloc(1, sizeof(struct kn_ua_cache));
}

void kn_ua_cache_destroy(struct kn_ua_cache *c)
{
	kn_free(c);
}

void kn_ua_parse_cached(struct kn_ua_cache *c, const char *ua, size_t len, struct kn_agent *out)
{
	XXH128_hash_t h = XXH3_128bits(ua, len);
	struct ua_slot *s;

	if (!c || (!h.low64 && !h.high64)) {
		kn_ua_parse(ua, len, out);
		return;
	}
	s = &c->slot[h.low64 & (KN_UA_CACHE_SLOTS - 1)];
	if (!XXH128_isEqual(s->key, h)) {
		kn_ua_parse(ua, len, &s->agent);
		s->key = h;
	}
	*out = s->agent;
}

int kn_generalize_event(const struct kn_gen_opts *o, struct kn_ua_cache *ua_cache,
			const struct kn_event *ev, struct kn_deid *d, bool *geo_withheld)
{
	const struct kn_val *v = ev->role;
	struct kn_agent ua;

	d->type = ev->type;
	d->time_bucket_ms = kn_time_bucket(v[KN_ROLE_TIMESTAMP].l, o->time_bucket_ms);
	d->bucket_size_ms = o->time_bucket_ms;

	d->geo_cell[0] = '\0';
	*geo_withheld = false;
	if (v[KN_ROLE_LAT].type == KN_VAL_DOUBLE && v[KN_ROLE_LON].type == KN_VAL_DOUBLE) {
		const struct kn_val *c = &v[KN_ROLE_CONSENT_LOCATION];
		if (c->type == KN_VAL_BOOL && c->b)
			kn_geohash(v[KN_ROLE_LAT].d, v[KN_ROLE_LON].d, o->geohash_precision,
				   d->geo_cell);
		else
			*geo_withheld = true;
	}

	d->ip_prefix[0] = '\0';
	if (v[KN_ROLE_IP].type == KN_VAL_STR &&
	    kn_ip_prefix(v[KN_ROLE_IP].s.p, v[KN_ROLE_IP].s.len, o->ipv4_prefix, o->ipv6_prefix,
			 d->ip_prefix))
		return -EINVAL;

	d->ua_browser[0] = d->os_family[0] = '\0';
	d->ua_browser_major = d->os_major = -1;
	if (v[KN_ROLE_USER_AGENT].type == KN_VAL_STR) {
		kn_ua_parse_cached(ua_cache, v[KN_ROLE_USER_AGENT].s.p, v[KN_ROLE_USER_AGENT].s.len,
				   &ua);
		memcpy(d->ua_browser, ua.browser, sizeof(d->ua_browser));
		d->ua_browser_major = ua.browser_major;
		memcpy(d->os_family, ua.os, sizeof(d->os_family));
		d->os_major = ua.os_major;
	}
	/* An explicit OS field is better evidence than the user agent's claim. */
	if (v[KN_ROLE_OS].type == KN_VAL_STR)
		kn_os_parse(v[KN_ROLE_OS].s.p, v[KN_ROLE_OS].s.len, d->os_family, &d->os_major);

	d->app_version[0] = '\0';
	if (v[KN_ROLE_APP_VERSION].type == KN_VAL_STR)
		kn_app_version(v[KN_ROLE_APP_VERSION].s.p, v[KN_ROLE_APP_VERSION].s.len,
			       d->app_version);

	host_of(&v[KN_ROLE_URL], d->url_domain);
	if (!d->url_domain[0])
		host_of(&v[KN_ROLE_CLICKED_URL], d->url_domain);
	host_of(&v[KN_ROLE_REFERRER], d->referrer_domain);

	d->http_status = v[KN_ROLE_STATUS].type == KN_VAL_LONG ? (int32_t)v[KN_ROLE_STATUS].l : -1;
	d->consent_ads = v[KN_ROLE_CONSENT_ADS].type == KN_VAL_BOOL ? v[KN_ROLE_CONSENT_ADS].b : -1;
	d->consent_analytics = v[KN_ROLE_CONSENT_ANALYTICS].type == KN_VAL_BOOL
				       ? v[KN_ROLE_CONSENT_ANALYTICS].b
				       : -1;
	return 0;
}
