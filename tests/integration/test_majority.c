/* Majority mode (Redlock) against 3 and 5 real redis-server processes:
 * quorum, masters down or hung, parallel waiting without spinning, split
 * votes, and safety under chaos (masters killed and restarted, or stopped
 * and continued, while 32 contenders with renewal fight for one lock). */
#include "server.h"
#include "testutil.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define MAXM 5
static ts_server masters[MAXM];
static const char *urls[MAXM];
static int started;

static int group_setup(void **state)
{
    int i;
    for (i = 0; i < MAXM; i++) {
        int rc = ts_start(&masters[i]);
        if (rc)
            return rc == 77 ? 0 : -1;
        urls[i] = masters[i].url;
    }
    started = 1;
    return 0;
}

static int group_teardown(void **state)
{
    int i;
    for (i = 0; i < MAXM; i++)
        ts_stop(&masters[i]);
    return 0;
}

static int setup(void **state)
{
    int i;
    if (!started)
        skip();
    for (i = 0; i < MAXM; i++) {
        if (!masters[i].pid)
            assert_int_equal(ts_restart(&masters[i]), 0);
        ts_flushall(&masters[i]);
    }
    return 0;
}

static redislock_client *multi(size_t n, int master_timeout_ms)
{
    redislock_client *c = NULL;
    redislock_client_options o = REDISLOCK_CLIENT_OPTIONS_INIT;
    o.master_timeout_ms = master_timeout_ms;
    if (redislock_client_new_multi(&c, urls, n, &o))
        fail_msg("client_new_multi: %s", redislock_last_error());
    return c;
}

static int keys_on(size_t n, const char *key)
{
    size_t i;
    int count = 0;
    for (i = 0; i < n; i++)
        if (masters[i].pid && ts_int(&masters[i], "EXISTS %s", key) == 1)
            count++;
    return count;
}

/* 1. acquire/release with 3 and 5 masters: the key is on (at least) a
 *    quorum while held, on none after release; validity reported. */
static void test_majority_basic(void **state)
{
    size_t sizes[2] = { 3, 5 }, s;
    for (s = 0; s < 2; s++) {
        size_t n = sizes[s];
        redislock_client *c = multi(n, 0);
        redislock *lk = tu_lock(c, "m", 5000), *other = tu_lock(c, "m", 5000);
        redislock_info info;
        assert_rl_ok(redislock_acquire(lk, 0));
        assert_true(keys_on(n, "lock:m") >= (int)(n / 2 + 1));
        assert_int_equal(keys_on(n, "lock:m"), (int)n); /* all up: all of them */
        assert_true(redislock_validity_ms(lk) > 4800 && redislock_validity_ms(lk) <= 5000 - 50);
        assert_int_equal(redislock_held(lk), 1);
        assert_rl_err(redislock_try_acquire(other), REDISLOCK_EBUSY);
        assert_non_null(strstr(redislock_errmsg(other), "masters"));
        assert_rl_ok(redislock_query(other, &info));
        assert_int_equal(info.held, 1);
        assert_int_equal(info.mine, 0);
        assert_string_equal(info.owner, redislock_id(lk));
        assert_true(info.ttl_ms > 4000);
        assert_rl_ok(redislock_extend(lk, 20000));
        assert_true(redislock_validity_ms(lk) > 19000);
        assert_rl_ok(redislock_release(lk));
        assert_int_equal(keys_on(n, "lock:m"), 0);
        assert_rl_err(redislock_release(lk), REDISLOCK_ENOTHELD);
        assert_rl_ok(redislock_acquire(other, 0));
        assert_rl_ok(redislock_release(other));
        redislock_free(lk);
        redislock_free(other);
        redislock_client_free(c);
    }
}

/* Majority mode needs an expiry. */
static void test_majority_needs_expiry(void **state)
{
    redislock_client *c = multi(3, 0);
    redislock *lk = NULL;
    assert_rl_err(redislock_new(&lk, c, "x", NULL), REDISLOCK_EINVAL);
    assert_non_null(strstr(redislock_last_error(), "expiry"));
    redislock_client_free(c);
}

/* One server named twice (also through another db) is not two masters: it
 * would make a majority out of one server. */
static void test_majority_same_server_twice(void **state)
{
    redislock_client *c = (redislock_client *)1;
    char other_db[800];
    const char *twice[3] = { urls[0], urls[1], urls[0] };
    assert_rl_err(redislock_client_new_multi(&c, twice, 3, NULL), REDISLOCK_EINVAL);
    assert_null(c);
    assert_non_null(strstr(redislock_last_error(), "masters 1 and 3 are the same server"));
    assert_null(strchr(urls[0], '?'));
    snprintf(other_db, sizeof other_db, "%s?db=2", urls[0]);
    twice[2] = other_db;
    assert_rl_err(redislock_client_new_multi(&c, twice, 3, NULL), REDISLOCK_EINVAL);
    /* three distinct servers are fine */
    c = multi(3, 0);
    redislock_client_free(c);
}

/* 2. One of 3 masters down: still acquires, releases, renews. */
static void test_majority_one_down(void **state)
{
    redislock_client *c = multi(3, 0);
    redislock *lk = NULL;
    redislock_options o = REDISLOCK_OPTIONS_INIT;
    int64_t t0;
    o.expire_ms = 600;
    o.auto_renew = 1;
    ts_stop(&masters[2]);
    assert_rl_ok(redislock_new(&lk, c, "down1", &o));
    assert_rl_ok(redislock_acquire(lk, 1000));
    assert_int_equal(keys_on(2, "lock:down1"), 2);
    assert_non_null(strstr(redislock_master_errors(lk), masters[2].sock));
    t0 = tu_now_ms();
    while (tu_now_ms() - t0 < 1500) { /* renewed past the 600 ms expiry */
        assert_int_equal(redislock_held(lk), 1);
        tu_sleep_ms(50);
    }
    assert_int_equal(keys_on(2, "lock:down1"), 2);
    assert_rl_ok(redislock_release(lk));
    assert_int_equal(keys_on(2, "lock:down1"), 0);
    redislock_free(lk);
    redislock_client_free(c);
}

/* 3. Two of 3 down: "no quorum" quickly, no hang. */
static void test_majority_two_down(void **state)
{
    redislock_client *c = multi(3, 50);
    redislock *lk = tu_lock(c, "down2", 1000);
    int64_t t0;
    ts_stop(&masters[1]);
    ts_stop(&masters[2]);
    t0 = tu_now_ms();
    assert_rl_err(redislock_acquire(lk, 5000), REDISLOCK_ENOQUORUM);
    assert_true(tu_now_ms() - t0 < TU_MS(500));
    assert_non_null(strstr(redislock_errmsg(lk), "1 of 3"));
    assert_int_equal(keys_on(1, "lock:down2"), 0); /* undone on the one up */
    assert_rl_err(redislock_try_acquire(lk), REDISLOCK_ENOQUORUM);
    redislock_free(lk);
    redislock_client_free(c);
}

/* 4. One master hung (SIGSTOP): acquire completes within the per-master
 *    timeout bound; after SIGCONT nothing is left that expiry does not
 *    clear. */
static void test_majority_one_hung(void **state)
{
    redislock_client *c = multi(3, 50);
    redislock *lk = tu_lock(c, "hung", 800);
    int64_t t0, el;
    ts_pause(&masters[0]);
    t0 = tu_now_ms();
    assert_rl_ok(redislock_acquire(lk, 1000));
    el = tu_now_ms() - t0;
    print_message("      acquire with one master stopped: %lld ms (master timeout "
                  "50 ms)\n", (long long)el);
    assert_true(el < TU_MS(50 * 4));
    t0 = tu_now_ms();
    assert_rl_ok(redislock_release(lk));
    assert_true(tu_now_ms() - t0 < TU_MS(50 * 4));
    ts_resume(&masters[0]);
    /* whatever the stopped master ran late expires with the lock's expiry */
    t0 = tu_now_ms();
    while (keys_on(3, "lock:hung") > 0 && tu_now_ms() - t0 < 3000)
        tu_sleep_ms(20);
    assert_int_equal(keys_on(3, "lock:hung"), 0);
    assert_rl_ok(redislock_acquire(lk, 1000));
    assert_rl_ok(redislock_release(lk));
    redislock_free(lk);
    redislock_client_free(c);
}

struct waiter {
    redislock *lk;
    int64_t timeout;
    int rc;
    int64_t at;
};

static void *waiter(void *p)
{
    struct waiter *w = p;
    w->rc = redislock_acquire(w->lk, w->timeout);
    w->at = tu_now_ms();
    return NULL;
}

/* 5. A waiter blocked on 3 masters is woken by the release promptly, and
 *    sends only a handful of commands to each master while it waits. */
static void test_majority_wake_no_spin(void **state)
{
    redislock_client *c = multi(3, 0);
    redislock *holder = tu_lock(c, "wake", 30000);
    struct waiter w = { tu_lock(c, "wake", 30000), 10000, -99, 0 };
    pthread_t t;
    int64_t released;
    long long reqs[3];
    int i;

    assert_rl_ok(redislock_acquire(holder, 0));
    for (i = 0; i < 3; i++)
        ts_resetstat(&masters[i]);
    pthread_create(&t, NULL, waiter, &w);
    for (i = 0; i < 3; i++)
        ts_await_blocked(&masters[i], 1);
    tu_sleep_ms(2000); /* blocked, all three */
    for (i = 0; i < 3; i++)
        reqs[i] = ts_calls(&masters[i], NULL);
    assert_rl_ok(redislock_release(holder));
    released = tu_now_ms();
    pthread_join(t, NULL);
    assert_rl_ok(w.rc);
    print_message("      woken %lld ms after the release; requests per master while "
                  "waiting 2 s: %lld %lld %lld\n",
                  (long long)(w.at - released), reqs[0], reqs[1], reqs[2]);
    assert_true(w.at - released < TU_MS(500));
    for (i = 0; i < 3; i++)
        assert_true(reqs[i] <= 3); /* acquire script, CLIENT ID, BLPOP */
    assert_rl_ok(redislock_release(w.lk));
    for (i = 0; i < 3; i++)
        assert_int_equal(ts_info(&masters[i], "clients", "blocked_clients"), 0);
    redislock_free(holder);
    redislock_free(w.lk);
    redislock_client_free(c);
}

/* 6. Split votes: 3 contenders released at once against 3 masters, round
 *    after round: someone gets the lock promptly each round, all get it in
 *    turn, never two at once.  Each round starts from a planted split (every
 *    contender's id holds a different master, as if they had each won one),
 *    so the random back-off must break it. */
#define ROUNDS 30
static pthread_barrier_t barrier;
static int inside, overlaps;
static int64_t first_at[ROUNDS], round_start[ROUNDS];
static int got_count[ROUNDS];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

struct sarg {
    redislock_client *c;
    int idx;
};

static void *contender(void *arg)
{
    struct sarg *a = arg;
    redislock *lk = NULL;
    redislock_options o = REDISLOCK_OPTIONS_INIT;
    char id[16];
    int r;
    snprintf(id, sizeof id, "contender-%d", a->idx);
    o.id = id;
    o.expire_ms = 2000;
    if (redislock_new(&lk, a->c, "split", &o))
        return NULL;
    for (r = 0; r < ROUNDS; r++) {
        int rc;
        redisReply *rep;
        pthread_barrier_wait(&barrier);
        /* plant: this contender holds "its" master */
        pthread_mutex_lock(&mu);
        rep = ts_cmd(&masters[a->idx], "SET lock:split %s PX 5000", id);
        freeReplyObject(rep);
        pthread_mutex_unlock(&mu);
        pthread_barrier_wait(&barrier);
        if (r >= 0) {
            pthread_mutex_lock(&mu);
            if (!round_start[r])
                round_start[r] = tu_now_ms();
            pthread_mutex_unlock(&mu);
        }
        rc = redislock_acquire(lk, 5000);
        if (rc == 0) {
            int64_t now = tu_now_ms();
            if (__atomic_add_fetch(&inside, 1, __ATOMIC_SEQ_CST) != 1)
                __atomic_add_fetch(&overlaps, 1, __ATOMIC_SEQ_CST);
            pthread_mutex_lock(&mu);
            if (!first_at[r])
                first_at[r] = now;
            got_count[r]++;
            pthread_mutex_unlock(&mu);
            tu_sleep_ms(2);
            __atomic_sub_fetch(&inside, 1, __ATOMIC_SEQ_CST);
            redislock_release(lk);
        }
        pthread_barrier_wait(&barrier);
    }
    redislock_free(lk);
    return NULL;
}

static int splits;

static void count_splits(void *ud, int level, const char *msg)
{
    if (strstr(msg, "split vote"))
        __atomic_add_fetch(&splits, 1, __ATOMIC_SEQ_CST);
}

static void test_majority_split_votes(void **state)
{
    redislock_client *cs[3];
    struct sarg sa[3];
    redislock_client_options o = REDISLOCK_CLIENT_OPTIONS_INIT;
    pthread_t t[3];
    int i, r;
    int64_t worst = 0;
    pthread_barrier_init(&barrier, NULL, 3);
    o.log = count_splits;
    o.log_level = REDISLOCK_LOG_DEBUG;
    for (i = 0; i < 3; i++) {
        /* one client each: independent connections */
        assert_rl_ok(redislock_client_new_multi(&cs[i], urls, 3, &o));
        sa[i].c = cs[i];
        sa[i].idx = i;
        pthread_create(&t[i], NULL, contender, &sa[i]);
    }
    for (i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    for (r = 0; r < ROUNDS; r++) {
        int64_t lat = first_at[r] - round_start[r];
        assert_int_equal(got_count[r], 3);
        assert_true(first_at[r] > 0);
        if (lat > worst)
            worst = lat;
    }
    print_message("      %d rounds of 3 contenders: every round everyone got the lock; "
                  "slowest first acquisition %lld ms; %d split votes broken by "
                  "random back-off\n",
                  ROUNDS, (long long)worst, splits);
    assert_true(worst < TU_MS(1000));
    assert_int_equal(overlaps, 0);
    assert_true(splits >= ROUNDS);
    for (i = 0; i < 3; i++)
        redislock_client_free(cs[i]);
    pthread_barrier_destroy(&barrier);
}

/* 7. Safety under chaos. */
#define PROCS 8
#define THREADS 4
#define PER 2000
#define CHAOS_MS (20000 / (tu_slow() > 4 ? 4 : tu_slow()))
#define EXPIRE 1000

typedef struct hold {
    int64_t start_us, end_us;
} hold;

typedef struct chaos_log {
    int count[PROCS][THREADS];
    hold holds[PROCS][THREADS][PER];
    int errors[PROCS];
    int lost[PROCS];
} chaos_log;

static chaos_log *hlog;

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

struct carg {
    redislock_client *c;
    int p, t;
    int64_t end_ms;
};

static void *chaos_contender(void *arg)
{
    struct carg *a = arg;
    redislock *lk = NULL;
    redislock_options o = REDISLOCK_OPTIONS_INIT;
    unsigned seed = (unsigned)(a->p * 131 + a->t * 7 + 1);
    o.expire_ms = EXPIRE;
    o.auto_renew = 1;
    if (redislock_new(&lk, a->c, "chaos", &o))
        return NULL;
    while (tu_now_ms() < a->end_ms) {
        int rc = redislock_acquire(lk, 2000), k = hlog->count[a->p][a->t];
        int64_t start, last = 0, until;
        if (rc) {
            if (rc != REDISLOCK_ETIMEDOUT && rc != REDISLOCK_ENOQUORUM)
                __atomic_add_fetch(&hlog->errors[a->p], 1, __ATOMIC_SEQ_CST);
            if (rc == REDISLOCK_ENOQUORUM)
                tu_sleep_ms(20);
            continue;
        }
        start = now_us();
        until = start + (int64_t)(5 + rand_r(&seed) % 60) * 1000;
        /* hold: the interval ends at the last moment held() vouched for it */
        for (;;) {
            int64_t t = now_us();
            if (!redislock_held(lk)) {
                __atomic_add_fetch(&hlog->lost[a->p], 1, __ATOMIC_SEQ_CST);
                break;
            }
            last = t;
            if (t >= until)
                break;
            usleep(1000);
        }
        if (k < PER && last) {
            hlog->holds[a->p][a->t][k].start_us = start;
            hlog->holds[a->p][a->t][k].end_us = last;
            hlog->count[a->p][a->t] = k + 1;
        }
        redislock_release(lk);
    }
    redislock_free(lk);
    return NULL;
}

static int chaos_proc(void *arg)
{
    int p = (int)(intptr_t)arg, t;
    redislock_client *c = NULL;
    redislock_client_options o = REDISLOCK_CLIENT_OPTIONS_INIT;
    pthread_t th[THREADS];
    struct carg a[THREADS];
    int64_t end = tu_now_ms() + CHAOS_MS;
    o.master_timeout_ms = 100;
    if (redislock_client_new_multi(&c, urls, 3, &o))
        return 10;
    for (t = 0; t < THREADS; t++) {
        a[t].c = c;
        a[t].p = p;
        a[t].t = t;
        a[t].end_ms = end;
        pthread_create(&th[t], NULL, chaos_contender, &a[t]);
    }
    for (t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    redislock_client_free(c);
    return 0;
}

static int cmp_hold(const void *x, const void *y)
{
    const hold *a = x, *b = y;
    return a->start_us < b->start_us ? -1 : a->start_us > b->start_us;
}

static void test_majority_chaos(void **state)
{
    pid_t pids[PROCS];
    hold *all;
    size_t n = 0, i;
    int p, t, kills = 0, stops = 0, total_lost = 0, errors = 0;
    int64_t end;
    unsigned seed = 12345;

    hlog = mmap(NULL, sizeof *hlog, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                -1, 0);
    assert_true(hlog != MAP_FAILED);
    memset(hlog, 0, sizeof *hlog);
    for (p = 0; p < PROCS; p++)
        pids[p] = tu_spawn(chaos_proc, (void *)(intptr_t)p);
    /* Chaos: one master at a time.  A killed master comes back only after
     * the lock's expiry (it has no persistence: restarting sooner would let
     * it forget a live lock; see doc/design.md). */
    end = tu_now_ms() + CHAOS_MS - 1500;
    tu_sleep_ms(1000);
    while (tu_now_ms() < end) {
        int m = (int)(rand_r(&seed) % 3);
        if (rand_r(&seed) % 2) {
            ts_stop(&masters[m]);
            tu_sleep_ms(EXPIRE + 300);
            assert_int_equal(ts_restart(&masters[m]), 0);
            kills++;
        } else {
            ts_pause(&masters[m]);
            tu_sleep_ms(300 + (int)(rand_r(&seed) % 1200));
            ts_resume(&masters[m]);
            stops++;
        }
        tu_sleep_ms(700);
    }
    for (p = 0; p < PROCS; p++)
        assert_int_equal(tu_wait(pids[p]), 0);

    all = malloc(sizeof(hold) * PROCS * THREADS * PER);
    for (p = 0; p < PROCS; p++) {
        total_lost += hlog->lost[p];
        errors += hlog->errors[p];
        for (t = 0; t < THREADS; t++) {
            int k;
            for (k = 0; k < hlog->count[p][t]; k++)
                all[n++] = hlog->holds[p][t][k];
        }
    }
    qsort(all, n, sizeof *all, cmp_hold);
    for (i = 1; i < n; i++)
        if (all[i].start_us < all[i - 1].end_us)
            fail_msg("two holds overlap inside their validity: [%lld, %lld] and "
                     "[%lld, %lld]",
                     (long long)all[i - 1].start_us, (long long)all[i - 1].end_us,
                     (long long)all[i].start_us, (long long)all[i].end_us);
    print_message("      %d s of chaos (%d kill+restart, %d stop+continue): %zu holds, "
                  "none overlapping; %d lost by renewal, %d unexpected errors\n",
                  CHAOS_MS / 1000, kills, stops, n, total_lost, errors);
    assert_true(n >= 50);
    assert_int_equal(errors, 0);
    free(all);
    munmap(hlog, sizeof *hlog);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_majority_basic, setup),
        cmocka_unit_test_setup(test_majority_needs_expiry, setup),
        cmocka_unit_test_setup(test_majority_same_server_twice, setup),
        cmocka_unit_test_setup(test_majority_one_down, setup),
        cmocka_unit_test_setup(test_majority_two_down, setup),
        cmocka_unit_test_setup(test_majority_one_hung, setup),
        cmocka_unit_test_setup(test_majority_wake_no_spin, setup),
        cmocka_unit_test_setup(test_majority_split_votes, setup),
        cmocka_unit_test_setup(test_majority_chaos, setup),
    };
    return cmocka_run_group_tests_name("majority", tests, group_setup, group_teardown);
}
