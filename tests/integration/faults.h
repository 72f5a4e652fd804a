/* Helpers shared by the fault-injection tests (test_faults_*.c). */
#ifndef TEST_FAULTS_H
#define TEST_FAULTS_H

#include <pthread.h>
#include <stdint.h>

#include "testutil.h"

/* Fault cases injected so far in this program; printed by faults_summary(). */
extern int faults_run;
#define FAULT(what)                                                          \
    do {                                                                     \
        faults_run++;                                                        \
        print_message("      fault: %s\n", what);                            \
    } while (0)
void faults_summary(const char *program);

/* The CLIENT ID of the n-th (0-based) client blocked in BLPOP, by CLIENT
 * LIST; -1 if there is none. */
long long faults_blocked_id(ts_server *s, int n);
/* CLIENT KILL ID id; 1 if a client was killed. */
int faults_kill_id(ts_server *s, long long id);
/* CLIENT KILL TYPE normal (every normal client but the harness's own). */
long long faults_kill_normal(ts_server *s);
/* Wait until the server has at most n clients connected (stale clients
 * processed and gone); fails the test after 5 s. */
void faults_await_clients(ts_server *s, long long n);

/* A thread running redislock_acquire(lk, timeout) and, if asked, keeping
 * the lock for hold_ms and releasing it. */
typedef struct faults_waiter {
    redislock *lk;
    int64_t timeout;
    int hold_ms;        /* > 0: hold that long, then release (rc of release
                           in release_rc) */
    int rc, release_rc;
    int64_t start, got; /* tu_now_ms() at start and when acquire returned */
    int done;           /* atomic */
    char msg[512];
    pthread_t t;
} faults_waiter;

void faults_waiter_start(faults_waiter *w, redislock *lk, int64_t timeout);
void faults_waiter_start_hold(faults_waiter *w, redislock *lk, int64_t timeout,
                              int hold_ms);
void faults_waiter_join(faults_waiter *w);
/* 1 once acquire returned (w->got is set); safe while the thread runs. */
int faults_waiter_done(faults_waiter *w);
/* Wait for that, at most ms; fails the test after. */
void faults_waiter_await(faults_waiter *w, int ms);

/* A thread sending SIGUSR1 to target every 0.5 to 5 ms (at random), with
 * a no-op handler installed without SA_RESTART, until faults_signals_off(),
 * which returns how many were delivered and adds them to
 * faults_signals_total (printed by faults_summary()).  Stop it before
 * joining the target. */
typedef struct faults_signaller {
    pthread_t target, t;
    unsigned seed;
    long sent;
} faults_signaller;
extern long faults_signals_total;
void faults_signals_on(faults_signaller *s, pthread_t target, unsigned seed);
long faults_signals_off(faults_signaller *s);

/* Assert that the message of the last failure contains text. */
#define assert_msg_has(msg, text)                                            \
    do {                                                                     \
        if (!strstr((msg), (text)))                                          \
            fail_msg("message \"%s\" lacks \"%s\"", (msg), (text));          \
    } while (0)

#endif
