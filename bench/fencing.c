/* Fencing tokens (issue 17): uncontended acquire+release of a lock with
 * fencing against the same of a lock without, on one client and server, in
 * one loop (the order alternates, a PING is timed before each pair), so that
 * load on the machine hits both alike.  Goal: within 10% of the plain lock.
 * The tokens of the fenced lock are also checked: each larger than the
 * last. */
#include "bench.h"

#include <string.h>

#define WARMUP 100

static void acqrel(redislock *lk)
{
    if (redislock_acquire(lk, -1))
        bench_die("acquire", redislock_errmsg(lk));
    if (redislock_release(lk))
        bench_die("release", redislock_errmsg(lk));
}

int bench_fencing(const bench_opts *o)
{
    redisContext *ctx = bench_connect(o->urls[0]);
    redislock_client *c = bench_client(o);
    redislock *plain = bench_lock(c, "bench:plain", 10000), *fenced = NULL;
    redislock_options fo = REDISLOCK_OPTIONS_INIT;
    bench_samples ping = { 0 }, warm = { 0 }, p = { 0 }, f = { 0 };
    uint64_t last = 0;
    long long backwards = 0;
    int i, k;

    fo.expire_ms = 10000;
    fo.fencing = 1;
    if (redislock_new(&fenced, c, "bench:fenced", &fo))
        bench_die("lock", redislock_last_error());
    for (i = 0; i < WARMUP + o->iters; i++) {
        bench_ping(ctx, 1, i < WARMUP ? &warm : &ping);
        for (k = 0; k < 2; k++) {
            int with = (i + k) % 2;
            int64_t t0 = bench_now_ns();
            if (!with) {
                acqrel(plain);
            } else {
                uint64_t t;
                if (redislock_acquire(fenced, -1))
                    bench_die("acquire", redislock_errmsg(fenced));
                t = redislock_token(fenced);
                if (redislock_release(fenced))
                    bench_die("release", redislock_errmsg(fenced));
                backwards += t <= last;
                last = t;
            }
            if (i >= WARMUP)
                bench_samples_add(with ? &f : &p, bench_now_ns() - t0);
        }
    }
    bench_rec_begin(o, "fencing");
    bench_rec_str("url", strncmp(o->urls[0], "unix", 4) ? "tcp" : "unix");
    bench_rec_lat("ping", &ping);
    bench_rec_lat("plain", &p);
    bench_rec_lat("fenced", &f);
    bench_rec_num("ratio_p50", (double)bench_pct(&f, 50) / (double)bench_pct(&p, 50));
    bench_rec_num("ratio_p99", (double)bench_pct(&f, 99) / (double)bench_pct(&p, 99));
    bench_rec_int("tokens_not_increasing", backwards);
    bench_rec_end();

    bench_samples_free(&ping), bench_samples_free(&warm);
    bench_samples_free(&p), bench_samples_free(&f);
    redislock_free(plain), redislock_free(fenced);
    redislock_client_free(c);
    redisFree(ctx);
    return 0;
}
