/* Majority mode (Redlock) against 3 and 5 real redis-server processes:
 * quorum, masters down or hung, parallel waiting without spinning, split
 * votes, and safety under chaos (masters killed and restarted, or stopped
 * and continued, while 32 contenders with renewal fight for one lock). */
#include "fixtures.h"
#include "intervals.h"

#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int three = 3, five = 5;

/* The number of masters of a test run for 3 and for 5. */
static size_t nmasters(void **state)
{
    return (size_t)*(int *)*state;
}

/* Acquire sets the lock on every master when all are up, and reports a
 * validity a little under the expiry: less the drift allowance (1% + 2 ms)
 * and no more than the time the call took (which a loaded valgrind run
 * stretched past the 200 ms this test once allowed). */
static void test_majority_acquire_sets_every_master(void **state)
{
    size_t n = nmasters(state);
    redislock *lk = tf_lock(tf_multi((int)n, 0), "m", 5000);
    int64_t t0 = tu_now_ms(), took, v;
    assert_rl_ok(redislock_acquire(lk, 0));
    v = redislock_validity_ms(lk); /* then the time: it covers the read */
    took = tu_now_ms() - t0;
    assert_true(tf_keys_on((int)n, "lock:m") >= (int)(n / 2 + 1));
    assert_int_equal(tf_keys_on((int)n, "lock:m"), (int)n); /* all up: all of them */
    assert_true(v <= 5000 - 52);
    assert_true(v >= 5000 - 52 - took - 1);
    assert_int_equal(redislock_held(lk), 1);
}

/* Another handle sees the lock held: try_acquire is busy (naming the
 * masters), query names the holder with its TTL. */
static void test_majority_other_handle_sees_lock_held(void **state)
{
    size_t n = nmasters(state);
    redislock_client *c = tf_multi((int)n, 0);
    redislock *lk = tf_lock(c, "m", 5000), *other = tf_lock(c, "m", 5000);
    redislock_info info;
    assert_rl_ok(redislock_acquire(lk, 0));
    assert_rl_err(redislock_try_acquire(other), REDISLOCK_EBUSY);
    assert_non_null(strstr(redislock_errmsg(other), "masters"));
    assert_rl_ok(redislock_query(other, &info));
    assert_int_equal(info.held, 1);
    assert_int_equal(info.mine, 0);
    assert_string_equal(info.owner, redislock_id(lk));
    assert_true(info.ttl_ms > 4000);
}

/* Extend gives a new validity from the new expiry. */
static void test_majority_extend_renews_validity(void **state)
{
    size_t n = nmasters(state);
    redislock *lk = tf_lock(tf_multi((int)n, 0), "m", 5000);
    assert_rl_ok(redislock_acquire(lk, 0));
    assert_rl_ok(redislock_extend(lk, 20000));
    assert_true(redislock_validity_ms(lk) > 19000);
}

/* Release removes the lock from every master: a second release is not
 * held, and another handle takes it at once. */
static void test_majority_release_clears_every_master(void **state)
{
    size_t n = nmasters(state);
    redislock_client *c = tf_multi((int)n, 0);
    redislock *lk = tf_lock(c, "m", 5000), *other = tf_lock(c, "m", 5000);
    assert_rl_ok(redislock_acquire(lk, 0));
    assert_rl_ok(redislock_release(lk));
    assert_int_equal(tf_keys_on((int)n, "lock:m"), 0);
    assert_rl_err(redislock_release(lk), REDISLOCK_ENOTHELD);
    assert_rl_ok(redislock_acquire(other, 0));
    assert_rl_ok(redislock_release(other));
}

/* Majority mode needs an expiry. */
static void test_majority_lock_needs_expiry(void **state)
{
    redislock_client *c = tf_multi(3, 0);
    redislock *lk = NULL;
    assert_rl_err(redislock_new(&lk, c, "x", NULL), REDISLOCK_EINVAL);
    assert_non_null(strstr(redislock_last_error(), "expiry"));
}

/* One server named twice (also through another db) is not two masters: it
 * would make a majority out of one server. */
static void test_majority_same_server_twice_refused(void **state)
{
    redislock_client *c = (redislock_client *)1;
    char other_db[800];
    const char *twice[3] = { tf_urls[0], tf_urls[1], tf_urls[0] };
    assert_rl_err(redislock_client_new_multi(&c, twice, 3, NULL), REDISLOCK_EINVAL);
    assert_null(c);
    assert_non_null(strstr(redislock_last_error(), "masters 1 and 3 are the same server"));
    assert_null(strchr(tf_urls[0], '?'));
    snprintf(other_db, sizeof other_db, "%s?db=2", tf_urls[0]);
    twice[2] = other_db;
    assert_rl_err(redislock_client_new_multi(&c, twice, 3, NULL), REDISLOCK_EINVAL);
    /* three distinct servers are fine */
    tf_multi(3, 0);
}

/* One of 3 masters down: the lock still works: acquired (the down master
 * named in the per-master errors), renewed, released. */
static void test_majority_one_of_three_down_lock_still_works(void **state)
{
    redislock_client *c = tf_multi(3, 0);
    redislock *lk;
    redislock_options o = REDISLOCK_OPTIONS_INIT;
    int64_t t0;
    o.expire_ms = 600;
    o.auto_renew = 1;
    ts_stop(&tf_masters[2]);
    lk = tf_lock_opts(c, "down1", &o);
    assert_rl_ok(redislock_acquire(lk, 1000));
    assert_int_equal(tf_keys_on(2, "lock:down1"), 2);
    assert_non_null(strstr(redislock_master_errors(lk), tf_masters[2].sock));
    t0 = tu_now_ms();
    while (tu_now_ms() - t0 < 1500) { /* renewed past the 600 ms expiry */
        assert_int_equal(redislock_held(lk), 1);
        tu_sleep_ms(50);
    }
    assert_int_equal(tf_keys_on(2, "lock:down1"), 2);
    assert_rl_ok(redislock_release(lk));
    assert_int_equal(tf_keys_on(2, "lock:down1"), 0);
}

/* Two of 3 down: "no quorum" quickly, no hang, nothing left behind. */
static void test_majority_two_of_three_down_no_quorum_at_once(void **state)
{
    redislock *lk = tf_lock(tf_multi(3, 50), "down2", 1000);
    int64_t t0;
    ts_stop(&tf_masters[1]);
    ts_stop(&tf_masters[2]);
    t0 = tu_now_ms();
    assert_rl_err(redislock_acquire(lk, 5000), REDISLOCK_ENOQUORUM);
    assert_true(tu_now_ms() - t0 < TU_MS(500));
    assert_non_null(strstr(redislock_errmsg(lk), "1 of 3"));
    assert_int_equal(tf_keys_on(1, "lock:down2"), 0); /* undone on the one up */
    assert_rl_err(redislock_try_acquire(lk), REDISLOCK_ENOQUORUM);
}

/* A client for the tests with a hung master: per-master timeout HUNG_MT,
 * far below the command timeout (10 s), which a hung master would cost
 * without it.  500 ms rather than the default 50: the two healthy masters
 * must answer within it, also on a loaded machine. */
#define HUNG_MT 500
static redislock_client *hung_client(void)
{
    redislock_client_options o = REDISLOCK_CLIENT_OPTIONS_INIT;
    o.master_timeout_ms = HUNG_MT;
    o.command_timeout_ms = 10000;
    return tf_multi_opts(3, &o);
}

/* One master hung (SIGSTOP): acquire and release complete within the
 * per-master timeout bound. */
static void test_majority_hung_master_costs_at_most_master_timeout(void **state)
{
    redislock *lk = tf_lock(hung_client(), "hung", 2000);
    int64_t t0, el;
    ts_pause(&tf_masters[0]);
    t0 = tu_now_ms();
    assert_rl_ok(redislock_acquire(lk, 10000));
    el = tu_now_ms() - t0;
    print_message("      acquire with one master stopped: %lld ms (master timeout "
                  "%d ms)\n", (long long)el, HUNG_MT);
    assert_true(el < TU_MS(HUNG_MT * 2) + TU_LATE_MS);
    t0 = tu_now_ms();
    assert_rl_ok(redislock_release(lk));
    assert_true(tu_now_ms() - t0 < TU_MS(HUNG_MT * 2) + TU_LATE_MS);
}

/* What a hung master runs late, after SIGCONT, expires with the lock's
 * expiry: nothing is left behind, and the lock can be taken again. */
static void test_majority_hung_master_late_commands_expire(void **state)
{
    redislock *lk = tf_lock(hung_client(), "hung", 2000);
    int64_t t0;
    ts_pause(&tf_masters[0]);
    assert_rl_ok(redislock_acquire(lk, 10000));
    assert_rl_ok(redislock_release(lk));
    ts_resume(&tf_masters[0]);
    t0 = tu_now_ms();
    while (tf_keys_on(3, "lock:hung") > 0 && tu_now_ms() - t0 < TU_MS(5000))
        tu_sleep_ms(20);
    assert_int_equal(tf_keys_on(3, "lock:hung"), 0);
    assert_rl_ok(redislock_acquire(lk, 10000));
    assert_rl_ok(redislock_release(lk));
}

/* A waiter blocked on 3 masters sends only a handful of commands to each
 * master while it waits, and is woken by the release promptly. */
static void test_majority_waiter_blocks_until_release(void **state)
{
    redislock_client *c = tf_multi(3, 0);
    redislock *holder = tf_lock(c, "wake", 30000);
    tf_waiter *w = tf_waiter_new(tf_lock(c, "wake", 30000), 10000);
    int64_t released;
    long long reqs[3];
    int i;

    assert_rl_ok(redislock_acquire(holder, 0));
    for (i = 0; i < 3; i++)
        ts_resetstat(&tf_masters[i]);
    tf_waiter_run(w);
    tf_await_blocked_all(tf_masters, 3, 1);
    tu_sleep_ms(2000); /* blocked, all three */
    for (i = 0; i < 3; i++)
        reqs[i] = ts_calls(&tf_masters[i], NULL);
    assert_rl_ok(redislock_release(holder));
    released = tu_now_ms();
    tf_waiter_join(w);
    assert_rl_ok(w->rc);
    print_message("      woken %lld ms after the release; requests per master while "
                  "waiting 2 s: %lld %lld %lld\n",
                  (long long)(w->got - released), reqs[0], reqs[1], reqs[2]);
    assert_true(w->got - released < TU_MS(500));
    for (i = 0; i < 3; i++)
        assert_true(reqs[i] <= 3); /* acquire script, CLIENT ID, BLPOP */
    assert_rl_ok(redislock_release(w->lk));
    for (i = 0; i < 3; i++)
        assert_int_equal(ts_info(&tf_masters[i], "clients", "blocked_clients"), 0);
}

/* A holder that died holding the lock on three masters whose keys expire
 * at different times (nobody releases): the lock can be free without a
 * release once two of them are gone (a quorum), so the waiter sleeps until
 * the second expiry.  It used to wake at the first (the smallest PTTL),
 * take that master, give it back and wait again (issue 27).  The first
 * master sees nothing from it between the two expiries. */
static void test_majority_waiter_of_a_dead_holder_wakes_at_the_quorum_th_expiry(void **state)
{
    static const int ttl[3] = { 300, 1500, 3000 };
    redislock_client *c = tf_multi(3, 0);
    tf_waiter *w = tf_waiter_new(tf_lock(c, "dead", 10000), TU_MS(10000));
    long long between;
    int64_t set_at;
    int i;

    for (i = 0; i < 3; i++)
        freeReplyObject(ts_cmd(&tf_masters[i], "SET lock:dead a-dead-holder PX %d",
                               (int)TU_MS(ttl[i])));
    set_at = tu_now_ms();
    tf_waiter_run(w);
    tf_await_blocked_all(tf_masters, 3, 1);
    ts_resetstat(&tf_masters[0]); /* its first round is over: it blocks after */
    tu_sleep_ms((int)(set_at + TU_MS(900) - tu_now_ms())); /* past the first expiry */
    between = ts_calls(&tf_masters[0], NULL);
    tf_waiter_join(w);
    assert_rl_ok(w->rc);
    print_message("      acquired %lld ms after the keys were set (expiries %d, %d, %d "
                  "ms); requests to the first master between its expiry and the "
                  "second: %lld\n", (long long)(w->got - set_at), ttl[0], ttl[1], ttl[2],
                  between);
    assert_true(w->got - set_at >= TU_MS(ttl[1]) - 50); /* not before (SET NX) */
    assert_int_equal(between, 0); /* no wake-up, no give-back at the first expiry */
    assert_rl_ok(redislock_release(w->lk));
}

/* A release on three masters: master 2 lost its scripts (SCRIPT FLUSH),
 * master 3 is stopped.  The NOSCRIPT answer of master 2 is answered with
 * EVAL at once on its connection, not after the stopped master's timeout
 * (it was sent only when the whole first step was over). */
static void *release_main(void *lk)
{
    return (void *)(intptr_t)redislock_release(lk);
}

static void test_majority_noscript_is_answered_at_once_beside_a_stopped_master(void **state)
{
    enum { MT = 500 };
    redislock *lk = tf_lock(tf_multi(3, MT), "ns", 10000);
    pthread_t t;
    void *rc;
    int64_t t0, gone = -1;
    (void)state;
    assert_rl_ok(redislock_acquire(lk, 0));
    freeReplyObject(ts_cmd(&tf_masters[1], "SCRIPT FLUSH"));
    ts_pause(&tf_masters[2]);
    t0 = tu_now_ms();
    assert_int_equal(pthread_create(&t, NULL, release_main, lk), 0);
    while (tu_now_ms() - t0 < MT + TU_MS(1000)) {
        if (ts_int(&tf_masters[1], "EXISTS lock:ns") == 0) {
            gone = tu_now_ms() - t0;
            break;
        }
        tu_sleep_ms(1);
    }
    pthread_join(t, &rc);
    ts_resume(&tf_masters[2]);
    print_message("      release with a flushed and a stopped master (master timeout %d "
                  "ms): released on the flushed one after %lld ms\n", MT, (long long)gone);
    assert_int_equal((int)(intptr_t)rc, REDISLOCK_OK);
    assert_true(gone >= 0 && gone < MT / 2);
}

/* The split wake: master 2 lost its scripts (a restart, a failover, a new
 * node: SCRIPT FLUSH), master 3 stops while a waiter blocks on all three,
 * and the holder releases.  Its release runs at once on master 1; on master
 * 2 it meets NOSCRIPT, and its EVAL must follow at once, not after the
 * stopped master's timeout; the waiter, woken by master 1, must wait for
 * master 2 (where the lock is still held for a moment) instead of giving up
 * its grant and backing off blind, and a quorum of grants is the lock.
 * Goal: hand-off <= master_timeout_ms + 100 ms (it took 2.1-3.8 s). */
static void test_majority_split_wake_hands_off_within_master_timeout(void **state)
{
    enum { MT = 500, RUNS = 3 };
    redislock_client *c = tf_multi(3, MT);
    int64_t late[RUNS], worst = 0;
    int i;
    for (i = 0; i < RUNS; i++) {
        char name[32];
        redislock *holder;
        tf_waiter *w;
        int64_t r0;
        snprintf(name, sizeof name, "split%d", i);
        holder = tf_lock(c, name, 10000);
        assert_rl_ok(redislock_acquire(holder, 0));
        w = tf_waiter_start(tf_lock(c, name, 10000), 8000);
        tf_await_blocked_all(tf_masters, 3, 1);
        freeReplyObject(ts_cmd(&tf_masters[1], "SCRIPT FLUSH"));
        ts_pause(&tf_masters[2]);
        r0 = tu_now_ms();
        assert_rl_ok(redislock_release(holder));
        tf_waiter_join(w);
        ts_resume(&tf_masters[2]);
        tf_waiter_assert_ok(w);
        late[i] = w->got - r0;
        if (late[i] > worst)
            worst = late[i];
        assert_rl_ok(redislock_release(w->lk));
    }
    print_message("      split wake (a flushed and a stopped master, master timeout %d "
                  "ms): hand-off %lld, %lld, %lld ms after the release began\n",
                  MT, (long long)late[0], (long long)late[1], (long long)late[2]);
    assert_true(worst <= MT + TU_MS(300));
}

/* Split votes: 3 contenders released at once against 3 masters, round
 * after round: someone gets the lock promptly each round, all get it in
 * turn, never two at once.  Each round starts from a planted split (every
 * contender's id holds a different master, as if they had each won one),
 * so the random back-off must break it. */
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
        rep = ts_cmd(&tf_masters[a->idx], "SET lock:split %s PX 5000", id);
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

static void test_majority_split_votes_broken_by_backoff(void **state)
{
    redislock_client *cs[3];
    struct sarg sa[3];
    redislock_client_options o = REDISLOCK_CLIENT_OPTIONS_INIT;
    pthread_t t[3];
    int i, r;
    int64_t worst = 0;
    o.log = count_splits;
    o.log_level = REDISLOCK_LOG_DEBUG;
    o.master_timeout_ms = TF_MASTER_TIMEOUT_MS;
    for (i = 0; i < 3; i++)
        cs[i] = tf_multi_opts(3, &o); /* one client each: independent connections */
    /* nothing can fail between the start of the threads and their join */
    pthread_barrier_init(&barrier, NULL, 3);
    for (i = 0; i < 3; i++) {
        sa[i].c = cs[i];
        sa[i].idx = i;
        pthread_create(&t[i], NULL, contender, &sa[i]);
    }
    for (i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&barrier);
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
}

/* Safety under chaos: masters killed and restarted, or stopped and
 * continued, one at a time, while 8 processes x 4 threads with renewal
 * fight for one lock: no two holds overlap (intervals.h). */
#define PROCS 8
#define THREADS 4
#define PER 2000
#define CHAOS_MS (20000 / (tu_slow() > 4 ? 4 : tu_slow()))
#define EXPIRE 1000

typedef struct chaos_counts {
    int errors[PROCS];
    int lost[PROCS];
} chaos_counts;

static chaos_counts *counts; /* shared with the children */
static ti_log *holds;        /* shared with the children */

static void chaos_contender(tf_contender *a)
{
    redislock *lk = NULL;
    redislock_options o = REDISLOCK_OPTIONS_INIT;
    unsigned seed = (unsigned)(a->proc * 131 + a->thread * 7 + 1);
    o.expire_ms = EXPIRE;
    o.auto_renew = 1;
    if (redislock_new(&lk, a->c, "chaos", &o))
        return;
    while (tu_now_ms() < a->end_ms) {
        int rc = redislock_acquire(lk, 2000);
        int64_t start, last = 0, until;
        if (rc) {
            if (rc != REDISLOCK_ETIMEDOUT && rc != REDISLOCK_ENOQUORUM)
                __atomic_add_fetch(&counts->errors[a->proc], 1, __ATOMIC_SEQ_CST);
            if (rc == REDISLOCK_ENOQUORUM)
                tu_sleep_ms(20);
            continue;
        }
        start = ti_now_us();
        until = start + (int64_t)(5 + rand_r(&seed) % 60) * 1000;
        /* hold: the interval ends at the last moment held() vouched for it */
        for (;;) {
            int64_t t = ti_vouched(lk);
            if (!t) {
                __atomic_add_fetch(&counts->lost[a->proc], 1, __ATOMIC_SEQ_CST);
                break;
            }
            last = t;
            if (t >= until)
                break;
            usleep(1000);
        }
        if (last)
            ti_add(holds, a->slot, start, last);
        redislock_release(lk);
    }
    redislock_free(lk);
}

static redislock_client *chaos_client(void *unused)
{
    redislock_client *c = NULL;
    redislock_client_options o = REDISLOCK_CLIENT_OPTIONS_INIT;
    o.master_timeout_ms = 100;
    return redislock_client_new_multi(&c, tf_urls, 3, &o) ? NULL : c;
}

static void test_majority_chaos_never_two_holders(void **state)
{
    ti_report rep;
    int p, kills = 0, stops = 0, total_lost = 0, errors = 0;
    int64_t end;
    unsigned seed = 12345;

    counts = tf_shared(sizeof *counts);
    holds = ti_log_new(PROCS * THREADS, PER);
    tf_contenders_start(PROCS, THREADS, CHAOS_MS, chaos_client, chaos_contender, NULL);
    /* Chaos: one master at a time.  A killed master comes back only after
     * the lock's expiry (it has no persistence: restarting sooner would let
     * it forget a live lock; see doc/design.md). */
    end = tu_now_ms() + CHAOS_MS - 1500;
    tu_sleep_ms(1000);
    while (tu_now_ms() < end) {
        int m = (int)(rand_r(&seed) % 3);
        if (rand_r(&seed) % 2) {
            ts_stop(&tf_masters[m]);
            tu_sleep_ms(EXPIRE + 300);
            assert_int_equal(ts_restart(&tf_masters[m]), 0);
            kills++;
        } else {
            ts_pause(&tf_masters[m]);
            tu_sleep_ms(300 + (int)(rand_r(&seed) % 1200));
            ts_resume(&tf_masters[m]);
            stops++;
        }
        tu_sleep_ms(700);
    }
    tf_contenders_wait();

    for (p = 0; p < PROCS; p++) {
        total_lost += counts->lost[p];
        errors += counts->errors[p];
    }
    rep = ti_check(holds);
    print_message("      %d s of chaos (%d kill+restart, %d stop+continue): %zu holds, "
                  "none overlapping (smallest gap %lld us); %d lost by renewal, %d "
                  "unexpected errors\n",
                  CHAOS_MS / 1000, kills, stops, rep.holds, (long long)rep.min_gap_us,
                  total_lost, errors);
    assert_true(rep.holds >= 50);
    assert_int_equal(errors, 0);
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, tf_masters_setup, tf_masters_teardown)
/* f run with 3 masters, then with 5 */
#define TEST_3_AND_5(f)                                                        \
    { #f " (3 masters)", f, tf_masters_setup, tf_masters_teardown, (void *)&three }, \
    { #f " (5 masters)", f, tf_masters_setup, tf_masters_teardown, (void *)&five }

int main(void)
{
    const struct CMUnitTest tests[] = {
        TEST_3_AND_5(test_majority_acquire_sets_every_master),
        TEST_3_AND_5(test_majority_other_handle_sees_lock_held),
        TEST_3_AND_5(test_majority_extend_renews_validity),
        TEST_3_AND_5(test_majority_release_clears_every_master),
        TEST(test_majority_lock_needs_expiry),
        TEST(test_majority_same_server_twice_refused),
        TEST(test_majority_one_of_three_down_lock_still_works),
        TEST(test_majority_two_of_three_down_no_quorum_at_once),
        TEST(test_majority_hung_master_costs_at_most_master_timeout),
        TEST(test_majority_hung_master_late_commands_expire),
        TEST(test_majority_waiter_blocks_until_release),
        TEST(test_majority_waiter_of_a_dead_holder_wakes_at_the_quorum_th_expiry),
        TEST(test_majority_noscript_is_answered_at_once_beside_a_stopped_master),
        TEST(test_majority_split_wake_hands_off_within_master_timeout),
        TEST(test_majority_split_votes_broken_by_backoff),
        TEST(test_majority_chaos_never_two_holders),
    };
    return cmocka_run_group_tests_name("majority", tests, tf_masters_group_setup_5,
                                       tf_masters_group_teardown);
}
