/* stop: the process's one stop request and the deadline it sets.
 *
 * SIGINT/SIGTERM call kn_stop_request(), which records when it came (an
 * atomic store: async-signal-safe). From that moment the process has
 * KN_STOP_BUDGET_MS to finish: every blocking call on the way out (flushes,
 * offset commits, transactions, consumer closes, metadata requests) asks
 * kn_stop_wait() how long it may wait, and gives up once the budget is
 * spent, whatever the broker does. Before a stop, long waits are cut into
 * slices of at most KN_STOP_SLICE_MS, so a stop arriving in the middle of one
 * is seen within a slice.
 *
 * The budget is spent in phases (engine/alo.c and eos.c): deliver and commit
 * until kn_stop_drain_deadline() (KN_STOP_DRAIN_MS after the signal); then
 * leave the consumer group, which is started only when KN_STOP_LEAVE_MS
 * remain before the budget's end (librdkafka's LeaveGroup request times out
 * after 5 s, and destroying a consumer waits for it): a quick drain leaves
 * the group, a slow one uses the time to deliver instead. Work not committed
 * by then is abandoned, left for the next run to redo: nothing is lost, and
 * the exit code says so (KN_EXIT_ABANDONED). What remains after the drain
 * deadline is the margin for tearing down. */
#ifndef KN_STOP_H
#define KN_STOP_H

#include <stdbool.h>
#include <stdint.h>

#define KN_STOP_BUDGET_MS 7500 /* from the signal to the end of the last wait */
#define KN_STOP_DRAIN_MS  5000 /* from the signal to the end of delivering */
#define KN_STOP_LEAVE_MS  5500 /* what leaving the consumer group may take */
#define KN_STOP_SLICE_MS  500  /* longest wait between two looks at the flag */

/* Exit codes of `kanon run` (also in --help and the README). */
enum kn_exit {
	KN_EXIT_OK = 0,	       /* done, or stopped with everything committed */
	KN_EXIT_FAILURE = 1,   /* runtime failure (the message says which) */
	KN_EXIT_CONFIG = 2,    /* usage or configuration error, before any network I/O */
	KN_EXIT_ABANDONED = 3, /* stopped with uncommitted work: redone by the next run */
	KN_EXIT_FENCED = 4,    /* exactly-once: another instance took the transactional.id */
};

/* Records a stop request (first call wins). Async-signal-safe. */
void kn_stop_request(void);
bool kn_stop_requested(void);
/* Monotonic ms by which everything must be done; INT64_MAX before a stop. */
int64_t kn_stop_deadline(void);
/* The end of the delivery phase (KN_STOP_DRAIN_MS after the signal). */
int64_t kn_stop_drain_deadline(void);

/* How long the next blocking call may wait, in ms, given the caller's own
 * deadline until (monotonic ms, INT64_MAX: none): at most a slice, never
 * past until nor past the stop deadline. 0: stop waiting. */
int kn_stop_wait(int64_t until);
/* Like kn_stop_wait, but the stop only cuts it at the drain deadline: for
 * delivering and committing, which should finish if the broker lets them. */
int kn_stop_drain_wait(int64_t until);

/* Runs fn(arg) on a thread of its own and waits for it to return, until
 * `until` (monotonic ms, INT64_MAX: none) or the stop's deadline (its drain
 * deadline with drain). For calls that librdkafka does not bound itself.
 * Returns true when fn returned; false when the caller walked away: fn goes
 * on, and when it returns the thread calls release(arg), which then owns
 * arg. Without a thread to be had, fn runs on the caller's. */
bool kn_stop_bounded(void (*fn)(void *), void (*release)(void *), void *arg, int64_t until,
		     bool drain);
/* True once kn_stop_bounded walked away from a call: library threads may
 * still run, so the process should end with _exit() (no atexit handlers
 * racing them). */
bool kn_stop_walked_away(void);

/* The last resort: once a stop is requested, a watchdog thread ends the
 * process with KN_EXIT_ABANDONED (or the code given to kn_stop_settle)
 * half a second after the budget, whatever is still blocked. Logs it. */
void kn_stop_arm_watchdog(void);
/* The exit code the watchdog uses (what the stop achieved so far). */
void kn_stop_settle(int exit_code);

/* For tests: forget a request. */
void kn_stop_reset(void);

#endif
