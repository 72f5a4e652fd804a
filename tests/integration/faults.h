/* Helpers shared by the fault-injection tests (test_faults_*.c). */
#ifndef TEST_FAULTS_H
#define TEST_FAULTS_H

#include <pthread.h>
#include <stdint.h>

#include "fixtures.h"

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
/* The lock's owner on s ("" if free; static storage). */
const char *faults_owner(ts_server *s, const char *key);

/* A thread sending SIGUSR1 to target every 0.5 to 5 ms (at random), with
 * a no-op handler installed without SA_RESTART, until faults_signals_off(),
 * which returns how many were delivered and adds them to
 * faults_signals_total (printed by faults_summary()).  One at a time, in
 * static storage; tf_teardown stops it if a failed test did not.  Stop it
 * before joining the target. */
typedef struct faults_signaller {
    pthread_t target, t;
    unsigned seed;
    long sent;
    int on;
} faults_signaller;
extern long faults_signals_total;
faults_signaller *faults_signals_on(pthread_t target, unsigned seed);
long faults_signals_off(faults_signaller *s);

/* Assert that the message of the last failure contains text. */
#define assert_msg_has(msg, text)                                            \
    do {                                                                     \
        if (!strstr((msg), (text)))                                          \
            fail_msg("message \"%s\" lacks \"%s\"", (msg), (text));          \
    } while (0)

/* ------------------------------------------------ waiter/holder cases
 *
 * The shape of most fault tests, one row each: a holder takes the lock; a
 * waiter (tf_waiter, two for some cases) waits for it; once it blocks in
 * BLPOP on every server, the fault is injected; the waiter must still be
 * waiting a while later; the holder releases; the waiter must end as the
 * row says, within its bounds; then the row's own checks.  Every step but
 * the fault can be left out. */
typedef struct faults_scene faults_scene;
typedef struct faults_case {
    const char *fault;          /* what is injected, for the log */
    ts_server *servers;         /* where the lock lives: one server, or the */
    int nservers;               /* masters of a majority-mode client */
    const char *lock;           /* the lock's name */
    int64_t holder_expire_ms, waiter_expire_ms; /* 0: none */
    /* the waiter's client: timeouts (0: the default); majority mode: its
     * master timeout */
    int command_timeout_ms, connect_timeout_ms, master_timeout_ms;
    int holder_client;          /* the holder on a client of its own
                                   (command and connect timeouts 2 s) */
    void (*prepare)(faults_scene *); /* after the holder's acquire */
    int waiters;                /* 1 (0 means 1) or 2, one after the other */
    int hold_ms;                /* a waiter that gets the lock keeps it that
                                   long, then releases it (which must work) */
    int64_t timeout_ms;         /* the waiters' */
    unsigned signals;           /* SIGUSR1 at random to the first waiter
                                   (this seed) until it returns; 0: none */
    int await_blocked;          /* wait until the waiters block first */
    void (*inject)(faults_scene *); /* the fault */
    int still_waiting_ms;       /* > 0: no waiter has returned this long
                                   after the fault */
    int release;                /* then the holder releases (must work) */
    int want;                   /* every waiter's result... */
    int or_eio;                 /* ...or REDISLOCK_EIO */
    /* a waiter that got the lock after a release got it at or after the
     * release, and if > 0, within TU_MS(woken_within_ms) of it */
    int64_t woken_within_ms;
    /* each waiter's wait (got - start): at least min_ms and, unless both
     * are 0, under max_ms + TU_MS(max_slowed_ms) */
    int64_t min_ms, max_ms, max_slowed_ms;
    void (*check)(faults_scene *); /* the row's own checks, at the end */
} faults_case;

/* What the hooks see (static storage). */
struct faults_scene {
    const faults_case *c;
    ts_server *srv;             /* c->servers[0] */
    redislock_client *client, *holder_client;
    redislock *holder;
    tf_waiter *w[2];
    int nwaiters;
    int64_t released;           /* when the release was made (by the holder, or
                                   by inject); 0: none */
};

/* Run a case (the handles and threads are freed by tf_teardown). */
void faults_case_run(const faults_case *c);
/* The test function of a row: its state is the case. */
void faults_case_test(void **state);
/* A row as a cmocka test named after the case variable. */
#define FAULTS_CASE(c, setup, teardown)                                      \
    { #c, faults_case_test, setup, teardown, (void *)&c }

#endif
