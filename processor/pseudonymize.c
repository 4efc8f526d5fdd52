#include "pseudonymize.h"

#include <errno.h>

int64_t kn_key_epoch(const struct kn_pseudo_opts *o, int64_t ts_ms)
{
	return kn_keys_epoch_of(o->epoch_ms, ts_ms);
}

void kn_pid_hex(const uint8_t in[KN_PRF_BYTES], char out[KN_PID_HEX_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";

	for (int i = 0; i < KN_PRF_BYTES; i++) {
		out[2 * i] = hex[in[i] >> 4];
		out[2 * i + 1] = hex[in[i] & 15];
	}
	out[KN_PID_HEX_LEN] = '\0';
}

int kn_pseudonymize(const struct kn_pseudo_opts *o, struct kn_keys *k, const struct kn_event *ev,
		    struct kn_deid *d, bool identifiers, uint64_t invalid[KN_ID_KINDS])
{
	const struct kn_val *id = &ev->role[KN_ROLE_EVENT_ID];
	uint8_t mac[KN_PRF_BYTES];
	char canon[KN_ID_MAX];

	d->key_epoch = kn_key_epoch(o, ev->role[KN_ROLE_TIMESTAMP].l);
	if (kn_keys_prf(k, d->key_epoch, KN_DOMAIN_EVENT, id->s.p, id->s.len, mac))
		return -ENOKEY; /* past retention: the epoch's keys are destroyed */
	kn_pid_hex(mac, d->event_key);
	d->has_event_key = true;
	for (int kind = 0; kind < KN_ID_KINDS; kind++) {
		const struct kn_val *v = &ev->role[KN_ROLE_ID_FIRST + kind];
		int n;
		d->has_pid[kind] = false;
		if (!identifiers || v->type != KN_VAL_STR)
			continue;
		n = kn_normalize((enum kn_id_kind)kind, v->s.p, v->s.len, canon, &o->norm);
		if (n < 0) {
			invalid[kind]++;
			continue;
		}
		kn_keys_prf(k, d->key_epoch, o->link_kinds ? KN_DOMAIN_LINKED : kind, canon,
			    (size_t)n, mac);
		kn_pid_hex(mac, d->pid[kind]);
		d->has_pid[kind] = true;
	}
	return 0;
}
