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

#define KEYFILE_MAGIC "kanon-key-v1"
#define CACHE_WAYS    8 /* epochs cached per domain (direct-mapped by epoch) */
#define XXH_SECRET    192

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
	uint8_t master[KN_MASTER_KEY_BYTES];
	struct slot cache[KN_DOMAINS][CACHE_WAYS];
};

struct kn_keys {
	enum kn_prf prf;
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

int kn_keys_from_master(const uint8_t master[KN_MASTER_KEY_BYTES], enum kn_prf prf,
			struct kn_keys **out)
{
	struct kn_keys *k;

	*out = NULL;
	if (sodium_init() < 0)
		return -EIO;
	k = kn_calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	k->prf = prf;
	k->s = sodium_malloc(sizeof(*k->s));
	if (!k->s) {
		kn_free(k);
		return -ENOMEM;
	}
	memcpy(k->s->master, master, KN_MASTER_KEY_BYTES);
	for (int d = 0; d < KN_DOMAINS; d++)
		for (int w = 0; w < CACHE_WAYS; w++)
			k->s->cache[d][w].epoch = -1;
	*out = k;
	return 0;
}

void kn_keys_destroy(struct kn_keys *k)
{
	if (!k)
		return;
	sodium_free(k->s); /* zeroes before unmapping */
	kn_free(k);
}

static int parse_keyfile(const char *text, uint8_t master[KN_MASTER_KEY_BYTES])
{
	const char *line = text;

	while (*line) {
		const char *eol = strchr(line, '\n');
		size_t len = eol ? (size_t)(eol - line) : strlen(line);
		size_t mlen = strlen(KEYFILE_MAGIC);
		if (len > mlen + 1 && !strncmp(line, KEYFILE_MAGIC, mlen) && line[mlen] == ' ') {
			size_t bin_len = 0;
			const char *hex = line + mlen + 1;
			if (sodium_hex2bin(master, KN_MASTER_KEY_BYTES, hex, len - mlen - 1, NULL,
					   &bin_len, NULL) == 0 &&
			    bin_len == KN_MASTER_KEY_BYTES)
				return 0;
			return -EINVAL;
		}
		if (!eol)
			break;
		line = eol + 1;
	}
	return -EINVAL;
}

int kn_keys_load(const char *path, enum kn_prf prf, struct kn_keys **out, char *errstr,
		 size_t errstr_size)
{
	struct stat st;
	char *text = NULL;
	uint8_t *master = NULL;
	int fd, err;
	ssize_t n;

	*out = NULL;
	if (sodium_init() < 0) {
		snprintf(errstr, errstr_size, "libsodium failed to initialize");
		return -EIO;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		err = -errno;
		snprintf(errstr, errstr_size, "key file %s: %s (create one with 'kanon keygen %s')",
			 path, strerror(errno), path);
		return err;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		snprintf(errstr, errstr_size, "key file %s: not a regular file", path);
		err = -EINVAL;
		goto out;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		snprintf(errstr, errstr_size,
			 "key file %s: group or others have access (mode %04o); refusing to "
			 "use it: run 'chmod 600 %s' and rotate the key if others read it",
			 path, (unsigned)(st.st_mode & 07777), path);
		err = -EPERM;
		goto out;
	}
	if (st.st_size > 4096) {
		snprintf(errstr, errstr_size, "key file %s: too large to be a kanon key", path);
		err = -EINVAL;
		goto out;
	}
	text = sodium_malloc((size_t)st.st_size + 1);
	master = sodium_malloc(KN_MASTER_KEY_BYTES);
	if (!text || !master) {
		err = -ENOMEM;
		snprintf(errstr, errstr_size, "out of memory");
		goto out;
	}
	n = read(fd, text, (size_t)st.st_size);
	if (n != st.st_size) {
		snprintf(errstr, errstr_size, "key file %s: short read", path);
		err = -EIO;
		goto out;
	}
	text[n] = '\0';
	if (parse_keyfile(text, master)) {
		snprintf(errstr, errstr_size,
			 "key file %s: no '%s <64 hex digits>' line (not written by kanon keygen?)",
			 path, KEYFILE_MAGIC);
		err = -EINVAL;
		goto out;
	}
	err = kn_keys_from_master(master, prf, out);
	if (err)
		snprintf(errstr, errstr_size, "out of memory");
out:
	sodium_free(text);
	sodium_free(master);
	close(fd);
	return err;
}

int kn_keys_generate(const char *path, char *errstr, size_t errstr_size)
{
	uint8_t *master;
	char *hex;
	int fd, err = 0;

	if (sodium_init() < 0)
		return -EIO;
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		err = -errno;
		snprintf(errstr, errstr_size, "%s: %s%s", path, strerror(errno),
			 errno == EEXIST ? " (kanon never overwrites a key)" : "");
		return err;
	}
	master = sodium_malloc(KN_MASTER_KEY_BYTES);
	hex = sodium_malloc(KN_MASTER_KEY_BYTES * 2 + 1);
	if (!master || !hex) {
		err = -ENOMEM;
		goto out;
	}
	randombytes_buf(master, KN_MASTER_KEY_BYTES);
	sodium_bin2hex(hex, KN_MASTER_KEY_BYTES * 2 + 1, master, KN_MASTER_KEY_BYTES);
	/* fchmod as well: a umask cannot widen it, but an odd ACL default might. */
	if (fchmod(fd, 0600) ||
	    dprintf(fd,
		    "# kanon master key: secret, keep mode 0600; losing it "
		    "changes every pseudonym\n%s %s\n",
		    KEYFILE_MAGIC, hex) < 0 ||
	    fsync(fd)) {
		err = -errno;
		snprintf(errstr, errstr_size, "%s: %s", path, strerror(errno));
		unlink(path);
	}
out:
	sodium_free(master);
	sodium_free(hex);
	close(fd);
	return err;
}

static void derive(struct kn_keys *k, struct slot *sl, int64_t epoch, int domain)
{
	uint8_t sub[32];

	crypto_kdf_derive_from_key(sub, sizeof(sub), (uint64_t)epoch, kdf_ctx[domain],
				   k->s->master);
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
	sl->epoch = epoch;
}

void kn_keys_prf(struct kn_keys *k, int64_t epoch, int domain, const void *in, size_t len,
		 uint8_t out[KN_PRF_BYTES])
{
	struct slot *sl = &k->s->cache[domain][(uint64_t)epoch % CACHE_WAYS];

	if (sl->epoch != epoch)
		derive(k, sl, epoch, domain);
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
}
