/* clock: the two clocks kanon reads, so no module picks its own.
 *   kn_wall_ms   CLOCK_REALTIME: whatever is compared with event times and
 *                Kafka timestamps (key epochs, retention, validation);
 *   kn_mono_*    CLOCK_MONOTONIC: intervals, timeouts and deadlines, which
 *                must not jump when the wall clock is set. */
#ifndef KN_CLOCK_H
#define KN_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t kn_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline int64_t kn_mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static inline int64_t kn_mono_ms(void)
{
	return kn_mono_us() / 1000;
}

/* Sleeps ms milliseconds (a signal may end it early: callers re-check). */
static inline void kn_sleep_ms(int64_t ms)
{
	nanosleep(&(struct timespec){(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L}, NULL);
}

#endif
