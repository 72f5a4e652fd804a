/* 7. Mutual exclusion: 8 processes x 8 threads contend for one lock for a
 * few seconds, recording their hold intervals on CLOCK_MONOTONIC (one clock
 * for all processes).  No two intervals may overlap, every contender must get
 * the lock, and a shared in-lock counter must never exceed one. */
#include "server.h"
#include "testutil.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define PROCS 8
#define THREADS 8
#define PER 1000 /* intervals kept per contender */
#define RUN_MS 3000

typedef struct rec {
    int64_t start_us, end_us;
} rec;

typedef struct shared {
    int inside;       /* holders inside the critical section */
    int max_inside;
    int errors;
    int count[PROCS][THREADS];
    rec recs[PROCS][THREADS][PER];
} shared;

static ts_server srv;
static shared *sh;

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

struct targ {
    redislock_client *c;
    int p, t;
    int64_t end_ms;
};

static void *contender(void *arg)
{
    struct targ *a = arg;
    redislock *lk = NULL;
    redislock_options o = REDISLOCK_OPTIONS_INIT;
    o.expire_ms = 30000; /* longer than the run: expiry never frees it */
    if (redislock_new(&lk, a->c, "mutex", &o)) {
        __atomic_add_fetch(&sh->errors, 1, __ATOMIC_SEQ_CST);
        return NULL;
    }
    while (tu_now_ms() < a->end_ms) {
        int rc = redislock_acquire(lk, 2000), n, k;
        if (rc == REDISLOCK_ETIMEDOUT)
            continue;
        if (rc) {
            __atomic_add_fetch(&sh->errors, 1, __ATOMIC_SEQ_CST);
            break;
        }
        n = __atomic_add_fetch(&sh->inside, 1, __ATOMIC_SEQ_CST);
        if (n > __atomic_load_n(&sh->max_inside, __ATOMIC_SEQ_CST))
            __atomic_store_n(&sh->max_inside, n, __ATOMIC_SEQ_CST);
        k = sh->count[a->p][a->t];
        if (k < PER)
            sh->recs[a->p][a->t][k].start_us = now_us();
        /* a little work inside */
        {
            volatile unsigned x = 0;
            unsigned i;
            for (i = 0; i < 20000; i++)
                x += i;
        }
        if (k < PER)
            sh->recs[a->p][a->t][k].end_us = now_us();
        sh->count[a->p][a->t] = k + 1;
        __atomic_sub_fetch(&sh->inside, 1, __ATOMIC_SEQ_CST);
        if (redislock_release(lk))
            __atomic_add_fetch(&sh->errors, 1, __ATOMIC_SEQ_CST);
    }
    redislock_free(lk);
    return NULL;
}

static int proc_main(void *arg)
{
    int p = (int)(intptr_t)arg, t;
    redislock_client *c = NULL;
    pthread_t th[THREADS];
    struct targ a[THREADS];
    int64_t end = tu_now_ms() + RUN_MS;
    if (redislock_client_new(&c, srv.url, NULL))
        return 10;
    for (t = 0; t < THREADS; t++) {
        a[t].c = c;
        a[t].p = p;
        a[t].t = t;
        a[t].end_ms = end;
        pthread_create(&th[t], NULL, contender, &a[t]);
    }
    for (t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    redislock_client_free(c);
    return 0;
}

static int cmp_rec(const void *x, const void *y)
{
    const rec *a = x, *b = y;
    return a->start_us < b->start_us ? -1 : a->start_us > b->start_us;
}

static void test_mutex_no_overlap(void **state)
{
    pid_t pids[PROCS];
    rec *all;
    size_t n = 0, i;
    int p, t, min = 1 << 30, max = 0, total = 0;

    TS_START_OR_SKIP(&srv);
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
              -1, 0);
    assert_true(sh != MAP_FAILED);
    memset(sh, 0, sizeof *sh);
    for (p = 0; p < PROCS; p++)
        pids[p] = tu_spawn(proc_main, (void *)(intptr_t)p);
    for (p = 0; p < PROCS; p++)
        assert_int_equal(tu_wait(pids[p]), 0);

    all = malloc(sizeof(rec) * PROCS * THREADS * PER);
    for (p = 0; p < PROCS; p++)
        for (t = 0; t < THREADS; t++) {
            int k, c = sh->count[p][t];
            total += c;
            if (c < min)
                min = c;
            if (c > max)
                max = c;
            for (k = 0; k < c && k < PER; k++)
                all[n++] = sh->recs[p][t][k];
        }
    qsort(all, n, sizeof *all, cmp_rec);
    for (i = 1; i < n; i++)
        if (all[i].start_us < all[i - 1].end_us)
            fail_msg("hold intervals overlap: [%lld, %lld] and [%lld, %lld]",
                     (long long)all[i - 1].start_us, (long long)all[i - 1].end_us,
                     (long long)all[i].start_us, (long long)all[i].end_us);
    print_message("      %d acquisitions in %d ms by %d contenders (min %d, max %d "
                  "each), %zu intervals checked\n",
                  total, RUN_MS, PROCS * THREADS, min, max, n);
    assert_int_equal(sh->errors, 0);
    assert_int_equal(sh->max_inside, 1);
    assert_true(min >= 1);
    assert_true(n >= 100);
    free(all);
    munmap(sh, sizeof *sh);
    ts_stop(&srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mutex_no_overlap),
    };
    return cmocka_run_group_tests_name("mutex", tests, NULL, NULL);
}
