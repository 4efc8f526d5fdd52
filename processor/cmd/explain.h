/* explain: `kanon policy explain`, what every input field becomes.
 *
 * For each configured schema, every field (nested ones by dotted path) is
 * listed with the role the config gives it and what reaches each output:
 * the de-identified stream, the advertiser aggregates, the dead letters.
 * It is derived from the same config and role table the pipeline runs on,
 * so a privacy reviewer can check a deployment without reading code. */
#ifndef KN_EXPLAIN_H
#define KN_EXPLAIN_H

#include <stdio.h>

#include "config.h"
#include "schema.h"

void kn_policy_explain(const struct kn_config *c, const struct kn_schemas *s, FILE *f);

#endif
