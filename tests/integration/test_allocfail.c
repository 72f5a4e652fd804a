/* Allocation failure injection.  The library's allocator hook counts every
 * allocation and fails the Nth one; for N = 1, 2, 3, ... the same whole path
 * runs against a real redis-server (and again in majority mode against
 * three):
 *   client_new, redislock_new, acquire of a free lock, release, acquire of a
 *   held lock (waiting in BLPOP until the holder's expiry), extend, query,
 *   release, reset, reset_all, free, client_free
 * until a run completes without reaching N.  Every call must answer
 * REDISLOCK_ENOMEM with an "out of memory" message, or succeed when the
 * allocation that failed was optional; never crash; the handle must never
 * report a lock held that the server does not give to its owner id; and
 * every allocation must be freed at the end (the hook counts them; the
 * valgrind and ASan runs of the suite check the rest).  In majority mode a
 * failure that costs one master is no failure of the call: then the
 * quorum decides.  A last test fails allocations of the renewal thread one
 * by one: a renewal is retried and the lock is not lost.  hiredis keeps its
 * own allocator: its reader's allocations are not counted. */
#include "fixtures.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* -------------------------------------------------------------- the hook */

static long fail_at;      /* fail this allocation (1-based); 0: none */
static long calls;        /* allocations asked for in this run */
static long outstanding;  /* blocks handed out and not freed */
static int injected;      /* the failure happened in this run */

/* 1 when this allocation is the one to fail. */
static int fail_now(void)
{
    long n = __atomic_add_fetch(&calls, 1, __ATOMIC_SEQ_CST);
    if (n == __atomic_load_n(&fail_at, __ATOMIC_SEQ_CST)) {
        __atomic_store_n(&injected, 1, __ATOMIC_SEQ_CST);
        return 1;
    }
    return 0;
}

static void *t_malloc(size_t n)
{
    void *p;
    if (fail_now())
        return NULL;
    if ((p = malloc(n)))
        __atomic_add_fetch(&outstanding, 1, __ATOMIC_SEQ_CST);
    return p;
}

static void *t_calloc(size_t n, size_t size)
{
    void *p;
    if (fail_now())
        return NULL;
    if ((p = calloc(n, size)))
        __atomic_add_fetch(&outstanding, 1, __ATOMIC_SEQ_CST);
    return p;
}

static void *t_realloc(void *old, size_t n)
{
    void *p;
    if (fail_now())
        return NULL;
    if ((p = realloc(old, n)) && !old)
        __atomic_add_fetch(&outstanding, 1, __ATOMIC_SEQ_CST);
    return p;
}

static void t_free(void *p)
{
    if (p)
        __atomic_sub_fetch(&outstanding, 1, __ATOMIC_SEQ_CST);
    free(p);
}

/* ------------------------------------------------------------- servers */

#define NSRV 3
#define NAME "af"
#define KEY "lock:" NAME

/* the servers: tf_masters[0..NSRV-1] (the first with a password) */
static int nm;      /* masters of the path running now: 1 or NSRV */

static void drop(redisReply *rep)
{
    if (rep)
        freeReplyObject(rep);
}

/* On each master of the path: an empty database and script cache (so the
 * NOSCRIPT fallback runs every time). */
static void reset_servers(void)
{
    int i;
    for (i = 0; i < nm; i++) {
        ts_flushall(&tf_masters[i]);
        drop(ts_cmd(&tf_masters[i], "SCRIPT FLUSH"));
    }
}

/* SET key value [PX px] on each master of the path. */
static void set_all(const char *key, const char *value, int px)
{
    int i;
    for (i = 0; i < nm; i++)
        drop(px ? ts_cmd(&tf_masters[i], "SET %s %s PX %d", key, value, px)
                : ts_cmd(&tf_masters[i], "SET %s %s", key, value));
}

/* How many masters of the path give the lock to id. */
static int owned_by(const char *id)
{
    int i, n = 0;
    for (i = 0; i < nm; i++) {
        redisReply *rep = ts_cmd(&tf_masters[i], "GET " KEY);
        if (rep && rep->type == REDIS_REPLY_STRING && !strcmp(rep->str, id))
            n++;
        drop(rep);
    }
    return n;
}

/* How many masters of the path have a key. */
static int have_key(const char *key)
{
    return tf_keys_on(nm, key);
}

static int quorum(void)
{
    return nm / 2 + 1;
}

/* ------------------------------------------------------------- the path */

/* Failure points per call of the path, for the summary. */
#define MAXCALLS 16
typedef struct tally {
    const char *what[MAXCALLS];
    int n[MAXCALLS];
} tally;

static void count_point(tally *t, const char *what)
{
    int i;
    for (i = 0; i < MAXCALLS && t->what[i]; i++)
        if (!strcmp(t->what[i], what))
            break;
    if (i == MAXCALLS)
        return;
    t->what[i] = what;
    t->n[i]++;
}

typedef struct run {
    int enomem;          /* calls that answered ENOMEM */
    const char *where;   /* the first of them */
    redislock *lk;
} run;

/* A call's result: OK, or ENOMEM with its message; anything else (or a
 * second ENOMEM: only one allocation fails per run) fails the test. */
static int check_rc(run *r, const char *what, int rc)
{
    if (rc == REDISLOCK_ENOMEM) {
        const char *msg = redislock_last_error();
        if (!strstr(msg, "out of memory"))
            fail_msg("N=%ld %s: ENOMEM with message '%s'", fail_at, what, msg);
        if (r->lk && strcmp(redislock_errmsg(r->lk), msg) &&
            strcmp(what, "reset") && strcmp(what, "reset_all"))
            fail_msg("N=%ld %s: handle message '%s' differs from '%s'", fail_at,
                     what, redislock_errmsg(r->lk), msg);
        if (r->enomem++)
            fail_msg("N=%ld %s: a second ENOMEM (after %s)", fail_at, what, r->where);
        r->where = what;
        return rc;
    }
    if (rc < 0)
        fail_msg("N=%ld %s: %s (%s), expected OK or ENOMEM", fail_at, what,
                 redislock_err_name(rc), redislock_last_error());
    return rc;
}

/* The handle's view agrees with the servers': held means a quorum of them
 * gives the lock to this owner id, not held means fewer do (with one
 * master: none).  want_held: 1 must hold, 0 must not, -1 either. */
static void check_held(const run *r, const char *what, int want_held)
{
    int held = redislock_held(r->lk), mine = owned_by(redislock_id(r->lk));
    if (held && mine < quorum())
        fail_msg("N=%ld after %s: the handle says held, %d of %d masters agree",
                 fail_at, what, mine, nm);
    if (want_held >= 0 && held != want_held)
        fail_msg("N=%ld after %s: held is %d, expected %d", fail_at, what, held,
                 want_held);
    if (!held && mine >= quorum())
        fail_msg("N=%ld after %s: not held, but %d of %d masters give the lock "
                 "to this owner id",
                 fail_at, what, mine, nm);
}

/* Acquire; on ENOMEM nothing may be held.  Returns 1 if acquired. */
static int acquire(run *r, const char *what, int64_t timeout_ms)
{
    int rc = check_rc(r, what, redislock_acquire(r->lk, timeout_ms));
    check_held(r, what, rc == 0);
    return rc == 0;
}

/* Release a held lock; after an ENOMEM (nothing sent) it is still held and
 * a second release, which cannot fail now, releases it. */
static void release(run *r, const char *what)
{
    int rc = check_rc(r, what, redislock_release(r->lk));
    if (rc == REDISLOCK_ENOMEM) {
        check_held(r, what, 1);
        assert_rl_ok(redislock_release(r->lk));
    }
    check_held(r, what, 0);
}

static redislock_client *new_client(run *r, int *rc)
{
    redislock_client_options co = REDISLOCK_CLIENT_OPTIONS_INIT;
    redislock_client *c = (redislock_client *)1;
    co.max_idle_connections = 2;
    co.signal_expire_ms = 60000;
    co.master_timeout_ms = (int)TU_MS(1000); /* a slow run is no failure */
    *rc = check_rc(r, "client_new",
                   nm == 1 ? redislock_client_new(&c, tf_urls[0], &co)
                           : redislock_client_new_multi(&c, tf_urls, (size_t)nm, &co));
    if (*rc)
        assert_null(c);
    return *rc ? NULL : c;
}

/* The path frees its client and handle itself (tf_undefer); after a failed
 * run the teardown does. */
static void free_client(void *c)
{
    redislock_client_free(c);
}

static void free_lock(void *lk)
{
    redislock_free(lk);
}

/* One run of the whole path with the Nth allocation failing.  Returns 1 if
 * the failure was injected (N was reached). */
static int one_run(long n, tally *t)
{
    redislock_options o = REDISLOCK_OPTIONS_INIT;
    redislock_client *c;
    redislock_info info;
    run r;
    uint64_t count = 0;
    int rc, got, left, i;
    /* reset_all: with one master more than one batch of 64 keys; in
     * majority mode the same code runs per master, a few keys do */
    int nkeys = nm == 1 ? 70 : 3;

    memset(&r, 0, sizeof r);
    reset_servers();
    __atomic_store_n(&calls, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&injected, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&fail_at, n, __ATOMIC_SEQ_CST);

    if (!(c = new_client(&r, &rc)))
        goto done;
    tf_defer(free_client, c);
    o.expire_ms = 60000; /* auto-renewed every 20 s: never within a run */
    o.auto_renew = 1;
    o.id_prefix = "af:";
    r.lk = (redislock *)1;
    rc = check_rc(&r, "redislock_new", redislock_new(&r.lk, c, NAME, &o));
    if (rc) {
        assert_null(r.lk);
        goto free_client;
    }
    tf_defer(free_lock, r.lk);

    /* a free lock */
    if (acquire(&r, "acquire (free)", 0))
        release(&r, "release (free)");

    /* a held lock: wait in BLPOP until the holder's expiry (client timer,
     * then CLIENT UNBLOCK from helper connections), then take it */
    set_all(KEY, "someone-else", 60);
    got = acquire(&r, "acquire (wait)", TU_MS(5000));
    if (!got) {
        set_all(KEY, "", 0);
        for (i = 0; i < nm; i++)
            drop(ts_cmd(&tf_masters[i], "DEL " KEY));
        got = acquire(&r, "acquire (again)", 0);
        assert_true(got); /* the one failure has happened */
    }

    rc = check_rc(&r, "extend", redislock_extend(r.lk, 30000));
    check_held(&r, "extend", 1);
    if (rc == 0) {
        int shorter = 0;
        for (i = 0; i < nm; i++) {
            long long pttl = ts_int(&tf_masters[i], "PTTL " KEY);
            shorter += pttl > 0 && pttl <= 30000;
        }
        assert_true(shorter >= quorum());
    }

    rc = check_rc(&r, "query", redislock_query(r.lk, &info));
    if (rc == 0) {
        assert_int_equal(info.held, 1);
        assert_int_equal(info.mine, 1);
        assert_string_equal(info.owner, redislock_id(r.lk));
    }
    release(&r, "release");

    /* forced resets; reset_all goes through SCAN and script batches */
    set_all(KEY, "x", 0);
    rc = check_rc(&r, "reset", redislock_reset(c, NAME));
    if (rc != 1 && rc != REDISLOCK_ENOMEM)
        fail_msg("N=%ld reset answered %d, expected 1", n, rc);
    if (rc == 1)
        assert_true(have_key(KEY) < quorum());
    else
        assert_int_equal(have_key(KEY), nm); /* nothing was sent */
    left = have_key(KEY) > 0; /* then reset_all removes it too */
    for (i = 0; i < nkeys; i++) {
        char key[32];
        snprintf(key, sizeof key, "lock:many-%d", i);
        set_all(key, "af:owner", 0);
    }
    rc = check_rc(&r, "reset_all", redislock_reset_all(c, NULL, &count));
    if (rc == 0) {
        /* the largest count of a master; one master may have failed */
        if (nm == 1)
            assert_int_equal(count, (uint64_t)(nkeys + left));
        else
            assert_true(count >= (uint64_t)nkeys && count <= (uint64_t)(nkeys + left));
        assert_true(have_key("lock:many-0") < quorum());
        assert_true(have_key("lock:many-2") < quorum());
    }

    tf_undefer(r.lk); /* redislock_free */
free_client:
    tf_undefer(c); /* redislock_client_free */
done:
    if (__atomic_load_n(&outstanding, __ATOMIC_SEQ_CST) != 0)
        fail_msg("N=%ld: %ld allocations not freed (failure in %s)", n,
                 __atomic_load_n(&outstanding, __ATOMIC_SEQ_CST),
                 r.where ? r.where : "an optional allocation");
    got = __atomic_load_n(&injected, __ATOMIC_SEQ_CST);
    if (got)
        count_point(t, r.enomem ? r.where : "none: the call succeeded");
    if (!got && r.enomem)
        fail_msg("N=%ld: ENOMEM in %s without an injected failure", n, r.where);
    return got;
}

/* Every N until a run no longer reaches it. */
static void whole_path(int masters)
{
    tally t;
    long n, total;
    int i;

    nm = masters;
    memset(&t, 0, sizeof t);
    /* a run with no failure: the number of allocations on the path */
    one_run(0, &t);
    total = __atomic_load_n(&calls, __ATOMIC_SEQ_CST);
    assert_true(total > 10);
    for (n = 1; one_run(n, &t); n++)
        ;
    print_message("      %d master(s): %ld allocation failure points exercised "
                  "(%ld allocations on the path without failure); ENOMEM from:\n",
                  masters, n - 1, total);
    for (i = 0; i < MAXCALLS && t.what[i]; i++)
        print_message("        %3d %s\n", t.n[i], t.what[i]);
    assert_true(n - 1 >= total / 2);
}

static void test_allocfail_each_failure_clean_one_master(void **state)
{
    whole_path(1);
}

static void test_allocfail_each_failure_clean_majority(void **state)
{
    whole_path(NSRV);
}

/* The renewal thread's allocations fail one at a time (the test thread
 * makes none meanwhile): each failed renewal is retried, the lock stays
 * held on the server, nothing leaks. */
static void test_allocfail_renewal_failures_retried(void **state)
{
    redislock_options o = REDISLOCK_OPTIONS_INIT;
    redislock_client *c;
    redislock *lk;
    long k, base;
    int64_t start;

    nm = 1;
    reset_servers();
    __atomic_store_n(&fail_at, 0, __ATOMIC_SEQ_CST);
    c = tf_client(tf_urls[0]);
    o.expire_ms = TU_MS(1000);
    o.renew_interval_ms = 50;
    o.auto_renew = 1;
    lk = tf_lock_opts(c, NAME, &o);
    assert_rl_ok(redislock_acquire(lk, 0));
    for (k = 1; k <= 8; k++) { /* two batches' worth */
        base = __atomic_load_n(&calls, __ATOMIC_SEQ_CST);
        __atomic_store_n(&injected, 0, __ATOMIC_SEQ_CST);
        __atomic_store_n(&fail_at, base + k, __ATOMIC_SEQ_CST);
        /* until two batches ran after the failed allocation */
        start = tu_now_ms();
        while (__atomic_load_n(&calls, __ATOMIC_SEQ_CST) < base + k + 8 &&
               tu_now_ms() - start < TU_MS(5000))
            tu_sleep_ms(5);
        assert_true(__atomic_load_n(&injected, __ATOMIC_SEQ_CST));
        assert_true(__atomic_load_n(&calls, __ATOMIC_SEQ_CST) >= base + k + 8);
        assert_int_equal(redislock_held(lk), 1);
        assert_int_equal(redislock_lost_reason(lk), 0);
        assert_int_equal(owned_by(redislock_id(lk)), 1);
    }
    __atomic_store_n(&fail_at, 0, __ATOMIC_SEQ_CST);
    assert_rl_ok(redislock_release(lk));
    tf_undefer(lk);
    tf_undefer(c);
    assert_int_equal(__atomic_load_n(&outstanding, __ATOMIC_SEQ_CST), 0);
}

static int group_setup(void **state)
{
    if (redislock_replace_allocator(t_malloc, t_realloc, t_calloc, t_free))
        return -1;
    snprintf(tf_masters[0].password, sizeof tf_masters[0].password, "af-secret");
    return tf_masters_start(NSRV);
}

/* No allocation fails after a test, whatever happened in it. */
static int teardown(void **state)
{
    __atomic_store_n(&fail_at, 0, __ATOMIC_SEQ_CST);
    return tf_masters_teardown(state);
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, tf_masters_setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        TEST(test_allocfail_each_failure_clean_one_master),
        TEST(test_allocfail_each_failure_clean_majority),
        TEST(test_allocfail_renewal_failures_retried),
    };
    return cmocka_run_group_tests_name("allocfail", tests, group_setup,
                                       tf_masters_group_teardown);
}
