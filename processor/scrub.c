#include "scrub.h"

#include <arpa/inet.h>
#include <string.h>

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int is_alnum(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
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

static int is_date8(const char *d)
{
	int y = 0, m, dd;

	for (int i = 0; i < 4; i++)
		y = y * 10 + (d[i] - '0');
	m = (d[4] - '0') * 10 + (d[5] - '0');
	dd = (d[6] - '0') * 10 + (d[7] - '0');
	return y >= 1900 && y <= 2099 && m >= 1 && m <= 12 && dd >= 1 && dd <= 31;
}

struct out {
	char *p;
	size_t n;
	struct kn_scrub_counts *c;
};

static void put(struct out *o, const char *s, size_t n)
{
	if (o->n + n >= KN_SCRUB_MAX)
		n = KN_SCRUB_MAX - 1 - o->n;
	memcpy(o->p + o->n, s, n);
	o->n += n;
}

/* Length of a URL starting at i that carries a query string, or 0. */
static size_t match_url(const char *s, size_t len, size_t i)
{
	static const char *starts[] = {"http://", "https://", "ftp://", "www."};
	size_t j = i;
	int query = 0;

	for (size_t k = 0; k < 4; k++) {
		size_t n = strlen(starts[k]);
		if (len - i >= n && !strncasecmp(s + i, starts[k], n)) {
			j = i + n;
			break;
		}
	}
	if (j == i || (i && is_alnum(s[i - 1])))
		return 0;
	while (j < len && (unsigned char)s[j] > ' ' && (unsigned char)s[j] < 0x80) {
		query |= s[j] == '?';
		j++;
	}
	return query ? j - i : 0;
}

static size_t match_email(const char *s, size_t len, size_t i)
{
	size_t j = i, at, dot = 0;

	if (i && (is_alnum(s[i - 1]) || strchr("._%+-", s[i - 1])))
		return 0;
	while (j < len && (is_alnum(s[j]) || strchr("._%+-", s[j])))
		j++;
	if (j == i || j >= len || s[j] != '@')
		return 0;
	at = ++j;
	while (j < len && (is_alnum(s[j]) || s[j] == '-' || s[j] == '.')) {
		if (s[j] == '.')
			dot = j;
		j++;
	}
	while (j > at && s[j - 1] == '.')
		j--;
	return dot > at && dot + 2 < j + 1 && j - dot > 2 ? j - i : 0;
}

/* IPv4 or IPv6 at i (a token of hex digits, dots and colons). */
static size_t match_ip(const char *s, size_t len, size_t i)
{
	char buf[64];
	unsigned char a[16];
	size_t j = i;

	if (i && (is_alnum(s[i - 1]) || s[i - 1] == '.' || s[i - 1] == ':'))
		return 0;
	while (j < len && j - i < 45 && (is_digit(s[j]) || strchr("abcdefABCDEF:.", s[j])))
		j++;
	while (j > i && (s[j - 1] == '.' || s[j - 1] == ':') && j - i > 2 && s[j - 2] != ':')
		j--; /* a sentence's full stop is not part of the address */
	if (j - i < 7 || (j < len && is_alnum(s[j])))
		return 0;
	memcpy(buf, s + i, j - i);
	buf[j - i] = '\0';
	if (inet_pton(AF_INET, buf, a) == 1 ||
	    (strchr(buf, ':') && inet_pton(AF_INET6, buf, a) == 1))
		return j - i;
	return 0;
}

/* A digit token (digits, with single spaces/dashes between groups) at i:
 * classifies it and returns its length, or 0 when it is not personal. */
static size_t match_digits(const char *s, size_t len, size_t i, const char **ph,
			   struct kn_scrub_counts *c)
{
	char d[32];
	size_t nd = 0, j = i, end_plain;
	int plus = s[i] == '+';

	/* Letters may touch a number ("QQ123456789"); digits may not. */
	if (i && is_digit(s[i - 1]))
		return 0;
	if (plus)
		j++;
	/* The plain run first: digits only (an ID may end in X). */
	while (j < len && is_digit(s[j]) && nd < sizeof(d) - 1)
		d[nd++] = s[j++];
	end_plain = j;
	if (nd == 17 && j < len && (s[j] == 'X' || s[j] == 'x'))
		d[nd++] = s[j++], end_plain = j;
	if (j < len && is_digit(s[j])) { /* longer than any pattern: a number */
		while (j < len && is_digit(s[j]))
			j++;
		*ph = "<NUM>", c->num++;
		return j - i;
	}
	d[nd] = '\0';
	if (!plus && nd == 18 && kn_cn_id_ok(d)) {
		*ph = "<CN_ID>", c->cn_id++;
		return end_plain - i;
	}
	/* Extend across grouping separators ("6222 0212 3456 7894", "138-0013-8000"). */
	size_t k = j, nd2 = nd;
	while (k + 1 < len && (s[k] == ' ' || s[k] == '-') && is_digit(s[k + 1]) &&
	       nd2 < sizeof(d) - 1) {
		k++;
		while (k < len && is_digit(s[k]) && nd2 < sizeof(d) - 1)
			d[nd2++] = s[k++];
	}
	d[nd2] = '\0';
	if (nd2 > nd && !(k < len && is_digit(s[k]))) {
		if (!plus && nd2 >= 13 && nd2 <= 19 && kn_luhn_ok(d, nd2)) {
			*ph = "<CARD>", c->card++;
			return k - i;
		}
		if ((nd2 == 11 && d[0] == '1' && d[1] >= '3') || (plus && nd2 >= 8 && nd2 <= 15)) {
			*ph = "<PHONE>", c->phone++;
			return k - i;
		}
	}
	if (!plus && nd >= 13 && nd <= 19 && kn_luhn_ok(d, nd)) {
		*ph = "<CARD>", c->card++;
		return end_plain - i;
	}
	if ((plus && nd >= 8 && nd <= 15) || (!plus && nd == 11 && d[0] == '1' && d[1] >= '3') ||
	    (!plus && nd == 13 && !strncmp(d, "86", 2) && d[2] == '1') ||
	    (!plus && nd == 15 && !strncmp(d, "0086", 4))) {
		*ph = "<PHONE>", c->phone++;
		return end_plain - i;
	}
	if (!plus && nd >= 7 && !(nd == 8 && is_date8(d))) {
		*ph = "<NUM>", c->num++;
		return end_plain - i;
	}
	return 0;
}

size_t kn_scrub_query(const char *in, size_t len, char *outbuf, struct kn_scrub_counts *counts)
{
	struct kn_scrub_counts dummy = {0};
	struct out o = {outbuf, 0, counts ? counts : &dummy};
	size_t i = 0, m;

	memset(o.c, 0, sizeof(*o.c));
	while (i < len && o.n < KN_SCRUB_MAX - 1) {
		const char *ph = NULL;
		if ((m = match_url(in, len, i))) {
			ph = "<URL>", o.c->url++;
		} else if ((m = match_email(in, len, i))) {
			ph = "<EMAIL>", o.c->email++;
		} else if ((m = match_ip(in, len, i))) {
			ph = "<IP>", o.c->ip++;
		} else if ((is_digit(in[i]) ||
			    (in[i] == '+' && i + 1 < len && is_digit(in[i + 1]))) &&
			   (m = match_digits(in, len, i, &ph, o.c))) {
		} else {
			/* Copy the token (a run of letters, a run of digits, or one
			 * UTF-8 character) unchanged. */
			size_t j = i + 1;
			if (is_digit(in[i]))
				while (j < len && is_digit(in[j]))
					j++;
			else if (is_alnum(in[i]))
				while (j < len && is_alnum(in[j]) && !is_digit(in[j]))
					j++;
			else
				while (j < len && ((unsigned char)in[j] & 0xc0) == 0x80)
					j++;
			put(&o, in + i, j - i);
			i = j;
			continue;
		}
		put(&o, ph, strlen(ph));
		i += m;
	}
	/* Never end inside a UTF-8 sequence after truncation. */
	while (o.n && ((unsigned char)o.p[o.n - 1] & 0xc0) == 0x80) {
		size_t k = o.n - 1;
		while (k && ((unsigned char)o.p[k] & 0xc0) == 0x80)
			k--;
		unsigned char lead = (unsigned char)o.p[k];
		size_t need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
		if (o.n - k == need)
			break;
		o.n = k;
	}
	o.p[o.n] = '\0';
	return o.n;
}
