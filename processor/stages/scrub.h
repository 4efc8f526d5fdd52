/* scrub: free-text PII out of search queries, before any other use.
 *
 * The query is folded first (fold.h: %XX escapes and HTML character
 * references decoded, NFKC with case folding, digits of any script to
 * ASCII, zero-width characters gone, traditional Chinese to simplified,
 * invalid UTF-8 replaced), so every pattern below matches in
 * any spelling, and the result is that folded text with each match
 * replaced by a typed placeholder:
 *   <URL>    anything with a scheme (userinfo included), www. addresses, and
 *            scheme-less host/path or host?query ("example.com/login?u=1",
 *            IDN hosts too)
 *   <EMAIL>  local@domain.tld (a non-ASCII local part too), and
 *            local@provider without its TLD (zhangsan@qq, @163, @gmail),
 *            with "@" also written [at] (at) {at} <at> [@] (@), " at ",
 *            艾特 or #, and "." also
 *            written [dot] (dot) " dot " 点 。, spaces around either allowed
 *   <IP>     IPv4 dotted quads (0-255 each) and IPv6 addresses (inet_pton),
 *            with a :port or a [v6]:port, after labels such as "ip:"
 *   <ID>     device and advertising ids: UUIDs (IDFA, GAID), MAC addresses
 *            (aa:bb:.., aa-bb-.., aabb.ccdd.eeff), and runs of 12+ hex digits
 *            mixing digits and letters (0x too)
 *   <CN_ID>  Chinese resident ID: 17 digits + digit/X, grouped or not, with
 *            a valid ISO 7064 MOD 11-2 check character
 *   <CARD>   13-19 digit card numbers passing the Luhn check, grouped by any
 *            separators, with trailing expiry or CVV groups
 *   <PHONE>  Chinese mobiles (1[3-9] + 9 digits, with +86/0086) and
 *            international numbers (+ and 8-15 digits), in any grouping
 *   after a label (QQ, uid, 工号, 电话, 微信号, wx, 抖音号, ...): a number of 5 or
 *            6 digits is <NUM>, a handle with a digit, '_' or '-' (any after a
 *            colon) is <ID>
 *   <NUM>    any other number of 7 or more digits, counted across
 *            separators (space, . , / _ ( ) - + ~ *), and runs of 7 or more
 *            Chinese numerals; an 8-digit calendar date (YYYYMMDD,
 *            YYYY-MM-DD, 1900-2099) is kept, it is not personal
 * Digits are read as one number across runs of at most 3 separators, so
 * "138.0013.8000" and "110105 19870226 0253" are one match each. When in
 * doubt, scrub. Pure after kn_fold_init; no allocation. */
#ifndef KN_SCRUB_H
#define KN_SCRUB_H

#include <stddef.h>

#define KN_SCRUB_MAX 1024 /* output capacity; longer queries are truncated */

struct kn_scrub_counts {
	unsigned url, email, ip, id, cn_id, card, phone, num;
};

/* Writes the scrubbed, folded text of in[0..len) to out (KN_SCRUB_MAX
 * bytes, NUL-terminated valid UTF-8, cut at a character boundary). Returns
 * its length; counts (may be NULL) says what was replaced. */
size_t kn_scrub_query(const char *in, size_t len, char *out, struct kn_scrub_counts *counts);

/* Validators, exposed for tests. */
int kn_luhn_ok(const char *digits, size_t n);
int kn_cn_id_ok(const char *s); /* 18 characters */

#endif
