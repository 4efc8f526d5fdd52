/* generalize: turn quasi-identifiers into coarse values.
 *
 *   GPS        -> geohash cell (precision 1..12 characters; 5 = ~4.9 km)
 *   IP         -> network prefix (/24 IPv4, /48 IPv6 by default), CIDR text;
 *                 IPv4-mapped IPv6 addresses are treated as IPv4
 *   timestamp  -> start of its bucket (floor, UTC)
 *   user agent -> browser family + major version + OS family + major
 *   OS string  -> family + major ("Android 13.1" -> Android, 13)
 *   URL        -> the host's registrable domain (eTLD+1 by the ICANN part
 *                 of the Public Suffix List) as IDNA A-labels; a host that
 *                 is an IP in any notation, or spells one out, becomes
 *                 "ip-literal"; a domain whose own label carries an
 *                 identifier, or that IDNA refuses, becomes "other"
 *   app version -> "major" or "major.minor", each at most 3 digits, or
 *                 "other"; browser and OS majors at most 3 digits, or -1
 * Every string this module emits is from a closed vocabulary or has a
 * checked shape, and is ASCII. Pure functions over caller buffers; only
 * the URL domain allocates (IDNA), and frees before returning. */
#ifndef KN_GENERALIZE_H
#define KN_GENERALIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event.h"

/* Writes the geohash of (lat, lon) with precision characters plus NUL to
 * out (precision + 1 bytes). Returns 0, or -EINVAL if lat/lon is out of
 * range or not finite, or precision not in 1..KN_GEOHASH_MAX. */
int kn_geohash(double lat, double lon, int precision, char *out);

/* Parses ip[0..len) (IPv4 dotted quad or IPv6 text) and writes
 * "network/bits" to out (KN_PREFIX_MAX bytes). Returns 0 or -EINVAL. */
int kn_ip_prefix(const char *ip, size_t len, int v4_bits, int v6_bits, char *out);

/* Start of the bucket holding ts (floor division, correct for ts < 0). */
int64_t kn_time_bucket(int64_t ts_ms, int64_t bucket_ms);

struct kn_agent {
	char browser[KN_FAMILY_MAX]; /* "Chrome", ..., "other" */
	int32_t browser_major;	     /* -1 unknown */
	char os[KN_FAMILY_MAX];	     /* "Android", ..., "other" */
	int32_t os_major;	     /* -1 unknown */
};

void kn_ua_parse(const char *ua, size_t len, struct kn_agent *out);

/* A bounded cache of kn_ua_parse results: KN_UA_CACHE_SLOTS direct-mapped
 * slots keyed by the 128-bit XXH3 of the string, a miss parsing and taking
 * the slot. Fixed memory, allocated once; a hit costs one hash and one
 * copy. One per pipeline: not thread-safe. */
#define KN_UA_CACHE_SLOTS 4096
struct kn_ua_cache;
struct kn_ua_cache *kn_ua_cache_new(void); /* NULL: out of memory */
void kn_ua_cache_destroy(struct kn_ua_cache *c);
void kn_ua_parse_cached(struct kn_ua_cache *c, const char *ua, size_t len, struct kn_agent *out);
/* Parses an OS name such as "Android 13", "iOS 17.1", "HarmonyOS 4.0". */
void kn_os_parse(const char *os, size_t len, char family[KN_FAMILY_MAX], int32_t *major);
/* "5.2.13-beta" -> "5.2", "v6" -> "6"; "other" when it does not start
 * with a version of that shape; "" for an empty input. */
void kn_app_version(const char *v, size_t len, char out[KN_VERSION_MAX]);

/* Writes the lower-cased host of url[0..len) to out (KN_HOST_MAX + 1 bytes).
 * The host is found as browsers find it (url.h: "http:\\host" and "http:/host"
 * too), and bare "host/path" is read as well. Returns 0, or
 * -EINVAL when there is no valid DNS host (empty, bad characters, too long). */
int kn_url_host(const char *url, size_t len, char *out);
/* What a URL's host may tell (see the top): writes its registrable domain,
 * "ip-literal" or "other" to out (KN_HOST_MAX + 1 bytes). Returns 0, or
 * -EINVAL when there is no host at all (the field stays absent). */
int kn_url_domain(const char *url, size_t len, char *out);

struct kn_gen_opts {
	int geohash_precision;
	int ipv4_prefix, ipv6_prefix;
	int64_t time_bucket_ms;
};

/* Fills every generalized field of d from ev (validated). Location is kept
 * only when consent_location is present and true. Returns 0, or -EINVAL when
 * the IP field holds no address (the caller dead-letters the record).
 * *geo_withheld is set when coordinates were dropped for lack of consent.
 * ua_cache (may be NULL) serves user-agent parses. */
int kn_generalize_event(const struct kn_gen_opts *o, struct kn_ua_cache *ua_cache,
			const struct kn_event *ev, struct kn_deid *d, bool *geo_withheld);

#endif
