/* keys: the key chain, per-epoch per-kind derived keys, and the keyed PRF.
 *
 * A pseudonym is PRF(K[epoch][domain], canonical identifier), 128 bits.
 * Epoch keys form a forward ratchet, K_{e+1} = BLAKE2b(K_e), and the key
 * file stores only the key of its first usable epoch: retiring an epoch
 * (kn_keys_retire, `kanon keys retire`, keys.retention) moves that first
 * epoch forward and so destroys every earlier epoch key: pseudonyms of those
 * epochs can no longer be produced or linked (crypto-shredding).
 * K[epoch][domain] = BLAKE2b-KDF(K_epoch, subkey_id = epoch, context =
 * domain) (libsodium crypto_kdf), so keys of different epochs and identifier
 * kinds are independent and a pseudonym links neither across epochs nor
 * kinds. Erasure fingerprints use a separate secret that never rotates.
 * There is no unkeyed mode.
 *
 * PRFs: siphash   SipHash-2-4, 128-bit output (crypto_shorthash_siphashx24)
 *       hmac-sha256 HMAC-SHA-256 truncated to 128 bits; the inner/outer
 *                 states are computed once per derived key
 *       xxh3      XXH3-128 with a 192-byte derived secret: fast, but NOT a
 *                 cryptographic PRF (use only where speed beats the threat)
 *
 * Key material lives in sodium_malloc() memory: guard pages, mlock()ed and
 * excluded from core dumps (MADV_DONTDUMP). Nothing here logs or prints a
 * key; errors name the file, never its content.
 *
 * The key file's numbers are checked, not trusted: its first epoch must not
 * lie in the future (a file that would withhold every event as "retired" is
 * refused at load, not discovered by an empty output), and retiring is
 * bounded by the current epoch, so the ratchet walk is bounded too (at most
 * now / keys.epoch steps, ~275 ns each: 20 k steps for 1-day epochs, 8 s for
 * the shortest, 1-minute, epochs). */
#ifndef KN_KEYS_H
#define KN_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include <stdbool.h>

#define KN_MASTER_KEY_BYTES 32
#define KN_PRF_BYTES	    16

enum kn_prf {
	KN_PRF_SIPHASH,
	KN_PRF_HMAC_SHA256,
	KN_PRF_XXH3
};

/* Key domains: the identifier kinds (enum kn_id_kind), then these. */
#define KN_DOMAIN_EVENT	 5 /* event ids -> event_key */
#define KN_DOMAIN_LINKED 6 /* all identifier kinds, when link_kinds is on */
#define KN_DOMAIN_ERASE	 7 /* erasure fingerprints: epoch 0, never rotated */
#define KN_DOMAINS	 8

/* The clock slack allowed between the machine that retired an epoch and
 * this one: a first epoch up to this far ahead of our clock is accepted. */
#define KN_KEYS_CLOCK_SKEW_MS (5 * 60 * 1000LL)

int kn_prf_parse(const char *name, enum kn_prf *out); /* 0 or -EINVAL */

/* Key epoch of a time: floor(ts_ms / epoch_ms); 0 when epoch_ms is 0 (one
 * epoch for all time) or ts_ms is negative. The one definition of "epoch". */
int64_t kn_keys_epoch_of(int64_t epoch_ms, int64_t ts_ms);
const char *kn_prf_name(enum kn_prf prf);

struct kn_keys;

/* Loads a key file written by kn_keys_generate. path may be a symlink (a
 * Kubernetes Secret volume is one): its target must be a regular file owned
 * by this process's user with no group or other access (0600 or 0400);
 * anything else is refused at once without reading it (-EPERM for owner and
 * mode, -EINVAL for FIFOs, devices, directories; errstr says how to fix it).
 * The file must hold exactly one chain line and one erasure line (comments
 * and blank lines aside), and its first epoch must not be later than the
 * epoch of now_ms + KN_KEYS_CLOCK_SKEW_MS under epoch_ms (-ERANGE).
 * Returns 0 or a negative errno. */
int kn_keys_load(const char *path, enum kn_prf prf, int64_t epoch_ms, int64_t now_ms,
		 struct kn_keys **out, char *errstr, size_t errstr_size);
/* For tests and the demo: a chain starting at epoch 0 from a key held by the
 * caller. */
int kn_keys_from_master(const uint8_t master[KN_MASTER_KEY_BYTES], enum kn_prf prf,
			struct kn_keys **out);
void kn_keys_destroy(struct kn_keys *k);

/* Writes a new random key chain (first epoch 0) and erasure secret to path
 * with mode 0600. Never overwrites an existing file (-EEXIST). */
int kn_keys_generate(const char *path, char *errstr, size_t errstr_size);

/* Destroys every epoch key before first_epoch: rewrites the file (the
 * symlink's target when path is one) atomically with the chain advanced (a
 * no-op if it already starts there or later), then brings k (may be NULL) up
 * to the file. first_epoch may be at most the current epoch of now_ms under
 * epoch_ms: retiring the current epoch would withhold every new event, and
 * the bound keeps the ratchet walk short (-ERANGE otherwise). Returns 0 or a
 * negative errno (-EROFS and friends when the file cannot be rewritten). */
int kn_keys_retire(const char *path, int64_t first_epoch, int64_t epoch_ms, int64_t now_ms,
		   struct kn_keys *k, char *errstr, size_t errstr_size);

#define KN_KEYS_IN_MEMORY    1 /* kn_keys_maintain: retired here, the file is read-only */
#define KN_KEYS_NOT_FOLLOWED 2 /* kn_keys_maintain: the file now starts in the future */

/* Applies key retention and follows retirements made by other processes:
 * retires every epoch that ended more than retention_ms before now_ms (when
 * epoch_ms and retention_ms are set), then re-reads path. When the file
 * cannot be rewritten (a read-only mount such as a Kubernetes Secret) the
 * keys are still destroyed in this process and KN_KEYS_IN_MEMORY is returned
 * with errstr saying that the file itself still holds them. A file that now
 * starts after the current epoch is not followed (KN_KEYS_NOT_FOLLOWED,
 * errstr says so): the process keeps its keys. Returns 0, one of those two,
 * or a negative errno (errstr set). */
int kn_keys_maintain(struct kn_keys *k, const char *path, int64_t epoch_ms, int64_t retention_ms,
		     int64_t now_ms, char *errstr, size_t errstr_size);
/* The first epoch whose keys still exist. */
int64_t kn_keys_first_epoch(const struct kn_keys *k);

/* The seed of the noise stream of one released aggregate group: keyed
 * BLAKE2b of label under the noise key, which is derived from the erasure
 * secret (crypto_kdf, context "kn_noise"): it never rotates, so a replay of a
 * window, even after its pseudonym epochs were retired, draws the same noise
 * and never hands out a second sample. The caller wipes seed after use. */
#define KN_NOISE_SEED_BYTES 32
void kn_keys_noise_seed(const struct kn_keys *k, const void *label, size_t len,
			uint8_t seed[KN_NOISE_SEED_BYTES]);

/* out = PRF(K[epoch][domain], in). epoch >= 0, domain < KN_DOMAINS. Derived
 * keys are cached (8 epochs per domain), so the common case costs one PRF
 * call. Returns 0, or -ENOKEY for a retired epoch. Never allocates. */
int kn_keys_prf(struct kn_keys *k, int64_t epoch, int domain, const void *in, size_t len,
		uint8_t out[KN_PRF_BYTES]);

#endif
