/* policy: the privacy policy's promises, enforced per event.
 *
 * Decided before any identifier is touched (kn_policy_admit):
 *   - consent.analytics false (or missing, unless policy.missing_consent_allows):
 *     the event is dropped from every output, counted;
 *   - consent.ads_personalization false: dropped from the de-identified stream
 *     unless policy.ads_optout_in_deid; never in advertiser aggregates;
 *   - minors: age at event time = event year - birth_year. Only the year is
 *     known, so the whole year of the 18th birthday still counts as minor
 *     (a person is an adult once event year - birth year > minor_age).
 *     Unknown age is adult unless policy.unknown_age_is_minor. A minor's
 *     event reaches no output (counted as dropped: minor); with
 *     policy.minors_in_deid it reaches the de-identified stream without
 *     identifiers, location or IP prefix. Minors never reach aggregates.
 * Applied to the generalized result (kn_policy_finish):
 *   - no location consent: no geo cell and no IP prefix (kanon has no
 *     country mapping, and anything finer than country is forbidden);
 *   - sensitive categories (lexicon: race/ethnicity, religion, health, sex
 *     life, political views, criminal records, financial hardship; Chinese
 *     and English): a match in the query or in a URL's host or path removes
 *     the query and every URL domain, and sets the category "withheld".
 *     Texts and terms are compared folded (fold.h): any Unicode spelling,
 *     traditional or simplified Chinese, percent- and punycode-encoded
 *     URLs, separators between the characters; English terms match at the
 *     start of a word;
 *   - search text is scrubbed of PII (scrub.h), then mapped to a category
 *     from the taxonomy, placeholders left out; the scrubbed text itself is
 *     emitted only with policy.emit_scrubbed_query. */
#ifndef KN_POLICY_H
#define KN_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "event.h"
#include "scrub.h"

enum kn_drop_reason {
	KN_DROP_NO_ANALYTICS,
	KN_DROP_NO_ADS,
	KN_DROP_ERASED,	     /* a deletion request names one of its identifiers */
	KN_DROP_KEY_RETIRED, /* older than key retention: its epoch keys are destroyed */
	KN_DROP_MINOR,	     /* a minor's event (unless policy.minors_in_deid) */
	KN_DROP_REASONS
};
const char *kn_drop_reason_name(enum kn_drop_reason r);

struct kn_policy_stats {
	uint64_t dropped[KN_DROP_REASONS];
	uint64_t minors, sensitive, no_location_consent;
	struct kn_scrub_counts scrubbed; /* totals over all queries */
};

struct kn_policy;

/* Loads the lexicon and the taxonomy (files, or the built-in ones).
 * Returns 0 or a negative errno with errstr naming the file and line. */
int kn_policy_new(const struct kn_config *c, struct kn_policy **out, char *errstr,
		  size_t errstr_size);
void kn_policy_destroy(struct kn_policy *p);

/* 0: the event goes on (*minor set when it is a minor's); -1: dropped
 * with *why. */
int kn_policy_admit(struct kn_policy *p, const struct kn_event *ev, bool *minor,
		    enum kn_drop_reason *why);
/* Applies the output-side rules to a generalized d. */
void kn_policy_finish(struct kn_policy *p, const struct kn_event *ev, struct kn_deid *d);

const struct kn_policy_stats *kn_policy_stats(const struct kn_policy *p);
/* to += from, counter by counter. */
void kn_policy_stats_add(struct kn_policy_stats *to, const struct kn_policy_stats *from);

/* The category of a (scrubbed) query, "withheld" for sensitive text,
 * "other" when nothing matches; for tests and `policy explain`. */
const char *kn_policy_categorize(const struct kn_policy *p, const char *text, size_t len);
/* The sensitive category a text matches, or NULL. */
const char *kn_policy_sensitive(const struct kn_policy *p, const char *text, size_t len);

#endif
