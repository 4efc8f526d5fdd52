/* libFuzzer target: the container reader (io/container.c) and the decoder
 * that splits its blocks into records, on arbitrary files. Any memory error
 * (built with ASan/UBSan), a block beyond KN_BLOCK_MAX, damage that does not
 * move forward, or a hang aborts. tests/fuzz/run.sh builds and runs it from
 * seeds in every codec (tests/fuzz/container_seeds.py). */
#include <stdio.h>
#include <stdlib.h>

#include "container.h"
#include "decode.h"

static void check_block(const struct kn_decoder *d, const struct kn_block *b)
{
	struct kn_event ev;
	const char *why;
	size_t off = 0, used;

	if (b->len > KN_BLOCK_MAX || b->count < 0 || b->size < 18)
		abort();
	if (!d || (uint64_t)b->count > b->len) /* as filemode: not believed */
		return;
	for (int64_t i = 0; i < b->count; i++) {
		if (kn_decoder_decode_prefix(d, b->data + off, b->len - off, &ev, &used, &why))
			return;
		if (used > b->len - off)
			abort();
		off += used;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *roles[KN_ROLE_COUNT] = {0};
	struct kn_container *c;
	struct kn_decoder *d = NULL;
	struct kn_block b;
	struct kn_damage dm;
	char err[512];
	int64_t last = -1;
	int rc;

	FILE *fp = size ? fmemopen((void *)data, size, "rb") : NULL;
	if (!fp || kn_container_open_stream(fp, "fuzz", &c, err, sizeof(err)))
		return 0;
	if (kn_decoder_new(kn_container_schema(c), roles, &d, err, sizeof(err)))
		d = NULL; /* a schema the decoder refuses: blocks are still read */
	while ((rc = kn_container_next(c, &b, &dm, err, sizeof(err))) > 0) {
		int64_t at = rc == 1 ? b.offset : dm.offset;
		if (at <= last || (rc == 2 && dm.length == 0))
			abort(); /* no progress */
		last = at;
		if (rc == 1)
			check_block(d, &b);
	}
	if (d)
		kn_decoder_destroy(d);
	kn_container_close(c);
	return 0;
}
