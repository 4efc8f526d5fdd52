/* Key chain.
 *
 * The key file holds a chain key for its first usable epoch F and a separate
 * erasure secret:
 *     kanon-chain-v1 <F> <64 hex>      K_F
 *     kanon-erase-v1 <64 hex>          K_erase (never rotates)
 * Epoch keys ratchet forward: K_{e+1} = BLAKE2b-256(key = K_e, "kanon-ratchet").
 * K_e for e >= F is F's key ratcheted e - F times; for e < F it cannot be
 * computed from what is stored, so moving F forward (kn_keys_retire)
 * destroys every earlier epoch key: crypto-shredding. Per-kind keys are then
 * K[e][domain] = BLAKE2b-KDF(K_e, subkey_id = e, context = domain).
 *
 * Invariant: base <= cursor; cursor_key = K_cursor (the last chain state
 * computed, so epochs that only grow cost one ratchet each). */
#include "keys.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "kn_alloc.h"

#define CHAIN_MAGIC "kanon-chain-v1"
#define ERASE_MAGIC "kanon-erase-v1"
#define CACHE_WAYS  8 /* epochs cached per domain (direct-mapped by epoch) */
#define XXH_SECRET  192
#define KEY_BYTES   32

struct slot {
	int64_t epoch; /* -1: empty */
	union {
		uint8_t sip[crypto_shorthash_siphashx24_KEYBYTES];
		crypto_auth_hmacsha256_state hmac; /* inner+outer state, key absorbed */
		uint8_t xxh[XXH_SECRET];
	};
};

/* Everything secret, in one sodium_malloc() region. */
struct secret {
	uint8_t base_key[KEY_BYTES];
	uint8_t cursor_key[KEY_BYTES];
	uint8_t erase[KEY_BYTES];
	struct slot cache[KN_DOMAINS][CACHE_WAYS];
};

struct kn_keys {
	enum kn_prf prf;
	int64_t base, cursor;
	struct secret *s;
};

/* crypto_kdf contexts are exactly 8 bytes; one per domain. */
static const char kdf_ctx[KN_DOMAINS][crypto_kdf_CONTEXTBYTES + 1] = {
	"kn_user_", "kn_devic", "kn_phone", "kn_email",
	"kn_cooki", "kn_event", "kn_linkd", "kn_erase"};

int kn_prf_parse(const char *name, enum kn_prf *out)
{
	if (!strcmp(name, "siphash"))
		*out = KN_PRF_SIPHASH;
	else if (!strcmp(name, "hmac-sha256"))
		*out = KN_PRF_HMAC_SHA256;
	else if (!strcmp(name, "xxh3"))
		*out = KN_PRF_XXH3;
	else
		return -EINVAL;
	return 0;
}

const char *kn_prf_name(enum kn_prf prf)
{
	static const char *n[] = {"siphash", "hmac-sha256", "xxh3"};

	return n[prf];
}

static void ratchet(uint8_t key[KEY_BYTES])
{
	static const char label[] = "kanon-ratchet";

	crypto_generichash(key, KEY_BYTES, (const uint8_t *)label, sizeof(label) - 1, key,
			   KEY_BYTES);
}

static void clear_cache(struct kn_keys *k, int64_t below)
{
	for (int d = 0; d < KN_DOMAINS; d++)
		for (int w = 0; w < CACHE_WAYS; w++)
			if (k->s->cache[d][w].epoch < below) {
				sodium_memzero(&k->s->cache[d][w], sizeof(k->s->cache[d][w]));
				k->s->cache[d][w].epoch = -1;
			}
}

static int keys_new(int64_t base, const uint8_t chain[KEY_BYTES], const uint8_t erase[KEY_BYTES],
		    enum kn_prf prf, struct kn_keys **out)
{
	struct kn_keys *k;

	*out = NULL;
	if (sodium_init() < 0)
		return -EIO;
	k = kn_calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	k->s = sodium_malloc(sizeof(*k->s));
	if (!k->s) {
		kn_free(k);
		return -ENOMEM;
	}
	k->prf = prf;
	k->base = k->cursor = base;
	memcpy(k->s->base_key, chain, KEY_BYTES);
	memcpy(k->s->cursor_key, chain, KEY_BYTES);
	memcpy(k->s->erase, erase, KEY_BYTES);
	for (int d = 0; d < KN_DOMAINS; d++)
		for (int w = 0; w < CACHE_WAYS; w++)
			k->s->cache[d][w].epoch = -1;
	*out = k;
	return 0;
}

int kn_keys_from_master(const uint8_t master[KN_MASTER_KEY_BYTES], enum kn_prf prf,
			struct kn_keys **out)
{
	uint8_t erase[KEY_BYTES];
	static const char label[] = "kanon-erase";

	if (sodium_init() < 0)
		return -EIO;
	crypto_generichash(erase, KEY_BYTES, (const uint8_t *)label, sizeof(label) - 1, master,
			   KN_MASTER_KEY_BYTES);
	int err = keys_new(0, master, erase, prf, out);
	sodium_memzero(erase, sizeof(erase));
	return err;
}

void kn_keys_destroy(struct kn_keys *k)
{
	if (!k)
		return;
	sodium_free(k->s); /* zeroes before unmapping */
	kn_free(k);
}

int64_t kn_keys_first_epoch(const struct kn_keys *k)
{
	return k->base;
}

/* ---- the key file ---- */

struct keyfile {
	int64_t base;
	uint8_t *chain; /* sodium_malloc'ed */
	uint8_t *erase;
};

static int parse_hex(const char *hex, size_t len, uint8_t out[KEY_BYTES])
{
	size_t n = 0;

	return sodium_hex2bin(out, KEY_BYTES, hex, len, NULL, &n, NULL) || n != KEY_BYTES ? -EINVAL
											  : 0;
}

static int parse_keyfile(const char *text, struct keyfile *kf)
{
	int found = 0;

	for (const char *line = text; line && *line;) {
		const char *eol = strchr(line, '\n');
		size_t len = eol ? (size_t)(eol - line) : strlen(line), m;
		long long base;
		int used;
		if (len > (m = strlen(CHAIN_MAGIC)) + 1 && !strncmp(line, CHAIN_MAGIC " ", m + 1)) {
			if (sscanf(line + m + 1, "%lld %n", &base, &used) != 1 || base < 0 ||
			    parse_hex(line + m + 1 + used, len - m - 1 - (size_t)used, kf->chain))
				return -EINVAL;
			kf->base = base;
			found |= 1;
		} else if (len > (m = strlen(ERASE_MAGIC)) + 1 &&
			   !strncmp(line, ERASE_MAGIC " ", m + 1)) {
			if (parse_hex(line + m + 1, len - m - 1, kf->erase))
				return -EINVAL;
			found |= 2;
		}
		line = eol ? eol + 1 : NULL;
	}
	return found == 3 ? 0 : -EINVAL;
}

static void keyfile_free(struct keyfile *kf)
{
	sodium_free(kf->chain);
	sodium_free(kf->erase);
}

/* Reads and checks path (regular file, no group/other access). */
static int read_keyfile(const char *path, struct keyfile *kf, char *errstr, size_t errsz)
{
	struct stat st;
	char *text = NULL;
	int fd, err = 0;

	memset(kf, 0, sizeof(*kf));
	if (sodium_init() < 0) {
		snprintf(errstr, errsz, "libsodium failed to initialize");
		return -EIO;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		err = -errno;
		snprintf(errstr, errsz, "key file %s: %s (create one with 'kanon keygen %s')", path,
			 strerror(errno), path);
		return err;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		snprintf(errstr, errsz, "key file %s: not a regular file", path);
		err = -EINVAL;
	} else if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		snprintf(errstr, errsz,
			 "key file %s: group or others have access (mode %04o); refusing to "
			 "use it: run 'chmod 600 %s' and rotate the key if others read it",
			 path, (unsigned)(st.st_mode & 07777), path);
		err = -EPERM;
	} else if (st.st_size > 4096) {
		snprintf(errstr, errsz, "key file %s: too large to be a kanon key", path);
		err = -EINVAL;
	}
	if (!err) {
		text = sodium_malloc((size_t)st.st_size + 1);
		kf->chain = sodium_malloc(KEY_BYTES);
		kf->erase = sodium_malloc(KEY_BYTES);
		if (!text || !kf->chain || !kf->erase) {
			snprintf(errstr, errsz, "out of memory");
			err = -ENOMEM;
		} else if (read(fd, text, (size_t)st.st_size) != st.st_size) {
			snprintf(errstr, errsz, "key file %s: short read", path);
			err = -EIO;
		} else {
			text[st.st_size] = '\0';
			if (parse_keyfile(text, kf)) {
				snprintf(
					errstr, errsz,
					"key file %s: no valid '%s' and '%s' lines (not written by "
					"kanon keygen?)",
					path, CHAIN_MAGIC, ERASE_MAGIC);
				err = -EINVAL;
			}
		}
	}
	sodium_free(text);
	close(fd);
	if (err)
		keyfile_free(kf);
	return err;
}

/* Writes a key file atomically: a 0600 temporary beside it, fsync, rename. */
static int write_keyfile(const char *path, int64_t base, const uint8_t chain[KEY_BYTES],
			 const uint8_t erase[KEY_BYTES], bool exclusive, char *errstr, size_t errsz)
{
	char tmp[4200], *hex = sodium_malloc(2 * KEY_BYTES + 1),
			*hex2 = sodium_malloc(2 * KEY_BYTES + 1);
	int fd, err = 0;

	if (!hex || !hex2) {
		sodium_free(hex);
		sodium_free(hex2);
		return -ENOMEM;
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path);
	fd = mkstemp(tmp);
	if (fd < 0) {
		err = -errno;
		snprintf(errstr, errsz, "%s: %s", tmp, strerror(errno));
		goto out;
	}
	sodium_bin2hex(hex, 2 * KEY_BYTES + 1, chain, KEY_BYTES);
	sodium_bin2hex(hex2, 2 * KEY_BYTES + 1, erase, KEY_BYTES);
	if (fchmod(fd, 0600) ||
	    dprintf(fd,
		    "# kanon key chain: secret, keep mode 0600. Losing it changes every "
		    "pseudonym;\n"
		    "# epochs before %lld are retired (their keys cannot be recomputed).\n"
		    "%s %lld %s\n%s %s\n",
		    (long long)base, CHAIN_MAGIC, (long long)base, hex, ERASE_MAGIC, hex2) < 0 ||
	    fsync(fd)) {
		err = -errno;
		snprintf(errstr, errsz, "%s: %s", tmp, strerror(errno));
	}
	close(fd);
	if (!err && exclusive && link(tmp, path)) { /* never overwrite on keygen */
		err = -errno;
		snprintf(errstr, errsz, "%s: %s%s", path, strerror(errno),
			 errno == EEXIST ? " (kanon never overwrites a key)" : "");
	} else if (!err && !exclusive && rename(tmp, path)) {
		err = -errno;
		snprintf(errstr, errsz, "%s: %s", path, strerror(errno));
	}
	unlink(tmp); /* after link(); a no-op after rename() */
out:
	sodium_free(hex);
	sodium_free(hex2);
	return err;
}

int kn_keys_load(const char *path, enum kn_prf prf, struct kn_keys **out, char *errstr,
		 size_t errstr_size)
{
	struct keyfile kf;
	int err = read_keyfile(path, &kf, errstr, errstr_size);

	*out = NULL;
	if (err)
		return err;
	err = keys_new(kf.base, kf.chain, kf.erase, prf, out);
	if (err)
		snprintf(errstr, errstr_size, "out of memory");
	keyfile_free(&kf);
	return err;
}

int kn_keys_generate(const char *path, char *errstr, size_t errstr_size)
{
	uint8_t *keys = NULL;
	int err;

	if (sodium_init() < 0 || !(keys = sodium_malloc(2 * KEY_BYTES)))
		return -ENOMEM;
	randombytes_buf(keys, 2 * KEY_BYTES);
	err = write_keyfile(path, 0, keys, keys + KEY_BYTES, true, errstr, errstr_size);
	sodium_free(keys);
	return err;
}

int kn_keys_retire(const char *path, int64_t first_epoch, struct kn_keys *k, char *errstr,
		   size_t errstr_size)
{
	struct keyfile kf;
	int err = read_keyfile(path, &kf, errstr, errstr_size);

	if (err)
		return err;
	if (first_epoch > kf.base) {
		for (int64_t e = kf.base; e < first_epoch; e++)
			ratchet(kf.chain);
		err = write_keyfile(path, first_epoch, kf.chain, kf.erase, false, errstr,
				    errstr_size);
		if (!err)
			kf.base = first_epoch;
	}
	/* The process follows the file: another instance may have retired more. */
	if (!err && k && kf.base > k->base) {
		memcpy(k->s->base_key, kf.chain, KEY_BYTES);
		memcpy(k->s->cursor_key, kf.chain, KEY_BYTES);
		k->base = k->cursor = kf.base;
		clear_cache(k, kf.base);
	}
	keyfile_free(&kf);
	return err;
}

int kn_keys_maintain(struct kn_keys *k, const char *path, int64_t epoch_ms, int64_t retention_ms,
		     int64_t now_ms, char *errstr, size_t errstr_size)
{
	int64_t first = 0;

	/* An epoch may go once all of it is older than the retention. */
	if (epoch_ms && retention_ms && now_ms - retention_ms > 0)
		first = (now_ms - retention_ms) / epoch_ms;
	return kn_keys_retire(path, first, k, errstr, errstr_size);
}

/* K_epoch into out; -ENOKEY when the epoch is retired. */
static int chain_key(struct kn_keys *k, int64_t epoch, uint8_t out[KEY_BYTES])
{
	if (epoch < k->base)
		return -ENOKEY;
	if (epoch < k->cursor) { /* an older epoch: walk again from the base */
		memcpy(k->s->cursor_key, k->s->base_key, KEY_BYTES);
		k->cursor = k->base;
	}
	for (; k->cursor < epoch; k->cursor++)
		ratchet(k->s->cursor_key);
	memcpy(out, k->s->cursor_key, KEY_BYTES);
	return 0;
}

static int derive(struct kn_keys *k, struct slot *sl, int64_t epoch, int domain)
{
	uint8_t ek[KEY_BYTES], sub[32];

	if (domain == KN_DOMAIN_ERASE)
		memcpy(ek, k->s->erase, KEY_BYTES);
	else if (chain_key(k, epoch, ek))
		return -ENOKEY;
	crypto_kdf_derive_from_key(sub, sizeof(sub), (uint64_t)epoch, kdf_ctx[domain], ek);
	switch (k->prf) {
	case KN_PRF_SIPHASH:
		memcpy(sl->sip, sub, sizeof(sl->sip));
		break;
	case KN_PRF_HMAC_SHA256:
		crypto_auth_hmacsha256_init(&sl->hmac, sub, sizeof(sub));
		break;
	case KN_PRF_XXH3:
		/* Expand to a full-size secret: three keyed BLAKE2b blocks. */
		for (uint8_t i = 0; i < XXH_SECRET / 64; i++)
			crypto_generichash(sl->xxh + 64 * i, 64, &i, 1, sub, sizeof(sub));
		break;
	}
	sodium_memzero(sub, sizeof(sub));
	sodium_memzero(ek, sizeof(ek));
	sl->epoch = epoch;
	return 0;
}

int kn_keys_prf(struct kn_keys *k, int64_t epoch, int domain, const void *in, size_t len,
		uint8_t out[KN_PRF_BYTES])
{
	struct slot *sl = &k->s->cache[domain][(uint64_t)epoch % CACHE_WAYS];

	if (sl->epoch != epoch && derive(k, sl, epoch, domain))
		return -ENOKEY;
	switch (k->prf) {
	case KN_PRF_SIPHASH:
		crypto_shorthash_siphashx24(out, in, len, sl->sip);
		break;
	case KN_PRF_HMAC_SHA256: {
		crypto_auth_hmacsha256_state st = sl->hmac;
		uint8_t mac[crypto_auth_hmacsha256_BYTES];
		crypto_auth_hmacsha256_update(&st, in, len);
		crypto_auth_hmacsha256_final(&st, mac);
		memcpy(out, mac, KN_PRF_BYTES);
		sodium_memzero(&st, sizeof(st));
		break;
	}
	case KN_PRF_XXH3: {
		XXH128_hash_t h = XXH3_128bits_withSecret(in, len, sl->xxh, XXH_SECRET);
		XXH128_canonical_t c;
		XXH128_canonicalFromHash(&c, h);
		memcpy(out, c.digest, KN_PRF_BYTES);
		break;
	}
	}
	return 0;
}
