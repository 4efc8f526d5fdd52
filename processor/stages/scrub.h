/* scrub: free-text PII out of search queries, before any other use.
 *
 * The query is folded first (fold.h: %XX escapes and HTML character
 * references decoded, NFKC with case folding, digits of any script and
 * dress to ASCII, zero-width characters gone, traditional Chinese to
 * simplified, invalid UTF-8 replaced), so every pattern below matches in
 * any spelling, and the result is that folded text with each match
 * replaced by a typed placeholder:
 *   <URL>    anything with a scheme (userinfo included), www. addresses, and
 *            scheme-less host/path or host?query ("example.com/login?u=1",
 *            IDN hosts too), what a browser opens ("http:\\host"), and bare
 *            hosts with a label before their registered name
 *            ("zhangsan.github.io"; url.h) but for a few service labels
 *   <EMAIL>  local@domain.tld (a non-ASCII local part too), local@provider
 *            without its TLD (zhangsan@qq, @163), local@IPv4, user:pw@host;
 *            "@" also written [at] (at) {at} <at> _at_ [@] (@), " at ", 艾特,
 *            圈 or #, "." also [dot] (dot) _dot_ " dot " 点 。, spaces around
 *            either
 *   <IP>     IPv4 dotted quads (0-255 each) and IPv6 addresses (inet_pton),
 *            with a :port or a [v6]:port, after labels such as "ip:"
 *   <ID>     device and advertising ids: UUIDs (IDFA, GAID; glued to a word
 *            too), MAC addresses (aa:bb:.., aa-bb-.., aabb.ccdd.eeff), runs
 *            of 12+ hex digits mixing digits and letters (0x too, or after a
 *            label's letters); tokens of 20+ letters and digits with 4+ of
 *            each (API keys, JWT segments); @handles with a digit or '_';
 *            a user's name as a directory (/home/zhangsan, c:\users\张三);
 *            Chinese licence plates (京A12345, 粤B·D12345) and passports
 *            (E/G + 8 digits)
 *   <CN_ID>  Chinese resident ID: 17 digits + digit/X, grouped or not, with
 *            a valid ISO 7064 MOD 11-2 check character
 *   <CARD>   13-19 digit card numbers passing the Luhn check, grouped by any
 *            separators, with trailing expiry or CVV groups
 *   <PHONE>  Chinese mobiles (1[3-9] + 9 digits, with +86/0086) and
 *            international numbers (+ and 8-15 digits), in any grouping;
 *            the three also with letters for digits (O 0, l I | 1), when
 *            the number then passes its check: "l38OO138OOO"
 *   after a label (QQ, uid, 工号, 电话; 微信号, wx, 抖音号; 密码, token, pin;
 *            cvv, 有效期; 出生日期, born, ...), past fillers (号码 是 id is : =):
 *            an account number of 5+ digits (a date's shape too), a phone's
 *            date-shaped 8 digits or a code of 3-6 is <NUM>; a handle with a
 *            digit, '_' or '-' (any after a colon) or a secret is <ID>; a date
 *            of birth with its day, in any form, is <NUM>
 *   <NUM>    any other number of 7 or more digits, counted across
 *            separators, and runs of 7 or more Chinese numerals; house,
 *            building and room numbers (路88号, 3号楼, 1201室, 221b baker
 *            st); an 8-digit calendar date (YYYYMMDD, YYYY-MM-DD, 1900-2099)
 *            is kept, it is not personal
 * Digits are read as one number across separator runs of up to 32 bytes:
 * punctuation and spaces of any script, letters written as dashes (ー 丨 ㅡ
 * ㄧ ˉ 点 杠 转), spelled-out dots and HTML tags, so "138.0013.8000",
 * "138丨0013丨8000" and "110105 19870226 0253" are one match each. When in
 * doubt, scrub. Pure after kn_fold_init; no allocation. */
#ifndef KN_SCRUB_H
#define KN_SCRUB_H

#include <stddef.h>

#define KN_SCRUB_MAX 1024 /* output capacity; longer queries are truncated */

struct kn_scrub_counts {
	unsigned url, email, ip, id, cn_id, card, phone, num;
};

/* Writes the scrubbed, folded text of in[0..len) to out (KN_SCRUB_MAX
 * bytes, NUL-terminated valid UTF-8 without control characters (C0, DEL,
 * C1), which become spaces; cut at a character boundary). Returns
 * its length; counts (may be NULL) says what was replaced. */
size_t kn_scrub_query(const char *in, size_t len, char *out, struct kn_scrub_counts *counts);

/* Validators, exposed for tests. */
int kn_luhn_ok(const char *digits, size_t n);
int kn_cn_id_ok(const char *s); /* 18 characters */

#endif
