/* The scrubber works on folded text (fold.h), where digits of every script
 * are ASCII, full-width punctuation is ASCII, case is folded and invisible
 * characters are gone; so the patterns below are written once, for ASCII,
 * and still match every spelling. At each position the matchers are tried
 * in order (URL, email, IP, device id, digit run, Chinese numerals); when none
 * matches, one token (a run of ASCII letters, or one character) is copied
 * and the scan moves on. */
#include "scrub.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <string.h>
#include <unicode/uchar.h>
#include <unicode/utf8.h>

#include "fold.h"
#include "url.h"

#define MAX_DIGITS 64

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_alnum(char c)
{
	return is_digit(c) || is_alpha(c);
}

static bool is_hex(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f'); /* folded: lower case */
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The code point at s[i] (U+FFFD for a bad sequence) and its length. */
static UChar32 cp_at(const char *s, size_t len, size_t i, size_t *n)
{
	int32_t k = (int32_t)i;
	UChar32 c;

	U8_NEXT(s, k, (int32_t)len, c);
	*n = (size_t)k - i;
	return c < 0 ? 0xFFFD : c;
}

int kn_luhn_ok(const char *d, size_t n)
{
	int sum = 0;

	for (size_t i = 0; i < n; i++) {
		int v = d[n - 1 - i] - '0';
		if (i & 1) {
			v *= 2;
			if (v > 9)
				v -= 9;
		}
		sum += v;
	}
	return n >= 13 && sum % 10 == 0;
}

int kn_cn_id_ok(const char *s)
{
	static const int w[17] = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
	static const char check[] = "10X98765432";
	int sum = 0;

	for (int i = 0; i < 17; i++) {
		if (!is_digit(s[i]))
			return 0;
		sum += (s[i] - '0') * w[i];
	}
	char c = s[17] == 'x' ? 'X' : s[17];
	/* The birth date inside must be plausible too (YYYYMMDD at 6..13). */
	int month = (s[10] - '0') * 10 + (s[11] - '0'), day = (s[12] - '0') * 10 + (s[13] - '0');
	return check[sum % 11] == c && month >= 1 && month <= 12 && day >= 1 && day <= 31;
}

static bool is_date8(const char *d)
{
	int y = 0, m, dd;

	for (int i = 0; i < 4; i++)
		y = y * 10 + (d[i] - '0');
	m = (d[4] - '0') * 10 + (d[5] - '0');
	dd = (d[6] - '0') * 10 + (d[7] - '0');
	return y >= 1900 && y <= 2099 && m >= 1 && m <= 12 && dd >= 1 && dd <= 31;
}

/* ---- hosts (URLs and email domains) ---- */

/* A label character: ASCII letters, digits, '-', or a letter or digit of
 * any other script (IDN). *n gets its byte length. */
/* A non-ASCII code point that belongs inside a name: a letter, a digit, or
 * a combining mark (Devanagari, Thai and Arabic names carry vowel signs and
 * diacritics), and the middle dots of transcribed names (阿依古丽·买买提). */
static bool word_cp(UChar32 c)
{
	return (U_GET_GC_MASK(c) & (U_GC_L_MASK | U_GC_M_MASK | U_GC_ND_MASK)) || c == 0xB7 ||
	       c == 0x30FB;
}

static bool label_cp(const char *s, size_t len, size_t i, size_t *n)
{
	UChar32 c = cp_at(s, len, i, n);

	if (c < 0x80)
		return is_alnum((char)c) || c == '-';
	return word_cp(c) && c != 0x70B9 /* 点: a spelled-out dot */;
}

/* Length of one label at i (0 if none). *alpha: only letters, at least
 * two of them, or a punycode or non-ASCII label: what a TLD looks like. */
static size_t label_at(const char *s, size_t len, size_t i, bool *alpha)
{
	size_t j = i, n;
	bool letters = true, wide = false;

	while (j < len && j - i < 63 && label_cp(s, len, j, &n)) {
		if (n > 1)
			wide = true;
		else if (!is_alpha(s[j]))
			letters = false;
		j += n;
	}
	*alpha = j > i &&
		 (wide || (letters && j - i >= 2) || (j - i > 4 && !strncasecmp(s + i, "xn--", 4)));
	return j - i;
}

/* "." or a spelled-out dot ([dot] (dot) {dot} " dot " 点 。), with the
 * spaces around the spelled-out ones. Returns its length or 0. The defanged
 * "[.]" is a dot however the text is read, and so is the ideographic full
 * stop (IDNA reads it as a dot) between ASCII letters or digits
 * ("example。com"; "上海。中国" is a sentence). */
static size_t dot_at(const char *s, size_t len, size_t i, bool spelled)
{
	static const char *const words[] = {"[dot]",   "(dot)", "{dot}", "<dot>",
					    "【dot】", "_dot_", "点",	 "。"};
	size_t j = i;

	if (j < len && s[j] == '.')
		return 1;
	if (len - j >= 3 && (s[j] == '[' || s[j] == '(') &&
	    (!memcmp(s + j, "[.]", 3) || !memcmp(s + j, "(.)", 3)))
		return 3;
	if (len - j > 3 && j && !memcmp(s + j, "。", 3) && is_alnum(s[j - 1]) && is_alnum(s[j + 3]))
		return 3;
	if (!spelled)
		return 0;
	while (j < len && s[j] == ' ')
		j++;
	for (size_t w = 0; w < sizeof(words) / sizeof(words[0]); w++) {
		size_t n = strlen(words[w]);
		if (len - j >= n && !memcmp(s + j, words[w], n)) {
			j += n;
			while (j < len && s[j] == ' ')
				j++;
			return j - i;
		}
	}
	if (j > i && len - j >= 4 && !memcmp(s + j, "dot ", 4)) {
		j += 4;
		while (j < len && s[j] == ' ')
			j++;
		return j - i;
	}
	return 0;
}

/* A host name at i: two or more labels, the last one TLD-like. Returns its
 * length (0 if none). With spelled, dots may be spelled out. */
static size_t host_at(const char *s, size_t len, size_t i, bool spelled)
{
	size_t j = i, end = 0, n, d;
	int labels = 0;
	bool alpha;

	while ((n = label_at(s, len, j, &alpha))) {
		j += n;
		labels++;
		if (labels >= 2 && alpha)
			end = j;
		if (!(d = dot_at(s, len, j, spelled)) || !label_at(s, len, j + d, &alpha))
			break;
		j += d;
	}
	return end ? end - i : 0;
}

static size_t to_space(const char *s, size_t len, size_t j)
{
	while (j < len && !is_space(s[j]))
		j++;
	return j;
}

/* ---- the matchers: each returns the match's length, 0 for none ---- */

/* The schemes a browser reads "scheme:" + any slashes or backslashes after
 * (url.h); s is folded, so lower case. */
static bool special_scheme(const char *s, size_t n)
{
	return (n == 4 && !memcmp(s, "http", 4)) || (n == 5 && !memcmp(s, "https", 5)) ||
	       (n == 2 && !memcmp(s, "ws", 2)) || (n == 3 && !memcmp(s, "wss", 3)) ||
	       (n == 3 && !memcmp(s, "ftp", 3)) || (n == 4 && !memcmp(s, "file", 4));
}

static size_t at_sign(const char *s, size_t len, size_t j, bool spaced);

static size_t match_email(const char *s, size_t len, size_t i);

/* Whether an "@" in any spelling follows j, past spaces: what looked like a
 * host may be a local part ("zhang.san @ example.com"), for the email
 * matcher, if an address follows ("zhangsan.github.io at home" has none). */
static bool at_after(const char *s, size_t len, size_t j)
{
	while (j < len && s[j] == ' ')
		j++;
	return at_sign(s, len, j, true) > 0;
}

/* Whether the bare host s[0..n) is more than a registered name: a label in
 * front of its registrable domain ("zhangsan.github.io",
 * "zhangsan1990.lofter.com") names a person as often as a service, so only
 * a few service labels may stand there ("m.taobao.com"). A name that ends in
 * no listed suffix ("jquery.min.js") is no host. */
static bool bare_subdomain(const char *s, size_t n)
{
	static const char *const services[] = {
		"m",	  "wap",       "3g",	  "h5",	   "mobile", "mail",  "news",	"map",
		"maps",	  "image",     "images",  "img",   "video",  "music", "docs",	"translate",
		"fanyi",  "en",	       "zh",	  "s",	   "search", "item",  "detail", "baike",
		"zhidao", "tieba",     "pan",	  "wenku", "bbs",    "blog",  "help",	"support",
		"login",  "passport",  "account", "pay",   "cloud",  "api",   "app",	"open",
		"dev",	  "developer", "static",  "cdn"};
	char host[256];
	const char *reg;
	size_t m = 0;

	if (n >= sizeof(host))
		return true;
	for (size_t k = 0; k < n; k++, m++) {
		size_t d = s[k] == '.' ? 1 : dot_at(s, n, k, false); /* "[.]", "。" */
		if (d) {
			host[m] = '.';
			k += d - 1;
		} else if (is_alnum(s[k]) || s[k] == '-') {
			host[m] = s[k];
		} else {
			return false; /* an IDN: not a name to look up */
		}
	}
	host[m] = '\0';
	if (!(reg = kn_url_registrable(host)) || reg == host)
		return false;
	for (size_t w = 0; w < sizeof(services) / sizeof(services[0]); w++) {
		size_t k = strlen(services[w]);
		if ((size_t)(reg - host) == k + 1 && !memcmp(host, services[w], k))
			return false;
	}
	return true;
}

static size_t match_url(const char *s, size_t len, size_t i)
{
	size_t j = i, h;

	if (i && is_alnum(s[i - 1]))
		return 0;
	/* scheme://... (userinfo, host, path, all of it) */
	while (j < len && j - i < 16 &&
	       (is_alnum(s[j]) || s[j] == '+' || s[j] == '.' || s[j] == '-'))
		j++;
	if (j > i && is_alpha(s[i]) && len - j >= 3 && !memcmp(s + j, "://", 3))
		return to_space(s, len, j + 3) - i;
	/* what a browser opens as well: "http:\\host", "http:/host", "http:host" */
	if (j < len && s[j] == ':' && special_scheme(s + i, j - i)) {
		size_t k = j + 1;
		while (k < len && (s[k] == '/' || s[k] == '\\'))
			k++;
		if (k > j + 1 || host_at(s, len, k, false))
			return to_space(s, len, k) - i;
	}
	if (len - i >= 4 && !memcmp(s + i, "www.", 4) && host_at(s, len, i, false))
		return to_space(s, len, i + 4) - i;
	/* host/path, host?query, host#fragment, host:port (no scheme); the one
	 * host of a single label people write so: localhost */
	if (!(h = host_at(s, len, i, false)) && len - i >= 9 && !strncmp(s + i, "localhost", 9))
		h = 9;
	if (h && i + h < len &&
	    (s[i + h] == '/' || s[i + h] == '?' ||
	     (i + h + 1 < len && s[i + h] == '#' && !is_space(s[i + h + 1])) ||
	     (i + h + 1 < len && s[i + h] == ':' && is_digit(s[i + h + 1]))))
		return to_space(s, len, i + h) - i;
	if (h && (i + h == len || !is_alnum(s[i + h])) &&
	    !(at_after(s, len, i + h) && match_email(s, len, i)) && bare_subdomain(s + i, h))
		return h;
	return 0;
}

#define LOCAL_MAX 256 /* bytes of an ASCII local part (next_at's window too) */

/* An ASCII byte of an email's local part, as RFC 5322 has it. */
static bool local_char(char c)
{
	return is_alnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-';
}

/* "@" in its spellings; words (" at ") only with a space before and after. */
static size_t at_sign(const char *s, size_t len, size_t j, bool spaced)
{
	static const char *const signs[] = {"@",     "[at]",   "(at)", "{at}", "<at>",
					    "_at_",  "[@]",    "(@)",  "{@}",  "【at】",
					    "【@】", "(艾特)", "艾特", "圈",   "#"};
	static const char first[] = "@[({<_\xe3\xe8\xe5#a"; /* what each of them starts with */

	if (j >= len || !memchr(first, s[j], sizeof(first) - 1))
		return 0;
	if (s[j] == '@')
		return 1;
	for (size_t w = 0; w < sizeof(signs) / sizeof(signs[0]); w++) {
		if (signs[w][0] != s[j]) /* \xe5 leads many a CJK character */
			continue;
		size_t n = strlen(signs[w]);
		if (len - j >= n && !memcmp(s + j, signs[w], n))
			return n;
	}
	if (spaced && len - j >= 3 && !memcmp(s + j, "at ", 3))
		return 2;
	return 0;
}

/* Where the next "@" in any spelling may start, at or after from (len if
 * nowhere): an address needs one within LOCAL_MAX bytes and two spaces, so
 * text far from any skips the email matcher. */
static size_t next_at(const char *s, size_t len, size_t from)
{
	for (size_t j = from; j < len; j++)
		if (at_sign(s, len, j, true))
			return j;
	return len;
}

/* Mail providers whose users write "name@qq" and leave the rest out. */
static size_t provider_at(const char *s, size_t len, size_t j)
{
	static const char *const names[] = {
		"qq",	   "163",    "126",   "139",   "189",	  "yeah",    "sina",   "sohu",
		"foxmail", "aliyun", "gmail", "yahoo", "hotmail", "outlook", "icloud", "live"};

	for (size_t w = 0; w < sizeof(names) / sizeof(names[0]); w++) {
		size_t n = strlen(names[w]);
		if (len - j >= n && !memcmp(s + j, names[w], n) &&
		    (j + n == len || !is_alnum(s[j + n])))
			return n;
	}
	return 0;
}

static size_t match_ip(const char *s, size_t len, size_t i);

/* A non-ASCII code point of a local part: a word_cp, or U+FFFD, what the
 * fold made of a byte that was no UTF-8 (jos%E9@..., Latin-1's é). */
static bool local_cp(UChar32 c)
{
	return word_cp(c) || c == 0xFFFD;
}

/* An address literal as a mail domain: "[192.0.2.1]", "[IPv6:2001:db8::1]"
 * (folded: "ipv6:"); digits in it, hex and ':' or '.' only. */
static size_t literal_at(const char *s, size_t len, size_t j)
{
	const char *e, *p = s + j + 1;
	bool digit = false;

	if (j >= len || s[j] != '[' || !(e = memchr(s + j, ']', len - j < 64 ? len - j : 64)))
		return 0;
	if (e - p > 5 && !memcmp(p, "ipv6:", 5))
		p += 5;
	for (; p < e; p++) {
		if (!is_hex(*p) && *p != ':' && *p != '.')
			return 0;
		digit |= is_digit(*p);
	}
	return digit ? (size_t)(e - s) + 1 - j : 0;
}

static size_t match_email(const char *s, size_t len, size_t i)
{
	size_t j = i, sp, a, h;
	bool wide = false, word = false, colon = false;

	if ((i && local_char(s[i - 1])) || s[i] == ':')
		return 0;
	if (s[i] == '"') { /* a quoted local part: "zhang san"@example.com */
		const char *q = memchr(s + i + 1, '"', len - i - 1 < 64 ? len - i - 1 : 64);
		if (!q || q == s + i + 1)
			return 0;
		j = (size_t)(q - s) + 1;
		word = true;
	}
	/* The local part: ASCII as RFC 5322 has it, at most LOCAL_MAX bytes
	 * (RFC 5321 says 64, but an address that breaks the rule is still
	 * one), or with letters of any script (RFC 6531: 张三@qq.com) at most
	 * 64, so that the text before an address does not go with it; up to
	 * an "@" however it is spelled (艾特 is letters too). A start inside a
	 * run of letters is tried as well, so the 64 bytes before the "@" go.
	 * Dots before it ("邮箱：…x@qq.com") and a ':' of URL userinfo
	 * ("admin:pw@10.0.0.1") go with it. */
	while (j < len && j - i < (wide ? 64 : LOCAL_MAX) && s[i] != '"') {
		size_t n;
		if (s[j] == '_' && at_sign(s, len, j, false)) {
			break; /* "x_at_qq.com" */
		} else if (local_char(s[j]) || (s[j] == ':' && !wide)) {
			word |= s[j] != '.' && s[j] != ':';
			colon |= s[j] == ':';
			j++;
		} else if (!wide && word && (n = dot_at(s, len, j, true)) > 1 && j + n < len &&
			   is_alnum(s[j + n])) {
			j += n; /* "john dot smith at gmail", "john(dot)smith(at)..." */
		} else if ((unsigned char)s[j] >= 0x80 && j - i < 64 && !colon &&
			   !at_sign(s, len, j, false) && local_cp(cp_at(s, len, j, &n))) {
			j += n;
			wide = word = true;
		} else {
			break;
		}
	}
	if (!word)
		return 0;
	for (sp = j; sp < len && sp - j < 2 && s[sp] == ' ';)
		sp++;
	if (!(a = at_sign(s, len, sp, sp > j)))
		return 0;
	/* "#" for "@" only written tight and before an ASCII domain: "c# asp.net",
	 * "c#调用python.exe" and "question #1.html" are no addresses */
	bool hash = s[sp] == '#';
	if (hash && (sp > j || sp + 1 >= len || !is_alnum(s[sp + 1])))
		return 0;
	/* 圈 ("circle") ends many a word (朋友圈, 娱乐圈): "@" only after an
	 * ASCII name and before a whole domain ("zs圈qq.com", not "朋友圈qq") */
	bool quan = (unsigned char)s[sp] == 0xe5;
	if (quan && wide)
		return 0;
	j = sp + a;
	while (!hash && j < len && j - sp - a < 2 && s[j] == ' ')
		j++;
	if (!(h = host_at(s, len, j, true)) && (quan || !(h = provider_at(s, len, j))) &&
	    !(h = match_ip(s, len, j)) && !(h = literal_at(s, len, j)))
		return 0;
	/* "me at first.last@x.com": the real "@" comes later, and with it the
	 * whole address */
	if (j + h < len && s[j + h] == '@')
		return 0;
	/* scp's "user@host:path" (git@github.com:zhangsan/repo.git): the path
	 * names the user too */
	if (j + h + 1 < len && s[j + h] == ':' && !is_digit(s[j + h + 1]) &&
	    (unsigned char)s[j + h + 1] > ' ' && (unsigned char)s[j + h + 1] < 0x80) {
		size_t e = j + h + 1; /* up to a space or other text (zs@qq.com:我想问) */
		while (e < len && (unsigned char)s[e] > ' ' && (unsigned char)s[e] < 0x80)
			e++;
		return e - i;
	}
	return j + h - i;
}

/* ":port" after an address, or 0. */
static size_t port_at(const char *s, size_t len, size_t j)
{
	size_t k = j + 1;

	if (j >= len || s[j] != ':')
		return 0;
	while (k < len && k - j <= 5 && is_digit(s[k]))
		k++;
	return k > j + 1 && (k >= len || !is_alnum(s[k])) ? k - j : 0;
}

static size_t match_ip(const char *s, size_t len, size_t i)
{
	char buf[64];
	unsigned char a[16];
	size_t j = i, open = 0;

	/* Not inside a longer number or dotted sequence; after letters only
	 * when it starts with a digit ("ip10.0.0.1", "srv10.1.2.3:22"). */
	if (i >= len)
		return 0;
	if (i && (is_digit(s[i - 1]) || s[i - 1] == '.' || (is_alnum(s[i - 1]) && !is_digit(s[i]))))
		return 0;
	if (s[j] == '[')
		open = ++j;
	while (j < len && j - i < 47 && (is_digit(s[j]) || strchr("abcdefABCDEF:.", s[j])))
		j++;
	/* a sentence's full stop, or a port's colon, is not part of it */
	while (j > i && (s[j - 1] == '.' || s[j - 1] == ':') && (j - i < 3 || s[j - 2] != ':'))
		j--;
	for (size_t k = j; k > i + 6; k--) { /* "1.2.3.4:8080": try without the port */
		size_t n = k - i - (open ? 1 : 0);
		/* The address must end here: not inside a longer number or
		 * dotted sequence ("1.2.3.4.5" is a version). */
		if (n >= sizeof(buf) ||
		    (k < len &&
		     (is_alnum(s[k]) || (s[k] == '.' && k + 1 < len && is_digit(s[k + 1])))))
			continue;
		memcpy(buf, s + i + (open ? 1 : 0), n);
		buf[n] = '\0';
		if (inet_pton(AF_INET, buf, a) != 1 &&
		    !(strchr(buf, ':') && inet_pton(AF_INET6, buf, a) == 1))
			continue;
		if (open && k < len && s[k] == ']')
			k++;
		return k + port_at(s, len, k) - i;
	}
	return 0;
}

/* Letters that people write between digit groups as a dash, bar or dot:
 * fold's fillers (ー, 丨, ㅡ, ...) and the words 点 (dot), 杠 (dash), 转
 * (extension). */
static bool dash_letter(UChar32 cp)
{
	return kn_fold_is_filler(cp) || cp == 0x70B9 || cp == 0x6760 || cp == 0x8F6C;
}

/* Bytes of the separator at k, or 0: anything that is neither a letter nor
 * a digit (punctuation of any script, spaces, controls) may sit between the
 * groups of one number, and so may a dash_letter, a spelled-out dot ("dot",
 * "[dot]", "(dot)") and an HTML tag ("<br>", "</b>"). When in doubt, it
 * joins. */
static size_t sep_len(const char *s, size_t len, size_t k)
{
	unsigned char c = (unsigned char)s[k];
	size_t n;

	if (c == '<') { /* a tag: <br>, </b>, <span> */
		for (n = k + 1; n < len && n - k <= 8 && (is_alpha(s[n]) || s[n] == '/'); n++)
			;
		if (n < len && n > k + 1 && s[n] == '>')
			return n + 1 - k;
	}
	if ((c == '[' || c == '(') && len - k >= 5 && !memcmp(s + k + 1, "dot", 3) &&
	    s[k + 4] == (c == '[' ? ']' : ')'))
		return 5;
	if (c == 'd' && len - k >= 3 && !memcmp(s + k, "dot", 3) && k && !is_alnum(s[k - 1]) &&
	    (k + 3 == len || !is_alnum(s[k + 3])))
		return 3;
	if (c < 0x80)
		return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
			       ? 0
			       : 1;
	UChar32 cp = cp_at(s, len, k, &n);
	if (dash_letter(cp))
		return n;
	return cp < 0 || u_isalnum(cp) || kn_fold_is_numeral(cp) ? 0 : n;
}

#define MAX_SEP_RUN 32 /* bytes of separators between two digit groups */

struct digits {
	char d[MAX_DIGITS + 1];
	size_t n;	 /* digits seen (d holds the first MAX_DIGITS) */
	size_t group[8]; /* digits in each of the first groups */
	char sep[8];	 /* the first separator character after each group */
	int groups;
	bool plus, x;	  /* a leading '+'; a trailing ID check 'x' */
	bool date;	  /* an 8-digit calendar date: not personal */
	size_t first_end; /* where the first group of digits ends */
};

/* Reads a number across separator runs of up to MAX_SEP_RUN bytes. It ends
 * before a group of 7 or more digits once it has 7 itself (two numbers
 * side by side), and after a date (4-2-2 with one separator) followed by a
 * space: the date is kept, and what follows is a number of its own.
 * Returns its end. */
static bool id_at(const char *s, size_t len, size_t i);

static size_t read_digits(const char *s, size_t len, size_t i, struct digits *g)
{
	size_t j = i, k, n;

	memset(g, 0, sizeof(*g));
	if (j < len && s[j] == '(')
		j++;
	if (j < len && s[j] == '+')
		g->plus = true, j++;
	for (;;) { /* g->groups: the index of the group being read */
		size_t start = g->n;
		while (j < len && is_digit(s[j])) {
			if (g->n < MAX_DIGITS)
				g->d[g->n] = s[j];
			g->n++, j++;
		}
		if (g->groups < 8)
			g->group[g->groups] = g->n - start;
		if (!g->groups)
			g->first_end = j;
		if (g->n == 17 && j < len && (s[j] == 'x' || s[j] == 'X')) {
			g->x = true;
			j++;
			break;
		}
		for (k = j, n = 1; k < len && k - j < MAX_SEP_RUN && (n = sep_len(s, len, k));)
			k += n;
		if (k == j || k >= len || !is_digit(s[k]))
			break;
		if (s[k] == '0' && k + 2 < len && (s[k + 1] | 0x20) == 'x' && is_hex(s[k + 2]))
			break; /* "0x...": a hex literal of its own (<ID>'s), not more digits */
		size_t next = k;
		while (next < len && is_digit(s[next]))
			next++;
		if (g->n >= 7 && next - k >= 7)
			break; /* two long numbers side by side: two numbers */
		if (id_at(s, len, k))
			break; /* an id that starts with digits ("1c-53-...", "11O1O5...") */
		if (g->groups == 2 && g->group[0] == 4 && g->group[1] == 2 && g->group[2] == 2 &&
		    g->sep[0] == g->sep[1] && g->sep[0] != ' ' && s[j] == ' ')
			break; /* a date, then something else */
		if (g->groups < 8)
			g->sep[g->groups] = s[j];
		g->groups++;
		j = k;
	}
	g->groups++;
	g->d[g->n < MAX_DIGITS ? g->n : MAX_DIGITS] = '\0';
	/* A closing parenthesis right after belongs to the number. */
	if (j < len && s[j] == ')' && s[i] == '(')
		j++;
	return j;
}

static bool mobile(const char *d)
{
	return d[0] == '1' && d[1] >= '3' && d[1] <= '9';
}

/* A card number, alone or with trailing groups (expiry, CVV). */
static bool card(const struct digits *g)
{
	size_t n = 0;

	if (g->n >= 13 && g->n <= 19 && kn_luhn_ok(g->d, g->n))
		return true;
	for (int k = 0; k < g->groups && k < 8; k++) {
		n += g->group[k];
		if (n >= 13 && n <= 19 && g->n - n <= 7 && kn_luhn_ok(g->d, n))
			return true;
	}
	return false;
}

/* What a number is: a placeholder, or NULL when it may stay. */
static const char *classify(struct digits *g, struct kn_scrub_counts *c)
{
	g->date = g->n == 8 && is_date8(g->d) &&
		  (g->groups == 1 || (g->groups == 3 && g->group[0] == 4 && g->group[1] == 2 &&
				      g->sep[0] == g->sep[1]));
	if (g->n < 7 || g->date)
		return NULL;
	if ((g->n == 17 && g->x) || (g->n == 18 && !g->plus && kn_cn_id_ok(g->d)))
		return c->cn_id++, "<CN_ID>";
	/* a phone before a card: Luhn passes one "86" and mobile in ten, and no
	 * card is written with a "+" */
	if ((g->plus && g->n >= 8 && g->n <= 15) || (g->n == 11 && mobile(g->d)) ||
	    (g->n == 13 && !memcmp(g->d, "86", 2) && mobile(g->d + 2)) ||
	    (g->n == 15 && !memcmp(g->d, "0086", 4) && mobile(g->d + 4)))
		return c->phone++, "<PHONE>";
	if (card(g))
		return c->card++, "<CARD>";
	return c->num++, "<NUM>";
}

/* A number at i: returns its length, with *ph its placeholder; or, when it
 * may stay as it is, NULL and the length to copy: a whole date, or only the
 * first group of a short number (what follows a separator gets a look of
 * its own: "v6 2001:db8::1"). 0: no number here. A number starts where
 * no digit precedes it, or at fresh: where the last replacement ended, as
 * what was glued to a replaced identifier is a number of its own
 * ("<uuid>13800-138000"). */
static size_t match_digits(const char *s, size_t len, size_t i, size_t fresh, const char **ph,
			   struct kn_scrub_counts *c)
{
	struct digits g;
	size_t k = i;

	if (i && is_digit(s[i - 1]) && i != fresh)
		return 0;
	while (k < len && k - i < 2 && (s[k] == '(' || s[k] == '+'))
		k++;
	if (k >= len || !is_digit(s[k]))
		return 0;
	k = read_digits(s, len, i, &g);
	*ph = classify(&g, c);
	return (*ph || g.date ? k : g.first_end) - i;
}

/* A digit or a letter written for one (after case folding: o for 0; l, i
 * and | for 1): "l38OO138OOO". 0 when neither. */
static char digit_or_lookalike(char c)
{
	return is_digit(c) ? c : c == 'o' ? '0' : c == 'l' || c == 'i' || c == '|' ? '1' : 0;
}

/* What the digits d[0..n) with letters among them are, or NULL: only a
 * number that passes its own check (a mobile's prefix, with 86 or 0086
 * before it too, the ID's check character and date, Luhn). */
static const char *lookalike_kind(char *d, size_t n, bool card_shape, struct kn_scrub_counts *c)
{
	char keep = d[n];
	const char *ph = NULL;

	d[n] = '\0';
	if (n == 18 && kn_cn_id_ok(d))
		ph = "<CN_ID>", c->cn_id++;
	else if ((n == 11 && mobile(d)) || (n == 13 && !memcmp(d, "86", 2) && mobile(d + 2)) ||
		 (n == 15 && !memcmp(d, "0086", 4) && mobile(d + 4)))
		ph = "<PHONE>", c->phone++;
	else if (card_shape && n >= 13 && n <= 19 && kn_luhn_ok(d, n))
		ph = "<CARD>", c->card++;
	d[n] = keep;
	return ph;
}

/* Whether the groups ending at g_n[0..last] are shaped as a card's: one
 * group, or groups of 4 with any last one (4111 1111 1111 111). Luhn
 * passes one digit string in ten: a card's shape keeps chance out. */
static bool card_groups(const size_t *g_n, size_t last)
{
	for (size_t k = 0; k < last; k++)
		if (g_n[k] - (k ? g_n[k - 1] : 0) != 4)
			return false;
	return true;
}

/* Whether a number's digits end right before the separator at i - 1
 * ("0790-5478-8508 475O": at 475O), not an id's glued to letters
 * ("E67246886 4331"). */
static bool number_before(const char *s, size_t i)
{
	size_t k = i - 1;

	if (i < 2 || (s[k] != ' ' && s[k] != '-') || !is_digit(s[k - 1]))
		return false;
	while (k && is_digit(s[k - 1]))
		k--;
	return !k || !is_alpha(s[k - 1]);
}

/* The separator between two groups at j: one or two of the same ' ', '-',
 * '.', '_' or '/' (0: none), the same kind as *sep once there is one. */
static size_t lookalike_sep(const char *s, size_t len, size_t j, char *sep)
{
	size_t n = 0;

	if (j >= len || !strchr(" -._/", s[j]) || (*sep && s[j] != *sep))
		return 0;
	while (j + n < len && n < 2 && s[j + n] == s[j])
		n++;
	*sep = s[j];
	return n;
}

/* A phone, resident ID or card with letters written for some of its digits
 * ("(l38)OO13-8OOO", "+86l38OO138OOO"), whole or in groups split by one
 * kind of separator (see lookalike_sep); the first group has a real digit
 * ("lol 138..." is a word, then a number). The longest run of whole groups
 * that passes lookalike_kind counts, so words of these letters ("lol",
 * "oil") never do, nor a number beside the next one; with no look-alike
 * in it, it is match_digits' number. */
static size_t match_lookalike(const char *s, size_t len, size_t i, const char **ph,
			      struct kn_scrub_counts *c)
{
	char d[24], sep = 0;
	size_t n = 0, j = i, letters = 0, digits = 0, k;
	size_t g_n[8], g_end[8], g_letters[8], groups = 0; /* at each group's end */
	bool paren = s[i] == '(';

	if (i && is_alnum(s[i - 1]))
		return 0;
	j += paren;
	j += j < len && s[j] == '+';
	if (j >= len || !digit_or_lookalike(s[j]))
		return 0;
	for (; j <= len && n < 20 && groups < 8; j++) {
		char v = j < len ? digit_or_lookalike(s[j]) : 0;
		if (v) {
			letters += !is_digit(s[j]);
			digits += is_digit(s[j]);
			d[n++] = v;
			continue;
		}
		if (n == 17 && j < len && s[j] == 'x') /* an ID's check character */
			d[n++] = 'x', j++;
		bool closed = paren && j < len && s[j] == ')'; /* "(l38)OO13..." */
		if (closed)
			paren = false, j++;
		if ((!digits && !groups) || (!closed && j < len && is_alnum(s[j])))
			break;
		g_n[groups] = n, g_end[groups] = j, g_letters[groups++] = letters;
		digits = 0;
		if (closed && j < len && digit_or_lookalike(s[j])) {
			j--; /* the next group follows the parenthesis */
			continue;
		}
		if (!(k = lookalike_sep(s, len, j, &sep)) || !digit_or_lookalike(s[j + k]))
			break;
		j += k - 1;
	}
	/* Right after a number's separator, only a group with a letter starts
	 * one of its own ("8508 475O ...": the 8508 is the number's). */
	if (groups && !g_letters[0] && number_before(s, i))
		return 0;
	while (groups--)
		if (g_letters[groups] && g_n[groups] - g_letters[groups] >= 4 &&
		    (*ph = lookalike_kind(d, g_n[groups], card_groups(g_n, groups), c)))
			return g_end[groups] - i;
	return 0;
}

/* Whether a token of its own starts at i, after a separator, that a
 * number read across separators must not take digits from: a device id
 * (match_hexid's) or a number with look-alike letters. */
static size_t match_hexid(const char *s, size_t len, size_t i);

static bool id_at(const char *s, size_t len, size_t i)
{
	struct kn_scrub_counts c;
	const char *ph;

	return match_hexid(s, len, i) || match_lookalike(s, len, i, &ph, &c);
}

/* A number written with Chinese numerals, ASCII digits among them or not
 * (一三八..., 13800一三八000): 7 digits or more, min_numerals of them
 * numerals at least. Returns its length, or 0. */
static size_t match_numerals(const char *s, size_t len, size_t i, int min_numerals,
			     struct kn_scrub_counts *c)
{
	size_t j = i, n, last = i;
	int count = 0, numerals = 0;

	while (j < len) {
		UChar32 cp = cp_at(s, len, j, &n);
		if (j > last && cp < 0x80 && id_at(s, len, j))
			break; /* "一三八... 0x1a2b...": the id is not a numeral */
		if (kn_fold_is_numeral(cp) || (cp < 0x80 && is_digit((char)cp))) {
			count++;
			numerals += cp >= 0x80;
			last = j += n;
		} else if (j - last < MAX_SEP_RUN && (n = sep_len(s, len, j))) {
			j += n;
		} else {
			break;
		}
	}
	if (count < 7 || numerals < min_numerals)
		return 0;
	c->num++;
	return last - i;
}

/* Digits cut apart by single letters ("138x0013x8000", "4111a1111b...").
 * Letters between digits are mostly ordinary text ("1920x1080", "3d5s"),
 * so this is one number only when the digits joined are what no text is by
 * chance: a mobile number, a Luhn-valid card, a resident ID with its check
 * digit. Returns its length with *ph set, or 0. */
static size_t match_lettered(const char *s, size_t len, size_t i, const char **ph,
			     struct kn_scrub_counts *c)
{
	char d[20];
	size_t n = 0, j = i;
	int groups = 0;

	if (!is_digit(s[i]) || (i && is_alnum(s[i - 1])))
		return 0;
	for (;;) {
		while (j < len && is_digit(s[j]) && n < 19)
			d[n++] = s[j++];
		groups++;
		if (j + 1 < len && is_alpha(s[j]) && is_digit(s[j + 1]) && n < 19)
			j++;
		else
			break;
	}
	if (groups < 2 || (j < len && is_alnum(s[j])))
		return 0;
	d[n] = '\0';
	if (n == 11 && mobile(d))
		*ph = "<PHONE>", c->phone++;
	else if (n >= 13 && n <= 19 && kn_luhn_ok(d, n))
		*ph = "<CARD>", c->card++;
	else if (n == 18 && kn_cn_id_ok(d))
		*ph = "<CN_ID>", c->cn_id++;
	else
		return 0;
	return j - i;
}

/* ---- identifiers announced by a label ---- */

/* Words that announce personal data, and what follows them (past up to
 * eight bytes of " : # =", 号, 码, 是, 为, "id" and "is": "QQ号码: 12345",
 * "微信号是 zs_1990", "wechat id: zs"), taken as such even when it is short
 * or looks harmless: "QQ 12345" is an account, not a quantity, and
 * "出生日期 1987-07-03" a birthday, not a date. A label is looked for only
 * behind a value of its shape, so that text without one costs nothing. */
enum label_kind {
	L_NONE,
	L_NUMBER, /* an account number: 5+ digits ("QQ123456" glued too) */
	L_PHONE,  /* a phone: only what the number rules keep, a date's shape
		   * ("电话 20150612"); hotlines (10086, 95588) stay */
	L_HANDLE, /* a handle: 6-20 of [a-z0-9_-] from a letter, with a digit, '_' or '-'
		   * (any handle after a colon), so that "wechat download" stays */
	L_SECRET, /* a password or token: 4+ bytes up to a space, not all letters
		   * unless after ':' or '=' ("password reset" stays); 3 digits
		   * after ':' or '=' ("pwd=123") */
	L_PASS,	  /* a word that labels a password only before ':', '=' or a word
		   * for "is", and a value with a digit or a sign: then L_SECRET
		   * ("pass=x1"; "pass 2024", "pass: true" stay) */
	L_ACCT,	  /* a word that labels a handle only before ':', '=' or a word
		   * for "is": then L_HANDLE ("user: zhangsan"; "user sign-up",
		   * "用户 iphone15" stay) */
	L_ID,	  /* "id" with no other label: L_ACCT, and the handle has a digit
		   * or '_' ("id: zhangsan_1990"; "id=container", "id: number",
		   * "id=main-content" stay) */
	L_CODE,	  /* a card's CVV or expiry, a one-time code: 3-6 digits or MM/YY */
	L_DATE	  /* a date of birth in any form */
};

/* clang-format off */
#define W(s, k) {s, sizeof(s) - 1, k}
/* clang-format on */
#define N L_NUMBER
#define P L_PHONE
#define H L_HANDLE
#define S L_SECRET
#define C L_CODE
#define D L_DATE
#define Q L_PASS
#define A L_ACCT
static const struct {
	const char *w;
	size_t n;
	enum label_kind k;
} label_words[] = {
	W("qq", N),	  W("扣扣", N),		W("企鹅号", N),	   W("uid", N),
	W("工号", N),	  W("学号", N),		W("会员号", N),	   W("卡号", N),
	W("手机号", P),	  W("手机", P),		W("电话", P),	   W("tel", P),
	W("mobile", P),	  W("phone", P),	W("微信", H),	   W("威信", H),
	W("weixin", H),	  W("wechat", H),	W("wx", H),	   W("vx", H),
	W("v信", H),	  W("薇信", H),		W("加v", H),	   W("账号", H),
	W("帐号", H),	  W("抖音", H),		W("快手", H),	   W("小红书", H),
	W("微博", H),	  W("weibo", H),	W("skype", H),	   W("telegram", H),
	W("line", H),	  W("ins", H),		W("instagram", H), W("github", H),
	W("twitter", H),  W("facebook", H),	W("护照", H),	   W("passport", H),
	W("用户名", H),	  W("用户", A),		W("登录名", H),	   W("昵称", H),
	W("user", A),	  W("username", H),	W("account", A),   W("login", A),
	W("钉钉号", H),	  W("加微", H),		W("+v", H),	   W("tg", A),
	W("discord", H),  W("nickname", H),	W("口令", Q),	   W("pass", Q),
	W("password", S), W("passwd", S),	W("pw", S),	   W("pwd", S),
	W("密码", S),	  W("passcode", S),	W("pin", S),	   W("pin码", S),
	W("token", S),	  W("access_token", S), W("api_key", S),   W("apikey", S),
	W("key", S),	  W("secret", S),	W("cvv", C),	   W("cvv2", C),
	W("cvc", C),	  W("安全码", C),	W("有效期", C),	   W("exp", C),
	W("expiry", C),	  W("验证码", C),	W("出生日期", D),  W("出生于", D),
	W("出生", D),	  W("生于", D),		W("生日", D),	   W("dob", D),
	W("birthday", D), W("born", D),		W("born on", D),   W("date of birth", D)};
#undef W
#undef N
#undef P
#undef H
#undef S
#undef C
#undef D
#undef Q
#undef A

/* The label that ends at j, a word of its own (no ASCII letter before an
 * ASCII label), or L_NONE. */
static enum label_kind label_ending_at(const char *s, size_t j)
{
	for (size_t k = 0; k < sizeof(label_words) / sizeof(label_words[0]); k++) {
		size_t m = label_words[k].n;
		if (j >= m && s[j - 1] == label_words[k].w[m - 1] &&
		    !memcmp(s + j - m, label_words[k].w, m) && (j == m || !is_alnum(s[j - m - 1])))
			return label_words[k].k;
	}
	return L_NONE;
}

/* What may stand between a label and its value. */
static size_t label_filler(const char *s, size_t j)
{
	static const char *const words[] = {"号", "码", "是", "为"};

	if (s[j - 1] == ' ' || s[j - 1] == ':' || s[j - 1] == '#' || s[j - 1] == '=')
		return 1;
	if (j >= 3)
		for (size_t w = 0; w < sizeof(words) / sizeof(words[0]); w++)
			if (!memcmp(s + j - 3, words[w], 3))
				return 3;
	if (j >= 2 && (!memcmp(s + j - 2, "id", 2) || !memcmp(s + j - 2, "is", 2)) &&
	    (j == 2 || !is_alnum(s[j - 3])))
		return 2; /* "wechat id: zs", "my password is x" */
	return 0;
}

/* Whether a ':' or '=' is among the fillers right before i. */
static bool colon_before(const char *s, size_t i)
{
	size_t j = i, f;

	while (j > 0 && i - j < 8 && (f = label_filler(s, j))) {
		if (s[j - 1] == ':' || s[j - 1] == '=')
			return true;
		j -= f;
	}
	return false;
}

/* The label that ends right before i, past its fillers (which may be the
 * label's own: 抖音号); *colon: one of them was a colon or '='. An "id" with
 * no label before it is one ("id: zhangsan_1990"), a handle's; "qq id" is
 * still QQ's: L_ID. L_PASS, L_ACCT and L_ID come back only after a colon,
 * '=' or a word for "is" (口令是123456, "my id is zs_1990"). */
static enum label_kind label_before(const char *s, size_t i, bool *colon)
{
	enum label_kind k;
	size_t j = i, f;
	bool id = false, said = false; /* 是, 为, "is": as good as a colon here */

	*colon = false;
	while (j > 0 && i - j < 8 && (f = label_filler(s, j))) {
		if (f > 1 && (k = label_ending_at(s, j)))
			break;
		*colon |= s[j - 1] == ':' || s[j - 1] == '=';
		id |= f == 2 && s[j - 1] == 'd';
		said |= (f == 3 && (!memcmp(s + j - 3, "是", 3) || !memcmp(s + j - 3, "为", 3))) ||
			(f == 2 && s[j - 1] == 's');
		j -= f;
	}
	k = label_ending_at(s, j);
	if (!k && id)
		k = L_ID;
	return k == L_PASS || k == L_ACCT || k == L_ID ? (*colon || said ? k : L_NONE) : k;
}

/* Digits (and the separators within), from i: their count, *end. */
static size_t digit_run(const char *s, size_t len, size_t i, const char *seps, char d[9],
			size_t *end)
{
	size_t j = i, n = 0;

	for (; j < len && (is_digit(s[j]) || (j > i && strchr(seps, s[j]) && s[j] && j + 1 < len &&
					      is_digit(s[j + 1])));
	     j++)
		if (is_digit(s[j]) && n++ < 8)
			d[n - 1] = s[j];
	*end = j;
	return n;
}

/* A date at i in any spelling (1987-07-03, 1987.7.3, 1987年7月3日,
 * 19870703): its length, 0 if none. */
static size_t date_at(const char *s, size_t len, size_t i)
{
	size_t j = i, digits = 0, groups = 0;

	while (j < len) {
		if (is_digit(s[j]))
			groups += !digits || !is_digit(s[j - 1]), digits++, j++;
		else if ((s[j] == '-' || s[j] == '.' || s[j] == '/' || s[j] == ' ') &&
			 j + 1 < len && is_digit(s[j + 1]))
			j++;
		else if (len - j >= 3 && (!memcmp(s + j, "年", 3) || !memcmp(s + j, "月", 3) ||
					  !memcmp(s + j, "日", 3) || !memcmp(s + j, "号", 3)))
			j += 3;
		else
			break;
	}
	/* a day, not a year alone: "生日 2024年 计划" stays */
	return digits >= 5 && digits <= 8 && (groups >= 2 || digits == 8) ? j - i : 0;
}

static size_t labeled_number(const char *s, size_t len, size_t i, enum label_kind *kind)
{
	char d[9] = "";
	size_t end, n = digit_run(s, len, i, " -/", d, &end);
	bool colon = false, glued = i && is_alnum(s[i - 1]);

	if (n < 3 || n > 8 || (end < len && is_alnum(s[end])))
		return 0; /* no labelled value is this short or long */
	*kind = glued ? label_ending_at(s, i) : label_before(s, i, &colon);
	if (*kind == L_NUMBER && (n >= 5 && (n < 7 || (n == 8 && is_date8(d)))))
		return end - i; /* longer ones are typed as every number is */
	if (*kind == L_PHONE && n == 8 && is_date8(d))
		return end - i;
	if (*kind == L_PASS) /* after a colon: "pass=123456"; glued, "pass123" is none */
		*kind = glued ? L_NONE : L_SECRET;
	if ((*kind == L_CODE && n >= 3 && n <= 6) ||
	    (*kind == L_SECRET && (n >= 4 || (n == 3 && !glued && colon))))
		return end - i; /* a PIN, a password of digits: 密码123456, pwd=123 */
	if (*kind == L_DATE && !glued)
		return date_at(s, len, i);
	return 0;
}

/* A labelled value at i; *kind says which. */
static size_t match_labeled(const char *s, size_t len, size_t i, enum label_kind *kind)
{
	size_t j = i;
	bool marked = false, colon;

	if (is_digit(s[i]))
		return labeled_number(s, len, i, kind);
	if ((i && (is_alnum(s[i - 1]) || s[i - 1] == '_' || s[i - 1] == '-')) ||
	    (unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x80)
		return 0;
	for (; j < len && j - i <= 256 && (unsigned char)s[j] > ' ' && (unsigned char)s[j] < 0x80;
	     j++)
		marked |= !is_alpha(s[j]);
	/* a word of letters only is a value only after ':' or '=' */
	if (j - i < 4 || (!marked && !colon_before(s, i)) || !(*kind = label_before(s, i, &colon)))
		return 0;
	if (*kind == L_PASS && marked) /* after a colon, with a digit or a sign */
		*kind = L_SECRET;
	if (*kind == L_SECRET) /* "password reset" stays; "pwd: hunter", "pwd Zs@1" go */
		return marked || colon ? j - i : 0;
	bool strict = *kind == L_ID;	      /* a digit or '_' */
	if (*kind == L_ACCT || *kind == L_ID) /* after a colon */
		*kind = L_HANDLE;
	/* "twitter: @zhangsan": the handle's own "@" goes with it */
	size_t h = i + (s[i] == '@');
	if (*kind != L_HANDLE || !is_alpha(s[h]))
		return 0;
	for (j = h, marked = false;
	     j < len && j - h <= 20 && (is_alnum(s[j]) || s[j] == '_' || s[j] == '-'); j++)
		marked |= strict ? s[j] == '_' || is_digit(s[j]) : !is_alpha(s[j]);
	/* a whole token, and not an address's local part or a host's label */
	if (j - h < 6 || j - h > 20 ||
	    (j < len && (is_alnum(s[j]) || s[j] == '_' || s[j] == '@' ||
			 (s[j] == '.' && j + 1 < len && is_alnum(s[j + 1])))))
		return 0;
	return marked || (colon && !strict) ? j - i : 0;
}

/* ---- device and advertising identifiers ---- */

/* A MAC address (six pairs of hex digits joined by one kind of ':' or '-')
 * or an EUI-64 (eight pairs), at least one pair with a letter (pairs of
 * decimal digits are a number, for match_digits). */
static size_t mac_at(const char *s, size_t len, size_t i)
{
	size_t j = i, end = 0;
	char sep = 0;
	bool letter = false;
	int pairs = 0;

	while (pairs < 9 && j + 2 <= len && is_hex(s[j]) && is_hex(s[j + 1])) {
		letter |= !is_digit(s[j]) || !is_digit(s[j + 1]);
		j += 2;
		end = j;
		pairs++;
		if (j >= len || (s[j] != ':' && s[j] != '-') || (sep && s[j] != sep))
			break;
		sep = s[j++];
	}
	return letter && (pairs == 6 || pairs == 8) ? end - i : 0;
}

/* A MAC address as Cisco writes it: three dot-separated groups of four hex
 * digits, a letter among them (all digits is a number, <NUM>'s). */
static size_t cisco_mac_at(const char *s, size_t len, size_t i)
{
	bool letter = false;
	size_t j = i;

	for (int g = 0; g < 3; g++) {
		for (int k = 0; k < 4; k++, j++) {
			if (j >= len || !is_hex(s[j]))
				return 0;
			letter |= !is_digit(s[j]);
		}
		if (g < 2 && (j >= len || s[j++] != '.'))
			return 0;
	}
	return letter ? j - i : 0;
}

/* A UUID (IDFA, GAID, install ids): 8-4-4-4-12 hex digits. */
static size_t uuid_at(const char *s, size_t len, size_t i)
{
	static const int group[] = {8, 4, 4, 4, 12};
	size_t j = i;

	for (int g = 0; g < 5; g++) {
		for (int k = 0; k < group[g]; k++, j++)
			if (j >= len || !is_hex(s[j]))
				return 0;
		if (g < 4 && (j >= len || s[j++] != '-'))
			return 0;
	}
	return j - i;
}

/* 12 or more hex digits in one token, with at least three digits and three
 * letters among them: a MAC address written without separators, an Android
 * id, a hash, a token. (No word is all hex letters and three digits.) */
static size_t hexrun_at(const char *s, size_t len, size_t i)
{
	size_t j = i, digits = 0;

	for (; j < len && is_hex(s[j]); j++)
		digits += is_digit(s[j]);
	return j - i >= 12 && digits >= 3 && j - i - digits >= 3 ? j - i : 0;
}

/* <ID>: any of the three, as a whole token. */
static size_t match_hexid(const char *s, size_t len, size_t i)
{
	size_t m;

	if (!is_hex(s[i]))
		return 0;
	/* A UUID is unmistakable: glued to a label or a suffix too
	 * ("idfae621e1f8-...", "...-ios"). */
	if ((m = uuid_at(s, len, i)))
		return m;
	/* A long hex run may follow the letters of a label ("mac001a2b3c4d5e"). */
	if (i && is_alnum(s[i - 1]))
		return is_alpha(s[i - 1]) && (m = hexrun_at(s, len, i)) &&
				       (i + m == len || !is_alnum(s[i + m]))
			       ? m
			       : 0;
	if (s[i] == '0' && i + 2 < len && (s[i + 1] | 0x20) == 'x' &&
	    (m = hexrun_at(s, len, i + 2)))
		m += 2; /* 0x... */
	else if (!(m = mac_at(s, len, i)) && !(m = cisco_mac_at(s, len, i)))
		m = hexrun_at(s, len, i);
	/* a whole token: not the start of a longer one ("...-5e-4d-5e") */
	if (!m || (i + m < len && (is_alnum(s[i + m]) ||
				   (i + m + 1 < len && (s[i + m] == '-' || s[i + m] == ':') &&
				    is_alnum(s[i + m + 1])))))
		return 0;
	return m;
}

/* A social handle: "@" and 4 to 30 of [a-z0-9_.-] with a digit or '_'
 * (@zhangsan1990, @zs_1990), not an address's "@". "@weibo" stays. */
static size_t match_handle(const char *s, size_t len, size_t i)
{
	size_t j = i + 1;
	bool marked = false;

	if (s[i] != '@' || (i && local_char(s[i - 1])))
		return 0;
	for (; j < len && j - i <= 31 && (local_char(s[j]) && s[j] != '%' && s[j] != '+'); j++)
		marked |= is_digit(s[j]) || s[j] == '_';
	while (j > i + 1 && (s[j - 1] == '.' || s[j - 1] == '-')) /* sentence punctuation */
		j--;
	if (j - i - 1 < 4 || j - i - 1 > 30 || !marked || (j < len && is_alnum(s[j])))
		return 0;
	return j - i;
}

/* A run of 20 or more letters and digits with four or more of each: an API
 * key, a token, a JWT's segment ("sk_live_4ec39hqly..."). No word is one. */
static size_t match_token(const char *s, size_t len, size_t i)
{
	size_t j = i, digits = 0;

	if ((i && is_alnum(s[i - 1])) || !is_alnum(s[i]))
		return 0;
	for (; j < len && is_alnum(s[j]); j++)
		digits += is_digit(s[j]);
	if (j - i == 20 && (!memcmp(s + i, "akia", 4) || !memcmp(s + i, "asia", 4)))
		return 20; /* an AWS access key id, whatever its digits */
	return j - i >= 20 && digits >= 4 && j - i - digits >= 4 ? j - i : 0;
}

/* A Chinese licence plate: a province's character, a letter, an optional
 * dot, and five or six letters and digits (京A12345, 粤B·D12345). Or a
 * Chinese passport number: E or G and eight digits. */
static size_t match_plate(const char *s, size_t len, size_t i)
{
	static const char prov[] = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼";
	size_t j = i + 4, k = 0, digits = 0;

	if ((s[i] == 'e' || s[i] == 'g') && (!i || !is_alnum(s[i - 1]))) {
		for (j = i + 1; j < len && j - i <= 8 && is_digit(s[j]); j++)
			;
		return j - i == 9 && (j == len || !is_alnum(s[j])) ? 9 : 0;
	}
	if ((unsigned char)s[i] < 0xe4 || len - i < 9 || !is_alpha(s[i + 3]))
		return 0;
	while (k < sizeof(prov) - 1 && memcmp(prov + k, s + i, 3))
		k += 3;
	if (k >= sizeof(prov) - 1)
		return 0;
	if (len - j >= 2 && !memcmp(s + j, "·", 2)) /* U+00B7 */
		j += 2;
	else if (s[j] == ' ' || s[j] == '-')
		j++;
	else if (!memcmp(s + i, "新", 3))
		return 0; /* 新 is also "new" (新rtx4090): a plate of Xinjiang only with its dot */
	size_t start = j;
	for (; j < len && j - start < 6 && is_alnum(s[j]); j++)
		digits += is_digit(s[j]);
	if (j - start < 5 || digits < 3 || (j < len && is_alnum(s[j])))
		return 0;
	return j - i;
}

/* Building, unit and room without their words: "3-2-501" (1-3, 1-2 and 3-4
 * digits), given j, the end of the first group at i. Returns its length. */
static size_t triple(const char *s, size_t len, size_t i, size_t j)
{
	size_t k = j, g;

	if (j - i > 3 || k >= len || s[k] != '-')
		return 0;
	for (g = ++k; k < len && is_digit(s[k]); k++)
		;
	if (k - g < 1 || k - g > 2 || k >= len || s[k] != '-')
		return 0;
	for (g = ++k; k < len && is_digit(s[k]); k++)
		;
	if (k - g < 3 || k - g > 4 || (k < len && (is_alnum(s[k]) || s[k] == '-')))
		return 0;
	return k - i;
}

/* A house, building or room number: digits before 号楼, 号院, 栋, 幢, 单元,
 * 室 (three digits or more) or 弄, before 号 right after a road (路 街 道
 * 巷 弄 村 里), or a room's 3-4 digits right after (or a space after) a
 * numbered or lettered 单元, 栋, 幢, 楼, 号楼, 层, 号 or 座 (12号1203,
 * 5号楼 412, b座 2305, 12#楼 305; not after a space a day's 号, seats' 座
 * or a year); or a triple (see triple). Returns the digits' length; the
 * unit stays. */
static size_t match_house(const char *s, size_t len, size_t i)
{
	static const char *const units[] = {"号楼", "号院", "栋", "幢", "单元", "室", "弄"};
	static const char roads[] = "路街道巷弄村里",
			  measures[] = "年月日元米平个人万块次天岁分点克斤款";
	static const char *const numbered[] = {"单元", "栋", "幢", "号楼", "楼", "层", "号", "座"};
	size_t j = i, sp = i && s[i - 1] == ' ';

	if (i && is_alnum(s[i - 1]))
		return 0;
	while (j < len && is_digit(s[j]))
		j++;
	if (j == i || j - i > 6)
		return 0;
	for (size_t u = 0; u < sizeof(units) / sizeof(units[0]); u++) {
		if (len - j < strlen(units[u]) || memcmp(s + j, units[u], strlen(units[u])))
			continue;
		/* a room has three digits or more (2室1厅 is a flat's layout); a
		 * textbook's 第3单元 is no building's */
		if ((!strcmp(units[u], "室") && j - i < 3) ||
		    (!strcmp(units[u], "单元") && i >= 3 && !memcmp(s + i - 3, "第", 3)))
			return 0;
		return j - i;
	}
	if (len - j >= 3 && !memcmp(s + j, "号", 3) && i >= 3)
		for (size_t k = 0; k < sizeof(roads) - 1; k += 3)
			if (!memcmp(s + i - 3, roads + k, 3))
				return j - i;
	/* a room after a numbered building, unit or floor: 2单元501, 5楼502;
	 * not 公元1949, 大楼2024, 楼层1000, nor a year, price or quantity
	 * after one (5楼300元) */
	if (j - i >= 3 && j - i <= 4 && (j == len || !is_alnum(s[j])) &&
	    !(len - j >= 3 && memmem(measures, sizeof(measures) - 1, s + j, 3)))
		for (size_t k = 0; k < sizeof(numbered) / sizeof(numbered[0]); k++) {
			size_t u = strlen(numbered[k]), b = i - sp - u, d = b;
			if (i <= sp + u || memcmp(s + b, numbered[k], u) ||
			    !(is_alnum(s[b - 1]) || s[b - 1] == '#'))
				continue;
			while (d > 0 && is_digit(s[d - 1]))
				d--;
			if (!strcmp(numbered[k], "号") &&
			    (sp || (d >= 3 && !memcmp(s + d - 3, "月", 3))))
				continue; /* a day's 号: 12月5号1800, 周六 5号 1900 */
			if (sp &&
			    ((!strcmp(numbered[k], "座") && d < b) ||
			     (j - i == 4 && (!memcmp(s + i, "19", 2) || !memcmp(s + i, "20", 2)))))
				continue; /* seats (7座 2024款), a year after a space */
			return j - i;
		}
	return triple(s, len, i, j);
}

/* A street suffix, whole, at s[j..e): "st", "street", "ave", ... */
static bool street_suffix(const char *s, size_t j, size_t e)
{
	static const char *const sfx[] = {
		"street",  "st",   "avenue",  "ave",   "av",	 "road",  "rd",	      "boulevard",
		"blvd",	   "lane", "ln",      "drive", "dr",	 "court", "ct",	      "terrace",
		"highway", "hwy",  "parkway", "pkwy",  "square", "sq",	  "crescent", "circle",
		"place",   "pl",   "way",     "alley", "loop"};

	for (size_t k = 0; k < sizeof(sfx) / sizeof(sfx[0]); k++)
		if (strlen(sfx[k]) == e - j && !memcmp(s + j, sfx[k], e - j))
			return true;
	return false;
}

/* Words that make "4 wheel drive", "32 gb flash drive", "5 min drive" and
 * "10 best way" quantities, not addresses. */
static bool not_a_street(const char *s, size_t j, size_t e)
{
	static const char *const words[] = {
		"tb",	    "gb",    "mb",   "kb",    "usb",	"ssd",	   "flash", "hard",
		"external", "wheel", "min",  "mins",  "minute", "minutes", "hr",    "hrs",
		"hour",	    "hours", "mile", "miles", "km",	"best",	   "easy",  "fast",
		"fastest",  "quick", "one",  "two",   "right",	"wrong",   "long",  "only",
		"same",	    "other", "no",   "test"};

	for (size_t k = 0; k < sizeof(words) / sizeof(words[0]); k++)
		if (strlen(words[k]) == e - j && !memcmp(s + j, words[k], e - j))
			return true;
	return false;
}

/* The end of a street's word at j ("baker", a compass letter "w" or "n.",
 * an ordinal "34th"), or 0. */
static size_t street_word(const char *s, size_t len, size_t j)
{
	size_t w = j;

	while (j < len && is_digit(s[j]))
		j++;
	if (j > w) /* an ordinal */
		return len - j >= 2 &&
				       (!memcmp(s + j, "st", 2) || !memcmp(s + j, "nd", 2) ||
					!memcmp(s + j, "rd", 2) || !memcmp(s + j, "th", 2)) &&
				       (j + 2 == len || !is_alnum(s[j + 2]))
			       ? j + 2
			       : 0;
	while (j < len && is_alpha(s[j]))
		j++;
	if ((j < len && is_digit(s[j])) || j == w || (j - w == 1 && !strchr("nsew", s[w])) ||
	    not_a_street(s, w, j))
		return 0;
	return j < len && s[j] == '.' && j - w <= 4 ? j + 1 : j; /* "n.", "st." */
}

/* An English street address's house number: 1-5 digits (and a letter:
 * "12b"), then one to three words of which the last, not the first, is a
 * street suffix: "221b baker street", "42 w 34th st" ("2 way street" is
 * none). Returns the number's length; the street stays, as 路 does after
 * 88号. */
static size_t match_street(const char *s, size_t len, size_t i)
{
	size_t j = i, words = 0, e;

	if (!is_digit(s[i]) || (i && is_alnum(s[i - 1])))
		return 0;
	while (j < len && is_digit(s[j]))
		j++;
	if (j == i || j - i > 5)
		return 0;
	size_t num = j < len && is_alpha(s[j]) && (j + 1 == len || !is_alnum(s[j + 1])) ? j + 1 : j;
	for (j = num; j < len && s[j] == ' ' && words < 4; words++, j = e) {
		if (!(e = street_word(s, len, j + 1)))
			return 0;
		if (street_suffix(s, j + 1, s[e - 1] == '.' ? e - 1 : e))
			return words ? num - i : 0;
	}
	return 0;
}

/* ---- the scan ---- */

struct out {
	char *p;
	size_t n;
	bool full; /* nothing more fits */
};

/* Appends s[0..n), cut to what fits. The cut never falls inside a UTF-8
 * sequence (s is valid UTF-8: kn_fold made it so), so the output stays valid
 * UTF-8 whatever the input's length. A placeholder is never cut: it goes in
 * whole or not at all. */
static void put(struct out *o, const char *s, size_t n)
{
	if (o->n + n >= KN_SCRUB_MAX) {
		n = KN_SCRUB_MAX - 1 - o->n;
		while (n && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
		o->full = true;
	}
	memcpy(o->p + o->n, s, n);
	o->n += n;
}

static void put_placeholder(struct out *o, const char *ph, size_t n)
{
	if (o->n + n >= KN_SCRUB_MAX)
		o->full = true;
	else
		put(o, ph, n);
}

/* A login name after a tilde, as a shell or a web server's user directories
 * write it: "~zhangsan/" at the text's start or after a space, a slash or a
 * colon ("scp a host:~li.na/x"). The slash after it is required: "~ten people"
 * and "~5km" are approximations. i is just after the tilde. */
static size_t match_tilde(const char *s, size_t len, size_t i)
{
	size_t j = i;

	if (i >= 2 && (!s[i - 2] || !strchr(" /\\:", s[i - 2])))
		return 0;
	if (i >= len || !is_alpha(s[i]))
		return 0;
	while (j < len && j - i <= 32 && (is_alnum(s[j]) || (s[j] && strchr("._-", s[j]))))
		j++;
	return j < len && j - i <= 32 && s[j] == '/' ? j - i : 0;
}

/* Where the separator before i starts (i if there is none): slashes and
 * backslashes, doubled too as escaped strings write them ("c:\\\\users"),
 * or a breadcrumb's " > " (此电脑 > 本地磁盘 (c:) > 用户 > 张三). */
static size_t sep_start(const char *s, size_t i)
{
	size_t b = i;

	while (b > 0 && i - b < 4 && (s[b - 1] == '/' || s[b - 1] == '\\'))
		b--;
	if (b == i && i >= 3 && s[i - 1] == ' ' && s[i - 2] == '>' && s[i - 3] == ' ')
		b = i - 3;
	return b;
}

/* Whether the directory that ends at e holds users' homes: home, users,
 * documents and settings (after a separator or a space: "ls home/x"), and
 * after a separator homes, home2, home$, users$ and profiles$ (Windows
 * shares), a mail spool, run/media (where a desktop mounts a user's disks),
 * and 用户 on a drive (Windows in Chinese: "c:\\用户", "本地磁盘 (c:)\\用户"),
 * the one a breadcrumb's " > " may follow. */
static bool homes_dir(const char *s, size_t e, bool crumb)
{
	/* what may stand before the directory */
	enum {
		SEP,
		SPACED,
		DRIVE
	};
	static const struct {
		const char *name;
		int before;
	} dirs[] = {{"home", SPACED},	{"users", SPACED}, {"documents and settings", SPACED},
		    {"homes", SEP},	{"home$", SEP},	   {"users$", SEP},
		    {"profiles$", SEP}, {"var/mail", SEP}, {"spool/mail", SEP},
		    {"run/media", SEP}, {"用户", DRIVE}};

	for (int d = 0; d < 2 && e > 0 && is_digit(s[e - 1]); d++)
		e--; /* home2 */
	for (size_t d = 0; d < sizeof(dirs) / sizeof(dirs[0]); d++) {
		size_t k = strlen(dirs[d].name), b = e - k, p;
		if (e < k || memcmp(s + b, dirs[d].name, k) || (crumb && dirs[d].before != DRIVE))
			continue;
		if (dirs[d].before == DRIVE) /* after "c:", "(c:)" or 本地磁盘 and a separator */
			return (p = sep_start(s, b)) < b && p &&
			       (s[p - 1] == ':' || s[p - 1] == ')' ||
				(p >= 3 && !memcmp(s + p - 3, "盘", 3)));
		if ((!b && dirs[d].before == SPACED) ||
		    (b && (s[b - 1] == '/' || s[b - 1] == '\\')) ||
		    (b && dirs[d].before == SPACED && s[b - 1] == ' ' &&
		     !(b >= 4 && !memcmp(s + b - 4, "all ", 4))))
			return true;
	}
	return false;
}

/* A user's name as a directory: the path segment after a directory of homes
 * ("/home/zhangsan/.ssh", "c:\\users\\张三\\desktop", "/var/mail/zhangsan",
 * "\\\\fs01\\home$\\zhangsan"; the text is folded, so lower case), or after a
 * tilde ("~zhangsan/"), but for the accounts that are nobody's or a
 * system's. */
static size_t match_userdir(const char *s, size_t len, size_t i)
{
	/* nobody's, or a system's */
	static const char *const shared[] = {"public",	  "shared",	   "default",
					     "all users", "guest",	   "公用",
					     "root",	  "administrator", "www-data"};
	size_t j = i, e;

	if (i && s[i - 1] == '~')
		return match_tilde(s, len, i);
	if (!i || (e = sep_start(s, i)) == i || !homes_dir(s, e, s[e] == ' '))
		return 0;
	while (j < len && j - i < 64 && s[j] && !strchr("/\\ ?#\"'", s[j]))
		j++;
	while (j > i && j < len && ((unsigned char)s[j] & 0xc0) == 0x80)
		j--; /* the 64 bytes' end falls inside a character: before it */
	/* A name with spaces ("c:\\users\\zhang san\\") runs on to the next
	 * separator, when one ends it within the 64 bytes: words only between. */
	if (j > i && j < len && s[j] == ' ')
		for (size_t k = j; k < len && k - i < 64 && !strchr("?#\"':;,>", s[k]); k++)
			if (s[k] == '/' || s[k] == '\\') {
				j = k;
				break;
			}
	for (size_t w = 0; w < sizeof(shared) / sizeof(shared[0]); w++)
		if (j - i == strlen(shared[w]) && !memcmp(s + i, shared[w], j - i))
			return 0;
	return j - i;
}

/* The next unmatched token: a run of ASCII letters, or one character. */
static size_t token_len(const char *s, size_t len, size_t i)
{
	size_t j = i, n;

	if (is_alpha(s[i])) {
		/* up to a UUID glued to the word ("idfae621e1f8-...") */
		while (j < len && is_alpha(s[j]) &&
		       (j == i || !is_hex(s[j]) || !uuid_at(s, len, j)))
			j++;
		return j - i;
	}
	cp_at(s, len, i, &n);
	return n ? n : 1;
}

size_t kn_scrub_query(const char *in, size_t len, char *outbuf, struct kn_scrub_counts *counts)
{
	struct kn_scrub_counts dummy;
	struct kn_scrub_counts *c = counts ? counts : &dummy;
	struct out o = {outbuf, 0};
	char s[KN_FOLD_IN_MAX];
	/* KN_FOLD_URL: queries are often logged URL- or HTML-escaped
	 * ("zhangsan%40qq.com", "&#64;"), and what they escape is scrubbed. */
	size_t n = kn_fold(in, len, s, sizeof(s), KN_FOLD_URL), i = 0, m, cn;
	size_t at, fresh = 0;
	enum label_kind lk;

	/* Control characters (C0 with NUL, DEL, and C1 as UTF-8: C2 80-9F)
	 * separate, as spaces do, and none reaches the emitted text: a reader's
	 * terminal or C string would act on it. s is valid UTF-8 (kn_fold). */
	for (size_t k = 0; k < n; k++) {
		unsigned char b = (unsigned char)s[k];
		if (b < 0x20 || b == 0x7f)
			s[k] = ' ';
		else if (b == 0xc2 && k + 1 < n && (unsigned char)s[k + 1] <= 0x9f)
			s[k] = s[k + 1] = ' ';
	}
	at = next_at(s, n, 0);
	memset(c, 0, sizeof(*c));
	while (i < n && !o.full) {
		const char *ph = NULL;
		if (at < i)
			at = next_at(s, n, i);
		if ((m = match_labeled(s, n, i, &lk)))
			ph = lk == L_HANDLE || lk == L_SECRET ? (c->id++, "<ID>")
							      : (c->num++, "<NUM>");
		else if ((m = match_userdir(s, n, i)))
			ph = "<ID>", c->id++;
		else if ((m = match_url(s, n, i)))
			ph = "<URL>", c->url++;
		else if (at < n && at - i <= LOCAL_MAX + 2 && (m = match_email(s, n, i)))
			ph = "<EMAIL>", c->email++;
		else if ((m = match_ip(s, n, i)))
			ph = "<IP>", c->ip++;
		else if ((m = match_hexid(s, n, i)) || (m = match_plate(s, n, i)) ||
			 (m = match_token(s, n, i)) || (m = match_handle(s, n, i)))
			ph = "<ID>", c->id++;
		else if ((m = match_house(s, n, i)) || (m = match_street(s, n, i)))
			ph = "<NUM>", c->num++;
		else if ((m = match_lookalike(s, n, i, &ph, c)) ||
			 (m = match_lettered(s, n, i, &ph, c)))
			;
		else if ((m = match_digits(s, n, i, fresh, &ph, c)) && !ph) {
			/* a date or a short number: copied below, whole; unless
			 * Chinese numerals go on with it ("13800一三八000"), two
			 * of them at least (一 alone is "one": 600519一季度) */
			size_t nm = match_numerals(s, n, i, 2, c);
			if (nm > m)
				m = nm, ph = "<NUM>";
		} else if (!m && kn_fold_is_numeral(cp_at(s, n, i, &cn)) &&
			   (m = match_numerals(s, n, i, 1, c)))
			ph = "<NUM>";
		if (ph) {
			put_placeholder(&o, ph, strlen(ph));
			fresh = i += m;
			continue;
		}
		if (m) {
			put(&o, s + i, m);
			i += m;
			continue;
		}
		m = token_len(s, n, i);
		put(&o, s + i, m);
		i += m;
	}
	o.p[o.n] = '\0';
	return o.n;
}
