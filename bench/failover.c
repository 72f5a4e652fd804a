/* redislock-failover: the Sentinel figures of doc/benchmarks.md, against a
 * deployment this program starts itself (a master, a replica, three
 * sentinels on free loopback ports, down-after-milliseconds 1000, fast
 * periods; tests/harness/sentinel.c):
 *   - warm acquire+release through the service's URL, and with
 *     ?min_replicas=1, against the master's own URL (interleaved blocks,
 *     p50 ratio in one run);
 *   - SENTINEL FAILOVER -> the first acquire that lands on the new master
 *     (a client trying every 5 ms);
 *   - master SIGKILLed -> the first successful acquire (a client trying
 *     every 10 ms, as a user's retry loop would);
 *   - a waiter with no timeout across a SIGKILL failover: from the release
 *     on the new master to the waiter holding the lock.
 *
 *   redislock-failover [--runs N] [--iters N]
 *
 * One record per figure on stdout ("@ sentinel_... key=value ...", for
 * bench/report.py); the harness's servers die with the program. */
#include "sentinel.h"

#include <redislock.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static ts_sentinels g;

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void nap_ms(int ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static void die(const char *what)
{
    fprintf(stderr, "redislock-failover: %s: %s\n", what, redislock_last_error());
    exit(1);
}

static redislock *lock_on(const char *url, const char *name, int64_t expire_ms)
{
    redislock_options o = REDISLOCK_OPTIONS_INIT;
    redislock_client *c;
    redislock *lk;
    o.expire_ms = expire_ms;
    if (redislock_client_new(&c, url, NULL) || redislock_new(&lk, c, name, &o))
        die(url);
    return lk; /* the client lives as long as the program */
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int64_t pct(int64_t *v, int n, int p)
{
    qsort(v, (size_t)n, sizeof *v, cmp64);
    return v[(n - 1) * p / 100];
}

/* p50 of acquire+release on each URL, interleaved in blocks of 100. */
static void warm(int iters)
{
    char mrepl[700], direct[200];
    const char *label[3] = { "master", "service", "service+min_replicas=1" };
    redislock *lk[3];
    int64_t *t[3], p50[3];
    int i, k, n = 0, got[3] = { 0, 0, 0 }, slow = 0;
    ts_server *m = ts_sentinels_master(&g, 1000);
    snprintf(direct, sizeof direct, "%s", m->tcp_url);
    snprintf(mrepl, sizeof mrepl, "%s?min_replicas=1", g.url);
    lk[0] = lock_on(direct, "warm0", 10000);
    lk[1] = lock_on(g.url, "warm1", 10000);
    lk[2] = lock_on(mrepl, "warm2", 10000);
    for (k = 0; k < 3; k++)
        t[k] = calloc((size_t)iters, sizeof *t[k]);
    while (n < iters) {
        int block = iters - n < 100 ? iters - n : 100;
        for (k = 0; k < 3; k++)
            for (i = 0; i < block; i++) {
                int64_t t0 = now_us();
                int rc = redislock_acquire(lk[k], 0);
                if (rc == REDISLOCK_ENOREPLICAS) { /* the replica was slow */
                    slow++;
                    continue;
                }
                if (rc || redislock_release(lk[k]))
                    die(label[k]);
                t[k][got[k]++] = now_us() - t0;
            }
        n += block;
    }
    for (k = 0; k < 3; k++)
        p50[k] = pct(t[k], got[k], 50);
    for (k = 0; k < 3; k++) {
        printf("@ sentinel_warm url=%s n=%d p50_us=%lld p99_us=%lld ratio=%.3f "
               "enoreplicas=%d\n",
               label[k], got[k], (long long)p50[k], (long long)pct(t[k], got[k], 99),
               (double)p50[k] / (double)p50[0], k == 2 ? slow : 0);
        free(t[k]);
    }
}

/* Is the key on node s held by id? */
static int holds_on(ts_server *s, const char *key, const char *id)
{
    redisReply *r = ts_cmd(s, "GET %s", key);
    int yes = r && r->type == REDIS_REPLY_STRING && !strcmp(r->str, id);
    if (r)
        freeReplyObject(r);
    return yes;
}

/* From t0, try every step_ms until an acquire lands on node nw (held
 * there, and not on the old master: not a replicated grant of the old
 * one): ms. */
static int64_t first_on(redislock *lk, ts_server *old, ts_server *nw, const char *key,
                        int step_ms, int64_t t0)
{
    while (now_us() - t0 < 20000000) {
        if (redislock_acquire(lk, 0) == REDISLOCK_OK) {
            int64_t t = now_us();
            int there = holds_on(nw, key, redislock_id(lk)) &&
                        (!old->pid || !holds_on(old, key, redislock_id(lk)));
            (void)redislock_release(lk);
            if (there)
                return (t - t0) / 1000;
        }
        nap_ms(step_ms);
    }
    return -1;
}

/* A thread that notes when the sentinels first name port as master. */
typedef struct naming {
    ts_server *sen;   /* a sentinel of its own connection */
    int port;
    int64_t t0, named_ms;
    int stop;
} naming;

static void *watch_naming(void *arg)
{
    naming *n = arg;
    while (!__atomic_load_n(&n->stop, __ATOMIC_SEQ_CST)) {
        redisReply *r = ts_cmd(n->sen, "SENTINEL GET-MASTER-ADDR-BY-NAME %s", g.service);
        int port = r && r->type == REDIS_REPLY_ARRAY && r->elements == 2
                       ? atoi(r->element[1]->str) : 0;
        if (r)
            freeReplyObject(r);
        if (port == n->port) {
            n->named_ms = (now_us() - n->t0) / 1000;
            return NULL;
        }
        nap_ms(2);
    }
    return NULL;
}

/* Start noting when sentinel 2 names nw (its harness connection is used
 * by this thread only until naming_end). */
static void naming_start(naming *n, pthread_t *t, ts_server *nw, int64_t t0)
{
    n->sen = &g.sen[2];
    n->port = nw->port;
    n->t0 = t0;
    n->named_ms = -1;
    n->stop = 0;
    pthread_create(t, NULL, watch_naming, n);
}

static int64_t naming_end(naming *n, pthread_t t)
{
    __atomic_store_n(&n->stop, 1, __ATOMIC_SEQ_CST);
    pthread_join(t, NULL);
    return n->named_ms;
}

static void restore(void)
{
    int i;
    for (i = 0; i < 2; i++)
        if (!g.node[i].pid && ts_restart(&g.node[i]) < 0)
            exit(1);
    if (ts_sentinels_settle(&g, 30000) < 0) {
        fprintf(stderr, "redislock-failover: the deployment did not settle\n");
        exit(1);
    }
}

/* One failover per run: SENTINEL FAILOVER ("forced": a client tries every
 * 5 ms) or the master SIGKILLed ("killed": every 10 ms, as a user's retry
 * loop would); the first acquire the new master served, and when a
 * sentinel named it. */
static void failovers(int runs, int kill_master)
{
    const char *kind = kill_master ? "killed" : "forced";
    char key[32];
    int r;
    snprintf(key, sizeof key, "lock:%s", kind);
    for (r = 0; r < runs; r++) {
        redislock *lk = lock_on(g.url, kind, 5000);
        ts_server *old = ts_sentinels_master(&g, 1000), *nw = ts_sentinels_other(&g, old);
        naming n;
        pthread_t t;
        int64_t t0, got;
        if (redislock_acquire(lk, 0) || redislock_release(lk))
            die("warm-up");
        t0 = now_us();
        naming_start(&n, &t, nw, t0);
        if (kill_master)
            ts_stop(old);
        else
            ts_sentinels_failover(&g);
        got = first_on(lk, old, nw, key, kill_master ? 10 : 5, t0);
        printf("@ sentinel_failover kind=%s first_ms=%lld named_ms=%lld\n", kind,
               (long long)got, (long long)naming_end(&n, t));
        restore();
    }
}

typedef struct waiter {
    redislock *lk;
    int64_t got_us;
    int rc;
} waiter;

static void *wait_thread(void *arg)
{
    waiter *w = arg;
    w->rc = redislock_acquire(w->lk, -1);
    w->got_us = now_us();
    return NULL;
}

static void waiter_across(int runs)
{
    int r;
    for (r = 0; r < runs; r++) {
        redislock *h = lock_on(g.url, "across", 30000);
        waiter w = { lock_on(g.url, "across", 30000), 0, -1 };
        ts_server *old = ts_sentinels_master(&g, 1000), *nw = ts_sentinels_other(&g, old);
        pthread_t t;
        int64_t rel;
        if (redislock_acquire(h, 0))
            die("holder");
        if (ts_sentinels_sync(&g, old) < 0)
            exit(1);
        pthread_create(&t, NULL, wait_thread, &w);
        ts_await_blocked(old, 1);
        ts_stop(old);
        if (ts_sentinels_await(&g, nw, 15000) < 0)
            exit(1);
        nap_ms(200);
        rel = now_us();
        if (redislock_release(h))
            die("release on the new master");
        pthread_join(t, NULL);
        printf("@ sentinel_waiter ok=%d handoff_us=%lld\n", w.rc == 0,
               (long long)(w.got_us - rel));
        (void)redislock_release(w.lk);
        restore();
    }
}

int main(int argc, char **argv)
{
    int runs = 3, iters = 2000, i, rc;
    for (i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--runs"))
            runs = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--iters"))
            iters = atoi(argv[i + 1]);
    }
    if (runs < 1 || iters < 100) {
        fprintf(stderr, "usage: redislock-failover [--runs N] [--iters N>=100]\n");
        return 2;
    }
    if ((rc = ts_sentinels_start(&g, "bench", 1)) != 0)
        return rc;
    setvbuf(stdout, NULL, _IOLBF, 0);
    warm(iters);
    failovers(runs, 0);
    failovers(runs, 1);
    waiter_across(runs);
    return 0;
}
