/* Fencing tokens, the cap on holding (max_hold_ms) and the worker heartbeat
 * (issue 17), against a real redis-server:
 *  - tokens strictly increase over 10,000 grants by 16 threads, across
 *    reset and reset_all, across the expiry of a crashed holder, across a
 *    restart without persistence, when the counter is deleted or set back,
 *    and in the hash-tag layout with a key prefix;
 *  - the token of a hold: 0 without fencing, before acquiring and after
 *    the release; an "already mine" answer gives the grant's token;
 *  - without fencing the wire protocol is the one from before: the same
 *    acquire script (its SHA1), the same command, no counter key; grants
 *    without fencing (as python-redis-lock's) do not advance the counter;
 *  - a holder stopped (SIGSTOP) past its expiry writes after the next
 *    holder: the store of examples/fenced.c rejects it;
 *  - max_hold_ms and heartbeat_ms: the lost callback comes within one
 *    renewal interval of the limit, the holder stops vouching, and a waiter
 *    gets the lock when the key expires after it (or at once on release). */
#include "fixtures.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* The SHA1 of the acquire script as it was before fencing existed: a lock
 * without fencing must keep sending exactly it. */
#define ACQUIRE_SHA_BEFORE_FENCING "b14ce6b0b43bc1b41fe1e98a22f69effa03cca86"

static redislock *fenced_lock(redislock_client *c, const char *name, int64_t expire_ms)
{
    redislock_options o = REDISLOCK_OPTIONS_INIT;
    o.expire_ms = expire_ms;
    o.fencing = 1;
    return tf_lock_opts(c, name, &o);
}

/* Acquire (waiting at most timeout_ms), read the token, release. */
static uint64_t grant(redislock *lk, int64_t timeout_ms)
{
    uint64_t t;
    assert_rl_ok(redislock_acquire(lk, timeout_ms));
    t = redislock_token(lk);
    assert_true(t > 0);
    assert_rl_ok(redislock_release(lk));
    return t;
}

/* The counter's value (-1 when absent). */
static long long counter(const char *key)
{
    redisReply *r = ts_cmd(&tu_srv, "GET %s", key);
    long long v = -1;
    assert_non_null(r);
    if (r->type == REDIS_REPLY_STRING)
        v = atoll(r->str);
    freeReplyObject(r);
    return v;
}

/* --------------------------------------------------------- token values */

static void test_token_is_that_of_the_hold_and_zero_without_one(void **state)
{
    redislock *plain = tf_lock(tu_cl, "tv", 5000);
    redislock *a, *b, *b_plain;
    redislock_options o = REDISLOCK_OPTIONS_INIT;
    uint64_t t;
    (void)state;
    assert_int_equal(redislock_token(NULL), 0);
    assert_rl_ok(redislock_acquire(plain, 0));
    assert_int_equal(redislock_token(plain), 0); /* fencing off */
    assert_rl_ok(redislock_release(plain));

    o.expire_ms = 5000;
    o.fencing = 1;
    o.id = "tv-owner";
    a = tf_lock_opts(tu_cl, "tv", &o);
    b = tf_lock_opts(tu_cl, "tv", &o);
    o.fencing = 0;
    b_plain = tf_lock_opts(tu_cl, "tv", &o);
    assert_int_equal(redislock_token(a), 0); /* before the first acquire */
    assert_rl_ok(redislock_acquire(a, 0));
    t = redislock_token(a);
    assert_true(t > 0);
    assert_int_equal(counter("lock-fence:tv"), (long long)t);
    /* "already mine": the token of the grant that made this owner hold it */
    assert_rl_err(redislock_acquire(b, 0), REDISLOCK_EALREADY);
    assert_int_equal(redislock_token(b), t);
    assert_rl_err(redislock_acquire(b_plain, 0), REDISLOCK_EALREADY);
    assert_int_equal(redislock_token(b_plain), 0);
    assert_rl_ok(redislock_release(a));
    assert_int_equal(redislock_token(a), 0); /* after the release */
    assert_int_equal(counter("lock-fence:tv"), (long long)t); /* kept */
}

/* ------------------------------------------- 10,000 grants by 16 threads */

#define NTHREADS 16

static struct {
    redislock *lk[NTHREADS];
    uint64_t *tokens;
    int want;
    int next;       /* atomic: grants recorded */
    int failed;     /* atomic */
    pthread_t t[NTHREADS];
} many;

static void *grant_loop(void *arg)
{
    redislock *lk = arg;
    for (;;) {
        int k, rc = redislock_acquire(lk, 30000);
        if (rc) {
            fprintf(stderr, "acquire: %s\n", redislock_errmsg(lk));
            __atomic_store_n(&many.failed, 1, __ATOMIC_SEQ_CST);
            return NULL;
        }
        /* while held: k is the grant's place in time */
        k = __atomic_fetch_add(&many.next, 1, __ATOMIC_SEQ_CST);
        if (k < many.want)
            many.tokens[k] = redislock_token(lk);
        if (redislock_release(lk))
            __atomic_store_n(&many.failed, 1, __ATOMIC_SEQ_CST);
        if (k >= many.want - 1)
            return NULL;
    }
}

static void free_tokens(void *p)
{
    free(p);
}

static void test_tokens_strictly_increase_over_many_grants_by_16_threads(void **state)
{
    int i, want = 10000 / tu_slow();
    long long fine = 0;
    int64_t t0;
    (void)state;
    memset(&many, 0, sizeof many);
    many.want = want;
    many.tokens = calloc((size_t)want, sizeof *many.tokens);
    assert_non_null(many.tokens);
    tf_defer(free_tokens, many.tokens);
    for (i = 0; i < NTHREADS; i++)
        many.lk[i] = fenced_lock(tu_cl, "many", 10000);
    t0 = tu_now_ms();
    for (i = 0; i < NTHREADS; i++)
        assert_int_equal(pthread_create(&many.t[i], NULL, grant_loop, many.lk[i]), 0);
    for (i = 0; i < NTHREADS; i++)
        pthread_join(many.t[i], NULL);
    assert_int_equal(__atomic_load_n(&many.failed, __ATOMIC_SEQ_CST), 0);
    assert_true(many.next >= want);
    assert_true(many.tokens[0] > 0);
    for (i = 1; i < want; i++) {
        if (many.tokens[i] <= many.tokens[i - 1])
            fail_msg("grant %d: token %" PRIu64 " after %" PRIu64, i, many.tokens[i],
                     many.tokens[i - 1]);
        fine++;
    }
    printf("# %d grants by %d threads in %lld ms: tokens strictly increasing (%lld "
           "steps checked; first %" PRIu64 ", last %" PRIu64 ")\n",
           want, NTHREADS, (long long)(tu_now_ms() - t0), fine, many.tokens[0],
           many.tokens[want - 1]);
}

/* ------------------------------------------------------ never backwards */

static void test_tokens_increase_across_reset_and_reset_all(void **state)
{
    redislock *a = fenced_lock(tu_cl, "rst", 5000);
    redislock *b = fenced_lock(tu_cl, "rst", 5000);
    uint64_t t1, t2, t3, n = 0;
    (void)state;
    assert_rl_ok(redislock_acquire(a, 0));
    t1 = redislock_token(a);
    assert_int_equal(redislock_reset(tu_cl, "rst"), 1);
    assert_int_equal(ts_int(&tu_srv, "EXISTS lock-fence:rst"), 1);
    assert_rl_ok(redislock_acquire(b, 0));
    t2 = redislock_token(b);
    assert_true(t2 > t1);
    assert_rl_ok(redislock_reset_all(tu_cl, NULL, &n));
    assert_int_equal(n, 1);
    assert_int_equal(ts_int(&tu_srv, "EXISTS lock-fence:rst"), 1);
    assert_rl_ok(redislock_acquire(a, 0));
    t3 = redislock_token(a);
    assert_true(t3 > t2);
    assert_rl_ok(redislock_release(a));
}

static int crashing_holder(void *arg)
{
    tu_chan *ch = arg;
    redislock_client *c = NULL;
    redislock *lk = NULL;
    redislock_options o = REDISLOCK_OPTIONS_INIT;
    o.expire_ms = 300;
    o.fencing = 1;
    if (redislock_client_new(&c, tu_srv.url, NULL) ||
        redislock_new(&lk, c, "crash", &o) || redislock_acquire(lk, 0))
        return 1;
    tu_chan_send(ch, (int64_t)redislock_token(lk));
    kill(getpid(), SIGKILL); /* no release: the key expires */
    return 2;
}

static void test_tokens_increase_across_the_expiry_of_a_crashed_holder(void **state)
{
    redislock *lk = fenced_lock(tu_cl, "crash", 5000);
    tu_chan ch;
    int64_t t1, t0;
    uint64_t t2;
    pid_t pid;
    (void)state;
    tu_chan_open(&ch);
    pid = tu_spawn(crashing_holder, &ch);
    assert_int_equal(tu_chan_recv(&ch, &t1, TU_MS(5000)), 0);
    assert_int_equal(tu_wait(pid), 128 + SIGKILL);
    tu_chan_close(&ch);
    t0 = tu_now_ms();
    assert_rl_ok(redislock_acquire(lk, 5000)); /* at the expiry */
    t2 = redislock_token(lk);
    printf("# crashed holder's token %lld, the next holder's %" PRIu64 " (%lld ms "
           "later)\n", (long long)t1, t2, (long long)(tu_now_ms() - t0));
    assert_true(t1 > 0);
    assert_true(t2 > (uint64_t)t1);
    assert_rl_ok(redislock_release(lk));
}

static void test_tokens_increase_across_a_restart_without_persistence(void **state)
{
    redislock_client *c = tf_client(tu_srv.url);
    redislock *lk = fenced_lock(c, "rs", 5000);
    uint64_t t1, t2;
    (void)state;
    t1 = grant(lk, 0);
    ts_stop(&tu_srv);
    assert_int_equal(ts_restart(&tu_srv), 0); /* empty: no persistence */
    assert_int_equal(ts_int(&tu_srv, "EXISTS lock-fence:rs"), 0);
    t2 = grant(lk, 2000);
    printf("# token %" PRIu64 " before the restart, %" PRIu64 " after (the counter "
           "was lost: it started again from the server's clock)\n", t1, t2);
    assert_true(t2 > t1);
}

static void test_tokens_increase_when_the_counter_is_deleted_or_set_back(void **state)
{
    redislock *lk = fenced_lock(tu_cl, "cnt", 5000);
    uint64_t t1, t2, t3, t4, ahead;
    (void)state;
    t1 = grant(lk, 0);
    ts_int(&tu_srv, "DEL lock-fence:cnt");
    t2 = grant(lk, 0);
    assert_true(t2 > t1);
    freeReplyObject(ts_cmd(&tu_srv, "SET lock-fence:cnt 5"));
    t3 = grant(lk, 0);
    assert_true(t3 > t2);
    /* a counter ahead of the clock goes on from there */
    ahead = t3 + 1000000000ULL;
    freeReplyObject(ts_cmd(&tu_srv, "SET lock-fence:cnt %" PRIu64, ahead));
    t4 = grant(lk, 0);
    assert_int_equal(t4, ahead + 1);
}

static void test_tokens_increase_in_the_hash_tag_layout_with_a_prefix(void **state)
{
    redislock_client_options co = REDISLOCK_CLIENT_OPTIONS_INIT;
    redislock_client *c;
    redislock *lk;
    uint64_t last = 0, t;
    int i;
    (void)state;
    co.hash_tag = 1;
    co.key_prefix = "app:";
    c = tf_client_opts(tu_srv.url, &co);
    lk = fenced_lock(c, "ht", 5000);
    for (i = 0; i < 50; i++) {
        assert_rl_ok(redislock_acquire(lk, 0));
        assert_int_equal(ts_int(&tu_srv, "EXISTS app:lock:{ht}"), 1);
        t = redislock_token(lk);
        assert_true(t > last);
        last = t;
        assert_rl_ok(redislock_release(lk));
    }
    /* the counter shares the lock's hash tag: the same cluster slot */
    assert_int_equal(counter("app:lock-fence:{ht}"), (long long)last);
    assert_int_equal(ts_int(&tu_srv, "EXISTS lock-fence:ht"), 0);
    assert_rl_ok(redislock_reset_all(c, NULL, NULL));
    assert_int_equal(ts_int(&tu_srv, "EXISTS app:lock-fence:{ht}"), 1);
}

/* ------------------------------------- fencing off: the wire as before */

/* The commands one client sent while MONITOR watched (the commands scripts
 * ran are left out), as the server prints them: "EVALSHA" "sha" ... */
static int monitored(redisContext *m, char lines[][512], int max, int want)
{
    int n = 0;
    while (n < want && n < max) {
        redisReply *r = NULL;
        const char *q;
        if (redisGetReply(m, (void **)&r) != REDIS_OK || !r)
            break;
        q = r->type == REDIS_REPLY_STATUS ? strchr(r->str, ']') : NULL;
        if (q && !strstr(r->str, " lua]"))
            snprintf(lines[n++], 512, "%s", q + 2);
        freeReplyObject(r);
    }
    return n;
}

static void free_ctx(void *m)
{
    redisFree(m);
}

static void test_without_fencing_the_wire_is_as_before(void **state)
{
    redislock_client *c = tf_client(tu_srv.url);
    redislock_options o = REDISLOCK_OPTIONS_INIT;
    redislock *lk;
    redisContext *m;
    redisReply *r;
    struct timeval tv = { 5, 0 };
    char lines[8][512], want[512];
    int n;
    (void)state;
    o.expire_ms = 5000;
    o.id = "wire-owner";
    lk = tf_lock_opts(c, "w", &o);
    freeReplyObject(ts_cmd(&tu_srv, "SCRIPT FLUSH"));
    assert_rl_ok(redislock_acquire(lk, 0)); /* loads the script */
    assert_rl_ok(redislock_release(lk));
    r = ts_cmd(&tu_srv, "SCRIPT EXISTS %s", ACQUIRE_SHA_BEFORE_FENCING);
    assert_int_equal(r->element[0]->integer, 1); /* byte for byte the same body */
    freeReplyObject(r);

    m = redisConnectUnixWithTimeout(tu_srv.sock, tv);
    assert_true(m && !m->err);
    tf_defer(free_ctx, m);
    redisSetTimeout(m, tv);
    r = redisCommand(m, "MONITOR");
    assert_non_null(r);
    freeReplyObject(r);
    assert_rl_ok(redislock_acquire(lk, 0));
    assert_rl_ok(redislock_release(lk));
    n = monitored(m, lines, 8, 2);
    assert_int_equal(n, 2);
    snprintf(want, sizeof want,
             "\"EVALSHA\" \"%s\" \"2\" \"lock:w\" \"lock-signal:w\" \"wire-owner\" "
             "\"5000\"", ACQUIRE_SHA_BEFORE_FENCING);
    assert_string_equal(lines[0], want);
    assert_null(strstr(lines[1], "fence"));
    /* no counter anywhere */
    r = ts_cmd(&tu_srv, "KEYS *fence*");
    assert_int_equal(r->elements, 0);
    freeReplyObject(r);
}

/* python-redis-lock holders, and locks without fencing, do not advance the
 * counter (a resource that checks tokens must reject writers without one). */
static void test_grants_without_fencing_leave_the_counter_alone(void **state)
{
    redislock *f = fenced_lock(tu_cl, "mix", 5000);
    redislock *p = tf_lock(tu_cl, "mix", 5000);
    uint64_t t1;
    int i;
    (void)state;
    t1 = grant(f, 0);
    for (i = 0; i < 3; i++) {
        assert_rl_ok(redislock_acquire(p, 0));
        assert_int_equal(redislock_token(p), 0);
        assert_rl_ok(redislock_release(p));
    }
    assert_int_equal(counter("lock-fence:mix"), (long long)t1);
    assert_true(grant(f, 0) > t1);
}

/* ------------------------------------ the classic failure, and its fix */

typedef struct proc {
    pid_t pid;
    FILE *in, *out;
} proc;

static proc procs[2];

static void proc_end(void *arg)
{
    proc *p = arg;
    if (p->pid > 0) {
        kill(p->pid, SIGCONT);
        kill(p->pid, SIGKILL);
        tu_wait(p->pid);
    }
    if (p->in)
        fclose(p->in);
    if (p->out)
        fclose(p->out);
    memset(p, 0, sizeof *p);
}

/* Run examples/fenced with args (NULL-terminated) on pipes. */
static proc *fenced_start(proc *p, const char *const *args)
{
    const char *top = getenv("top_builddir");
    char prog[1024];
    const char *argv[12];
    int to[2], from[2], i = 0;
    snprintf(prog, sizeof prog, "%s/examples/fenced", top && *top ? top : ".");
    argv[i++] = prog;
    for (; *args && i < 11; args++)
        argv[i++] = *args;
    argv[i] = NULL;
    assert_int_equal(pipe(to), 0);
    assert_int_equal(pipe(from), 0);
    p->pid = fork();
    assert_true(p->pid >= 0);
    if (p->pid == 0) {
        dup2(to[0], 0);
        dup2(from[1], 1);
        close(to[1]);
        close(from[0]);
        execv(prog, (char *const *)argv);
        _exit(127);
    }
    close(to[0]);
    close(from[1]);
    p->in = fdopen(to[1], "w");
    p->out = fdopen(from[0], "r");
    tf_defer(proc_end, p);
    return p;
}

static int proc_exit(proc *p)
{
    int st = tu_wait(p->pid);
    p->pid = 0;
    return st;
}

static void read_file(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    if (!fgets(buf, (int)len, f))
        buf[0] = '\0';
    fclose(f);
}

static void test_a_paused_holders_late_write_is_rejected(void **state)
{
    char store[700], line[256], content[256];
    unsigned long long ta = 0, tb = 0;
    proc *a, *b;
    (void)state;
    snprintf(store, sizeof store, "%s/store", tu_srv.dir);
    unlink(store);
    a = fenced_start(&procs[0], (const char *const[]){ "-p", "-e", "500", tu_srv.url,
                                                        "res", store, "from-A", NULL });
    assert_non_null(fgets(line, sizeof line, a->out));
    assert_int_equal(sscanf(line, "token %llu", &ta), 1);
    /* A holds the lock and has checked it; it stops before its write (a
     * GC pause, swapping...) for longer than the lock's expiry */
    assert_int_equal(kill(a->pid, SIGSTOP), 0);
    b = fenced_start(&procs[1], (const char *const[]){ "-e", "500", tu_srv.url, "res",
                                                        store, "from-B", NULL });
    assert_non_null(fgets(line, sizeof line, b->out));
    assert_int_equal(sscanf(line, "token %llu", &tb), 1);
    assert_non_null(fgets(line, sizeof line, b->out));
    assert_string_equal(line, "accepted\n");
    assert_int_equal(proc_exit(b), 0);
    assert_true(tb > ta);
    /* A resumes and writes as if it still held the lock */
    assert_int_equal(kill(a->pid, SIGCONT), 0);
    fputs("go\n", a->in);
    fflush(a->in);
    assert_non_null(fgets(line, sizeof line, a->out));
    printf("# A (token %llu) paused past its expiry; B (token %llu) wrote; A's late "
           "write: %s", ta, tb, line);
    assert_memory_equal(line, "rejected", 8);
    assert_int_equal(proc_exit(a), 3);
    read_file(store, content, sizeof content);
    snprintf(line, sizeof line, "%llu from-B\n", tb);
    assert_string_equal(content, line); /* B's write stands */
}

/* ------------------------------------------- max_hold_ms and heartbeat */

static struct {
    int calls, reason;   /* atomic */
    int64_t at;          /* tu_now_ms() of the callback */
    int held_in_cb;
} lost;

static void on_lost(redislock *lk, int reason, void *ud)
{
    (void)ud;
    lost.held_in_cb = redislock_held(lk);
    lost.at = tu_now_ms();
    __atomic_store_n(&lost.reason, reason, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&lost.calls, 1, __ATOMIC_SEQ_CST);
}

static void await_lost(int ms)
{
    int64_t t0 = tu_now_ms();
    while (!__atomic_load_n(&lost.calls, __ATOMIC_SEQ_CST)) {
        if (tu_now_ms() - t0 > ms)
            fail_msg("no lost callback within %d ms", ms);
        tu_sleep_ms(1);
    }
}

static redislock *capped_lock(const char *name, int64_t expire_ms, int64_t interval_ms,
                              int64_t max_hold_ms, int64_t heartbeat_ms)
{
    redislock_options o = REDISLOCK_OPTIONS_INIT;
    o.expire_ms = expire_ms;
    o.auto_renew = 1;
    o.renew_interval_ms = interval_ms;
    o.max_hold_ms = max_hold_ms;
    o.heartbeat_ms = heartbeat_ms;
    o.on_lost = on_lost;
    return tf_lock_opts(tu_cl, name, &o);
}

/* After the lost callback: the key is still the holder's, and a waiter
 * gets the lock when it expires, not before.  The server read the PTTL
 * between t0 and t1, so the key expires between t0 + pttl and t1 + pttl:
 * a grant before t0 + pttl is certainly early.  (Measured from t1, a test
 * thread that the machine ran 40 ms late after the reply saw a grant "39
 * ms before the expiry".) */
static void waiter_gets_it_at_the_expiry(tf_waiter *w, const char *key, const char *what)
{
    int64_t t0 = tu_now_ms(), t1, late;
    long long pttl = ts_int(&tu_srv, "PTTL %s", key);
    t1 = tu_now_ms();
    assert_true(pttl > 0);
    assert_false(tf_waiter_done(w));
    tf_waiter_join(w);
    tf_waiter_assert_ok(w);
    late = w->got - (t0 + pttl);
    printf("# %s: the waiter got the lock %lld ms after the key's expiry (PTTL read "
           "in %lld ms)\n", what, (long long)late, (long long)(t1 - t0));
    assert_true(late >= -5);
    assert_true(late <= TU_LATE_MS);
}

static void test_max_hold_reports_lost_at_the_limit_and_the_key_expires_after(void **state)
{
    redislock *h = capped_lock("mh", 600, 200, 1000, 0);
    tf_waiter *w;
    int64_t t0, late;
    (void)state;
    memset(&lost, 0, sizeof lost);
    t0 = tu_now_ms();
    assert_rl_ok(redislock_acquire(h, 0));
    w = tf_waiter_start(tf_lock(tu_cl, "mh", 600), 5000);
    await_lost(TU_MS(3000));
    late = lost.at - (t0 + 1000);
    printf("# max_hold 1000 ms, renewal every 200 ms: lost callback %lld ms after the "
           "limit\n", (long long)late);
    assert_int_equal(lost.reason, REDISLOCK_LOST_MAX_HOLD);
    assert_int_equal(lost.held_in_cb, 0);
    assert_int_equal(redislock_held(h), 0);
    assert_int_equal(redislock_lost_reason(h), REDISLOCK_LOST_MAX_HOLD);
    /* a timer at the limit: "within one renewal interval" with room */
    assert_true(late >= 0);
    assert_true(late <= TU_MS(200));
    waiter_gets_it_at_the_expiry(w, "lock:mh", "max_hold");
    assert_int_equal(__atomic_load_n(&lost.calls, __ATOMIC_SEQ_CST), 1);
}

static void test_release_after_max_hold_hands_the_lock_over_at_once(void **state)
{
    redislock *h = capped_lock("mhr", 3000, 1000, 300, 0);
    tf_waiter *w;
    int64_t released;
    (void)state;
    memset(&lost, 0, sizeof lost);
    assert_rl_ok(redislock_acquire(h, 0));
    w = tf_waiter_start(tf_lock(tu_cl, "mhr", 3000), 5000);
    await_lost(TU_MS(2000));
    assert_int_equal(lost.reason, REDISLOCK_LOST_MAX_HOLD);
    /* given up: an extend would undo the cap */
    assert_rl_err(redislock_extend(h, 5000), REDISLOCK_ENOTHELD);
    assert_non_null(strstr(redislock_errmsg(h), "given up"));
    released = tu_now_ms();
    /* lost, so ENOTHELD; the owner-checked release still frees the key */
    assert_rl_err(redislock_release(h), REDISLOCK_ENOTHELD);
    tf_waiter_join(w);
    tf_waiter_assert_ok(w);
    assert_true(w->got - released < TU_MS(300));
}

static void test_heartbeat_keeps_the_lock_while_the_worker_beats(void **state)
{
    redislock *h = capped_lock("hb", 600, 200, 0, 300);
    int64_t end, last = 0, late;
    tf_waiter *w;
    (void)state;
    memset(&lost, 0, sizeof lost);
    assert_rl_ok(redislock_acquire(h, 0));
    end = tu_now_ms() + 1500; /* more than two expiries */
    while (tu_now_ms() < end) {
        assert_rl_ok(redislock_heartbeat(h));
        last = tu_now_ms();
        assert_int_equal(redislock_held(h), 1);
        tu_sleep_ms(50);
    }
    assert_int_equal(__atomic_load_n(&lost.calls, __ATOMIC_SEQ_CST), 0);
    /* the worker hangs */
    w = tf_waiter_start(tf_lock(tu_cl, "hb", 600), 5000);
    await_lost(TU_MS(3000));
    late = lost.at - (last + 300);
    printf("# heartbeat 300 ms, renewal every 200 ms: lost callback %lld ms after the "
           "last heartbeat + 300 ms\n", (long long)late);
    assert_int_equal(lost.reason, REDISLOCK_LOST_NO_HEARTBEAT);
    assert_int_equal(redislock_held(h), 0);
    assert_rl_err(redislock_heartbeat(h), REDISLOCK_ENOTHELD);
    assert_non_null(strstr(redislock_last_error(), "heartbeat"));
    /* checked when a renewal is due: at most one interval (200 ms) after
     * the limit, plus the time the thread takes to be scheduled */
    assert_true(late >= 0);
    assert_true(late <= 200 + TU_MS(100));
    waiter_gets_it_at_the_expiry(w, "lock:hb", "no heartbeat");
}

#define T(f) cmocka_unit_test_setup_teardown(f, tu_setup, tf_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_token_is_that_of_the_hold_and_zero_without_one),
        T(test_tokens_strictly_increase_over_many_grants_by_16_threads),
        T(test_tokens_increase_across_reset_and_reset_all),
        T(test_tokens_increase_across_the_expiry_of_a_crashed_holder),
        T(test_tokens_increase_across_a_restart_without_persistence),
        T(test_tokens_increase_when_the_counter_is_deleted_or_set_back),
        T(test_tokens_increase_in_the_hash_tag_layout_with_a_prefix),
        T(test_without_fencing_the_wire_is_as_before),
        T(test_grants_without_fencing_leave_the_counter_alone),
        T(test_a_paused_holders_late_write_is_rejected),
        T(test_max_hold_reports_lost_at_the_limit_and_the_key_expires_after),
        T(test_release_after_max_hold_hands_the_lock_over_at_once),
        T(test_heartbeat_keeps_the_lock_while_the_worker_beats),
    };
    if (getenv("TEST_FILTER"))
        cmocka_set_test_filter(getenv("TEST_FILTER"));
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests_name("fencing", tests, tu_group_setup, tu_group_teardown);
}
