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

/* tf_masters[0..2]: the masters of the majority-mode tests; tf_masters[3]:
 * the server of the others (with DEBUG enabled) */
#define NM 3
static ts_server *const srv = &tf_masters[NM];

static int group_setup(void **state)
{
    tf_masters[NM].extra[0] = "--enable-debug-command";
    tf_masters[NM].extra[1] = "yes";
    return tf_masters_start(NM + 1);
}

static int group_teardown(void **state)
{
    faults_summary("test_faults_replies");
    return tf_masters_group_teardown(state);
}

/* Every master running and empty; srv out of the state a failed OOM or
 * BUSY case may have left it in. */
static int setup(void **state)
{
    if (srv->pid) {
        freeReplyObject(ts_cmd(srv, "SCRIPT KILL"));
        freeReplyObject(ts_cmd(srv, "CONFIG SET busy-reply-threshold 5000"));
        freeReplyObject(ts_cmd(srv, "CONFIG SET maxmemory 0"));
    }
    return tf_masters_setup(state);
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

/* try_acquire and a waiting acquire (timeout_ms) on lk both fail at once
 * with EPROTO naming text, and lk is not held. */
static void expect_acquire_refused_at_once(redislock *lk, int64_t timeout_ms,
                                           const char *text)
{
    int64_t t0;
    expect(redislock_try_acquire(lk), REDISLOCK_EPROTO, lk, text, "try_acquire");
    assert_int_equal(redislock_held(lk), 0);
    t0 = tu_now_ms();
    expect(redislock_acquire(lk, timeout_ms), REDISLOCK_EPROTO, lk, text, "acquire");
    assert_true(tu_now_ms() - t0 < TU_MS(1000));
    assert_int_equal(redislock_held(lk), 0);
}

/* -------------------------------------------------------------- WRONGTYPE */

/* The lock key holds a list (then a hash): every operation that reads it is
 * EPROTO with WRONGTYPE, at once (a waiting acquire does not wait), and
 * changes nothing; the forced reset leaves it alone too (it is not a lock:
 * EPROTO naming its type); once it is deleted, the lock works. */
static void test_wrongtype_lock_key_every_operation_fails_at_once(void **state)
{
    redislock_client *c = tf_client(srv->url);
    redislock *lk = tf_lock(c, "wt", 5000);
    redislock_info info;

    cmd(srv, "RPUSH %s x", "lock:wt");
    FAULT("lock key holds a list (WRONGTYPE)");
    expect_acquire_refused_at_once(lk, 3000, "WRONGTYPE");
    expect(redislock_release(lk), REDISLOCK_EPROTO, lk, "WRONGTYPE", "release");
    expect(redislock_extend(lk, 1000), REDISLOCK_EPROTO, lk, "WRONGTYPE", "extend");
    expect(redislock_query(lk, &info), REDISLOCK_EPROTO, lk, "WRONGTYPE", "query");
    assert_int_equal(ts_int(srv, "LLEN lock:wt"), 1); /* nothing changed */
    /* a hash too */
    cmd(srv, "DEL %s", "lock:wt");
    cmd(srv, "HSET %s f v", "lock:wt");
    FAULT("lock key holds a hash (WRONGTYPE)");
    expect(redislock_try_acquire(lk), REDISLOCK_EPROTO, lk, "WRONGTYPE", "try_acquire");
    expect(redislock_reset(c, "wt"), REDISLOCK_EPROTO, NULL, "not a lock", "reset");
    assert_int_equal(ts_int(srv, "EXISTS lock:wt"), 1);
    cmd(srv, "DEL %s", "lock:wt");
    assert_rl_ok(redislock_acquire(lk, 0));
    assert_rl_ok(redislock_release(lk));
}

/* The signal key holds a hash while a waiter waits: its BLPOP meets
 * WRONGTYPE.  The waiter fails with an error naming WRONGTYPE at once (it
 * must not spin or hang until its deadline), and the holder is untouched. */
static void test_wrongtype_signal_key_waiter_fails_at_once(void **state)
{
    redislock_client_options o = REDISLOCK_CLIENT_OPTIONS_INIT;
    redislock_client *c;
    redislock *holder, *lk;
    int64_t t0;
    int rc;

    o.connect_timeout_ms = 500;
    c = tf_client_opts(srv->url, &o);
    holder = tf_lock(c, "ws", 0);
    lk = tf_lock(c, "ws", 0);
    assert_rl_ok(redislock_acquire(holder, 0));
    cmd(srv, "HSET %s f v", "lock-signal:ws");
    FAULT("signal key holds a hash (BLPOP WRONGTYPE)");
    t0 = tu_now_ms();
    rc = redislock_acquire(lk, 3000);
    print_message("      waiter: %s after %lld ms: %s\n", redislock_err_name(rc),
                  (long long)(tu_now_ms() - t0), redislock_errmsg(lk));
    expect(rc, REDISLOCK_EPROTO, lk, "WRONGTYPE", "acquire");
    assert_true(tu_now_ms() - t0 < TU_MS(1000)); /* at once, not by the deadline */
    assert_int_equal(redislock_held(lk), 0);
    assert_int_equal(ts_int(srv, "HLEN lock-signal:ws"), 1);
    assert_int_equal(redislock_held(holder), 1);
}

/* A release replaces a signal key of the wrong type with a wake-up, and the
 * next waiter takes the lock. */
static void test_wrongtype_signal_key_replaced_by_release(void **state)
{
    redislock_client *c = tf_client(srv->url);
    redislock *holder = tf_lock(c, "ws", 0), *lk = tf_lock(c, "ws", 0);

    assert_rl_ok(redislock_acquire(holder, 0));
    cmd(srv, "HSET %s f v", "lock-signal:ws");
    FAULT("signal key holds a hash when the holder releases");
    assert_rl_ok(redislock_release(holder));
    assert_int_equal(ts_int(srv, "LLEN lock-signal:ws"), 1);
    assert_rl_ok(redislock_acquire(lk, 1000));
    assert_rl_ok(redislock_release(lk));
}

/* --------------------------------------------------------------- NOSCRIPT */

/* SCRIPT FLUSH between the steps of a lock's life: every step reloads. */
static void test_noscript_each_step_reloads(void **state)
{
    redislock_client *c = tf_client(srv->url);
    redislock *lk = tf_lock(c, "ns", 0);
    redislock_info info;

    FAULT("SCRIPT FLUSH before acquire, query, extend, release, reset");
    cmd(srv, "SCRIPT %s", "FLUSH");
    assert_rl_ok(redislock_acquire(lk, 0));
    cmd(srv, "SCRIPT %s", "FLUSH");
    assert_rl_ok(redislock_query(lk, &info));
    assert_int_equal(info.mine, 1);
    cmd(srv, "SCRIPT %s", "FLUSH");
    assert_rl_err(redislock_extend(lk, 0), REDISLOCK_EINVAL); /* no expiry: ours */
    cmd(srv, "SCRIPT %s", "FLUSH");
    assert_rl_ok(redislock_release(lk));
    cmd(srv, "SCRIPT %s", "FLUSH");
    assert_int_equal(redislock_reset(c, "ns"), 0);
}

/* SCRIPT FLUSH before a reset_all over 150 locks (3 batches in one
 * pipeline, each meeting NOSCRIPT): it reloads and resets them all. */
static void test_noscript_pipelined_reset_all_reloads(void **state)
{
    redislock_client *c = tf_client(srv->url);
    uint64_t count = 0;

    tf_take_locks(c, "many-", 150);
    FAULT("SCRIPT FLUSH before a pipelined reset_all");
    cmd(srv, "SCRIPT %s", "FLUSH");
    assert_rl_ok(redislock_reset_all(c, NULL, &count));
    assert_int_equal(count, 150);
    assert_int_equal(ts_int(srv, "DBSIZE"), 150); /* only the wake-ups */
}

/* SCRIPT FLUSH five times under auto-renewal: renewal reloads, the lock is
 * kept. */
static void test_noscript_under_renewal_lock_kept(void **state)
{
    redislock_client *c = tf_client(srv->url);
    redislock_options ro = REDISLOCK_OPTIONS_INIT;
    redislock *r;
    int i;

    ro.expire_ms = 600;
    ro.auto_renew = 1;
    ro.renew_interval_ms = 100;
    r = tf_lock_opts(c, "ns-renew", &ro);
    assert_rl_ok(redislock_acquire(r, 0));
    FAULT("SCRIPT FLUSH five times under auto-renewal");
    for (i = 0; i < 5; i++) {
        tu_sleep_ms(200);
        cmd(srv, "SCRIPT %s", "FLUSH");
    }
    tu_sleep_ms(300);
    assert_int_equal(redislock_held(r), 1);
    assert_int_equal(redislock_lost_reason(r), 0);
    assert_true(ts_int(srv, "PTTL lock:ns-renew") > 0);
    assert_rl_ok(redislock_release(r));
}

/* -------------------------------------------------------------------- OOM */

/* maxmemory 1 with noeviction: writes that need memory are refused with
 * OOM.  An acquire (try or waiting) fails at once with EPROTO naming OOM
 * and does not report the lock held.  A release may run (Redis 7 lets a
 * script that began with a DEL go on writing) or fail with OOM: either way
 * the handle agrees with the server.  Once memory is allowed again,
 * everything works. */
static void test_oom_acquire_fails_handle_agrees_with_server(void **state)
{
    redislock_client *c = tf_client(srv->url);
    redislock *lk = tf_lock(c, "oom", 0), *held = tf_lock(c, "oom-held", 0);
    redislock_info info;
    int rc;

    assert_rl_ok(redislock_acquire(held, 0));
    cmd(srv, "CONFIG SET maxmemory-policy %s", "noeviction");
    cmd(srv, "CONFIG SET maxmemory %s", "1");
    FAULT("maxmemory 1, noeviction (OOM)");
    expect_acquire_refused_at_once(lk, 2000, "OOM");
    assert_int_equal(ts_int(srv, "EXISTS lock:oom"), 0);
    rc = redislock_release(held);
    print_message("      release under OOM: %s %s\n", redislock_err_name(rc),
                  rc ? redislock_last_error() : "");
    if (rc) {
        expect(rc, REDISLOCK_EPROTO, held, "OOM", "release");
        assert_int_equal(redislock_held(held), 1);
        assert_int_equal(ts_int(srv, "EXISTS lock:oom-held"), 1);
    } else {
        assert_int_equal(redislock_held(held), 0);
        assert_int_equal(ts_int(srv, "EXISTS lock:oom-held"), 0);
    }
    rc = redislock_query(held, &info);
    print_message("      query under OOM: %s %s\n", redislock_err_name(rc),
                  rc ? redislock_last_error() : "");
    if (rc)
        expect(rc, REDISLOCK_EPROTO, held, "OOM", "query");
    else
        assert_int_equal(info.mine, redislock_held(held));
    cmd(srv, "CONFIG SET maxmemory %s", "0");

    if (redislock_held(held))
        assert_rl_ok(redislock_release(held));
    assert_rl_ok(redislock_acquire(lk, 0));
    assert_rl_ok(redislock_release(lk));
}

/* -------------------------------------------------------------- renamed */

/* The lock key renamed away: release and extend say ENOTHELD, query says
 * free, another handle takes it; the renamed copy is left alone. */
static void test_key_renamed_away_not_held(void **state)
{
    redislock_client *c = tf_client(srv->url);
    redislock *lk = tf_lock(c, "rn", 10000), *other = tf_lock(c, "rn", 0);
    redislock_info info;

    assert_rl_ok(redislock_acquire(lk, 0));
    FAULT("lock key renamed away");
    cmd(srv, "RENAME lock:rn %s", "moved:rn");
    assert_rl_ok(redislock_query(lk, &info));
    assert_int_equal(info.held, 0);
    assert_rl_err(redislock_extend(lk, 0), REDISLOCK_ENOTHELD);
    assert_rl_err(redislock_release(lk), REDISLOCK_ENOTHELD);
    assert_rl_ok(redislock_acquire(other, 0));
    assert_rl_ok(redislock_release(other));
    assert_int_equal(ts_int(srv, "EXISTS moved:rn"), 1);
}

static int lost_calls, lost_reason; /* atomic; static: a callback may come late */

static void on_lost(redislock *lk, int reason, void *ud)
{
    __atomic_store_n(&lost_reason, reason, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&lost_calls, 1, __ATOMIC_SEQ_CST);
}

/* The lock key renamed away under auto-renewal: reported lost (gone), once;
 * the handle can take the lock again. */
static void test_key_renamed_under_renewal_reported_gone(void **state)
{
    redislock_client *c = tf_client(srv->url);
    redislock_options ro = REDISLOCK_OPTIONS_INIT;
    redislock *r;
    int64_t t0;

    __atomic_store_n(&lost_calls, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&lost_reason, 0, __ATOMIC_SEQ_CST);
    ro.expire_ms = 600;
    ro.auto_renew = 1;
    ro.renew_interval_ms = 100;
    ro.on_lost = on_lost;
    r = tf_lock_opts(c, "rn2", &ro);
    assert_rl_ok(redislock_acquire(r, 0));
    FAULT("lock key renamed away under auto-renewal");
    cmd(srv, "RENAME lock:rn2 %s", "moved:rn2");
    t0 = tu_now_ms();
    while (!__atomic_load_n(&lost_calls, __ATOMIC_SEQ_CST) && tu_now_ms() - t0 < 3000)
        tu_sleep_ms(10);
    assert_int_equal(__atomic_load_n(&lost_calls, __ATOMIC_SEQ_CST), 1);
    assert_int_equal(__atomic_load_n(&lost_reason, __ATOMIC_SEQ_CST), REDISLOCK_LOST_GONE);
    assert_int_equal(redislock_held(r), 0);
    assert_rl_err(redislock_release(r), REDISLOCK_ENOTHELD);
    assert_rl_ok(redislock_acquire(r, 0));
    assert_rl_ok(redislock_release(r));
}

/* ------------------------------------------------------------------- BUSY */

struct busy_script {
    ts_server *s;
    pthread_t t;
    int running;
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

/* After a failed test too: kill the script, so that the thread ends. */
static void stop_busy(void *p)
{
    struct busy_script *b = p;
    if (!b->running)
        return;
    freeReplyObject(ts_cmd(b->s, "SCRIPT KILL"));
    pthread_join(b->t, NULL);
    b->running = 0;
}

/* A script runs past busy-reply-threshold: the server answers BUSY to
 * everyone.  Every operation fails at once with EPROTO naming BUSY; after
 * SCRIPT KILL everything works. */
static void test_busy_script_every_operation_fails_at_once(void **state)
{
    static struct busy_script b; /* the thread may outlive a failed test */
    redislock_client *c = tf_client(srv->url);
    redislock *lk = tf_lock(c, "busy", 0), *other = tf_lock(c, "busy", 0);
    redislock_info info;
    int64_t t0;
    int i;

    assert_rl_ok(redislock_acquire(lk, 0));
    cmd(srv, "CONFIG SET busy-reply-threshold %s", "50");
    memset(&b, 0, sizeof b);
    b.s = srv;
    FAULT("server busy in a script (BUSY)");
    pthread_create(&b.t, NULL, busy_main, &b);
    b.running = 1;
    tf_defer(stop_busy, &b);
    /* wait until the server answers BUSY (the harness's PING fails) */
    t0 = tu_now_ms();
    for (i = 0;; i++) {
        redisReply *r = ts_cmd(srv, "PING");
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
    tf_undefer(&b); /* SCRIPT KILL */
    print_message("      the busy script ended with: %.60s\n", b.err);
    cmd(srv, "CONFIG SET busy-reply-threshold %s", "5000");

    assert_rl_ok(redislock_release(lk));
    assert_rl_ok(redislock_acquire(other, 0));
    assert_rl_ok(redislock_release(other));
}

/* DEBUG SLEEP: a server busy in one command answers late, like a slow
 * server; the command timeout applies and the next call works. */
static void free_context(void *ctx)
{
    redisFree(ctx);
}

static void test_slow_server_command_timeout_applies(void **state)
{
    redislock_client_options o = REDISLOCK_CLIENT_OPTIONS_INIT;
    redislock_client *c;
    redislock *lk;
    redisContext *ctx;
    int64_t t0;
    int done = 0;

    o.command_timeout_ms = 200;
    c = tf_client_opts(srv->url, &o);
    lk = tf_lock(c, "ds", 0);
    assert_rl_ok(redislock_acquire(lk, 0));
    ctx = redisConnectUnix(srv->sock);
    assert_true(ctx && !ctx->err);
    tf_defer(free_context, ctx);
    FAULT("DEBUG SLEEP 1 on another connection");
    assert_int_equal(redisAppendCommand(ctx, "DEBUG SLEEP 1"), REDIS_OK);
    assert_int_equal(redisBufferWrite(ctx, &done), REDIS_OK);
    tu_sleep_ms(50);
    t0 = tu_now_ms();
    expect(redislock_release(lk), REDISLOCK_EIO, lk, "command timeout", "release");
    assert_true(tu_now_ms() - t0 < TU_MS(200 + 800));
    tf_undefer(ctx);
    faults_await_clients(srv, 1);
    /* the release sent meanwhile ran after the sleep */
    assert_int_equal(ts_int(srv, "EXISTS lock:ds"), 0);
    assert_rl_err(redislock_release(lk), REDISLOCK_ENOTHELD);
    assert_rl_ok(redislock_acquire(lk, 0));
    assert_rl_ok(redislock_release(lk));
}

/* --------------------------------------------------------- majority mode */

static redislock_client *multi(void)
{
    return tf_multi(NM, 500);
}

/* One master of three returns WRONGTYPE: the lock is still granted by the
 * two others, the failure is reported per master, and extend, query and
 * release work on the two. */
static void test_majority_one_wrongtype_master_quorum_still_grants(void **state)
{
    redislock *lk = tf_lock(multi(), "mw", 10000);
    redislock_info info;

    cmd(&tf_masters[1], "RPUSH %s x", "lock:mw");
    FAULT("majority: one master of 3 answers WRONGTYPE");
    assert_rl_ok(redislock_acquire(lk, 0));
    assert_msg_has(redislock_master_errors(lk), "WRONGTYPE");
    assert_rl_ok(redislock_query(lk, &info));
    assert_int_equal(info.mine, 1);
    assert_rl_ok(redislock_extend(lk, 20000));
    assert_rl_ok(redislock_release(lk));
    assert_int_equal(ts_int(&tf_masters[0], "EXISTS lock:mw"), 0);
    assert_int_equal(ts_int(&tf_masters[2], "EXISTS lock:mw"), 0);
    assert_int_equal(ts_int(&tf_masters[1], "LLEN lock:mw"), 1);
}

/* Two masters of three return WRONGTYPE: no quorum, with the cause in the
 * message, and nothing left behind on the third; once the keys are deleted
 * the lock works. */
static void test_majority_two_wrongtype_masters_no_quorum(void **state)
{
    redislock_client *c = multi();
    redislock *lk = tf_lock(c, "mw", 10000);

    cmd(&tf_masters[1], "RPUSH %s x", "lock:mw");
    cmd(&tf_masters[2], "HSET %s f v", "lock:mw");
    FAULT("majority: two masters of 3 answer WRONGTYPE");
    expect(redislock_acquire(lk, 1000), REDISLOCK_ENOQUORUM, lk, "WRONGTYPE", "acquire");
    assert_int_equal(redislock_held(lk), 0);
    assert_int_equal(ts_int(&tf_masters[0], "EXISTS lock:mw"), 0); /* undone */
    cmd(&tf_masters[1], "DEL %s", "lock:mw");
    cmd(&tf_masters[2], "DEL %s", "lock:mw");
    assert_rl_ok(redislock_acquire(lk, 0));
    assert_rl_ok(redislock_release(lk));
}

/* Every master's signal key holds a hash: the waiter's BLPOPs all fail with
 * WRONGTYPE.  It must fail at once with the cause, not spin between rounds
 * and BLPOPs until its deadline. */
static void test_majority_wrongtype_signal_keys_waiter_fails_without_spinning(void **state)
{
    redislock_client *c = multi();
    redislock *holder = tf_lock(c, "mws", 10000), *lk = tf_lock(c, "mws", 10000);
    long long before, after;
    int64_t t0;
    int rc, i;

    assert_rl_ok(redislock_acquire(holder, 0));
    for (i = 0; i < NM; i++)
        cmd(&tf_masters[i], "HSET %s f v", "lock-signal:mws");
    FAULT("majority: every master's signal key holds a hash");
    before = ts_calls(&tf_masters[0], "blpop");
    t0 = tu_now_ms();
    rc = redislock_acquire(lk, 2000);
    after = ts_calls(&tf_masters[0], "blpop");
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
}

/* The majority rows: a holder and a waiter (expiry 10 s, timeout 8 s) on
 * the three masters; the fault once the waiter blocks on all three; the
 * holder's release must wake it within 2 s. */
#define MAJORITY_WAITER                                                      \
    .servers = tf_masters, .nservers = NM, .master_timeout_ms = 500,        \
    .holder_expire_ms = 10000, .waiter_expire_ms = 10000, .timeout_ms = 8000, \
    .await_blocked = 1, .release = 1, .want = REDISLOCK_OK, .woken_within_ms = 2000

/* A waiter blocks on all three masters; its BLPOP connection to one of them
 * is killed.  It goes on waiting on the others (and the killed one again),
 * and the holder's release wakes it. */
static void kill_blpop_on_master_0(faults_scene *s)
{
    long long id = faults_blocked_id(&tf_masters[0], 0);
    assert_true(id > 0);
    assert_true(faults_kill_id(&tf_masters[0], id));
}

static const faults_case test_majority_waiter_survives_blpop_killed_on_one_master = {
    MAJORITY_WAITER, .lock = "mk",
    .fault = "majority: a waiter's BLPOP connection to one master killed",
    .inject = kill_blpop_on_master_0, .still_waiting_ms = 200,
};

/* A waiter blocked on three masters receives signals at random; it is
 * woken by the release, not before. */
static const faults_case test_majority_signals_waiter_woken_by_release_not_before = {
    MAJORITY_WAITER, .lock = "msig",
    .fault = "majority: SIGUSR1 at random to a waiter blocked on 3 masters",
    .signals = 4, .still_waiting_ms = 500,
};

/* One master restarts (empty) while a waiter blocks.  The holder keeps its
 * quorum on the two others, so the waiter goes on waiting (it must not take
 * the lock from the restarted master alone: 1 of 3 is no quorum); the
 * holder's release (2 of 3) wakes it, and it takes the lock on a quorum
 * (its acquires ran behind the BLPOPs of the two masters it still waited
 * on). */
static void restart_master_2(faults_scene *s)
{
    assert_int_equal(ts_restart(&tf_masters[2]), 0);
}

static void check_on_a_quorum(faults_scene *s)
{
    int i, n = 0;
    for (i = 0; i < NM; i++)
        n += ts_int(&tf_masters[i], "EXISTS lock:mr") == 1;
    assert_true(n >= NM / 2 + 1);
}

static const faults_case test_majority_waiter_ignores_restarted_master_alone = {
    MAJORITY_WAITER, .lock = "mr",
    .fault = "majority: one master restarted empty while a waiter blocks",
    .inject = restart_master_2, .still_waiting_ms = 300,
    .check = check_on_a_quorum,
};

#define TEST(f) cmocka_unit_test_setup_teardown(f, setup, tf_masters_teardown)
#define CASE(c) FAULTS_CASE(c, setup, tf_masters_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        TEST(test_wrongtype_lock_key_every_operation_fails_at_once),
        TEST(test_wrongtype_signal_key_waiter_fails_at_once),
        TEST(test_wrongtype_signal_key_replaced_by_release),
        TEST(test_noscript_each_step_reloads),
        TEST(test_noscript_pipelined_reset_all_reloads),
        TEST(test_noscript_under_renewal_lock_kept),
        TEST(test_oom_acquire_fails_handle_agrees_with_server),
        TEST(test_key_renamed_away_not_held),
        TEST(test_key_renamed_under_renewal_reported_gone),
        TEST(test_busy_script_every_operation_fails_at_once),
        TEST(test_slow_server_command_timeout_applies),
        TEST(test_majority_one_wrongtype_master_quorum_still_grants),
        TEST(test_majority_two_wrongtype_masters_no_quorum),
        TEST(test_majority_wrongtype_signal_keys_waiter_fails_without_spinning),
        CASE(test_majority_waiter_survives_blpop_killed_on_one_master),
        CASE(test_majority_signals_waiter_woken_by_release_not_before),
        CASE(test_majority_waiter_ignores_restarted_master_alone),
    };
    return cmocka_run_group_tests_name("faults_replies", tests, group_setup,
                                       group_teardown);
}
