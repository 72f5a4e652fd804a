/* Fixtures shared by the test programs.
 *
 * Per-test clean-up.  What a test makes through these helpers (clients,
 * lock handles, waiter threads, servers of its own, shared memory, child
 * processes) is undone by tf_teardown() after the test, whether it passed
 * or failed: a failed assertion leaves the test function at once, and
 * without this a renewal thread or a waiter would go on writing into its
 * dead stack frame, and its locks and connections would trip up the next
 * test.  Give each test tf_teardown (or a teardown that calls it):
 *     cmocka_unit_test_setup_teardown(test_x, tu_setup, tf_teardown)
 * and keep what a thread or callback writes to in static or heap storage
 * (the waiters below live in a static pool), never on the test's stack.
 *
 * N masters.  tf_masters_start(n) in a group set-up starts n redis-server
 * processes (tf_masters[0..n-1], their URLs in tf_urls); tf_masters_setup
 * gives every test all of them running (restarted if a test stopped one,
 * continued if it paused one) and empty. */
#ifndef TEST_FIXTURES_H
#define TEST_FIXTURES_H

#include <pthread.h>

#include "testutil.h"

/* ------------------------------------------------------ per-test clean-up */

typedef void tf_cleanup_fn(void *arg);
/* Run fn(arg) after this test (tf_teardown), the last registered first. */
void tf_defer(tf_cleanup_fn *fn, void *arg);
/* Run now, and forget, the last clean-up registered for arg (a client, a
 * lock handle...): for tests whose subject is the free itself.  Nothing
 * happens when none is registered. */
void tf_undefer(void *arg);
/* Per-test teardown: kills and reaps the children tu_spawn() started that
 * were not waited for, then runs every clean-up, the last registered
 * first.  Always 0. */
int tf_teardown(void **state);

/* Clients and lock handles freed after the test (the test must not free
 * them itself; tf_undefer() frees one earlier).  They fail the test when
 * creation fails. */
redislock_client *tf_client(const char *url);
redislock_client *tf_client_opts(const char *url, const redislock_client_options *o);
redislock *tf_lock(redislock_client *c, const char *name, int64_t expire_ms);
redislock *tf_lock_opts(redislock_client *c, const char *name, const redislock_options *o);

/* A redis-server of this test only, stopped after it; s must be static.
 * Skips the test when redis-server is not installed. */
void tf_server_start(ts_server *s);

/* size bytes of zeroed memory shared with the children of this process
 * (mmap MAP_SHARED), unmapped after the test. */
void *tf_shared(size_t size);

/* Acquire n locks named prefix0 .. prefix<n-1> on c and free their handles
 * without releasing them (stale locks, for the reset tests). */
void tf_take_locks(redislock_client *c, const char *prefix, int n);

/* ------------------------------------------------------------- contenders */

/* Contenders for one lock in child processes: procs processes (tu_spawn),
 * each with one client made by make_client(ud) and threads threads, each
 * running fn() once on its tf_contender; a process exits 0 when they all
 * returned (10 when make_client returned NULL).  What they record goes in
 * shared memory (tf_shared, intervals.h).  Children a failed test leaves
 * are killed by tf_teardown. */
#define TF_MAX_PROCS 16
#define TF_MAX_THREADS 16
typedef struct tf_contender {
    redislock_client *c;
    int proc, thread;
    int slot;           /* proc * threads + thread: 0 .. procs * threads - 1 */
    int64_t end_ms;     /* tu_now_ms() run_ms after its process started */
    void *ud;
} tf_contender;
void tf_contenders_start(int procs, int threads, int run_ms,
                         redislock_client *(*make_client)(void *ud),
                         void (*fn)(tf_contender *), void *ud);
/* Wait for them; fails the test unless every process exited 0. */
void tf_contenders_wait(void);

/* ----------------------------------------------------------------- waiters */

/* redislock_acquire(lk, timeout) in a thread of its own, which, if hold_ms
 * > 0 and the lock was taken, keeps it that long and releases it.  Waiters
 * come from a static pool; tf_teardown joins those still running. */
typedef struct tf_waiter {
    /* set by tf_waiter_new(); may be changed before tf_waiter_run() */
    redislock *lk;
    int64_t timeout;
    int hold_ms;
    void (*before)(struct tf_waiter *w); /* run in the thread before acquire */
    void *ud;
    /* results: read them after tf_waiter_join(), or once tf_waiter_done() */
    int rc;             /* acquire's */
    int release_rc;     /* release's, when held for hold_ms */
    int64_t start, got; /* tu_now_ms() right before acquire, and when it returned */
    char msg[512];      /* redislock_errmsg() after acquire */
    /* internal */
    int done;           /* atomic */
    int running;
    pthread_t t;
} tf_waiter;

/* A waiter not started yet, with the given lock and timeout. */
tf_waiter *tf_waiter_new(redislock *lk, int64_t timeout);
void tf_waiter_run(tf_waiter *w);
/* tf_waiter_new() and tf_waiter_run(). */
tf_waiter *tf_waiter_start(redislock *lk, int64_t timeout);
tf_waiter *tf_waiter_start_hold(redislock *lk, int64_t timeout, int hold_ms);
/* Wait for the thread to end (safe to call twice). */
void tf_waiter_join(tf_waiter *w);
/* 1 once acquire returned (rc, got, msg are set); safe while it runs. */
int tf_waiter_done(tf_waiter *w);
/* Wait until acquire returned, at most ms; fails the test after that. */
void tf_waiter_await(tf_waiter *w, int ms);
/* Fails the test unless acquire returned REDISLOCK_OK (naming the error). */
void tf_waiter_assert_ok(const tf_waiter *w);

/* ----------------------------------------------------------- N masters */

#define TF_MAX_MASTERS 6
extern ts_server tf_masters[TF_MAX_MASTERS];
extern const char *tf_urls[TF_MAX_MASTERS];
extern int tf_nmasters; /* how many tf_masters_start() started */

/* In a group set-up: start n masters (fill tf_masters[i].password, .extra
 * before).  0 on success and when redis-server is not installed (every
 * test then skips in tf_masters_setup), -1 on failure. */
int tf_masters_start(int n);
/* Group set-ups and teardown for programs that need nothing else. */
int tf_masters_group_setup_1(void **state);
int tf_masters_group_setup_3(void **state);
int tf_masters_group_setup_5(void **state);
int tf_masters_group_teardown(void **state);
/* Per test: skipped without servers; else every master running and empty. */
int tf_masters_setup(void **state);
/* Per test: continue the masters a failed test left paused (so that its
 * waiters return), then tf_teardown(). */
int tf_masters_teardown(void **state);

/* The master timeout of majority-mode clients in tests that are not about
 * it (tf_multi(n, 0)): a healthy master on a loaded machine now and then
 * takes longer than the library's default of 50 ms per step (its first
 * step is a connect and two round trips: EVALSHA, NOSCRIPT, EVAL), and a
 * test of what a quorum decides must not fail for that. */
#define TF_MASTER_TIMEOUT_MS 1000

/* A client over the first n masters (majority mode), freed after the test;
 * master_timeout_ms 0 is TF_MASTER_TIMEOUT_MS. */
redislock_client *tf_multi(int n, int master_timeout_ms);
redislock_client *tf_multi_opts(int n, const redislock_client_options *o);
/* A majority-mode client over any n URLs, freed after the test. */
redislock_client *tf_client_multi(const char *const *urls, int n,
                                  const redislock_client_options *o);
/* How many of the first n masters (those running) have key. */
int tf_keys_on(int n, const char *key);

/* Wait until every server of s[0..n-1] has at least k clients blocked. */
void tf_await_blocked_all(ts_server *s, int n, long long k);

#endif
