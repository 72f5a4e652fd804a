/* Allocation failure injection.  The library's allocator hook counts every
 * allocation and fails the Nth one; for N = 1, 2, 3, ... the same whole path
 * runs against a real redis-server:
 *   client_new, redislock_new, acquire of a free lock, release, acquire of a
 *   held lock (waiting in BLPOP until the holder's expiry), extend, query,
 *   release, reset, reset_all, free, client_free
 * until a run completes without reaching N.  Every call must answer
 * REDISLOCK_ENOMEM with an "out of memory" message, or succeed when the
 * allocation that failed was optional; never crash; the handle must never
 * report a lock held that the server does not give to its owner id; and
 * every allocation must be freed at the end (the hook counts them; the
 * valgrind and ASan runs of the suite check the rest).  hiredis keeps its
 * own allocator: its reader's allocations are not counted. */
#include "server.h"
#include "testutil.h"

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

/* ------------------------------------------------------------- the path */

/* Failure points per call of the path, for the summary. */
static struct {
    const char *what;
    int n;
} per_call[16];

static void count_point(const char *what)
{
    int i;
    for (i = 0; i < 16 && per_call[i].what; i++)
        if (!strcmp(per_call[i].what, what))
            break;
    if (i == 16)
        return;
    per_call[i].what = what;
    per_call[i].n++;
}

#define NAME "af"

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

/* The owner id the server has for the lock ("" if free). */
static void server_owner(char *buf, size_t len)
{
    redisReply *rep = ts_cmd(&tu_srv, "GET lock:" NAME);
    buf[0] = '\0';
    if (rep && rep->type == REDIS_REPLY_STRING)
        snprintf(buf, len, "%s", rep->str);
    if (rep)
        freeReplyObject(rep);
}

/* The handle's view agrees with the server's: held means the server gives
 * the lock to this owner id.  want_held: 1 must hold, 0 must not, -1 either. */
static void check_held(const run *r, const char *what, int want_held)
{
    char owner[300];
    int held = redislock_held(r->lk);
    server_owner(owner, sizeof owner);
    if (held && strcmp(owner, redislock_id(r->lk)))
        fail_msg("N=%ld after %s: the handle says held, the server's owner is '%s'",
                 fail_at, what, owner);
    if (want_held >= 0 && held != want_held)
        fail_msg("N=%ld after %s: held is %d, expected %d", fail_at, what, held,
                 want_held);
    if (!held && !strcmp(owner, redislock_id(r->lk)))
        fail_msg("N=%ld after %s: not held, but the server still gives the lock "
                 "to this owner id",
                 fail_at, what);
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

/* One run of the whole path with the Nth allocation failing.  Returns 1 if
 * the failure was injected (N was reached). */
static int one_run(long n, int *optional)
{
    redislock_client_options co = REDISLOCK_CLIENT_OPTIONS_INIT;
    redislock_options o = REDISLOCK_OPTIONS_INIT;
    redislock_client *c = (redislock_client *)1;
    redislock_info info;
    run r;
    uint64_t count = 0;
    int rc, got, left;
    redisReply *rep;

    memset(&r, 0, sizeof r);
    ts_flushall(&tu_srv);
    rep = ts_cmd(&tu_srv, "SCRIPT FLUSH"); /* the NOSCRIPT fallback each run */
    freeReplyObject(rep);
    __atomic_store_n(&calls, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&injected, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&fail_at, n, __ATOMIC_SEQ_CST);

    co.key_prefix = "";
    co.max_idle_connections = 2;
    co.signal_expire_ms = 60000;
    rc = check_rc(&r, "client_new", redislock_client_new(&c, tu_srv.url, &co));
    if (rc) {
        assert_null(c);
        goto done;
    }
    o.expire_ms = 60000; /* auto-renewed every 20 s: never within a run */
    o.auto_renew = 1;
    o.id_prefix = "af:";
    r.lk = (redislock *)1;
    rc = check_rc(&r, "redislock_new", redislock_new(&r.lk, c, NAME, &o));
    if (rc) {
        assert_null(r.lk);
        goto free_client;
    }

    /* a free lock */
    if (acquire(&r, "acquire (free)", 0))
        release(&r, "release (free)");

    /* a held lock: wait in BLPOP until the holder's expiry (client timer,
     * then CLIENT UNBLOCK from a helper connection), then take it */
    rep = ts_cmd(&tu_srv, "SET lock:" NAME " someone-else PX 60");
    freeReplyObject(rep);
    got = acquire(&r, "acquire (wait)", TU_MS(5000));
    if (!got) {
        rep = ts_cmd(&tu_srv, "DEL lock:" NAME);
        freeReplyObject(rep);
        got = acquire(&r, "acquire (again)", 0);
        assert_true(got); /* the one failure has happened */
    }

    rc = check_rc(&r, "extend", redislock_extend(r.lk, 30000));
    check_held(&r, "extend", 1);
    if (rc == 0) {
        long long pttl = ts_int(&tu_srv, "PTTL lock:" NAME);
        assert_true(pttl > 0 && pttl <= 30000);
    }

    rc = check_rc(&r, "query", redislock_query(r.lk, &info));
    if (rc == 0) {
        assert_int_equal(info.held, 1);
        assert_int_equal(info.mine, 1);
        assert_string_equal(info.owner, redislock_id(r.lk));
    }
    release(&r, "release");

    /* forced resets; reset_all goes through SCAN and script batches */
    rep = ts_cmd(&tu_srv, "SET lock:" NAME " x");
    freeReplyObject(rep);
    rc = check_rc(&r, "reset", redislock_reset(c, NAME));
    assert_int_equal(ts_int(&tu_srv, "EXISTS lock:" NAME), rc == 1 ? 0 : 1);
    if (rc != 1 && rc != REDISLOCK_ENOMEM)
        fail_msg("N=%ld reset answered %d, expected 1", n, rc);
    left = rc == 1 ? 0 : 1; /* reset_all removes it then */
    {
        int i;
        for (i = 0; i < 70; i++) { /* more than one batch of 64 */
            rep = ts_cmd(&tu_srv, "SET lock:many-%d af:owner", i);
            freeReplyObject(rep);
        }
    }
    rc = check_rc(&r, "reset_all", redislock_reset_all(c, NULL, &count));
    if (rc == 0) {
        assert_int_equal(count, 70 + left);
        assert_int_equal(ts_int(&tu_srv, "EXISTS lock:many-0 lock:many-69"), 0);
    }

    redislock_free(r.lk);
free_client:
    redislock_client_free(c);
done:
    if (__atomic_load_n(&outstanding, __ATOMIC_SEQ_CST) != 0)
        fail_msg("N=%ld: %ld allocations not freed (failure in %s)", n,
                 __atomic_load_n(&outstanding, __ATOMIC_SEQ_CST),
                 r.where ? r.where : "an optional allocation");
    got = __atomic_load_n(&injected, __ATOMIC_SEQ_CST);
    if (got && !r.enomem)
        ++*optional;
    if (got)
        count_point(r.enomem ? r.where : "optional (call succeeded)");
    if (!got && r.enomem)
        fail_msg("N=%ld: ENOMEM in %s without an injected failure", n, r.where);
    return got;
}

static void test_allocfail_whole_path(void **state)
{
    long n, total;
    int optional = 0, i;

    /* a run with no failure: the number of allocations on the path */
    one_run(0, &optional);
    total = __atomic_load_n(&calls, __ATOMIC_SEQ_CST);
    assert_true(total > 10);
    for (n = 1; one_run(n, &optional); n++)
        ;
    print_message("      %ld allocation failure points exercised (%ld allocations "
                  "on the path without failure), %d optional (the call succeeded)\n",
                  n - 1, total, optional);
    for (i = 0; i < 16 && per_call[i].what; i++)
        print_message("        %3d in %s\n", per_call[i].n, per_call[i].what);
    assert_true(n - 1 >= total / 2);
}

static int group_setup(void **state)
{
    int rc;
    if (redislock_replace_allocator(t_malloc, t_realloc, t_calloc, t_free))
        return -1;
    snprintf(tu_srv.password, sizeof tu_srv.password, "af-secret");
    rc = ts_start(&tu_srv);
    if (rc)
        return rc == 77 ? 0 : -1; /* tu_setup skips */
    return 0;
}

static int group_teardown(void **state)
{
    ts_stop(&tu_srv);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_allocfail_whole_path, tu_setup),
    };
    return cmocka_run_group_tests_name("allocfail", tests, group_setup, group_teardown);
}
