/* Redis Cluster failover against a real 6-node cluster (3 masters, one
 * replica each; cluster-node-timeout 1000) that the harness makes once for
 * the program: CLUSTER FAILOVER, SIGKILL and SIGSTOP/SIGCONT of a master
 * under an auto-renewing holder and a waiter, and a master killed with its
 * replica (the cluster goes down: REDISLOCK_ECLUSTERDOWN, not a time-out).
 * Killed nodes are restarted by the next test's set-up (they rejoin as
 * replicas). */
#include "clusterutil.h"

#include <stdio.h>
#include <string.h>

static tc_cluster cl;

static int group_setup(void **state)
{
    int rc = tc_start(&cl, 6, 1);
    (void)state;
    return rc == 77 ? 0 : rc;
}

static int setup(void **state)
{
    (void)state;
    if (!cl.n)
        skip();
    assert_int_equal(tc_reset(&cl, 30000), 0);
    return 0;
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, setup, tf_teardown)

/* A holder (auto-renewed) and a waiter on a lock of master m. */
typedef struct scene {
    redislock_client *c;
    redislock *holder, *lk;
    tf_waiter *w;
    ts_server *m, *replica;
    char name[32];
} scene;

static void scene_start(scene *s, int master_index)
{
    redislock_options o = REDISLOCK_OPTIONS_INIT;
    int i, k = 0;
    for (i = 0; i < cl.n && !s->m; i++)
        if (tc_is_master(&cl.node[i]) && k++ == master_index)
            s->m = &cl.node[i];
    assert_non_null(s->m);
    s->replica = tc_replica_of(&cl, s->m);
    assert_non_null(s->replica);
    s->c = tf_client(cl.url);
    cu_name_on(&cl, s->m, "fo", s->name, sizeof s->name);
    o.expire_ms = 3000;
    o.auto_renew = 1;
    s->holder = tf_lock_opts(s->c, s->name, &o);
    s->lk = tf_lock(s->c, s->name, 10000);
    assert_rl_ok(redislock_acquire(s->holder, 0));
    /* the replica has it: WAIT covers the calling connection's last write,
     * so write first (after the holder's), then wait for that */
    assert_true(ts_int(s->m, "INCR {%s}sync", s->name) > 0);
    assert_int_equal(ts_int(s->m, "WAIT 1 1000"), 1);
    s->w = tf_waiter_start(s->lk, 20000);
    ts_await_blocked(s->m, 1);
}

/* Wait up to ms (stretched by REDISLOCK_TEST_SLOW) until s has n clients
 * blocked.  If the waiter w ended meanwhile: with the lock, while holder
 * still vouches for its own, two hold it (fail); with the lock after holder
 * lost its own (its renewal found no master in time: a loaded machine, where
 * the failover outlasts the expiry), 1; with an error, fail naming it. */
static int await_blocked(ts_server *s, long long n, int ms, tf_waiter *w, redislock *holder)
{
    int64_t end = tu_now_ms() + TU_MS(ms);
    while (ts_info(s, "clients", "blocked_clients") < n) {
        if (tf_waiter_done(w)) {
            if (w->rc == REDISLOCK_OK && redislock_held(holder))
                fail_msg("two holders: the waiter got the lock after %lld ms while the "
                         "holder still holds it (%lld ms of validity left)",
                         (long long)(w->got - w->start),
                         (long long)redislock_validity_ms(holder));
            if (w->rc == REDISLOCK_OK) {
                print_message("      the holder lost its lock during the failover; the "
                              "waiter took it %lld ms after it began\n",
                              (long long)(w->got - w->start));
                return 1;
            }
            fail_msg("the waiter ended (rc %d after %lld ms: %s) instead of waiting on "
                     "redis %d", w->rc, (long long)(w->got - w->start), w->msg, s->port);
        }
        if (tu_now_ms() > end)
            fail_msg("redis %d: no client blocked after %d ms", s->port, (int)TU_MS(ms));
        tu_sleep_ms(5);
    }
    return 0;
}

/* After the failover: the holder still holds (renewed on the new master);
 * its release wakes the waiter there.  Returns ms from release to hold, or
 * -1 if the holder lost the lock during the failover (see await_blocked). */
static int64_t scene_finish(scene *s)
{
    int64_t t0;
    /* the waiter waits on the new master (after -UNBLOCKED, or after its
     * capped BLPOP on a paused master and the retries that follow) */
    if (await_blocked(s->replica, 1, 10000, s->w, s->holder)) {
        assert_rl_ok(redislock_release(s->lk));
        return -1;
    }
    assert_true(redislock_held(s->holder));
    assert_false(tf_waiter_done(s->w));
    t0 = tu_now_ms();
    assert_rl_ok(redislock_release(s->holder));
    tf_waiter_await(s->w, 5000);
    tf_waiter_assert_ok(s->w);
    print_message("      the waiter held it %lld ms after the release\n",
                  (long long)(s->w->got - t0));
    return s->w->got - t0;
}

/* CLUSTER FAILOVER on the replica: the waiter gets -UNBLOCKED, waits on the
 * new master, and holds the lock right after the holder's release there;
 * the holder's renewal follows the MOVED. */
static void test_failover_cluster_failover_under_a_waiter_and_a_holder(void **state)
{
    static scene s;
    redisReply *rep;
    int64_t t0, woke;
    (void)state;
    memset(&s, 0, sizeof s);
    scene_start(&s, 0);
    t0 = tu_now_ms();
    rep = ts_cmd(s.replica, "CLUSTER FAILOVER");
    assert_true(rep && rep->type == REDIS_REPLY_STATUS);
    freeReplyObject(rep);
    assert_true(tc_await_master(&cl, s.replica, 5000) >= 0);
    print_message("      new master after %lld ms\n", (long long)(tu_now_ms() - t0));
    tu_sleep_ms(1200); /* at least one renewal on the new master */
    woke = scene_finish(&s);
    assert_true(woke < TU_MS(150));
}

/* SIGKILL of the master: the replica takes over after the node timeout;
 * a client trying every 10 ms gets its first lock soon after the new
 * master accepts writes; the holder's lock survives (replicated), and the
 * waiter is woken there. */
static void test_failover_sigkill_under_a_waiter_and_a_holder(void **state)
{
    static scene s;
    char other[48];
    redislock *probe;
    int64_t killed, writable, first = 0;
    (void)state;
    memset(&s, 0, sizeof s);
    scene_start(&s, 1);
    snprintf(other, sizeof other, "%s}p", s.name); /* same slot, another lock */
    probe = tf_lock(tf_client(cl.url), other, 5000);
    killed = tu_now_ms();
    ts_stop(s.m);
    assert_true(tc_await_master(&cl, s.replica, 10000) >= 0);
    writable = tu_now_ms();
    while (tu_now_ms() - killed < 10000) {
        if (redislock_acquire(probe, 0) == 0) {
            first = tu_now_ms();
            break;
        }
        tu_sleep_ms(10);
    }
    assert_true(first > 0);
    print_message("      new master writable %lld ms after the kill; first acquire %lld ms "
                  "after that\n", (long long)(writable - killed), (long long)(first - writable));
    assert_true(first - writable < TU_MS(400));
    scene_finish(&s);
}

/* SIGSTOP of the master until its replica took over, then SIGCONT: the
 * old master turns replica; its waiter (-UNBLOCKED, or its capped BLPOP)
 * waits on the new master; the holder's lock survives. */
static void test_failover_sigstop_sigcont_of_a_master(void **state)
{
    static scene s;
    int64_t woke;
    (void)state;
    memset(&s, 0, sizeof s);
    scene_start(&s, 2);
    ts_pause(s.m);
    assert_true(tc_await_master(&cl, s.replica, 10000) >= 0);
    ts_resume(s.m);
    woke = scene_finish(&s);
    assert_true(woke < TU_MS(150));
}

/* A master killed with its replica: the cluster goes down.  An acquire of
 * a lock on a healthy master answers REDISLOCK_ECLUSTERDOWN (its own
 * code, not a time-out nor "busy") within the command timeout. */
static void test_failover_master_without_replica_killed_is_clusterdown(void **state)
{
    redislock_client_options o = REDISLOCK_CLIENT_OPTIONS_INIT;
    ts_server *m = NULL, *r, *healthy = NULL;
    redislock *lk;
    char name[32];
    int i, k;
    int64_t t0;
    (void)state;
    for (i = 0; i < cl.n; i++)
        if (tc_is_master(&cl.node[i]))
            (m ? (healthy = &cl.node[i]) : (m = &cl.node[i]));
    r = tc_replica_of(&cl, m);
    assert_non_null(r);
    o.command_timeout_ms = 800;
    lk = tf_lock(tf_client_opts(cl.url, &o), cu_name_on(&cl, healthy, "down", name,
                                                          sizeof name), 5000);
    assert_rl_ok(redislock_acquire(lk, 0));
    assert_rl_ok(redislock_release(lk));
    ts_stop(r);
    ts_stop(m);
    for (k = 0; k < 500; k++) { /* until a healthy node says fail */
        redisReply *rep = ts_cmd(healthy, "CLUSTER INFO");
        int down = rep && rep->type == REDIS_REPLY_STRING && strstr(rep->str, "state:fail");
        if (rep)
            freeReplyObject(rep);
        if (down)
            break;
        tu_sleep_ms(20);
    }
    t0 = tu_now_ms();
    assert_rl_err(redislock_acquire(lk, 0), REDISLOCK_ECLUSTERDOWN);
    print_message("      %s (%lld ms)\n", redislock_errmsg(lk), (long long)(tu_now_ms() - t0));
    assert_true(tu_now_ms() - t0 < TU_MS(1500));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TEST(test_failover_cluster_failover_under_a_waiter_and_a_holder),
        TEST(test_failover_sigkill_under_a_waiter_and_a_holder),
        TEST(test_failover_sigstop_sigcont_of_a_master),
        TEST(test_failover_master_without_replica_killed_is_clusterdown),
    };
    return cmocka_run_group_tests_name("cluster_failover", tests, group_setup, NULL);
}
