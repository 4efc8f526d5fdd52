/* libFuzzer target: kanon's decoder against avro-c on random schemas.
 * The first input byte picks one of 256 random schemas (decode_oracle.h),
 * the rest is the datum. Any disagreement the oracle does not allow, and
 * any memory error (built with ASan/UBSan), aborts. tests/fuzz/run.sh
 * builds and runs it; test_decode_diff writes its seed corpus. */
#include <stdlib.h>

#include "decode_oracle.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	orc_init();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct orc_schema schemas[256];
	static bool built[256];
	char err[1024];

	if (!size)
		return 0;
	struct orc_schema *o = &schemas[data[0]];
	if (!built[data[0]]) {
		if (orc_schema_new(data[0], o, err, sizeof(err))) {
			fprintf(stderr, "schema %u: %s\n", data[0], err);
			abort();
		}
		built[data[0]] = true;
	}
	if (orc_check(o, data + 1, size - 1, err, sizeof(err))) {
		fprintf(stderr, "schema %u disagreement: %s\nschema: %s\n", data[0], err, o->json);
		abort();
	}
	return 0;
}
