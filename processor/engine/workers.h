/* workers: the pipeline on every core. A fixed pool that runs one function
 * on every worker at once and returns when all are done (fork-join, once
 * per pipeline step of a batch). Worker 0 is the calling thread; with one
 * worker there is no thread at all.
 *
 * What the function touches must be the worker's own or read-only while it
 * runs: the run loop gives each worker its own pipeline and its own share of
 * the batch (engine/run.c). */
#ifndef KN_WORKERS_H
#define KN_WORKERS_H

struct kn_workers;

typedef void(kn_work_fn)(void *arg, int worker);

/* n workers (n - 1 threads, named "kanon-work-<i>"). Returns 0 or a
 * negative errno. */
int kn_workers_new(int n, struct kn_workers **out);
int kn_workers_count(const struct kn_workers *w);
/* Runs fn(arg, i) for every worker i, i = 0 on the caller's thread, and
 * waits for all. */
void kn_workers_run(struct kn_workers *w, kn_work_fn *fn, void *arg);
/* Stops and joins the threads, and frees. Accepts NULL. */
void kn_workers_destroy(struct kn_workers *w);

/* The default number of workers: the cores this process may run on, less
 * one for librdkafka's threads (at least one). */
int kn_workers_default(void);

#endif
