/* erasure: deletion requests, honoured for every future event.
 *
 * Requests arrive on erasure.requests_topic: key = identifier kind (user,
 * device, phone, email, cookie), value = the identifier as the person gave
 * it (or no key and "kind:identifier"). kanon normalizes it and keeps only
 * its erasure fingerprint, PRF(K_erase, kind || 0 || canonical form), where
 * K_erase is derived from the master key and never rotates (an erased person
 * stays erased across key epochs). Fingerprints go to erasure.state_topic, a
 * compacted topic (key = fingerprint) that kanon creates if missing; every
 * instance reads all of it at start-up and follows it while running, so
 * every instance and every restart sees every erasure. At start-up every
 * instance also reads the requests not served yet (from the request
 * group's committed offsets to the end; taking in, not serving, what it
 * finds), so that they hold from the first record.
 *
 * An event any of whose identifiers is erased is dropped from every output
 * (counted as "erased"). The state topic holds no raw identifier; it is the
 * one place a stable keyed hash of an identifier is kept, and only for people
 * who asked to be forgotten. Requests are consumed at-least-once by group
 * "<kafka.group_id>-erasure": a state record is durable before the request's
 * offset is committed. */
#ifndef KN_ERASURE_H
#define KN_ERASURE_H

#include <stdbool.h>

#include "config.h"
#include "event.h"
#include "keys.h"
#include "normalize.h"

struct kn_erasure;

struct kn_erasure_stats {
	uint64_t erased_people; /* fingerprints known */
	uint64_t requests, bad_requests;
};

/* Connects, creates the topics if needed, loads the whole state topic and
 * the requests still on the requests topic.
 * Borrows c and keys. Returns 0 or a negative errno with errstr set. */
int kn_erasure_new(const struct kn_config *c, struct kn_keys *keys, struct kn_erasure **out,
		   char *errstr, size_t errstr_size);
void kn_erasure_destroy(struct kn_erasure *e);

/* Serves new requests and new state records without blocking. Returns 0,
 * or -EIO once a state record could not be written (kn_erasure_error says
 * why): the run must stop, and the requests not committed are read again
 * by the next run. */
int kn_erasure_poll(struct kn_erasure *e);
const char *kn_erasure_error(const struct kn_erasure *e);

/* True when any identifier of ev belongs to an erased person. */
bool kn_erasure_match(struct kn_erasure *e, const struct kn_event *ev,
		      const struct kn_norm_opts *norm);

const struct kn_erasure_stats *kn_erasure_stats(const struct kn_erasure *e);

/* Fingerprint of an identifier (for tests): 0 or -EINVAL if it does not
 * normalize. */
int kn_erasure_fingerprint(struct kn_keys *keys, enum kn_id_kind kind, const char *id, size_t len,
			   const struct kn_norm_opts *norm, uint8_t out[KN_PRF_BYTES]);

#endif
