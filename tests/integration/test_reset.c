/* 8. reset and reset_all: waking waiters, SCAN in batches without slow
 * commands, and the owner-prefix scope; keys that are not locks; and
 * redislock_list(). */
#include "fixtures.h"
#include "server.h"
#include "testutil.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>


struct wait_arg {
    const char *name;
    tu_chan *ch;
};

/* Child process: wait for the lock with a long timeout, report the time. */
static int waiter_proc(void *p)
{
    struct wait_arg *a = p;
    redislock_client *c = NULL;
    redislock *lk = NULL;
    int rc;
    if (redislock_client_new(&c, tu_srv.url, NULL) || redislock_new(&lk, c, a->name, NULL))
        return 10;
    rc = redislock_acquire(lk, 20000);
    tu_chan_send(a->ch, rc == 0 ? tu_now_ms() : rc);
    if (rc == 0)
        redislock_release(lk);
    redislock_free(lk);
    redislock_client_free(c);
    return rc ? 11 : 0;
}

/* reset wakes a waiter in another process. */
static void test_reset_wakes_waiter(void **state)
{
    redislock *holder = tu_lock(tu_cl, "r1", 0);
    tu_chan ch;
    struct wait_arg a = { "r1", &ch };
    int64_t reset_at, got;
    pid_t pid;

    tu_chan_open(&ch);
    assert_int_equal(redislock_reset(tu_cl, "r1"), 0); /* free: nothing removed */
    assert_rl_ok(redislock_acquire(holder, 0));
    pid = tu_spawn(waiter_proc, &a);
    ts_await_blocked(&tu_srv, 1);
    assert_int_equal(redislock_reset(tu_cl, "r1"), 1);
    reset_at = tu_now_ms();
    assert_int_equal(tu_chan_recv(&ch, &got, 5000), 0);
    assert_true(got > 0 && got - reset_at < TU_MS(500));
    assert_int_equal(tu_wait(pid), 0);
    assert_rl_err(redislock_release(holder), REDISLOCK_ENOTHELD);
    tu_chan_close(&ch);
    redislock_free(holder);
}

/* reset_all wakes the waiters of two different locks. */
static void test_reset_all_wakes_two_locks(void **state)
{
    redislock *h1 = tu_lock(tu_cl, "a", 0), *h2 = tu_lock(tu_cl, "b", 0);
    tu_chan ch;
    struct wait_arg a1 = { "a", &ch }, a2 = { "b", &ch };
    int64_t got1, got2, reset_at;
    uint64_t n = 99;
    pid_t p1, p2;

    tu_chan_open(&ch);
    assert_rl_ok(redislock_acquire(h1, 0));
    assert_rl_ok(redislock_acquire(h2, 0));
    p1 = tu_spawn(waiter_proc, &a1);
    p2 = tu_spawn(waiter_proc, &a2);
    ts_await_blocked(&tu_srv, 2);
    assert_rl_ok(redislock_reset_all(tu_cl, NULL, &n));
    reset_at = tu_now_ms();
    assert_int_equal(n, 2);
    assert_int_equal(tu_chan_recv(&ch, &got1, 5000), 0);
    assert_int_equal(tu_chan_recv(&ch, &got2, 5000), 0);
    assert_true(got1 > 0 && got1 - reset_at < TU_MS(500));
    assert_true(got2 > 0 && got2 - reset_at < TU_MS(500));
    assert_int_equal(tu_wait(p1), 0);
    assert_int_equal(tu_wait(p2), 0);
    tu_chan_close(&ch);
    redislock_free(h1);
    redislock_free(h2);
}

/* Fill 20,000 lock keys (and one non-string look-alike). */
static void fill_locks(int n)
{
    redisContext *c = redisConnectUnix(tu_srv.sock);
    redisReply *r;
    int i;
    assert_true(c && !c->err);
    for (i = 0; i < n; i++)
        redisAppendCommand(c, "SET lock:many-%d owner-%d", i, i % 7);
    for (i = 0; i < n; i++) {
        assert_int_equal(redisGetReply(c, (void **)&r), REDIS_OK);
        freeReplyObject(r);
    }
    r = redisCommand(c, "HSET lock:not-a-lock f v");
    freeReplyObject(r);
    redisFree(c);
}

/* What the calls logged in SLOWLOG (threshold 0: every call, with its
 * first 32 arguments) asked of the server. */
typedef struct call_work {
    long long script_calls, max_keys;  /* EVALSHA/EVAL, and their largest numkeys */
    long long scan_calls, max_count;   /* SCAN, and its largest COUNT */
    long long keys_calls;              /* KEYS */
    long long slowest_us;              /* for the record only: load changes it */
    char slowest[32];
} call_work;

static call_work logged_work(void)
{
    redisReply *r = ts_cmd(&tu_srv, "SLOWLOG GET -1");
    call_work w;
    size_t i, j;
    memset(&w, 0, sizeof w);
    for (i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        redisReply *e = r->element[i], *a;
        const char *cmd;
        if (e->elements < 4 || e->element[3]->elements < 1)
            continue;
        a = e->element[3];
        cmd = a->element[0]->str;
        if (e->element[2]->integer > w.slowest_us) {
            w.slowest_us = e->element[2]->integer;
            snprintf(w.slowest, sizeof w.slowest, "%s", cmd);
        }
        if ((!strcasecmp(cmd, "evalsha") || !strcasecmp(cmd, "eval")) && a->elements > 2) {
            w.script_calls++;
            if (atoll(a->element[2]->str) > w.max_keys)
                w.max_keys = atoll(a->element[2]->str);
        } else if (!strcasecmp(cmd, "scan")) {
            w.scan_calls++;
            for (j = 2; j + 1 < a->elements; j++)
                if (!strcasecmp(a->element[j]->str, "count") &&
                    atoll(a->element[j + 1]->str) > w.max_count)
                    w.max_count = atoll(a->element[j + 1]->str);
        } else if (!strcasecmp(cmd, "keys")) {
            w.keys_calls++;
        }
    }
    if (r)
        freeReplyObject(r);
    return w;
}

/* reset_all over 20,000 locks never asks the server for much at once: SCAN
 * pages of at most COUNT 1000, scripts of at most 64 locks (128 keys:
 * lock and signal), never KEYS, and the count is exact.  That is what
 * keeps every call short (about 0.2 ms per script on an idle server); how
 * long the calls take is the machine's business, not this test's: a loaded
 * machine preempts a 0.2 ms call past 10 ms.  The wake-ups get a long
 * expiry: the whole run takes about a second (several under sanitizers),
 * longer than the default 1 s, and the check below looks at a wake-up
 * pushed early in it. */
static void test_reset_all_many_bounded_calls(void **state)
{
    redislock_client_options o = REDISLOCK_CLIENT_OPTIONS_INIT;
    redislock_client *c;
    uint64_t n = 0;
    call_work w;
    redisReply *r;
    int64_t t0;

    o.signal_expire_ms = 600000;
    c = tu_client_opts(tu_srv.url, &o);
    fill_locks(20000);
    r = ts_cmd(&tu_srv, "CONFIG SET slowlog-log-slower-than 0");
    freeReplyObject(r);
    /* room for every call: the commands that scripts run are logged too */
    r = ts_cmd(&tu_srv, "CONFIG SET slowlog-max-len 1000000");
    freeReplyObject(r);
    r = ts_cmd(&tu_srv, "SLOWLOG RESET");
    freeReplyObject(r);
    t0 = tu_now_ms();
    assert_rl_ok(redislock_reset_all(c, NULL, &n));
    assert_int_equal(n, 20000);
    assert_true(ts_int(&tu_srv, "SLOWLOG LEN") < 1000000); /* none dropped */
    w = logged_work();
    print_message("      reset_all of 20000 locks: %lld ms, %lld SCAN calls (COUNT %lld), "
                  "%lld script calls (at most %lld keys); slowest call %lld us (%s)\n",
                  (long long)(tu_now_ms() - t0), w.scan_calls, w.max_count,
                  w.script_calls, w.max_keys, w.slowest_us, w.slowest);
    assert_int_equal(w.keys_calls, 0);
    assert_true(w.scan_calls > 1);
    assert_true(w.max_count > 0 && w.max_count <= 1000);
    /* 20,000 locks in scripts of at most 64 */
    assert_true(w.script_calls >= 20000 / 64);
    assert_true(w.max_keys > 0 && w.max_keys <= 2 * 64);
    assert_int_equal(ts_int(&tu_srv, "EXISTS lock:many-0"), 0);
    assert_int_equal(ts_int(&tu_srv, "EXISTS lock:many-19999"), 0);
    assert_int_equal(ts_int(&tu_srv, "EXISTS lock:not-a-lock"), 1);
    assert_int_equal(ts_int(&tu_srv, "LLEN lock-signal:many-1234"), 1);
    r = ts_cmd(&tu_srv, "CONFIG SET slowlog-log-slower-than 10000");
    freeReplyObject(r);
    r = ts_cmd(&tu_srv, "SLOWLOG RESET");
    freeReplyObject(r);
    redislock_client_free(c);
}

/* Prefix-scoped reset leaves other owners' locks alone. */
static void test_reset_all_owner_prefix(void **state)
{
    redislock_options oa = REDISLOCK_OPTIONS_INIT, ob = REDISLOCK_OPTIONS_INIT;
    redislock *a[3], *b[2];
    uint64_t n = 0;
    int i;
    char name[32];

    oa.id_prefix = "hostA:";
    ob.id_prefix = "hostB:";
    for (i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "svcA-%d", i);
        assert_rl_ok(redislock_new(&a[i], tu_cl, name, &oa));
        assert_rl_ok(redislock_acquire(a[i], 0));
    }
    for (i = 0; i < 2; i++) {
        snprintf(name, sizeof name, "svcB-%d", i);
        assert_rl_ok(redislock_new(&b[i], tu_cl, name, &ob));
        assert_rl_ok(redislock_acquire(b[i], 0));
    }
    assert_rl_ok(redislock_reset_all(tu_cl, "hostA:", &n));
    assert_int_equal(n, 3);
    for (i = 0; i < 3; i++) {
        assert_rl_err(redislock_release(a[i]), REDISLOCK_ENOTHELD);
        redislock_free(a[i]);
    }
    for (i = 0; i < 2; i++) {
        assert_rl_ok(redislock_release(b[i]));
        redislock_free(b[i]);
    }
    assert_rl_err(redislock_reset_all(tu_cl, "bad prefix", &n), REDISLOCK_EINVAL);
}

/* A client with a key prefix resets only its own namespace. */
static void test_reset_all_key_prefix(void **state)
{
    redislock_client_options o = REDISLOCK_CLIENT_OPTIONS_INIT;
    redislock_client *pc;
    redislock *mine, *other = tu_lock(tu_cl, "x", 0);
    uint64_t n = 0;

    o.key_prefix = "ns*1:"; /* glob characters are escaped in the pattern */
    pc = tu_client_opts(tu_srv.url, &o);
    mine = tu_lock(pc, "x", 0);
    assert_rl_ok(redislock_acquire(mine, 0));
    assert_rl_ok(redislock_acquire(other, 0));
    {
        redisReply *r = ts_cmd(&tu_srv, "SET ns21:lock:y z");
        freeReplyObject(r);
    }
    assert_rl_ok(redislock_reset_all(pc, NULL, &n));
    assert_int_equal(n, 1);
    assert_int_equal(ts_int(&tu_srv, "EXISTS ns21:lock:y"), 1);
    assert_rl_ok(redislock_release(other));
    assert_rl_err(redislock_release(mine), REDISLOCK_ENOTHELD);
    redislock_free(mine);
    redislock_free(other);
    redislock_client_free(pc);
}

static char warned[1024];

static void keep_warning(void *userdata, int level, const char *msg)
{
    if (level <= REDISLOCK_LOG_WARN)
        snprintf(warned, sizeof warned, "%s", msg);
}

/* A key of another type where a lock would be is not a lock: reset leaves it
 * (and the signal key) alone and says so with EPROTO, as reset_all skips it
 * (the issue: reset deleted a hash and answered 1); reset_all logs how many
 * it skipped. */
static void test_reset_not_a_lock(void **state)
{
    redislock_client_options o = REDISLOCK_CLIENT_OPTIONS_INIT;
    redislock_client *c;
    redisReply *r;
    uint64_t n = 99;

    r = ts_cmd(&tu_srv, "HSET lock:h f v");
    freeReplyObject(r);
    r = ts_cmd(&tu_srv, "RPUSH lock:l a");
    freeReplyObject(r);
    assert_rl_err(redislock_reset(tu_cl, "h"), REDISLOCK_EPROTO);
    assert_non_null(strstr(redislock_last_error(), "lock:h is not a lock (a hash)"));
    assert_rl_err(redislock_reset(tu_cl, "l"), REDISLOCK_EPROTO);
    assert_non_null(strstr(redislock_last_error(), "lock:l is not a lock (a list)"));
    assert_int_equal(ts_int(&tu_srv, "EXISTS lock:h"), 1);
    assert_int_equal(ts_int(&tu_srv, "EXISTS lock:l"), 1);
    assert_int_equal(ts_int(&tu_srv, "EXISTS lock-signal:h"), 0); /* no wake-up */
    /* a string is a lock, whoever wrote it */
    r = ts_cmd(&tu_srv, "SET lock:s someone");
    freeReplyObject(r);
    assert_int_equal(redislock_reset(tu_cl, "s"), 1);

    o.log = keep_warning;
    c = tu_client_opts(tu_srv.url, &o);
    warned[0] = '\0';
    r = ts_cmd(&tu_srv, "SET lock:s someone");
    freeReplyObject(r);
    assert_rl_ok(redislock_reset_all(c, NULL, &n));
    assert_int_equal(n, 1);
    assert_int_equal(ts_int(&tu_srv, "EXISTS lock:h"), 1);
    assert_int_equal(ts_int(&tu_srv, "EXISTS lock:l"), 1);
    assert_non_null(strstr(warned, "left alone 2 key(s)"));
    redislock_client_free(c);
}

/* ------------------------------------------------------------------ list */

typedef struct seen {
    int n;
    int stop_after;          /* return 7 after that many; 0: never */
    char names[8][64];
    size_t name_lens[8];
    char owners[8][64];
    int64_t ttls[8];
    size_t masters[8];
    char addrs[8][700];
} seen;

static int collect(const redislock_list_entry *e, void *userdata)
{
    seen *s = userdata;
    if (s->n < 8) {
        assert_true(e->name_len < sizeof s->names[0]);
        memcpy(s->names[s->n], e->name, e->name_len + 1);
        s->name_lens[s->n] = e->name_len;
        snprintf(s->owners[s->n], sizeof s->owners[0], "%s", e->owner);
        assert_int_equal(strlen(e->owner), e->owner_len);
        s->ttls[s->n] = e->ttl_ms;
        s->masters[s->n] = e->master;
        snprintf(s->addrs[s->n], sizeof s->addrs[0], "%s", e->master_addr);
    }
    s->n++;
    return s->stop_after && s->n >= s->stop_after ? 7 : 0;
}

/* The entry for name, or -1. */
static int find(const seen *s, const char *name)
{
    int i;
    for (i = 0; i < s->n && i < 8; i++)
        if (!strcmp(s->names[i], name))
            return i;
    return -1;
}

static void set_key(const char *fmt, const char *key)
{
    redisReply *r = ts_cmd(&tu_srv, fmt, key);
    assert_non_null(r);
    freeReplyObject(r);
}

/* redislock_list(): every lock with its owner and expiry, read by SCAN;
 * keys that are not locks, signal keys and other prefixes are not listed;
 * name patterns; the callback stops the walk; bad arguments. */
static void test_list(void **state)
{
    seen s;
    uint64_t n = 99;
    int i;
    redisReply *r;

    memset(&s, 0, sizeof s);
    assert_rl_ok(redislock_list(tu_cl, NULL, collect, &s, &n));
    assert_int_equal(n, 0);
    assert_int_equal(s.n, 0);

    r = ts_cmd(&tu_srv, "SET lock:alpha owner-a PX 10000");
    freeReplyObject(r);
    set_key("SET %s owner-b", "lock:beta");
    set_key("SET %s py-owner", "lock:two words\nand a line");
    set_key("HSET %s f v", "lock:a-hash");
    set_key("RPUSH %s 1", "lock-signal:alpha");
    set_key("SET %s x", "other:lock:q");
    ts_resetstat(&tu_srv);
    assert_rl_ok(redislock_list(tu_cl, "", collect, &s, &n));
    assert_int_equal(n, 3);
    assert_int_equal(s.n, 3);
    assert_int_equal(ts_calls(&tu_srv, "keys"), 0);
    assert_true(ts_calls(&tu_srv, "scan") >= 1);
    i = find(&s, "alpha");
    assert_true(i >= 0);
    assert_string_equal(s.owners[i], "owner-a");
    assert_true(s.ttls[i] > 0 && s.ttls[i] <= 10000);
    assert_int_equal(s.masters[i], 0);
    assert_string_equal(s.addrs[i], tu_srv.sock);
    i = find(&s, "beta");
    assert_true(i >= 0);
    assert_int_equal(s.ttls[i], -1);
    i = find(&s, "two words\nand a line");
    assert_true(i >= 0);
    assert_string_equal(s.owners[i], "py-owner");

    /* patterns are globs on the name */
    memset(&s, 0, sizeof s);
    assert_rl_ok(redislock_list(tu_cl, "[ab]*a", collect, &s, &n));
    assert_int_equal(n, 2); /* alpha, beta */
    memset(&s, 0, sizeof s);
    assert_rl_ok(redislock_list(tu_cl, "two*", collect, &s, &n));
    assert_int_equal(s.n, 1);
    memset(&s, 0, sizeof s);
    assert_rl_ok(redislock_list(tu_cl, "nothing*", collect, &s, &n));
    assert_int_equal(n, 0);

    /* the callback stops the walk; its value is returned */
    memset(&s, 0, sizeof s);
    s.stop_after = 1;
    assert_int_equal(redislock_list(tu_cl, NULL, collect, &s, &n), 7);
    assert_int_equal(n, 1);
    assert_int_equal(s.n, 1);

    assert_rl_err(redislock_list(NULL, NULL, collect, &s, &n), REDISLOCK_EINVAL);
    assert_rl_err(redislock_list(tu_cl, NULL, NULL, &s, &n), REDISLOCK_EINVAL);
}

/* Key prefix and hash-tag layouts: names come back without either. */
static void test_list_layouts(void **state)
{
    redislock_client_options o = REDISLOCK_CLIENT_OPTIONS_INIT;
    redislock_client *pc, *hc;
    redislock *a, *b;
    seen s;
    uint64_t n = 0;

    o.key_prefix = "app*1:";
    pc = tu_client_opts(tu_srv.url, &o);
    o.key_prefix = NULL;
    o.hash_tag = 1;
    hc = tu_client_opts(tu_srv.url, &o);
    a = tu_lock(pc, "job", 5000);
    b = tu_lock(hc, "tagged", 0);
    assert_rl_ok(redislock_acquire(a, 0));
    assert_rl_ok(redislock_acquire(b, 0));
    set_key("SET %s x", "appX1:lock:not-mine");

    memset(&s, 0, sizeof s);
    assert_rl_ok(redislock_list(pc, NULL, collect, &s, &n));
    assert_int_equal(n, 1);
    assert_string_equal(s.names[0], "job");
    assert_string_equal(s.owners[0], redislock_id(a));
    memset(&s, 0, sizeof s);
    assert_rl_ok(redislock_list(hc, NULL, collect, &s, &n));
    assert_int_equal(n, 1);
    assert_string_equal(s.names[0], "tagged");
    assert_int_equal(s.name_lens[0], 6);
    memset(&s, 0, sizeof s);
    assert_rl_ok(redislock_list(hc, "tag*", collect, &s, &n));
    assert_int_equal(n, 1);
    /* the default layout sees "{tagged}" and "app*1:" keys as other names */
    memset(&s, 0, sizeof s);
    assert_rl_ok(redislock_list(tu_cl, NULL, collect, &s, &n));
    assert_int_equal(n, 1);
    assert_string_equal(s.names[0], "{tagged}");

    redislock_free(a);
    redislock_free(b);
    redislock_client_free(pc);
    redislock_client_free(hc);
}

/* Many locks: every one listed once, in SCAN batches, with no slow call. */
static void test_list_many(void **state)
{
    uint64_t n = 0;
    seen s;
    int want = tu_slow() > 1 ? 2500 : 5000; /* more than one SCAN page (1000) */
    fill_locks(want);
    memset(&s, 0, sizeof s);
    ts_resetstat(&tu_srv);
    assert_rl_ok(redislock_list(tu_cl, "many-*", collect, &s, &n));
    assert_int_equal(n, (uint64_t)want);
    assert_true(ts_calls(&tu_srv, "scan") > 1);
    assert_int_equal(ts_calls(&tu_srv, "keys"), 0);
}

/* Majority mode: each master's locks, tagged with the master; one master
 * down is no error (every held lock is still seen), two are. */
static ts_server mm[3];

static void test_list_majority(void **state)
{
    const char *urls[3];
    redislock_client_options o = REDISLOCK_CLIENT_OPTIONS_INIT;
    redislock_client *c;
    redislock *lk;
    seen s;
    uint64_t n = 0;
    int i;

    for (i = 0; i < 3; i++) {
        assert_int_equal(ts_start(&mm[i]), 0);
        urls[i] = mm[i].url;
    }
    o.master_timeout_ms = TF_MASTER_TIMEOUT_MS;
    assert_rl_ok(redislock_client_new_multi(&c, urls, 3, &o));
    lk = tu_lock(c, "mj", 10000);
    assert_rl_ok(redislock_acquire(lk, 0));
    memset(&s, 0, sizeof s);
    assert_rl_ok(redislock_list(c, NULL, collect, &s, &n));
    assert_int_equal(n, 3);
    for (i = 0; i < 3; i++) {
        assert_string_equal(s.names[i], "mj");
        assert_string_equal(s.owners[i], redislock_id(lk));
        assert_int_equal(s.masters[i], (size_t)i);
        assert_string_equal(s.addrs[i], mm[i].sock);
    }
    ts_stop(&mm[1]);
    memset(&s, 0, sizeof s);
    assert_rl_ok(redislock_list(c, NULL, collect, &s, &n));
    assert_int_equal(n, 2);
    ts_stop(&mm[2]);
    memset(&s, 0, sizeof s);
    assert_rl_err(redislock_list(c, NULL, collect, &s, &n), REDISLOCK_ENOQUORUM);
    assert_int_equal(n, 1); /* what the live master had */
    redislock_free(lk);
    redislock_client_free(c);
    ts_stop(&mm[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_reset_wakes_waiter, tu_setup),
        cmocka_unit_test_setup(test_reset_all_wakes_two_locks, tu_setup),
        cmocka_unit_test_setup(test_reset_all_many_bounded_calls, tu_setup),
        cmocka_unit_test_setup(test_reset_all_owner_prefix, tu_setup),
        cmocka_unit_test_setup(test_reset_all_key_prefix, tu_setup),
        cmocka_unit_test_setup(test_reset_not_a_lock, tu_setup),
        cmocka_unit_test_setup(test_list, tu_setup),
        cmocka_unit_test_setup(test_list_layouts, tu_setup),
        cmocka_unit_test_setup(test_list_many, tu_setup),
        cmocka_unit_test_setup(test_list_majority, tu_setup),
    };
    return cmocka_run_group_tests_name("reset", tests, tu_group_setup, tu_group_teardown);
}
