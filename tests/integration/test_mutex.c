/* Mutual exclusion: 8 processes x 8 threads contend for one lock for a
 * few seconds, logging their holds (intervals.h: from acquire's return to
 * the last moment redislock_held() vouched for the lock, on CLOCK_MONOTONIC,
 * one clock for all processes).  No two holds may overlap, every contender
 * must get the lock, and a shared in-lock counter must never exceed one. */
#include "fixtures.h"
#include "intervals.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROCS 8
#define THREADS 8
#define PER 1000 /* holds kept per contender */
#define RUN_MS 3000

typedef struct shared {
    int inside;       /* holders inside the critical section */
    int max_inside;
    int errors;
} shared;

static ts_server srv;
static shared *sh;     /* shared with the children */
static ti_log *holds;  /* shared with the children */

static void contender(tf_contender *a)
{
    redislock *lk = NULL;
    redislock_options o = REDISLOCK_OPTIONS_INIT;
    o.expire_ms = 30000; /* longer than the run: expiry never frees it */
    if (redislock_new(&lk, a->c, "mutex", &o)) {
        __atomic_add_fetch(&sh->errors, 1, __ATOMIC_SEQ_CST);
        return;
    }
    while (tu_now_ms() < a->end_ms) {
        int rc = redislock_acquire(lk, 2000), n;
        int64_t start, end;
        if (rc == REDISLOCK_ETIMEDOUT)
            continue;
        if (rc) {
            __atomic_add_fetch(&sh->errors, 1, __ATOMIC_SEQ_CST);
            break;
        }
        n = __atomic_add_fetch(&sh->inside, 1, __ATOMIC_SEQ_CST);
        if (n > __atomic_load_n(&sh->max_inside, __ATOMIC_SEQ_CST))
            __atomic_store_n(&sh->max_inside, n, __ATOMIC_SEQ_CST);
        start = ti_now_us();
        /* a little work inside */
        {
            volatile unsigned x = 0;
            unsigned i;
            for (i = 0; i < 20000; i++)
                x += i;
        }
        end = ti_vouched(lk);
        if (!end) /* held() must vouch for a lock that cannot expire yet */
            __atomic_add_fetch(&sh->errors, 1, __ATOMIC_SEQ_CST);
        ti_add(holds, a->slot, start, end ? end : start);
        __atomic_sub_fetch(&sh->inside, 1, __ATOMIC_SEQ_CST);
        if (redislock_release(lk))
            __atomic_add_fetch(&sh->errors, 1, __ATOMIC_SEQ_CST);
    }
    redislock_free(lk);
}

static redislock_client *new_client(void *unused)
{
    redislock_client *c = NULL;
    return redislock_client_new(&c, srv.url, NULL) ? NULL : c;
}

static void test_mutex_never_two_holders(void **state)
{
    ti_report rep;
    int s, min = 1 << 30, max = 0, total = 0;

    tf_server_start(&srv);
    sh = tf_shared(sizeof *sh);
    holds = ti_log_new(PROCS * THREADS, PER);
    tf_contenders_start(PROCS, THREADS, RUN_MS, new_client, contender, NULL);
    tf_contenders_wait();

    for (s = 0; s < PROCS * THREADS; s++) {
        int c = ti_count(holds, s);
        total += c;
        if (c < min)
            min = c;
        if (c > max)
            max = c;
    }
    rep = ti_check(holds);
    print_message("      %d acquisitions in %d ms by %d contenders (min %d, max %d "
                  "each), %zu holds checked, smallest gap %lld us\n",
                  total, RUN_MS, PROCS * THREADS, min, max, rep.holds,
                  (long long)rep.min_gap_us);
    assert_int_equal(sh->errors, 0);
    assert_int_equal(sh->max_inside, 1);
    assert_true(min >= 1); /* every contender got the lock */
    assert_true(rep.holds >= 100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_mutex_never_two_holders, tf_teardown),
    };
    return cmocka_run_group_tests_name("mutex", tests, NULL, NULL);
}
