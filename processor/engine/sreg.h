/* sreg: how a run uses the Schema Registry (io/registry.h).
 *
 *   at start-up   kanon's output schemas (DeidEvent, AdAggregate,
 *                 AggWindowStats) are checked for compatibility with their
 *                 subjects (<topic>-value, Confluent's TopicNameStrategy) and
 *                 registered, or only looked up: the ids found are the
 *                 framing ids its records carry from then on.
 *   while running an input record whose framing id is new is held until the
 *                 registry says what the id is (kn_sreg_learn): the writer
 *                 schema is learned (core/schema.h), or, when the registry
 *                 answers that it lacks the id, the id is learned as unusable
 *                 and its records become dead letters with a reason. A
 *                 registry that does not answer holds the records: nothing is
 *                 dead-lettered or skipped because the registry is away.
 *
 * Without schema_registry.url none of this runs: the static ids of the
 * config are the whole story. */
#ifndef KN_SREG_H
#define KN_SREG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "registry.h"
#include "schema.h"

/* The client for c's registry; *out stays NULL without one. */
int kn_sreg_open(const struct kn_config *c, struct kn_registry **out, char *errstr,
		 size_t errstr_size);

/* The output ids for the outputs role writes (enum kn_run_role), written
 * into ids (a copy of c that the run then uses). An unreachable registry is
 * asked again until schema_registry.startup_wait; a stop ends the wait with
 * -ECANCELED. Returns 0, -EPERM (an output schema is incompatible with its
 * subject), -ENOENT (lookup only, and not registered), or another error of
 * registry.h; errstr says which subject and why. dry: asks once, registers
 * nothing, leaves ids alone (kanon check). */
int kn_sreg_outputs(struct kn_registry *r, const struct kn_config *c, int role, bool dry,
		    struct kn_config *ids, char *errstr, size_t errstr_size);

/* `kanon check --kafka`: the registry answers, and the outputs of c's role
 * would be accepted (dry kn_sreg_outputs). 0 without a registry. */
int kn_sreg_check(const struct kn_config *c, char *errstr, size_t errstr_size);

/* An id the registry lacks is asked about again this much later: its
 * records in between are dead letters ("not in registry"). */
#define KN_SREG_RETRY_MS 60000
/* ... but first once more after this pause, in case the registry that
 * answered lags behind the one the producer registered with. */
#define KN_SREG_NOT_FOUND_GRACE_MS 500

/* Tells s what framing id is, asking the registry once. Returns 0 (s now
 * knows id, usable or not; the log says why not), -ENOENT (the registry
 * says it has no such id: the caller decides when to kn_schemas_refuse),
 * -EAGAIN (no usable answer, or the credentials were refused: ask again
 * later; errstr says what happened), or -ENOMEM. */
int kn_sreg_learn(struct kn_registry *r, struct kn_schemas *s, int32_t id, char *errstr,
		  size_t errstr_size);

#endif
