/* scrub: free-text PII out of search queries, before any other use.
 *
 * Each match is replaced by a typed placeholder:
 *   <URL>    http(s)/ftp URLs and www. addresses that carry a query string
 *   <EMAIL>  local@domain.tld
 *   <IP>     IPv4 dotted quads (0-255 each) and IPv6 addresses (inet_pton)
 *   <CN_ID>  Chinese resident ID: 17 digits + digit/X with a valid
 *            ISO 7064 MOD 11-2 check character
 *   <CARD>   13-19 digit bank card numbers (optionally grouped by spaces or
 *            dashes) that pass the Luhn check
 *   <PHONE>  Chinese mobiles (1[3-9] + 9 digits, optionally +86/0086 and
 *            spaced 3-4-4) and international E.164 (+ and 8-15 digits)
 *   <NUM>    any other run of 7 or more digits, except an 8-digit calendar
 *            date (YYYYMMDD, 1900-2099), which is not personal
 * Matches are whole tokens: a digit run is never split, so a 16-digit
 * number failing Luhn is <NUM>, not a card plus digits. Pure, no allocation. */
#ifndef KN_SCRUB_H
#define KN_SCRUB_H

#include <stddef.h>

#define KN_SCRUB_MAX 1024 /* output capacity; longer queries are truncated */

struct kn_scrub_counts {
	unsigned url, email, ip, cn_id, card, phone, num;
};

/* Writes the scrubbed text of in[0..len) to out (KN_SCRUB_MAX bytes, NUL-
 * terminated, cut at a UTF-8 boundary). Returns its length; counts (may be
 * NULL) says what was replaced. */
size_t kn_scrub_query(const char *in, size_t len, char *out, struct kn_scrub_counts *counts);

/* Validators, exposed for tests. */
int kn_luhn_ok(const char *digits, size_t n);
int kn_cn_id_ok(const char *s); /* 18 characters */

#endif
