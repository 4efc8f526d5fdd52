#include "pseudonymize.h"

#include <errno.h>
#include <string.h>

int64_t kn_key_epoch(const struct kn_pseudo_opts *o, int64_t ts_ms)
{
	return kn_keys_epoch_of(o->epoch_ms, ts_ms);
}

/* Every byte's two hex digits: one load per byte instead of two. */
/* clang-format off */
static const char hex_pairs[513] =
	"000102030405060708090a0b0c0d0e0f"
	"101112131415161718191a1b1c1d1e1f"
	"202122232425262728292a2b2c2d2e2f"
	"303132333435363738393a3b3c3d3e3f"
	"404142434445464748494a4b4c4d4e4f"
	"505152535455565758595a5b5c5d5e5f"
	"606162636465666768696a6b6c6d6e6f"
	"707172737475767778797a7b7c7d7e7f"
	"808182838485868788898a8b8c8d8e8f"
	"909192939495969798999a9b9c9d9e9f"
	"a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"
	"b0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
	"c0c1c2c3c4c5c6c7c8c9cacbcccdcecf"
	"d0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
	"e0e1e2e3e4e5e6e7e8e9eaebecedeeef"
	"f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";
/* clang-format on */

void kn_pid_hex(const uint8_t in[KN_PRF_BYTES], char out[KN_PID_HEX_LEN + 1])
{
	for (int i = 0; i < KN_PRF_BYTES; i++)
		memcpy(out + 2 * i, hex_pairs + 2 * in[i], 2);
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
