/* redislock-bench-cluster: the Redis Cluster goals of issue 23, against
 * clusters this program starts itself (tests/harness/cluster.c: free
 * loopback ports, redis-cli --cluster create, node timeout 1000 ms, killed
 * at exit).  Usage:
 *
 *   redislock-bench-cluster [--runs N] [--iters N] [--markdown]
 *
 * It measures, each against the floor of the same work in the same run:
 *   warm      acquire+release through a cluster URL against the same node
 *             used directly (redis://), interleaved;
 *   migrate   a waiter whose slot is migrated: from the MOVED that a raw
 *             BLPOP on the same key gets to the waiter's acquire;
 *   openslot  a release issued while its slot is open: from SETSLOT NODE to
 *             the release's return;
 *   failover  CLUSTER FAILOVER under a waiter: from the release on the new
 *             master to the waiter's acquire;
 *   sigkill   a master SIGKILLed: from its replica accepting writes to the
 *             first acquire of a client that tries every 10 ms.
 * (The renewal's round trips per batch are counted by the renewer itself:
 * tests/integration/test_cluster.c, 10,000 locks.)
 * Records "@ cluster-<what> key=value..." go to stdout; --markdown adds the
 * table for doc/benchmarks.md.  The public API only (plus hiredis). */
#include "bench.h"
#include "cluster.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static tc_cluster three, six;
static int runs = 5, iters = 2000;

static int64_t now_us(void)
{
    return bench_now_ns() / 1000;
}

static void log_line(void *ud, int level, const char *msg)
{
    (void)ud;
    fprintf(stderr, "%lld [%d] %s\n", (long long)(now_us() / 1000), level, msg);
}

static redislock_client *client(const char *url)
{
    redislock_client_options o = REDISLOCK_CLIENT_OPTIONS_INIT;
    redislock_client *c = NULL;
    if (getenv("BENCH_LOG")) { /* the library's log on stderr */
        o.log = log_line;
        o.log_level = atoi(getenv("BENCH_LOG"));
    }
    if (redislock_client_new(&c, url, &o))
        bench_die(url, redislock_last_error());
    return c;
}

/* A lock name "prefix<N>" whose slot s serves. */
static const char *name_on(tc_cluster *cl, ts_server *s, const char *prefix, char *buf,
                           size_t len)
{
    int i;
    for (i = 0; i < 100000; i++) {
        char key[300];
        long long slot;
        snprintf(buf, len, "%s%d", prefix, i);
        snprintf(key, sizeof key, "lock:{%s}", buf);
        slot = ts_int(s, "CLUSTER KEYSLOT %s", key);
        if (tc_owner(cl, (int)slot) == s)
            return buf;
    }
    bench_die("name_on", prefix);
    return NULL;
}

static long long slot_of(ts_server *s, const char *name)
{
    return ts_int(s, "CLUSTER KEYSLOT lock:{%s}", name);
}

/* ---------------------------------------------------------------- warm */

static void warm(void)
{
    char name[32];
    redislock_client_options o = REDISLOCK_CLIENT_OPTIONS_INIT;
    redislock_client *cc = client(three.url), *dc = NULL;
    redislock *a = bench_lock(cc, name_on(&three, &three.node[0], "warm", name, sizeof name), 10000);
    redislock *b;
    bench_samples sc = { 0 }, sd = { 0 };
    int i, k;
    o.hash_tag = 1; /* the same keys (lock:{name}) on the node itself */
    if (redislock_client_new(&dc, three.node[0].tcp_url, &o))
        bench_die("warm", redislock_last_error());
    b = bench_lock(dc, name, 10000);
    for (i = 0; i < 200; i++) { /* warm up both */
        if (redislock_acquire(a, 0) || redislock_release(a) || redislock_acquire(b, 0) ||
            redislock_release(b))
            bench_die("warm", redislock_last_error());
    }
    for (i = 0; i < iters / 100; i++)
        for (k = 0; k < 2; k++) { /* batches of 100, alternating */
            redislock *lk = (i + k) % 2 ? a : b;
            int j;
            for (j = 0; j < 50; j++) {
                int64_t t0 = bench_now_ns();
                if (redislock_acquire(lk, 0) || redislock_release(lk))
                    bench_die("warm", redislock_last_error());
                bench_samples_add(lk == a ? &sc : &sd, bench_now_ns() - t0);
            }
        }
    printf("@ cluster-warm cluster_p50_us=%.1f direct_p50_us=%.1f ratio=%.3f "
           "cluster_p99_us=%.1f direct_p99_us=%.1f n=%zu\n",
           bench_pct(&sc, 50) / 1e3, bench_pct(&sd, 50) / 1e3,
           (double)bench_pct(&sc, 50) / (double)bench_pct(&sd, 50), bench_pct(&sc, 99) / 1e3,
           bench_pct(&sd, 99) / 1e3, sc.n);
    bench_samples_free(&sc);
    bench_samples_free(&sd);
    redislock_free(a);
    redislock_free(b);
    redislock_client_free(cc);
    redislock_client_free(dc);
}

/* ------------------------------------------------------------ threads */

typedef struct job {
    redislock *lk;
    int64_t timeout_ms;
    int rc;
    int64_t done_us;
    redisContext *raw;    /* a raw BLPOP instead (migrate's probe) */
    const char *key;
    pthread_t t;
} job;

static void *acquire_main(void *p)
{
    job *j = p;
    j->rc = redislock_acquire(j->lk, j->timeout_ms);
    j->done_us = now_us();
    return NULL;
}

static void *release_main(void *p)
{
    job *j = p;
    j->rc = redislock_release(j->lk);
    j->done_us = now_us();
    return NULL;
}

static void *blpop_main(void *p)
{
    job *j = p;
    redisReply *r = redisCommand(j->raw, "BLPOP %s 20", j->key);
    j->rc = r && r->type == REDIS_REPLY_ERROR && !strncmp(r->str, "MOVED", 5) ? 0 : -1;
    j->done_us = now_us();
    if (r)
        freeReplyObject(r);
    return NULL;
}

static void run(job *j, void *(*fn)(void *))
{
    j->done_us = 0;
    if (pthread_create(&j->t, NULL, fn, j))
        bench_die("pthread_create", "");
}

static void await_blocked(ts_server *s, long long n)
{
    int i;
    for (i = 0; i < 4000 && ts_info(s, "clients", "blocked_clients") < n; i++)
        bench_sleep_ns(1000000);
}

/* ------------------------------------------------- migrate, openslot */

static void migrate_once(int r, bench_samples *wake, bench_samples *rel, bench_samples *moved)
{
    ts_server *src = &three.node[r % 3], *dst = &three.node[(r + 1) % 3];
    char name[32], sig[64], portbuf[16];
    redislock_client *c = client(three.url);
    redislock *holder, *lk;
    job w = { 0 }, probe = { 0 }, rl = { 0 };
    long long slot;
    int64_t closed;
    snprintf(portbuf, sizeof portbuf, "m%d-", r);
    name_on(&three, src, portbuf, name, sizeof name);
    slot = slot_of(src, name);
    snprintf(sig, sizeof sig, "lock-signal:{%s}", name);
    holder = bench_lock(c, name, 10000);
    lk = bench_lock(c, name, 10000);
    if (redislock_acquire(holder, 0))
        bench_die("migrate", redislock_last_error());
    w.lk = lk;
    w.timeout_ms = 10000;
    run(&w, acquire_main);
    probe.raw = redisConnect("127.0.0.1", src->port);
    probe.key = sig;
    run(&probe, blpop_main);
    await_blocked(src, 2);
    if (tc_migrate_begin(&three, (int)slot, src, dst))
        bench_die("migrate", "begin");
    rl.lk = holder;
    run(&rl, release_main); /* TRYAGAIN until the slot closes */
    bench_sleep_ns(200 * 1000000LL);
    if (tc_migrate_end(&three, (int)slot, src, dst))
        bench_die("migrate", "end");
    closed = now_us();
    pthread_join(rl.t, NULL);
    pthread_join(w.t, NULL);
    pthread_join(probe.t, NULL);
    if (rl.rc || w.rc || probe.rc)
        bench_die("migrate", "a release, the waiter or the probe failed");
    bench_samples_add(rel, (rl.done_us - closed) * 1000);
    bench_samples_add(moved, (probe.done_us - closed) * 1000);
    bench_samples_add(wake, (w.done_us - probe.done_us) * 1000);
    redisFree(probe.raw);
    redislock_release(lk);
    redislock_free(holder);
    redislock_free(lk);
    redislock_client_free(c);
    if (tc_migrate_begin(&three, (int)slot, dst, src) || tc_migrate_end(&three, (int)slot, dst, src))
        bench_die("migrate", "back");
}

static void migrate(void)
{
    bench_samples wake = { 0 }, rel = { 0 }, moved = { 0 };
    int r;
    for (r = 0; r < runs * 2; r++)
        migrate_once(r, &wake, &rel, &moved);
    printf("@ cluster-migrate runs=%zu moved_p50_ms=%.1f moved_max_ms=%.1f "
           "wake_after_moved_p50_ms=%.1f wake_after_moved_max_ms=%.1f "
           "release_after_setslot_p50_ms=%.1f release_after_setslot_max_ms=%.1f\n",
           wake.n, bench_pct(&moved, 50) / 1e6, bench_pct(&moved, 100) / 1e6,
           bench_pct(&wake, 50) / 1e6, bench_pct(&wake, 100) / 1e6, bench_pct(&rel, 50) / 1e6,
           bench_pct(&rel, 100) / 1e6);
    bench_samples_free(&wake);
    bench_samples_free(&rel);
    bench_samples_free(&moved);
}

/* ---------------------------------------------------------- failover */

static ts_server *a_master(tc_cluster *cl, int k)
{
    int i;
    for (i = 0; i < cl->n; i++)
        if (cl->node[i].pid && tc_is_master(&cl->node[i]) && k-- == 0)
            return &cl->node[i];
    return NULL;
}

static void failover(void)
{
    bench_samples hold = { 0 };
    int r, skipped = 0;
    for (r = 0; r < runs; r++) {
        ts_server *m = a_master(&six, r % 3), *rep = m ? tc_replica_of(&six, m) : NULL;
        char name[32];
        redislock_client *c;
        redislock *holder, *lk;
        job w = { 0 };
        if (!rep) { /* a failover left out before has not settled */
            fprintf(stderr, "bench: no master %d with a replica; run %d left out\n", r % 3, r);
            skipped++;
            tc_wait_ok(&six, 20000);
            continue;
        }
        c = client(six.url);
        int64_t t0;
        redisReply *x;
        name_on(&six, m, "fo", name, sizeof name);
        holder = bench_lock(c, name, 10000);
        lk = bench_lock(c, name, 10000);
        if (redislock_acquire(holder, 0))
            bench_die("failover", redislock_last_error());
        /* WAIT covers the calling connection's last write: write first */
        x = ts_cmd(m, "INCR {%s}sync", name);
        if (x)
            freeReplyObject(x);
        x = ts_cmd(m, "WAIT 1 1000");
        if (x)
            freeReplyObject(x);
        w.lk = lk;
        w.timeout_ms = 20000;
        run(&w, acquire_main);
        await_blocked(m, 1);
        x = ts_cmd(rep, "CLUSTER FAILOVER");
        if (x)
            freeReplyObject(x);
        if (tc_await_master(&six, rep, 5000) < 0) { /* the failover did not happen */
            fprintf(stderr, "bench: CLUSTER FAILOVER on %d did not promote it; run %d left "
                    "out\n", rep->port, r);
            skipped++;
            redislock_release(holder);
            pthread_join(w.t, NULL);
            redislock_release(lk);
            redislock_free(holder);
            redislock_free(lk);
            redislock_client_free(c);
            tc_wait_ok(&six, 20000);
            continue;
        }
        await_blocked(rep, 1);
        t0 = now_us();
        if (getenv("BENCH_LOG")) {
            redisReply *v = ts_cmd(rep, "GET lock:{%s}", name);
            fprintf(stderr, "%lld run %d: releasing %s (master %d, new %d): holder %s, "
                    "key %s, waiter done %d\n", (long long)(t0 / 1000), r, name, m->port,
                    rep->port, redislock_id(holder),
                    v && v->type == REDIS_REPLY_STRING ? v->str : "(none)", w.done_us != 0);
            if (v)
                freeReplyObject(v);
        }
        if (redislock_release(holder))
            bench_die("failover release", redislock_last_error());
        pthread_join(w.t, NULL);
        if (w.rc)
            bench_die("failover waiter", redislock_last_error());
        bench_samples_add(&hold, (w.done_us - t0) * 1000);
        redislock_release(lk);
        redislock_free(holder);
        redislock_free(lk);
        redislock_client_free(c);
        tc_wait_ok(&six, 20000);
    }
    printf("@ cluster-failover runs=%zu skipped=%d hold_after_release_p50_ms=%.2f "
           "hold_after_release_max_ms=%.2f\n",
           hold.n, skipped, bench_pct(&hold, 50) / 1e6, bench_pct(&hold, 100) / 1e6);
    bench_samples_free(&hold);
}

/* The replica's readiness, polled every 5 ms by a thread of its own. */
typedef struct watcher {
    ts_server *rep;
    int64_t since, ready_us;
    pthread_t t;
} watcher;

static void *watch_main(void *p)
{
    watcher *w = p;
    int ms = tc_await_master(&six, w->rep, 15000);
    w->ready_us = ms < 0 ? 0 : now_us();
    return NULL;
}

static void sigkill(void)
{
    bench_samples lag = { 0 }, writable = { 0 };
    int r;
    for (r = 0; r < runs; r++) {
        ts_server *m = a_master(&six, r % 3);
        watcher wt = { 0 };
        char name[32];
        redislock_client *c;
        redislock *lk;
        int64_t killed, first = 0;
        wt.rep = m ? tc_replica_of(&six, m) : NULL;
        if (!wt.rep) {
            fprintf(stderr, "bench: no master %d with a replica; run %d left out\n", r % 3, r);
            tc_wait_ok(&six, 20000);
            continue;
        }
        c = client(six.url);
        lk = bench_lock(c, name_on(&six, m, "k", name, sizeof name), 5000);
        if (redislock_acquire(lk, 0) || redislock_release(lk))
            bench_die("sigkill", redislock_last_error());
        killed = now_us();
        ts_stop(m);
        if (pthread_create(&wt.t, NULL, watch_main, &wt))
            bench_die("pthread_create", "");
        while (now_us() - killed < 15000000 && !first) {
            if (redislock_acquire(lk, 0) == 0)
                first = now_us();
            else
                bench_sleep_ns(10000000);
        }
        pthread_join(wt.t, NULL);
        if (!first || !wt.ready_us)
            bench_die("sigkill", "no new master");
        bench_samples_add(&writable, (wt.ready_us - killed) * 1000);
        bench_samples_add(&lag, (first - wt.ready_us) * 1000);
        redislock_release(lk);
        redislock_free(lk);
        redislock_client_free(c);
        ts_restart(m);
        tc_wait_ok(&six, 30000);
    }
    printf("@ cluster-sigkill runs=%zu writable_p50_ms=%.0f writable_max_ms=%.0f "
           "first_after_writable_p50_ms=%.0f first_after_writable_max_ms=%.0f\n",
           lag.n, bench_pct(&writable, 50) / 1e6, bench_pct(&writable, 100) / 1e6,
           bench_pct(&lag, 50) / 1e6, bench_pct(&lag, 100) / 1e6);
    bench_samples_free(&lag);
    bench_samples_free(&writable);
}

int main(int argc, char **argv)
{
    int a, rc;
    for (a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "--runs") && a + 1 < argc)
            runs = atoi(argv[++a]);
        else if (!strcmp(argv[a], "--iters") && a + 1 < argc)
            iters = atoi(argv[++a]);
        else {
            fprintf(stderr, "usage: redislock-bench-cluster [--runs N] [--iters N]\n");
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0); /* each record as it comes */
    if ((rc = tc_start(&three, 3, 0)) != 0)
        return rc;
    if (!getenv("BENCH_ONLY_FAILOVER")) {
        warm();
        migrate();
    }
    if ((rc = tc_start(&six, 6, 1)) != 0)
        return rc;
    failover();
    sigkill();
    return 0;
}
