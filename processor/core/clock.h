/* clock: the two clocks kanon reads, so no module picks its own.
 *   kn_wall_ms   CLOCK_REALTIME: whatever is compared with event times and
 *                Kafka timestamps (key epochs, retention, validation);
 *   kn_mono_*    CLOCK_MONOTONIC: intervals, timeouts and deadlines, which
 *                must not jump when the wall clock is set;
 *   kn_utc_year  the calendar year of a timestamp, without libc's locks. */
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

/* The proleptic Gregorian year of a UTC millisecond timestamp, by
 * arithmetic (days-from-civil inverted): gmtime_r would take glibc's
 * time-zone lock for every record that carries a birth year. */
static inline int64_t kn_utc_year(int64_t ms)
{
	int64_t z = (ms >= 0 ? ms : ms - 86399999) / 86400000 + 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	return yoe + era * 400 + (mp >= 10);
}

/* Sleeps ms milliseconds (a signal may end it early: callers re-check). */
static inline void kn_sleep_ms(int64_t ms)
{
	nanosleep(&(struct timespec){(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L}, NULL);
}

#endif
