/* Fair hand-off: a waiter's acquire is pipelined behind its BLPOP, so the
 * server runs it the moment the wake-up is pushed, before the releaser (or
 * anyone else) can send another request.  The rules:
 *  - waiters get the lock in the order they blocked;
 *  - a releaser that comes straight back waits its turn (no contender
 *    starves over a few hundred hand-offs);
 *  - a grant after a wait longer than half the expiry is confirmed, so its
 *    validity is a useful one and never above the server's TTL;
 *  - a grant that happens as the caller's deadline passes is either
 *    returned (held) or not left held (no lock held unknowingly). */
#include "fixtures.h"
#include "server.h"
#include "testutil.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------ FIFO order */

static void test_waiters_get_the_lock_in_the_order_they_blocked(void **state)
{
    enum { N = 6 };
    redislock_client *c = tf_client(tu_srv.url);
    redislock *holder = tf_lock(c, "fifo", 0);
    tf_waiter *w[N];
    int i;
    (void)state;
    assert_rl_ok(redislock_acquire(holder, 0));
    for (i = 0; i < N; i++) {
        /* each holds 5 ms and releases: the release wakes the next */
        w[i] = tf_waiter_new(tf_lock(c, "fifo", 0), TU_MS(5000));
        w[i]->hold_ms = 5;
        tf_waiter_run(w[i]);
        ts_await_blocked(&tu_srv, i + 1);
    }
    assert_rl_ok(redislock_release(holder));
    for (i = 0; i < N; i++)
        tf_waiter_join(w[i]);
    for (i = 0; i < N; i++) {
        tf_waiter_assert_ok(w[i]);
        assert_int_equal(w[i]->release_rc, 0);
    }
    /* the order of the grants: by the time acquire returned */
    for (i = 1; i < N; i++)
        if (w[i]->got < w[i - 1]->got)
            fail_msg("waiter %d (blocked after waiter %d) got the lock first "
                     "(%lld ms vs %lld ms)", i, i - 1, (long long)w[i]->got,
                     (long long)w[i - 1]->got);
}

/* --------------------------------------------- a releaser that comes back */

typedef struct looper {
    redislock *lk;
    int count;
    int64_t end_ms;
    pthread_t t;
} looper;

static int last_winner = -1, streak, longest_streak;
static pthread_mutex_t win_mu = PTHREAD_MUTEX_INITIALIZER;

typedef struct loop_arg {
    looper *l;
    int id;
} loop_arg;

static void *loop_run(void *arg)
{
    loop_arg *a = arg;
    looper *l = a->l;
    while (tu_now_ms() < l->end_ms) {
        int rc = redislock_acquire(l->lk, TU_MS(2000));
        if (rc == REDISLOCK_ETIMEDOUT)
            continue;
        if (rc)
            break;
        pthread_mutex_lock(&win_mu);
        streak = last_winner == a->id ? streak + 1 : 1;
        last_winner = a->id;
        if (streak > longest_streak)
            longest_streak = streak;
        pthread_mutex_unlock(&win_mu);
        l->count++;
        /* no pause: straight back to acquire after the release */
        if (redislock_release(l->lk))
            break;
    }
    return NULL;
}

static void test_releaser_coming_straight_back_waits_its_turn(void **state)
{
    enum { N = 4 };
    static looper l[N];
    static loop_arg a[N];
    redislock_client *c = tf_client(tu_srv.url);
    int i, min = 1 << 30, max = 0, total = 0;
    int64_t end = tu_now_ms() + 1500;
    (void)state;
    last_winner = -1;
    streak = longest_streak = 0;
    for (i = 0; i < N; i++) {
        l[i].lk = tf_lock(c, "loop", 10000);
        l[i].count = 0;
        l[i].end_ms = end;
        a[i].l = &l[i];
        a[i].id = i;
        pthread_create(&l[i].t, NULL, loop_run, &a[i]);
    }
    for (i = 0; i < N; i++) {
        pthread_join(l[i].t, NULL);
        total += l[i].count;
        if (l[i].count < min)
            min = l[i].count;
        if (l[i].count > max)
            max = l[i].count;
    }
    print_message("      %d threads looping acquire/release without a pause: %d "
                  "acquisitions, min %d, max %d each, longest run by one %d\n",
                  N, total, min, max, longest_streak);
    assert_true(total >= 200 / tu_slow());
    /* every contender gets its turn: nobody starves, nobody runs away (a
     * releaser still wins again when nobody was blocked at its release:
     * the others were between a busy answer and their next BLPOP) */
    assert_true(min * 2 >= max);
}

/* ------------------------------------------- validity after a long wait */

static void test_grant_after_a_long_wait_has_a_useful_validity(void **state)
{
    redislock_client *c = tf_client(tu_srv.url);
    redislock *holder = tf_lock(c, "long", 0); /* no expiry: one long BLPOP */
    tf_waiter *w;
    long long pttl;
    int64_t v;
    (void)state;
    assert_rl_ok(redislock_acquire(holder, 0));
    w = tf_waiter_start(tf_lock(c, "long", 1000), TU_MS(5000));
    ts_await_blocked(&tu_srv, 1);
    tu_sleep_ms(800);
    assert_rl_ok(redislock_release(holder));
    tf_waiter_join(w);
    tf_waiter_assert_ok(w);
    v = redislock_validity_ms(w->lk);
    pttl = ts_int(&tu_srv, "PTTL lock:long");
    print_message("      granted when an 800 ms wait for a 1000 ms lock ended: validity "
                  "%lld ms, server PTTL %lld ms\n", (long long)v, pttl);
    /* counted from the wait's send, 200 ms at most would be left: the
     * grant was confirmed (the key's own PTTL) */
    assert_true(v > 700);
    assert_true(v <= pttl + 1);
}

/* ------------------------------------------ a grant at the deadline */

/* A holder whose lock expires just as the waiter's time runs out: the
 * client's timer ends the BLPOP (CLIENT UNBLOCK), and the acquire behind it
 * may take the lock at that moment.  Whatever the call answers, the server
 * agrees: held means the waiter is the owner, anything else means it is
 * not. */
static void test_grant_at_the_deadline_is_returned_or_not_left_held(void **state)
{
    redislock_client *c = tf_client(tu_srv.url);
    int i, held = 0, timed_out = 0;
    (void)state;
    for (i = 0; i < 20; i++) {
        char name[32];
        redislock *holder, *w;
        int rc;
        char owner[300] = "";
        redisReply *r;
        snprintf(name, sizeof name, "edge%d", i);
        holder = tf_lock(c, name, 200);
        w = tf_lock(c, name, 5000);
        assert_rl_ok(redislock_acquire(holder, 0));
        rc = redislock_acquire(w, 195 + i % 10); /* around the expiry */
        r = ts_cmd(&tu_srv, "GET lock:%s", name);
        if (r && r->type == REDIS_REPLY_STRING)
            snprintf(owner, sizeof owner, "%s", r->str);
        freeReplyObject(r);
        if (rc == 0) {
            held++;
            assert_string_equal(owner, redislock_id(w));
            assert_int_equal(redislock_held(w), 1);
        } else {
            assert_int_equal(rc, REDISLOCK_ETIMEDOUT);
            timed_out++;
            assert_string_not_equal(owner, redislock_id(w));
        }
    }
    print_message("      20 waits ending at the holder's expiry: %d held, %d timed "
                  "out, none left held unknowingly\n", held, timed_out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_waiters_get_the_lock_in_the_order_they_blocked, tu_setup, tf_teardown),
        cmocka_unit_test_setup_teardown(
            test_releaser_coming_straight_back_waits_its_turn, tu_setup, tf_teardown),
        cmocka_unit_test_setup_teardown(
            test_grant_after_a_long_wait_has_a_useful_validity, tu_setup, tf_teardown),
        cmocka_unit_test_setup_teardown(
            test_grant_at_the_deadline_is_returned_or_not_left_held, tu_setup,
            tf_teardown),
    };
    return cmocka_run_group_tests_name("handoff", tests, tu_group_setup, tu_group_teardown);
}
