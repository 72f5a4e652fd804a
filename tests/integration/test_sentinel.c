/* Redis Sentinel (redis-sentinel:// URLs) against a real deployment: a
 * master, a replica and three sentinels started by the harness (fast mode:
 * SENTINEL DEBUG periods of 250 ms; down-after 1000 ms).  Discovery as the
 * Sentinel client spec says, the errors when it cannot be done, failover
 * under an idle client, a waiter, a renewing holder, the switch closing
 * pooled connections, and min_replicas against a stale master and a
 * cut-off replica (the interval checker shows no two holders). */
#include "fakenode.h"
#include "fixtures.h"
#include "intervals.h"
#include "sentinel.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static ts_sentinels g;

static int group_setup(void **state)
{
    int rc = ts_sentinels_start(&g, "svc", 1);
    (void)state;
    if (rc == 77)
        return 0; /* every test skips */
    return rc;
}

static int group_teardown(void **state)
{
    (void)state;
    return 0; /* the harness kills every server at exit */
}

/* Every test: both data nodes and every sentinel running, the deployment
 * whole again, the master empty. */
static int setup(void **state)
{
    ts_server *m;
    redisReply *r;
    int i;
    (void)state;
    if (!g.node[0].dir[0])
        skip();
    for (i = 0; i < 2; i++) {
        ts_resume(&g.node[i]);
        if (!g.node[i].pid)
            assert_int_equal(ts_restart(&g.node[i]), 0);
    }
    for (i = 0; i < TS_NSENTINELS; i++)
        if (!g.sen[i].pid)
            assert_int_equal(ts_restart(&g.sen[i]), 0);
    assert_int_equal(ts_sentinels_settle(&g, 30000), 0);
    m = ts_sentinels_master(&g, 0);
    assert_non_null(m);
    r = ts_cmd(m, "FLUSHALL");
    if (r)
        freeReplyObject(r);
    (void)ts_sentinels_sync(&g, m);
    return 0;
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, setup, tf_teardown)

/* A key's value on a data node ("" if absent). */
static void value_on(ts_server *s, const char *key, char *buf, size_t len)
{
    redisReply *r = ts_cmd(s, "GET %s", key);
    snprintf(buf, len, "%s", r && r->type == REDIS_REPLY_STRING ? r->str : "");
    if (r)
        freeReplyObject(r);
}

static long long sentinel_asks(void)
{
    long long n = 0;
    int i;
    for (i = 0; i < TS_NSENTINELS; i++)
        n += ts_calls(&g.sen[i], "sentinel|get-master-addr-by-name");
    return n;
}

/* Through the service's URL a lock lands on the master; once the master is
 * known, acquire + release cost the same two requests as on the master's
 * own URL (no question to a sentinel, no ROLE). */
static void test_sentinel_lock_lands_on_the_master_without_extra_round_trips(void **state)
{
    redislock_client *c = tf_client(g.url);
    redislock *lk = tf_lock(c, "job", 10000);
    ts_server *m = ts_sentinels_master(&g, 1000);
    char v[128];
    long long before, asks;
    int i;
    (void)state;
    assert_rl_ok(redislock_acquire(lk, 0));
    value_on(m, "lock:job", v, sizeof v);
    assert_string_equal(v, redislock_id(lk));
    value_on(ts_sentinels_other(&g, m), "lock:job", v, sizeof v);
    assert_rl_ok(redislock_release(lk));
    ts_resetstat(m);
    before = sentinel_asks();
    for (i = 0; i < 200; i++) {
        assert_rl_ok(redislock_acquire(lk, 0));
        assert_rl_ok(redislock_release(lk));
    }
    asks = sentinel_asks() - before;
    print_message("      200 acquire+release: %lld EVALSHA, %lld ROLE on the master; %lld "
                  "sentinel questions (the watch asks once a second)\n",
                  ts_calls(m, "evalsha"), ts_calls(m, "role"), asks);
    assert_int_equal(ts_calls(m, "evalsha"), 400);
    assert_true(ts_calls(m, "role") <= 1 + asks);
}

/* The sentinels are asked in order: one that does not answer is passed
 * over, and the one that answered is asked first from then on. */
static void test_sentinel_dead_sentinel_is_passed_over(void **state)
{
    static ts_server gone;
    char url[700];
    redislock *lk;
    (void)state;
    /* a port that was free: nothing listens there now */
    gone.tcp = 1;
    tf_server_start(&gone);
    ts_stop(&gone);
    snprintf(url, sizeof url, "redis-sentinel://127.0.0.1:%d,127.0.0.1:%d/svc", gone.port,
             g.sen[1].port);
    lk = tf_lock(tf_client(url), "job", 5000);
    assert_rl_ok(redislock_acquire(lk, 0));
    assert_rl_ok(redislock_release(lk));
}

/* A service the sentinels do not know: an I/O error at once, naming it. */
static void test_sentinel_unknown_service_is_named(void **state)
{
    char url[700];
    redislock *lk;
    int64_t t0;
    (void)state;
    snprintf(url, sizeof url, "redis-sentinel://127.0.0.1:%d,127.0.0.1:%d/nosuch",
             g.sen[0].port, g.sen[1].port);
    lk = tf_lock(tf_client(url), "job", 5000);
    t0 = tu_now_ms();
    assert_rl_err(redislock_acquire(lk, 2000), REDISLOCK_EIO);
    print_message("      %s (%lld ms)\n", redislock_errmsg(lk), (long long)(tu_now_ms() - t0));
    assert_non_null(strstr(redislock_errmsg(lk), "do not know service 'nosuch'"));
    assert_true(tu_now_ms() - t0 < TU_MS(1000));
}

/* No sentinel answers: an I/O error within the bound, naming each one. */
static void test_sentinel_no_sentinel_answers(void **state)
{
    static ts_server a, b;
    char url[700];
    redislock *lk;
    int64_t t0;
    (void)state;
    a.tcp = b.tcp = 1;
    tf_server_start(&a);
    tf_server_start(&b);
    ts_stop(&a);
    ts_stop(&b);
    snprintf(url, sizeof url, "redis-sentinel://127.0.0.1:%d,127.0.0.1:%d/svc", a.port,
             b.port);
    lk = tf_lock(tf_client(url), "job", 5000);
    t0 = tu_now_ms();
    assert_rl_err(redislock_try_acquire(lk), REDISLOCK_EIO);
    print_message("      %s (%lld ms)\n", redislock_errmsg(lk), (long long)(tu_now_ms() - t0));
    assert_non_null(strstr(redislock_errmsg(lk), "no sentinel of service 'svc'"));
    assert_non_null(strstr(redislock_errmsg(lk), a.tcp_url + 8)); /* 127.0.0.1:port */
    assert_true(tu_now_ms() - t0 < TU_MS(1000));
}

/* The sentinels' own password is sent to them (not the master's); a
 * wrong one fails with a message that says AUTH. */
static void test_sentinel_wrong_sentinel_password(void **state)
{
    redislock_client_options o = REDISLOCK_CLIENT_OPTIONS_INIT;
    redislock *lk;
    (void)state;
    o.sentinel_password = "wrong";
    lk = tf_lock(tf_client_opts(g.url, &o), "job", 5000);
    assert_rl_err(redislock_try_acquire(lk), REDISLOCK_EIO);
    print_message("      %s\n", redislock_errmsg(lk));
    assert_non_null(strstr(redislock_errmsg(lk), "AUTH"));
}

/* A fake sentinel that names the replica as master. */
static void replica_naming_sentinel(void *ud, const redisReply *req, long n, tfn_out *out)
{
    const ts_server *replica = ud;
    (void)n;
    if (req->elements >= 2 && !strcasecmp(req->element[1]->str, "GET-MASTER-ADDR-BY-NAME"))
        tfn_reply(out, "*2\r\n$9\r\n127.0.0.1\r\n$%d\r\n%d\r\n",
                  (int)snprintf(NULL, 0, "%d", replica->port), replica->port);
    else if (req->elements >= 2 && !strcasecmp(req->element[1]->str, "SENTINELS"))
        tfn_reply(out, "*0\r\n");
    else
        tfn_reply(out, "+OK\r\n");
}

static void stop_fake(void *n)
{
    tfn_stop(n);
}

/* ROLE is checked: a sentinel that names a replica is refused and the
 * next one asked. */
static void test_sentinel_replica_named_as_master_is_refused(void **state)
{
    ts_server *m = ts_sentinels_master(&g, 1000);
    tfn_node *fake = tfn_start(replica_naming_sentinel, ts_sentinels_other(&g, m));
    char url[700], v[128];
    redislock *lk;
    (void)state;
    assert_non_null(fake);
    tf_defer(stop_fake, fake);
    snprintf(url, sizeof url, "redis-sentinel://127.0.0.1:%d,127.0.0.1:%d/svc",
             tfn_port(fake), g.sen[0].port);
    lk = tf_lock(tf_client(url), "job", 5000);
    assert_rl_ok(redislock_acquire(lk, 0));
    assert_true(tfn_requests(fake) >= 1);
    value_on(m, "lock:job", v, sizeof v);
    assert_string_equal(v, redislock_id(lk));
}

/* SENTINEL FAILOVER under an idle client: the next acquire goes to the new
 * master. */
static void test_sentinel_forced_failover_idle_client(void **state)
{
    redislock_client *c = tf_client(g.url);
    redislock *lk = tf_lock(c, "job", 5000);
    ts_server *old = ts_sentinels_master(&g, 1000), *nw = ts_sentinels_other(&g, old);
    redislock_stats st = { .version = REDISLOCK_STATS_VERSION };
    int64_t t0;
    char v[128];
    (void)state;
    assert_rl_ok(redislock_acquire(lk, 0));
    assert_rl_ok(redislock_release(lk));
    t0 = tu_now_ms();
    ts_sentinels_failover(&g);
    assert_true(ts_sentinels_await(&g, nw, 10000) >= 0);
    print_message("      sentinels name the new master %lld ms after SENTINEL FAILOVER\n",
                  (long long)(tu_now_ms() - t0));
    assert_rl_ok(redislock_acquire(lk, 5000));
    print_message("      acquired on the new master %lld ms after SENTINEL FAILOVER\n",
                  (long long)(tu_now_ms() - t0));
    value_on(nw, "lock:job", v, sizeof v);
    assert_string_equal(v, redislock_id(lk));
    assert_rl_ok(redislock_release(lk));
    assert_rl_ok(redislock_client_stats(c, &st));
    assert_int_equal(st.failovers, 1); /* counted once, by whoever saw it */
}

/* A switch closes the client's pooled connections to the old master at
 * once (+switch-master, or the watch's question), long before Sentinel
 * demotes the old master and kills its clients. */
static void test_sentinel_switch_closes_pooled_connections(void **state)
{
    redislock_client *c = tf_client(g.url);
    redislock *a = tf_lock(c, "a", 5000), *b = tf_lock(c, "b", 5000);
    ts_server *old = ts_sentinels_master(&g, 1000), *nw = ts_sentinels_other(&g, old);
    int64_t t0;
    int before;
    (void)state;
    assert_rl_ok(redislock_acquire(a, 0));
    assert_rl_ok(redislock_acquire(b, 0));
    assert_rl_ok(redislock_release(a));
    assert_rl_ok(redislock_release(b));
    before = ts_clients(old);
    assert_true(before >= 1);
    ts_sentinels_failover(&g);
    assert_true(ts_sentinels_await(&g, nw, 10000) >= 0);
    t0 = tu_now_ms();
    while (ts_clients(old) > 0 && tu_now_ms() - t0 < TU_MS(1500))
        tu_sleep_ms(5);
    print_message("      %d connection(s) to the old master; %d left %lld ms after the "
                  "sentinels named the new one\n",
                  before, ts_clients(old), (long long)(tu_now_ms() - t0));
    assert_int_equal(ts_clients(old), 0);
}

/* A waiter with no timeout across a SIGKILL failover keeps waiting and is
 * woken by the release on the new master. */
static void test_sentinel_waiter_across_failover(void **state)
{
    redislock_client *hc = tf_client(g.url), *wc = tf_client(g.url);
    redislock *h = tf_lock(hc, "job", 20000), *w = tf_lock(wc, "job", 20000);
    ts_server *old = ts_sentinels_master(&g, 1000), *nw = ts_sentinels_other(&g, old);
    tf_waiter *wt;
    int64_t t0, released;
    (void)state;
    assert_rl_ok(redislock_acquire(h, 0));
    assert_int_equal(ts_sentinels_sync(&g, old), 0); /* the lock is on the replica too */
    wt = tf_waiter_start(w, -1);
    ts_await_blocked(old, 1);
    t0 = tu_now_ms();
    ts_stop(old); /* SIGKILL */
    assert_true(ts_sentinels_await(&g, nw, 15000) >= 0);
    print_message("      new master writable and named %lld ms after SIGKILL\n",
                  (long long)(tu_now_ms() - t0));
    assert_false(tf_waiter_done(wt));
    assert_rl_ok(redislock_release(h));
    released = tu_now_ms();
    tf_waiter_await(wt, TU_MS(5000));
    tf_waiter_assert_ok(wt);
    print_message("      the waiter held the lock %lld ms after the release on the new "
                  "master\n",
                  (long long)(wt->got - released));
    assert_true(wt->got - released < TU_MS(1000));
    assert_rl_ok(redislock_release(w));
}

static int lost_calls;

/* A semaphore through the service with min_replicas=1 (every grant, and a
 * waiter's place in line, acknowledged by the replica): across a forced
 * failover the holder keeps its permit and the waiter its place, and the
 * release on the new master hands the permit to the waiter. */
static void test_sentinel_semaphore_across_failover_with_min_replicas(void **state)
{
    char url[700];
    redislock_client *hc, *wc;
    redislock_options o = REDISLOCK_OPTIONS_INIT;
    redislock *h, *w;
    ts_server *old = ts_sentinels_master(&g, 1000), *nw = ts_sentinels_other(&g, old);
    tf_waiter *wt;
    int64_t released;
    (void)state;
    snprintf(url, sizeof url, "%s?min_replicas=1&wait_ms=500", g.url);
    hc = tf_client(url);
    wc = tf_client(url);
    o.permits = 1;
    o.expire_ms = 20000;
    h = tf_lock_opts(hc, "sjob", &o);
    w = tf_lock_opts(wc, "sjob", &o);
    assert_rl_ok(redislock_acquire(h, 0));
    wt = tf_waiter_start(w, -1);
    ts_await_blocked(old, 1);
    ts_sentinels_failover(&g);
    assert_true(ts_sentinels_await(&g, nw, 10000) >= 0);
    assert_int_equal(ts_int(nw, "ZCARD sem:{sjob}:holders"), 1);
    assert_int_equal(ts_int(nw, "ZCARD sem:{sjob}:queue"), 1);
    /* the old master back as the new one's replica and acknowledging
     * writes, not only its link up (sentinel.h): the waiter's grant is
     * acknowledged (until then min_replicas refuses it: ENOREPLICAS) */
    assert_int_equal(ts_sentinels_settle(&g, 30000), 0);
    assert_false(tf_waiter_done(wt));
    assert_rl_ok(redislock_release(h));
    released = tu_now_ms();
    tf_waiter_await(wt, TU_MS(5000));
    tf_waiter_assert_ok(wt);
    print_message("      the waiter held the permit %lld ms after the release on the new "
                  "master\n", (long long)(wt->got - released));
    assert_true(wt->got - released < TU_MS(1000));
    assert_rl_ok(redislock_release(w));
}
static void count_lost(redislock *lk, int reason, void *ud)
{
    (void)lk;
    (void)reason;
    (void)ud;
    __atomic_add_fetch(&lost_calls, 1, __ATOMIC_SEQ_CST);
}

/* An auto-renewing holder keeps its lock across a forced failover (the key
 * was replicated; renewal follows the master), and nobody else gets it. */
static void test_sentinel_renewing_holder_across_failover(void **state)
{
    redislock_options o = REDISLOCK_OPTIONS_INIT;
    redislock_client *c = tf_client(g.url), *other = tf_client(g.url);
    redislock *lk, *rival = tf_lock(other, "job", 1500);
    ts_server *old = ts_sentinels_master(&g, 1000), *nw = ts_sentinels_other(&g, old);
    int64_t end;
    char v[128];
    (void)state;
    lost_calls = 0;
    o.expire_ms = 1500;
    o.auto_renew = 1;
    o.on_lost = count_lost;
    lk = tf_lock_opts(c, "job", &o);
    assert_rl_ok(redislock_acquire(lk, 0));
    ts_sentinels_failover(&g);
    assert_true(ts_sentinels_await(&g, nw, 10000) >= 0);
    end = tu_now_ms() + 3000; /* two expiries on the new master */
    while (tu_now_ms() < end) {
        assert_rl_err(redislock_acquire(rival, 50), REDISLOCK_ETIMEDOUT);
        tu_sleep_ms(50);
    }
    assert_int_equal(__atomic_load_n(&lost_calls, __ATOMIC_SEQ_CST), 0);
    assert_int_equal(redislock_held(lk), 1);
    value_on(nw, "lock:job", v, sizeof v);
    assert_string_equal(v, redislock_id(lk));
    assert_rl_ok(redislock_release(lk));
}

/* The master stopped (SIGSTOP) long enough for a failover, then continued:
 * an auto-renewing holder's lock moves with the service (renewal finds the
 * new master before the expiry), and after the old master continues (a
 * stale master now) nobody is granted the lock: not a client of the
 * service, and not one pinned to the old master with min_replicas 1.  A
 * client made while the master is stopped (its first discovery fails:
 * ROLE gets no answer) hears the switch with no master known, and works
 * once it is over. */
static void test_sentinel_paused_master_then_continued(void **state)
{
    redislock_options o = REDISLOCK_OPTIONS_INIT;
    redislock_client *c = tf_client(g.url), *other = tf_client(g.url);
    ts_server *old = ts_sentinels_master(&g, 1000), *nw = ts_sentinels_other(&g, old);
    redislock *lk, *rival = tf_lock(other, "job", 4000), *pinned, *fresh;
    char url[300], v[128];
    redisReply *r;
    int64_t t0;
    (void)state;
    lost_calls = 0;
    o.expire_ms = 4000;
    o.auto_renew = 1;
    o.on_lost = count_lost;
    lk = tf_lock_opts(c, "job", &o);
    assert_rl_ok(redislock_acquire(lk, 0));
    assert_int_equal(ts_sentinels_sync(&g, old), 0);
    snprintf(url, sizeof url, "%s?min_replicas=1&wait_ms=50", old->tcp_url);
    pinned = tf_lock(tf_client(url), "job", 4000);
    t0 = tu_now_ms();
    ts_pause(old);
    fresh = tf_lock(tf_client(g.url), "fresh", 4000);
    assert_true(ts_sentinels_await(&g, nw, 15000) >= 0);
    print_message("      new master named %lld ms after SIGSTOP\n",
                  (long long)(tu_now_ms() - t0));
    tu_sleep_ms(300); /* the fresh client's watch reads +switch-master */
    assert_rl_ok(redislock_acquire(fresh, 1000));
    value_on(nw, "lock:fresh", v, sizeof v);
    assert_string_equal(v, redislock_id(fresh));
    ts_resume(old);
    tu_sleep_ms(300); /* the old master serves again, still a master */
    assert_rl_err(redislock_acquire(rival, 100), REDISLOCK_ETIMEDOUT);
    assert_rl_err(redislock_try_acquire(pinned), REDISLOCK_EBUSY);
    value_on(nw, "lock:job", v, sizeof v);
    assert_string_equal(v, redislock_id(lk));
    assert_int_equal(__atomic_load_n(&lost_calls, __ATOMIC_SEQ_CST), 0);
    assert_int_equal(redislock_held(lk), 1);
    assert_rl_ok(redislock_release(lk));
    /* the old master still has the key (it was paused with it): a pinned
     * client without replicas behind it cannot be granted there anyway */
    r = ts_cmd(old, "DEL lock:job");
    if (r)
        freeReplyObject(r);
    assert_rl_err(redislock_try_acquire(pinned), REDISLOCK_ENOREPLICAS);
}

/* ---------------------------------------------------------- stale master */

/* Contenders for "job" over a failover: slot 0 through the service; slot
 * 1 on a client pinned to the old master (its plain URL: a client that
 * missed the switch); slot 2 pinned the same way with min_replicas 1.
 * Each loops acquire (50 ms) / hold 20 ms / release and logs its holds;
 * the service's holds go to both logs, so that each log compares one
 * pinned client with the service. */
#define STALE_HOLDS 2048
typedef struct stale_run {
    ti_log *log[2];          /* service + pinned, service + pinned min_replicas */
    ts_sentinels *dep;
    char pinned_url[2][200];
    int64_t end_ms;
    int held[3], enoreplicas[3];
    ti_hold holds[3][STALE_HOLDS];
} stale_run;

static stale_run *sr;

static void log_hold(int slot, int64_t start, int64_t end)
{
    int n = sr->held[slot]++;
    if (n < STALE_HOLDS)
        sr->holds[slot][n] = (ti_hold){ start, end };
    if (slot == 0) {
        ti_add(sr->log[0], 0, start, end);
        ti_add(sr->log[1], 0, start, end);
    } else {
        ti_add(sr->log[slot - 1], 1, start, end);
    }
}

static void hold_a_while(redislock *lk, int slot)
{
    int64_t start = ti_now_us(), last = 0, until = tu_now_ms() + 20;
    while (tu_now_ms() < until) {
        int64_t v = ti_vouched(lk);
        if (v)
            last = v;
        tu_sleep_ms(2);
    }
    if (last)
        log_hold(slot, start, last);
}

static void *contend(void *arg)
{
    int slot = (int)(intptr_t)arg;
    redislock_options o = REDISLOCK_OPTIONS_INIT;
    redislock_client *c = NULL;
    redislock *lk = NULL;
    o.expire_ms = 400; /* a key a release missed goes soon */
    if (redislock_client_new(&c, slot ? sr->pinned_url[slot - 1] : sr->dep->url, NULL) ||
        redislock_new(&lk, c, "job", &o)) {
        redislock_client_free(c);
        return NULL;
    }
    while (tu_now_ms() < __atomic_load_n(&sr->end_ms, __ATOMIC_SEQ_CST)) {
        int rc = redislock_acquire(lk, 50);
        if (rc == REDISLOCK_OK) {
            hold_a_while(lk, slot);
            (void)redislock_release(lk);
        } else {
            if (rc == REDISLOCK_ENOREPLICAS)
                sr->enoreplicas[slot]++;
            tu_sleep_ms(10);
        }
    }
    redislock_free(lk);
    redislock_client_free(c);
    return NULL;
}

/* Holds of slot that overlap a hold of the service (slot 0). */
static int overlapping(int slot)
{
    int i, j, n = 0, ns = sr->held[0] < STALE_HOLDS ? sr->held[0] : STALE_HOLDS;
    int np = sr->held[slot] < STALE_HOLDS ? sr->held[slot] : STALE_HOLDS;
    for (i = 0; i < np; i++)
        for (j = 0; j < ns; j++)
            if (sr->holds[slot][i].start_us < sr->holds[0][j].end_us &&
                sr->holds[0][j].start_us < sr->holds[slot][i].end_us) {
                n++;
                break;
            }
    return n;
}

/* Forced failover at the default periods (the real stale-master window:
 * Sentinel demotes the old master about 8 s later), with clients left on
 * the old master: without min_replicas they take the lock that the
 * service's client holds on the new master; with min_replicas 1, WAIT
 * finds no replica on the old master and they never do (interval
 * checker). */
static void test_sentinel_stale_master_at_default_periods(void **state)
{
    static ts_sentinels dep;
    static stale_run run;
    ts_server *old, *nw;
    ti_report rep;
    ti_overlap ov;
    pthread_t t[3];
    int64_t t0;
    int i, rc = ts_sentinels_start(&dep, "slow", 0);
    (void)state;
    if (rc == 77)
        skip();
    assert_int_equal(rc, 0);
    memset(&run, 0, sizeof run);
    sr = &run;
    run.dep = &dep;
    run.log[0] = ti_log_new(2, 4096);
    run.log[1] = ti_log_new(2, 4096);
    old = ts_sentinels_master(&dep, 1000);
    nw = ts_sentinels_other(&dep, old);
    snprintf(run.pinned_url[0], sizeof run.pinned_url[0], "%s", old->tcp_url);
    snprintf(run.pinned_url[1], sizeof run.pinned_url[1], "%s?min_replicas=1&wait_ms=50",
             old->tcp_url);
    run.end_ms = tu_now_ms() + 60000;
    for (i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&t[i], NULL, contend, (void *)(intptr_t)i), 0);
    tu_sleep_ms(300);
    t0 = tu_now_ms();
    ts_sentinels_failover(&dep);
    assert_true(ts_sentinels_await(&dep, nw, 10000) >= 0);
    /* the old master has no replica now: a grant there cannot be kept */
    assert_rl_err(redislock_try_acquire(tf_lock(tf_client(run.pinned_url[1]), "probe", 5000)),
                  REDISLOCK_ENOREPLICAS);
    /* until Sentinel demotes the old master (its clients are killed) */
    while (tu_now_ms() - t0 < 20000) {
        redisReply *r = ts_cmd(old, "ROLE");
        int demoted = r && r->type == REDIS_REPLY_ARRAY && strcmp(r->element[0]->str, "master");
        if (r)
            freeReplyObject(r);
        if (demoted)
            break;
        tu_sleep_ms(20);
    }
    print_message("      the old master was demoted %lld ms after SENTINEL FAILOVER\n",
                  (long long)(tu_now_ms() - t0));
    __atomic_store_n(&run.end_ms, tu_now_ms() + 200, __ATOMIC_SEQ_CST);
    for (i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    print_message("      holds: service %d; pinned %d, %d of them overlapping the service's; "
                  "pinned with min_replicas 1: %d (%d ENOREPLICAS), %d overlapping\n",
                  run.held[0], run.held[1], overlapping(1), run.held[2],
                  run.enoreplicas[2], overlapping(2));
    assert_int_equal(ti_find_overlap(run.log[1], &rep, &ov), 0);
    assert_int_equal(overlapping(2), 0);
    for (i = 0; i < 2; i++)
        ts_stop(&dep.node[i]);
    for (i = 0; i < TS_NSENTINELS; i++)
        ts_stop(&dep.sen[i]);
}

/* A replica cut off from the master: with min_replicas 1 the acquire fails
 * with ENOREPLICAS and leaves nothing behind. */
static void test_sentinel_cut_off_replica_min_replicas(void **state)
{
    char url[700];
    ts_server *m = ts_sentinels_master(&g, 1000), *rep = ts_sentinels_other(&g, m);
    redislock *lk;
    redisReply *r;
    char v[128];
    (void)state;
    snprintf(url, sizeof url, "%s?min_replicas=1&wait_ms=50", g.url);
    lk = tf_lock(tf_client(url), "job", 5000);
    assert_rl_ok(redislock_acquire(lk, 0)); /* replica connected: fine */
    assert_rl_ok(redislock_release(lk));
    r = ts_cmd(rep, "REPLICAOF 127.0.0.1 1");
    if (r)
        freeReplyObject(r);
    assert_rl_err(redislock_acquire(lk, 0), REDISLOCK_ENOREPLICAS);
    print_message("      %s\n", redislock_errmsg(lk));
    assert_int_equal(redislock_held(lk), 0);
    value_on(m, "lock:job", v, sizeof v);
    assert_string_equal(v, ""); /* given back */
    r = ts_cmd(rep, "REPLICAOF 127.0.0.1 %d", m->port);
    if (r)
        freeReplyObject(r);
}

static int lost_reason_seen;
static void note_reason(redislock *lk, int reason, void *ud)
{
    (void)lk;
    (void)ud;
    __atomic_store_n(&lost_reason_seen, reason, __ATOMIC_SEQ_CST);
}

/* The same cut-off under a holder with min_replicas 1: extend fails with
 * ENOREPLICAS, and the renewal reports the lock lost with its own reason. */
static void test_sentinel_cut_off_replica_under_a_holder(void **state)
{
    redislock_options o = REDISLOCK_OPTIONS_INIT;
    ts_server *m = ts_sentinels_master(&g, 1000), *rep = ts_sentinels_other(&g, m);
    char url[700];
    redislock *lk;
    redisReply *r;
    int64_t t0;
    (void)state;
    snprintf(url, sizeof url, "%s?min_replicas=1&wait_ms=50", g.url);
    lost_reason_seen = 0;
    o.expire_ms = 1500;
    o.auto_renew = 1;
    o.renew_interval_ms = 200;
    o.on_lost = note_reason;
    lk = tf_lock_opts(tf_client(url), "job", &o);
    assert_rl_ok(redislock_acquire(lk, 0));
    r = ts_cmd(rep, "REPLICAOF 127.0.0.1 1");
    if (r)
        freeReplyObject(r);
    assert_rl_err(redislock_extend(lk, 1500), REDISLOCK_ENOREPLICAS);
    t0 = tu_now_ms();
    while (!__atomic_load_n(&lost_reason_seen, __ATOMIC_SEQ_CST) &&
           tu_now_ms() - t0 < TU_MS(3000))
        tu_sleep_ms(10);
    print_message("      lost after %lld ms: %s\n", (long long)(tu_now_ms() - t0),
                  redislock_lost_reason_string(lost_reason_seen));
    assert_int_equal(lost_reason_seen, REDISLOCK_LOST_NO_REPLICAS);
    assert_int_equal(redislock_held(lk), 0);
    r = ts_cmd(rep, "REPLICAOF 127.0.0.1 %d", m->port);
    if (r)
        freeReplyObject(r);
}

/* reset_all through the service clears the master's locks. */
static void test_sentinel_reset_all(void **state)
{
    redislock_client *c = tf_client(g.url);
    uint64_t n = 0;
    (void)state;
    tf_take_locks(c, "stale", 5);
    assert_rl_ok(redislock_reset_all(c, NULL, &n));
    assert_int_equal(n, 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TEST(test_sentinel_lock_lands_on_the_master_without_extra_round_trips),
        TEST(test_sentinel_dead_sentinel_is_passed_over),
        TEST(test_sentinel_unknown_service_is_named),
        TEST(test_sentinel_no_sentinel_answers),
        TEST(test_sentinel_wrong_sentinel_password),
        TEST(test_sentinel_replica_named_as_master_is_refused),
        TEST(test_sentinel_reset_all),
        TEST(test_sentinel_cut_off_replica_min_replicas),
        TEST(test_sentinel_cut_off_replica_under_a_holder),
        TEST(test_sentinel_forced_failover_idle_client),
        TEST(test_sentinel_switch_closes_pooled_connections),
        TEST(test_sentinel_renewing_holder_across_failover),
        TEST(test_sentinel_waiter_across_failover),
        TEST(test_sentinel_semaphore_across_failover_with_min_replicas),
        TEST(test_sentinel_paused_master_then_continued),
        TEST(test_sentinel_stale_master_at_default_periods),
    };
    return cmocka_run_group_tests_name("sentinel", tests, group_setup, group_teardown);
}
