/* redislock-statcost: what the statistics (lib/stats.c) cost on the
 * uncontended acquire+release, against the same build without them, in
 * one run.  The library is linked in twice: as built (with the counters),
 * and built again with REDISLOCK_NO_STATS, its exports renamed
 * nostats_redislock_* (bench/local.mk: ld -r, objcopy).  One client of each
 * on the same server; acquire+release (expiry 10 s) alternating between
 * them, which goes first alternating too, a PING timed before each pair;
 * then blocks of 200 acquire+release each, alternating, with the calling
 * thread's CPU time per block.  Goal (issue 26): <= 2%.
 *
 *   redislock-statcost --url URL [--iters N] [--label TEXT]
 * Prints one record "@ statcost ..." (bench/report.py). */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WARMUP 200
#define BLOCK 200

/* The copy of the library without the statistics. */
int nostats_redislock_client_new(redislock_client **out, const char *url,
                                 const redislock_client_options *opts);
void nostats_redislock_client_free(redislock_client *c);
int nostats_redislock_new(redislock **out, redislock_client *c, const char *name,
                          const redislock_options *opts);
void nostats_redislock_free(redislock *lk);
int nostats_redislock_acquire(redislock *lk, int64_t timeout_ms);
int nostats_redislock_release(redislock *lk);
const char *nostats_redislock_errmsg(const redislock *lk);
const char *nostats_redislock_last_error(void);
int nostats_redislock_client_stats(redislock_client *c, redislock_stats *st);

typedef struct variant {
    int (*client_new)(redislock_client **, const char *, const redislock_client_options *);
    void (*client_free)(redislock_client *);
    int (*lock_new)(redislock **, redislock_client *, const char *, const redislock_options *);
    void (*lock_free)(redislock *);
    int (*acquire)(redislock *, int64_t);
    int (*release)(redislock *);
    const char *(*errmsg)(const redislock *);
    const char *(*last_error)(void);
    int (*stats)(redislock_client *, redislock_stats *);
    redislock_client *c;
    redislock *lk;
    bench_samples lat;
    int64_t cpu_ns, ops;
} variant;

static variant with = {
    .client_new = redislock_client_new, .client_free = redislock_client_free,
    .lock_new = redislock_new, .lock_free = redislock_free, .acquire = redislock_acquire,
    .release = redislock_release, .errmsg = redislock_errmsg,
    .last_error = redislock_last_error, .stats = redislock_client_stats,
};
static variant without = {
    .client_new = nostats_redislock_client_new, .client_free = nostats_redislock_client_free,
    .lock_new = nostats_redislock_new, .lock_free = nostats_redislock_free,
    .acquire = nostats_redislock_acquire, .release = nostats_redislock_release,
    .errmsg = nostats_redislock_errmsg, .last_error = nostats_redislock_last_error,
    .stats = nostats_redislock_client_stats,
};

static void open_variant(variant *v, const char *url, const char *name)
{
    redislock_options o = REDISLOCK_OPTIONS_INIT;
    o.expire_ms = 10000;
    if (v->client_new(&v->c, url, NULL) || v->lock_new(&v->lk, v->c, name, &o))
        bench_die("client", v->last_error());
}

static void acqrel(variant *v)
{
    if (v->acquire(v->lk, -1))
        bench_die("acquire", v->errmsg(v->lk));
    if (v->release(v->lk))
        bench_die("release", v->errmsg(v->lk));
}

static uint64_t acquired(variant *v)
{
    redislock_stats st = { .version = REDISLOCK_STATS_VERSION };
    if (v->stats(v->c, &st))
        bench_die("stats", v->last_error());
    return st.acquired;
}

/* The mean of the samples at or below the 99th percentile (the rare
 * preempted round trip left out), in us. */
static double trimmed_mean_us(bench_samples *s)
{
    int64_t cut = bench_pct(s, 99);
    double sum = 0;
    size_t i, n = 0;
    for (i = 0; i < s->n; i++)
        if (s->v[i] <= cut)
            sum += (double)s->v[i], n++;
    return n ? sum / (double)n / 1000 : 0;
}

int main(int argc, char **argv)
{
    bench_opts o = { .iters = 5000 };
    redisContext *ctx;
    bench_samples ping = { 0 }, warm = { 0 };
    int i, k, a;
    variant *v[2] = { &with, &without };

    for (a = 1; a + 1 < argc; a += 2) {
        if (!strcmp(argv[a], "--url") && o.nurls < BENCH_MAX_URLS)
            o.urls[o.nurls++] = argv[a + 1];
        else if (!strcmp(argv[a], "--iters"))
            o.iters = atoi(argv[a + 1]);
        else if (!strcmp(argv[a], "--label"))
            o.label = argv[a + 1];
        else
            break;
    }
    if (a != argc || o.nurls != 1 || o.iters < 10) {
        fprintf(stderr, "usage: redislock-statcost --url URL [--iters N] [--label TEXT]\n");
        return 2;
    }
    ctx = bench_connect(o.urls[0]);
    open_variant(&with, o.urls[0], "bench:statcost:with");
    open_variant(&without, o.urls[0], "bench:statcost:without");
    for (i = 0; i < WARMUP + o.iters; i++) {
        bench_ping(ctx, 1, i < WARMUP ? &warm : &ping);
        for (k = 0; k < 2; k++) {
            variant *x = v[(i + k) % 2];
            int64_t t0 = bench_now_ns();
            acqrel(x);
            if (i >= WARMUP)
                bench_samples_add(&x->lat, bench_now_ns() - t0);
        }
    }
    /* CPU of the calling thread, per block of one variant alone */
    for (i = 0; i < 2 * (o.iters / BLOCK + 1); i++) {
        variant *x = v[i % 2];
        int64_t t0 = bench_thread_cpu_ns();
        for (k = 0; k < BLOCK; k++)
            acqrel(x);
        x->cpu_ns += bench_thread_cpu_ns() - t0;
        x->ops += BLOCK;
    }
    bench_rec_begin(&o, "statcost");
    bench_rec_str("url", strncmp(o.urls[0], "unix", 4) ? "tcp" : "unix");
    bench_rec_lat("ping", &ping);
    bench_rec_lat("with", &with.lat);
    bench_rec_lat("without", &without.lat);
    bench_rec_num("with_mean_us", trimmed_mean_us(&with.lat));
    bench_rec_num("without_mean_us", trimmed_mean_us(&without.lat));
    bench_rec_num("ratio_p50",
                  (double)bench_pct(&with.lat, 50) / (double)bench_pct(&without.lat, 50));
    bench_rec_num("ratio_p99",
                  (double)bench_pct(&with.lat, 99) / (double)bench_pct(&without.lat, 99));
    bench_rec_num("ratio_mean", trimmed_mean_us(&with.lat) / trimmed_mean_us(&without.lat));
    bench_rec_num("cpu_with_us", (double)with.cpu_ns / (double)with.ops / 1000);
    bench_rec_num("cpu_without_us", (double)without.cpu_ns / (double)without.ops / 1000);
    bench_rec_num("cpu_ratio", ((double)with.cpu_ns / (double)with.ops) /
                                   ((double)without.cpu_ns / (double)without.ops));
    /* the counters ran in one copy only */
    bench_rec_int("counted_with", (long long)acquired(&with));
    bench_rec_int("counted_without", (long long)acquired(&without));
    bench_rec_end();

    for (k = 0; k < 2; k++) {
        v[k]->lock_free(v[k]->lk);
        v[k]->client_free(v[k]->c);
        bench_samples_free(&v[k]->lat);
    }
    bench_samples_free(&ping), bench_samples_free(&warm);
    redisFree(ctx);
    return 0;
}
