/* The worker pool: every worker runs every round exactly once, worker 0 on
 * the caller's thread, and a run returns only when all are done. */
#include <pthread.h>
#include <stdatomic.h>

#include "kt.h"
#include "workers.h"

#define ROUNDS 2000

struct round {
	pthread_t caller;
	int seen[8];	    /* per worker: rounds run */
	atomic_int running; /* workers inside fn at once */
	atomic_int max_running;
	int bad_zero; /* worker 0 not on the caller's thread */
};

static void work(void *arg, int w)
{
	struct round *r = arg;
	int now = atomic_fetch_add(&r->running, 1) + 1;

	if (now > atomic_load(&r->max_running))
		atomic_store(&r->max_running, now);
	if (w == 0 && !pthread_equal(pthread_self(), r->caller))
		r->bad_zero++;
	r->seen[w]++;
	atomic_fetch_sub(&r->running, 1);
}

static void check_pool(int n)
{
	struct kn_workers *w;
	struct round r = {.caller = pthread_self()};

	KT_CHECK(kn_workers_new(n, &w) == 0);
	KT_CHECK(kn_workers_count(w) == n);
	for (int i = 0; i < ROUNDS; i++) {
		kn_workers_run(w, work, &r);
		/* Returned: nobody is still inside, and everyone ran this round. */
		KT_CHECK(atomic_load(&r.running) == 0);
		for (int k = 0; k < n; k++)
			if (r.seen[k] != i + 1)
				KT_CHECK(r.seen[k] == i + 1);
	}
	KT_CHECK(r.bad_zero == 0);
	KT_CHECK(atomic_load(&r.max_running) <= n);
	kn_workers_destroy(w);
}

static void test_one_worker(void)
{
	check_pool(1);
}

static void test_several_workers(void)
{
	check_pool(2);
	check_pool(5);
}

static void test_default(void)
{
	KT_CHECK(kn_workers_default() >= 1);
}

int main(void)
{
	KT_RUN(test_one_worker);
	KT_RUN(test_several_workers);
	KT_RUN(test_default);
	kn_workers_destroy(NULL);
	return kt_done();
}
