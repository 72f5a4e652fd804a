/* Redis Cluster failover against a real 6-node cluster (3 masters, one
 * replica each; cluster-node-timeout 1000) that the harness makes once for
 * the program: CLUSTER FAILOVER, SIGKILL and SIGSTOP/SIGCONT of a master
 * under an auto-renewing holder and a waiter, and a master killed with its
 * replica (the cluster goes down: REDISLOCK_ECLUSTERDOWN, not a time-out).
 * Killed nodes are restarted by the next test's set-up (they rejoin as
 * replicas). */
#include "clusterutil.h"

#include <pthread.h>
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

/* The library's log (INFO and up) of a scene's client, each line stamped
 * with the ms since the scene began: printed when a waiter took the lock
 * during a failover. */
static struct {
    pthread_mutex_t mu;
    int64_t t0;
    char text[16384];
    size_t len;
} diag = { PTHREAD_MUTEX_INITIALIZER, 0, "", 0 };

static void diag_log(void *ud, int level, const char *msg)
{
    int n;
    (void)ud;
    (void)level;
    pthread_mutex_lock(&diag.mu);
    n = snprintf(diag.text + diag.len, sizeof diag.text - diag.len, "        %6lld ms %s\n",
                 (long long)(tu_now_ms() - diag.t0), msg);
    if (n > 0 && (size_t)n < sizeof diag.text - diag.len)
        diag.len += (size_t)n;
    pthread_mutex_unlock(&diag.mu);
}

static void diag_note(const char *what)
{
    diag_log(NULL, 0, what);
}

/* Whether the waiter w's grant is on master (its id under the key), saying
 * what master holds there; then the log. */
static int grant_on(ts_server *master, const tf_waiter *w)
{
    char key[64];
    redisReply *r;
    int ours;
    snprintf(key, sizeof key, "lock:%s", redislock_name(w->lk));
    r = ts_cmd(master, "GET %s", key);
    ours = r && r->type == REDIS_REPLY_STRING && !strcmp(r->str, redislock_id(w->lk));
    /* printf: cmocka's print_message cuts at 1 KB */
    printf("      waiter %s from %lld to %lld ms; on redis %d now: %s = %s, PTTL %lld\n",
           redislock_id(w->lk), (long long)(w->start - diag.t0), (long long)(w->got - diag.t0),
           master->port, key, r && r->type == REDIS_REPLY_STRING ? r->str : "(none)",
           ts_int(master, "PTTL %s", key));
    if (r)
        freeReplyObject(r);
    pthread_mutex_lock(&diag.mu);
    printf("      log:\n%s", diag.text);
    pthread_mutex_unlock(&diag.mu);
    fflush(stdout);
    return ours;
}

static void diag_lost(redislock *lk, int reason, void *ud)
{
    char line[160];
    (void)ud;
    snprintf(line, sizeof line, "holder: lost (%s), %s", redislock_lost_reason_string(reason),
             redislock_name(lk));
    diag_note(line);
}

/* A holder (auto-renewed, expire_ms) and a waiter on a lock of master m. */
typedef struct scene {
    redislock_client *c;
    redislock *holder, *lk;
    tf_waiter *w;
    ts_server *m, *replica;
    char name[32];
} scene;

static void scene_start(scene *s, int master_index, int64_t expire_ms)
{
    redislock_options o = REDISLOCK_OPTIONS_INIT;
    int i, k = 0;
    for (i = 0; i < cl.n && !s->m; i++)
        if (tc_is_master(&cl.node[i]) && k++ == master_index)
            s->m = &cl.node[i];
    assert_non_null(s->m);
    s->replica = tc_replica_of(&cl, s->m);
    assert_non_null(s->replica);
    {
        redislock_client_options co = REDISLOCK_CLIENT_OPTIONS_INIT;
        co.log = diag_log;
        co.log_level = REDISLOCK_LOG_INFO;
        pthread_mutex_lock(&diag.mu);
        diag.t0 = tu_now_ms();
        diag.len = 0;
        diag.text[0] = '\0';
        pthread_mutex_unlock(&diag.mu);
        s->c = tf_client_opts(cl.url, &co);
    }
    cu_name_on(&cl, s->m, "fo", s->name, sizeof s->name);
    o.expire_ms = expire_ms;
    o.auto_renew = 1;
    o.on_lost = diag_lost;
    s->holder = tf_lock_opts(s->c, s->name, &o);
    s->lk = tf_lock(s->c, s->name, 10000);
    assert_rl_ok(redislock_acquire(s->holder, 0));
    /* the replica has it: WAIT covers the calling connection's last write,
     * so write first (after the holder's), then wait for that */
    assert_true(ts_int(s->m, "INCR {%s}sync", s->name) > 0);
    diag_note("test: WAIT");
    assert_int_equal(ts_int(s->m, "WAIT 1 1000"), 1);
    diag_note("test: WAIT answered");
    s->w = tf_waiter_start(s->lk, 20000);
    ts_await_blocked(s->m, 1);
}

/* Wait up to ms (stretched by REDISLOCK_TEST_SLOW) until s (the new
 * master) has n clients blocked.  If the waiter w ended meanwhile: with the
 * lock while holder still vouches for its own, two hold it (fail); with the
 * lock after holder lost its own (its renewal found no master in time: the
 * failover outlasted the expiry), 1 if the grant is on s, else fail: an old
 * master granted it and lost it (see
 * test_failover_sigstop_sigcont_of_a_master); with an error, fail naming
 * it. */
static int await_blocked(ts_server *s, long long n, int ms, tf_waiter *w, redislock *holder)
{
    int64_t end = tu_now_ms() + TU_MS(ms);
    while (ts_info(s, "clients", "blocked_clients") < n) {
        if (tf_waiter_done(w)) {
            int vouched = redislock_held(holder), on_s;
            int64_t left = redislock_validity_ms(holder);
            if (w->rc != REDISLOCK_OK)
                fail_msg("the waiter ended (rc %d after %lld ms: %s) instead of waiting on "
                         "redis %d", w->rc, (long long)(w->got - w->start), w->msg, s->port);
            on_s = grant_on(s, w);
            if (vouched)
                fail_msg("two holders: the waiter got the lock after %lld ms while the "
                         "holder still holds it (%lld ms of validity left)",
                         (long long)(w->got - w->start), (long long)left);
            if (!on_s)
                fail_msg("the waiter's grant is not on the new master (redis %d): the old "
                         "master granted it after SIGCONT, before it learned of the "
                         "failover, and lost it when it turned replica", s->port);
            print_message("      the holder lost its lock during the failover (%s); the "
                          "waiter took it %lld ms after it began\n",
                          redislock_lost_reason_string(redislock_lost_reason(holder)),
                          (long long)(w->got - w->start));
            return 1;
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
    scene_start(&s, 0, 3000);
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
    scene_start(&s, 1, 3000);
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
 * waits on the new master; the holder's lock survives.
 *
 * The holder's lock (6 s) must outlive the failover.  Its first renewal
 * (at 2 s) waits on the stopped master until SIGCONT or its command
 * timeout, and only then goes to the new master.  At SIGCONT the old
 * master runs what its clients queued before it learns that it lost its
 * slots: a renewal or an acquire it answers then is lost when it turns
 * replica (Redis's failover window; min_replicas is the library's answer,
 * doc/design.md).  While the holder's key lives on both nodes that is
 * harmless: a lost renewal is followed by one on the new master, a queued
 * acquire is answered "busy".  Once the failover outlasts the lock, the
 * old master grants the waiter's queued acquire (the key expired there
 * too) and the grant vanishes.  So it went with a 3 s lock: the SIGSTOP
 * came 793 ms into it (the harness's reset did not wait for the restarted
 * replica's acknowledgement; the scene's WAIT did), the failover took
 * 2,353 ms, and the waiter returned "held" 3,155 ms after the holder's
 * acquire, 9 ms after SIGCONT, with its key not on the new master (its
 * release: ENOTHELD).  CI saw the waiter return at 2,726 ms.  Failovers
 * measured beside a CPU hog: 2.0-2.8 s (12 SIGSTOP runs), 1.9-2.8 s after
 * a SIGKILL (17 runs).  await_blocked() fails naming the window if a grant
 * is lost so again. */
static void test_failover_sigstop_sigcont_of_a_master(void **state)
{
    static scene s;
    int64_t woke;
    (void)state;
    memset(&s, 0, sizeof s);
    scene_start(&s, 2, 6000);
    diag_note("test: SIGSTOP");
    ts_pause(s.m);
    assert_true(tc_await_master(&cl, s.replica, 10000) >= 0);
    diag_note("test: the replica is master");
    ts_resume(s.m);
    diag_note("test: SIGCONT");
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
