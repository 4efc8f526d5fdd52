#include "stop.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "kn_alloc.h"
#include "log.h"

/* Monotonic ms of the request, 0 before. Lock-free on every platform we
 * build for, hence safe in a signal handler. */
static _Atomic int64_t requested_at;

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "a signal handler stores this");

void kn_stop_request(void)
{
	int64_t expected = 0, now = kn_mono_ms();

	atomic_compare_exchange_strong(&requested_at, &expected, now > 0 ? now : 1);
}

bool kn_stop_requested(void)
{
	return atomic_load(&requested_at) != 0;
}

int64_t kn_stop_deadline(void)
{
	int64_t at = atomic_load(&requested_at);

	return at ? at + KN_STOP_BUDGET_MS : INT64_MAX;
}

int64_t kn_stop_drain_deadline(void)
{
	int64_t at = atomic_load(&requested_at);

	return at ? at + KN_STOP_DRAIN_MS : INT64_MAX;
}

static int wait_until(int64_t until, int64_t stop_at)
{
	int64_t now = kn_mono_ms(), end = until < stop_at ? until : stop_at;

	if (end <= now)
		return 0;
	return end - now < KN_STOP_SLICE_MS ? (int)(end - now) : KN_STOP_SLICE_MS;
}

int kn_stop_wait(int64_t until)
{
	return wait_until(until, kn_stop_deadline());
}

int kn_stop_drain_wait(int64_t until)
{
	return wait_until(until, kn_stop_drain_deadline());
}

void kn_stop_reset(void)
{
	atomic_store(&requested_at, 0);
}

/* ---- bounded calls ---- */

struct bounded {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	void (*fn)(void *), (*release)(void *);
	void *arg;
	bool done, orphaned;
};

static void bounded_free(struct bounded *b)
{
	pthread_cond_destroy(&b->cv);
	pthread_mutex_destroy(&b->mu);
	kn_free(b);
}

static void *bounded_run(void *p)
{
	struct bounded *b = p;
	bool orphaned;

	b->fn(b->arg);
	pthread_mutex_lock(&b->mu);
	b->done = true;
	orphaned = b->orphaned;
	pthread_cond_signal(&b->cv);
	pthread_mutex_unlock(&b->mu);
	if (orphaned) { /* nobody waits any more: ours to free */
		if (b->release)
			b->release(b->arg);
		bounded_free(b);
	}
	return NULL;
}

static _Atomic bool walked_away;

bool kn_stop_walked_away(void)
{
	return atomic_load(&walked_away);
}

/* Condition waits on the monotonic clock: a wall clock set back during a
 * stop must not stretch it. */
static void abs_after_ms(struct timespec *ts, int ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_nsec += (long)ms * 1000000L;
	ts->tv_sec += ts->tv_nsec / 1000000000L;
	ts->tv_nsec %= 1000000000L;
}

bool kn_stop_bounded(void (*fn)(void *), void (*release)(void *), void *arg, int64_t until,
		     bool drain)
{
	struct bounded *b = kn_calloc(1, sizeof(*b));
	pthread_attr_t attr;
	pthread_t t;
	bool done;

	if (!b) {
		fn(arg);
		return true;
	}
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_mutex_init(&b->mu, NULL);
	pthread_cond_init(&b->cv, &ca);
	pthread_condattr_destroy(&ca);
	b->fn = fn;
	b->release = release;
	b->arg = arg;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &attr, bounded_run, b)) {
		pthread_attr_destroy(&attr);
		bounded_free(b);
		fn(arg);
		return true;
	}
	pthread_attr_destroy(&attr);
	pthread_mutex_lock(&b->mu);
	for (int w; !b->done && (w = drain ? kn_stop_drain_wait(until) : kn_stop_wait(until));) {
		struct timespec ts;
		abs_after_ms(&ts, w);
		pthread_cond_timedwait(&b->cv, &b->mu, &ts);
	}
	done = b->done;
	b->orphaned = !done;
	pthread_mutex_unlock(&b->mu);
	if (done)
		bounded_free(b);
	else
		atomic_store(&walked_away, true);
	return done;
}

/* ---- the watchdog ---- */

static _Atomic int settled = KN_EXIT_ABANDONED;

void kn_stop_settle(int exit_code)
{
	atomic_store(&settled, exit_code);
}

static void *watchdog(void *unused)
{
	(void)unused;
	while (!kn_stop_requested())
		usleep(100 * 1000);
	while (kn_mono_ms() < kn_stop_deadline() + 500)
		usleep(100 * 1000);
	kn_err("stop", "still not done %.1f s after the stop request: exiting now (exit %d)",
	       (KN_STOP_BUDGET_MS + 500) / 1000.0, atomic_load(&settled));
	_exit(atomic_load(&settled));
	return NULL;
}

void kn_stop_arm_watchdog(void)
{
	pthread_attr_t attr;
	pthread_t t;

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &attr, watchdog, NULL))
		kn_warn("stop", "no watchdog thread: a stop is bounded only by the deadlines");
	pthread_attr_destroy(&attr);
}
