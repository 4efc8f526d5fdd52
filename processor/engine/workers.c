#include "workers.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "kn_alloc.h"

struct thread {
	struct kn_workers *w;
	int i;
	pthread_t t;
};

struct kn_workers {
	int n, started;
	struct thread *th; /* th[1..n-1] */
	pthread_mutex_t mu;
	pthread_cond_t go, done;
	uint64_t round; /* bumped by every run: the threads' signal to start */
	int pending;	/* threads not done with this round */
	kn_work_fn *fn;
	void *arg;
	bool quit;
};

static void *thread_main(void *p)
{
	struct thread *t = p;
	struct kn_workers *w = t->w;
	uint64_t seen = 0;
	char name[16];

	snprintf(name, sizeof(name), "kanon-work-%d", t->i);
	pthread_setname_np(pthread_self(), name);
	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (w->round == seen && !w->quit)
			pthread_cond_wait(&w->go, &w->mu);
		if (w->quit)
			break;
		seen = w->round;
		kn_work_fn *fn = w->fn;
		void *arg = w->arg;
		pthread_mutex_unlock(&w->mu);
		fn(arg, t->i);
		pthread_mutex_lock(&w->mu);
		if (--w->pending == 0)
			pthread_cond_signal(&w->done);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

int kn_workers_new(int n, struct kn_workers **out)
{
	struct kn_workers *w = kn_calloc(1, sizeof(*w));

	*out = NULL;
	if (!w || !(w->th = kn_calloc((size_t)n, sizeof(*w->th)))) {
		kn_free(w);
		return -ENOMEM;
	}
	w->n = n;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->go, NULL);
	pthread_cond_init(&w->done, NULL);
	for (int i = 1; i < n; i++) {
		w->th[i] = (struct thread){w, i};
		if (pthread_create(&w->th[i].t, NULL, thread_main, &w->th[i])) {
			kn_workers_destroy(w);
			return -EAGAIN;
		}
		w->started = i;
	}
	*out = w;
	return 0;
}

int kn_workers_count(const struct kn_workers *w)
{
	return w->n;
}

void kn_workers_run(struct kn_workers *w, kn_work_fn *fn, void *arg)
{
	if (w->n == 1) {
		fn(arg, 0);
		return;
	}
	pthread_mutex_lock(&w->mu);
	w->fn = fn;
	w->arg = arg;
	w->pending = w->n - 1;
	w->round++;
	pthread_cond_broadcast(&w->go);
	pthread_mutex_unlock(&w->mu);
	fn(arg, 0);
	pthread_mutex_lock(&w->mu);
	while (w->pending)
		pthread_cond_wait(&w->done, &w->mu);
	pthread_mutex_unlock(&w->mu);
}

void kn_workers_destroy(struct kn_workers *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	w->quit = true;
	pthread_cond_broadcast(&w->go);
	pthread_mutex_unlock(&w->mu);
	for (int i = 1; i <= w->started; i++)
		pthread_join(w->th[i].t, NULL);
	pthread_cond_destroy(&w->done);
	pthread_cond_destroy(&w->go);
	pthread_mutex_destroy(&w->mu);
	kn_free(w->th);
	kn_free(w);
}

int kn_workers_default(void)
{
	cpu_set_t set;
	long n = 0;

	if (!sched_getaffinity(0, sizeof(set), &set))
		n = CPU_COUNT(&set);
	if (n <= 0)
		n = sysconf(_SC_NPROCESSORS_ONLN);
	/* One core stays with librdkafka's threads (fetching, decompressing,
	 * compressing, sending): on 2 cores, 2 workers ran at 0.82 of 1. */
	return n > 1 ? (int)n - 1 : 1;
}
