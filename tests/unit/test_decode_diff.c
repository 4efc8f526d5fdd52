/* Differential test: kanon's decoder against avro-c's generic reader on
 * random schemas, random conforming datums and their mutations (every
 * truncation, byte flips, a trailing byte). The oracle's rules are in
 * tests/fuzz/decode_oracle.h. KN_FUZZ_CORPUS=DIR also writes the datums
 * there as seeds for the fuzz target (one schema byte, then the datum). */
#include <stdlib.h>

#include "../fuzz/decode_oracle.h"
#include "kt.h"

enum {
	SCHEMAS = 256,
	DATUMS = 12
};

static unsigned long checked, accepted;

static void check(const struct orc_schema *o, const uint8_t *buf, size_t len, uint64_t seed)
{
	char err[512];
	int rc = orc_check(o, buf, len, err, sizeof(err));

	if (rc) {
		fprintf(stderr, "schema seed %llu: %s\nschema: %s\ninput (%zu bytes):",
			(unsigned long long)seed, err, o->json, len);
		for (size_t i = 0; i < len && i < 96; i++)
			fprintf(stderr, " %02x", buf[i]);
		fputc('\n', stderr);
		KT_CHECK(rc == 0);
	}
	checked++;
}

static void write_seed(const char *dir, unsigned s, int i, const uint8_t *buf, size_t len)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/s%03u-%02d", dir, s, i);
	if ((f = fopen(path, "wb"))) {
		fputc((int)s, f);
		fwrite(buf, 1, len, f);
		fclose(f);
	}
}

static void test_random_schemas(void)
{
	const char *corpus = getenv("KN_FUZZ_CORPUS");
	static uint8_t buf[1 << 16], mut[1 << 16];
	char err[1024];

	for (unsigned s = 0; s < SCHEMAS; s++) {
		struct orc_schema o;
		struct orc_rng r = {s * 7919ULL + 17};
		if (orc_schema_new(s, &o, err, sizeof(err))) {
			fprintf(stderr, "schema seed %u: %s\n", s, err);
			KT_CHECK(0);
			continue;
		}
		for (int i = 0; i < DATUMS; i++) {
			size_t n = orc_datum(&r, &o, buf, sizeof(buf));
			struct kn_event ev;
			const char *why;
			KT_CHECK(n != (size_t)-1);
			if (n == (size_t)-1)
				continue;
			/* Conforming: both must read it, and agree. */
			KT_CHECK(kn_decoder_decode(o.dec, buf, n, &ev, &why) == 0);
			accepted++;
			check(&o, buf, n, s);
			if (corpus)
				write_seed(corpus, s, i, buf, n);
			for (size_t cut = 0; cut < n; cut++)
				check(&o, buf, cut, s);
			for (int f = 0; f < 16 && n; f++) {
				memcpy(mut, buf, n);
				mut[orc_below(&r, (uint32_t)n)] ^=
					(uint8_t)(1u << orc_below(&r, 8));
				check(&o, mut, n, s);
				mut[orc_below(&r, (uint32_t)n)] = (uint8_t)orc_next(&r);
				check(&o, mut, n, s);
			}
			memcpy(mut, buf, n);
			mut[n] = 0;
			check(&o, mut, n + 1, s);
		}
		orc_schema_free(&o);
	}
	fprintf(stderr, "decode_diff: %lu inputs checked, %lu conforming datums\n", checked,
		accepted);
	KT_CHECK(checked > 10000);
}

int main(void)
{
	orc_init();
	KT_RUN(test_random_schemas);
	return kt_done();
}
