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
 * computed, so epochs that only grow cost one ratchet each).
 *
 * Threads: the run loop's workers call kn_keys_prf at once. Each thread
 * keeps its own cache of derived per-kind keys (struct tls_cache, in sodium
 * memory); a miss derives under the keys' mutex, since walking the chain
 * moves the cursor. Retiring epochs bumps the keys' generation: every
 * thread's cache empties itself before its next use. */
#include "keys.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
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
	uint8_t noise[KEY_BYTES]; /* derived from erase: never rotates either */
};

struct kn_keys {
	enum kn_prf prf;
	int64_t base, cursor;
	struct secret *s;
	uint64_t id;	    /* unique per kn_keys ever made: what a thread's cache belongs to */
	uint64_t gen;	    /* bumped when epochs are retired: caches start over */
	pthread_mutex_t mu; /* derivation walks the chain (cursor, cursor_key) */
};

/* A thread's derived keys, for the kn_keys it used last (id, gen). */
struct tls_cache {
	uint64_t id, gen;
	struct slot slot[KN_DOMAINS][CACHE_WAYS];
};

static pthread_once_t tls_once = PTHREAD_ONCE_INIT;
static pthread_key_t tls_key; /* its destructor frees a thread's cache at its exit */
static __thread struct tls_cache *tls;
static atomic_uint_fast64_t next_id = 1;

static void tls_free(void *c)
{
	sodium_free(c); /* zeroes before unmapping */
}

static void tls_init(void)
{
	pthread_key_create(&tls_key, tls_free);
}

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

/* Empties this thread's cache if it holds k's keys. */
static void tls_clear(const struct kn_keys *k)
{
	if (tls && tls->id == k->id) {
		sodium_memzero(tls->slot, sizeof(tls->slot));
		tls->id = 0;
	}
}

/* Epochs were retired: every thread's cache of k starts over (this one's at
 * once, the others' at their next kn_keys_prf). */
static void clear_cache(struct kn_keys *k)
{
	k->gen++;
	tls_clear(k);
}

/* This thread's cache, made k's (emptied when it held other keys or an
 * older generation). NULL when no memory could be had. */
static struct tls_cache *cache_for(const struct kn_keys *k)
{
	if (!tls) {
		pthread_once(&tls_once, tls_init);
		if (!(tls = sodium_malloc(sizeof(*tls))))
			return NULL;
		tls->id = 0;
		pthread_setspecific(tls_key, tls);
	}
	if (tls->id != k->id || tls->gen != k->gen) {
		sodium_memzero(tls->slot, sizeof(tls->slot));
		for (int d = 0; d < KN_DOMAINS; d++)
			for (int w = 0; w < CACHE_WAYS; w++)
				tls->slot[d][w].epoch = -1;
		tls->id = k->id;
		tls->gen = k->gen;
	}
	return tls;
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
	k->id = atomic_fetch_add(&next_id, 1);
	pthread_mutex_init(&k->mu, NULL);
	memcpy(k->s->base_key, chain, KEY_BYTES);
	memcpy(k->s->cursor_key, chain, KEY_BYTES);
	memcpy(k->s->erase, erase, KEY_BYTES);
	crypto_kdf_derive_from_key(k->s->noise, KEY_BYTES, 1, "kn_noise", erase);
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
	/* Other threads' caches went with their threads (the run loop joins
	 * its workers first); this one's goes now. */
	tls_clear(k);
	pthread_mutex_destroy(&k->mu);
	sodium_free(k->s); /* zeroes before unmapping */
	kn_free(k);
}

int64_t kn_keys_first_epoch(const struct kn_keys *k)
{
	return k->base;
}

void kn_keys_noise_seed(const struct kn_keys *k, const void *label, size_t len,
			uint8_t seed[KN_NOISE_SEED_BYTES])
{
	crypto_generichash(seed, KN_NOISE_SEED_BYTES, label, len, k->s->noise, KEY_BYTES);
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

/* The first epoch: plain decimal digits, no sign, no overflow. */
static int parse_epoch(const char *p, const char **end, int64_t *out)
{
	int64_t v = 0;

	if (*p < '0' || *p > '9')
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (INT64_MAX - (*p - '0')) / 10)
			return -ERANGE;
		v = v * 10 + (*p - '0');
	}
	*end = p;
	*out = v;
	return 0;
}

/* One line of the file into kf; *seen collects 1 (chain) and 2 (erase). */
static int parse_line(const char *line, size_t len, struct keyfile *kf, int *seen, char *why,
		      size_t whysz)
{
	size_t m = strlen(CHAIN_MAGIC);
	const char *end = line + len, *p;
	int64_t base;
	int err;

	while (len && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
		len--, end--;
	if (!len || line[0] == '#')
		return 0;
	if (len > m + 1 && !strncmp(line, CHAIN_MAGIC " ", m + 1)) {
		if (*seen & 1)
			return snprintf(why, whysz, "more than one '%s' line", CHAIN_MAGIC),
			       -EINVAL;
		if ((err = parse_epoch(line + m + 1, &p, &base)))
			return snprintf(why, whysz, "the first epoch is %s",
					err == -ERANGE ? "out of range" : "not a number"),
			       -EINVAL;
		if (p >= end || *p != ' ' || parse_hex(p + 1, (size_t)(end - p - 1), kf->chain))
			return snprintf(why, whysz, "bad '%s' line", CHAIN_MAGIC), -EINVAL;
		kf->base = base;
		*seen |= 1;
		return 0;
	}
	m = strlen(ERASE_MAGIC);
	if (len > m + 1 && !strncmp(line, ERASE_MAGIC " ", m + 1)) {
		if (*seen & 2)
			return snprintf(why, whysz, "more than one '%s' line", ERASE_MAGIC),
			       -EINVAL;
		if (parse_hex(line + m + 1, len - m - 1, kf->erase))
			return snprintf(why, whysz, "bad '%s' line", ERASE_MAGIC), -EINVAL;
		*seen |= 2;
		return 0;
	}
	return snprintf(why, whysz, "a line that is neither a comment nor a key"), -EINVAL;
}

/* Exactly one chain and one erasure line; comments and blank lines aside,
 * nothing else. why says what is wrong, never what the line holds. */
static int parse_keyfile(const char *text, struct keyfile *kf, char *why, size_t whysz)
{
	int seen = 0, lineno = 1;

	/* An editor's byte-order mark (Notepad writes one) and CRLF line ends
	 * (see parse_line) are not what keygen wrote, but they are harmless. */
	if (!strncmp(text, "\xef\xbb\xbf", 3))
		text += 3;
	for (const char *line = text; line && *line; lineno++) {
		const char *eol = strchr(line, '\n');
		size_t len = eol ? (size_t)(eol - line) : strlen(line);
		char what[128];
		if (parse_line(line, len, kf, &seen, what, sizeof(what))) {
			snprintf(why, whysz, "line %d: %s", lineno, what);
			return -EINVAL;
		}
		line = eol ? eol + 1 : NULL;
	}
	if (seen != 3) {
		snprintf(why, whysz, "no '%s' line", seen & 1 ? ERASE_MAGIC : CHAIN_MAGIC);
		return -EINVAL;
	}
	return 0;
}

static void keyfile_free(struct keyfile *kf)
{
	sodium_free(kf->chain);
	sodium_free(kf->erase);
}

static const char *file_kind(mode_t m)
{
	return S_ISDIR(m)    ? "a directory"
	       : S_ISFIFO(m) ? "a FIFO"
	       : S_ISSOCK(m) ? "a socket"
	       : S_ISCHR(m)  ? "a character device"
	       : S_ISBLK(m)  ? "a block device"
			     : "not a regular file";
}

/* Opens path for reading once it is known to be a safe key file: a regular
 * file (through symlinks, as Kubernetes mounts Secrets) owned by this user,
 * with no group or other access. Non-regular files are refused before open()
 * so a FIFO cannot block us. Returns the fd or a negative errno. */
static int open_keyfile(const char *path, struct stat *st, char *errstr, size_t errsz)
{
	struct stat before;
	int fd, err;

	if (stat(path, &before)) {
		err = -errno;
		if (err == -ENOENT && !lstat(path, &before)) /* keygen would not replace it */
			snprintf(errstr, errsz, "key file %s: a symlink to nothing", path);
		else
			snprintf(errstr, errsz, "key file %s: %s%s%s%s", path, strerror(-err),
				 err == -ENOENT ? " (create one with 'kanon keygen " : "",
				 err == -ENOENT ? path : "", err == -ENOENT ? "')" : "");
		return err;
	}
	if (!S_ISREG(before.st_mode)) {
		snprintf(errstr, errsz, "key file %s: %s, not a regular file; refusing it", path,
			 file_kind(before.st_mode));
		return -EINVAL;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		err = -errno;
		snprintf(errstr, errsz, "key file %s: %s", path, strerror(errno));
		return err;
	}
	err = 0;
	if (fstat(fd, st) || st->st_dev != before.st_dev || st->st_ino != before.st_ino) {
		snprintf(errstr, errsz, "key file %s: replaced while being opened; try again",
			 path);
		err = -EAGAIN;
	} else if (st->st_uid != geteuid()) {
		snprintf(errstr, errsz,
			 "key file %s: owned by uid %u, but kanon runs as uid %u; the key must "
			 "belong to the user that uses it (chown it, or run kanon as its owner)",
			 path, (unsigned)st->st_uid, (unsigned)geteuid());
		err = -EPERM;
	} else if (st->st_mode & (S_IRWXG | S_IRWXO)) {
		snprintf(errstr, errsz,
			 "key file %s: group or others have access (mode %04o); refusing to "
			 "use it: run 'chmod 600 %s' (0400 also works) and rotate the key if "
			 "others read it",
			 path, (unsigned)(st->st_mode & 07777), path);
		err = -EPERM;
	} else if (st->st_size > 4096) {
		snprintf(errstr, errsz, "key file %s: too large to be a kanon key", path);
		err = -EINVAL;
	}
	if (err) {
		close(fd);
		return err;
	}
	return fd;
}

/* Reads and checks path (see open_keyfile). */
static int read_keyfile(const char *path, struct keyfile *kf, char *errstr, size_t errsz)
{
	struct stat st;
	char *text = NULL, why[160];
	int fd, err = 0;

	memset(kf, 0, sizeof(*kf));
	if (sodium_init() < 0) {
		snprintf(errstr, errsz, "libsodium failed to initialize");
		return -EIO;
	}
	if ((fd = open_keyfile(path, &st, errstr, errsz)) < 0)
		return fd;
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
		if (memchr(text, '\0', (size_t)st.st_size)) { /* the parser would stop there */
			snprintf(errstr, errsz,
				 "key file %s: holds a NUL byte (not written by "
				 "kanon keygen?)",
				 path);
			err = -EINVAL;
		} else if (parse_keyfile(text, kf, why, sizeof(why))) {
			snprintf(errstr, errsz, "key file %s: %s (not written by kanon keygen?)",
				 path, why);
			err = -EINVAL;
		}
	}
	sodium_free(text);
	close(fd);
	if (err)
		keyfile_free(kf);
	return err;
}

/* Writes a key file atomically: a temporary beside it, fsync, rename; mode
 * 0600, or the old file's where it was narrower (an operator's 0400 stays).
 * When path is a symlink (kn_keys_load follows them) the target is
 * replaced, not the link. */
static int write_keyfile(const char *path, int64_t base, const uint8_t chain[KEY_BYTES],
			 const uint8_t erase[KEY_BYTES], bool exclusive, char *errstr, size_t errsz)
{
	char tmp[PATH_MAX + 16], *hex = sodium_malloc(2 * KEY_BYTES + 1),
				 *hex2 = sodium_malloc(2 * KEY_BYTES + 1), *target = NULL;
	int fd, err = 0;

	if (!hex || !hex2) {
		err = -ENOMEM;
		goto out;
	}
	if (!exclusive && !(target = realpath(path, NULL))) {
		err = -errno;
		snprintf(errstr, errsz, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (target)
		path = target;
	struct stat old;
	mode_t mode =
		!exclusive && !stat(path, &old) && (old.st_mode & 0400) ? old.st_mode & 0600 : 0600;
	snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path);
	fd = mkstemp(tmp);
	if (fd < 0) {
		err = -errno;
		if (errno == ENOENT) /* keygen into a directory not made yet */
			snprintf(errstr, errsz,
				 "cannot write %s: its directory does not exist (make it "
				 "first, e.g. install -d -m 700 DIR)",
				 path);
		else
			snprintf(errstr, errsz, "cannot write beside %s: %s", path,
				 strerror(errno));
		goto out;
	}
	sodium_bin2hex(hex, 2 * KEY_BYTES + 1, chain, KEY_BYTES);
	sodium_bin2hex(hex2, 2 * KEY_BYTES + 1, erase, KEY_BYTES);
	if (fchmod(fd, mode) ||
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
	free(target);
	sodium_free(hex);
	sodium_free(hex2);
	return err;
}

int64_t kn_keys_epoch_of(int64_t epoch_ms, int64_t ts_ms)
{
	return epoch_ms > 0 && ts_ms > 0 ? ts_ms / epoch_ms : 0;
}

int kn_keys_load(const char *path, enum kn_prf prf, int64_t epoch_ms, int64_t now_ms,
		 struct kn_keys **out, char *errstr, size_t errstr_size)
{
	int64_t latest = kn_keys_epoch_of(epoch_ms, now_ms + KN_KEYS_CLOCK_SKEW_MS);
	struct keyfile kf;
	int err = read_keyfile(path, &kf, errstr, errstr_size);

	*out = NULL;
	if (err)
		return err;
	if (kf.base > latest) {
		/* Every event would be withheld as retired: refuse it loudly. */
		snprintf(errstr, errstr_size,
			 "key file %s: its first usable epoch %lld is in the future (the current "
			 "epoch is %lld%s); a key file from another deployment, or a wrong "
			 "keys.epoch?",
			 path, (long long)kf.base, (long long)kn_keys_epoch_of(epoch_ms, now_ms),
			 epoch_ms ? "" : ", keys.epoch is 'never'");
		err = -ERANGE;
	} else if ((err = keys_new(kf.base, kf.chain, kf.erase, prf, out))) {
		snprintf(errstr, errstr_size, "out of memory");
	}
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

/* Brings k up to a chain starting at base (no-op if k starts there or later). */
static void follow(struct kn_keys *k, int64_t base, const uint8_t chain[KEY_BYTES])
{
	if (!k || base <= k->base)
		return;
	memcpy(k->s->base_key, chain, KEY_BYTES);
	memcpy(k->s->cursor_key, chain, KEY_BYTES);
	k->base = k->cursor = base;
	clear_cache(k);
}

static bool read_only(int err)
{
	return err == -EROFS || err == -EACCES || err == -EPERM;
}

/* kn_keys_retire and kn_keys_maintain: with in_memory, a file that cannot be
 * rewritten still has its keys destroyed in k (KN_KEYS_IN_MEMORY). */
static int retire(const char *path, int64_t first_epoch, int64_t epoch_ms, int64_t now_ms,
		  struct kn_keys *k, bool in_memory, char *errstr, size_t errsz)
{
	int64_t current = kn_keys_epoch_of(epoch_ms, now_ms);
	struct keyfile kf;
	int err;

	if (first_epoch > current) {
		if (!epoch_ms)
			snprintf(errstr, errsz,
				 "keys.epoch is 'never': every event is in epoch 0, which cannot "
				 "be retired (delete the key file to shred everything)");
		else
			snprintf(errstr, errsz,
				 "cannot retire epoch %lld: the current epoch is %lld and only "
				 "earlier ones can be retired (retiring the current one would "
				 "withhold every new event)",
				 (long long)(first_epoch - 1), (long long)current);
		return -ERANGE;
	}
	if ((err = read_keyfile(path, &kf, errstr, errsz)))
		return err;
	if (kf.base > kn_keys_epoch_of(epoch_ms, now_ms + KN_KEYS_CLOCK_SKEW_MS)) {
		/* Replaced by a file from the future: following it would withhold
		 * every event as retired. */
		snprintf(errstr, errsz,
			 "key file %s now starts at epoch %lld, after the current epoch %lld: %s",
			 path, (long long)kf.base, (long long)current,
			 in_memory ? "not followed" : "refusing it");
		keyfile_free(&kf);
		return in_memory ? KN_KEYS_NOT_FOLLOWED : -ERANGE;
	}
	if (first_epoch > kf.base) {
		/* Bounded: kf.base >= 0 and first_epoch <= current. */
		for (int64_t e = kf.base; e < first_epoch; e++)
			ratchet(kf.chain);
		err = write_keyfile(path, first_epoch, kf.chain, kf.erase, false, errstr, errsz);
		if (err && in_memory && read_only(err)) {
			bool news = !k || k->base < first_epoch; /* said once per retirement */
			if (news)
				snprintf(errstr, errsz,
					 "key file %s is read-only (a mounted Secret?): epochs "
					 "before "
					 "%lld are destroyed in this process only; the file still "
					 "holds them until it is replaced",
					 path, (long long)first_epoch);
			err = news ? KN_KEYS_IN_MEMORY : 0;
		}
		if (err >= 0)
			kf.base = first_epoch;
	}
	/* The process follows the file: another instance may have retired more. */
	if (err >= 0)
		follow(k, kf.base, kf.chain);
	keyfile_free(&kf);
	return err;
}

int kn_keys_retire(const char *path, int64_t first_epoch, int64_t epoch_ms, int64_t now_ms,
		   struct kn_keys *k, char *errstr, size_t errstr_size)
{
	return retire(path, first_epoch, epoch_ms, now_ms, k, false, errstr, errstr_size);
}

int kn_keys_maintain(struct kn_keys *k, const char *path, int64_t epoch_ms, int64_t retention_ms,
		     int64_t now_ms, char *errstr, size_t errstr_size)
{
	int64_t first = 0;

	int err;

	/* An epoch may go once all of it is older than the retention. */
	if (epoch_ms && retention_ms && now_ms - retention_ms > 0)
		first = (now_ms - retention_ms) / epoch_ms;
	/* -EAGAIN: the file was replaced while being read (another instance
	 * retired, or a Secret was updated): read the new one. */
	for (int tries = 0; tries < 3; tries++)
		if ((err = retire(path, first, epoch_ms, now_ms, k, true, errstr, errstr_size)) !=
		    -EAGAIN)
			break;
	return err;
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

/* The slot of (epoch, domain) in this thread's cache, derived if missing;
 * without a cache, tmp. NULL: the epoch's key is destroyed. */
static const struct slot *slot_of(struct kn_keys *k, int64_t epoch, int domain, struct slot *tmp)
{
	struct tls_cache *tc = cache_for(k);
	struct slot *sl = tc ? &tc->slot[domain][(uint64_t)epoch % CACHE_WAYS] : tmp;
	int err;

	if (tc && sl->epoch == epoch)
		return sl;
	pthread_mutex_lock(&k->mu);
	err = derive(k, sl, epoch, domain);
	pthread_mutex_unlock(&k->mu);
	return err ? NULL : sl;
}

int kn_keys_prf(struct kn_keys *k, int64_t epoch, int domain, const void *in, size_t len,
		uint8_t out[KN_PRF_BYTES])
{
	struct slot tmp;
	const struct slot *sl = slot_of(k, epoch, domain, &tmp);

	if (!sl)
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
	if (sl == &tmp)
		sodium_memzero(&tmp, sizeof(tmp));
	return 0;
}
