#include "fixtures.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* ------------------------------------------------------ per-test clean-up */

typedef struct cleanup {
    tf_cleanup_fn *fn;
    void *arg;
} cleanup;

static cleanup *stack;
static size_t depth, room;

void tf_defer(tf_cleanup_fn *fn, void *arg)
{
    if (depth == room) {
        size_t n = room ? room * 2 : 64;
        cleanup *s = realloc(stack, n * sizeof *s);
        if (!s) {
            fn(arg); /* cannot keep it: undo at once rather than leak */
            fail_msg("tf_defer: out of memory");
        }
        stack = s;
        room = n;
    }
    stack[depth].fn = fn;
    stack[depth].arg = arg;
    depth++;
}

void tf_undefer(void *arg)
{
    size_t i = depth;
    while (i-- > 0)
        if (stack[i].arg == arg) {
            cleanup c = stack[i];
            memmove(&stack[i], &stack[i + 1], (depth - i - 1) * sizeof *stack);
            depth--;
            c.fn(c.arg);
            return;
        }
}

int tf_teardown(void **state)
{
    (void)state;
    tu_kill_children();
    while (depth > 0) {
        cleanup c = stack[--depth];
        c.fn(c.arg);
    }
    free(stack);
    stack = NULL;
    room = 0;
    return 0;
}

static void free_client(void *c)
{
    redislock_client_free(c);
}

static void free_lock(void *lk)
{
    redislock_free(lk);
}

redislock_client *tf_client_opts(const char *url, const redislock_client_options *o)
{
    redislock_client *c = tu_client_opts(url, o);
    tf_defer(free_client, c);
    return c;
}

redislock_client *tf_client(const char *url)
{
    return tf_client_opts(url, NULL);
}

redislock *tf_lock_opts(redislock_client *c, const char *name, const redislock_options *o)
{
    redislock *lk = NULL;
    if (redislock_new(&lk, c, name, o))
        fail_msg("redislock_new(%s): %s", name, redislock_last_error());
    tf_defer(free_lock, lk);
    return lk;
}

redislock *tf_lock(redislock_client *c, const char *name, int64_t expire_ms)
{
    redislock_options o = REDISLOCK_OPTIONS_INIT;
    o.expire_ms = expire_ms;
    return tf_lock_opts(c, name, &o);
}

static void stop_server(void *s)
{
    ts_stop(s);
}

void tf_server_start(ts_server *s)
{
    int rc = ts_start(s);
    if (rc == 77)
        skip();
    if (rc)
        fail_msg("could not start a redis-server");
    tf_defer(stop_server, s);
}

typedef struct shared_block {
    size_t size;
    /* the caller's memory follows, aligned for any type */
    max_align_t data[];
} shared_block;

static void unmap_shared(void *p)
{
    shared_block *b = (shared_block *)((char *)p - offsetof(shared_block, data));
    munmap(b, b->size);
}

void *tf_shared(size_t size)
{
    size_t total = offsetof(shared_block, data) + size;
    shared_block *b = mmap(NULL, total, PROT_READ | PROT_WRITE,
                           MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (b == MAP_FAILED)
        fail_msg("mmap %zu bytes: %s", total, strerror(errno));
    b->size = total;
    tf_defer(unmap_shared, b->data);
    return b->data;
}

void tf_take_locks(redislock_client *c, const char *prefix, int n)
{
    char name[128];
    int i;
    for (i = 0; i < n; i++) {
        redislock *t;
        snprintf(name, sizeof name, "%s%d", prefix, i);
        t = tf_lock(c, name, 0);
        assert_rl_ok(redislock_acquire(t, 0));
        tf_undefer(t);
    }
}

/* ------------------------------------------------------------- contenders */

static struct {
    int procs, threads, run_ms;
    redislock_client *(*make_client)(void *ud);
    void (*fn)(tf_contender *);
    void *ud;
    pid_t pids[TF_MAX_PROCS];
} contenders;

static void *contender_main(void *p)
{
    contenders.fn(p);
    return NULL;
}

static int contender_proc(void *arg)
{
    int proc = (int)(intptr_t)arg, t;
    pthread_t th[TF_MAX_THREADS];
    tf_contender a[TF_MAX_THREADS];
    int64_t end = tu_now_ms() + contenders.run_ms;
    redislock_client *c = contenders.make_client(contenders.ud);
    if (!c)
        return 10;
    for (t = 0; t < contenders.threads; t++) {
        a[t].c = c;
        a[t].proc = proc;
        a[t].thread = t;
        a[t].slot = proc * contenders.threads + t;
        a[t].end_ms = end;
        a[t].ud = contenders.ud;
        if (pthread_create(&th[t], NULL, contender_main, &a[t]))
            return 11;
    }
    for (t = 0; t < contenders.threads; t++)
        pthread_join(th[t], NULL);
    redislock_client_free(c);
    return 0;
}

void tf_contenders_start(int procs, int threads, int run_ms,
                         redislock_client *(*make_client)(void *ud),
                         void (*fn)(tf_contender *), void *ud)
{
    int p;
    if (procs > TF_MAX_PROCS || threads > TF_MAX_THREADS)
        fail_msg("tf_contenders_start: at most %d x %d", TF_MAX_PROCS, TF_MAX_THREADS);
    contenders.procs = procs;
    contenders.threads = threads;
    contenders.run_ms = run_ms;
    contenders.make_client = make_client;
    contenders.fn = fn;
    contenders.ud = ud;
    for (p = 0; p < procs; p++)
        contenders.pids[p] = tu_spawn(contender_proc, (void *)(intptr_t)p);
}

void tf_contenders_wait(void)
{
    int p;
    for (p = 0; p < contenders.procs; p++) {
        int rc = tu_wait(contenders.pids[p]);
        if (rc != 0)
            fail_msg("contender process %d ended with %d", p, rc);
    }
}

/* ----------------------------------------------------------------- waiters */

#define MAX_WAITERS 40
static tf_waiter pool[MAX_WAITERS];
static int pool_used[MAX_WAITERS];

static void *waiter_main(void *p)
{
    tf_waiter *w = p;
    if (w->before)
        w->before(w);
    w->start = tu_now_ms();
    w->rc = redislock_acquire(w->lk, w->timeout);
    w->got = tu_now_ms();
    snprintf(w->msg, sizeof w->msg, "%s", redislock_errmsg(w->lk));
    __atomic_store_n(&w->done, 1, __ATOMIC_SEQ_CST);
    if (w->rc == 0 && w->hold_ms > 0) {
        tu_sleep_ms(w->hold_ms);
        w->release_rc = redislock_release(w->lk);
    }
    return NULL;
}

static void put_back(void *p)
{
    tf_waiter *w = p;
    tf_waiter_join(w);
    pool_used[w - pool] = 0;
}

tf_waiter *tf_waiter_new(redislock *lk, int64_t timeout)
{
    int i;
    for (i = 0; i < MAX_WAITERS; i++)
        if (!pool_used[i])
            break;
    if (i == MAX_WAITERS)
        fail_msg("more than %d waiters in one test", MAX_WAITERS);
    pool_used[i] = 1;
    memset(&pool[i], 0, sizeof pool[i]);
    pool[i].lk = lk;
    pool[i].timeout = timeout;
    pool[i].rc = pool[i].release_rc = -1000;
    tf_defer(put_back, &pool[i]);
    return &pool[i];
}

void tf_waiter_run(tf_waiter *w)
{
    if (pthread_create(&w->t, NULL, waiter_main, w))
        fail_msg("pthread_create failed");
    w->running = 1;
}

tf_waiter *tf_waiter_start_hold(redislock *lk, int64_t timeout, int hold_ms)
{
    tf_waiter *w = tf_waiter_new(lk, timeout);
    w->hold_ms = hold_ms;
    tf_waiter_run(w);
    return w;
}

tf_waiter *tf_waiter_start(redislock *lk, int64_t timeout)
{
    return tf_waiter_start_hold(lk, timeout, 0);
}

void tf_waiter_join(tf_waiter *w)
{
    if (w->running) {
        pthread_join(w->t, NULL);
        w->running = 0;
    }
}

int tf_waiter_done(tf_waiter *w)
{
    return __atomic_load_n(&w->done, __ATOMIC_SEQ_CST);
}

void tf_waiter_await(tf_waiter *w, int ms)
{
    int64_t t0 = tu_now_ms();
    while (!tf_waiter_done(w)) {
        if (tu_now_ms() - t0 > ms)
            fail_msg("the waiter did not return within %d ms", ms);
        tu_sleep_ms(2);
    }
}

void tf_waiter_assert_ok(const tf_waiter *w)
{
    if (w->rc != REDISLOCK_OK)
        fail_msg("waiter: %s: %s", redislock_err_name(w->rc), w->msg);
}

/* ----------------------------------------------------------- N masters */

ts_server tf_masters[TF_MAX_MASTERS];
const char *tf_urls[TF_MAX_MASTERS];
int tf_nmasters;
static int masters_missing; /* redis-server is not installed */

int tf_masters_start(int n)
{
    int i;
    if (n < 1 || n > TF_MAX_MASTERS)
        return -1;
    for (i = 0; i < n; i++) {
        int rc = ts_start(&tf_masters[i]);
        if (rc == 77) {
            masters_missing = 1;
            return 0;
        }
        if (rc)
            return -1;
        tf_urls[i] = tf_masters[i].url;
        tf_nmasters = i + 1;
    }
    return 0;
}

int tf_masters_group_setup_1(void **state)
{
    return tf_masters_start(1);
}

int tf_masters_group_setup_3(void **state)
{
    return tf_masters_start(3);
}

int tf_masters_group_setup_5(void **state)
{
    return tf_masters_start(5);
}

int tf_masters_group_teardown(void **state)
{
    int i;
    for (i = 0; i < tf_nmasters; i++)
        ts_stop(&tf_masters[i]);
    return 0;
}

int tf_masters_setup(void **state)
{
    int i;
    if (masters_missing || !tf_nmasters)
        skip();
    for (i = 0; i < tf_nmasters; i++) {
        if (!tf_masters[i].pid)
            assert_int_equal(ts_restart(&tf_masters[i]), 0);
        ts_resume(&tf_masters[i]);
        ts_flushall(&tf_masters[i]);
    }
    return 0;
}

int tf_masters_teardown(void **state)
{
    int i;
    for (i = 0; i < tf_nmasters; i++)
        ts_resume(&tf_masters[i]);
    return tf_teardown(state);
}

redislock_client *tf_client_multi(const char *const *urls, int n,
                                  const redislock_client_options *o)
{
    redislock_client *c = NULL;
    if (redislock_client_new_multi(&c, urls, (size_t)n, o))
        fail_msg("client_new_multi: %s", redislock_last_error());
    tf_defer(free_client, c);
    return c;
}

redislock_client *tf_multi_opts(int n, const redislock_client_options *o)
{
    return tf_client_multi(tf_urls, n, o);
}

redislock_client *tf_multi(int n, int master_timeout_ms)
{
    redislock_client_options o = REDISLOCK_CLIENT_OPTIONS_INIT;
    o.master_timeout_ms = master_timeout_ms ? master_timeout_ms : TF_MASTER_TIMEOUT_MS;
    return tf_multi_opts(n, &o);
}

int tf_keys_on(int n, const char *key)
{
    int i, count = 0;
    for (i = 0; i < n; i++)
        if (tf_masters[i].pid && ts_int(&tf_masters[i], "EXISTS %s", key) == 1)
            count++;
    return count;
}

void tf_await_blocked_all(ts_server *s, int n, long long k)
{
    int i;
    for (i = 0; i < n; i++)
        ts_await_blocked(&s[i], k);
}
