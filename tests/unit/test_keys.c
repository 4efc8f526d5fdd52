#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keys.h"
#include "kt.h"

static const uint8_t master[KN_MASTER_KEY_BYTES] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};

static void prf(struct kn_keys *k, int64_t epoch, int dom, const char *s, uint8_t out[16])
{
	kn_keys_prf(k, epoch, dom, s, strlen(s), out);
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

/* The documented derivation, recomputed with libsodium's one-shot calls:
 * proves the cached/precomputed states give the textbook PRF outputs. */
static void test_matches_reference(void)
{
	struct kn_keys *k;
	uint8_t sub[32], want[32], got[16];
	const char *msg = "alice@example.com";

	crypto_kdf_derive_from_key(sub, 32, 20758, "kn_email", master);

	KT_CHECK(kn_keys_from_master(master, KN_PRF_SIPHASH, &k) == 0);
	prf(k, 20758, 3, msg, got);
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
	KT_CHECK(kn_keys_load(path, KN_PRF_SIPHASH, &k, err, sizeof(err)) == 0);
	kn_keys_destroy(k);
	/* Group- or world-readable: refused, and the message says how to fix it. */
	chmod(path, 0640);
	KT_CHECK(kn_keys_load(path, KN_PRF_SIPHASH, &k, err, sizeof(err)) == -EPERM);
	KT_CHECK(k == NULL);
	KT_CHECK(strstr(err, "chmod 600") != NULL);
	chmod(path, 0604);
	KT_CHECK(kn_keys_load(path, KN_PRF_SIPHASH, &k, err, sizeof(err)) == -EPERM);
	/* The error never contains the key material. */
	FILE *f = fopen(path, "r");
	char text[256] = "";
	KT_CHECK(f && fread(text, 1, sizeof(text) - 1, f) > 0);
	fclose(f);
	char *hex = strstr(text, "kanon-key-v1 ");
	KT_CHECK(hex && !strstr(err, hex + 13));
	unlink(path);
	/* Garbage is refused. */
	int fd = open(path, O_CREAT | O_WRONLY, 0600);
	KT_CHECK(write(fd, "kanon-key-v1 zz\n", 16) == 16);
	close(fd);
	KT_CHECK(kn_keys_load(path, KN_PRF_SIPHASH, &k, err, sizeof(err)) == -EINVAL);
	unlink(path);
	KT_CHECK(kn_keys_load(path, KN_PRF_SIPHASH, &k, err, sizeof(err)) == -ENOENT);
	rmdir(dir);
}

int main(void)
{
	KT_RUN(test_determinism_and_separation);
	KT_RUN(test_matches_reference);
	KT_RUN(test_prfs_differ);
	KT_RUN(test_keyfile);
	return kt_done();
}
