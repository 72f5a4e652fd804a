/* Latencies: uncontended acquire+release and try-acquire on a held lock,
 * hand-off from a release to the next waiter, majority mode with 1, 3 and 5
 * masters.  PING round trips are timed in the same loop (interleaved), so
 * that load on the machine hits both alike. */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WARMUP 100

static void check(int rc, redislock *lk, const char *what)
{
    if (rc)
        bench_die(what, redislock_errmsg(lk));
}

/* ---------------------------------------------------------- uncontended */

int bench_uncontended(const bench_opts *o)
{
    redisContext *ctx = bench_connect(o->urls[0]);
    redislock_client *c = bench_client(o);
    redislock *lk = bench_lock(c, "bench:uncontended", 10000);
    redislock *holder = bench_lock(c, "bench:busy", 10000);
    redislock *other = bench_lock(c, "bench:busy", 10000);
    bench_samples ping = { 0 }, warm = { 0 }, acq = { 0 }, rel = { 0 }, both = { 0 },
                  busy = { 0 };
    long long calls, calls_acqrel, calls_try;
    int i;

    freeReplyObject(redisCommand(ctx, "CONFIG RESETSTAT")); /* for usec_per_call */
    check(redislock_acquire(holder, -1), holder, "acquire");
    for (i = 0; i < WARMUP + o->iters; i++) {
        int64_t t0, t1, t2, t3;
        int rc;
        bench_ping(ctx, 1, i < WARMUP ? &warm : &ping);
        t0 = bench_now_ns();
        check(redislock_acquire(lk, -1), lk, "acquire");
        t1 = bench_now_ns();
        check(redislock_release(lk), lk, "release");
        t2 = bench_now_ns();
        rc = redislock_try_acquire(other);
        t3 = bench_now_ns();
        if (rc != REDISLOCK_EBUSY)
            bench_die("try-acquire of a held lock", redislock_strerror(rc));
        if (i < WARMUP)
            continue;
        bench_samples_add(&acq, t1 - t0);
        bench_samples_add(&rel, t2 - t1);
        bench_samples_add(&both, t2 - t0);
        bench_samples_add(&busy, t3 - t2);
    }
    /* requests per operation, as the server counts them */
    calls = bench_lib_calls(ctx, NULL);
    for (i = 0; i < 100; i++) {
        check(redislock_acquire(lk, -1), lk, "acquire");
        check(redislock_release(lk), lk, "release");
    }
    calls_acqrel = bench_lib_calls(ctx, NULL) - calls;
    calls = bench_lib_calls(ctx, NULL);
    for (i = 0; i < 100; i++)
        if (redislock_try_acquire(other) != REDISLOCK_EBUSY)
            bench_die("try-acquire of a held lock", "not busy");
    calls_try = bench_lib_calls(ctx, NULL) - calls;
    check(redislock_release(holder), holder, "release");
    bench_rec_begin(o, "uncontended");
    bench_rec_str("url", strncmp(o->urls[0], "unix", 4) ? "tcp" : "unix");
    bench_rec_lat("ping", &ping);
    bench_rec_lat("acqrel", &both);
    bench_rec_lat("acquire", &acq);
    bench_rec_lat("release", &rel);
    bench_rec_lat("trybusy", &busy);
    bench_rec_num("acqrel_cmds", (double)calls_acqrel / 100);
    bench_rec_num("trybusy_cmds", (double)calls_try / 100);
    /* the server's own time per request: a script costs more than a PING */
    bench_rec_num("server_evalsha_us", bench_usec_per_call(ctx, "evalsha"));
    bench_rec_num("server_ping_us", bench_usec_per_call(ctx, "ping"));
    bench_rec_end();

    bench_samples_free(&ping), bench_samples_free(&acq), bench_samples_free(&rel);
    bench_samples_free(&warm), bench_samples_free(&both), bench_samples_free(&busy);
    redislock_free(lk), redislock_free(holder), redislock_free(other);
    redislock_client_free(c);
    redisFree(ctx);
    return 0;
}

/* -------------------------------------------------------------- hand-off */

/* Two contenders pass the lock back and forth, and the same two pass a
 * plain list element the same way, interleaved, in the same run: the
 * floor of a hand-off.
 *  - hand-off: the holder waits until the other is blocked (INFO
 *    blocked_clients), notes the time and calls release; the other notes
 *    when its acquire returned.  Sample: release call -> acquire return.
 *  - floor: the new holder waits until the one who released is blocked in
 *    BLPOP on a plain list, notes the time and LPUSHes; the other notes when
 *    its BLPOP returned.  Sample: LPUSH call -> BLPOP return.
 * Contender 0 takes the lock first; contender 1 starts in the floor's
 * BLPOP.  Times are CLOCK_MONOTONIC, shared by processes.  With --hold the
 * holder pauses that long before each (see hold_and_pass()). */
typedef struct handoff {
    const bench_opts *o;
    redislock_client *c;   /* threads: one client shared */
    int n;                 /* hand-offs wanted */
    int seq;               /* acquisitions so far */
    int stop;
    int failed;
    int64_t *acq, *rel;    /* indexed by acquisition number */
    int64_t *push, *pop;   /* the floor, indexed by the pusher's acquisition */
    int64_t *ping;         /* a PING timed by the holder before each release */
} handoff;

#define FLOOR_KEY "bench:handoff:floor"

/* The floor's BLPOP of the contender that released acquisition k. */
static void floor_pop(handoff *h, redisContext *ctx, int k)
{
    redisReply *r = redisCommand(ctx, "BLPOP " FLOOR_KEY " 0");
    int64_t t = bench_now_ns();
    if (!r || r->type != REDIS_REPLY_ARRAY)
        bench_die("handoff", "the floor's BLPOP failed");
    freeReplyObject(r);
    h->pop[k + 1] = t;
}

/* Acquisition k's holder: the floor's LPUSH to the other, then the
 * hand-off's release.  With --hold, each comes after that long a pause
 * once the other is blocked (as in the contention benchmark: the machine
 * idles meanwhile), and the PING too is timed after such a pause. */
static void hold_and_pass(handoff *h, redisContext *ctx, redislock *lk, int k)
{
    int64_t t, pause = (int64_t)h->o->hold_ms * 1000000;
    bench_await_blocked(ctx, 1); /* the other's floor BLPOP */
    bench_sleep_ns(pause);
    h->push[k] = bench_now_ns();
    freeReplyObject(redisCommand(ctx, "LPUSH " FLOOR_KEY " 1"));
    bench_sleep_ns(pause);
    t = bench_now_ns();
    freeReplyObject(redisCommand(ctx, "PING"));
    h->ping[k] = bench_now_ns() - t;
    bench_await_blocked(ctx, 1); /* the other's acquire */
    bench_sleep_ns(pause);
    h->rel[k] = bench_now_ns();
    check(redislock_release(lk), lk, "release");
}

static int handoff_run(int who, void *arg)
{
    handoff *h = arg;
    redislock_client *c = h->c ? h->c : bench_client(h->o);
    redisContext *ctx = bench_connect(h->o->urls[0]);
    /* the queued kinds need an expiry: 10 s, never reached */
    redislock *lk = bench_kind_lock(c, "bench:handoff", h->o->kind ? 10000 : 0, h->o);
    int k = 0;
    if (who == 1)
        floor_pop(h, ctx, 0); /* pairs with the first holder's push */
    for (;;) {
        int rc = redislock_acquire(lk, 30000);
        int64_t t = bench_now_ns();
        if (rc) {
            fprintf(stderr, "handoff: %s\n", redislock_errmsg(lk));
            __atomic_store_n(&h->failed, 1, __ATOMIC_SEQ_CST);
            __atomic_store_n(&h->stop, 1, __ATOMIC_SEQ_CST);
            break;
        }
        k = __atomic_add_fetch(&h->seq, 1, __ATOMIC_SEQ_CST);
        h->acq[k] = t;
        if (k > h->n || __atomic_load_n(&h->stop, __ATOMIC_SEQ_CST)) {
            __atomic_store_n(&h->stop, 1, __ATOMIC_SEQ_CST);
            redislock_release(lk);
            /* the other is in the floor's BLPOP: let it out */
            freeReplyObject(redisCommand(ctx, "LPUSH " FLOOR_KEY " 1"));
            break;
        }
        hold_and_pass(h, ctx, lk, k);
        floor_pop(h, ctx, k);
        if (__atomic_load_n(&h->stop, __ATOMIC_SEQ_CST))
            break;
    }
    redislock_free(lk);
    if (!h->c)
        redislock_client_free(c);
    redisFree(ctx);
    return __atomic_load_n(&h->failed, __ATOMIC_SEQ_CST);
}

int bench_handoff(const bench_opts *o)
{
    size_t size = sizeof(handoff) + 5 * (size_t)(o->iters + 3) * sizeof(int64_t);
    handoff *h = bench_shared(size);
    bench_samples ping = { 0 }, lat = { 0 }, floor = { 0 };
    int k;

    h->o = o;
    h->n = o->iters;
    h->acq = (int64_t *)(h + 1);
    h->rel = h->acq + o->iters + 3;
    h->push = h->rel + o->iters + 3;
    h->pop = h->push + o->iters + 3;
    h->ping = h->pop + o->iters + 3;
    h->c = o->processes ? NULL : bench_client(o);
    if (bench_spawn(2, o->processes, handoff_run, h))
        bench_die("handoff", "a contender failed");
    for (k = 1; k <= h->n && k + 1 <= h->seq; k++) {
        bench_samples_add(&lat, h->acq[k + 1] - h->rel[k]);
        bench_samples_add(&floor, h->pop[k] - h->push[k]);
        bench_samples_add(&ping, h->ping[k]);
    }
    bench_rec_begin(o, "handoff");
    bench_rec_str("url", strncmp(o->urls[0], "unix", 4) ? "tcp" : "unix");
    bench_rec_str("mode", o->processes ? "processes" : "threads");
    bench_rec_int("hold_ms", o->hold_ms);
    if (o->kind)
        bench_rec_str("kind", o->kind == REDISLOCK_KIND_FAIR ? "fair" : "semaphore");
    bench_rec_lat("ping", &ping);
    /* bimodal on some machines: the quartiles, and the two modes */
    bench_rec_dist("floor", &floor);
    bench_rec_modes("floor", &floor);
    bench_rec_dist("handoff", &lat);
    bench_rec_modes("handoff", &lat);
    bench_rec_end();
    if (h->c)
        redislock_client_free(h->c);
    bench_samples_free(&ping), bench_samples_free(&lat), bench_samples_free(&floor);
    bench_shared_free(h, size);
    return 0;
}

/* ------------------------------------------------------------- majority */

/* Acquire+release on clients of 1, 3 and 5 masters (as many as --url
 * given), round-robin so that all see the same load.  For reference, the
 * same masters asked one after another: a single-master client per master,
 * acquire+release on each in turn (what asking them in series would cost on
 * this machine). */
int bench_majority(const bench_opts *o)
{
    static const int sizes[] = { 1, 3, 5 };
    redislock_client *c[3] = { NULL }, *one[BENCH_MAX_URLS] = { NULL };
    redislock *lk[3] = { NULL }, *lk1[BENCH_MAX_URLS] = { NULL };
    bench_samples lat[3] = { { 0 } }, seq[3] = { { 0 } }, ping = { 0 }, warm = { 0 };
    bench_relay relay[BENCH_MAX_URLS];
    const char *urls[BENCH_MAX_URLS];
    redislock_client_options mopts = REDISLOCK_CLIENT_OPTIONS_INIT;
    char dir[256] = "";
    redisContext *ctx;
    int nc = 0, i, j, m, warmup = o->delay_us ? 10 : WARMUP;

    for (m = 0; m < o->nurls; m++)
        urls[m] = o->urls[m];
    if (o->delay_us) { /* the masters behind relays, in a temp directory */
        const char *tmp = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/redislock-relay.XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(dir))
            bench_die(dir, "cannot make a temp directory");
        for (m = 0; m < o->nurls; m++) {
            char path[300];
            snprintf(path, sizeof path, "%s/%d.sock", dir, m);
            bench_relay_start(&relay[m], o->urls[m], path, (int64_t)o->delay_us * 1000);
            urls[m] = relay[m].url;
        }
    }
    ctx = bench_connect(urls[0]);
    /* The per-master timeout (default 50 ms) is not what is measured: a
     * loaded or sanitized run must not fail the round with ENOQUORUM. */
    mopts.master_timeout_ms = 2000;
    for (j = 0; j < 3 && sizes[j] <= o->nurls; j++, nc++) {
        if (redislock_client_new_multi(&c[j], urls, (size_t)sizes[j], &mopts))
            bench_die("client", redislock_last_error());
        lk[j] = bench_lock(c[j], "bench:majority", 10000);
    }
    for (m = 0; m < o->nurls; m++) {
        if (redislock_client_new(&one[m], urls[m], NULL))
            bench_die("client", redislock_last_error());
        lk1[m] = bench_lock(one[m], "bench:series", 10000);
    }
    for (i = 0; i < warmup + o->iters; i++) {
        bench_ping(ctx, 1, i < warmup ? &warm : &ping);
        for (j = 0; j < nc; j++) {
            int k;
            for (k = 0; k < 2; k++) { /* alternate which goes first */
                int64_t t0 = bench_now_ns();
                if ((i + k) % 2 == 0) {
                    check(redislock_acquire(lk[j], -1), lk[j], "acquire");
                    check(redislock_release(lk[j]), lk[j], "release");
                } else {
                    for (m = 0; m < sizes[j]; m++) {
                        check(redislock_acquire(lk1[m], -1), lk1[m], "acquire");
                        check(redislock_release(lk1[m]), lk1[m], "release");
                    }
                }
                if (i >= warmup)
                    bench_samples_add((i + k) % 2 == 0 ? &lat[j] : &seq[j],
                                      bench_now_ns() - t0);
            }
        }
    }
    for (j = 0; j < nc; j++) {
        bench_rec_begin(o, "majority");
        bench_rec_int("masters", sizes[j]);
        bench_rec_int("delay_us", o->delay_us);
        bench_rec_lat("ping", &ping);
        bench_rec_lat("acqrel", &lat[j]);
        bench_rec_lat("series", &seq[j]);
        bench_rec_end();
        bench_samples_free(&lat[j]);
        bench_samples_free(&seq[j]);
        redislock_free(lk[j]);
        redislock_client_free(c[j]);
    }
    for (m = 0; m < o->nurls; m++) {
        redislock_free(lk1[m]);
        redislock_client_free(one[m]);
    }
    bench_samples_free(&ping), bench_samples_free(&warm);
    redisFree(ctx);
    if (o->delay_us) {
        for (m = 0; m < o->nurls; m++)
            bench_relay_stop(&relay[m]);
        rmdir(dir);
    }
    return 0;
}
