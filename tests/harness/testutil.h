/* Small helpers shared by the tests. */
#ifndef TEST_UTIL_H
#define TEST_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <sys/types.h>
#include <cmocka.h>

#include "redislock.h"
#include "server.h"

/* The usual fixture: one redis-server (tu_srv) and one client on it (tu_cl)
 * per test program; every test starts from an empty database and is skipped
 * when redis-server is not installed.  Per-test clean-up, waiters, N
 * masters: fixtures.h. */
extern ts_server tu_srv;
extern redislock_client *tu_cl;
int tu_group_setup(void **state);     /* unix socket only */
int tu_group_setup_tcp(void **state); /* and a free TCP port */
int tu_group_teardown(void **state);
int tu_setup(void **state);           /* FLUSHALL */

/* Upper bounds on elapsed time in assertions are multiplied by
 * $REDISLOCK_TEST_SLOW (default 1; the valgrind run sets 10), and heavy
 * loads are divided by it.  Lower bounds never change. */
int tu_slow(void);
#define TU_MS(x) ((int64_t)(x) * tu_slow())
/* How late a loaded machine may run a thread that is due: the allowance an
 * upper bound adds to what the contract or the design promises.  Measured:
 * 352 ms past a crashed holder's expiry (typically under 20 ms), with
 * make check -j4 beside stress-ng --cpu 2 on 2 cores.  The typical figures
 * are bench/'s; a bound plus this still tells "at the deadline" from "at
 * the next timeout" (the command timeout, 2 s; a BLPOP's 60 s). */
#define TU_LATE_MS TU_MS(1000)

/* CLOCK_MONOTONIC in ms (comparable across processes). */
int64_t tu_now_ms(void);
/* Sleep, for creating situations only (never to wait for another party). */
void tu_sleep_ms(int ms);

/* A client on url that fails the test on error. */
redislock_client *tu_client(const char *url);
redislock_client *tu_client_opts(const char *url, const redislock_client_options *o);
redislock *tu_lock(redislock_client *c, const char *name, int64_t expire_ms);

/* Run fn(arg) in a child process; its return value is the exit status. */
pid_t tu_spawn(int (*fn)(void *), void *arg);
/* Wait for a child: its exit status, or 128+signal. */
int tu_wait(pid_t pid);
/* Kill (SIGKILL) and reap every child tu_spawn() started that tu_wait()
 * has not waited for (after a failed test: see tf_teardown). */
void tu_kill_children(void);

/* A pipe carrying int64 values from children to the parent. */
typedef struct tu_chan {
    int fd[2];
} tu_chan;
void tu_chan_open(tu_chan *ch);
void tu_chan_send(tu_chan *ch, int64_t v);
/* Receive one value within timeout_ms; returns 0 on success, -1 on timeout
 * or EOF. */
int tu_chan_recv(tu_chan *ch, int64_t *v, int timeout_ms);
void tu_chan_close(tu_chan *ch);

#define assert_rl_ok(expr)                                                   \
    do {                                                                     \
        int rl_rc_ = (expr);                                                 \
        if (rl_rc_ != REDISLOCK_OK)                                          \
            fail_msg("%s -> %s: %s", #expr, redislock_err_name(rl_rc_),      \
                     redislock_last_error());                                \
    } while (0)

#define assert_rl_err(expr, code)                                            \
    do {                                                                     \
        int rl_rc_ = (expr);                                                 \
        if (rl_rc_ != (code))                                                \
            fail_msg("%s -> %s (%s), expected %s", #expr,                    \
                     redislock_err_name(rl_rc_), redislock_last_error(),     \
                     redislock_err_name(code));                              \
    } while (0)

#endif
