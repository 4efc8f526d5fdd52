#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keys.h"
#include "pseudonymize.h"
#include "kt.h"

#define DAY (86400000LL)
#define NOW (20100 * DAY) /* "now" for the tests: epoch 20100 of 1-day epochs */

static const uint8_t master[KN_MASTER_KEY_BYTES] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};

static void prf(struct kn_keys *k, int64_t epoch, int dom, const char *s, uint8_t out[16])
{
	KT_CHECK(kn_keys_prf(k, epoch, dom, s, strlen(s), out) == 0);
}

static void test_determinism_and_separation(void)
{
	struct kn_keys *k;
	uint8_t a[16], b[16], c[16], d[16];

	KT_CHECK(kn_keys_from_master(master, KN_PRF_SIPHASH, &k) == 0);
	prf(k, 100, 0, "+8613800138000", a);
	prf(k, 100, 0, "+8613800138000", b);
	KT_CHECK(!memcmp(a, b, 16)); /* same epoch, same kind: same pseudonym */
	prf(k, 101, 0, "+8613800138000", c);
	KT_CHECK(memcmp(a, c, 16)); /* next epoch: unlinkable */
	prf(k, 100, 1, "+8613800138000", d);
	KT_CHECK(memcmp(a, d, 16)); /* other kind: unlinkable */
	/* The cache holds 8 epochs per domain: evicting and re-deriving must
	 * give the same key. */
	for (int e = 0; e < 40; e++)
		prf(k, 1000 + e, 0, "x", c);
	prf(k, 100, 0, "+8613800138000", b);
	KT_CHECK(!memcmp(a, b, 16));
	kn_keys_destroy(k);
}

/* Threads at once (the run loop's workers): each with its own cache, all
 * deriving from the one chain, over epochs that collide in the caches'
 * ways and walk the chain back and forth, under every PRF. Every result is
 * the single-threaded one. */
#define T_THREADS 4
#define T_EPOCHS  24

struct prf_job {
	struct kn_keys *k;
	uint8_t got[T_EPOCHS][KN_DOMAINS][16];
	int rounds;
};

static void *prf_thread(void *arg)
{
	struct prf_job *j = arg;

	for (int r = 0; r < j->rounds; r++)
		for (int e = 0; e < T_EPOCHS; e++)
			for (int d = 0; d < KN_DOMAINS; d++) {
				int64_t ep = (e * 7 + r) % T_EPOCHS * 8; /* same way, every epoch */
				kn_keys_prf(j->k, 500 + ep, d, "+8613800138000", 14,
					    j->got[(ep / 8)][d]);
			}
	return NULL;
}

static void test_prf_threads(void)
{
	for (int prf_kind = 0; prf_kind < 3; prf_kind++) {
		struct kn_keys *k;
		struct prf_job ref = {.rounds = 1}, jobs[T_THREADS];
		pthread_t t[T_THREADS];

		KT_CHECK(kn_keys_from_master(master, (enum kn_prf)prf_kind, &k) == 0);
		ref.k = k;
		prf_thread(&ref);
		for (int i = 0; i < T_THREADS; i++) {
			jobs[i] = (struct prf_job){.k = k, .rounds = 30 + i};
			KT_CHECK(pthread_create(&t[i], NULL, prf_thread, &jobs[i]) == 0);
		}
		for (int i = 0; i < T_THREADS; i++) {
			pthread_join(t[i], NULL);
			KT_CHECK(!memcmp(jobs[i].got, ref.got, sizeof(ref.got)));
		}
		kn_keys_destroy(k);
	}
}

/* The documented derivation, recomputed with libsodium's one-shot calls:
 * the chain ratchet, the per-kind KDF, then the PRF. Proves the cached and
 * precomputed states give the textbook outputs. */
static void test_matches_reference(void)
{
	struct kn_keys *k;
	uint8_t chain[32], sub[32], want[32], got[16];
	const char *msg = "alice@example.com";
	static const char label[] = "kanon-ratchet";

	memcpy(chain, master, 32);
	for (int e = 0; e < 20758; e++)
		crypto_generichash(chain, 32, (const uint8_t *)label, sizeof(label) - 1, chain, 32);
	crypto_kdf_derive_from_key(sub, 32, 20758, "kn_email", chain);

	KT_CHECK(kn_keys_from_master(master, KN_PRF_SIPHASH, &k) == 0);
	KT_CHECK(kn_keys_prf(k, 20758, 3, msg, strlen(msg), got) == 0);
	crypto_shorthash_siphashx24(want, (const uint8_t *)msg, strlen(msg), sub);
	KT_CHECK(!memcmp(got, want, 16));
	kn_keys_destroy(k);

	KT_CHECK(kn_keys_from_master(master, KN_PRF_HMAC_SHA256, &k) == 0);
	prf(k, 20758, 3, msg, got);
	prf(k, 20758, 3, msg, got); /* second call reuses the precomputed state */
	crypto_auth_hmacsha256(want, (const uint8_t *)msg, strlen(msg), sub);
	KT_CHECK(!memcmp(got, want, 16));
	kn_keys_destroy(k);
}

/* Retiring destroys old epochs and leaves later pseudonyms unchanged. */
static void test_retire(void)
{
	char dir[] = "/tmp/kt-retire.XXXXXX", path[256], err[512];
	struct kn_keys *k, *k2;
	uint8_t before[16], after[16], erase1[16], erase2[16];
	struct stat st;

	KT_CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/master.key", dir);
	KT_CHECK(kn_keys_generate(path, err, sizeof(err)) == 0);
	KT_CHECK(kn_keys_load(path, KN_PRF_SIPHASH, DAY, NOW, &k, err, sizeof(err)) == 0);
	KT_CHECK(kn_keys_prf(k, 20000, 0, "u1", 2, before) == 0);
	KT_CHECK(kn_keys_prf(k, 0, KN_DOMAIN_ERASE, "x", 1, erase1) == 0);
	KT_CHECK(kn_keys_first_epoch(k) == 0);
	/* Retire everything before 20000, in this process and in the file. */
	KT_CHECK(kn_keys_retire(path, 20000, DAY, NOW, k, err, sizeof(err)) == 0);
	KT_CHECK(kn_keys_first_epoch(k) == 20000);
	KT_CHECK(kn_keys_prf(k, 19999, 0, "u1", 2, after) == -ENOKEY);
	KT_CHECK(kn_keys_prf(k, 20000, 0, "u1", 2, after) == 0 && !memcmp(before, after, 16));
	KT_CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
	/* Another process loading the file sees the same: old gone, new unchanged. */
	KT_CHECK(kn_keys_load(path, KN_PRF_SIPHASH, DAY, NOW, &k2, err, sizeof(err)) == 0);
	KT_CHECK(kn_keys_prf(k2, 19000, 0, "u1", 2, after) == -ENOKEY);
	KT_CHECK(kn_keys_prf(k2, 20000, 0, "u1", 2, after) == 0 && !memcmp(before, after, 16));
	/* Erasure fingerprints never rotate. */
	KT_CHECK(kn_keys_prf(k2, 0, KN_DOMAIN_ERASE, "x", 1, erase2) == 0 &&
		 !memcmp(erase1, erase2, 16));
	/* Retiring backwards is a no-op; a process follows a file retired by another. */
	KT_CHECK(kn_keys_retire(path, 10, DAY, NOW, NULL, err, sizeof(err)) == 0);
	KT_CHECK(kn_keys_retire(path, 20005, DAY, NOW, NULL, err, sizeof(err)) == 0);
	KT_CHECK(kn_keys_maintain(k2, path, 86400000, 0, NOW, err, sizeof(err)) == 0);
	KT_CHECK(kn_keys_first_epoch(k2) == 20005);
	/* Retention: epochs that ended more than 30 days before "now" go. */
	KT_CHECK(kn_keys_maintain(k2, path, 86400000, 30 * 86400000LL, 20100 * 86400000LL, err,
				  sizeof(err)) == 0);
	KT_CHECK(kn_keys_first_epoch(k2) == 20070);
	kn_keys_destroy(k);
	kn_keys_destroy(k2);
	unlink(path);
	rmdir(dir);
}

static void test_prfs_differ(void)
{
	struct kn_keys *s, *h, *x;
	uint8_t a[16], b[16], c[16], c2[16];

	kn_keys_from_master(master, KN_PRF_SIPHASH, &s);
	kn_keys_from_master(master, KN_PRF_HMAC_SHA256, &h);
	kn_keys_from_master(master, KN_PRF_XXH3, &x);
	prf(s, 1, 0, "u1", a);
	prf(h, 1, 0, "u1", b);
	prf(x, 1, 0, "u1", c);
	prf(x, 1, 0, "u1", c2);
	KT_CHECK(memcmp(a, b, 16) && memcmp(a, c, 16) && memcmp(b, c, 16));
	KT_CHECK(!memcmp(c, c2, 16));
	/* Keyed: another master key gives another xxh3 output. */
	uint8_t m2[KN_MASTER_KEY_BYTES] = {9};
	struct kn_keys *x2;
	kn_keys_from_master(m2, KN_PRF_XXH3, &x2);
	prf(x2, 1, 0, "u1", c2);
	KT_CHECK(memcmp(c, c2, 16));
	kn_keys_destroy(s);
	kn_keys_destroy(h);
	kn_keys_destroy(x);
	kn_keys_destroy(x2);
}

static void test_keyfile(void)
{
	char dir[] = "/tmp/kt-keys.XXXXXX", path[256], err[512];
	struct kn_keys *k = NULL;

	KT_CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/master.key", dir);
	KT_CHECK(kn_keys_generate(path, err, sizeof(err)) == 0);
	struct stat st;
	KT_CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
	/* Never overwrite a key. */
	KT_CHECK(kn_keys_generate(path, err, sizeof(err)) == -EEXIST);
	KT_CHECK(kn_keys_load(path, KN_PRF_SIPHASH, DAY, NOW, &k, err, sizeof(err)) == 0);
	kn_keys_destroy(k);
	/* Group- or world-readable: refused, and the message says how to fix it. */
	chmod(path, 0640);
	KT_CHECK(kn_keys_load(path, KN_PRF_SIPHASH, DAY, NOW, &k, err, sizeof(err)) == -EPERM);
	KT_CHECK(k == NULL);
	KT_CHECK(strstr(err, "chmod 600") != NULL);
	chmod(path, 0604);
	KT_CHECK(kn_keys_load(path, KN_PRF_SIPHASH, DAY, NOW, &k, err, sizeof(err)) == -EPERM);
	/* The error never contains the key material. */
	FILE *f = fopen(path, "r");
	char text[256] = "";
	KT_CHECK(f && fread(text, 1, sizeof(text) - 1, f) > 0);
	fclose(f);
	char *hex = strstr(text, "kanon-chain-v1 0 ");
	KT_CHECK(hex && !strstr(err, hex + 17));
	unlink(path);
	/* Garbage is refused. */
	int fd = open(path, O_CREAT | O_WRONLY, 0600);
	KT_CHECK(write(fd, "kanon-chain-v1 0 zz\n", 20) == 20);
	close(fd);
	KT_CHECK(kn_keys_load(path, KN_PRF_SIPHASH, DAY, NOW, &k, err, sizeof(err)) == -EINVAL);
	unlink(path);
	KT_CHECK(kn_keys_load(path, KN_PRF_SIPHASH, DAY, NOW, &k, err, sizeof(err)) == -ENOENT);
	KT_CHECK(strstr(err, "kanon keygen") != NULL);
	rmdir(dir);
}

/* A key file with the given lines (the hex keys are well-formed). */
static void write_lines(const char *path, const char *chain_epoch, int chains, int erases,
			const char *extra)
{
	static const char hex[] =
		"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
	FILE *f;

	unlink(path);
	f = fopen(path, "w");
	KT_CHECK(f != NULL);
	fchmod(fileno(f), 0600);
	fprintf(f, "# a comment\n\n");
	for (int i = 0; i < chains; i++)
		fprintf(f, "kanon-chain-v1 %s %s\n", chain_epoch, hex);
	for (int i = 0; i < erases; i++)
		fprintf(f, "kanon-erase-v1 %s\n", hex);
	fputs(extra, f);
	fclose(f);
}

/* The file's numbers are checked against the clock, and its shape is exact. */
static void test_keyfile_numbers(void)
{
	char dir[] = "/tmp/kt-num.XXXXXX", path[256], err[512];
	struct kn_keys *k = NULL;

	KT_CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/master.key", dir);
	write_lines(path, "20100", 1, 1, "");
	KT_CHECK(kn_keys_load(path, KN_PRF_SIPHASH, DAY, NOW, &k, err, sizeof(err)) == 0);
	kn_keys_destroy(k);
	/* A first epoch after the current one would withhold every event. */
	write_lines(path, "20101", 1, 1, "");
	KT_CHECK(kn_keys_load(path, KN_PRF_SIPHASH, DAY, NOW, &k, err, sizeof(err)) == -ERANGE);
	KT_CHECK(k == NULL && strstr(err, "in the future") && strstr(err, "20100"));
	/* ... but a clock a little behind the retiring machine's is tolerated. */
	KT_CHECK(kn_keys_load(path, KN_PRF_SIPHASH, DAY, 20101 * DAY - 60000, &k, err,
			      sizeof(err)) == 0);
	kn_keys_destroy(k);
	/* One epoch for all time: only epoch 0 exists. */
	write_lines(path, "1", 1, 1, "");
	KT_CHECK(kn_keys_load(path, KN_PRF_SIPHASH, 0, NOW, &k, err, sizeof(err)) == -ERANGE);
	write_lines(path, "99999999999999999999999", 1, 1, "");
	KT_CHECK(kn_keys_load(path, KN_PRF_SIPHASH, DAY, NOW, &k, err, sizeof(err)) == -EINVAL);
	KT_CHECK(strstr(err, "out of range") != NULL);
	write_lines(path, "-1", 1, 1, "");
	KT_CHECK(kn_keys_load(path, KN_PRF_SIPHASH, DAY, NOW, &k, err, sizeof(err)) == -EINVAL);
	write_lines(path, "12x", 1, 1, "");
	KT_CHECK(kn_keys_load(path, KN_PRF_SIPHASH, DAY, NOW, &k, err, sizeof(err)) == -EINVAL);
	/* Exactly one chain and one erasure line, and nothing else. */
	write_lines(path, "0", 2, 1, "");
	KT_CHECK(kn_keys_load(path, KN_PRF_SIPHASH, DAY, NOW, &k, err, sizeof(err)) == -EINVAL);
	KT_CHECK(strstr(err, "more than one 'kanon-chain-v1'") != NULL);
	write_lines(path, "0", 1, 2, "");
	KT_CHECK(kn_keys_load(path, KN_PRF_SIPHASH, DAY, NOW, &k, err, sizeof(err)) == -EINVAL);
	write_lines(path, "0", 1, 0, "");
	KT_CHECK(kn_keys_load(path, KN_PRF_SIPHASH, DAY, NOW, &k, err, sizeof(err)) == -EINVAL);
	/* What editors do to a file: a byte-order mark, CRLF, trailing blanks. */
	FILE *f = fopen(path, "w");
	KT_CHECK(f != NULL);
	fputs("\xef\xbb\xbf# edited on Windows\r\n"
	      "kanon-chain-v1 7 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef "
	      "\r\n"
	      "kanon-erase-v1 0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef\r\n",
	      f);
	fclose(f);
	KT_CHECK(kn_keys_load(path, KN_PRF_SIPHASH, DAY, NOW, &k, err, sizeof(err)) == 0);
	KT_CHECK(k && kn_keys_first_epoch(k) == 7);
	kn_keys_destroy(k);
	write_lines(path, "0", 1, 1, "stray text\n");
	KT_CHECK(kn_keys_load(path, KN_PRF_SIPHASH, DAY, NOW, &k, err, sizeof(err)) == -EINVAL);
	KT_CHECK(strstr(err, "line 5") != NULL);
	/* Retiring is bounded by the current epoch: refused at once, the file
	 * untouched (999999999999 used to ratchet for minutes). */
	write_lines(path, "0", 1, 1, "");
	KT_CHECK(kn_keys_retire(path, 999999999999LL + 1, DAY, NOW, NULL, err, sizeof(err)) ==
		 -ERANGE);
	KT_CHECK(strstr(err, "current epoch is 20100") != NULL);
	KT_CHECK(kn_keys_retire(path, 20101, DAY, NOW, NULL, err, sizeof(err)) == -ERANGE);
	KT_CHECK(kn_keys_retire(path, 1, 0, NOW, NULL, err, sizeof(err)) == -ERANGE);
	KT_CHECK(kn_keys_load(path, KN_PRF_SIPHASH, DAY, NOW, &k, err, sizeof(err)) == 0);
	KT_CHECK(kn_keys_first_epoch(k) == 0);
	kn_keys_destroy(k);
	/* A running process does not follow a file replaced by one from the
	 * future: it keeps its keys and says why. */
	KT_CHECK(kn_keys_load(path, KN_PRF_SIPHASH, DAY, NOW, &k, err, sizeof(err)) == 0);
	write_lines(path, "20200", 1, 1, "");
	KT_CHECK(kn_keys_maintain(k, path, DAY, 30 * DAY, NOW, err, sizeof(err)) ==
		 KN_KEYS_NOT_FOLLOWED);
	KT_CHECK(strstr(err, "not followed") != NULL && kn_keys_first_epoch(k) == 0);
	kn_keys_destroy(k);
	write_lines(path, "0", 1, 1, "");
	/* Up to the current epoch itself is allowed (epochs before it go). */
	KT_CHECK(kn_keys_retire(path, 20100, DAY, NOW, NULL, err, sizeof(err)) == 0);
	KT_CHECK(kn_keys_load(path, KN_PRF_SIPHASH, DAY, NOW, &k, err, sizeof(err)) == 0);
	KT_CHECK(kn_keys_first_epoch(k) == 20100);
	kn_keys_destroy(k);
	unlink(path);
	rmdir(dir);
}

/* Symlinks are followed to a safe regular file (a Kubernetes Secret volume
 * is two of them); other file kinds are refused without being read. */
static void test_keyfile_kinds(void)
{
	char dir[] = "/tmp/kt-kinds.XXXXXX", path[400], real[300], data[300], link[300], err[512];
	struct kn_keys *k = NULL;
	uint8_t a[16], b[16];

	KT_CHECK(mkdtemp(dir) != NULL);
	/* <dir>/..2026_11_29/master.key, <dir>/..data -> ..2026_11_29,
	 * <dir>/key -> ..data/master.key: how the kubelet lays a Secret out. */
	snprintf(real, sizeof(real), "%s/..2026_11_29", dir);
	KT_CHECK(mkdir(real, 0700) == 0);
	snprintf(path, sizeof(path), "%s/master.key", real);
	KT_CHECK(kn_keys_generate(path, err, sizeof(err)) == 0);
	snprintf(data, sizeof(data), "%s/..data", dir);
	KT_CHECK(symlink("..2026_11_29", data) == 0);
	snprintf(link, sizeof(link), "%s/key", dir);
	KT_CHECK(symlink("..data/master.key", link) == 0);
	KT_CHECK(kn_keys_load(link, KN_PRF_SIPHASH, DAY, NOW, &k, err, sizeof(err)) == 0);
	KT_CHECK(k && kn_keys_prf(k, 20050, 0, "u", 1, a) == 0);
	kn_keys_destroy(k);
	/* 0400 is as good as 0600. */
	chmod(path, 0400);
	KT_CHECK(kn_keys_load(link, KN_PRF_SIPHASH, DAY, NOW, &k, err, sizeof(err)) == 0);
	kn_keys_destroy(k);
	chmod(path, 0600);
	/* Retiring through the link rewrites the target and keeps the link. */
	KT_CHECK(kn_keys_retire(link, 20000, DAY, NOW, NULL, err, sizeof(err)) == 0);
	struct stat st;
	KT_CHECK(lstat(link, &st) == 0 && S_ISLNK(st.st_mode));
	KT_CHECK(kn_keys_load(path, KN_PRF_SIPHASH, DAY, NOW, &k, err, sizeof(err)) == 0);
	KT_CHECK(k && kn_keys_first_epoch(k) == 20000 && kn_keys_prf(k, 20050, 0, "u", 1, b) == 0);
	KT_CHECK(!memcmp(a, b, 16));
	kn_keys_destroy(k);
	/* The target's mode counts, not the link's. */
	chmod(path, 0644);
	KT_CHECK(kn_keys_load(link, KN_PRF_SIPHASH, DAY, NOW, &k, err, sizeof(err)) == -EPERM);
	chmod(path, 0600);
	/* Owned by someone else: refused (needs root to arrange). */
	if (geteuid() == 0 && chown(path, 65534, 65534) == 0) {
		KT_CHECK(kn_keys_load(link, KN_PRF_SIPHASH, DAY, NOW, &k, err, sizeof(err)) ==
			 -EPERM);
		KT_CHECK(strstr(err, "owned by uid 65534") != NULL);
		KT_CHECK(chown(path, 0, 0) == 0);
	}
	/* A FIFO would block a reader until a writer comes: refused at once. */
	char fifo[300];
	snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
	KT_CHECK(mkfifo(fifo, 0600) == 0);
	KT_CHECK(kn_keys_load(fifo, KN_PRF_SIPHASH, DAY, NOW, &k, err, sizeof(err)) == -EINVAL);
	KT_CHECK(strstr(err, "FIFO") != NULL && strstr(err, "keygen") == NULL);
	KT_CHECK(kn_keys_load(dir, KN_PRF_SIPHASH, DAY, NOW, &k, err, sizeof(err)) == -EINVAL);
	KT_CHECK(strstr(err, "directory") != NULL);
	KT_CHECK(kn_keys_load("/dev/null", KN_PRF_SIPHASH, DAY, NOW, &k, err, sizeof(err)) ==
		 -EINVAL);
	/* A dangling link says what is missing. */
	unlink(data);
	KT_CHECK(kn_keys_load(link, KN_PRF_SIPHASH, DAY, NOW, &k, err, sizeof(err)) == -ENOENT);
	KT_CHECK(strstr(err, "symlink to nothing") && !strstr(err, "keygen")); /* it would refuse */
	/* A NUL byte would end the parse early, hiding what follows it. */
	chmod(path, 0600);
	FILE *f = fopen(path, "a");
	KT_CHECK(f && fwrite("\0junk\n", 1, 6, f) == 6);
	if (f)
		fclose(f);
	KT_CHECK(kn_keys_load(path, KN_PRF_SIPHASH, DAY, NOW, &k, err, sizeof(err)) == -EINVAL);
	KT_CHECK(strstr(err, "NUL") != NULL);
	unlink(fifo);
	unlink(link);
	unlink(path);
	rmdir(real);
	rmdir(dir);
}

/* Retention on a read-only key file (a mounted Secret): the keys still go
 * in this process, and the caller is told that the file keeps them. */
static void test_keyfile_read_only(void)
{
	char dir[] = "/tmp/kt-ro.XXXXXX", path[256], err[512];
	struct kn_keys *k = NULL;
	uint8_t a[16];

	KT_CHECK(mkdtemp(dir) != NULL);
	if (mount("tmpfs", dir, "tmpfs", 0, "size=64k,mode=0700")) {
		printf("skip test_keyfile_read_only: mount needs root (%s)\n", strerror(errno));
		rmdir(dir);
		return;
	}
	snprintf(path, sizeof(path), "%s/master.key", dir);
	KT_CHECK(kn_keys_generate(path, err, sizeof(err)) == 0);
	KT_CHECK(mount(NULL, dir, NULL, MS_REMOUNT | MS_RDONLY, "size=64k") == 0);
	KT_CHECK(kn_keys_load(path, KN_PRF_SIPHASH, DAY, NOW, &k, err, sizeof(err)) == 0);
	/* Explicit retirement fails plainly. */
	KT_CHECK(kn_keys_retire(path, 20000, DAY, NOW, NULL, err, sizeof(err)) == -EROFS);
	/* Retention: 30 days before NOW, in memory, said once. */
	KT_CHECK(kn_keys_maintain(k, path, DAY, 30 * DAY, NOW, err, sizeof(err)) ==
		 KN_KEYS_IN_MEMORY);
	KT_CHECK(strstr(err, "read-only") != NULL);
	KT_CHECK(kn_keys_first_epoch(k) == 20070);
	KT_CHECK(kn_keys_prf(k, 20069, 0, "u", 1, a) == -ENOKEY);
	KT_CHECK(kn_keys_prf(k, 20070, 0, "u", 1, a) == 0);
	KT_CHECK(kn_keys_maintain(k, path, DAY, 30 * DAY, NOW, err, sizeof(err)) == 0);
	kn_keys_destroy(k);
	KT_CHECK(umount(dir) == 0);
	rmdir(dir);
}

/* Pseudonyms print as lower-case hex, every byte value alike. */
static void test_pid_hex(void)
{
	uint8_t in[KN_PRF_BYTES];
	char got[KN_PID_HEX_LEN + 1], want[KN_PID_HEX_LEN + 1];

	for (int start = 0; start < 256; start += KN_PRF_BYTES) {
		for (int i = 0; i < KN_PRF_BYTES; i++)
			in[i] = (uint8_t)(start + i);
		for (int i = 0; i < KN_PRF_BYTES; i++)
			snprintf(want + 2 * i, 3, "%02x", in[i]);
		kn_pid_hex(in, got);
		KT_STREQ(got, want);
	}
}

int main(void)
{
	KT_RUN(test_pid_hex);
	KT_RUN(test_determinism_and_separation);
	KT_RUN(test_prf_threads);
	KT_RUN(test_matches_reference);
	KT_RUN(test_retire);
	KT_RUN(test_prfs_differ);
	KT_RUN(test_keyfile);
	KT_RUN(test_keyfile_numbers);
	KT_RUN(test_keyfile_kinds);
	KT_RUN(test_keyfile_read_only);
	return kt_done();
}
