/* Fault injection: Redis error replies where a script's answer is expected
 * (WRONGTYPE, NOSCRIPT, OOM, BUSY), a lock key renamed away, and the same
 * faults on one master of three in majority mode.  Each fault must become a
 * clear error (code and message naming the cause), must not leave a handle
 * believing it holds a lock it does not, and must not corrupt anything: the
 * next operation after the fault is cleared works. */
#include "faults.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NM 3
static ts_server srv, masters[NM];
static const char *urls[NM];
static int started;

static int group_setup(void **state)
{
    int rc, i;
    srv.extra[0] = "--enable-debug-command";
    srv.extra[1] = "yes";
    if ((rc = ts_start(&srv)))
        return rc == 77 ? 0 : -1;
    for (i = 0; i < NM; i++) {
        if (ts_start(&masters[i]))
            return -1;
        urls[i] = masters[i].url;
    }
    started = 1;
    return 0;
}

static int group_teardown(void **state)
{
    int i;
    ts_stop(&srv);
    for (i = 0; i < NM; i++)
        ts_stop(&masters[i]);
    faults_summary("test_faults_replies");
    return 0;
}

static int setup(void **state)
{
    int i;
    if (!started)
        skip();
    ts_flushall(&srv);
    freeReplyObject(ts_cmd(&srv, "CONFIG SET maxmemory 0"));
    freeReplyObject(ts_cmd(&srv, "SCRIPT KILL")); /* after a failed BUSY case */
    for (i = 0; i < NM; i++)
        ts_flushall(&masters[i]);
    return 0;
}

static void cmd(ts_server *s, const char *fmt, const char *arg)
{
    redisReply *r = ts_cmd(s, fmt, arg);
    if (!r || r->type == REDIS_REPLY_ERROR)
        fail_msg("harness: %s: %s", fmt, r ? r->str : "no reply");
    freeReplyObject(r);
}

/* rc must be code, and the message (last error and the handle's) must name
 * the cause. */
static void expect(int rc, int code, redislock *lk, const char *text, const char *what)
{
    if (rc != code)
        fail_msg("%s: %s (%s), expected %s", what, redislock_err_name(rc),
                 redislock_last_error(), redislock_err_name(code));
    if (text && !strstr(redislock_last_error(), text))
        fail_msg("%s: message \"%s\" lacks \"%s\"", what, redislock_last_error(), text);
    if (lk && text && !strstr(redislock_errmsg(lk), text))
        fail_msg("%s: handle message \"%s\" lacks \"%s\"", what, redislock_errmsg(lk),
                 text);
}

/* -------------------------------------------------------------- WRONGTYPE */

/* The lock key holds a list: every operation that reads it is EPROTO with
 * WRONGTYPE, at once (a waiting acquire does not wait); reset removes it,
 * and then the lock works. */
static void test_wrongtype_lock_key(void **state)
{
    redislock_client *c = tu_client(srv.url);
    redislock *lk = tu_lock(c, "wt", 5000);
    redislock_info info;
    int64_t t0;

    cmd(&srv, "RPUSH %s x", "lock:wt");
    FAULT("lock key holds a list (WRONGTYPE)");
    expect(redislock_try_acquire(lk), REDISLOCK_EPROTO, lk, "WRONGTYPE", "try_acquire");
    assert_int_equal(redislock_held(lk), 0);
    t0 = tu_now_ms();
    expect(redislock_acquire(lk, 3000), REDISLOCK_EPROTO, lk, "WRONGTYPE", "acquire");
    assert_true(tu_now_ms() - t0 < TU_MS(1000));
    assert_int_equal(redislock_held(lk), 0);
    expect(redislock_release(lk), REDISLOCK_EPROTO, lk, "WRONGTYPE", "release");
    expect(redislock_extend(lk, 1000), REDISLOCK_EPROTO, lk, "WRONGTYPE", "extend");
    expect(redislock_query(lk, &info), REDISLOCK_EPROTO, lk, "WRONGTYPE", "query");
    assert_int_equal(ts_int(&srv, "LLEN lock:wt"), 1); /* nothing changed */
    /* a hash too */
    cmd(&srv, "DEL %s", "lock:wt");
    cmd(&srv, "HSET %s f v", "lock:wt");
    FAULT("lock key holds a hash (WRONGTYPE)");
    expect(redislock_try_acquire(lk), REDISLOCK_EPROTO, lk, "WRONGTYPE", "try_acquire");
    /* the forced reset deletes whatever is there */
    assert_int_equal(redislock_reset(c, "wt"), 1);
    assert_rl_ok(redislock_acquire(lk, 0));
    assert_rl_ok(redislock_release(lk));
    redislock_free(lk);
    redislock_client_free(c);
}

/* The signal key holds a hash while a waiter waits: its BLPOP meets
 * WRONGTYPE.  The waiter fails with an error naming WRONGTYPE within its
 * deadline (it must not spin or hang), and the holder is untouched. */
static void test_wrongtype_signal_key(void **state)
{
    redislock_client_options o = REDISLOCK_CLIENT_OPTIONS_INIT;
    redislock_client *c;
    redislock *holder, *lk;
    int64_t t0;
    int rc;

    o.connect_timeout_ms = 500;
    c = tu_client_opts(srv.url, &o);
    holder = tu_lock(c, "ws", 0);
    lk = tu_lock(c, "ws", 0);
    assert_rl_ok(redislock_acquire(holder, 0));
    cmd(&srv, "HSET %s f v", "lock-signal:ws");
    FAULT("signal key holds a hash (BLPOP WRONGTYPE)");
    t0 = tu_now_ms();
    rc = redislock_acquire(lk, 3000);
    print_message("      waiter: %s after %lld ms: %s\n", redislock_err_name(rc),
                  (long long)(tu_now_ms() - t0), redislock_errmsg(lk));
    expect(rc, REDISLOCK_EPROTO, lk, "WRONGTYPE", "acquire");
    assert_true(tu_now_ms() - t0 < TU_MS(1000)); /* at once, not by the deadline */
    assert_int_equal(redislock_held(lk), 0);
    assert_int_equal(ts_int(&srv, "HLEN lock-signal:ws"), 1);
    /* release replaces the bad signal key with a wake-up */
    assert_rl_ok(redislock_release(holder));
    assert_int_equal(ts_int(&srv, "LLEN lock-signal:ws"), 1);
    assert_rl_ok(redislock_acquire(lk, 1000));
    assert_rl_ok(redislock_release(lk));
    redislock_free(holder);
    redislock_free(lk);
    redislock_client_free(c);
}

/* --------------------------------------------------------------- NOSCRIPT */

/* SCRIPT FLUSH between the steps of a lock's life, and under pipelined
 * batches (reset_all over 150 locks: 3 batches in one pipeline, each
 * meeting NOSCRIPT) and under auto-renewal: everything reloads. */
static void test_noscript_each_step(void **state)
{
    redislock_client *c = tu_client(srv.url);
    redislock *lk = tu_lock(c, "ns", 0), *r;
    redislock_options ro = REDISLOCK_OPTIONS_INIT;
    redislock_info info;
    uint64_t count = 0;
    char name[32];
    int i;

    FAULT("SCRIPT FLUSH before acquire, query, extend, release, reset");
    cmd(&srv, "SCRIPT %s", "FLUSH");
    assert_rl_ok(redislock_acquire(lk, 0));
    cmd(&srv, "SCRIPT %s", "FLUSH");
    assert_rl_ok(redislock_query(lk, &info));
    assert_int_equal(info.mine, 1);
    cmd(&srv, "SCRIPT %s", "FLUSH");
    assert_rl_err(redislock_extend(lk, 0), REDISLOCK_EINVAL); /* no expiry: ours */
    cmd(&srv, "SCRIPT %s", "FLUSH");
    assert_rl_ok(redislock_release(lk));
    cmd(&srv, "SCRIPT %s", "FLUSH");
    assert_int_equal(redislock_reset(c, "ns"), 0);

    ts_flushall(&srv);
    for (i = 0; i < 150; i++) {
        redislock *t;
        snprintf(name, sizeof name, "many-%d", i);
        t = tu_lock(c, name, 0);
        assert_rl_ok(redislock_acquire(t, 0));
        redislock_free(t);
    }
    FAULT("SCRIPT FLUSH before a pipelined reset_all");
    cmd(&srv, "SCRIPT %s", "FLUSH");
    assert_rl_ok(redislock_reset_all(c, NULL, &count));
    assert_int_equal(count, 150);
    assert_int_equal(ts_int(&srv, "DBSIZE"), 150); /* only the wake-ups */

    /* auto-renewal across flushes */
    ro.expire_ms = 600;
    ro.auto_renew = 1;
    ro.renew_interval_ms = 100;
    assert_int_equal(redislock_new(&r, c, "ns-renew", &ro), 0);
    assert_rl_ok(redislock_acquire(r, 0));
    FAULT("SCRIPT FLUSH five times under auto-renewal");
    for (i = 0; i < 5; i++) {
        tu_sleep_ms(200);
        cmd(&srv, "SCRIPT %s", "FLUSH");
    }
    tu_sleep_ms(300);
    assert_int_equal(redislock_held(r), 1);
    assert_int_equal(redislock_lost_reason(r), 0);
    assert_true(ts_int(&srv, "PTTL lock:ns-renew") > 0);
    assert_rl_ok(redislock_release(r));
    redislock_free(r);
    redislock_free(lk);
    redislock_client_free(c);
}

/* -------------------------------------------------------------------- OOM */

/* maxmemory 1 with noeviction: writes that need memory are refused with
 * OOM.  An acquire (try or waiting) fails at once with EPROTO naming OOM
 * and does not report the lock held.  A release may run (Redis 7 lets a
 * script that began with a DEL go on writing) or fail with OOM: either way
 * the handle agrees with the server.  Once memory is allowed again,
 * everything works. */
static void test_oom(void **state)
{
    redislock_client *c = tu_client(srv.url);
    redislock *lk = tu_lock(c, "oom", 0), *held = tu_lock(c, "oom-held", 0);
    redislock_info info;
    int64_t t0;
    int rc;

    assert_rl_ok(redislock_acquire(held, 0));
    cmd(&srv, "CONFIG SET maxmemory-policy %s", "noeviction");
    cmd(&srv, "CONFIG SET maxmemory %s", "1");
    FAULT("maxmemory 1, noeviction (OOM)");
    expect(redislock_try_acquire(lk), REDISLOCK_EPROTO, lk, "OOM", "try_acquire");
    assert_int_equal(redislock_held(lk), 0);
    t0 = tu_now_ms();
    expect(redislock_acquire(lk, 2000), REDISLOCK_EPROTO, lk, "OOM", "acquire");
    assert_true(tu_now_ms() - t0 < TU_MS(1000));
    assert_int_equal(redislock_held(lk), 0);
    assert_int_equal(ts_int(&srv, "EXISTS lock:oom"), 0);
    rc = redislock_release(held);
    print_message("      release under OOM: %s %s\n", redislock_err_name(rc),
                  rc ? redislock_last_error() : "");
    if (rc) {
        expect(rc, REDISLOCK_EPROTO, held, "OOM", "release");
        assert_int_equal(redislock_held(held), 1);
        assert_int_equal(ts_int(&srv, "EXISTS lock:oom-held"), 1);
    } else {
        assert_int_equal(redislock_held(held), 0);
        assert_int_equal(ts_int(&srv, "EXISTS lock:oom-held"), 0);
    }
    rc = redislock_query(held, &info);
    print_message("      query under OOM: %s %s\n", redislock_err_name(rc),
                  rc ? redislock_last_error() : "");
    if (rc)
        expect(rc, REDISLOCK_EPROTO, held, "OOM", "query");
    else
        assert_int_equal(info.mine, redislock_held(held));
    cmd(&srv, "CONFIG SET maxmemory %s", "0");

    if (redislock_held(held))
        assert_rl_ok(redislock_release(held));
    assert_rl_ok(redislock_acquire(lk, 0));
    assert_rl_ok(redislock_release(lk));
    redislock_free(lk);
    redislock_free(held);
    redislock_client_free(c);
}

/* -------------------------------------------------------------- renamed */

static int lost_calls, lost_reason;

static void on_lost(redislock *lk, int reason, void *ud)
{
    __atomic_store_n(&lost_reason, reason, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&lost_calls, 1, __ATOMIC_SEQ_CST);
}

/* The lock key renamed away: release and extend say ENOTHELD, query says
 * free, another handle takes it; the renamed copy is left alone.  Renamed
 * away under auto-renewal: reported lost (gone), once. */
static void test_key_renamed(void **state)
{
    redislock_client *c = tu_client(srv.url);
    redislock *lk = tu_lock(c, "rn", 10000), *other = tu_lock(c, "rn", 0), *r;
    redislock_options ro = REDISLOCK_OPTIONS_INIT;
    redislock_info info;
    int64_t t0;

    assert_rl_ok(redislock_acquire(lk, 0));
    FAULT("lock key renamed away");
    cmd(&srv, "RENAME lock:rn %s", "moved:rn");
    assert_rl_ok(redislock_query(lk, &info));
    assert_int_equal(info.held, 0);
    assert_rl_err(redislock_extend(lk, 0), REDISLOCK_ENOTHELD);
    assert_rl_err(redislock_release(lk), REDISLOCK_ENOTHELD);
    assert_rl_ok(redislock_acquire(other, 0));
    assert_rl_ok(redislock_release(other));
    assert_int_equal(ts_int(&srv, "EXISTS moved:rn"), 1);

    ro.expire_ms = 600;
    ro.auto_renew = 1;
    ro.renew_interval_ms = 100;
    ro.on_lost = on_lost;
    assert_int_equal(redislock_new(&r, c, "rn2", &ro), 0);
    assert_rl_ok(redislock_acquire(r, 0));
    FAULT("lock key renamed away under auto-renewal");
    cmd(&srv, "RENAME lock:rn2 %s", "moved:rn2");
    t0 = tu_now_ms();
    while (!__atomic_load_n(&lost_calls, __ATOMIC_SEQ_CST) && tu_now_ms() - t0 < 3000)
        tu_sleep_ms(10);
    assert_int_equal(__atomic_load_n(&lost_calls, __ATOMIC_SEQ_CST), 1);
    assert_int_equal(__atomic_load_n(&lost_reason, __ATOMIC_SEQ_CST), REDISLOCK_LOST_GONE);
    assert_int_equal(redislock_held(r), 0);
    assert_rl_err(redislock_release(r), REDISLOCK_ENOTHELD);
    assert_rl_ok(redislock_acquire(r, 0));
    assert_rl_ok(redislock_release(r));
    redislock_free(r);
    redislock_free(lk);
    redislock_free(other);
    redislock_client_free(c);
}

/* ------------------------------------------------------------------- BUSY */

struct busy_script {
    ts_server *s;
    pthread_t t;
    char err[256];
};

static void *busy_main(void *p)
{
    struct busy_script *b = p;
    redisContext *ctx = redisConnectUnix(b->s->sock);
    redisReply *r;
    if (!ctx || ctx->err) {
        snprintf(b->err, sizeof b->err, "connect failed");
        if (ctx)
            redisFree(ctx);
        return NULL;
    }
    /* a read-only endless script: SCRIPT KILL can stop it */
    r = redisCommand(ctx, "EVAL %s 0", "while true do redis.call('exists', 'x') end");
    snprintf(b->err, sizeof b->err, "%s", r && r->str ? r->str : "(none)");
    if (r)
        freeReplyObject(r);
    redisFree(ctx);
    return NULL;
}

/* A script runs past busy-reply-threshold: the server answers BUSY to
 * everyone.  Every operation fails at once with EPROTO naming BUSY; after
 * SCRIPT KILL everything works. */
static void test_busy_script(void **state)
{
    redislock_client *c = tu_client(srv.url);
    redislock *lk = tu_lock(c, "busy", 0), *other = tu_lock(c, "busy", 0);
    struct busy_script b;
    redislock_info info;
    int64_t t0;
    int i;

    assert_rl_ok(redislock_acquire(lk, 0));
    cmd(&srv, "CONFIG SET busy-reply-threshold %s", "50");
    memset(&b, 0, sizeof b);
    b.s = &srv;
    FAULT("server busy in a script (BUSY)");
    pthread_create(&b.t, NULL, busy_main, &b);
    /* wait until the server answers BUSY (the harness's PING fails) */
    t0 = tu_now_ms();
    for (i = 0;; i++) {
        redisReply *r = ts_cmd(&srv, "PING");
        int busy = r && r->type == REDIS_REPLY_ERROR && !strncmp(r->str, "BUSY", 4);
        if (r)
            freeReplyObject(r);
        if (busy)
            break;
        if (tu_now_ms() - t0 > 5000)
            fail_msg("the server never became busy");
        tu_sleep_ms(20);
    }
    expect(redislock_try_acquire(other), REDISLOCK_EPROTO, other, "BUSY", "try_acquire");
    expect(redislock_acquire(other, 2000), REDISLOCK_EPROTO, other, "BUSY", "acquire");
    assert_int_equal(redislock_held(other), 0);
    expect(redislock_query(lk, &info), REDISLOCK_EPROTO, lk, "BUSY", "query");
    expect(redislock_extend(lk, 1000), REDISLOCK_EPROTO, lk, "BUSY", "extend");
    expect(redislock_release(lk), REDISLOCK_EPROTO, lk, "BUSY", "release");
    assert_int_equal(redislock_held(lk), 1);
    expect(redislock_reset(c, "busy"), REDISLOCK_EPROTO, NULL, "BUSY", "reset");
    expect(redislock_reset_all(c, NULL, NULL), REDISLOCK_EPROTO, NULL, "BUSY", "reset_all");
    cmd(&srv, "SCRIPT %s", "KILL");
    pthread_join(b.t, NULL);
    print_message("      the busy script ended with: %.60s\n", b.err);
    cmd(&srv, "CONFIG SET busy-reply-threshold %s", "5000");

    assert_rl_ok(redislock_release(lk));
    assert_rl_ok(redislock_acquire(other, 0));
    assert_rl_ok(redislock_release(other));
    redislock_free(lk);
    redislock_free(other);
    redislock_client_free(c);
}

/* DEBUG SLEEP: a server busy in one command answers late, like a slow
 * server; the command timeout applies and the next call works. */
static void test_debug_sleep(void **state)
{
    redislock_client_options o = REDISLOCK_CLIENT_OPTIONS_INIT;
    redislock_client *c;
    redislock *lk;
    redisContext *ctx;
    int64_t t0;

    o.command_timeout_ms = 200;
    c = tu_client_opts(srv.url, &o);
    lk = tu_lock(c, "ds", 0);
    assert_rl_ok(redislock_acquire(lk, 0));
    ctx = redisConnectUnix(srv.sock);
    assert_true(ctx && !ctx->err);
    FAULT("DEBUG SLEEP 1 on another connection");
    assert_int_equal(redisAppendCommand(ctx, "DEBUG SLEEP 1"), REDIS_OK);
    {
        int done = 0;
        assert_int_equal(redisBufferWrite(ctx, &done), REDIS_OK);
    }
    tu_sleep_ms(50);
    t0 = tu_now_ms();
    expect(redislock_release(lk), REDISLOCK_EIO, lk, "command timeout", "release");
    assert_true(tu_now_ms() - t0 < TU_MS(200 + 800));
    redisFree(ctx);
    faults_await_clients(&srv, 1);
    /* the release sent meanwhile ran after the sleep */
    assert_int_equal(ts_int(&srv, "EXISTS lock:ds"), 0);
    assert_rl_err(redislock_release(lk), REDISLOCK_ENOTHELD);
    assert_rl_ok(redislock_acquire(lk, 0));
    assert_rl_ok(redislock_release(lk));
    redislock_free(lk);
    redislock_client_free(c);
}

/* --------------------------------------------------------- majority mode */

static redislock_client *multi(void)
{
    redislock_client *c = NULL;
    redislock_client_options o = REDISLOCK_CLIENT_OPTIONS_INIT;
    o.master_timeout_ms = 500;
    if (redislock_client_new_multi(&c, urls, NM, &o))
        fail_msg("client_new_multi: %s", redislock_last_error());
    return c;
}

/* One master returns WRONGTYPE: the lock is still granted by the two
 * others, and the failure is reported per master; two such masters: no
 * quorum, with the cause in the message, and nothing left behind. */
static void test_majority_wrongtype(void **state)
{
    redislock_client *c = multi();
    redislock *lk = tu_lock(c, "mw", 10000);
    redislock_info info;

    cmd(&masters[1], "RPUSH %s x", "lock:mw");
    FAULT("majority: one master of 3 answers WRONGTYPE");
    assert_rl_ok(redislock_acquire(lk, 0));
    assert_msg_has(redislock_master_errors(lk), "WRONGTYPE");
    assert_rl_ok(redislock_query(lk, &info));
    assert_int_equal(info.mine, 1);
    assert_rl_ok(redislock_extend(lk, 20000));
    assert_rl_ok(redislock_release(lk));
    assert_int_equal(ts_int(&masters[0], "EXISTS lock:mw"), 0);
    assert_int_equal(ts_int(&masters[2], "EXISTS lock:mw"), 0);
    assert_int_equal(ts_int(&masters[1], "LLEN lock:mw"), 1);

    cmd(&masters[2], "HSET %s f v", "lock:mw");
    FAULT("majority: two masters of 3 answer WRONGTYPE");
    expect(redislock_acquire(lk, 1000), REDISLOCK_ENOQUORUM, lk, "WRONGTYPE", "acquire");
    assert_int_equal(redislock_held(lk), 0);
    assert_int_equal(ts_int(&masters[0], "EXISTS lock:mw"), 0); /* undone */
    assert_int_equal(redislock_reset(c, "mw"), 1);
    assert_rl_ok(redislock_acquire(lk, 0));
    assert_rl_ok(redislock_release(lk));
    redislock_free(lk);
    redislock_client_free(c);
}

/* Every master's signal key holds a hash: the waiter's BLPOPs all fail with
 * WRONGTYPE.  It must fail at once with the cause, not spin between rounds
 * and BLPOPs until its deadline. */
static void test_majority_wrongtype_signal_all(void **state)
{
    redislock_client *c = multi();
    redislock *holder = tu_lock(c, "mws", 10000), *lk = tu_lock(c, "mws", 10000);
    long long before, after;
    int64_t t0;
    int rc, i;

    assert_rl_ok(redislock_acquire(holder, 0));
    for (i = 0; i < NM; i++)
        cmd(&masters[i], "HSET %s f v", "lock-signal:mws");
    FAULT("majority: every master's signal key holds a hash");
    before = ts_calls(&masters[0], "blpop");
    t0 = tu_now_ms();
    rc = redislock_acquire(lk, 2000);
    after = ts_calls(&masters[0], "blpop");
    print_message("      waiter: %s after %lld ms, %lld BLPOPs on master 1: %s\n",
                  redislock_err_name(rc), (long long)(tu_now_ms() - t0), after - before,
                  redislock_errmsg(lk));
    assert_true(rc == REDISLOCK_EPROTO || rc == REDISLOCK_ENOQUORUM);
    assert_msg_has(redislock_errmsg(lk), "WRONGTYPE");
    assert_true(after - before <= 3);
    assert_int_equal(redislock_held(lk), 0);
    assert_rl_ok(redislock_release(holder)); /* replaces the hashes */
    assert_rl_ok(redislock_acquire(lk, 1000));
    assert_rl_ok(redislock_release(lk));
    redislock_free(holder);
    redislock_free(lk);
    redislock_client_free(c);
}

/* A waiter blocks on all three masters; its BLPOP connection to one of them
 * is killed.  It goes on waiting on the others (and the killed one again),
 * and the holder's release wakes it. */
static void test_majority_kill_mid_wait(void **state)
{
    redislock_client *c = multi();
    redislock *holder = tu_lock(c, "mk", 10000), *lk = tu_lock(c, "mk", 10000);
    faults_waiter w;
    int64_t released;
    long long id;
    int i;

    assert_rl_ok(redislock_acquire(holder, 0));
    memset(&w, 0, sizeof w);
    faults_waiter_start(&w, lk, 8000);
    for (i = 0; i < NM; i++)
        ts_await_blocked(&masters[i], 1);
    id = faults_blocked_id(&masters[0], 0);
    assert_true(id > 0);
    FAULT("majority: a waiter's BLPOP connection to one master killed");
    assert_true(faults_kill_id(&masters[0], id));
    tu_sleep_ms(200);
    assert_false(faults_waiter_done(&w));
    released = tu_now_ms();
    assert_rl_ok(redislock_release(holder));
    faults_waiter_join(&w);
    if (w.rc)
        fail_msg("waiter: %s: %s", redislock_err_name(w.rc), w.msg);
    assert_true(w.got >= released && w.got < released + TU_MS(2000));
    print_message("      woken %lld ms after the release\n", (long long)(w.got - released));
    assert_rl_ok(redislock_release(lk));
    redislock_free(holder);
    redislock_free(lk);
    redislock_client_free(c);
}

/* Majority mode: a waiter blocked on three masters receives signals at
 * random; it is woken by the release, not before. */
static void test_majority_signals_while_waiting(void **state)
{
    redislock_client *c = multi();
    redislock *holder = tu_lock(c, "msig", 10000), *lk = tu_lock(c, "msig", 10000);
    faults_signaller sg;
    faults_waiter w;
    int64_t released;
    int i;

    assert_rl_ok(redislock_acquire(holder, 0));
    memset(&w, 0, sizeof w);
    faults_waiter_start(&w, lk, 8000);
    FAULT("majority: SIGUSR1 at random to a waiter blocked on 3 masters");
    faults_signals_on(&sg, w.t, 4);
    for (i = 0; i < NM; i++)
        ts_await_blocked(&masters[i], 1);
    tu_sleep_ms(500);
    assert_false(faults_waiter_done(&w));
    released = tu_now_ms();
    assert_rl_ok(redislock_release(holder));
    faults_waiter_await(&w, TU_MS(10000));
    assert_true(faults_signals_off(&sg) > 0);
    faults_waiter_join(&w);
    if (w.rc)
        fail_msg("waiter: %s: %s", redislock_err_name(w.rc), w.msg);
    assert_true(w.got >= released && w.got < released + TU_MS(2000));
    assert_rl_ok(redislock_release(lk));
    redislock_free(holder);
    redislock_free(lk);
    redislock_client_free(c);
}

/* Majority mode: one master restarts (empty) while a waiter blocks.  The
 * holder keeps its quorum on the two others, so the waiter goes on waiting
 * (it must not take the lock from the restarted master alone); the
 * holder's release (2 of 3) wakes it, and it takes the lock on all three. */
static void test_majority_restart_while_waiting(void **state)
{
    redislock_client *c = multi();
    redislock *holder = tu_lock(c, "mr", 10000), *lk = tu_lock(c, "mr", 10000);
    faults_waiter w;
    int64_t released;
    int i;

    assert_rl_ok(redislock_acquire(holder, 0));
    memset(&w, 0, sizeof w);
    faults_waiter_start(&w, lk, 8000);
    for (i = 0; i < NM; i++)
        ts_await_blocked(&masters[i], 1);
    FAULT("majority: one master restarted empty while a waiter blocks");
    assert_int_equal(ts_restart(&masters[2]), 0);
    tu_sleep_ms(300);
    assert_false(faults_waiter_done(&w)); /* 1 of 3 is no quorum */
    released = tu_now_ms();
    assert_rl_ok(redislock_release(holder));
    faults_waiter_join(&w);
    if (w.rc)
        fail_msg("waiter: %s: %s", redislock_err_name(w.rc), w.msg);
    assert_true(w.got >= released && w.got < released + TU_MS(2000));
    for (i = 0; i < NM; i++)
        assert_int_equal(ts_int(&masters[i], "EXISTS lock:mr"), 1);
    assert_rl_ok(redislock_release(lk));
    redislock_free(holder);
    redislock_free(lk);
    redislock_client_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_wrongtype_lock_key, setup),
        cmocka_unit_test_setup(test_wrongtype_signal_key, setup),
        cmocka_unit_test_setup(test_noscript_each_step, setup),
        cmocka_unit_test_setup(test_oom, setup),
        cmocka_unit_test_setup(test_key_renamed, setup),
        cmocka_unit_test_setup(test_busy_script, setup),
        cmocka_unit_test_setup(test_debug_sleep, setup),
        cmocka_unit_test_setup(test_majority_wrongtype, setup),
        cmocka_unit_test_setup(test_majority_wrongtype_signal_all, setup),
        cmocka_unit_test_setup(test_majority_kill_mid_wait, setup),
        cmocka_unit_test_setup(test_majority_signals_while_waiting, setup),
        cmocka_unit_test_setup(test_majority_restart_while_waiting, setup),
    };
    return cmocka_run_group_tests_name("faults_replies", tests, group_setup,
                                       group_teardown);
}
