/* kt: the smallest test harness that says what failed and where.
 * Each test file defines main() with KT_RUN(test_fn) lines and returns
 * kt_done(); failures print file:line and the expression. */
#ifndef KT_H
#define KT_H

#include <stdio.h>
#include <string.h>

static int kt_fail, kt_checks;

#define KT_CHECK(cond)                                                                             \
	do {                                                                                       \
		kt_checks++;                                                                       \
		if (!(cond)) {                                                                     \
			kt_fail++;                                                                 \
			fprintf(stderr, "%s:%d: FAILED: %s\n", __FILE__, __LINE__, #cond);         \
		}                                                                                  \
	} while (0)

#define KT_STREQ(a, b)                                                                             \
	do {                                                                                       \
		const char *kt_a = (a), *kt_b = (b);                                               \
		kt_checks++;                                                                       \
		if (!kt_a || !kt_b || strcmp(kt_a, kt_b)) {                                        \
			kt_fail++;                                                                 \
			fprintf(stderr, "%s:%d: FAILED: %s == %s (\"%s\" vs \"%s\")\n", __FILE__,  \
				__LINE__, #a, #b, kt_a ? kt_a : "(null)", kt_b ? kt_b : "(null)"); \
		}                                                                                  \
	} while (0)

#define KT_RUN(fn)                                                                                 \
	do {                                                                                       \
		int kt_before = kt_fail;                                                           \
		fn();                                                                              \
		printf("%s %s\n", kt_fail == kt_before ? "ok  " : "FAIL", #fn);                    \
	} while (0)

static inline int kt_done(void)
{
	printf("%d checks, %d failed\n", kt_checks, kt_fail);
	return kt_fail ? 1 : 0;
}

#endif
